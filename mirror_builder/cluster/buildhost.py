"""A build host of the cluster: the Dask worker plugin that owns this host's podman, images and
blob cache, and runs each RemoteBuild in a local container with the same sandbox as a local
build (build/builder.py). Package code runs only inside those containers."""

from __future__ import annotations

import logging
import platform
import shutil
import socket
import subprocess
import threading
import uuid
from contextlib import ExitStack
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from distributed import WorkerPlugin

from mirror_builder.build.request import (BuildRequest, FileRef, RepairRequest, SmokeRequest,
                                          SmokeTest)
from mirror_builder.buildcache.store import BuildCache
from mirror_builder.cluster.artifacts import ArtifactClient
from mirror_builder.cluster.security import client_files
from mirror_builder.cluster.wire import (RemoteBuild, RemoteOutcome, RemoteRepair, RemoteSmoke,
                                         RemoteVendor, WireError, pack_tree,
                                         smoke_results_to_dict, unpack_tree)
from mirror_builder.config.settings import Settings
from mirror_builder.errors import MirrorBuilderError, PackageError
from mirror_builder.layout import IndexLayout
from mirror_builder.sandbox.imagenames import ImageRef

log = logging.getLogger(__name__)

PLUGIN_NAME = "mirror-builder"
EVENT_TOPIC = "mirror-builder"


class BuildHost(WorkerPlugin):
    """Set up in the worker process (Dask calls setup/teardown); tasks reach it with
    get_worker().plugins[PLUGIN_NAME] (cluster/task.py). Holds no state of a run."""

    name = PLUGIN_NAME

    def __init__(self, settings: Settings, targets: tuple[str, ...], certs: Path | None,
                 member: str, cpus: float | None = None) -> None:
        self.settings, self.targets, self.certs, self.member = settings, targets, certs, member
        self.cpus = cpus  # at most this many CPUs per build container (worker --cpus)
        self.images: dict[str, ImageRef] = {}
        self._stack: ExitStack | None = None  # set up in the worker process, not pickled

    # -- Dask's WorkerPlugin interface -----------------------------------------------------
    def setup(self, worker) -> None:
        from mirror_builder.build.executor import PodmanExecutor
        from mirror_builder.sandbox.images import ImageManager
        from mirror_builder.sandbox.podman import PodmanService

        self.worker = worker
        self._layers = threading.Lock()
        self._clients = threading.local()
        self._stack = ExitStack()
        cache_dir = self.settings.cache_dir
        podman = self.podman = self._stack.enter_context(PodmanService(cache_dir / "state"))
        self.image_manager = ImageManager(podman, cache_dir)
        for target in self.targets:  # made before the worker started (cli worker): found here
            self.images[target] = self.image_manager.ensure(self.settings.target(target))
        self.work_dir = cache_dir / "cluster" / f"work-{uuid.uuid4().hex[:12]}"
        self.executor = PodmanExecutor(podman, self.work_dir / "state")
        self._stack.callback(self.executor.close)
        self.cache = BuildCache(cache_dir / "builds")
        self.podman_version = _podman_version()

    def teardown(self, worker) -> None:
        if self._stack is not None:
            self._stack.close()
        shutil.rmtree(getattr(self, "work_dir", Path("/nonexistent")), ignore_errors=True)

    # -- one build -------------------------------------------------------------------------
    def provenance(self, image: ImageRef | None = None) -> dict[str, str]:
        worker = self.worker
        facts = {"executor": "dask", "name": str(worker.name), "id": str(worker.id),
                 "address": str(worker.address), "host": socket.gethostname(),
                 "kernel": platform.release(), "podman": self.podman_version}
        if image is not None:
            facts |= {"image_id": image.id, "image_tag": image.tag}
        return facts

    def build(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A RemoteOutcome as a dict; never raises for what a build or its input did wrong."""
        remote, image, refused = self._accept(RemoteBuild, payload,
                                              lambda r: r.request.runtime.image)
        if refused:
            return refused
        request = remote.request
        job = self.work_dir / "builds" / uuid.uuid4().hex[:12]
        try:
            store = self._store(remote.store)
            local = self._materialize(request, remote.tree_sha256, image, store, job)
            self._event("building", request)
            try:
                result = self.executor.build(local)
            except PackageError as exc:
                return self._failed(exc.detail, image, store, local.log_path)
            self._event("uploading", request)
            wheel = None
            if result.wheel is not None:
                wheel = (result.wheel.name, store.push(result.wheel))
                result.wheel.unlink()
            # Waits for a test the build's container still runs after handing its wheel over:
            # only once it has ended is its output in the log (a build shorter than the log's
            # live copy took had none of it there before).
            plain = _plain_result(result)
            log_digest = store.push(local.log_path)
            return RemoteOutcome(result.status, self.provenance(image), result=plain,
                                 wheel=wheel, log_sha256=log_digest).to_dict()
        except MirrorBuilderError as exc:  # the store, podman or the image on this host
            return self._host_failure(image, exc)
        finally:
            self._event("done", request)
            shutil.rmtree(job, ignore_errors=True)

    def repair(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Repair a wheel here (auditwheel from our tool wheels, no network); the repaired
        wheel goes back by digest."""
        remote, image, refused = self._accept(RemoteRepair, payload, lambda r: r.runtime.image)
        if refused:
            return refused
        runtime = remote.runtime
        job = self.work_dir / "repairs" / uuid.uuid4().hex[:12]
        log_path = job / "repair.log"
        try:
            store = self._store(remote.store)
            wheel = self._fetch_named(remote.wheel, job / "in", store)
            tools = tuple(self._fetch_named(t, job / "tools", store) for t in remote.tools)
            try:
                repaired = self.executor.repair(RepairRequest(
                    wheel, tools, replace(runtime, image=image), log_path, remote.label))
            except PackageError as exc:
                return self._failed(exc.detail, image, store, log_path)
            digest = store.push(repaired.wheel)
            repaired.wheel.unlink()
            return RemoteOutcome("repaired", self.provenance(image), result=dict(repaired.record),
                                 wheel=(repaired.wheel.name, digest),
                                 log_sha256=store.push(log_path)).to_dict()
        except MirrorBuilderError as exc:  # the store, podman or the image on this host
            return self._host_failure(image, exc)
        finally:
            shutil.rmtree(job, ignore_errors=True)

    def smoke(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Smoke-test wheels here, against a copy of the coordinator's index laid out from this
        host's blob cache (each file fetched once)."""
        remote, image, refused = self._accept(RemoteSmoke, payload, lambda r: r.image)
        if refused:
            return refused
        job = self.work_dir / "smoke" / uuid.uuid4().hex[:12]
        log_path = job / "smoke.log"
        try:
            store = self._store(remote.store)
            for path, digest in remote.index:
                dest = job / "index" / path
                dest.parent.mkdir(parents=True, exist_ok=True)
                _link_or_copy(self._blob(digest, store), dest)
            staged = {name: self._fetch_named((name, digest), job / "staged", store)
                      for name, digest in remote.staged}
            tests = tuple(SmokeTest(staged[name], imports) for name, imports in remote.tests
                          if name in staged)
            results = self.executor.smoke_test(SmokeRequest(
                image, IndexLayout(job / "index"), tuple(staged.values()), tests,
                remote.limits, log_path))
            return RemoteOutcome("tested", self.provenance(image),
                                 result=smoke_results_to_dict(results),
                                 log_sha256=store.push(log_path) if log_path.is_file() else None
                                 ).to_dict()
        except MirrorBuilderError as exc:  # the store, podman or the image on this host
            return self._host_failure(image, exc)
        finally:
            shutil.rmtree(job, ignore_errors=True)

    def vendor(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Vendor a prepared tree's Rust crates here (cargo vendor, in a container with network
        that runs no package code); the vendored tree goes back packed, by digest."""
        from mirror_builder.prepare.vendoring import RustVendorer

        remote, image, refused = self._accept(RemoteVendor, payload, lambda r: r.image)
        if refused:
            return refused
        job = self.work_dir / "vendoring" / uuid.uuid4().hex[:12]
        log_path = job / "vendor.log"
        try:
            store = self._store(remote.store)
            tree = unpack_tree(self._blob(remote.tree_sha256, store), job / "tree")
            manifests = None if remote.manifests is None else [tree / m for m in remote.manifests]
            try:
                crates = RustVendorer(self.podman, image).vendor(tree, remote.label, log_path,
                                                                 manifests)
            except MirrorBuilderError as exc:
                return self._failed(str(exc), image, store, log_path)
            packed = store.push(pack_tree(tree, job / "tree.tar"))
            return RemoteOutcome("vendored", self.provenance(image),
                                 result={"crates": [_plain_crate(c) for c in crates]},
                                 log_sha256=store.push(log_path), tree_sha256=packed).to_dict()
        except MirrorBuilderError as exc:  # the store, podman or the image on this host
            return self._host_failure(image, exc)
        finally:
            shutil.rmtree(job, ignore_errors=True)

    def _host_failure(self, image: ImageRef, exc: MirrorBuilderError) -> dict[str, Any]:
        """What went wrong on this host rather than in the package: the store, podman, the
        image."""
        return RemoteOutcome("failed", self.provenance(image),
                             error=f"on worker {self.worker.name}: {exc}").to_dict()

    def _failed(self, message: str, image: ImageRef, store: ArtifactClient,
                log_path: Path) -> dict[str, Any]:
        log_digest = store.push(log_path) if log_path.is_file() else None
        return RemoteOutcome("failed", self.provenance(image), log_sha256=log_digest,
                             error=message).to_dict()

    def _store(self, url: str) -> ArtifactClient:
        """A client of the coordinator's store, one per thread and store (its connections are
        kept alive between tasks: a TLS handshake per file would cost more than the file)."""
        clients = self._clients.__dict__.setdefault("by_url", {})
        if url not in clients:
            clients[url] = ArtifactClient(url, *client_files(self.certs, self.member))
        return clients[url]

    def _tree(self, digest: str, store: ArtifactClient) -> Path:
        """The prepared tree, unpacked once per worker process: builds mount it read-only, so
        the builds of one version (more build requirements found, another target) share it."""
        tree = self.work_dir / "trees" / digest
        if not tree.is_dir():
            partial = tree.with_name(f".{digest}.{uuid.uuid4().hex[:8]}")
            unpack_tree(self._blob(digest, store), partial)
            try:
                partial.rename(tree)
            except OSError:  # another thread unpacked it first
                shutil.rmtree(partial, ignore_errors=True)
        return tree

    def _fetch_named(self, ref: tuple[str, str], folder: Path, store: ArtifactClient) -> Path:
        name, digest = ref
        folder.mkdir(parents=True, exist_ok=True)
        _link_or_copy(self._blob(digest, store), folder / name)
        return folder / name

    def _accept(self, kind, payload: dict[str, Any], wanted: Callable[[Any], ImageRef]):
        """(the message, this host's image for it, None), or (None, None, a "refused" outcome
        as a dict) when the message is not this code's or its image is not ours."""
        try:
            remote = kind.from_dict(payload)
        except WireError as exc:
            return None, None, RemoteOutcome("refused", self.provenance(), error=str(exc)).to_dict()
        image, refusal = self._image_for(wanted(remote).target, wanted(remote))
        if image is None:
            return None, None, RemoteOutcome("refused", self.provenance(), error=refusal).to_dict()
        return remote, image, None

    def _image_for(self, target: str, wanted: ImageRef) -> tuple[ImageRef | None, str]:
        """This host's image for the target, if it is the content the coordinator expects (the
        same Containerfile, the same Debian packages at the same versions); image ids differ
        between hosts, so they are recorded, not compared."""
        base = self.images.get(target)
        if base is None:
            return None, (f"worker {self.worker.name} does not serve target {target} (it "
                          f"serves {', '.join(self.targets)})")
        if base.containerfile_sha256 != wanted.containerfile_sha256:
            return None, (f"worker {self.worker.name}: its image for {target} comes from "
                          f"another Containerfile (sha256 {base.containerfile_sha256[:12]}..., "
                          f"expected {wanted.containerfile_sha256[:12]}...)")
        if wanted.layer_packages:
            with self._layers:
                image = self.image_manager.with_system_packages(base, wanted.layer_packages)
        else:
            image = base
        if set(image.system_packages) != set(wanted.system_packages):
            differ = sorted(set(image.system_packages) ^ set(wanted.system_packages))
            return None, (f"worker {self.worker.name}: its image for {target} "
                          f"has other Debian packages ({', '.join(differ[:4])}"
                          f"{', ...' if len(differ) > 4 else ''}); make the images again from "
                          f"the same Containerfile on the same day, or update both")
        return image, ""

    def _materialize(self, request: BuildRequest, tree_sha256: str, image: ImageRef,
                     store: ArtifactClient, job: Path) -> BuildRequest:
        """The request with this host's paths: every input fetched into the blob cache once,
        then linked into the job's folder under its name."""
        self._event("fetching", request)
        inputs = job / "inputs"
        inputs.mkdir(parents=True)

        def local(ref: FileRef, folder: str) -> FileRef:
            blob = self._blob(ref.sha256, store)
            dest = inputs / folder / ref.name
            dest.parent.mkdir(exist_ok=True)
            _link_or_copy(blob, dest)
            return FileRef(dest, ref.sha256)

        tree = self._tree(tree_sha256, store)
        source = replace(request.source, sdist=local(request.source.sdist, "sdist"), tree=tree,
                         patches=tuple(local(p, "patches") for p in request.source.patches))
        env = replace(request.env, wheels=tuple(local(w, "wheels") for w in request.env.wheels))
        cpus = request.runtime.cpus
        if self.cpus is not None:
            cpus = min(cpus or self.cpus, self.cpus)
        smoke = request.smoke and replace(
            request.smoke, closure=tuple(local(w, "closure") for w in request.smoke.closure))
        return replace(request, source=source, env=env,
                       runtime=replace(request.runtime, image=image, cpus=cpus),
                       log_path=job / "build.log", smoke=smoke)

    def _blob(self, digest: str, store: ArtifactClient) -> Path:
        path = self.cache.blob(digest)
        if not path.is_file():
            store.fetch(digest, path)
        return path

    def _event(self, phase: str, request: BuildRequest) -> None:
        try:
            self.worker.log_event(EVENT_TOPIC, {"phase": phase, "package": request.label,
                                                "target": request.runtime.target,
                                                "worker_name": str(self.worker.name)})
        except Exception:  # progress is best effort; a build never fails for it
            log.debug("could not send a progress event", exc_info=True)


def _plain_crate(crate) -> dict[str, Any]:
    return {"name": crate.name, "version": crate.version, "checksum": crate.checksum}


def _plain_result(result) -> dict[str, Any]:
    values = result.to_dict()
    values.pop("worker", None)
    values["wheel"] = values["log_path"] = None
    return values


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        dest.hardlink_to(source)
    except OSError:
        shutil.copy2(source, dest)


def _podman_version() -> str:
    try:
        return subprocess.run(["podman", "--version"], capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"

"""The coordinator's side of the cluster: an Executor whose builds, repairs and smoke tests run
as Dask tasks on the workers that serve their target with the same image, their files moving
through the artifact store this process serves (cluster/artifacts.py). Our own DAG stays the
coordinator and the single writer of the index; what comes back is checked as a local build's
output is before anything is staged."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from packaging.version import Version

from mirror_builder.build.builder import check_freeze
from mirror_builder.build.grafted import grafted_libraries
from mirror_builder.build.request import (BuildRequest, BuildResult, RepairRequest, RepairResult,
                                          ClosureLater, SmokeRequest, SmokeResult)
from mirror_builder.build.wheelcheck import WheelRejected, check_built_wheel
from mirror_builder.buildcache.store import BuildCache, CorruptEntry
from mirror_builder.cluster.answers import (RemoteFailure, changed_outside_vendoring,
                                            explain_dask_error, raise_if_failed)
from mirror_builder.cluster.artifacts import ArtifactServer
from mirror_builder.cluster.buildhost import EVENT_TOPIC
from mirror_builder.cluster.security import check_address, dask_security, server_context
from mirror_builder.cluster.wire import (TESTS_PREFIX, RemoteBuild, RemoteOutcome, RemoteRepair,
                                         RemoteSmoke, RemoteVendor, WireError, image_resource,
                                         pack_tree, smoke_results_from_dict, unpack_tree)
from mirror_builder.config.executor import DaskSettings
from mirror_builder.config.sizes import parse_size
from mirror_builder.errors import BuildError, MirrorBuilderError, SourceError
from mirror_builder.files import sha256_of
from mirror_builder.layout import IndexLayout
from mirror_builder.prepare.cargoprojects import manifests_to_vendor
from mirror_builder.prepare.vendoring import VendoredCrate
from mirror_builder.sandbox.imagenames import ImageRef

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 30


class ClusterError(MirrorBuilderError):
    """The cluster cannot take this run's builds (no scheduler, no worker for a target)."""


@dataclass
class WorkerTally:
    tasks: int = 0
    busy_seconds: float = 0.0
    host: str = ""


class DaskExecutor:
    """Use as a context manager: connects to the scheduler and serves the artifact store for
    the length of a run. Safe to use from several threads (the engine's build slots)."""

    def __init__(self, settings: DaskSettings, cache: BuildCache,
                 activity: Callable[[str, str], None], work_dir: Path) -> None:
        self.settings, self.cache = settings, cache
        self.activity, self.work_dir = activity, work_dir  # activity(pin, text): progress
        self.address = check_address(settings.scheduler, settings.insecure)
        self.tally: dict[str, WorkerTally] = {}
        self._trees: dict[Path, str] = {}
        self._digests: dict[tuple[Path, int, int], str] = {}
        self._resources: dict[str, str] = {}  # target: the resource of its image
        self._capacity: int | None = None
        self._image: ImageRef | None = None  # the target's, once checked
        self._largest = (1.0, 0.0)  # the most cpus and memory one worker serving it has
        self._lock = threading.Lock()
        self._stack = ExitStack()
        self.client = None
        self.store_url = ""

    def __enter__(self) -> DaskExecutor:
        try:
            self._open()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self._stack.close()

    def _open(self) -> None:
        from distributed import Client

        certs = self.settings.certs
        listen_host, _, port = self.settings.store_listen.rpartition(":")
        # The store is mutual TLS even with --insecure (which is about the scheduler only).
        server = self._stack.enter_context(
            ArtifactServer(self.cache, server_context(certs, "coordinator"), listen_host,
                           int(port)))
        self.store_url = self.settings.store_url or f"https://{listen_host}:{server.port}/"
        try:
            self.client = Client(self.address, timeout=CONNECT_TIMEOUT,
                                 security=dask_security(
                                     None if self.settings.insecure else certs, "coordinator",
                                     ("client",)),
                                 # A worker's answer is read as plain data only: a pickled
                                 # object from a hostile worker would run code here.
                                 deserializers=["msgpack", "error"], set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the scheduler at {self.address}: {exc}") from None
        self._stack.callback(self.client.close)
        self.client.subscribe_topic(EVENT_TOPIC, self._on_event)

    # -- before a run ----------------------------------------------------------------------
    def check_image(self, image: ImageRef) -> None:
        """Fail at once, naming the target, if no worker serves it with this image and this
        code (a build would wait for one forever)."""
        wanted = image_resource(image)
        with self._lock:
            self._resources[image.target] = wanted
            self._image = image
        workers = self.client.scheduler_info(n_workers=-1)["workers"].values()
        serving = [w.get("resources") or {} for w in workers
                   if wanted in (w.get("resources") or {})]
        if serving:
            self._capacity = int(sum(r[wanted] for r in serving))
            # A build asks for no more than the largest worker has, or it would wait forever.
            self._largest = (max(r.get("cpus", 1) for r in serving),
                             max(r.get("memory", 0) for r in serving))
            return
        raise ClusterError(f"no worker of the cluster at {self.address} can build for "
                           f"{image.target}: {self._why_not(image) or 'it has no workers'}")

    def _why_not(self, image: ImageRef) -> str:
        """Each worker, and why it cannot take this target's builds."""
        from mirror_builder.cluster.task import describe_host
        from mirror_builder.cluster.wire import code_version

        answers = self.client.run(describe_host, on_error="return")
        reasons = []
        for address, host in sorted(answers.items()):
            if not isinstance(host, Mapping):
                reasons.append(f"{address} did not answer ({host})")
                continue
            name, served = host.get("name", address), host.get("targets") or {}
            if host.get("code") != code_version():
                reasons.append(f"{name} runs other mirror-builder code ({host.get('code')}, "
                               f"here {code_version()})")
            elif image.target not in served:
                reasons.append(f"{name} serves {', '.join(served) or 'no target'}")
            elif served[image.target].get("containerfile_sha256") != image.containerfile_sha256:
                reasons.append(f"{name} has an image from another Containerfile")
            else:
                reasons.append(f"{name} has an image with other Debian packages (make both "
                               f"images again, or update the older one)")
        return "; ".join(reasons)

    # -- the Executor interface ------------------------------------------------------------
    closure_after_start = False  # a worker's container cannot be handed wheels later

    def build(self, request: BuildRequest, closure_later: ClosureLater | None = None
              ) -> BuildResult:
        payload = RemoteBuild(request, self._tree_blob(request.source.tree), self.store_url)
        self._publish_inputs(request)
        try:
            outcome = self._run_remote("run_build", payload.to_dict(), request.runtime.target,
                                       request.label, self._budget(request))
        except RemoteFailure as exc:
            raise _error(request, str(exc)) from None
        self._append_log(request.log_path, request.label, outcome)
        raise_if_failed(outcome, lambda message: _error(request, message))
        wheel = self._take_wheel(request, outcome) if outcome.status == "built" else None
        return outcome.build_result(wheel, request.log_path)

    def repair(self, request: RepairRequest) -> RepairResult:
        """Repair on a worker of the target; the repaired wheel comes back by digest and is
        checked as a built one is."""
        name, version = request.label.split("==", 1)

        def error(message: str) -> BuildError:
            return BuildError(message, package=name, version=version,
                              log_path=str(request.log_path))

        tools = tuple((tool.name, self._publish(tool)) for tool in request.tools)
        payload = RemoteRepair((request.wheel.name, self._publish(request.wheel)), tools,
                               request.runtime, request.label, self.store_url)
        try:
            outcome = self._run_remote("run_repair", payload.to_dict(), request.runtime.target,
                                       request.label)
        except RemoteFailure as exc:
            raise error(str(exc)) from None
        self._append_log(request.log_path, request.label, outcome)
        raise_if_failed(outcome, error)
        if outcome.status != "repaired" or outcome.wheel is None:
            raise error(f"the worker answered {outcome.status} to a repair")
        repaired = self._wheel_from_store(outcome.wheel, name, version, error)
        try:
            bundled = grafted_libraries(request.wheel, repaired)
        except (zipfile.BadZipFile, OSError) as exc:
            raise error(f"the repaired wheel cannot be read as a zip archive: {exc}") from None
        record = {key: (outcome.result or {}).get(key) for key in ("tool", "command")}
        return RepairResult(repaired, {**record, "from": request.wheel.name,
                                       "to": repaired.name, "bundled": bundled})

    def smoke_test(self, request: SmokeRequest) -> Mapping[str, SmokeResult]:
        """Smoke tests on a worker of the target, against a copy of the index it lays out from
        its blob cache. A test that cannot run there fails, saying why."""
        tests = {t.wheel.name: t for t in request.tests}
        staged = {path.name: path for path in request.staged}
        payload = RemoteSmoke(request.image, request.limits, self._index_files(request.index),
                              tuple((n, self._publish(p)) for n, p in staged.items()),
                              tuple((n, t.imports) for n, t in tests.items()), self.store_url)
        label = next(iter(tests), "smoke test")
        try:
            outcome = self._run_remote("run_smoke", payload.to_dict(), request.image.target,
                                       label, kind="tests")
            self._append_log(request.log_path, "smoke test", outcome)
            raise_if_failed(outcome, RemoteFailure)
            return smoke_results_from_dict(outcome.result or {}, set(tests))
        except (RemoteFailure, WireError) as exc:
            return {name: SmokeResult(name, "failed", error=f"on the cluster: {exc}",
                                      image=request.image.tag) for name in tests}

    def vendor(self, tree: Path, label: str, log_path: Path,
               manifests: Sequence[Path] | None = None) -> list[VendoredCrate]:
        """Vendor the tree's Rust crates on a worker of the target (the same RustVendorer, in
        the worker's podman, with network and no package code). The vendored tree replaces this
        one only if it differs from it by the vendored crates and cargo's config alone."""
        wanted = manifests_to_vendor(tree) if manifests is None else list(manifests)
        if not wanted:
            return []
        image = self._image
        payload = RemoteVendor(self._tree_blob(tree), image,
                               tuple(m.relative_to(tree).as_posix() for m in wanted), label,
                               self.store_url)

        def error(message: str) -> SourceError:
            return SourceError(f"{label}: vendoring crates: {message}; log: {log_path}")

        try:
            outcome = self._run_remote("run_vendor", payload.to_dict(), image.target, label,
                                       kind="tests")
        except RemoteFailure as exc:
            raise error(str(exc)) from None
        self._append_log(log_path, label, outcome)
        raise_if_failed(outcome, error)
        if outcome.status != "vendored":
            raise error(f"the worker answered {outcome.status} to vendoring")
        self._replace_tree(tree, outcome.tree_sha256, error)
        try:
            return [VendoredCrate(str(c["name"]), str(c["version"]), c.get("checksum"))
                    for c in (outcome.result or {}).get("crates", [])]
        except (KeyError, TypeError, AttributeError) as exc:
            raise error(f"the worker's list of crates is malformed: {exc}") from None

    def _replace_tree(self, tree: Path, digest: str, error: Callable[[str], Exception]) -> None:
        staging = tree.with_name(f".{tree.name}.vendored-{uuid.uuid4().hex[:8]}")
        try:
            blob = self.cache.blob(digest)
            if not blob.is_file() or sha256_of(blob) != digest:
                raise error("the vendored tree did not arrive whole")
            unpack_tree(blob, staging)
            changed = changed_outside_vendoring(tree, staging)
            if changed:
                raise error(f"the worker changed the source, not only its crates: "
                            f"{', '.join(changed[:3])}{', ...' if len(changed) > 3 else ''}")
            shutil.rmtree(tree)
            staging.rename(tree)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        with self._lock:
            self._trees.pop(tree, None)

    def capacity(self) -> int | None:
        """The slots of the workers serving the checked image when the run started (workers
        that join later take builds too; the scheduler queues what waits)."""
        return self._capacity

    def workers_summary(self) -> list[tuple[str, str, int, float]]:
        """(worker, host, tasks, busy seconds), for the run's summary: tasks are builds,
        repairs and smoke tests."""
        with self._lock:
            return [(name, t.host, t.tasks, t.busy_seconds)
                    for name, t in sorted(self.tally.items())]

    # -- one task ------------------------------------------------------------------------
    def _budget(self, request: BuildRequest) -> dict[str, float]:
        """What a build takes of its worker's cores and memory (worker resources cpus and
        memory), as a local build takes build slots: its cpus override (at least one) and its
        memory limit, at most what the largest worker has."""
        cpus, memory = self._largest
        budget = {"cpus": min(float(math.ceil(request.runtime.cpus or 1)), cpus)}
        if memory:
            budget["memory"] = float(min(parse_size(request.runtime.limits.memory), memory))
        return budget

    def _run_remote(self, task: str, payload: dict, target: str, label: str,
                    budget: Mapping[str, float] | None = None,
                    kind: str = "builds") -> RemoteOutcome:
        """Run cluster/task.py's task on a worker serving target with our image; its answer
        read as a RemoteOutcome. A RemoteFailure says in words what went wrong on the way."""
        from mirror_builder.cluster import task as tasks

        name = label.replace("==", "-")
        future = self.client.submit(getattr(tasks, task), payload, pure=False, retries=0,
                                    key=f"{task.removeprefix('run_')}-{name}-{target}-"
                                        f"{uuid.uuid4().hex[:8]}",
                                    resources={self._resource_for(target, kind): 1,
                                               **(budget or {})})
        self.activity(label, f"waiting for a {target} worker")
        started = time.monotonic()
        try:
            answer = future.result()
        except Exception as exc:  # what Dask raises, as plain errors (deserializers)
            raise RemoteFailure(explain_dask_error(exc, target)) from None
        finally:
            future.release()
        try:
            outcome = RemoteOutcome.from_dict(answer)
        except WireError as exc:
            raise RemoteFailure(f"the worker's answer was refused: {exc}") from None
        self._count(outcome, time.monotonic() - started)
        return outcome

    def _resource_for(self, target: str, kind: str = "builds") -> str:
        """The resource of the target's image: its build slots (builds and repairs), or its
        smoke-test slots (kind "tests")."""
        with self._lock:
            resource = self._resources.get(target)
        if resource is None:
            raise ClusterError(f"target {target}: its image was not checked against the "
                               f"cluster's workers (check_image) before building")
        return resource if kind == "builds" else TESTS_PREFIX + resource

    def _tree_blob(self, tree: Path) -> str:
        """The prepared tree, packed into the store once (vendoring replaces it: then again)."""
        with self._lock:
            known = self._trees.get(tree)
        if known is not None and self.cache.blob(known).is_file():
            return known
        self.cache.blobs.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.cache.blobs, prefix=".tree.", suffix=".part")
        os.close(fd)
        try:
            pack_tree(tree, Path(tmp))
            digest = sha256_of(Path(tmp))
            dest = self.cache.blob(digest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        finally:
            Path(tmp).unlink(missing_ok=True)
        with self._lock:
            self._trees[tree] = digest
        return digest

    def _publish_inputs(self, request: BuildRequest) -> None:
        closure = request.smoke.closure if request.smoke else ()
        for ref in (request.source.sdist, *request.source.patches, *request.env.wheels, *closure):
            if self.cache.blob(ref.sha256).is_file():
                continue
            if self.cache.add_blob(ref.path) != ref.sha256:
                raise _error(request, f"{ref.path} changed since it was chosen for the build "
                                      f"(its sha256 is no longer {ref.sha256[:12]}...)")

    def _publish(self, path: Path) -> str:
        """path's digest, its bytes in the store (hashed once per size and time of change)."""
        stat = path.stat()
        key = (path, stat.st_size, stat.st_mtime_ns)
        with self._lock:
            digest = self._digests.get(key)
        if digest is None or not self.cache.blob(digest).is_file():
            digest = self.cache.add_blob(path)
            with self._lock:
                self._digests[key] = digest
        return digest

    def _index_files(self, index: IndexLayout) -> tuple[tuple[str, str], ...]:
        """Every page and file of the index, by path under it and digest, for a worker to lay
        out a copy of it (files it already has are not sent again)."""
        listed = []
        for folder in (index.simple, index.files):
            for path in sorted(folder.rglob("*")) if folder.is_dir() else ():
                if path.is_file() and not path.is_symlink() and not path.name.startswith("."):
                    listed.append((path.relative_to(index.root).as_posix(), self._publish(path)))
        return tuple(listed)

    def _take_wheel(self, request: BuildRequest, outcome: RemoteOutcome) -> Path:
        """The worker's wheel, from the store by digest, checked as a local build's is."""
        check_freeze((outcome.result or {}).get("freeze", ""), request)
        return self._wheel_from_store(outcome.wheel or ("", ""), request.source.name,
                                      request.source.version,
                                      lambda message: _error(request, message))

    def _wheel_from_store(self, wheel: tuple[str, str], name: str, version: str,
                          error: Callable[[str], BuildError]) -> Path:
        """A wheel a worker made, copied from the store by its digest and checked: its file
        name, its .dist-info and METADATA, its RECORD (build/wheelcheck.py)."""
        filename, digest = wheel
        if not filename.endswith(".whl") or "/" in filename or filename.startswith(".") \
                or "\0" in filename:
            raise error(f"the worker named its wheel {filename!r}, which is not a wheel's "
                        f"file name")
        dest = self.work_dir / uuid.uuid4().hex[:8] / filename
        try:
            self.cache.take_blob(digest, dest)
        except CorruptEntry as exc:
            raise error(f"the worker's wheel did not arrive whole: {exc}") from None
        try:
            check_built_wheel(dest, name, Version(version))
        except WheelRejected as exc:
            shutil.rmtree(dest.parent, ignore_errors=True)
            raise error(f"the build's wheel was rejected: {exc}") from None
        return dest

    def _append_log(self, log_path: Path, label: str, outcome: RemoteOutcome) -> None:
        worker = outcome.worker
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as out:
            out.write(f"[mirror-builder] {label}: on worker {worker.get('name')} "
                      f"(host {worker.get('host')}, {worker.get('podman')}, image "
                      f"{worker.get('image_id', '?')[:12]})\n".encode())
            if outcome.log_sha256:
                try:
                    with self.cache.blob(outcome.log_sha256).open("rb") as log_file:
                        data = log_file.read()
                except OSError:
                    data = b""
                if hashlib.sha256(data).hexdigest() == outcome.log_sha256:
                    out.write(data)
                else:
                    out.write(b"[mirror-builder] the worker's log did not arrive whole\n")

    def _count(self, outcome: RemoteOutcome, seconds: float) -> None:
        name = outcome.worker.get("name", "?")
        with self._lock:
            tally = self.tally.setdefault(name, WorkerTally(host=outcome.worker.get("host", "")))
            tally.tasks += 1
            tally.busy_seconds += seconds

    def _on_event(self, event) -> None:
        _, message = event
        if isinstance(message, dict) and message.get("phase") in ("fetching", "building",
                                                                  "uploading"):
            self.activity(str(message.get("package")),
                                   f"{message['phase']} on worker {message.get('worker_name')}")


def _error(request: BuildRequest, message: str) -> BuildError:
    return BuildError(message, package=request.source.name, version=request.source.version,
                      chain=request.chain, log_path=str(request.log_path))

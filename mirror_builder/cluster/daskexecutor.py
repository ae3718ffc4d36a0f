"""The coordinator's side of the cluster: an Executor whose builds run as Dask tasks on the
workers that serve the build's target with the same image, their files moving through the
artifact store this process serves (cluster/artifacts.py). Our own DAG stays the coordinator
and the single writer of the index; what comes back is checked as a local build's output is
before anything is staged. Repairs and smoke tests run on this machine's podman."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from packaging.version import Version

from mirror_builder.build.builder import check_freeze
from mirror_builder.build.request import (BuildRequest, BuildResult, Executor, RepairRequest,
                                          RepairResult, SmokeRequest, SmokeResult)
from mirror_builder.build.wheelcheck import WheelRejected, check_built_wheel
from mirror_builder.buildcache.store import BuildCache, CorruptEntry
from mirror_builder.cluster.artifacts import ArtifactServer
from mirror_builder.cluster.buildhost import EVENT_TOPIC
from mirror_builder.cluster.security import check_address, dask_security, server_context
from mirror_builder.cluster.wire import (RemoteBuild, RemoteOutcome, WireError, image_resource,
                                         pack_tree)
from mirror_builder.config.executor import DaskSettings
from mirror_builder.errors import BuildError, MirrorBuilderError
from mirror_builder.files import sha256_of
from mirror_builder.sandbox.imagenames import ImageRef

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 30


class ClusterError(MirrorBuilderError):
    """The cluster cannot take this run's builds (no scheduler, no worker for a target)."""


@dataclass
class WorkerTally:
    builds: int = 0
    busy_seconds: float = 0.0
    host: str = ""


class DaskExecutor:
    """Use as a context manager: connects to the scheduler and serves the artifact store for
    the length of a run. Safe to use from several threads (the engine's build slots)."""

    def __init__(self, local: Executor, settings: DaskSettings, cache: BuildCache,
                 activity: Callable[[str, str], None], work_dir: Path) -> None:
        self.local, self.settings, self.cache = local, settings, cache
        self.activity, self.work_dir = activity, work_dir  # activity(pin, text): progress
        self.address = check_address(settings.scheduler, settings.insecure)
        self.tally: dict[str, WorkerTally] = {}
        self._trees: dict[Path, str] = {}
        self._resources: dict[str, str] = {}  # target: the resource of its image
        self._capacity: int | None = None
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
        workers = self.client.scheduler_info(n_workers=-1)["workers"].values()
        slots = sum(int((w.get("resources") or {}).get(wanted, 0)) for w in workers)
        if slots:
            self._capacity = slots
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
    def build(self, request: BuildRequest) -> BuildResult:
        payload = RemoteBuild(request, self._tree_blob(request), self.store_url)
        self._publish_inputs(request)
        started = time.monotonic()
        answer = self._run_remote(request, payload.to_dict())
        try:
            outcome = RemoteOutcome.from_dict(answer)
        except WireError as exc:
            raise _error(request, f"the worker's answer was refused: {exc}") from None
        self._count(outcome, time.monotonic() - started)
        self._append_log(request, outcome)
        where = outcome.worker.get("name", "a worker")
        if outcome.status in ("failed", "refused"):
            verb = "refused by" if outcome.status == "refused" else "on"
            raise _error(request, f"{outcome.error} ({verb} worker {where})")
        wheel = self._take_wheel(request, outcome) if outcome.status == "built" else None
        return outcome.build_result(wheel, request.log_path)

    def repair(self, request: RepairRequest) -> RepairResult:
        return self.local.repair(request)

    def smoke_test(self, request: SmokeRequest) -> Mapping[str, SmokeResult]:
        return self.local.smoke_test(request)

    def capacity(self) -> int | None:
        """The slots of the workers serving the checked image when the run started (workers
        that join later take builds too; the scheduler queues what waits)."""
        return self._capacity

    def workers_summary(self) -> list[tuple[str, str, int, float]]:
        """(worker, host, builds, busy seconds), for the run's summary."""
        with self._lock:
            return [(name, t.host, t.builds, t.busy_seconds)
                    for name, t in sorted(self.tally.items())]

    # -- one build -------------------------------------------------------------------------
    def _run_remote(self, request: BuildRequest, payload: dict) -> object:
        from mirror_builder.cluster.task import run_build

        target = request.runtime.target
        key = f"build-{request.source.name}-{request.source.version}-{target}-{uuid.uuid4().hex[:8]}"
        future = self.client.submit(run_build, payload, key=key, pure=False, retries=0,
                                    resources={self._resource_for(target): 1})
        self.activity(request.label, f"waiting for a {target} worker")
        try:
            return future.result()
        except Exception as exc:  # what Dask raises, as plain errors (deserializers)
            raise _error(request, _explain(exc, target)) from None
        finally:
            future.release()

    def _resource_for(self, target: str) -> str:
        with self._lock:
            resource = self._resources.get(target)
        if resource is None:
            raise ClusterError(f"target {target}: its image was not checked against the "
                               f"cluster's workers (check_image) before building")
        return resource

    def _tree_blob(self, request: BuildRequest) -> str:
        tree = request.source.tree
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
        for ref in (request.source.sdist, *request.source.patches, *request.env.wheels):
            if self.cache.blob(ref.sha256).is_file():
                continue
            if self.cache.add_blob(ref.path) != ref.sha256:
                raise _error(request, f"{ref.path} changed since it was chosen for the build "
                                      f"(its sha256 is no longer {ref.sha256[:12]}...)")

    def _take_wheel(self, request: BuildRequest, outcome: RemoteOutcome) -> Path:
        """The worker's wheel, from the store by digest, checked as a local build's is."""
        name, digest = outcome.wheel or ("", "")
        if not name.endswith(".whl") or "/" in name or name.startswith(".") or "\0" in name:
            raise _error(request, f"the worker named its wheel {name!r}, which is not a wheel's "
                                  f"file name")
        dest = self.work_dir / f"{uuid.uuid4().hex[:8]}" / name
        try:
            self.cache.take_blob(digest, dest)
        except CorruptEntry as exc:
            raise _error(request, f"the worker's wheel did not arrive whole: {exc}") from None
        try:
            check_freeze((outcome.result or {}).get("freeze", ""), request)
            check_built_wheel(dest, request.source.name, Version(request.source.version))
        except WheelRejected as exc:
            shutil.rmtree(dest.parent, ignore_errors=True)
            raise _error(request, f"the build's wheel was rejected: {exc}") from None
        except BuildError:
            shutil.rmtree(dest.parent, ignore_errors=True)
            raise
        return dest

    def _append_log(self, request: BuildRequest, outcome: RemoteOutcome) -> None:
        worker = outcome.worker
        request.log_path.parent.mkdir(parents=True, exist_ok=True)
        with request.log_path.open("ab") as out:
            out.write(f"[mirror-builder] {request.label}: on worker {worker.get('name')} "
                      f"(host {worker.get('host')}, {worker.get('podman')}, image "
                      f"{worker.get('image_id', '?')[:12]})\n".encode())
            if outcome.log_sha256:
                try:
                    with self.cache.blob(outcome.log_sha256).open("rb") as log_file:
                        data = log_file.read()
                except OSError:
                    data = b"[mirror-builder] the worker's log did not arrive\n"
                if sha256_of_bytes(data) == outcome.log_sha256:
                    out.write(data)

    def _count(self, outcome: RemoteOutcome, seconds: float) -> None:
        name = outcome.worker.get("name", "?")
        with self._lock:
            tally = self.tally.setdefault(name, WorkerTally(host=outcome.worker.get("host", "")))
            tally.builds += 1
            tally.busy_seconds += seconds

    def _on_event(self, event) -> None:
        _, message = event
        if isinstance(message, dict) and message.get("phase") in ("fetching", "building",
                                                                  "uploading"):
            self.activity(str(message.get("package")),
                                   f"{message['phase']} on worker {message.get('worker_name')}")


def _explain(exc: Exception, target: str) -> str:
    text = str(exc)
    kind = type(exc).__name__
    if kind == "KilledWorker" or "died while running it" in text:
        return (f"the build killed its worker on every try (Dask's allowed-failures); {text}. "
                f"See that worker's log")
    if "valid worker" in text or kind == "NoValidWorkerError":
        return f"no worker serving target {target} is left in the cluster: {text}"
    if kind == "CancelledError" or "cancelled" in text.lower():
        return "the build was cancelled on the cluster (the scheduler went away?)"
    return f"the cluster could not run the build: {kind}: {text}"


def _error(request: BuildRequest, message: str) -> BuildError:
    return BuildError(message, package=request.source.name, version=request.source.version,
                      chain=request.chain, log_path=str(request.log_path))


def sha256_of_bytes(data: bytes) -> str:
    import hashlib
    return hashlib.sha256(data).hexdigest()

"""The only module that imports podman-py: a private podman service, and isolated runs in it.

    with PodmanService(state_dir) as podman:
        image = ImageManager(podman, cache_dir).ensure(target_settings)
        result = podman.run(RunSpec(image=image.tag, command=["python3", "-V"]), log_path)

Everything else asks for a run with mounts and gets back an exit status and a log file; no other
module builds a podman argument. Two workarounds for this kind of machine live in the shipped
containers.conf (runc unless crun can work, explicit ulimits), passed through CONTAINERS_CONF. Each
run's user namespace is a block of the subordinate ids that sandbox.userns checks, leased to it by
sandbox.idleases (not podman's --userns=auto, which deadlocks in podman 4.3).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mirror_builder import DATA_DIR
from mirror_builder.errors import ContainerError
from mirror_builder.sandbox.runend import LiveLog, wait_for_the_end
from mirror_builder.sandbox.serviceprocess import (accepts, alive, die_with_parent, oci_runtime,
                                                   reap, socket_dir)
from mirror_builder.sandbox.idleases import IdBlock, IdLeases
from mirror_builder.sandbox.userns import check_subordinate_ids, id_map_text

log = logging.getLogger(__name__)

CONTAINERS_CONF = DATA_DIR / "containers.conf"
# Every container we start carries the pid of the mirror-builder that owns it.
OWNER_LABEL = "io.mirror-builder.owner-pid"
# Debian architecture names -> OCI platform architectures.
OCI_ARCH = {"amd64": "amd64", "arm64": "arm64", "armhf": "arm/v7", "ppc64el": "ppc64le",
            "s390x": "s390x", "i386": "386", "riscv64": "riscv64"}


def podman_environment() -> dict[str, str]:
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(CONTAINERS_CONF)
    return env


@dataclass(frozen=True)
class Mount:
    """A host path in the container. A writable one is given to the run's user first (podman's
    U option chowns it, recursively and following no links, to the ids that user has on the host
    in the run's user namespace), so it must be a folder made for the run."""

    source: Path
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class Tmpfs:
    """A file system in the container's memory (counted against its memory limit), at most size
    (podman's notation: "512m")."""

    target: str
    size: str


@dataclass(frozen=True)
class RunSpec:
    """One isolated run of a command in an image."""

    image: str
    command: list[str]
    mounts: tuple[Mount, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    user: str = "1000:1000"
    network: bool = False
    timeout_seconds: float = 3600
    memory: str | None = None
    pids_limit: int | None = None
    cpus: float | None = None
    # Relative CPU weight against other containers (podman's default is 1024).
    cpu_shares: int | None = None
    # The image's file system read-only: only the mounts marked writable can be written.
    read_only_root: bool = False
    hostname: str | None = None  # None: podman's (the container's id)
    tmpfs: tuple[Tmpfs, ...] = ()


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    timed_out: bool
    seconds: float
    # The kernel's OOM killer ended a process of the container (its memory limit was reached).
    oom_killed: bool = False
    # The run's user namespace as podman set it up, in /proc/PID/uid_map's form: one
    # "inside outside count" line per range ("" if podman did not say).
    uid_map: str = ""
    gid_map: str = ""
    # Seconds of each podman round trip: create, start, wait (the run itself), finish (its
    # output and state read back).
    steps: dict[str, float] = field(default_factory=dict)


@dataclass
class Started:
    """A container podman has started, its run still to be waited for (PodmanService.run)."""

    client: Any  # its own podman-py client, closed once the run is over
    container: Any
    command: str
    began: float  # time.monotonic() of its run's start
    steps: dict[str, float]
    release: Callable[[], None]  # gives its user namespace's ids back, once it is removed

    def taken(self) -> None:
        """Its run begins now: it was started before, for a run to come. Its create and start
        were not on that run's way; how long it waited for it was."""
        now = time.monotonic()
        self.steps, self.began = {"warm": now - self.began}, now


class PodmanService:
    """A private `podman system service` for the length of a run, and podman-py on top of it."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._process: subprocess.Popen | None = None
        self._socket_dir: str | None = None
        self._client = None
        self._socket_path: Path | None = None
        self._serving_lock = threading.Lock()
        self._running: set[str] = set()
        self._running_lock = threading.Lock()
        self._removals: list[threading.Thread] = []
        self._id_leases: IdLeases | None = None

    def __enter__(self) -> "PodmanService":
        """Start the service and return at once: it takes 50 to 70 ms to listen, which the
        caller spends on its own set-up; the first use of the service waits for it."""
        if shutil.which("podman") is None:
            raise ContainerError("podman is not installed; run the README's set-up command (./setup.sh)")
        check_subordinate_ids()
        self._id_leases = IdLeases.for_machine()
        # A unix socket path must stay under ~100 bytes, so it lives in a short temp dir.
        self._socket_dir = socket_dir()
        self._socket_path = Path(self._socket_dir) / "podman.sock"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        service_log = (self.state_dir / "podman-service.log").open("ab")
        self.runtime = oci_runtime()
        self._process = subprocess.Popen(
            ["podman", "--runtime", self.runtime, "system", "service", "--time=0",
             f"unix://{self._socket_path}"],
            env=podman_environment(), stdout=service_log, stderr=service_log,
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent)
        service_log.close()
        return self

    @property
    def client(self):
        """podman-py's client of the service, once the service listens."""
        self._wait_until_serving()
        return self._client

    @property
    def _base_url(self) -> str:
        self._wait_until_serving()
        return f"unix://{self._socket_path}"

    def _wait_until_serving(self) -> None:
        with self._serving_lock:
            if self._client is not None:
                return
            if self._process is None or self._socket_path is None:
                raise ContainerError("the podman service is not running")
            deadline = time.monotonic() + 20
            # Listening, not only there: the socket file exists a moment before the service
            # accepts on it (a request then was refused once in CI).
            while not accepts(self._socket_path):
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise ContainerError("podman system service did not start; see "
                                         f"{self.state_dir / 'podman-service.log'}")
                time.sleep(0.005)
            import podman  # the one import of podman-py in the project

            self._client = podman.PodmanClient(base_url=f"unix://{self._socket_path}")
        self._remove_orphans()

    def _remove_orphans(self) -> None:
        """Remove containers left by runs that were killed (their owner process is gone)."""
        from podman.errors import APIError

        try:
            # Filtered here: podman-py's label filter answered nothing on this podman (4.3).
            containers = self.client.containers.list(all=True)
        except APIError:
            return
        for container in containers:
            owner = (container.labels or {}).get(OWNER_LABEL, "")
            if owner.isdigit() and not alive(int(owner)):
                log.info("removing container %s left by a run that was killed", container.id[:12])
                _kill_and_remove(container, APIError)

    def __exit__(self, *exc_info) -> None:
        for thread in list(self._removals):
            thread.join(timeout=30)
        self.kill_running()
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._process is not None:
            # Asked to end but not waited for: its own shutdown (10 to 170 ms, measured) is no
            # part of the run. Nothing of ours runs in it any more.
            self._process.terminate()
            threading.Thread(target=reap, args=(self._process,), name="podman service's end",
                             daemon=True).start()
            self._process = None
        if self._socket_dir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    def kill_running(self) -> None:
        """Stop every container this service started that is still running (an interrupted run
        must not leave builds behind)."""
        with self._running_lock:
            running = list(self._running)
        if not running or self._client is None:
            return
        from podman.errors import APIError

        for container_id in running:
            try:
                container = self.client.containers.get(container_id)
            except APIError:
                continue
            _kill_and_remove(container, APIError)

    # -- runs ------------------------------------------------------------------------------
    def run(self, spec: RunSpec, log_path: Path,
            on_started: Callable[[str, str, dict[str, float]], None] | None = None,
            started: Started | None = None) -> RunResult:
        """Run spec.command to completion, streaming its output into log_path. Safe to call from
        several threads: each run has its own API client. on_started is given the user
        namespace podman set up (uid_map, gid_map text) and the round trips so far once the
        container runs, for a caller that takes something from it before it ends. started: a
        container start()ed before and taken() for this run (its spec's mounts and command;
        spec's timeout, counted from now)."""
        if started is None:
            started = self.start(spec)
        try:
            return self._finish(started, spec.timeout_seconds, log_path, on_started)
        finally:
            started.client.close()

    def start(self, spec: RunSpec) -> Started:
        """Create and start a container for spec; run() it (or discard() it) later."""
        import podman
        from podman.errors import APIError

        assert self._id_leases is not None, "PodmanService used outside its with block"
        client = podman.PodmanClient(base_url=self._base_url)
        lease = self._id_leases.lease()
        began = time.monotonic()
        steps: dict[str, float] = {}
        try:
            container = client.containers.create(spec.image, spec.command,
                                                 **_create_options(spec, lease.block))
            steps["create"] = time.monotonic() - began
        except BaseException as exc:
            lease.release()
            client.close()
            if isinstance(exc, APIError):
                raise ContainerError(f"cannot create a container from {spec.image}: {exc}") from None
            raise
        with self._running_lock:
            self._running.add(container.id)
        started = Started(client, container, spec.command[0], began, steps, lease.release)
        try:
            before = time.monotonic()
            try:
                container.start()
                steps["start"] = time.monotonic() - before
                container.reload()  # its first process's pid, for the wait
            except APIError as exc:
                if not started_despite(container, exc, APIError):
                    raise
                steps.setdefault("start", time.monotonic() - before)
        except BaseException as exc:
            self.discard(started)
            if isinstance(exc, APIError):
                raise ContainerError(f"podman failed to start {spec.command[0]}: {exc}") from None
            raise
        return started

    def discard(self, started: Started) -> None:
        """Remove a started container that was never run (in the background)."""
        self._remove_later(started.container.id, started.release, kill=True)
        started.client.close()

    def _finish(self, started: Started, timeout_seconds: float, log_path: Path,
                on_started: Callable[[str, str, dict[str, float]], None] | None) -> RunResult:
        from podman.errors import APIError

        container, steps = started.container, started.steps
        log_path.parent.mkdir(parents=True, exist_ok=True)
        header = log_path.stat().st_size if log_path.exists() else 0
        live = LiveLog(log_path)
        timed_out = threading.Event()

        def on_timeout() -> None:
            timed_out.set()
            try:
                container.kill()
            except APIError:
                pass

        timer = threading.Timer(timeout_seconds, on_timeout)
        try:
            timer.start()
            if on_started is not None:
                maps = (container.attrs.get("HostConfig") or {}).get("IDMappings") or {}
                on_started(id_map_text(maps.get("UidMap")), id_map_text(maps.get("GidMap")),
                           dict(steps))
            exit_code, oom_killed, id_mappings = wait_for_the_end(container, live, header, steps)
        except APIError as exc:
            raise ContainerError(f"podman failed while running {started.command}: {exc}") from None
        finally:
            timer.cancel()
            # The build's result is in; removing its container need not hold anyone up. Its
            # ids are another container's only once it is gone.
            self._remove_later(container.id, started.release)
        if timed_out.is_set():
            with log_path.open("a") as out:
                out.write(f"\n[mirror-builder] killed after the {timeout_seconds:.0f} s timeout\n")
        return RunResult(exit_code=int(exit_code), timed_out=timed_out.is_set(),
                         seconds=time.monotonic() - started.began, oom_killed=oom_killed,
                         steps=steps, uid_map=id_map_text(id_mappings.get("UidMap")),
                         gid_map=id_map_text(id_mappings.get("GidMap")))

    def _remove_later(self, container_id: str, then: Callable[[], None],
                      kill: bool = False) -> None:
        """Remove a container on a thread of its own (killed first: one still running), then
        call then()."""
        import podman
        from podman.errors import APIError

        def remove() -> None:
            try:
                with podman.PodmanClient(base_url=self._base_url) as client:
                    container = client.containers.get(container_id)
                    if kill:
                        _kill_and_remove(container, APIError)
                    else:
                        container.remove(force=True)
            except (APIError, OSError):
                pass
            finally:
                with self._running_lock:
                    self._running.discard(container_id)
                then()

        thread = threading.Thread(target=remove, name=f"remove {container_id[:12]}", daemon=True)
        with self._running_lock:
            self._removals.append(thread)
        thread.start()

    def image_id(self, tag: str) -> str | None:
        from podman.errors import ImageNotFound

        try:
            return self.client.images.get(tag).id
        except ImageNotFound:
            return None

    def build_image(self, context: Path, containerfile: Path, tag: str,
                    buildargs: dict[str, str], log_path: Path, arch: str | None = None) -> str:
        from podman.errors import APIError, BuildError

        try:
            # The platform must be given for a foreign architecture, or podman looks for (and
            # tries to pull) the host architecture's variant of the base image.
            image, lines = self.client.images.build(
                path=str(context), dockerfile=str(containerfile), tag=tag, buildargs=buildargs,
                rm=True, forcerm=True, timeout=7200,
                platform=f"linux/{OCI_ARCH.get(arch, arch)}" if arch else None)
            with log_path.open("a") as out:
                for line in lines:
                    out.write(line.decode() if isinstance(line, bytes) else str(line))
        except (APIError, BuildError) as exc:
            build_log = getattr(exc, "build_log", None) or []
            with log_path.open("a") as out:
                for line in build_log:
                    out.write(line.decode() if isinstance(line, bytes) else str(line))
            # podman's message ends with a newline; the CLI prints an error as one line.
            raise ContainerError(f"building image {tag} failed: {str(exc).strip()}; "
                                 f"log: {log_path}") from None
        return image.id


# Podman 4.3 reads a container's cgroup from /proc as it starts it and as it is inspected; a
# command that ends at once (dpkg-query listing an image's packages) may be gone by then.
GONE_TOO_SOON = "no such process"


def started_despite(container: Any, exc: Exception, api_error: type[Exception],
                    tries: int = 10, pause: float = 0.05) -> bool:
    """Whether a container podman said it failed to start (or to inspect just after) did start:
    its error is the one above, and once podman has seen the process end it says the container
    runs or has run (its end and output are then read as any other's)."""
    if GONE_TOO_SOON not in str(exc):
        return False
    for _ in range(tries):
        time.sleep(pause)
        try:
            container.reload()
        except api_error as again:
            if GONE_TOO_SOON in str(again):
                continue
            return False
        return (container.attrs.get("State") or {}).get("Status") in ("running", "exited",
                                                                        "stopped")
    return False


def _create_options(spec: RunSpec, ids: IdBlock) -> dict[str, Any]:
    """podman-py's containers.create() arguments for spec, past the image and the command; its
    user namespace maps the ids 0 .. ids.size-1 to the block ids."""
    kwargs: dict[str, Any] = dict(
        mounts=[{"type": "bind", "source": str(m.source), "target": m.target,
                 "read_only": m.read_only,
                 # podman-py's name for the U option (see Mount)
                 "chown": not m.read_only} for m in spec.mounts] +
               [{"type": "tmpfs", "source": "tmpfs", "target": t.target, "size": t.size,
                 "mode": "1777"} for t in spec.tmpfs],
        environment=spec.environment,
        working_dir=spec.workdir,
        user=spec.user,
        # Always: a process that escaped the container is an id no account has, and no other
        # live container's. With overlay on this kernel the image's layers are mapped, not
        # copied: no cost per run. Podman 4.3's API needs both the mode and the mappings.
        userns_mode="private",
        idmappings=ids.podman_mappings(),
        cap_drop=["ALL"],
        no_new_privileges=True,
        labels={OWNER_LABEL: str(os.getpid())},
    )
    if not spec.network:
        kwargs["network_mode"] = "none"
    if spec.read_only_root:
        kwargs["read_only"] = True
    if spec.memory:
        kwargs["mem_limit"] = spec.memory
        # Without this, podman lets a container use as much swap again as its memory limit.
        kwargs["memswap_limit"] = spec.memory
    if spec.pids_limit:
        kwargs["pids_limit"] = spec.pids_limit
    if spec.cpu_shares:
        kwargs["cpu_shares"] = spec.cpu_shares
    if spec.hostname:
        kwargs["hostname"] = spec.hostname
    if spec.cpus:
        kwargs["cpu_period"] = 100_000
        kwargs["cpu_quota"] = int(spec.cpus * 100_000)
    return kwargs


def _kill_and_remove(container, APIError) -> None:
    """Kill first: the driver, the container's first process, ignores the SIGTERM a forced
    removal sends, and podman would wait 10 s before it kills."""
    for step in (container.kill, lambda: container.remove(force=True)):
        try:
            step()
        except APIError:
            pass

"""The only module that talks to podman: the service, images, and isolated runs.

    with PodmanService(state_dir) as podman:
        image = ImageManager(podman, cache_dir).ensure(target_settings)
        result = podman.run(RunSpec(image=image.tag, command=["python3", "-V"]), log_path)

Everything else asks for a run with mounts and gets back an exit status and a log file; no other
module builds a podman argument. Two workarounds for this kind of machine live in the shipped
containers.conf (runc instead of crun, explicit ulimits), passed through CONTAINERS_CONF.

Every run has a user namespace of its own (podman's --userns=auto): its ids, root and the builder
user included, are ids from the subordinate range of "containers" in /etc/subuid and /etc/subgid
(./setup.sh adds it), which no account on the host has. A process that escaped would be nobody.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from mirror_builder import DATA_DIR
from mirror_builder.errors import ContainerError
from mirror_builder.files import sha256_of
from mirror_builder.config.settings import TargetSettings
from mirror_builder.resolve.target import PROBE_SCRIPT

log = logging.getLogger(__name__)

CONTAINERS_CONF = DATA_DIR / "containers.conf"
# Every container we start carries the pid of the mirror-builder that owns it.
OWNER_LABEL = "io.mirror-builder.owner-pid"
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SECURITY = "http://deb.debian.org/debian-security"
# Podman's --userns=auto (as root) takes each container's ids from this name's subordinate ranges.
SUBID_NAME = "containers"
SUBUID_FILE = Path("/etc/subuid")
SUBGID_FILE = Path("/etc/subgid")
# What ./setup.sh adds when the name has no range (podman's documented example).
SUBID_DEFAULT = "containers:2147483647:2147483648"


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


@dataclass(frozen=True)
class IdRange:
    """A subordinate id range: count ids from start."""

    start: int
    count: int

    def __contains__(self, host_id: object) -> bool:
        return isinstance(host_id, int) and self.start <= host_id < self.start + self.count


def subordinate_ids(path: Path, name: str = SUBID_NAME) -> tuple[IdRange, ...]:
    """name's ranges in a subordinate id file (/etc/subuid or /etc/subgid)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return ()
    ranges = []
    for line in lines:
        fields = line.strip().split(":")
        if len(fields) == 3 and fields[0] == name and fields[1].isdigit() and fields[2].isdigit() \
                and int(fields[2]) > 0:
            ranges.append(IdRange(int(fields[1]), int(fields[2])))
    return tuple(ranges)


def check_subordinate_ids(subuid: Path = SUBUID_FILE, subgid: Path = SUBGID_FILE) -> None:
    """Containers cannot start without ids for their user namespaces: say how to add them
    (podman's own message is "could not find enough available IDs")."""
    for path in (subuid, subgid):
        if not subordinate_ids(path):
            raise ContainerError(
                f"containers run in user namespaces of their own, which need a subordinate id "
                f"range for \"{SUBID_NAME}\" in {path}; run ./setup.sh (it adds "
                f"{SUBID_DEFAULT} to /etc/subuid and /etc/subgid) or add a free range there")


def id_map_text(text: object) -> str:
    """A uid_map/gid_map in one canonical form, "inside outside count" per line, from
    /proc/PID/uid_map's columns or podman's "inside:outside:count" entries ("" if malformed)."""
    if isinstance(text, list | tuple):
        text = "\n".join(str(entry) for entry in text)
    if not isinstance(text, str):
        return ""
    lines = []
    for line in text.replace(":", " ").splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3 or not all(f.isdigit() for f in fields):
            return ""
        lines.append(" ".join(str(int(f)) for f in fields))
    return "\n".join(lines)


def give_back(path: Path) -> None:
    """Make what a container wrote at path (a file, or a folder and all it holds) the host user's
    again: lchown every entry, following no links. Only for paths made for that run, and only
    after it ended."""
    uid, gid = os.getuid(), os.getgid()
    os.lchown(path, uid, gid)
    if path.is_symlink() or not path.is_dir():
        return
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


@dataclass(frozen=True)
class ImageRef:
    """A build image and what it was made from, for the build record."""

    tag: str
    id: str
    base: str
    containerfile: str
    containerfile_sha256: str
    target: str
    # The Debian packages in the image, "name=version", for the build record.
    system_packages: tuple[str, ...] = ()
    # For a per-package layer: the packages it added to the target image.
    layer_packages: tuple[str, ...] = ()


class PodmanService:
    """A private `podman system service` for the length of a run, and podman-py on top of it."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._process: subprocess.Popen | None = None
        self._socket_dir: str | None = None
        self.client = None
        self._base_url = ""
        self._running: set[str] = set()
        self._running_lock = threading.Lock()
        self._removals: list[threading.Thread] = []

    def __enter__(self) -> "PodmanService":
        if shutil.which("podman") is None:
            raise ContainerError("podman is not installed; run the README's set-up command (./setup.sh)")
        check_subordinate_ids()
        import podman  # the one import of podman-py in the project

        # A unix socket path must stay under ~100 bytes, so it lives in a short temp dir.
        self._socket_dir = tempfile.mkdtemp(prefix="mb-podman-")
        socket_path = Path(self._socket_dir) / "podman.sock"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        service_log = (self.state_dir / "podman-service.log").open("ab")
        self._process = subprocess.Popen(
            ["podman", "system", "service", "--time=0", f"unix://{socket_path}"],
            env=podman_environment(), stdout=service_log, stderr=service_log,
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
        service_log.close()
        deadline = time.monotonic() + 20
        while not socket_path.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise ContainerError(
                    f"podman system service did not start; see {self.state_dir / 'podman-service.log'}")
            time.sleep(0.05)
        self._base_url = f"unix://{socket_path}"
        self.client = podman.PodmanClient(base_url=self._base_url)
        self._remove_orphans()
        return self

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
            if owner.isdigit() and not _alive(int(owner)):
                log.info("removing container %s left by a run that was killed", container.id[:12])
                try:
                    container.remove(force=True)
                except APIError:
                    pass

    def __exit__(self, *exc_info) -> None:
        for thread in list(self._removals):
            thread.join(timeout=30)
        self.kill_running()
        if self.client is not None:
            self.client.close()
            self.client = None
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._process = None
        if self._socket_dir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    def kill_running(self) -> None:
        """Stop every container this service started that is still running (an interrupted run
        must not leave builds behind)."""
        with self._running_lock:
            running = list(self._running)
        if not running or self.client is None:
            return
        from podman.errors import APIError

        for container_id in running:
            try:
                self.client.containers.get(container_id).remove(force=True)
            except APIError:
                pass

    # -- runs ------------------------------------------------------------------------------
    def run(self, spec: RunSpec, log_path: Path) -> RunResult:
        """Run spec.command to completion, streaming its output into log_path. Safe to call from
        several threads: each run has its own API client."""
        import podman
        from podman.errors import APIError

        with podman.PodmanClient(base_url=self._base_url) as client:
            return self._run(client, spec, log_path, APIError)

    def _run(self, client, spec: RunSpec, log_path: Path, APIError) -> RunResult:
        kwargs = dict(
            mounts=[{"type": "bind", "source": str(m.source), "target": m.target,
                     "read_only": m.read_only,
                     # podman-py's name for the U option (see Mount)
                     "chown": not m.read_only} for m in spec.mounts],
            environment=spec.environment,
            working_dir=spec.workdir,
            user=spec.user,
            # Always: a process that escaped the container is an id no account has. With
            # overlay on this kernel the image's layers are mapped, not copied: no cost per run.
            # Podman 4.3's API needs both: the mode alone is ignored, the mappings alone too.
            userns_mode="auto",
            idmappings={"AutoUserNs": True},
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
        if spec.cpus:
            kwargs["cpu_period"] = 100_000
            kwargs["cpu_quota"] = int(spec.cpus * 100_000)
        started = time.monotonic()
        try:
            container = client.containers.create(spec.image, spec.command, **kwargs)
        except APIError as exc:
            raise ContainerError(f"cannot create a container from {spec.image}: {exc}") from None
        with self._running_lock:
            self._running.add(container.id)
        timed_out = threading.Event()

        def on_timeout() -> None:
            timed_out.set()
            try:
                container.kill()
            except APIError:
                pass

        timer = threading.Timer(spec.timeout_seconds, on_timeout)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        header = log_path.stat().st_size if log_path.exists() else 0
        live = _LiveLog(log_path)
        try:
            container.start()
            timer.start()
            # A live copy of the output for `tail -f`, while the build runs ...
            threading.Thread(target=live.follow, args=(container,), daemon=True).start()
            # ... and the exit noticed within 10 ms: podman's default is to poll every 250 ms,
            # which was a quarter of a second on every build.
            exit_code = container.wait(interval="10ms")
            if isinstance(exit_code, dict):
                exit_code = int(exit_code.get("StatusCode", 1))
            # The complete output, in one read, replaces the live copy.
            output = b"".join(c if isinstance(c, bytes) else str(c).encode()
                              for c in container.logs(stream=False, stdout=True, stderr=True))
            live.finish(header, output)
            container.reload()
            oom_killed = bool(container.attrs.get("State", {}).get("OOMKilled"))
            id_mappings = (container.attrs.get("HostConfig") or {}).get("IDMappings") or {}
        except APIError as exc:
            raise ContainerError(f"podman failed while running {spec.command[0]}: {exc}") from None
        finally:
            timer.cancel()
            # The build's result is in; removing its container need not hold anyone up.
            self._remove_later(container.id)
        if timed_out.is_set():
            with log_path.open("a") as out:
                out.write(f"\n[mirror-builder] killed after the {spec.timeout_seconds:.0f} s timeout\n")
        return RunResult(exit_code=int(exit_code), timed_out=timed_out.is_set(),
                         seconds=time.monotonic() - started, oom_killed=oom_killed,
                         uid_map=id_map_text(id_mappings.get("UidMap")),
                         gid_map=id_map_text(id_mappings.get("GidMap")))

    def _remove_later(self, container_id: str) -> None:
        import podman
        from podman.errors import APIError

        def remove() -> None:
            try:
                with podman.PodmanClient(base_url=self._base_url) as client:
                    client.containers.get(container_id).remove(force=True)
            except (APIError, OSError):
                pass
            finally:
                with self._running_lock:
                    self._running.discard(container_id)

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
            raise ContainerError(f"building image {tag} failed: {exc}; log: {log_path}") from None
        return image.id


class ImageManager:
    """Builds each target's image once and reuses it until its inputs change."""

    def __init__(self, podman: PodmanService, cache_dir: Path) -> None:
        self.podman = podman
        self.cache_dir = cache_dir / "images"

    def base_tag(self, target: TargetSettings) -> str:
        return f"localhost/mirror-builder-base:{target.distribution}-{target.arch}"

    def ensure_base(self, target: TargetSettings) -> str:
        """The base root filesystem, made from Debian's packages (no registry is reachable)."""
        tag = self.base_tag(target)
        check_emulation(target)
        if self.podman.image_id(tag):
            return tag
        if shutil.which("mmdebstrap") is None:
            raise ContainerError("mmdebstrap is not installed; run the README's set-up command")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        log.info("making base image %s from Debian's packages (about a minute)", tag)
        with tempfile.TemporaryDirectory(dir=self.cache_dir) as tmp:
            tarball = Path(tmp) / "rootfs.tar"
            suite = target.distribution
            sources = [f"deb {DEBIAN_MIRROR} {suite} main", f"deb {DEBIAN_MIRROR} {suite}-updates main",
                       f"deb {DEBIAN_SECURITY} {suite}-security main"]
            self._check_call(["mmdebstrap", "--variant=minbase", f"--arch={target.arch}",
                              f"--include={BASE_PACKAGES}", suite, str(tarball), *sources], tag)
            self._check_call(["podman", "import", "--arch", target.arch, str(tarball), tag], tag)
        return tag

    def _check_call(self, command: list[str], tag: str) -> None:
        log_path = self.cache_dir / "base-image.log"
        with log_path.open("a") as out:
            proc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT,
                                  env=podman_environment())
        if proc.returncode != 0:
            raise ContainerError(f"making {tag} failed at `{' '.join(command[:2])}`; log: {log_path}")

    def ensure(self, target: TargetSettings) -> ImageRef:
        """The target's build image, rebuilt only when its Containerfile, uv or base changes."""
        containerfile = target.containerfile
        if not containerfile.is_file():
            raise ContainerError(f"target {target.name}: Containerfile {containerfile} not found")
        base_tag = self.ensure_base(target)
        base_id = self.podman.image_id(base_tag) or ""
        uv_binary = self._uv_for(target.arch)
        content = containerfile.read_bytes()
        containerfile_sha = hashlib.sha256(content).hexdigest()
        key = hashlib.sha256(b"\0".join([
            content, sha256_of(uv_binary).encode(), base_id.encode(), target.arch.encode(),
        ])).hexdigest()[:16]
        tag = f"localhost/mirror-builder-{target.name}:{key}"
        image_id = self.podman.image_id(tag)
        if image_id is None:
            log.info("building image %s for target %s (a few minutes, once)", tag, target.name)
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=self.cache_dir) as tmp:
                context = Path(tmp)
                shutil.copy2(containerfile, context / "Containerfile")
                shutil.copy2(uv_binary, context / "uv")
                image_id = self.podman.build_image(
                    context, context / "Containerfile", tag, {"BASE_IMAGE": base_tag},
                    self.cache_dir / f"{target.name}-build.log", arch=target.arch)
        return ImageRef(tag=tag, id=image_id, base=f"{base_tag}@{base_id}",
                        containerfile=str(containerfile), containerfile_sha256=containerfile_sha,
                        target=target.name, system_packages=self._system_packages(tag, image_id))

    def _system_packages(self, tag: str, image_id: str) -> tuple[str, ...]:
        """dpkg's list of the image's packages with versions, read once per image."""
        cached = self.cache_dir / f"{image_id}.packages.txt"
        if not cached.is_file():
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory() as tmp:
                log_path = Path(tmp) / "dpkg.log"
                result = self.podman.run(RunSpec(
                    image=tag, command=["dpkg-query", "-W", "-f", "${Package}=${Version}\\n"],
                    timeout_seconds=120), log_path)
                if result.exit_code != 0:
                    raise ContainerError(f"image {tag}: cannot list its packages: "
                                         f"{log_path.read_text()[-300:]}")
                cached.write_text(log_path.read_text())
        return tuple(line for line in cached.read_text().splitlines() if "=" in line)

    def with_system_packages(self, image: ImageRef, packages: tuple[str, ...]) -> ImageRef:
        """A layer on the target image with a package's extra Debian packages. Named by its
        content, so packages that need the same set share one image, and no package's needs
        bloat every build."""
        if not packages:
            return image
        wanted = sorted(set(packages))
        key = hashlib.sha256("\n".join([image.id, *wanted]).encode()).hexdigest()[:16]
        tag = f"{image.tag.rsplit(':', 1)[0]}-layer:{key}"
        image_id = self.podman.image_id(tag)
        if image_id is None:
            log.info("adding %s to %s (once for this set of packages)", " ".join(wanted), image.tag)
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=self.cache_dir) as tmp:
                context = Path(tmp)
                (context / "Containerfile").write_text(
                    f"FROM {image.tag}\nUSER root\n"
                    "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
                    f"--no-install-recommends {' '.join(wanted)} && rm -rf /var/lib/apt/lists/*\n")
                image_id = self.podman.build_image(context, context / "Containerfile", tag, {},
                                                   self.cache_dir / f"layer-{key}.log",
                                                   arch=self._arch_of(image))
        return ImageRef(tag=tag, id=image_id, base=f"{image.tag}@{image.id}",
                        containerfile=image.containerfile,
                        containerfile_sha256=image.containerfile_sha256, target=image.target,
                        system_packages=self._system_packages(tag, image_id),
                        layer_packages=tuple(wanted))

    def _uv_for(self, arch: str) -> Path:
        """The uv binary for the image: ours for the host's architecture; for another, the same
        uv version's wheel for that architecture from PyPI (its binary is what the wheel holds)."""
        from mirror_builder.config.settings import host_debian_arch

        native = _uv_binary()
        if arch == host_debian_arch():
            return native
        version = subprocess.run([str(native), "--version"], capture_output=True, text=True,
                                 check=True).stdout.split()[1]
        folder = self.cache_dir / f"uv-{version}-{arch}"
        binary = folder / "uv"
        if binary.is_file():
            return binary
        platform = {"arm64": "manylinux2014_aarch64", "amd64": "manylinux2014_x86_64",
                    "ppc64el": "manylinux2014_ppc64le", "s390x": "manylinux2014_s390x",
                    "armhf": "manylinux2014_armv7l"}.get(arch)
        if platform is None:
            raise ContainerError(f"no uv binary is published for {arch}")
        download = folder / "download"
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                               "--only-binary", ":all:", "--platform", platform, "-d", str(download),
                               f"uv=={version}"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise ContainerError(f"cannot fetch uv {version} for {arch}: {proc.stderr.strip()[-300:]}")
        (wheel,) = download.glob("*.whl")
        with zipfile.ZipFile(wheel) as zf:
            (member,) = [n for n in zf.namelist() if n.endswith("/scripts/uv")]
            binary.write_bytes(zf.read(member))
        binary.chmod(0o755)
        return binary

    def _arch_of(self, image: ImageRef) -> str | None:
        try:
            return self.podman.client.images.get(image.tag).attrs.get("Architecture")
        except Exception:  # only a hint for podman; the build says so if it is wrong
            return None

    def marker_environment(self, image: ImageRef) -> dict[str, str]:
        """PEP 508 marker values of the image's python3, measured once per image."""
        cached = self.cache_dir / f"{image.id}.markers.json"
        if cached.is_file():
            return json.loads(cached.read_text())
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            log_path = Path(tmp) / "probe.log"
            result = self.podman.run(RunSpec(image=image.tag, command=["python3", "-c", PROBE_SCRIPT],
                                             timeout_seconds=120), log_path)
            output = log_path.read_text()
        if result.exit_code != 0:
            raise ContainerError(f"image {image.tag}: python3 does not run: {output.strip()[-500:]}")
        markers = json.loads(output.strip().splitlines()[-1])
        cached.write_text(json.dumps(markers, indent=2))
        return markers


class _LiveLog:
    """Appends a container's output to its log while it runs; finish() writes the final copy."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done = False
        self.lock = threading.Lock()

    def follow(self, container) -> None:
        try:
            for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=True):
                with self.lock:
                    if self.done:
                        return
                    with self.path.open("ab") as out:
                        out.write(chunk if isinstance(chunk, bytes) else str(chunk).encode())
        except Exception:  # the live copy is a convenience; the final copy is what counts
            return

    def finish(self, header: int, output: bytes) -> None:
        with self.lock:
            self.done = True
            with self.path.open("r+b") if self.path.exists() else self.path.open("wb") as out:
                out.seek(header)
                out.truncate()
                out.write(output)


# Debian architecture names -> OCI platform architectures.
OCI_ARCH = {"amd64": "amd64", "arm64": "arm64", "armhf": "arm/v7", "ppc64el": "ppc64le",
            "s390x": "s390x", "i386": "386", "riscv64": "riscv64"}
QEMU_NAMES = {"arm64": "aarch64", "armhf": "arm", "ppc64el": "ppc64le", "s390x": "s390x",
              "riscv64": "riscv64", "amd64": "x86_64", "i386": "i386"}


def check_emulation(target: TargetSettings, binfmt: Path = Path("/proc/sys/fs/binfmt_misc")) -> None:
    """A foreign architecture runs under qemu user emulation; say what is missing if it is not
    set up (./setup.sh prepares it when settings.yaml has a foreign target)."""
    from mirror_builder.config.settings import host_debian_arch

    if target.arch == host_debian_arch() or (target.arch == "i386" and host_debian_arch() == "amd64"):
        return
    qemu = QEMU_NAMES.get(target.arch, target.arch)
    if not (binfmt / "status").exists():
        raise ContainerError(f"target {target.name} ({target.arch}) needs qemu user emulation, but "
                             f"binfmt_misc is not mounted; run ./setup.sh (it installs "
                             f"qemu-user-static and mounts binfmt_misc)")
    if not (binfmt / f"qemu-{qemu}").exists():
        raise ContainerError(f"target {target.name} ({target.arch}) needs qemu-{qemu} registered "
                             f"with binfmt_misc; run ./setup.sh (it installs qemu-user-static)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _die_with_parent() -> None:
    """In the podman service's process: get SIGTERM when mirror-builder dies, however it dies,
    so no service is left behind (Linux's PR_SET_PDEATHSIG)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


def _uv_binary() -> Path:
    try:
        import uv

        return Path(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found:
            return Path(found)
    raise ContainerError("the uv binary is not installed beside mirror-builder; reinstall the package")


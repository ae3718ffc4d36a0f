"""Build one package version for one target, in a network-less container.

Inputs are files and names (the prepared source, the exact wheels of its build environment, the
image, limits); outputs are files (the wheel, its pip freeze, its log). Bootstrap and rebuild both
call this one step, and a scheduler could hand it to another machine without the rest noticing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import packaging
import pyproject_hooks
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from mirror_builder.prepare.buildsystem import BuildSystem
from mirror_builder.sandbox import DRIVER
from mirror_builder.sandbox.containers import (ImageRef, Mount, PodmanService, RunResult, RunSpec,
                                       give_back, id_map_text)
from mirror_builder.errors import BuildError
from mirror_builder.config.settings import BuildSettings
from mirror_builder.prepare.sources import PreparedSource
from mirror_builder.build.wheelcheck import WheelRejected, check_built_wheel

log = logging.getLogger(__name__)

BUILDER_UID = 1000  # the image's unprivileged "builder" user (in the run's user namespace)


@dataclass(frozen=True)
class BuildRequest:
    source: PreparedSource
    build_system: BuildSystem
    env_wheels: tuple[Path, ...]
    image: ImageRef
    limits: BuildSettings
    log_path: Path
    environment: Mapping[str, str] = field(default_factory=dict)
    config_settings: Mapping[str, str] = field(default_factory=dict)
    jobs: int = 2
    chain: tuple[str, ...] = ()
    # The project's folder inside the source tree (overrides' build_dir), "" for the root.
    project_dir: str = ""
    cpus: float | None = None

    @property
    def label(self) -> str:
        return f"{self.source.name}=={self.source.version}"


@dataclass(frozen=True)
class BuildOutcome:
    status: Literal["built", "needs"]
    wheel: Path | None
    backend_requires: tuple[str, ...]
    missing: tuple[str, ...]
    freeze: str
    log_path: Path
    command: tuple[str, ...]
    started_at: str
    ended_at: str
    seconds: float
    container_seconds: float
    timings: Mapping[str, float]
    environment: Mapping[str, str] = field(default_factory=dict)
    # The build container's user namespace: {"uid_map": ..., "gid_map": ...} (see RunResult).
    user_namespace: Mapping[str, str] = field(default_factory=dict)


class Builder:
    """Runs the in-container driver (see _driver.py) for each build request."""

    def __init__(self, podman: PodmanService, state_dir: Path) -> None:
        self.podman = podman
        self.state_dir = state_dir
        self.driver_dir = _assemble_driver(state_dir / "driver")

    def build(self, request: BuildRequest, work_dir: Path) -> BuildOutcome:
        label = request.label
        wheel_mounts = []
        container_wheels = []
        for wheel in request.env_wheels:
            target = f"/wheels/{wheel.name}"
            wheel_mounts.append(Mount(wheel, target))
            container_wheels.append(target)
        job = {
            "source": "/src",
            "project_dir": request.project_dir,
            "out": "/out",
            "wheels": container_wheels,
            "wheels_dir": "/wheels",
            "backend": request.build_system.backend,
            "backend_path": list(request.build_system.backend_path),
            "config_settings": dict(request.config_settings),
            "environment": dict(request.environment),
            "jobs": request.jobs,
            "source_date_epoch": _source_date_epoch(request.source.sdist),
        }
        folders = JobFolders.create(work_dir, job)
        out_dir, job_dir, scratch = folders.out, folders.job, folders.scratch
        command = ("python3", "/mb/mb_driver.py", "/job/job.json")
        spec = RunSpec(
            image=request.image.tag,
            command=list(command),
            mounts=(Mount(request.source.tree, "/src"), Mount(job_dir, "/job"),
                    Mount(self.driver_dir, "/mb"), Mount(out_dir, "/out", read_only=False),
                    Mount(scratch, "/tmp", read_only=False), *wheel_mounts),
            environment={"HOME": "/tmp/mb-home", "LANG": "C.UTF-8"},
            workdir="/tmp",
            user=f"{BUILDER_UID}:{BUILDER_UID}",
            network=False,
            timeout_seconds=request.limits.timeout_seconds,
            memory=request.limits.memory,
            pids_limit=request.limits.pids_limit,
            cpus=request.cpus,
            read_only_root=True,
        )
        started_at = datetime.now(timezone.utc)
        started = time.monotonic()
        request.log_path.parent.mkdir(parents=True, exist_ok=True)
        with request.log_path.open("a") as log_file:
            log_file.write(f"[mirror-builder] {label}: image {request.image.tag}, network none, "
                           f"{len(request.env_wheels)} wheels in the build environment\n")
        try:
            run = self.podman.run(spec, request.log_path)
            result, unreadable = read_result(out_dir)
            if run.timed_out:
                raise self._error(request, f"build timed out after {request.limits.timeout_seconds} s "
                                           f"(the timeout setting, or the package's timeout override)")
            if run.exit_code != 0 or result.get("status") not in ("built", "needs"):
                reason = result.get("error") or unreadable or \
                    f"the build container exited with status {run.exit_code}"
                if run.oom_killed and "memory limit" not in reason:
                    reason += f" (the memory limit ({request.limits.memory}) killed a process)"
                raise self._error(request, f"{reason}{_tail(request.log_path)}")
            user_namespace = _user_namespace(result.get("user_namespace"), run, request)
            wheel = None
            if result["status"] == "built":
                built = _built_wheel(out_dir, result.get("wheel"),
                                     lambda message: self._error(request, message))
                _check_freeze(result.get("freeze", ""), request)
                try:
                    check_built_wheel(built, request.source.name, Version(request.source.version))
                except WheelRejected as exc:
                    raise self._error(request, f"the build's wheel was rejected: {exc}") from None
                wheel = work_dir / built.name
                shutil.move(built, wheel)
                give_back(wheel)
            return BuildOutcome(
                status=result["status"],
                wheel=wheel,
                backend_requires=tuple(result.get("requires", ())),
                missing=tuple(result.get("missing", ())),
                freeze=result.get("freeze", ""),
                log_path=request.log_path,
                command=command,
                started_at=started_at.isoformat(),
                ended_at=datetime.now(timezone.utc).isoformat(),
                seconds=time.monotonic() - started,
                container_seconds=run.seconds,
                timings=result.get("timings", {}),
                environment=result.get("environment", {}),
                user_namespace=user_namespace,
            )
        finally:
            folders.remove()

    def repair(self, wheel: Path, tools: tuple[Path, ...], image: ImageRef, limits: BuildSettings,
               log_path: Path, work_dir: Path, label: str) -> tuple[Path, dict]:
        """Repair a platform wheel to a manylinux tag with auditwheel (from our own wheels, in a
        container without network, as unprivileged as a build). Returns the repaired wheel and
        what to record about it."""
        job = {"mode": "repair", "out": "/out", "wheel": f"/in/{wheel.name}",
               "wheels": [f"/wheels/{w.name}" for w in tools], "wheels_dir": "/wheels"}
        folders = JobFolders.create(work_dir, job, prefix="repair-")
        out_dir, job_dir, scratch = folders.out, folders.job, folders.scratch
        spec = RunSpec(
            image=image.tag, command=["python3", "/mb/mb_driver.py", "/job/job.json"],
            mounts=(Mount(wheel, f"/in/{wheel.name}"), Mount(job_dir, "/job"),
                    Mount(self.driver_dir, "/mb"), Mount(out_dir, "/out", read_only=False),
                    Mount(scratch, "/tmp", read_only=False),
                    *(Mount(w, f"/wheels/{w.name}") for w in tools)),
            environment={"HOME": "/tmp/mb-home", "LANG": "C.UTF-8"}, workdir="/tmp",
            user=f"{BUILDER_UID}:{BUILDER_UID}", network=False,
            timeout_seconds=limits.timeout_seconds, memory=limits.memory,
            pids_limit=limits.pids_limit, read_only_root=True)
        name, version = label.split("==")
        try:
            run = self.podman.run(spec, log_path)
            result, _ = read_result(out_dir)
            if run.exit_code != 0 or result.get("status") != "repaired":
                raise BuildError(f"{result.get('error') or 'the repair container failed'}"
                                 f"{_tail(log_path)}", package=name, version=version,
                                 log_path=str(log_path))
            built = _built_wheel(out_dir, result.get("wheel"), lambda message: BuildError(
                message, package=name, version=version, log_path=str(log_path)), maker="repair")
            repaired = work_dir / built.name
            shutil.move(built, repaired)
            give_back(repaired)
            return repaired, {"tool": result["tool"], "command": result["command"],
                              "from": wheel.name, "to": result["wheel"]}
        finally:
            folders.remove()

    @staticmethod
    def _error(request: BuildRequest, message: str) -> BuildError:
        return BuildError(message, package=request.source.name, version=request.source.version,
                          chain=request.chain, log_path=str(request.log_path))


@dataclass(frozen=True)
class JobFolders:
    """A driver run's three folders: /out for its result, /job with job.json, and a fresh scratch
    folder for its /tmp: on disk (a large build needs gigabytes), and with the read-only root,
    the only other place it can write."""

    out: Path
    job: Path
    scratch: Path

    @classmethod
    def create(cls, work_dir: Path, job: dict, prefix: str = "") -> "JobFolders":
        work_dir.mkdir(parents=True, exist_ok=True)
        folders = cls(*(Path(tempfile.mkdtemp(prefix=f"{prefix}{kind}-", dir=work_dir))
                        for kind in ("out", "job", "scratch")))
        # out and scratch are mounted writable, so podman gives them to the container's user
        # (its ids in the run's user namespace; see Mount). job is read-only: mkdtemp makes
        # 0700 directories, and the driver runs as an unprivileged user.
        (folders.job / "job.json").write_text(json.dumps(job, indent=2))
        os.chmod(folders.job, 0o755)
        os.chmod(folders.job / "job.json", 0o644)
        return folders

    def remove(self) -> None:
        for folder in (self.out, self.job, self.scratch):
            shutil.rmtree(folder, ignore_errors=True)


_RESULT_LIMIT = 16 << 20


def read_result(out_dir: Path) -> tuple[dict, str | None]:
    """The driver's result.json, read without trusting it: the build ran in the same container
    as the driver and could have replaced the file with a link to somewhere on the host."""
    path = out_dir / "result.json"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return {}, None
    except OSError as exc:
        return {}, f"the build left an unreadable result ({exc.strerror})"
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return {}, "the build left a result that is not a plain file"
        data = handle.read(_RESULT_LIMIT + 1)
    try:
        result = json.loads(data) if len(data) <= _RESULT_LIMIT else None
    except ValueError:
        result = None
    if not isinstance(result, dict):
        return {}, "the build left a result that is not a JSON object"
    return result, None


def _built_wheel(out_dir: Path, name: object, fail: Callable[[str], BuildError],
                 maker: str = "backend") -> Path:
    """The wheel the backend (or the repair) named, only if it is a plain file right in
    /out/dist; otherwise fail(message) is raised."""
    dist = out_dir / "dist"
    if not isinstance(name, str) or not name or "/" in name or name.startswith(".") or "\0" in name:
        raise fail(f"the {maker} named its wheel {name!r}, which is not a file name")
    if not dist.is_dir() or dist.is_symlink():
        raise fail("the build's output folder was replaced by something else")
    wheel = dist / name
    try:
        mode = wheel.lstat().st_mode
    except OSError:
        raise fail(f"the {maker} reported {name}, but did not write it") from None
    if not stat.S_ISREG(mode):
        raise fail(f"the build's wheel was rejected: {name} is not a regular "
                   f"file (a symbolic link or device would reach outside the build)")
    return wheel


def _user_namespace(reported: object, run: RunResult, request: BuildRequest) -> dict[str, str]:
    """The user namespace the driver read inside the container (/proc/self/uid_map and gid_map,
    before any package code ran), only if it is the one podman says it set up: the build could
    have rewritten the driver's report."""
    said = {"uid_map": run.uid_map, "gid_map": run.gid_map}
    if not isinstance(reported, dict) or \
            {key: id_map_text(reported.get(key)) for key in said} != said or not all(said.values()):
        raise Builder._error(request, "the build reported a user namespace other than the one podman "
                                      "gave its container; the build is not trusted")
    return said


def _check_freeze(freeze: str, request: BuildRequest) -> None:
    """The freeze the driver reports must list exactly the wheels the host mounted."""
    expected = set()
    for wheel in request.env_wheels:
        name, version, _, _ = parse_wheel_filename(wheel.name)
        expected.add((name, version))
    reported = set()
    for line in freeze.splitlines():
        pin, sep, version = line.strip().partition("==")
        if not sep:
            continue
        try:
            reported.add((canonicalize_name(pin), Version(version)))
        except InvalidVersion:
            reported.add((canonicalize_name(pin), None))
    if reported != expected:
        raise Builder._error(request, "the build environment's reported freeze differs from the "
                                      "wheels that were installed into it; the build is not trusted")


def _tail(log_path: Path, lines: int = 3) -> str:
    try:
        text = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    useful = [line.strip() for line in text if not line.startswith("[mirror-builder]")][-lines:]
    return (": " + " | ".join(useful)) if useful else ""


def _source_date_epoch(sdist: Path) -> int:
    """Reproducible timestamps inside the wheel: the newest file time recorded in the sdist
    (not the cached file's own mtime, which is when we downloaded it)."""
    try:
        if sdist.name.endswith(".zip"):
            with zipfile.ZipFile(sdist) as zf:
                newest = max(datetime(*i.date_time, tzinfo=timezone.utc).timestamp()
                             for i in zf.infolist())
        else:
            with tarfile.open(sdist) as tar:
                newest = max(m.mtime for m in tar.getmembers())
    except (OSError, ValueError, tarfile.TarError, zipfile.BadZipFile):
        return 315532800  # 1980-01-01, the earliest time a zip (wheel) can hold
    return max(int(newest), 315532800)


def _assemble_driver(path: Path) -> Path:
    """The driver script and the pure-Python libraries it needs, to mount read-only at /mb."""
    if path.exists():
        shutil.rmtree(path)
    lib = path / "lib"
    lib.mkdir(parents=True)
    shutil.copy2(DRIVER, path / "mb_driver.py")
    for module in (packaging, pyproject_hooks):
        source = Path(module.__file__).parent
        shutil.copytree(source, lib / source.name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chmod(os.path.join(root, name), 0o755 if name in dirs else 0o644)
    os.chmod(path, 0o755)
    return path

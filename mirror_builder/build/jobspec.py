"""What a build's container is given: its job.json, its mounts and the spec it is started with,
for a container started for the build (its source tree, wheels and closure mounted) or a warm
one started before it (build/warm.py: the same, linked into its job folder)."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mirror_builder.build.request import BuildRequest
from mirror_builder.build.warm import Warm, WarmContainers, link_into
from mirror_builder.config.sizes import parse_size
from mirror_builder.prepare.sources import source_date_epoch
from mirror_builder.sandbox.jobfolders import (BUILDER_UID, DRIVER_COMMAND, WAITING_DRIVER_COMMAND,
                                               JobFolders)
from mirror_builder.sandbox.podman import Mount, RunSpec, Tmpfs

BUILD_HOSTNAME = "mirror-builder"
BUILD_WORK = "/tmp/mb-work"  # where the driver builds (its WORK), unless a verify varies it
# Files made on the disk behind the container's /tmp took two to three times as long as in
# memory (a copy of setuptools' 524-file source 88 against 16 ms; its install 0.12 against
# 0.07 s), so a small build is done in memory: a tmpfs at WORK holds the copy of its source,
# what the build writes there and its environment. It is counted against the build's memory
# limit, and its size is a share of it (WORK_TMPFS_SHARE, at most WORK_TMPFS_MOST); a build
# that fills it is built again on disk (Builder.build).
SOURCE_IN_MEMORY_BYTES = 64 << 20
WORK_TMPFS_MOST = 2 << 30
WORK_TMPFS_SHARE = 4  # a quarter of the memory limit
# A larger source, with an environment this small, installed: the environment alone in memory
# (a tmpfs at WORK/env).
ENV_IN_MEMORY_BYTES = 256 << 20
ENV_TMPFS_SIZE = "512m"
# Where the driver's smoke test after the build makes its home and venv, in memory
# (sandbox/smokerun.py's IN_MEMORY); one that does not fit fails there and is tested again in
# a container of its own, as any failure there is.
TEST_TMPFS = Tmpfs("/tmp/mb-test", "512m")
# In a build's job folder: its smoke test's closure (for a test that waits for it, put there by
# the host later).
LATER_CLOSURE = "closure"
PAGE = 4096  # what the smallest file takes in a tmpfs


@dataclass(frozen=True)
class ContainerSettings:
    """What a build's container is made with apart from its folders, worked out once a build:
    key (containers alike in it can take each other's builds, build/warm.py) and the tmpfs
    mounts of its work folder or environment (none: both on disk)."""

    key: str
    tmpfs: tuple[Tmpfs, ...]

    @property
    def in_memory(self) -> bool:
        return bool(self.tmpfs)


def container_settings(request: BuildRequest, on_disk: bool = False) -> ContainerSettings:
    """The container settings of request's build; on_disk: nothing of it in memory (the build
    filled its tmpfs before)."""
    limits = request.runtime.limits
    tmpfs = () if on_disk else memory_mounts(request)
    return ContainerSettings(repr((
        request.runtime.image.tag, limits.memory, limits.pids_limit, request.runtime.cpus,
        request.variation.hostname if request.variation else BUILD_HOSTNAME, tmpfs)), tmpfs)


def memory_mounts(request: BuildRequest) -> tuple[Tmpfs, ...]:
    """The tmpfs mounts of a build: its whole work folder when its source and environment are
    small, else its environment alone when that is, else none (also with build.in_memory
    false)."""
    work = build_work(request)
    if not request.runtime.limits.in_memory or not work.startswith("/tmp/"):
        return ()
    environment = installed_bytes(request)
    if environment is None or environment > ENV_IN_MEMORY_BYTES:
        return ()
    size = work_tmpfs_bytes(request.runtime.limits.memory)
    source = tree_bytes(request.source.tree, SOURCE_IN_MEMORY_BYTES)
    if source is not None and source + environment <= size // 2:
        return (Tmpfs(work, f"{size >> 20}m"),)
    return (Tmpfs(f"{work}/env", ENV_TMPFS_SIZE),)


def work_tmpfs_bytes(memory: str) -> int:
    """The size of a build's work tmpfs under its memory limit ("8g"; "" for none)."""
    try:
        limit = parse_size(memory)
    except ValueError:
        limit = 0
    return min(WORK_TMPFS_MOST, limit // WORK_TMPFS_SHARE) if limit else WORK_TMPFS_MOST


def tree_bytes(tree: Path, most: int) -> int | None:
    """What a copy of tree takes in memory (a page at least for each file), or None when that
    is more than most."""
    total = 0
    for folder, _, files in os.walk(tree):
        for name in files:
            try:
                total += max(os.lstat(os.path.join(folder, name)).st_size, PAGE)
            except OSError:
                continue
            if total > most:
                return None
    return total


class BuildJobs:
    """Job folders (under work_dir) and container specs for builds; the driver's copy is
    driver_dir."""

    def __init__(self, driver_dir: Path, work_dir: Path) -> None:
        self.driver_dir = driver_dir
        self.work_dir = work_dir

    def offer_warm(self, warm: WarmContainers | None, request: BuildRequest,
                   settings: ContainerSettings) -> Callable[[], None]:
        """What starts a warm container for builds like request (nothing without warm, or
        when the run expects no more builds)."""
        if warm is None or not request.more_to_come:
            return lambda: None
        return lambda: warm.offer(settings.key, lambda folders: self.spec(
            request, settings, folders, [], WAITING_DRIVER_COMMAND))

    def cold(self, request: BuildRequest,
             settings: ContainerSettings) -> tuple[JobFolders, RunSpec]:
        """The job's folders and the spec of a container started for it, the build's source
        tree, wheels and closure mounted."""
        mounts = [Mount(request.source.tree, "/src")]
        mounts += [Mount(wheel.path, f"/wheels/{wheel.name}") for wheel in request.env.wheels]
        waits = request.smoke is not None and request.smoke.wait
        if request.smoke is not None and not waits:
            mounts += [Mount(wheel.path, f"/closure/{wheel.name}")
                       for wheel in request.smoke.closure]
        folders = JobFolders.create(self.work_dir, build_job(
            request, "/src", "/wheels", "/closure"))
        if waits:  # filled by the host later; the container sees it read-only, in /job
            (folders.job / LATER_CLOSURE).mkdir(mode=0o755)
        return folders, self.spec(request, settings, folders, mounts, DRIVER_COMMAND)

    def warm(self, request: BuildRequest, settings: ContainerSettings,
             warm: Warm) -> tuple[JobFolders, RunSpec]:
        """The job given to a warm container: what a cold one has mounted is linked into its
        job folder (read-only in it), and then the job written."""
        folders = warm.folders
        link_into(request.source.tree, folders.job / "src")
        for kind, wheels in (("wheels", request.env.wheels),
                             (LATER_CLOSURE, request.smoke.closure if request.smoke else ())):
            (folders.job / kind).mkdir(mode=0o755)
            for wheel in wheels:
                link_into(wheel.path, folders.job / kind / wheel.name)
        folders.write_job(build_job(request, "/job/src", "/job/wheels", f"/job/{LATER_CLOSURE}"))
        return folders, self.spec(request, settings, folders, [], WAITING_DRIVER_COMMAND)

    def folder_mounts(self, folders: JobFolders) -> list[Mount]:
        """Every build container's: its job folder, the driver, /out and its scratch /tmp."""
        return [Mount(folders.job, "/job"), Mount(self.driver_dir, "/mb"),
                Mount(folders.out, "/out", read_only=False),
                Mount(folders.scratch, "/tmp", read_only=False)]

    def spec(self, request: BuildRequest, settings: ContainerSettings, folders: JobFolders,
             mounts: list[Mount], command: tuple[str, ...]) -> RunSpec:
        """The spec of a build's container: its folders' mounts and mounts, the tmpfs of its
        smoke test and those of settings (their mount points made in the scratch folder first,
        so that podman gives the build's user the folders on its way)."""
        limits = request.runtime.limits
        for kept in settings.tmpfs:
            (folders.scratch / kept.target.removeprefix("/tmp/")).mkdir(parents=True,
                                                                        exist_ok=True)
        return RunSpec(
            image=request.runtime.image.tag,
            command=list(command),
            mounts=(*self.folder_mounts(folders), *mounts),
            tmpfs=(TEST_TMPFS, *settings.tmpfs),
            environment={"HOME": "/tmp/mb-home", "LANG": "C.UTF-8"},
            workdir="/tmp",
            user=f"{BUILDER_UID}:{BUILDER_UID}",
            network=False,
            timeout_seconds=limits.timeout_seconds,
            memory=limits.memory,
            pids_limit=limits.pids_limit,
            cpus=request.runtime.cpus,
            read_only_root=True,
            # Fixed, like the build path and the clock: a build that writes down its host
            # name makes the same wheel anyway (verify varies it to find such builds).
            hostname=request.variation.hostname if request.variation else BUILD_HOSTNAME,
        )


def build_work(request: BuildRequest) -> str:
    return request.variation.work_dir if request.variation else BUILD_WORK


def installed_bytes(request: BuildRequest) -> int | None:
    """The build environment's size, installed (its wheels' files, uncompressed); None when a
    wheel cannot be read (the driver's install will say what is wrong with it)."""
    installed = 0
    for wheel in request.env.wheels:
        try:
            with zipfile.ZipFile(wheel.path) as archive:
                installed += sum(max(info.file_size, PAGE) for info in archive.infolist())
        except (OSError, zipfile.BadZipFile):
            return None
    return installed


def build_job(request: BuildRequest, source: str, wheels: str, closure: str) -> dict:
    """The job.json the driver reads inside the container: source, wheels and closure are where
    the container has the build's source tree, its environment's wheels and its smoke test's
    closure (for a test that waits for it: /job/closure, filled later)."""
    varied = request.variation
    return {
        **({"work": varied.work_dir, "reverse_environment": varied.reverse_environment}
           if varied else {}),
        "source": source,
        "project_dir": request.source.project_dir,
        "out": "/out",
        "wheels": [f"{wheels}/{wheel.name}" for wheel in request.env.wheels],
        "wheels_dir": wheels,
        "backend": request.build_system.backend,
        "backend_path": list(request.build_system.backend_path),
        "config_settings": dict(request.env.config_settings),
        "environment": dict(request.env.environment),
        "jobs": request.env.jobs,
        "source_date_epoch": request.source.source_date_epoch
        or source_date_epoch(request.source.sdist.path),
        **({"smoke": {"closure_dir": f"/job/{LATER_CLOSURE}" if request.smoke.wait
                      else closure,
                      "wait": request.smoke.wait,
                      "imports": None if request.smoke.imports is None
                      else list(request.smoke.imports)}} if request.smoke else {}),
    }

"""Build containers started before their build.

Podman's create and start and the driver's own start take 0.1-0.15 s of every build; in a chain
of builds that wait for each other (setuptools, then pbr, then stevedore) that is on the way of
each. A warm container is started while other builds run: the folders of a build (its job folder
read-only, out and scratch writable) and the driver's copy are mounted, and its driver waits for
job.json. The builder puts the build's source tree, its environment's wheels and its smoke test's
closure into the job folder (hard links: read-only in the container, like the mounts they stand
for) and then writes the job. Only containers of the same settings (image, limits, host name) are
interchangeable; each set keeps at most `most` warm.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mirror_builder.files import atomic_copy
from mirror_builder.sandbox.exitwatch import running
from mirror_builder.sandbox.jobfolders import JobFolders
from mirror_builder.sandbox.podman import PodmanService, RunSpec, Started

log = logging.getLogger(__name__)

# A warm container older than this is not used (its driver gives up waiting after 15 minutes).
MAX_AGE_SECONDS = 600.0
# How long a build waits for a warm container being started (it takes 0.1-0.4 s) before it
# starts its own: podman may be stuck.
START_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class Warm:
    started: Started
    folders: JobFolders
    since: float


class WarmContainers:
    """Started build containers waiting for their job, by the settings they were made with."""

    def __init__(self, podman: PodmanService, work_dir: Path, most: int = 1,
                 waiting: Callable[[Started], bool] | None = None) -> None:
        """waiting: whether a started container's driver still waits (by default: whether its
        first process is still there)."""
        self.podman = podman
        self.work_dir = work_dir
        self.most = most
        self.waiting = waiting or _still_there
        self._warm: dict[str, list[Warm]] = {}
        self._starting: dict[str, int] = {}
        self._claimed: dict[str, int] = {}  # of those starting, how many a build waits for
        self._changed = threading.Condition(threading.Lock())

    def take(self, key: str) -> Warm | None:
        """A warm container made with settings key, still waiting; None if there is none. When
        none is ready but one is being started that no other build waits for, it is waited
        for: it is up sooner than a container started now would be."""
        while True:
            with self._changed:
                warm = self._ready_or_starting(key)
            if warm is None:
                return None
            if time.monotonic() - warm.since < MAX_AGE_SECONDS and self.waiting(warm.started):
                warm.started.taken()
                return warm
            self.discard(warm)

    def _ready_or_starting(self, key: str) -> Warm | None:
        """Under the lock: a ready container, or the one being started once it is."""
        if not self._warm.get(key) and self._starting.get(key, 0) > self._claimed.get(key, 0):
            self._claimed[key] = self._claimed.get(key, 0) + 1
            try:
                self._changed.wait_for(
                    lambda: self._warm.get(key) or self._starting.get(key, 0) == 0,
                    timeout=START_WAIT_SECONDS)
            finally:
                self._claimed[key] -= 1
        ready = self._warm.get(key)
        return ready.pop(0) if ready else None

    def offer(self, key: str, spec_for: Callable[[JobFolders], RunSpec]) -> None:
        """Start a container of settings key in the background (spec_for gives its spec for its
        folders), unless `most` are warm or starting already."""
        with self._changed:
            if len(self._warm.get(key, ())) + self._starting.get(key, 0) >= self.most:
                return
            self._starting[key] = self._starting.get(key, 0) + 1
        threading.Thread(target=self._start, args=(key, spec_for), daemon=True,
                         name="start a warm container").start()

    def _start(self, key: str, spec_for: Callable[[JobFolders], RunSpec]) -> None:
        folders = None
        try:
            folders = JobFolders.create(self.work_dir, None, prefix="warm-")
            started = self.podman.start(spec_for(folders))
            with self._changed:
                self._warm.setdefault(key, []).append(Warm(started, folders, time.monotonic()))
        except Exception as exc:  # noqa: BLE001 - a build then starts its own, as it always did
            log.debug("no warm container: %s", exc)
            if folders is not None:
                folders.remove()
        finally:
            with self._changed:
                self._starting[key] -= 1
                self._changed.notify_all()

    def discard(self, warm: Warm) -> None:
        """Remove a warm container (one taken whose job could not be given to it)."""
        self.podman.discard(warm.started)
        warm.folders.remove()

    def close(self) -> None:
        """Remove the containers nobody took."""
        with self._changed:
            left = [warm for ready in self._warm.values() for warm in ready]
            self._warm.clear()
        for warm in left:
            self.discard(warm)


def _still_there(started: Started) -> bool:
    container = started.container
    return running((container.attrs.get("State") or {}).get("Pid"), container.id)


def link_into(source: Path, dest: Path) -> None:
    """A file or tree at dest with source's contents: hard links where both are on one file
    system (the job folder is read-only in the container, so it cannot change them), else a
    copy."""
    if source.is_dir():
        linked = subprocess.run(["cp", "-R", "--link", "--no-dereference", "--preserve=mode",
                                 str(source), str(dest)], capture_output=True)
        if linked.returncode != 0:
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(source, dest, symlinks=True)
        return
    try:
        os.link(source, dest)  # the file the run has, as it is (readable by anyone)
    except OSError:
        atomic_copy(source, dest)

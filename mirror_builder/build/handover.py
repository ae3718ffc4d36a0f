"""A build container that smoke-tests its own wheel hands the wheel over first.

The driver (sandbox/smokerun.py's hand_over) stops whatever the build left running, writes its
result and then the marker HANDED_OVER in /out, and waits for TAKEN in /job (read-only to it)
before it runs the test. The host takes the result and a copy of the wheel in between, so the
builds waiting for this wheel start while the test runs, and nothing in the container runs
while the wheel is copied. The test is over for the host's budget when the driver has written
SMOKE_RESULT (it ends right after; its build slot is let go then, not 50-100 ms later when podman
has seen the container go), and its result is read when the container ends.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from mirror_builder.sandbox.filewait import wait_for_file
from mirror_builder.sandbox.jobfolders import JobFolders, read_result
from mirror_builder.sandbox.podman import PodmanService, RunResult, RunSpec, Started

HANDED_OVER = "handed-over"  # in /out: the driver's result is written, the build's processes gone
TAKEN = "taken"  # in /job: the host has what it needs; the driver may go on with the test
SKIP = "skip"  # TAKEN's text when the driver is to end without the test
SMOKE_RESULT = "smoke.json"  # in /out
POLL_SECONDS = 0.005  # where there is no inotify
# How soon a container's end is seen while waiting for one of its files (an end before the
# hand-over is a failed build).
RECHECK_SECONDS = 0.05


class HandOver:
    """One build container run on its own thread, watched for the driver's hand-over."""

    def __init__(self, podman: PodmanService, spec: RunSpec, log_path: Path,
                 folders: JobFolders, started: Started | None = None,
                 on_started: Callable[[], None] | None = None) -> None:
        """started: a container started before (build/warm.py) that runs spec's job;
        on_started: called once the container runs."""
        self.folders = folders
        self.started = started.began if started is not None else time.monotonic()
        self._maps: Future[tuple[str, str, dict[str, float]]] = Future()
        self._ended: Future[RunResult] = Future()
        self._let_go = False
        self._let_go_lock = threading.Lock()
        # Done once the test's result is written, or the container has ended: before the
        # result is given (smoke_result), since it is first of _ended's callbacks.
        self.tested: Future[None] = Future()
        self._tested_lock = threading.Lock()
        self._when_tested: list[Callable[[], None]] | None = []
        self._ended.add_done_callback(lambda _: self._test_over())
        self.tested.add_done_callback(lambda _: self._run_when_tested())
        self._on_started = on_started
        threading.Thread(target=self._run, args=(podman, spec, log_path, started),
                         name=f"container {log_path.name}", daemon=True).start()

    def _run(self, podman: PodmanService, spec: RunSpec, log_path: Path,
             started: Started | None) -> None:
        try:
            self._ended.set_result(podman.run(spec, log_path, on_started=self._started,
                                              started=started))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the end
            self._ended.set_exception(exc)

    def _started(self, uid_map: str, gid_map: str, steps: dict[str, float]) -> None:
        self._maps.set_result((uid_map, gid_map, steps))
        if self._on_started is not None:
            self._on_started()

    def wait_for_wheel(self) -> tuple[dict, RunResult] | None:
        """The driver's result and the user namespace podman gave the container (as a RunResult
        so far) once it hands over; None if the container ended first."""
        marker = self.folders.out / HANDED_OVER
        while not self._ended.done():
            if self._maps.done() and _is_file(marker):
                uid_map, gid_map, steps = self._maps.result()
                result, _ = read_result(self.folders.out)
                # podman's round trips so far; "wait" is the run until the hand-over ("warm":
                # how long a container started before the build waited for it, not this run).
                steps = dict(steps, wait=self.seconds - sum(
                    seconds for step, seconds in steps.items() if step != "warm"))
                return result, RunResult(0, False, self.seconds, uid_map=uid_map,
                                         gid_map=gid_map, steps=steps)
            self._sleep_until(marker, lambda: self._maps.done() and _is_file(marker))
        return None

    def _sleep_until(self, path: Path, there: Callable[[], bool]) -> None:
        """Until there() (the driver has written path: a regular file, not a link the build
        planted), the container ends (seen within RECHECK_SECONDS), or a second has passed;
        woken by inotify where the host has it, else looking every POLL_SECONDS."""
        wait_for_file(str(path), time.monotonic() + 1.0, poll=lambda _: POLL_SECONDS,
                      present=there, stop=self._ended.done, recheck=RECHECK_SECONDS)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def let_go(self, skip: bool = False) -> None:
        """Tell the driver to go on with its test (whatever the host made of the result), or
        with skip to end without one (the host will not give it its closure). Only the first
        word counts."""
        with self._let_go_lock:
            if self._let_go:
                return
            self._let_go = True
        # Written whole, then named: the driver must never read it half-written.
        partial = self.folders.job / f".{TAKEN}"
        partial.write_text(SKIP if skip else "")
        partial.rename(self.folders.job / TAKEN)
        if not skip:
            threading.Thread(target=self._watch_for_result, daemon=True,
                             name=f"test in {self.folders.job.parent.name}").start()

    def _watch_for_result(self) -> None:
        # The driver clears a SMOKE_RESULT the build left before it hands over: one here now
        # is the test's (or its package's own doing, which is no worse than its import).
        result = self.folders.out / SMOKE_RESULT
        while not self._ended.done():
            if _is_file(result):
                self._test_over()
                return
            self._sleep_until(result, lambda: _is_file(result))

    def _test_over(self) -> None:
        with self._tested_lock:
            if self.tested.done():
                return
            self.tested.set_result(None)

    def when_tested(self, call: Callable[[], None]) -> None:
        """call() once the test is over (self.tested), before its result is given (at once if
        that is already past): what the test held is let go before anyone hears it is over."""
        with self._let_go_lock:
            if self._when_tested is not None:
                self._when_tested.append(call)
                return
        call()

    def _run_when_tested(self) -> None:
        with self._let_go_lock:
            calls, self._when_tested = self._when_tested or [], None
        for call in calls:
            call()

    def end(self) -> RunResult:
        """Wait for the container to end; its run, as podman tells it."""
        return self._ended.result()

    def remove_folders_at_end(self) -> None:
        """Remove the job's folders once the container ends (after smoke_result has read them):
        not before, or a driver still running would wait in vain for TAKEN."""
        self._ended.add_done_callback(lambda _: self.folders.remove())

    def smoke_result(self, read: Callable[[object], object]) -> Future:
        """The test's result, read(what the driver reported) once the container ends (read(None)
        if it reported nothing)."""
        later: Future = Future()

        def ended(_: Future) -> None:
            try:
                run = self._ended.result() if self._ended.exception() is None else None
                reported = None
                if run is not None and not run.timed_out:
                    reported, _ = read_result(self.folders.out, SMOKE_RESULT)
                later.set_result(read(reported or None))
            except Exception as exc:  # noqa: BLE001 - a test that cannot be read is no pass
                later.set_exception(exc)

        self._ended.add_done_callback(ended)
        return later


def _is_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def copy_out(built: Path, dest: Path) -> Path:
    """A copy of the built wheel the container can no longer touch: read through a descriptor
    that refuses a link, from a regular file only."""
    fd = os.open(built, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{built.name} is not a regular file")
        with open(fd, "rb", closefd=False) as source, open(dest, "xb") as target:
            while chunk := source.read(1 << 20):
                target.write(chunk)
    finally:
        os.close(fd)
    return dest

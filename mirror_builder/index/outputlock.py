"""One writer per output directory at a time.

Every command that writes an output directory (its index, records, rebuild numbers) holds an
exclusive lock on OUTPUT/.mirror-builder.lock for as long as it runs. A second one either refuses
at once, naming who holds the directory, or (asked to wait) queues behind it. The lock is a
kernel flock, so it goes with its process: a killed run never leaves a stale lock behind.
Readers (serve, inspect, pip) need no lock: every file they read is replaced atomically.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from mirror_builder.errors import MirrorBuilderError
from mirror_builder.layout import VARIANTS_FOLDER, OutputLayout


class OutputBusy(MirrorBuilderError):
    """Another mirror-builder is writing the same output directory."""


@contextmanager
def hold_output(output: OutputLayout | Path, command: str, *, wait: bool = False,
                on_wait: Callable[[str], None] = lambda holder: None) -> Iterator[None]:
    layout = OutputLayout.of(output)
    layout.root.mkdir(parents=True, exist_ok=True)
    path = layout.output_lock
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(path)
            if not wait:
                raise OutputBusy(
                    f"{layout.root} is in use by another mirror-builder ({holder}); run again when "
                    f"it has finished, or pass --wait to queue behind it") from None
            on_wait(holder)
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "command": command,
                                 "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}))
        handle.flush()
        _sweep_leftovers(layout.root)
        yield
    finally:
        handle.close()  # closing releases the lock


def _sweep_leftovers(output: Path) -> None:
    """Remove the temporary files of a writer that was killed mid-write. Every file is written
    as .NAME.RANDOM.part or .tmp beside its place and renamed into it; with the lock held, no
    such file belongs to a live writer. They were never visible (no page links them)."""
    for folder, folders, names in os.walk(output):
        if Path(folder) == output and VARIANTS_FOLDER in folders:
            # The other variants' outputs: each has its own lock and its own writer.
            folders.remove(VARIANTS_FOLDER)
        for name in names:
            if name.startswith(".") and name.endswith((".part", ".tmp")):
                Path(folder, name).unlink(missing_ok=True)


def _describe(path: Path) -> str:
    # The holder writes its details just after taking the lock; give it a moment to do so.
    for _ in range(20):
        try:
            holder = json.loads(path.read_text() or "null")
        except (OSError, ValueError):
            holder = None
        if isinstance(holder, dict):
            return (f"pid {holder.get('pid')}, `mirror-builder {holder.get('command')}`, "
                    f"since {holder.get('since')}")
        time.sleep(0.05)
    return "details unknown"

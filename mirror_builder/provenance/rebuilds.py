"""Rebuild numbers: handed out under a lock and remembered, so they never go backwards and never
repeat, even when a rebuild fails half way or two rebuilds start at once."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

from mirror_builder.files import atomic_write_text
from mirror_builder.layout import OutputLayout


class RebuildCounter:
    def __init__(self, output: OutputLayout | Path) -> None:
        layout = OutputLayout.of(output)
        self.path = layout.rebuild_numbers
        self.lock_path = layout.rebuild_numbers_lock

    def reserve(self, name: str, version: Version, at_least: int) -> int:
        """The next number for name==version: above every number handed out before, and at
        least at_least (what the index and the package's changelog already call for)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock_path.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = json.loads(self.path.read_text()) if self.path.is_file() else {}
            versions = data.setdefault(canonicalize_name(name), {})
            # Equal versions may be spelled differently (1.0, 1.0.0): they share one counter.
            last = max((n for text, n in versions.items() if Version(text) == version), default=0)
            number = max(last + 1, at_least)
            versions[str(version)] = number
            atomic_write_text(self.path, json.dumps(data, indent=1, sort_keys=True))
        return number

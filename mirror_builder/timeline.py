"""Where a run's time goes: spans of (package, phase) on the run's own clock, for
`bootstrap --timeline FILE` and the benchmarks that print a per-phase breakdown and the build
slots' use over time.

    timeline = Timeline()
    with timeline.span("flask==3.1.1", "prepare"):
        ...
    timeline.write(path, slots=2)

Phases: resolve, fetch, prepare, wait-slot, container (its parts are the driver's own
timings: environment, get_requires, build_wheel), repair, stamp, smoke, publish.
"""

from __future__ import annotations

import json
import resource
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mirror_builder.files import atomic_write_text


@dataclass(frozen=True)
class Span:
    """One phase of one package: seconds since the run began."""

    package: str
    phase: str
    start: float
    end: float
    parts: dict[str, float] = field(default_factory=dict)


class Timeline:
    """A run's spans; safe to add to from every task's thread."""

    def __init__(self) -> None:
        self._origin = time.monotonic()
        self._spans: list[Span] = []
        self._lock = threading.Lock()

    @contextmanager
    def span(self, package: str, phase: str) -> Iterator[dict[str, float]]:
        """Time the block; what it puts in the yielded dict becomes the span's parts."""
        start, parts = time.monotonic(), {}
        try:
            yield parts
        finally:
            self.add(package, phase, start, time.monotonic(), parts)

    def add(self, package: str, phase: str, start: float, end: float,
            parts: dict[str, float] | None = None) -> None:
        """A span from two time.monotonic() readings."""
        span = Span(package, phase, round(start - self._origin, 4), round(end - self._origin, 4),
                    {k: round(float(v), 4) for k, v in (parts or {}).items()})
        with self._lock:
            self._spans.append(span)

    def until(self, package: str, phase: str, work: Future, **parts: float) -> None:
        """A span from now until work is done (work that goes on on another thread)."""
        start = time.monotonic()
        work.add_done_callback(lambda _: self.add(package, phase, start, time.monotonic(), parts))

    def spans(self) -> list[Span]:
        with self._lock:
            return sorted(self._spans, key=lambda s: (s.start, s.end))

    def to_dict(self, slots: int) -> dict:
        return {
            "wall_seconds": round(time.monotonic() - self._origin, 4),
            "slots": slots,
            # The process's own peak (the builds run in containers, not in it).
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "spans": [asdict(s) for s in self.spans()],
        }

    def write(self, path: Path, slots: int) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(slots), indent=1) + "\n")

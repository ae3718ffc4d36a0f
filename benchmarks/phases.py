"""Where a bootstrap's time went, from its `--timeline FILE` (mirror_builder/timeline.py) and the
output's graph.json: a per-phase breakdown, the per-package overhead, the critical path, the
machine's lower bound and the build slots' use over time.

    .venv/bin/python benchmarks/phases.py TIMELINE.json [OUTPUT_DIR]

Used by bootstrap_vs_fromager.py and big_tree.py.

A package's overhead is what it costs beyond its backend's own work (get_requires_for_build_wheel
and build_wheel): its container run (start, build environment, driver) and the host's handling
of it inside the build slot, its stamping and record, its publishing, and its share of the
smoke test that published it (the test's time over the wheels tested in it, or the test's time
in its build container when it ran there).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PackageTime:
    package: str
    own: float  # the backend's hooks
    container_start: float  # podman: create, start, wait, logs (container - driver)
    environment: float  # the build environment's install, in the driver
    driver: float  # the rest of the driver (copying the source, reading the result)
    host: float  # the build slot's time outside podman (job folders, checks of the result)
    stamp: float  # stamping, SBOM, record
    smoke_share: float
    publish: float

    @property
    def overhead(self) -> float:
        return (self.container_start + self.environment + self.driver + self.host + self.stamp
                + self.smoke_share + self.publish)


PARTS = ("container_start", "environment", "driver", "host", "stamp", "smoke_share", "publish")


def load(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def _durations(spans: list[dict], phase: str) -> dict[str, float]:
    found: dict[str, float] = defaultdict(float)
    for span in spans:
        if span["phase"] == phase:
            found[span["package"]] += span["end"] - span["start"]
    return found


def package_times(timeline: dict) -> list[PackageTime]:
    """The cost of each package built in the run, by part."""
    spans = timeline["spans"]
    stamp, publish = _durations(spans, "stamp"), _durations(spans, "publish")
    smoke: dict[str, float] = defaultdict(float)
    for span in spans:
        if span["phase"] == "smoke":
            pins = span["package"].split(", ")
            for pin in pins:
                smoke[pin] += (span["end"] - span["start"]) / len(pins)
    found = []
    for span in spans:
        if span["phase"] != "container":
            continue
        parts, pin = span["parts"], span["package"]
        own = parts.get("get_requires", 0.0) + parts.get("build_wheel", 0.0)
        container = parts.get("container", span["end"] - span["start"])
        driver = parts.get("driver", container)
        environment = parts.get("environment", 0.0)
        tested_here = parts.get("smoke", 0.0)  # its smoke test, run in its build container
        found.append(PackageTime(
            package=pin, own=own, container_start=max(0.0, container - driver),
            environment=environment, driver=max(0.0, driver - own - environment - tested_here),
            host=max(0.0, span["end"] - span["start"] - container), stamp=stamp.get(pin, 0.0),
            smoke_share=smoke.get(pin, 0.0) + tested_here, publish=publish.get(pin, 0.0)))
    return found


def print_breakdown(timeline: dict, title: str = "") -> list[PackageTime]:
    """The per-phase table (medians and totals over the run's builds); returns the rows."""
    rows = package_times(timeline)
    if not rows:
        print(f"{title}: no builds in the timeline")
        return rows
    print(f"\nwhere the time went{': ' + title if title else ''} ({len(rows)} builds, "
          f"wall {timeline['wall_seconds']:.1f} s, peak memory "
          f"{timeline['peak_rss_bytes'] / (1 << 20):.0f} MiB)")
    print(f"  {'part':28} {'median':>8} {'total':>8}")
    for part in ("own",) + PARTS:
        values = [getattr(r, part) for r in rows]
        label = "backend's own hooks" if part == "own" else part.replace("_", " ")
        print(f"  {label:28} {statistics.median(values):>7.2f}s {sum(values):>7.1f}s")
    overheads = [r.overhead for r in rows]
    print(f"  {'overhead per package':28} {statistics.median(overheads):>7.2f}s "
          f"{sum(overheads):>7.1f}s")
    return rows


def critical_path(timeline: dict, output: Path) -> tuple[float, list[str]]:
    """The longest chain of builds that had to happen in turn (build requirements), each
    weighted by its own time in the run: fetch, prepare, wait for nothing, container, stamp."""
    spans = timeline["spans"]
    weight: dict[str, float] = defaultdict(float)
    for phase in ("fetch", "prepare", "container", "repair", "stamp"):
        for pin, seconds in _durations(spans, phase).items():
            weight[pin] += seconds
    graph = json.loads((output / "graph.json").read_text())
    needs: dict[str, set[str]] = defaultdict(set)
    for edge in graph["edges"]:
        if edge.get("kind") in ("build-system", "build-backend", "repair"):
            needs[edge["from"]].add(edge["to"])
    best: dict[str, tuple[float, list[str]]] = {}

    def longest(pin: str, seen: frozenset[str]) -> tuple[float, list[str]]:
        if pin not in best:
            below = [longest(c, seen | {pin}) for c in needs.get(pin, ()) if c not in seen]
            total, path = max(below, default=(0.0, []))
            best[pin] = (total + weight.get(pin, 0.0), path + [pin])
        return best[pin]

    return max((longest(pin, frozenset()) for pin in weight), default=(0.0, []))


def slot_chart(timeline: dict, width: int = 72) -> str:
    """Builds and smoke tests running over time, one character per time step: the digit is how
    many ran at once ('.' for none), against the run's slots."""
    wall = max(timeline["wall_seconds"], 0.001)
    step = wall / width
    rows = []
    for phase, label in (("container", "builds"), ("smoke", "smoke tests"),
                         ("resolve", "resolving")):
        spans = [s for s in timeline["spans"] if s["phase"] == phase]
        cells = []
        for column in range(width):
            t = (column + 0.5) * step
            running = sum(1 for s in spans if s["start"] <= t < s["end"])
            cells.append("." if running == 0 else str(min(running, 9)))
        rows.append(f"  {label:12}|{''.join(cells)}|")
    idle = sum(max(0, timeline["slots"] - int(c)) if c != "." else timeline["slots"]
               for c in rows[0].split("|")[1]) * step
    rows.append(f"  0 s{' ' * (width - 4)}{wall:>5.1f} s   ({timeline['slots']} build slots; "
                f"{idle:.1f} slot-seconds idle)")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("timeline", type=Path, help="a bootstrap's --timeline file")
    parser.add_argument("output", type=Path, nargs="?",
                        help="the bootstrap's output directory (for the critical path)")
    args = parser.parse_args()
    try:
        timeline = load(args.timeline)
    except (OSError, ValueError) as exc:
        parser.error(f"cannot read {args.timeline}: {exc}")
    print_breakdown(timeline)
    print(slot_chart(timeline))
    if args.output is not None:
        seconds, path = critical_path(timeline, args.output)
        print(f"critical path {seconds:.1f} s: {' -> '.join(path)}")


if __name__ == "__main__":
    main()

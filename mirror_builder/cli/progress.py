"""What the user sees while a bootstrap runs and when it ends (rich).

While it runs: one line per package in progress (resolving, preparing, waiting for a build slot,
building), and the counts. At the end: a table of every package, the failures with the chain
that led to each and its log, and the critical path (the longest chain of builds that had to
happen one after another).
"""

from __future__ import annotations

import threading
import time

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from mirror_builder.engine.model import BootstrapReport, BuiltWheel, Failure
from mirror_builder.resolve.explain import describe_skipped


class RichReporter:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.started = time.monotonic()
        self.done = 0
        # Only a terminal shows it (it is transient): redrawn elsewhere ten times a second,
        # it cost a run 3% of a core, taken from the threads that resolve and build.
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                 TimeElapsedColumn(), console=console, transient=True,
                                 disable=not console.is_terminal)
        self.total = self.progress.add_task("", total=None)
        self._tasks: dict[str, TaskID] = {}
        self._lock = threading.Lock()
        self._critical = ""  # recomputed when a package finishes, not on every event
        self.report: BootstrapReport | None = None  # the run's report, once watch() is called

    def __enter__(self) -> "RichReporter":
        self.progress.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.progress.stop()

    def activity(self, pin: str, text: str) -> None:
        with self._lock:
            if pin not in self._tasks:
                self._tasks[pin] = self.progress.add_task("", total=None)
            self.progress.update(self._tasks[pin], description=f"[bold]{pin}[/]: {text}")
            self._update_total()

    def finished(self, wheel: BuiltWheel) -> None:
        with self._lock:
            self.done += 1
            task = self._tasks.pop(wheel.pin, None)
            if task is not None:
                self.progress.remove_task(task)
            if self.report is not None and self.report.wheels:
                path, seconds = critical_path(self.report)
                if len(path) > 1:
                    self._critical = (f"; critical path so far {seconds:.0f} s: "
                                      f"{' -> '.join(path[-3:])}")
            self._update_total()
        mark = {"built": "[green]built[/]", "reused": "[cyan]reused[/]",
                "cached": "[cyan]reused from the cache[/]",
                "pre-built": "[bold yellow]pre-built, NOT from source:[/]",
                "upstream": "[yellow]upstream wheel (gap-fill), NOT from source:[/]"}[wheel.status]
        elapsed = time.monotonic() - self.started
        where = f"{wheel.note}; " if wheel.note else ""
        self.console.print(f"{mark} {wheel.path.name} [dim]({where}{wheel.seconds:.1f} s; "
                           f"{self.done} done, {elapsed:.0f} s elapsed)[/]", highlight=False)

    def run_started(self, report: BootstrapReport) -> None:
        """Follow a run's report, to show its critical path so far."""
        self.report = report

    def _update_total(self) -> None:
        states = [t.description for t in self.progress.tasks if t.id in self._tasks.values()]
        building = sum("building in container" in s for s in states)
        self.progress.update(self.total, description=(
            f"[bold]{self.done} done[/], {building} building, {len(states) - building} preparing "
            f"or waiting{self._critical}"))

    def summary(self, report: BootstrapReport, index_url: str, upstream_requests: int,
                failures: list[Failure] = ()) -> None:
        table = Table(title="mirror-builder bootstrap")
        table.add_column("package")
        table.add_column("version")
        table.add_column("status")
        table.add_column("seconds", justify="right")
        for wheel in report.wheels:
            status = {"pre-built": "[bold yellow]pre-built (not from source)[/]",
                      "upstream": "[yellow]upstream wheel, gap-fill (not from source)[/]",
                      "cached": f"reused from the cache ({escape(wheel.note)})"}.get(
                wheel.status, wheel.status)
            table.add_row(wheel.name, str(wheel.version), status, f"{wheel.seconds:.1f}")
        for failure in failures:
            name, _, version = failure.pin.partition("==")
            table.add_row(name, version, "[bold red]FAILED[/]", "")
        self.console.print(table)
        for failure in failures:
            chain = " -> ".join(failure.chain + (failure.pin,)) if failure.chain else failure.pin
            self.console.print(f"[bold red]failed[/] {chain}: {escape(failure.message)}"
                               + (f"\n  log: {failure.log_path}" if failure.log_path else ""),
                               highlight=False)
        for wheel in report.wheels:
            skipped = report.skipped_for(wheel.name, wheel.version)
            if skipped:
                self.console.print(f"[yellow]{escape(describe_skipped(wheel.name, skipped))}; "
                                   f"took {wheel.version}", highlight=False)
        for pin, removed in report.staged.items():
            self.console.print(f"[yellow]built in stages[/] {pin}: stage 1 without "
                               f"{', '.join(removed)} for its build cycle (not published), "
                               f"then in full", highlight=False)
        path, seconds = critical_path(report)
        if len(path) > 1:
            self.console.print(f"critical path ({seconds:.1f} s of builds that had to happen in "
                               f"turn): {' -> '.join(path)}", highlight=False)
        built = sum(1 for w in report.wheels if w.status == "built")
        pre_built = [w.pin for w in report.wheels if w.status == "pre-built"]
        if pre_built:
            self.console.print(f"[bold yellow]{len(pre_built)} taken pre-built from upstream, not "
                               f"built from source:[/] {', '.join(pre_built)}")
        upstream = [w.pin for w in report.wheels if w.status == "upstream"]
        if report.views is not None:
            everything, from_source = report.views
            self.console.print(f"[yellow]gap-fill: {len(upstream)} upstream wheels taken, not "
                               f"built from source:[/] {', '.join(upstream) or 'none new'}. The "
                               f"index has {everything} wheels (everything); its from-source/ "
                               f"view has the {from_source} built from source", highlight=False)
        pre_built += upstream
        cached = sum(1 for w in report.wheels if w.status == "cached")
        self.console.print(f"{built} built, {len(report.wheels) - built - len(pre_built)} reused "
                           f"({cached} from the build cache) in "
                           f"{time.monotonic() - self.started:.1f} s; "
                           f"{upstream_requests} requests to the upstream index. Install with:\n"
                           f"  pip install --index-url {index_url} --only-binary :all: PACKAGE")


def critical_path(report: BootstrapReport) -> tuple[list[str], float]:
    """The longest chain of build dependencies, weighted by each package's own build time."""
    seconds = {w.pin: w.seconds for w in report.wheels}
    needs: dict[str, set[str]] = {}
    for edge in report.edges:
        if edge.kind in ("build-system", "build-backend") and edge.parent in seconds:
            needs.setdefault(edge.parent, set()).add(edge.child)
    best: dict[str, tuple[float, list[str]]] = {}

    def longest(pin: str, seen: frozenset[str]) -> tuple[float, list[str]]:
        if pin in best:
            return best[pin]
        below = [longest(c, seen | {pin}) for c in needs.get(pin, ()) if c not in seen and c in seconds]
        total, path = max(below, default=(0.0, []))
        best[pin] = (total + seconds.get(pin, 0.0), path + [pin])
        return best[pin]

    if not seconds:
        return [], 0.0
    total, path = max(longest(p, frozenset()) for p in seconds)
    return path, total


class QuietReporter:
    """For tests and library use: records what happened, prints nothing."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def run_started(self, report: BootstrapReport) -> None:
        pass

    def activity(self, pin: str, text: str) -> None:
        with self._lock:
            self.events.append((pin, text))

    def finished(self, wheel: BuiltWheel) -> None:
        with self._lock:
            self.events.append((wheel.pin, wheel.status))

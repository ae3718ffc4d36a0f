"""What the user sees while a bootstrap runs and when it ends (rich)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from mirror_builder.bootstrap import BootstrapReport, BuiltWheel


class RichReporter:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.started = time.monotonic()
        self.done = 0
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                 TextColumn("[dim]{task.fields[done]} done"), TimeElapsedColumn(),
                                 console=console, transient=True)
        self.task = self.progress.add_task("starting", done=0)

    def __enter__(self) -> "RichReporter":
        self.progress.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.progress.stop()

    def activity(self, pin: str, text: str) -> None:
        self.progress.update(self.task, description=f"[bold]{pin}[/]: {text}")

    def finished(self, wheel: BuiltWheel) -> None:
        self.done += 1
        self.progress.update(self.task, done=self.done)
        mark = {"built": "[green]built[/]", "reused": "[cyan]reused[/]",
                "pre-built": "[bold yellow]pre-built, NOT from source:[/]"}[wheel.status]
        elapsed = time.monotonic() - self.started
        self.console.print(f"{mark} {wheel.path.name} [dim]({wheel.seconds:.1f} s; "
                           f"{self.done} done, {elapsed:.0f} s elapsed)[/]")

    def summary(self, report: BootstrapReport, index_url: str, upstream_requests: int) -> None:
        table = Table(title="mirror-builder bootstrap")
        table.add_column("package")
        table.add_column("version")
        table.add_column("status")
        table.add_column("seconds", justify="right")
        for wheel in report.wheels:
            status = wheel.status if wheel.status != "pre-built" else \
                "[bold yellow]pre-built (not from source)[/]"
            table.add_row(wheel.name, str(wheel.version), status, f"{wheel.seconds:.1f}")
        self.console.print(table)
        built = sum(1 for w in report.wheels if w.status == "built")
        pre_built = [w.pin for w in report.wheels if w.status == "pre-built"]
        if pre_built:
            self.console.print(f"[bold yellow]{len(pre_built)} taken pre-built from upstream, not "
                               f"built from source:[/] {', '.join(pre_built)}")
        self.console.print(f"{built} built, {len(report.wheels) - built - len(pre_built)} reused in "
                           f"{time.monotonic() - self.started:.1f} s; "
                           f"{upstream_requests} requests to the upstream index. Install with:\n"
                           f"  pip install --index-url {index_url} --only-binary :all: PACKAGE")


class QuietReporter:
    """For tests and library use: records what happened, prints nothing."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def activity(self, pin: str, text: str) -> None:
        self.events.append((pin, text))

    def finished(self, wheel: BuiltWheel) -> None:
        self.events.append((wheel.pin, wheel.status))

"""`verify`: rebuild published wheels from their recorded inputs and compare the bytes."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mirror_builder.cli.common import (cluster_of, executor_options, output_of, output_option,
                                       pin, settings_of, writing)
from mirror_builder.errors import UsageError

# Exit statuses beyond 0 (every wheel reproduced) and 1 (a wheel differs, or its rebuild failed).
UNVERIFIABLE = 3  # none differs, but an input changed since some build: not exact


def add_verify(commands) -> None:
    verify = commands.add_parser(
        "verify", help="rebuild published wheels from their recorded inputs and compare bytes",
        description="Rebuild NAME==VERSION (the newest build of that version for the target), "
                    "or with --all every version in the output, from its recorded inputs alone: "
                    "the archived sdist, the build environment's wheels from the index, the "
                    "same patches, overrides and image, all by hash. The rebuild varies what "
                    "should not matter (the build folder, host name, CPU count and make -j, "
                    "the order of environment variables) and must give the published file, "
                    "byte for byte. The result is kept beside the record as a signed in-toto "
                    "statement (SLSA verification summary) that inspect shows; when it differs, "
                    "diffoscope's report is kept too (<wheel>.diffoscope.txt). An input changed "
                    "since the build (an image rebuilt with newer Debian packages, a patch, a "
                    "missing archived sdist) is named, not reported as a difference. Exit "
                    "status: 0 all reproduced, 1 a wheel differs or its rebuild failed, "
                    f"{UNVERIFIABLE} none differs but some could not be verified exactly.")
    verify.add_argument("requirement", metavar="NAME==VERSION", nargs="?")
    verify.add_argument("--all", action="store_true",
                        help="every version in the output (the newest build of each)")
    verify.add_argument("--target", metavar="NAME", help="build target from settings.yaml")
    verify.add_argument("--json", action="store_true", help="the results as JSON on stdout")
    output_option(verify, writes=True)
    executor_options(verify)
    verify.set_defaults(run=_verify)


def _verify(args, console: Console) -> int:
    from mirror_builder.cli.progress import RichReporter
    from mirror_builder.engine.pipeline import RunOptions, open_pipeline

    if bool(args.requirement) == bool(args.all):
        raise UsageError("give NAME==VERSION or --all (not both)")
    name, version = pin(args.requirement) if args.requirement else (None, None)
    settings = settings_of(args)
    options = RunOptions(output=output_of(args, settings, existing=True), target=args.target,
                         cluster=cluster_of(args, settings))
    with writing(args, options.output, console), RichReporter(console) as reporter:
        with open_pipeline(settings, options, reporter) as (pipeline, _):
            results, passed_over = pipeline.verify(name, version)
    if not results and not passed_over:
        what = f"{name}=={version}" if name else "anything"
        raise UsageError(f"{options.output} has no build of {what} for the target "
                         f"{args.target or settings.target(None).name}")
    if args.json:
        sys.stdout.write(json.dumps({"schema": "mirror-builder/verify/v1", "results": [
            {"name": r.name, "version": r.version, "wheel": r.wheel, "status": r.status,
             "summary": r.summary, "varied": r.varied, "seconds": round(r.seconds, 3),
             "differences": str(r.differences) if r.differences else None}
            for r in results], "passed_over": passed_over}, indent=2) + "\n")
    _print_results(console, results, passed_over)
    if any(r.status == "differs" for r in results):
        return 1
    return UNVERIFIABLE if any(r.status == "unverifiable" for r in results) else 0


def _print_results(console: Console, results, passed_over: list[str]) -> None:
    table = Table(title="verify: rebuilt from the recorded inputs")
    for column in ("wheel", "result", "seconds"):
        table.add_column(column)
    style = {"reproduced": "green", "differs": "bold red", "unverifiable": "yellow"}
    for r in results:
        table.add_row(r.wheel, f"[{style[r.status]}]{r.status}[/]", f"{r.seconds:.1f}")
    console.print(table)
    # Unwrapped, one line each: what a person (or grep) needs to act on.
    for r in results:
        if r.status != "reproduced":
            where = f"; diffoscope's report: {r.differences}" if r.differences else ""
            console.print(f"[{style[r.status]}]{r.status}[/] {escape(r.wheel)}: "
                          f"{escape(r.summary)}{escape(where)}", highlight=False, soft_wrap=True)
    for line in passed_over:
        console.print(f"passed over {escape(line)}", highlight=False)
    counts = {s: sum(r.status == s for r in results) for s in style}
    console.print(f"{counts['reproduced']} of {len(results)} reproduced bit-identical, "
                  f"{counts['differs']} differ, {counts['unverifiable']} could not be verified "
                  f"exactly", highlight=False)

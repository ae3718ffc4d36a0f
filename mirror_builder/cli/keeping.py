"""Commands that keep a carried index current: update (for cron) and review (a person's approval)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console

from mirror_builder.cli.common import (cluster_of, executor_options, output_of, output_option,
                                       settings_of, versions_options, writing)
from mirror_builder.errors import MirrorBuilderError
from mirror_builder.layout import OutputLayout


def add_update(commands) -> None:
    update = commands.add_parser(
        "update", help="build new upstream releases of the packages we carry (for cron)",
        description="For every project in the index (or only NAME...): ask upstream for its page "
                    "(conditionally: an unchanged project costs a 304), mirror upstream yanks "
                    "into our index, build the new releases the update policy admits (update: in "
                    "settings.yaml, a package's update: override), one job each, and rebuild the "
                    "versions whose overrides, patches or image changed. A job that needs a "
                    "package we do not carry waits in the review queue.")
    update.add_argument("names", nargs="*", metavar="NAME", help="only these projects")
    output_option(update, writes=True)
    update.add_argument("--target", metavar="NAME", help="build target from settings.yaml")
    update.add_argument("--dry-run", action="store_true",
                        help="only check upstream and say what would be built")
    update.add_argument("--json", action="store_true", help="the report as JSON on stdout")
    executor_options(update)
    versions_options(update, builds=False)
    update.set_defaults(run=_update)


def add_review(commands) -> None:
    review = commands.add_parser(
        "review", help="the queue of packages waiting for a person's approval",
        description="list: packages waiting (--all: also decided ones), with who needs them. "
                    "show NAME: one entry and the jobs waiting for it. approve NAME: carry it "
                    "from now on, build it and resume the jobs that waited for it. reject NAME: "
                    "never carry it; the jobs that waited for it end as denied.")
    review.add_argument("action", choices=["list", "show", "approve", "reject"])
    review.add_argument("name", nargs="?", metavar="NAME")
    review.add_argument("--note", default="", help="why (kept with the decision)")
    review.add_argument("--all", action="store_true", help="list: decided entries too")
    review.add_argument("--json", action="store_true", help="list/show: as JSON on stdout")
    review.add_argument("--target", metavar="NAME", help="build target for approve")
    output_option(review, writes=True)
    review.set_defaults(run=_review)


def _updater(args, settings, output: Path, reporter):
    """An Updater whose jobs share one pipeline, opened only if a job has to run."""
    from mirror_builder.engine.pipeline import RunOptions, open_pipeline
    from mirror_builder.index.wheelindex import WheelIndex
    from mirror_builder.engine.updater import SharedBootstrapper, Updater
    from mirror_builder.engine.connect import upstream_for

    target = settings.target(args.target)
    upstream = upstream_for(settings, refresh=True)
    options = RunOptions(output=output, target=target.name, review=True,
                         cluster=cluster_of(args, settings))

    def pipeline():
        from contextlib import contextmanager

        @contextmanager
        def only_bootstrapper():
            with open_pipeline(settings, options, reporter) as (bootstrapper, _):
                yield bootstrapper
        return only_bootstrapper()

    shared = SharedBootstrapper(pipeline)
    updater = Updater(settings=settings, upstream=upstream, index=WheelIndex(output),
                      target=target.name, bootstrapper_for=shared.for_policy)
    return updater, shared, upstream


def _update(args, console: Console) -> int:
    from dataclasses import asdict

    from mirror_builder.cli.progress import RichReporter

    settings = settings_of(args)
    output = output_of(args, settings, existing=True)
    if not OutputLayout(output).simple.is_dir():
        raise MirrorBuilderError(f"{output} holds no index yet; bootstrap what to carry first")
    with writing(args, output, console), RichReporter(console) as reporter:
        updater, shared, upstream = _updater(args, settings, output, reporter)
        try:
            report = updater.run(args.names or None, dry_run=args.dry_run)
        finally:
            shared.close()
    counts = {"requests": upstream.requests_made, "full_responses": upstream.full_responses,
              "not_modified": upstream.not_modified}
    if args.json:
        document = asdict(report) | {"upstream": counts}
        document["decisions"] = {name: [{"version": str(d.version), "build": d.build,
                                         "reason": d.reason} for d in decisions]
                                 for name, decisions in report.decisions.items()}
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        _print_update(console, report, counts, args.dry_run)
    return 1 if report.failed else 0


def _print_update(console: Console, report, counts: dict, dry_run: bool) -> None:
    console.print(f"checked {report.checked} projects upstream ({report.unchanged} unchanged); "
                  f"{counts['requests']} requests, {counts['full_responses']} full responses, "
                  f"{counts['not_modified']} not modified", highlight=False)
    for name, decisions in report.decisions.items():
        for decision in decisions:
            if decision.build or decision.reason.startswith(("too fresh", "release time unknown")):
                verb = ("would build" if dry_run else "new") if decision.build else "not yet"
                console.print(f"  {verb} {name}=={decision.version}: {decision.reason}",
                              highlight=False)
    for pin in report.built:
        console.print(f"[green]built[/] {pin}", highlight=False)
    for wheel in report.yanked:
        console.print(f"[yellow]yanked[/] {wheel} (yanked upstream)", highlight=False)
    for wheel, why in report.rebuilt.items():
        console.print(f"[green]rebuilt[/] {wheel}: {why}", highlight=False)
    for pin in report.resumed:
        console.print(f"resumed {pin} after review", highlight=False)
    for pin, names in report.waiting.items():
        console.print(f"[yellow]waiting[/] {pin}: needs {', '.join(names)}, which we do not carry "
                      f"yet; see mirror-builder review list", highlight=False)
    for pin, why in report.failed.items():
        console.print(f"[red]failed[/] {pin}: {why}", highlight=False)
    if not (report.built or report.waiting or report.failed or report.yanked or report.rebuilt):
        console.print("nothing new to build")


def _review(args, console: Console) -> int:
    from mirror_builder.jobs.review import ReviewQueue

    settings = settings_of(args)
    output = output_of(args, settings, existing=True)
    queue = ReviewQueue(output)
    if args.action in ("show", "approve", "reject") and not args.name:
        raise MirrorBuilderError(f"review {args.action} needs a package NAME")
    if args.action == "list":
        return _review_list(args, console, queue)
    if args.action == "show":
        return _review_show(args, console, queue, output)
    return _review_decide(args, console, queue, settings, output)


def _review_list(args, console: Console, queue) -> int:
    from dataclasses import asdict

    entries = [e for e in queue.entries() if args.all or e.state == "pending"]
    if args.json:
        sys.stdout.write(json.dumps([asdict(e) for e in entries], indent=2) + "\n")
        return 0
    if not entries:
        console.print("nothing waits for review")
    for entry in entries:
        needed = "; ".join(f"{r.by} requires {r.requirement or entry.name}" for r in entry.requests)
        console.print(f"{entry.name} [{entry.state}] since {entry.first_seen}: {needed}",
                      highlight=False)
    return 0


def _review_show(args, console: Console, queue, output: Path) -> int:
    from dataclasses import asdict

    entry = queue.get(args.name)
    if entry is None:
        raise MirrorBuilderError(f"{args.name} is not in the review queue of {output}")
    waiting = [asdict(j) for j in queue.waiting() if entry.name in j.waiting_for]
    if args.json:
        sys.stdout.write(json.dumps(asdict(entry) | {"waiting_jobs": waiting}, indent=2) + "\n")
        return 0
    console.print(f"{entry.name}: {entry.state} (first asked for {entry.first_seen}"
                  + (f"; {entry.state} by {entry.decided_by} at {entry.decided_at}" if entry.decided_by else "")
                  + (f": {entry.note}" if entry.note else "") + ")", highlight=False)
    for request in entry.requests:
        console.print(f"  needed by {request.by} ({request.requirement}); chain: "
                      f"{' -> '.join(request.chain) or '-'}; job {request.job}", highlight=False)
    for job in waiting:
        console.print(f"  waiting job {job['job_id']}: {job['package']}=={job['version']} "
                      f"({job['trigger']}: {job['detail']})", highlight=False)
    return 0


def _review_decide(args, console: Console, queue, settings, output: Path) -> int:
    """approve or reject: record the decision, then build what it lets through."""
    import getpass

    from packaging.utils import canonicalize_name

    from mirror_builder.cli.progress import RichReporter
    from mirror_builder.engine.updater import UpdateReport

    with writing(args, output, console):
        state = "approved" if args.action == "approve" else "rejected"
        queue.decide(args.name, state, getpass.getuser(), args.note)
        console.print(f"{args.name}: {state}", highlight=False)
        report = UpdateReport()
        with RichReporter(console) as reporter:
            updater, shared, _ = _updater(args, settings, output, reporter)
            try:
                waited = [j for j in queue.waiting() if canonicalize_name(args.name) in j.waiting_for]
                if state == "approved" and not waited:
                    _build_approved(updater, args.name, report)
                updater.resume_waiting(report)
            finally:
                shared.close()
    _print_update(console, report, {"requests": 0, "full_responses": 0, "not_modified": 0}, False)
    return 1 if report.failed else 0


def _build_approved(updater, name: str, report) -> None:
    """Approved with no job waiting for it: a job for its newest release the policy admits."""
    import getpass

    from packaging.utils import canonicalize_name

    key = canonicalize_name(name)
    wanted = updater.decide_for(key, report)
    if not wanted:
        raise MirrorBuilderError(f"{key}: upstream has no release the update policy admits: "
                                 + "; ".join(f"{d.version}: {d.reason}"
                                             for d in report.decisions.get(key, [])[:3]))
    updater.run_job(key, wanted[0].version, "approved", f"approved by {getpass.getuser()}", report)

"""Commands that read what was built: inspect, verify-wheel, history."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console

from mirror_builder.cli.common import output_of, output_option, pin, settings_of
from mirror_builder.errors import MirrorBuilderError


def add_inspect(commands) -> None:
    inspect = commands.add_parser(
        "inspect", help="show how a wheel was built",
        description="Show the build record of NAME==VERSION in the index (every rebuild, newest "
                    "first) or of a wheel file from anywhere. A wheel file is verified first: "
                    "its RECORD, the record inside it, and its sha256 against the record beside "
                    "the index in OUTPUT; a wheel that is not what its record claims is shown as "
                    "NOT VERIFIED (exit status 1).")
    inspect.add_argument("what", metavar="NAME==VERSION|WHEEL")
    output_option(inspect)
    shown = inspect.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="the records as JSON (versioned schema)")
    shown.add_argument("--log", action="store_true", help="the newest build's log")
    shown.add_argument("--freeze", action="store_true", help="the newest build environment's freeze")
    shown.add_argument("--slsa", action="store_true",
                       help="the newest build's in-toto statement (SLSA provenance v1), out "
                            "of its signed envelope (--verify checks the signature)")
    inspect.add_argument("--verify", action="store_true",
                         help="check each build's signed in-toto statement: signed by the key "
                              "(--key, or the output's keys/ by the id the signature names) and "
                              "about exactly the wheel and sha256 its record names; exit 1 "
                              "otherwise")
    inspect.add_argument("--key", type=Path, metavar="FILE",
                         help="the public key to trust for --verify (PEM), e.g. a copy of the "
                              "index's signing-key.pub you got another way")
    inspect.add_argument("--require-index", action="store_true",
                         help="for a WHEEL: exit 1 unless its sha256 matches the record beside "
                              "the index in OUTPUT (without it, a wheel with no such record is "
                              "shown as unverified and the exit status is 0)")
    inspect.set_defaults(run=_inspect)


def add_verify_wheel(commands) -> None:
    verify = commands.add_parser(
        "verify-wheel", help="check that wheel files are the ones their build records describe",
        description="For each FILE: check that every archive member matches RECORD, that the "
                    "build record inside it names this wheel, and that the file's sha256 matches "
                    "the record kept beside the index in OUTPUT (records/<project>/"
                    "<wheel>.build.json). Exit status 0 only if every file verifies: a record "
                    "inside a wheel alone proves nothing (anyone can copy one in).")
    verify.add_argument("files", nargs="+", type=Path, metavar="FILE")
    output_option(verify)
    verify.add_argument("--json", action="store_true",
                        help="the verdicts as JSON (schema mirror-builder/verify-wheel/v1)")
    verify.set_defaults(run=_verify_wheel)


def add_history(commands) -> None:
    history = commands.add_parser(
        "history", help="show the audit log of build jobs, newest first",
        description="Show every build job recorded in OUTPUT/jobs/history.jsonl, newest first: "
                    "when it ended, its id, what triggered it (upstream-release, approved, "
                    "rebuild, config-change), the package version and target, the rebuild "
                    "number, the result, how long it took, and the wheel it made or why it "
                    "did not.")
    history.add_argument("name", nargs="?", metavar="NAME",
                         help="only this package's jobs (any spelling of its name)")
    output_option(history)
    history.add_argument("--json", action="store_true",
                         help="the jobs as a JSON list (schema 1), newest first")
    history.add_argument("--limit", type=int, metavar="N", help="only the newest N jobs")
    history.set_defaults(run=_history)


def _inspect(args, console: Console) -> int:
    from mirror_builder.cli.views import inspect_document, verdict_line
    from mirror_builder.provenance.store import RecordStore

    output = output_of(args, settings_of(args))
    store = RecordStore(output)
    verdict, records, title = _records_to_inspect(args.what, store)
    failed = verdict is not None and (
        verdict.status == "failed" or (args.require_index and verdict.status != "verified"))
    jobs = _jobs_of(records, output)
    # Machine-readable forms go to stdout verbatim (rich would wrap long lines); the verdict of a
    # wheel that is not verified goes to stderr beside them.
    machine = args.json or args.freeze or args.log or args.slsa
    if machine and verdict is not None and verdict.status != "verified":
        console.print(verdict_line(verdict), soft_wrap=True)
    if args.json:
        rebuilt = {r["wheel"]: store.verification(r["name"], r["wheel"]) for r in records}
        sys.stdout.write(json.dumps(inspect_document(
            records, jobs, verdict, {k: v for k, v in rebuilt.items() if v}), indent=2) + "\n")
    elif machine and (failed or not records):
        return 1  # no record describes this file: its log or freeze would be another file's
    elif args.freeze:
        sys.stdout.write("".join(f"{line}\n" for line in records[0]["build_env"]["freeze"]))
    elif args.log or args.slsa:
        newest = records[0]
        path = (store.log_path if args.log else store.slsa_path)(newest["name"], newest["wheel"])
        if (verdict is not None and verdict.status != "verified") or not path.is_file():
            raise MirrorBuilderError(f"{newest['wheel']}: {path.name} is not in {store.root}; it is "
                                     f"kept beside the index the wheel was published to")
        if args.log:
            sys.stdout.write(path.read_text())
        else:  # the statement itself; its envelope's signature is what --verify checks
            sys.stdout.write(json.dumps(store.statement(newest["name"], newest["wheel"])[0],
                                        indent=2) + "\n")
    else:
        _show_records(verdict, title, records, jobs, store)
    if args.verify:
        failed = not _signatures_hold(records, store, output, args.key, console) or failed
    return 1 if failed else 0


def _signatures_hold(records, store, output: Path, key: Path | None, console: Console) -> bool:
    from rich.markup import escape

    from mirror_builder.layout import OutputLayout
    from mirror_builder.provenance.signing import (SigningError, check_signed_statement,
                                                   load_public)

    public = load_public(key) if key is not None else None
    held = True
    for record in records:
        paths = [store.slsa_path(record["name"], record["wheel"])]
        verification = store.layout.verification(record["name"], record["wheel"])
        paths += [verification] if verification.is_file() else []
        for path in paths:
            try:
                keyid = check_signed_statement(path, record["wheel"], record["wheel_sha256"],
                                               public, OutputLayout(output))
                console.print(f"[green]signature holds[/]: {escape(path.name)} (key "
                              f"{keyid[:16]}...)", highlight=False, soft_wrap=True)
            except SigningError as exc:
                held = False
                console.print(f"[bold red]signature does not hold[/]: {escape(path.name)}: "
                              f"{escape(str(exc))}", highlight=False, soft_wrap=True)
    return held


def _records_to_inspect(what: str, store):
    """(verdict or None, the build records, a title): a wheel file is verified first."""
    verdict = None
    if what.endswith(".whl"):
        verdict = _verified_wheel(Path(what), store)
        records = [verdict.record] if verdict.record else []
        title = f"{records[0]['name']} {records[0]['version']}" if records else ""
        if verdict.status == "unverified":
            title = f"{title} (claimed, unverified)"
    else:
        name, version = pin(what)
        records = store.for_version(name, version)
        if not records:
            raise MirrorBuilderError(f"{name}=={version} has no build records in {store.root}")
        title = f"{name} {version}"
    return verdict, records, title


def _jobs_of(records: list[dict], output: Path) -> dict[str, dict]:
    """The audit-log entries of the jobs that made these records, by job id."""
    from mirror_builder.jobs.log import JobLog

    log_of_jobs = JobLog(output)
    jobs = {}
    for record in records:
        job_id = (record.get("job") or {}).get("id")
        found = log_of_jobs.find(job_id) if job_id and log_of_jobs.exists() else None
        if found is not None:
            jobs[job_id] = found.to_dict()
    return jobs


def _show_records(verdict, title: str, records: list[dict], jobs: dict[str, dict],
                  store) -> None:
    from mirror_builder.cli.views import render_records, render_verdict

    shown = Console()
    if verdict is not None:
        render_verdict(shown, verdict)
    try:
        if records:
            render_records(shown, title, records, jobs,
                           file_sha256=verdict.sha256 if verdict is not None else None,
                           verification=store.verification(records[0]["name"],
                                                           records[0]["wheel"]))
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
        if verdict is None or verdict.status == "verified":
            raise
        # An unverified claim is anyone's JSON: it may lack what a real record has.
        raise MirrorBuilderError(f"the record inside {verdict.path.name} is malformed "
                                 f"({type(exc).__name__}: {exc}); --json shows it as it is"
                                 ) from None


def _verified_wheel(path: Path, store):
    """A wheel file's verdict; a wheel that nothing describes is an error, as it always was."""
    from mirror_builder.provenance.verify import verify_wheel

    if not path.is_file():
        raise MirrorBuilderError(f"{path}: no such wheel file")
    verdict = verify_wheel(path, store)
    if verdict.describes_nothing:
        raise MirrorBuilderError(f"{path.name} was not built by mirror-builder: it carries no "
                                 f"build record in its .dist-info")
    return verdict


def _verify_wheel(args, console: Console) -> int:
    from rich.text import Text

    from mirror_builder.cli.views import verdict_line, verify_document
    from mirror_builder.provenance.store import RecordStore
    from mirror_builder.provenance.verify import verify_wheel

    store = RecordStore(output_of(args, settings_of(args)))
    verdicts = [verify_wheel(path, store) for path in args.files]
    if args.json:
        sys.stdout.write(json.dumps(verify_document(verdicts), indent=2) + "\n")
    else:
        shown = Console()
        for verdict in verdicts:
            shown.print(verdict_line(verdict, name_file=True), soft_wrap=True)
            if verdict.sha256:
                shown.print(Text(f"  sha256 {verdict.sha256}"), soft_wrap=True)
    return 0 if all(v.status == "verified" for v in verdicts) else 1


def _history(args, console: Console) -> int:
    from rich.text import Text

    from mirror_builder.jobs.log import JobLog

    if args.limit is not None and args.limit < 1:
        raise MirrorBuilderError("--limit must be at least 1")
    output = output_of(args, settings_of(args), existing=True)
    job_log = JobLog(output)  # read-only: appends are whole lines under the file's own flock
    if not job_log.exists():
        if args.json:
            sys.stdout.write("[]\n")
        console.print(f"no jobs recorded in {output} yet", highlight=False)
        return 0
    records = job_log.read(args.name)
    # Newest first: by end time, and among equal times the later-appended first.
    ordered = [r for _, r in sorted(enumerate(records), key=lambda p: (p[1].ended_at, p[0]),
                                    reverse=True)][:args.limit]
    if args.json:
        sys.stdout.write(json.dumps([r.to_dict() for r in ordered], indent=2) + "\n")
        return 0
    if not ordered:
        console.print(f"no jobs recorded for {args.name} in {output}", highlight=False)
        return 0
    _print_history(ordered, Text(f"build jobs{f' of {args.name}' if args.name else ''} in "
                                 f"{output}, newest first"))
    return 0


def _print_history(ordered, title) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title)
    for column in ("when", "job", "trigger", "package", "target", "rebuild", "result",
                   "duration", "wheel or message"):
        table.add_column(column, justify="right" if column in ("rebuild", "duration") else "left")
    styles = {"built": "green", "failed": "red", "smoke-failed": "red",
              "waiting-review": "yellow", "denied": "magenta"}
    for r in ordered:
        outcome = r.wheel or r.message
        if r.waiting_for:
            outcome = "; ".join(filter(None, [outcome, f"waiting for {', '.join(r.waiting_for)}"]))
        # Text, not markup: messages may hold brackets ("[Errno 28] No space left on device").
        table.add_row(*map(Text, (r.ended_at[:19].replace("T", " "), r.job.id, r.job.trigger,
                                  f"{r.job.package}=={r.job.version}", r.job.target,
                                  "" if r.rebuild_number is None else str(r.rebuild_number))),
                      Text(r.result, style=styles.get(r.result, "")), f"{r.seconds:.1f} s",
                      Text(outcome))
    (Console() if sys.stdout.isatty() else Console(width=200)).print(table)

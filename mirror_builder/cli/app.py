"""Command line: parse arguments, call the pipeline, print results. No logic of its own."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler

from mirror_builder import __version__
from mirror_builder.errors import MirrorBuilderError, UsageError
from mirror_builder.logs import PackageFilter

log = logging.getLogger("mirror_builder")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mirror-builder",
        description="Build a package's whole wheel tree from source in network-isolated podman "
                    "containers, and publish it as a wheels-only index.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _global_options(parser, default=None)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def output_option(sub: argparse.ArgumentParser, writes: bool = False) -> None:
        sub.add_argument("-o", "--output", type=Path, metavar="DIR",
                         help="output directory: index, records, build order (default: settings)")
        if writes:
            sub.add_argument("--wait", action="store_true",
                             help="if another mirror-builder is writing the output directory, "
                                  "wait for it instead of stopping with an error")

    boot = commands.add_parser(
        "bootstrap", help="build requirements and everything under them from source",
        description="Resolve the requirements, then build them, their build dependencies and "
                    "their install dependencies bottom-up from sdists, each in a podman container "
                    "with no network, and publish the wheels to OUTPUT/simple.")
    boot.add_argument("requirements", nargs="*", metavar="REQUIREMENT",
                      help="a requirement (e.g. 'stevedore==5.4.1') or a local sdist path")
    boot.add_argument("-r", "--requirements", dest="requirement_files", action="append",
                      type=Path, default=[], metavar="FILE", help="read requirements from FILE")
    boot.add_argument("-c", "--constraints", dest="constraint_files", action="append",
                      type=Path, default=[], metavar="FILE",
                      help="constrain versions (applies to build environments too)")
    output_option(boot, writes=True)
    boot.add_argument("--target", metavar="NAME", action="append",
                      help="build target from settings.yaml; repeat for several, or 'all' "
                           "(default: the first for this machine's architecture)")
    boot.add_argument("--pre", action="store_true", help="allow pre-releases")
    boot.add_argument("--refresh", action="store_true",
                      help="ask the upstream index again instead of using cached answers")
    boot.add_argument("-j", "--jobs", type=int, metavar="N",
                      help="builds at once (default: build.jobs in settings, else what the "
                           "machine's cores and memory allow)")
    boot.add_argument("--manylinux", action="store_true", default=None,
                      help="repair platform wheels to a manylinux tag with auditwheel (built "
                           "from source too), so they install on other glibc distributions")
    boot.add_argument("--keep-going", action="store_true",
                      help="a failing package stops only what needs it; list the failures at "
                           "the end (exit status 1)")

    plan = commands.add_parser(
        "plan", help="show what bootstrap would build, in what order, without building",
        description="Resolve the requirements, read each sdist's build requirements statically "
                    "(pyproject.toml, with overrides applied) and install requirements from "
                    "upstream metadata, and print what would be built, in what order, with which "
                    "overrides. Nothing is built and no package code runs.")
    plan.add_argument("requirements", nargs="*", metavar="REQUIREMENT")
    plan.add_argument("-r", "--requirements", dest="requirement_files", action="append",
                      type=Path, default=[], metavar="FILE")
    plan.add_argument("-c", "--constraints", dest="constraint_files", action="append",
                      type=Path, default=[], metavar="FILE")
    plan.add_argument("--target", metavar="NAME", help="build target from settings.yaml")
    plan.add_argument("--pre", action="store_true", help="allow pre-releases")
    plan.add_argument("--json", action="store_true", help="the plan as JSON")

    rebuild = commands.add_parser(
        "rebuild", help="build one package version again, with the next rebuild number",
        description="Build NAME==VERSION again from its recorded, hash-checked sdist, with a "
                    "build environment taken from our index, and publish it with the next "
                    "rebuild number (build tag or .postN, see rebuild_numbering in settings). "
                    "Earlier wheels stay in the index untouched.")
    rebuild.add_argument("requirement", metavar="NAME==VERSION")
    rebuild.add_argument("--reason", required=True, help="why, kept in the build record")
    rebuild.add_argument("--bootstrap-missing", action="store_true",
                         help="build missing build dependencies from upstream first")
    rebuild.add_argument("--force", action="store_true",
                         help="with post-release numbering: rebuild even if wheels in the index "
                              "pin this exact version")
    output_option(rebuild, writes=True)
    rebuild.add_argument("--target", metavar="NAME", help="build target from settings.yaml")

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
                       help="the newest build's in-toto statement (SLSA provenance v1)")
    inspect.add_argument("--require-index", action="store_true",
                         help="for a WHEEL: exit 1 unless its sha256 matches the record beside "
                              "the index in OUTPUT (without it, a wheel with no such record is "
                              "shown as unverified and the exit status is 0)")

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

    yank = commands.add_parser(
        "yank", help="mark a version's wheels yanked (PEP 592); nothing is deleted",
        description="Mark every wheel of NAME==VERSION yanked in the index, so installers skip "
                    "it unless it is pinned exactly. Files are never deleted.")
    yank.add_argument("requirement", metavar="NAME==VERSION")
    yank.add_argument("--reason", help="shown to users by pip and uv")
    yank.add_argument("--undo", action="store_true", help="take the yank back")
    output_option(yank, writes=True)

    index = commands.add_parser(
        "index", help="write the index pages again from the files, or check them",
        description="Regenerate every page of the wheel index and the source archive from the "
                    "files on disk (keeping yanks), or with --check read them back as a client "
                    "would and report any page, hash, size or metadata file that does not match.")
    index.add_argument("--check", action="store_true", help="verify instead of writing")
    output_option(index, writes=True)

    serve = commands.add_parser(
        "serve", help="serve the index over HTTP(S), public or with read tokens",
        description="Serve OUTPUT over HTTP: /simple/ (PEP 503 HTML and PEP 691 JSON, chosen by "
                    "the Accept header), /files/ (wheels and their .metadata, with ETag, "
                    "Last-Modified and byte ranges), and /sources/simple/ (the sdists). With "
                    "--tokens (or serve.tokens_file in settings), every request needs a read "
                    "token (HTTP Basic); with --certfile and --keyfile, HTTPS.")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=_port_number, default=8080,
                       help="port, 0 for any free one (default: %(default)s)")
    serve.add_argument("--access-log", type=Path, metavar="FILE",
                       help="write the request log to FILE instead of standard error")
    serve.add_argument("--tokens", type=Path, metavar="FILE",
                       help="admit only requests with a read token from FILE (default: "
                            "serve.tokens_file in settings; see mirror-builder tokens)")
    serve.add_argument("--certfile", type=Path, metavar="FILE",
                       help="serve HTTPS with this certificate chain (PEM); needs --keyfile")
    serve.add_argument("--keyfile", type=Path, metavar="FILE", help="the certificate's private key (PEM)")
    output_option(serve)

    tokens = commands.add_parser(
        "tokens", help="the read tokens of a private index (serve, nginx)",
        description="add NAME: make a read token, store its bcrypt hash and print the token, "
                    "once. list: the token names and when each was made. revoke NAME: remove "
                    "it; a running serve stops admitting it at once. The file is htpasswd's "
                    "format, so nginx's auth_basic_user_file reads it too.")
    tokens.add_argument("action", choices=["add", "list", "revoke"])
    tokens.add_argument("name", nargs="?", metavar="NAME",
                        help="the token's name: the user name clients give with it")
    tokens.add_argument("--file", type=Path, metavar="FILE",
                        help="the tokens file (default: serve.tokens_file in settings)")

    overrides = commands.add_parser(
        "overrides", help="what is configured for which package, and a check of it all",
        description="list: every package with overrides, patches or a plugin. show NAME: all of "
                    "it for one package. lint: check that every override, patch and plugin loads "
                    "and refers to a project (and version) that exists upstream.")
    overrides.add_argument("action", choices=["list", "show", "lint"])
    overrides.add_argument("name", nargs="?", metavar="NAME", help="the package, for show")

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

    nginx = commands.add_parser(
        "nginx-config", help="print an nginx site that serves the index in production",
        description="Print a server block for Debian's nginx (/etc/nginx/conf.d/) that serves "
                    "OUTPUT as `serve` does: PEP 691 by Accept, .metadata files, only the "
                    "index's own files, no links followed; with --tokens, HTTP Basic auth "
                    "against the tokens file; with --certfile/--keyfile, TLS.")
    output_option(nginx)
    nginx.add_argument("--listen", default="443", metavar="[ADDRESS:]PORT",
                       help="nginx's listen address (default: %(default)s)")
    nginx.add_argument("--server-name", default="_", metavar="NAME",
                       help="the host name clients use (default: any)")
    nginx.add_argument("--tokens", type=Path, metavar="FILE",
                       help="require a token from this file (default: serve.tokens_file in "
                            "settings; see mirror-builder tokens)")
    nginx.add_argument("--certfile", type=Path, metavar="FILE", help="TLS certificate (PEM)")
    nginx.add_argument("--keyfile", type=Path, metavar="FILE", help="its private key (PEM)")

    images = commands.add_parser("images", help="build the targets' container images if needed")
    images.add_argument("--target", metavar="NAME", action="append",
                        help="build target from settings.yaml; repeat for several, or 'all'")
    for command in commands.choices.values():
        _global_options(command, default=argparse.SUPPRESS)
    return parser


def _global_options(parser: argparse.ArgumentParser, default) -> None:
    """--settings, -v and --debug: before the command, and after it too (with default SUPPRESS
    there, so that a value given before the command is not reset by the command's parser)."""
    flag = {} if default is None else {"default": default}
    parser.add_argument("--settings", type=Path, metavar="FILE", **flag,
                        help="settings file (default: ./settings.yaml, else the checkout's own)")
    parser.add_argument("-v", "--verbose", action="store_true", **flag, help="log each step")
    parser.add_argument("--debug", action="store_true", **flag,
                        help="debug logs and tracebacks on errors")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=True)
    handler = RichHandler(console=console, show_path=False, show_time=False,
                          rich_tracebacks=args.debug)
    handler.addFilter(PackageFilter())
    handler.setFormatter(logging.Formatter("%(package)s%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING)
    commands = {"bootstrap": _bootstrap, "plan": _plan, "rebuild": _rebuild, "inspect": _inspect,
                "verify-wheel": _verify_wheel,
                "yank": _yank, "index": _index, "serve": _serve, "tokens": _tokens, "overrides": _overrides,
                "images": _images, "history": _history, "update": _update, "review": _review,
                "nginx-config": _nginx_config}
    try:
        return commands[args.command](args, console)
    except MirrorBuilderError as exc:
        if args.debug:
            console.print_exception()
        console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: wheels already published stay in the index")
        return 130
    except Exception as exc:  # a bug or an unforeseen OS error: one line unless asked for more
        if args.debug:
            console.print_exception()
        else:
            console.print(f"[red]error:[/] {type(exc).__name__}: {exc} (run again with --debug "
                          f"for the traceback)", highlight=False, soft_wrap=True)
        return 1


def _settings(args):
    from mirror_builder.config.settings import load_settings

    return load_settings(args.settings)


def _output(args, settings, *, existing: bool = False) -> Path:
    """The output directory; with existing, it must be there already (commands that read or
    amend an index must not create an empty one where a typo points)."""
    output = (args.output or settings.output_dir).resolve()
    if output.exists() and not output.is_dir():
        raise UsageError(f"{output} is a file, not an output directory")
    if existing and not output.is_dir():
        raise UsageError(f"{output}: no such output directory (bootstrap creates one)")
    return output


def _writing(args, output: Path, console: Console):
    """Hold the output directory for this command (see outputlock.py)."""
    from mirror_builder.index.outputlock import hold_output

    command = " ".join(sys.argv[1:]) or args.command
    return hold_output(output, command, wait=args.wait, on_wait=lambda holder: console.print(
        f"waiting for {output}: in use by {holder}", highlight=False))


def _images(args, console: Console) -> int:
    from mirror_builder.sandbox.containers import ImageManager, PodmanService

    settings = _settings(args)
    with PodmanService(settings.cache_dir / "state") as podman:
        images = ImageManager(podman, settings.cache_dir)
        for target in settings.select_targets(args.target):
            with console.status(f"preparing the image for {target.name}"):
                image = images.ensure(target)
                markers = images.marker_environment(image)
            console.print(f"{target.name}: {image.tag} (Python {markers['python_full_version']}, "
                          f"{markers['platform_machine']}, {len(image.system_packages)} system "
                          f"packages)")
    return 0


def _bootstrap(args, console: Console) -> int:
    from mirror_builder.resolve.inputs import read_request

    settings = _settings(args)
    request = read_request(args.requirements, args.requirement_files, args.constraint_files)
    if args.jobs is not None and args.jobs < 1:
        raise MirrorBuilderError("--jobs must be at least 1")
    targets = settings.select_targets(args.target)
    with _writing(args, _output(args, settings), console):
        _bootstrap_targets(args, console, settings, request, targets)
    return 0


def _bootstrap_jobs(args, request):
    """A bootstrap is the reviewed way in: what it builds counts as approved by whoever runs it."""
    import getpass

    from packaging.utils import canonicalize_name

    from mirror_builder.engine.bootstrap import JobPolicy
    from mirror_builder.jobs.log import JobLog

    asked = " ".join(str(r) for r in request.requirements)
    return JobPolicy(log=JobLog(_output(args, _settings(args))), trigger="approved",
                     detail=f"bootstrap {asked} (run by {getpass.getuser()})",
                     requested=frozenset(canonicalize_name(r.name) for r in request.requirements))


def _bootstrap_targets(args, console: Console, settings, request, targets) -> None:
    from mirror_builder.engine.bootstrap import BootstrapFailed
    from mirror_builder.engine.pipeline import RunOptions, open_pipeline
    from mirror_builder.cli.progress import RichReporter

    failed = None
    # One target after another, into the same index: each has its own image, resolution and
    # build order; wheels that fit several targets (pure Python) are built once and shared.
    for number, target in enumerate(targets):
        options = RunOptions(output=_output(args, settings), target=target.name,
                             refresh=args.refresh and number == 0, allow_prereleases=args.pre,
                             constraints=request.constraints, direct=request.direct,
                             jobs=args.jobs, keep_going=args.keep_going, primary=number == 0,
                             manylinux=args.manylinux, job_policy=_bootstrap_jobs(args, request))
        if len(targets) > 1:
            console.rule(f"target {target.name}")
        with RichReporter(console) as reporter:
            with open_pipeline(settings, options, reporter,
                               on_image=lambda t: reporter.activity(t, "preparing the image")
                               ) as (pipeline, upstream):
                reporter.watch(pipeline.report)
                try:
                    report, target_failed = pipeline.run(list(request.requirements)), None
                except BootstrapFailed as exc:
                    report, target_failed = pipeline.report, exc
        reporter.summary(report, pipeline.index.url(), upstream.requests_made,
                         target_failed.failures if target_failed else [])
        failed = failed or target_failed
    if failed:
        raise failed


def _plan(args, console: Console) -> int:
    from rich.table import Table

    from mirror_builder.engine.bootstrap import UpstreamFinder
    from mirror_builder.sandbox.containers import ImageManager, PodmanService
    from mirror_builder.resolve.inputs import read_request
    from mirror_builder.engine.pipeline import upstream_for
    from mirror_builder.engine.planner import Planner
    from mirror_builder.resolve.target import TargetEnvironment

    settings = _settings(args)
    request = read_request(args.requirements, args.requirement_files, args.constraint_files)
    target_settings = settings.target(args.target)
    with PodmanService(settings.cache_dir / "state") as podman:  # the target's markers
        images = ImageManager(podman, settings.cache_dir)
        with console.status(f"preparing the image for {target_settings.name}"):
            image = images.ensure(target_settings)
            target = TargetEnvironment(target_settings.name, images.marker_environment(image))
    planner = Planner(settings, UpstreamFinder(upstream_for(settings), settings.cache_dir / "sdists"),
                      target, constraints=request.constraints, allow_prereleases=args.pre)
    with console.status("resolving and reading build requirements"):
        plan = planner.plan(list(request.requirements))
    if args.json:
        sys.stdout.write(json.dumps([{
            "name": p.candidate.name, "version": str(p.candidate.version), "source": p.source,
            "build_requires": p.build_requires, "needed_by": p.needed_by,
            "overrides": p.overrides, "patches": p.patches, "plugin_hooks": p.plugin_hooks,
            "note": p.note,
        } for p in plan.order], indent=2) + "\n")
        return 0
    table = Table(title=f"plan for {', '.join(str(r) for r in request.requirements)} "
                        f"on {target.name}: {len(plan.order)} packages, bottom-up")
    for column in ("#", "package", "version", "needed by", "source", "overrides"):
        table.add_column(column)
    for number, p in enumerate(plan.order, start=1):
        extras = p.overrides + ([f"{p.patches} patches"] if p.patches else []) + \
            ([f"plugin: {', '.join(p.plugin_hooks)}"] if p.plugin_hooks else [])
        table.add_row(str(number), p.candidate.name, str(p.candidate.version), p.needed_by[0]
                      + (f" (+{len(p.needed_by) - 1})" if len(p.needed_by) > 1 else ""),
                      p.source, ", ".join(extras))
    wide = Console(width=200)
    wide.print(table)
    for p in plan.order:
        if p.note:
            wide.print(f"[yellow]note[/] {p.candidate.pin}: {p.note}", highlight=False)
    return 0


def _rebuild(args, console: Console) -> int:
    from mirror_builder.engine.pipeline import RunOptions, open_pipeline
    from mirror_builder.engine.bootstrap import RebuildRequest
    from mirror_builder.cli.progress import RichReporter

    name, version = _pin(args.requirement)
    settings = _settings(args)
    options = RunOptions(output=_output(args, settings, existing=True), target=args.target)
    with _writing(args, options.output, console), RichReporter(console) as reporter:
        with open_pipeline(settings, options, reporter) as (pipeline, _):
            wheel = pipeline.rebuild(name, version, RebuildRequest(
                reason=args.reason, bootstrap_missing=args.bootstrap_missing, force=args.force))
    console.print(f"rebuilt {name}=={version} as [bold]{wheel.path.name}[/]; earlier wheels are "
                  f"unchanged in {options.output / 'simple'}")
    return 0


def _inspect(args, console: Console) -> int:
    from mirror_builder.jobs.log import JobLog
    from mirror_builder.provenance.store import RecordStore
    from mirror_builder.cli.views import inspect_document, render_records, render_verdict, verdict_line

    output = _output(args, _settings(args))
    store = RecordStore(output)
    verdict = None
    if args.what.endswith(".whl"):
        verdict = _verified_wheel(Path(args.what), store)
        records = [verdict.record] if verdict.record else []
        title = f"{records[0]['name']} {records[0]['version']}" if records else ""
        if verdict.status == "unverified":
            title = f"{title} (claimed, unverified)"
    else:
        name, version = _pin(args.what)
        records = store.for_version(name, version)
        if not records:
            raise MirrorBuilderError(f"{name}=={version} has no build records in {store.root}")
        title = f"{name} {version}"
    failed = verdict is not None and (
        verdict.status == "failed" or (args.require_index and verdict.status != "verified"))
    log_of_jobs = JobLog(output)
    jobs = {}
    for record in records:
        job_id = (record.get("job") or {}).get("id")
        found = log_of_jobs.find(job_id) if job_id and log_of_jobs.exists() else None
        if found is not None:
            jobs[job_id] = found.to_dict()
    # Machine-readable forms go to stdout verbatim (rich would wrap long lines); the verdict of a
    # wheel that is not verified goes to stderr beside them.
    machine = args.json or args.freeze or args.log or args.slsa
    if machine and verdict is not None and verdict.status != "verified":
        console.print(verdict_line(verdict), soft_wrap=True)
    if args.json:
        sys.stdout.write(json.dumps(inspect_document(records, jobs, verdict), indent=2) + "\n")
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
        sys.stdout.write(path.read_text())
    else:
        shown = Console()
        if verdict is not None:
            render_verdict(shown, verdict)
        try:
            if records:
                render_records(shown, title, records, jobs,
                               file_sha256=verdict.sha256 if verdict is not None else None)
        except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
            if verdict is None or verdict.status == "verified":
                raise
            # An unverified claim is anyone's JSON: it may lack what a real record has.
            raise MirrorBuilderError(f"the record inside {verdict.path.name} is malformed "
                                     f"({type(exc).__name__}: {exc}); --json shows it as it is"
                                     ) from None
    return 1 if failed else 0


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

    from mirror_builder.provenance.store import RecordStore
    from mirror_builder.cli.views import verdict_line, verify_document
    from mirror_builder.provenance.verify import verify_wheel

    store = RecordStore(_output(args, _settings(args)))
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


def _yank(args, console: Console) -> int:
    from mirror_builder.index.wheelindex import WheelIndex

    name, version = _pin(args.requirement)
    index = WheelIndex(_output(args, _settings(args), existing=True))
    with _writing(args, index.root, console):
        changed = index.yank(name, version, args.reason, undo=args.undo)
    if not changed:
        raise MirrorBuilderError(f"{name}=={version} has no wheels in {index.simple_dir}")
    verb = "un-yanked" if args.undo else "yanked"
    for filename in changed:
        console.print(f"{verb} {filename}")
    return 0


def _index(args, console: Console) -> int:
    from mirror_builder.index.wheelindex import WheelIndex, verify

    index = WheelIndex(_output(args, _settings(args), existing=True))
    if args.check:
        problems = verify(index) + verify(index.sources)
        for problem in problems:
            console.print(f"[red]problem:[/] {problem}", highlight=False)
        if problems:
            raise MirrorBuilderError(f"{len(problems)} problems in {index.root}")
        console.print(f"{index.root}: every page, hash, size and metadata file checks out")
        return 0
    with _writing(args, index.root, console):
        wheels = index.regenerate()
        sources = index.sources.regenerate()
    console.print(f"wrote the pages for {wheels} wheels and {sources} sdists in {index.root}")
    return 0


def _nginx_config(args, console: Console) -> int:
    from mirror_builder.serve.nginx import NginxSite, render_site

    def absolute(path: Path | None) -> Path | None:
        return None if path is None else path.absolute()

    settings = _settings(args)
    site = NginxSite(root=_output(args, settings, existing=True), listen=args.listen,
                     server_name=args.server_name,
                     tokens_file=absolute(args.tokens or settings.serve.tokens_file),
                     certfile=absolute(args.certfile), keyfile=absolute(args.keyfile))
    sys.stdout.write(render_site(site))
    return 0


def _port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is out of range (1 to 65535, or 0 for any "
                                         f"free port)")
    return port


def _serve(args, console: Console) -> int:
    from mirror_builder.serve.server import ServeOptions, serve

    settings = _settings(args)
    root = _output(args, settings)
    if not (root / "simple").is_dir():
        raise UsageError(f"{root} holds no index yet; run mirror-builder bootstrap first")
    options = ServeOptions(root=root, host=args.host, port=args.port, access_log=args.access_log,
                           tokens_file=args.tokens or settings.serve.tokens_file,
                           certfile=args.certfile, keyfile=args.keyfile)
    # Plain print: the commands must stay copy-pasteable (rich would wrap them).
    serve(options, print_fn=lambda text: print(text, flush=True))
    return 0


def _tokens(args, console: Console) -> int:
    from mirror_builder.serve.tokens import add_token, read_tokens, revoke_token

    path = args.file or _settings(args).serve.tokens_file
    if path is None:
        raise UsageError("which tokens file? give --file FILE, or set serve.tokens_file in "
                         "settings.yaml")
    if args.action in ("add", "revoke") and not args.name:
        raise UsageError(f"tokens {args.action} needs the token's NAME")
    if args.action == "list":
        if args.name:
            raise UsageError("tokens list takes no NAME")
        listed = read_tokens(path, missing_ok=True).tokens
        for token in listed:
            print(f"{token.name}\t{token.created or '-'}")
        if not listed:
            console.print(f"no tokens in {path}", highlight=False, markup=False)
        return 0
    if args.action == "revoke":
        revoke_token(path, args.name)
        console.print(f"revoked {args.name!r} in {path}; a running serve refuses it from its next "
                      f"request (nginx reads the file on every request)", highlight=False, markup=False)
        return 0
    token = add_token(path, args.name)
    # The token alone on standard output (TOKEN=$(mirror-builder tokens add ci) works); the
    # explanation on standard error, without it, so a captured log does not hold it twice.
    print(token, flush=True)
    index = f"https://{args.name}:TOKEN@HOST/simple/"
    console.print(
        f"Added the read token {args.name!r} to {path}; it is printed above, this once only "
        f"(the file keeps only its hash).\n"
        f"Clients give it as user name {args.name} and password TOKEN (HTTP Basic), in the "
        f"index URL:\n"
        f"  pip install --index-url {index} --only-binary :all: PACKAGE\n"
        f"  uv pip install --index-url {index} --only-binary :all: PACKAGE\n"
        f"or, to keep it out of commands and logs, with the plain URL "
        f"https://HOST/simple/ and a line in ~/.netrc (or the file NETRC names):\n"
        f"  machine HOST login {args.name} password TOKEN",
        highlight=False, soft_wrap=True, markup=False)
    return 0


def _overrides(args, console: Console) -> int:
    from rich.table import Table

    from mirror_builder.config.lint import configured, lint
    from mirror_builder.engine.pipeline import upstream_for

    settings = _settings(args)
    if args.action == "lint":
        from mirror_builder.engine.bootstrap import UpstreamFinder

        finder = UpstreamFinder(upstream_for(settings), settings.cache_dir / "sdists")
        findings = lint(settings, finder)
        for finding in findings:
            console.print(f"[red]{finding.where}[/]: {finding.problem}", highlight=False)
        if findings:
            raise MirrorBuilderError(f"{len(findings)} problems in the overrides, patches and plugins")
        console.print(f"{len(configured(settings))} packages configured; every override, patch "
                      f"and plugin checks out")
        return 0
    everything = configured(settings)
    if args.action == "list":
        table = Table(title=f"configured in {settings.overrides_dir.parent}")
        for column in ("package", "settings", "patches", "plugin hooks"):
            table.add_column(column)
        for name, item in everything.items():
            table.add_row(name, ", ".join(item.settings.configured()) if item.settings else "",
                          str(len(item.patches)) if item.patches else "",
                          ", ".join(sorted(item.plugin.hooks)) if item.plugin else "")
        Console().print(table)
        return 0
    if not args.name:
        raise MirrorBuilderError("overrides show needs a package NAME")
    from packaging.utils import canonicalize_name

    item = everything.get(canonicalize_name(args.name))
    if item is None:
        raise MirrorBuilderError(f"nothing is configured for {args.name}")
    import yaml

    shown = {"settings": item.settings.as_dict() if item.settings else None,
             "settings_file": str(item.settings.source_file) if item.settings else None,
             "patches": [str(p) for p in item.patches],
             "plugin": {"origin": item.plugin.origin, "hooks": sorted(item.plugin.hooks)}
             if item.plugin else None}
    sys.stdout.write(yaml.safe_dump(json.loads(json.dumps(shown, default=str)), sort_keys=False))
    return 0


def _history(args, console: Console) -> int:
    from rich.table import Table
    from rich.text import Text

    from mirror_builder.jobs.log import JobLog

    if args.limit is not None and args.limit < 1:
        raise MirrorBuilderError("--limit must be at least 1")
    output = _output(args, _settings(args), existing=True)
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
    table = Table(title=Text(f"build jobs{f' of {args.name}' if args.name else ''} in "
                             f"{output}, newest first"))
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
    return 0


def _pin(text: str):
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    try:
        req = Requirement(text)
        (spec,) = req.specifier
        if spec.operator != "==" or "*" in spec.version:
            raise ValueError
        return canonicalize_name(req.name), Version(spec.version)
    except (InvalidRequirement, ValueError):
        raise MirrorBuilderError(f"{text!r}: give one exact version, as NAME==VERSION") from None


if __name__ == "__main__":
    sys.exit(main())


# -- update and review ---------------------------------------------------------------------------
def _updater(args, settings, output: Path, reporter):
    """An Updater whose jobs share one pipeline, opened only if a job has to run."""
    from mirror_builder.index.wheelindex import WheelIndex
    from mirror_builder.engine.pipeline import RunOptions, open_pipeline, upstream_for
    from mirror_builder.jobs.updater import Updater, one_bootstrapper

    target = settings.target(args.target)
    upstream = upstream_for(settings, refresh=True)
    options = RunOptions(output=output, target=target.name, review=True)

    def pipeline():
        from contextlib import contextmanager

        @contextmanager
        def only_bootstrapper():
            with open_pipeline(settings, options, reporter) as (bootstrapper, _):
                yield bootstrapper
        return only_bootstrapper()

    factory = one_bootstrapper(pipeline)
    updater = Updater(settings=settings, upstream=upstream, index=WheelIndex(output),
                      target=target.name, open_bootstrapper=factory)
    return updater, factory, upstream


def _update(args, console: Console) -> int:
    from dataclasses import asdict

    from mirror_builder.cli.progress import RichReporter

    settings = _settings(args)
    output = _output(args, settings, existing=True)
    if not (output / "simple").is_dir():
        raise MirrorBuilderError(f"{output} holds no index yet; bootstrap what to carry first")
    with _writing(args, output, console), RichReporter(console) as reporter:
        updater, factory, upstream = _updater(args, settings, output, reporter)
        try:
            report = updater.run(args.names or None, dry_run=args.dry_run)
        finally:
            factory.close()
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
    from dataclasses import asdict

    from packaging.utils import canonicalize_name

    from mirror_builder.jobs.review import ReviewQueue

    settings = _settings(args)
    output = _output(args, settings, existing=True)
    queue = ReviewQueue(output)
    if args.action in ("show", "approve", "reject") and not args.name:
        raise MirrorBuilderError(f"review {args.action} needs a package NAME")
    if args.action == "list":
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
    entry = queue.get(args.name)
    if args.action == "show":
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
    import getpass

    from mirror_builder.cli.progress import RichReporter
    from mirror_builder.jobs.updater import UpdateReport

    with _writing(args, output, console):
        state = "approved" if args.action == "approve" else "rejected"
        queue.decide(args.name, state, getpass.getuser(), args.note)
        console.print(f"{args.name}: {state}", highlight=False)
        report = UpdateReport()
        with RichReporter(console) as reporter:
            updater, factory, _ = _updater(args, settings, output, reporter)
            try:
                waited = [j for j in queue.waiting() if canonicalize_name(args.name) in j.waiting_for]
                if state == "approved" and not waited:
                    _build_approved(updater, args.name, report)
                updater.resume_waiting(report)
            finally:
                factory.close()
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

"""Commands that build or would build: bootstrap, plan, rebuild, images.

plan must not start podman, so nothing here imports the podman side at module level; each
command imports what it needs when it runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console

from mirror_builder.cli.common import (cluster_of, executor_options, output_of, output_option,
                                       pin, settings_of, variant_option, versions_options,
                                       writing)
from mirror_builder.errors import MirrorBuilderError
from mirror_builder.layout import OutputLayout


def add_bootstrap(commands) -> None:
    boot = commands.add_parser(
        "bootstrap", help="build requirements and everything under them from source",
        description="Resolve the requirements, then build them, their build dependencies and "
                    "their install dependencies bottom-up from sdists, each in a podman container "
                    "with no network, and publish the wheels to OUTPUT/simple (a --variant "
                    "other than the default one: OUTPUT/variants/NAME/simple). Versions that "
                    "cannot be built are passed over for earlier ones, and said so.")
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
    boot.add_argument("--no-build-cache", dest="build_cache", action="store_false",
                      help="build everything this output lacks, instead of taking wheels whose "
                           "build key matches from the machine's build cache (CACHE_DIR/builds); "
                           "what is built is still kept there for other outputs")
    boot.add_argument("--explain-rebuild", action="store_true",
                      help="say why each version built was not taken from the build cache: "
                           "which input differs from the nearest cached build")
    boot.add_argument("--timeline", type=Path, metavar="FILE",
                      help="write where the run's time went (per package and phase: resolve, "
                           "fetch, prepare, wait-slot, container, stamp, smoke, publish) and its "
                           "peak memory to FILE as JSON; with several targets, the first's")
    gap_fill_option(boot)
    versions_options(boot)
    executor_options(boot)
    boot.set_defaults(run=_bootstrap)


def gap_fill_option(sub) -> None:
    sub.add_argument("--gap-fill", action="store_true",
                     help="take upstream's wheel wherever one fits the target (recorded as an "
                          "upstream wheel, hash-checked, NOT built from source) and build from "
                          "source only what upstream lacks; the built ones are also published "
                          "alone in OUTPUT/from-source/")


def add_plan(commands) -> None:
    plan = commands.add_parser(
        "plan", help="show what bootstrap would build, in what order, without building",
        description="Resolve the requirements, read each sdist's build requirements statically "
                    "(pyproject.toml, with overrides applied) and install requirements from "
                    "upstream metadata, and print what would be built, in what order, with which "
                    "overrides. A version that cannot be built (a build requirement missing, "
                    "denied, yanked or unbuildable) is passed over for an earlier one and listed; "
                    "a build cycle is shown broken in stages where an override says how. With "
                    "several variants in settings, it says which packages are built per variant "
                    "and what each does differently in --variant. Nothing is built and no "
                    "package code runs.")
    plan.add_argument("requirements", nargs="*", metavar="REQUIREMENT")
    plan.add_argument("-r", "--requirements", dest="requirement_files", action="append",
                      type=Path, default=[], metavar="FILE")
    plan.add_argument("-c", "--constraints", dest="constraint_files", action="append",
                      type=Path, default=[], metavar="FILE")
    plan.add_argument("--target", metavar="NAME", help="build target from settings.yaml")
    variant_option(plan, output=False)
    plan.add_argument("--pre", action="store_true", help="allow pre-releases")
    plan.add_argument("--json", action="store_true", help="the plan as JSON")
    gap_fill_option(plan)
    versions_options(plan, builds=False)
    plan.set_defaults(run=_plan)


def add_rebuild(commands) -> None:
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
    versions_options(rebuild, builds=False)
    output_option(rebuild, writes=True)
    rebuild.add_argument("--target", metavar="NAME", help="build target from settings.yaml")
    executor_options(rebuild)
    rebuild.set_defaults(run=_rebuild)


def add_images(commands) -> None:
    images = commands.add_parser("images", help="build the targets' container images if needed")
    images.add_argument("--target", metavar="NAME", action="append",
                        help="build target from settings.yaml; repeat for several, or 'all'")
    images.set_defaults(run=_images)


def _images(args, console: Console) -> int:
    from mirror_builder.sandbox.images import ImageManager
    from mirror_builder.sandbox.podman import PodmanService

    settings = settings_of(args)
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

    settings = settings_of(args)
    request = read_request(args.requirements, args.requirement_files, args.constraint_files)
    if args.jobs is not None and args.jobs < 1:
        raise MirrorBuilderError("--jobs must be at least 1")
    targets = settings.select_targets(args.target)
    cluster_of(args, settings)  # a refused scheduler address stops the run before it starts
    with writing(args, output_of(args, settings), console):
        _bootstrap_targets(args, console, settings, request, targets)
    return 0


def _bootstrap_jobs(args, request):
    """A bootstrap is the reviewed way in: what it builds counts as approved by whoever runs it."""
    import getpass

    from packaging.utils import canonicalize_name

    from mirror_builder.jobs.log import JobLog
    from mirror_builder.jobs.triggers import JobPolicy

    asked = " ".join(str(r) for r in request.requirements)
    return JobPolicy(log=JobLog(output_of(args, settings_of(args))), trigger="approved",
                     detail=f"bootstrap {asked} (run by {getpass.getuser()})",
                     requested=frozenset(canonicalize_name(r.name) for r in request.requirements))


def _run_options(args, settings, request, target, number: int):
    """The run for the number-th target: only the first asks upstream again (--refresh) and
    writes the plain build-order.json."""
    from mirror_builder.engine.context import Options, ResolveOptions
    from mirror_builder.engine.pipeline import RunOptions

    engine = Options(resolve=ResolveOptions(constraints=request.constraints, direct=request.direct,
                                            allow_prereleases=args.pre),
                     jobs=args.jobs, keep_going=args.keep_going, primary=number == 0,
                     manylinux=args.manylinux, job_policy=_bootstrap_jobs(args, request),
                     build_cache=args.build_cache, explain_rebuild=args.explain_rebuild,
                     gap_fill=args.gap_fill,
                     timeline=args.timeline.resolve() if args.timeline and number == 0 else None)
    return RunOptions(output=output_of(args, settings), target=target.name,
                      refresh=args.refresh and number == 0, engine=engine,
                      cluster=cluster_of(args, settings))


def _bootstrap_targets(args, console: Console, settings, request, targets) -> None:
    from mirror_builder.sandbox.podman import PodmanService

    # Started before the engine's modules are imported (some 0.15 s), it listens by the time
    # the first image is checked; one service for every target.
    with PodmanService(settings.cache_dir / "state") as podman:
        _bootstrap_each_target(args, console, settings, request, targets, podman)


def _bootstrap_each_target(args, console: Console, settings, request, targets, podman) -> None:
    from mirror_builder.cli.progress import RichReporter
    from mirror_builder.engine.model import BootstrapFailed
    from mirror_builder.engine.pipeline import open_pipeline

    failed = None
    # One target after another, into the same index: each has its own image, resolution and
    # build order; wheels that fit several targets (pure Python) are built once and shared.
    for number, target in enumerate(targets):
        options = _run_options(args, settings, request, target, number)
        if len(targets) > 1:
            console.rule(f"target {target.name}")
        with RichReporter(console) as reporter:
            with open_pipeline(settings, options, reporter,
                               on_image=lambda t: reporter.activity(t, "preparing the image"),
                               podman=podman) as (pipeline, upstream):
                try:
                    report, target_failed = pipeline.run(list(request.requirements)), None
                except BootstrapFailed as exc:
                    report, target_failed = exc.report, exc
        reporter.summary(report, pipeline.services.index.url(), upstream.requests_made,
                         target_failed.failures if target_failed else [])
        _workers_table(console, pipeline.services.executor.workers_summary())
        failed = failed or target_failed
    if failed:
        raise failed


def _workers_table(console: Console, rows: list[tuple[str, str, int, float]]) -> None:
    """Which worker of the cluster ran how many builds, repairs and smoke tests, and for how
    long (nothing for a local run)."""
    if not rows:
        return
    from rich.table import Table

    table = Table(title="build cluster workers")
    for column in ("worker", "host", "tasks", "busy seconds"):
        table.add_column(column, justify="right" if column in ("tasks", "busy seconds") else "left")
    for name, host, builds, busy in rows:
        table.add_row(name, host, str(builds), f"{busy:.1f}")
    console.print(table)


def _plan(args, console: Console) -> int:
    from mirror_builder.config.overrides import upstream_requires_ignored
    from mirror_builder.config.variants import delta_as_dict
    from mirror_builder.engine.planner import Planner
    from mirror_builder.engine.connect import upstream_for
    from mirror_builder.source.finders import UpstreamFinder
    from mirror_builder.resolve.inputs import read_request

    settings = settings_of(args)
    request = read_request(args.requirements, args.requirement_files, args.constraint_files)
    target = _recorded_target(settings, args.target)
    finder = UpstreamFinder(upstream_for(settings), settings.cache_dir / "sdists", target.fits,
                            upstream_requires_ignored(settings.overrides_dir))
    planner = Planner(settings, finder, target, constraints=request.constraints,
                      direct=request.direct, allow_prereleases=args.pre, gap_fill=args.gap_fill)
    with console.status("resolving and reading build requirements"):
        plan = planner.plan(list(request.requirements))
    if args.json:
        sys.stdout.write(json.dumps([{
            "name": p.candidate.name, "version": str(p.candidate.version), "source": p.source,
            "build_requires": p.build_requires, "needed_by": p.needed_by,
            "overrides": p.overrides, "patches": p.patches, "plugin_hooks": p.plugin_hooks,
            "note": p.note,
            "skipped": [{"version": str(v), "reason": why.reason} for v, why in p.skipped],
            "stage": p.stage, "variant": settings.variant, "per_variant": p.per_variant,
            "variant_overrides": delta_as_dict(p.variant_delta),
        } for p in plan.order], indent=2) + "\n")
        return 0
    variant = settings.variant if len(settings.variants) > 1 else None
    _print_plan(plan, f"plan for {', '.join(str(r) for r in request.requirements)} "
                      f"on {target.name}{f', variant {variant}' if variant else ''}: "
                      f"{len(plan.order)} packages, bottom-up", variant)
    return 0


def _recorded_target(settings, name: str | None):
    """The target's marker environment, as measured when its image was made: plan reads it
    from the cache instead of starting podman."""
    from mirror_builder.resolve.target import TargetEnvironment
    from mirror_builder.sandbox.imagenames import images_dir, recorded_markers

    target = settings.target(name)
    markers = recorded_markers(images_dir(settings.cache_dir), target)
    if markers is None:
        raise MirrorBuilderError(f"the image for target {target.name} has not been made yet; run "
                                 f"mirror-builder images --target {target.name} (plan does not "
                                 f"start podman)")
    return TargetEnvironment(target.name, markers)


def _print_plan(plan, title: str, variant: str | None = None) -> None:
    """The plan as a table; with variant (settings declare several), a column saying which
    packages are built per variant and which are shared, and each one's delta in variant."""
    from rich.markup import escape
    from rich.table import Table

    from mirror_builder.resolve.explain import describe_skipped

    table = Table(title=title)
    for column in ("#", "package", "version", "needed by", "source", "overrides") + \
            (("variants",) if variant else ()):
        table.add_column(column)
    for number, p in enumerate(plan.order, start=1):
        extras = p.overrides + ([f"{p.patches} patches"] if p.patches else []) + \
            ([f"plugin: {', '.join(p.plugin_hooks)}"] if p.plugin_hooks else [])
        version = str(p.candidate.version) + {"1": " (stage 1)", "full": " (full build)"}.get(
            p.stage, "")
        table.add_row(str(number), p.candidate.name, version, p.needed_by[0]
                      + (f" (+{len(p.needed_by) - 1})" if len(p.needed_by) > 1 else ""),
                      p.source, ", ".join(extras),
                      *(("[bold]per variant[/]" if p.per_variant else "shared",)
                        if variant else ()))
    wide = Console(width=200)
    wide.print(table)
    for p in plan.order:
        if p.note:
            wide.print(f"[yellow]note[/] {p.candidate.pin}: {escape(p.note)}", highlight=False)
    for p in plan.order if variant else ():
        if p.per_variant and p.stage != "1":
            delta = p.variant_delta.describe() if p.variant_delta else "its own settings only"
            wide.print(f"[bold]built per variant[/] {p.candidate.pin}; in {variant}: "
                       f"{escape(delta)}", highlight=False)
    for p in plan.order:
        if p.skipped:
            wide.print(f"[yellow]{escape(describe_skipped(p.candidate.name, p.skipped))}; "
                       f"took {p.candidate.version}", highlight=False)


def _rebuild(args, console: Console) -> int:
    from mirror_builder.cli.progress import RichReporter
    from mirror_builder.engine.pipeline import RunOptions, open_pipeline
    from mirror_builder.jobs.triggers import RebuildRequest

    name, version = pin(args.requirement)
    settings = settings_of(args)
    options = RunOptions(output=output_of(args, settings, existing=True), target=args.target,
                         cluster=cluster_of(args, settings))
    with writing(args, options.output, console), RichReporter(console) as reporter:
        with open_pipeline(settings, options, reporter) as (pipeline, _):
            wheel = pipeline.rebuild(name, version, RebuildRequest(
                reason=args.reason, bootstrap_missing=args.bootstrap_missing, force=args.force))
    console.print(f"rebuilt {name}=={version} as [bold]{wheel.path.name}[/]; earlier wheels are "
                  f"unchanged in {OutputLayout(options.output).simple}")
    return 0

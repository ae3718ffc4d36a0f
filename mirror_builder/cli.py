"""Command line: parse arguments, call the pipeline, print results. No logic of its own."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler

from mirror_builder import __version__
from mirror_builder.errors import MirrorBuilderError
from mirror_builder.logs import PackageFilter

log = logging.getLogger("mirror_builder")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mirror-builder",
        description="Build a package's whole wheel tree from source in network-isolated podman "
                    "containers, and publish it as a wheels-only index.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--settings", type=Path, metavar="FILE",
                        help="settings file (default: ./settings.yaml, else the checkout's own)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each step")
    parser.add_argument("--debug", action="store_true", help="debug logs and tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
    boot.add_argument("-o", "--output", type=Path, metavar="DIR",
                      help="output directory: index, records, build order (default: settings)")
    boot.add_argument("--target", metavar="NAME", help="build target from settings.yaml")
    boot.add_argument("--pre", action="store_true", help="allow pre-releases")
    boot.add_argument("--refresh", action="store_true",
                      help="ask the upstream index again instead of using cached answers")

    images = commands.add_parser("images", help="build the target's container image if needed")
    images.add_argument("--target", metavar="NAME", help="build target from settings.yaml")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=True)
    handler = RichHandler(console=console, show_path=False, show_time=False,
                          rich_tracebacks=args.debug)
    handler.addFilter(PackageFilter())
    handler.setFormatter(logging.Formatter("%(package)s%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING)
    try:
        if args.command == "bootstrap":
            return _bootstrap(args, console)
        if args.command == "images":
            return _images(args, console)
    except MirrorBuilderError as exc:
        if args.debug:
            console.print_exception()
        console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: wheels already published stay in the index")
        return 130
    return 2


def _images(args, console: Console) -> int:
    from mirror_builder.containers import ImageManager, PodmanService
    from mirror_builder.settings import load_settings

    settings = load_settings(args.settings)
    target = settings.target(args.target)
    with PodmanService(settings.cache_dir / "state") as podman:
        images = ImageManager(podman, settings.cache_dir)
        with console.status(f"preparing the image for {target.name}"):
            image = images.ensure(target)
            markers = images.marker_environment(image)
    console.print(f"{target.name}: {image.tag} (Python {markers['python_full_version']}, "
                  f"{markers['platform_machine']})")
    return 0


def _bootstrap(args, console: Console) -> int:
    from mirror_builder.bootstrap import Bootstrapper, UpstreamFinder
    from mirror_builder.builder import Builder
    from mirror_builder.containers import ImageManager, PodmanService
    from mirror_builder.index import WheelIndex
    from mirror_builder.inputs import read_request
    from mirror_builder.progress import RichReporter
    from mirror_builder.records import RecordStore
    from mirror_builder.settings import load_settings
    from mirror_builder.target import TargetEnvironment
    from mirror_builder.upstream import UpstreamIndex

    settings = load_settings(args.settings)
    request = read_request(args.requirements, args.requirement_files, args.constraint_files)
    target_settings = settings.target(args.target)
    output = (args.output or settings.output_dir).resolve()
    upstream = UpstreamIndex(
        settings.upstream.index_url, settings.cache_dir,
        json_api_url=settings.upstream.json_api_url, ttl=settings.upstream.cache_ttl_seconds,
        timeout=settings.upstream.timeout_seconds, retries=settings.upstream.retries,
        refresh=args.refresh, user_agent=f"mirror-builder/{__version__}")
    index = WheelIndex(output)
    with PodmanService(settings.cache_dir / "state") as podman:
        images = ImageManager(podman, settings.cache_dir)
        with console.status(f"preparing the image for {target_settings.name}"):
            image = images.ensure(target_settings)
            target = TargetEnvironment(target_settings.name, images.marker_environment(image))
        builder = Builder(podman, settings.cache_dir / "state" / f"builder-{os.getpid()}")
        with RichReporter(console) as reporter:
            bootstrapper = Bootstrapper(
                settings=settings, target=target, image=image,
                finder=UpstreamFinder(upstream, settings.cache_dir / "sdists"),
                builder=builder, index=index, records=RecordStore(output), reporter=reporter,
                constraints=request.constraints, direct=request.direct,
                allow_prereleases=args.pre)
            report = bootstrapper.run(list(request.requirements))
        reporter.summary(report, index.url(), upstream.requests_made)
    return 0


if __name__ == "__main__":
    sys.exit(main())

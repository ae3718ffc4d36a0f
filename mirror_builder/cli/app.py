"""Command line: parse arguments, call the pipeline, print results. No logic of its own.

Each command group lives in its own module (building, inspecting, publishing, configuring,
keeping) with one add_<command>(commands) per command, which also names the function that runs
it; the table below keeps the order `--help` lists them in.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.logging import RichHandler

from mirror_builder import __version__
from mirror_builder.cli import (building, caching, clustering, configuring, inspecting,
                                keeping, publishing, verifying)
from mirror_builder.errors import MirrorBuilderError, UsageError
from mirror_builder.logs import PackageFilter

log = logging.getLogger("mirror_builder")

# The commands, in the order --help lists them.
COMMANDS = (
    building.add_bootstrap, building.add_plan, building.add_rebuild,
    inspecting.add_inspect, inspecting.add_verify_wheel, verifying.add_verify,
    publishing.add_yank, publishing.add_index, publishing.add_serve, publishing.add_tokens,
    configuring.add_overrides, configuring.add_keys, inspecting.add_history, keeping.add_update,
    keeping.add_review,
    publishing.add_nginx_config, building.add_images, caching.add_cache,
    clustering.add_cluster, clustering.add_worker,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mirror-builder",
        description="Build a package's whole wheel tree from source in network-isolated podman "
                    "containers, and publish it as a wheels-only index.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _global_options(parser, default=None)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(commands)
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
    try:
        return args.run(args, console)
    except MirrorBuilderError as exc:
        if args.debug:
            console.print_exception()
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: wheels already published stay in the index")
        return 130
    except Exception as exc:  # a bug or an unforeseen OS error: one line unless asked for more
        if args.debug:
            console.print_exception()
        else:
            console.print(f"[red]error:[/] {type(exc).__name__}: {escape(str(exc))} "
                          f"(run again with --debug "
                          f"for the traceback)", highlight=False, soft_wrap=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The command that shows and checks per-package configuration: overrides list, show, lint.

lint must not start podman: it reads upstream only, and imports what it needs when it runs.
"""

from __future__ import annotations

import json
import sys

from rich.console import Console

from mirror_builder.cli.common import settings_of
from mirror_builder.errors import MirrorBuilderError


def add_overrides(commands) -> None:
    overrides = commands.add_parser(
        "overrides", help="what is configured for which package, and a check of it all",
        description="list: every package with overrides, patches or a plugin. show NAME: all of "
                    "it for one package. lint: check that every override, patch and plugin loads "
                    "and refers to a project (and version) that exists upstream.")
    overrides.add_argument("action", choices=["list", "show", "lint"])
    overrides.add_argument("name", nargs="?", metavar="NAME", help="the package, for show")
    overrides.set_defaults(run=_overrides)


def _overrides(args, console: Console) -> int:
    from mirror_builder.config.lint import configured

    settings = settings_of(args)
    if args.action == "lint":
        return _lint(settings, console)
    everything = configured(settings)
    if args.action == "list":
        _list(settings, everything)
        return 0
    if not args.name:
        raise MirrorBuilderError("overrides show needs a package NAME")
    _show(args.name, everything)
    return 0


def _lint(settings, console: Console) -> int:
    from mirror_builder.config.lint import configured, lint
    from mirror_builder.engine.connect import upstream_for
    from mirror_builder.source.finders import UpstreamFinder

    finder = UpstreamFinder(upstream_for(settings), settings.cache_dir / "sdists")
    findings = lint(settings, finder)
    for finding in findings:
        console.print(f"[red]{finding.where}[/]: {finding.problem}", highlight=False)
    if findings:
        raise MirrorBuilderError(f"{len(findings)} problems in the overrides, patches and plugins")
    console.print(f"{len(configured(settings))} packages configured; every override, patch "
                  f"and plugin checks out")
    return 0


def _list(settings, everything) -> None:
    from rich.table import Table

    table = Table(title=f"configured in {settings.overrides_dir.parent}")
    for column in ("package", "settings", "patches", "plugin hooks"):
        table.add_column(column)
    for name, item in everything.items():
        table.add_row(name, ", ".join(item.settings.configured()) if item.settings else "",
                      str(len(item.patches)) if item.patches else "",
                      ", ".join(sorted(item.plugin.hooks)) if item.plugin else "")
    Console().print(table)


def _show(name: str, everything) -> None:
    import yaml
    from packaging.utils import canonicalize_name

    item = everything.get(canonicalize_name(name))
    if item is None:
        raise MirrorBuilderError(f"nothing is configured for {name}")
    shown = {"settings": item.settings.as_dict() if item.settings else None,
             "settings_file": str(item.settings.source_file) if item.settings else None,
             "patches": [str(p) for p in item.patches],
             "plugin": {"origin": item.plugin.origin, "hooks": sorted(item.plugin.hooks)}
             if item.plugin else None}
    sys.stdout.write(yaml.safe_dump(json.loads(json.dumps(shown, default=str)), sort_keys=False))

"""The command that shows, checks and amends per-package configuration: overrides list, show,
lint, suggest.

lint must not start podman: it reads upstream only, and imports what it needs when it runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console

from mirror_builder.cli.common import output_of, output_option, settings_of
from mirror_builder.errors import MirrorBuilderError


def add_overrides(commands) -> None:
    overrides = commands.add_parser(
        "overrides", help="what is configured for which package, a check of it all, and the "
                          "Debian packages a failed build needs",
        description="list: every package with overrides, patches or a plugin. show NAME: all of "
                    "it for one package, as the --variant's builds see it. lint: check that "
                    "every override, patch and plugin loads "
                    "and refers to a project (and version) that exists upstream. suggest NAME "
                    "(or NAME==VERSION): read the log of its failed build (OUTPUT/logs/), look "
                    "up the header, pkg-config module, library or program it missed in Debian's "
                    "Contents index of the target's release, and add the packages that have it "
                    "to system_packages in overrides/NAME.yaml (made if missing; what is there "
                    "is kept).")
    overrides.add_argument("action", choices=["list", "show", "lint", "suggest"])
    overrides.add_argument("name", nargs="?", metavar="NAME",
                           help="the package, for show and suggest")
    output_option(overrides)
    overrides.add_argument("--target", metavar="NAME",
                           help="for suggest: the target whose Debian release to look in "
                                "(default: the one the failed build ran for)")
    overrides.set_defaults(run=_overrides)


def _overrides(args, console: Console) -> int:
    from mirror_builder.config.lint import configured

    settings = settings_of(args)
    if args.action == "lint":
        return _lint(settings, console)
    if args.action == "suggest":
        if not args.name:
            raise MirrorBuilderError("overrides suggest needs a package NAME (or NAME==VERSION)")
        return _suggest(settings, args)
    everything = configured(settings)
    if args.action == "list":
        _list(settings, everything)
        return 0
    if not args.name:
        raise MirrorBuilderError("overrides show needs a package NAME")
    _show(args.name, everything, settings.variant)
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


def _show(name: str, everything, variant: str) -> None:
    """All that is configured for name, as its builds in variant see it."""
    import yaml
    from packaging.utils import canonicalize_name

    from mirror_builder.config.variants import delta_as_dict

    item = everything.get(canonicalize_name(name))
    if item is None:
        raise MirrorBuilderError(f"nothing is configured for {name}")
    shown = {"settings": item.settings.as_dict() if item.settings else None,
             "settings_file": str(item.settings.source_file) if item.settings else None,
             "patches": [str(p) for p in item.patches],
             "plugin": {"origin": item.plugin.origin, "hooks": sorted(item.plugin.hooks)}
             if item.plugin else None,
             "variant": variant, "built_per_variant": item.per_variant,
             "variant_overrides": delta_as_dict(item.delta)}
    sys.stdout.write(yaml.safe_dump(json.loads(json.dumps(shown, default=str)), sort_keys=False))


def _suggest(settings, args) -> int:
    from mirror_builder.build.missing import image_in_log
    from mirror_builder.build.suggest import overrides_file_name, suggest_from_log
    from mirror_builder.config.overrideedit import add_system_packages
    from mirror_builder.layout import OutputLayout
    from mirror_builder.sandbox import imagenames
    from mirror_builder.sandbox.debcontents import contents_for

    layout = OutputLayout(output_of(args, settings, existing=True))
    name, log_path = _failed_log(layout, args.name)
    tag = image_in_log(log_path)
    target = settings.target(args.target) if args.target else \
        (tag and imagenames.target_of_image(tag, settings.targets)) or settings.default_target()
    installed = imagenames.recorded_packages(imagenames.images_dir(settings.cache_dir), target)
    suggestion = suggest_from_log(log_path, contents_for(settings, target), installed)
    overrides_file = overrides_file_name(settings.overrides_dir, name)
    if not suggestion.packages:
        raise MirrorBuilderError(f"{log_path}: {suggestion.sentence(overrides_file, name)}; "
                                 f"there is no package to add")
    added = add_system_packages(settings.overrides_dir, name, suggestion.packages)
    sys.stdout.write(f"{log_path}: {suggestion.summary()}\n")
    if added.added:
        sys.stdout.write(f"{'wrote' if added.created else 'added to'} {overrides_file}: "
                         f"system_packages: [{', '.join(added.added)}]\n")
    else:
        sys.stdout.write(f"{overrides_file} has system_packages "
                         f"[{', '.join(suggestion.packages)}] already\n")
    return 0


def _failed_log(layout, text: str):
    """(canonical name, the log of its failed build): of that version, or the newest."""
    from packaging.utils import canonicalize_name

    from mirror_builder.cli.common import pin
    from mirror_builder.layout import failed_build_logs

    if "==" in text:
        name, version = pin(text)
        log_path = layout.failed_build_log(name, version)
        logs = [log_path] if log_path.is_file() else []
    else:
        name = canonicalize_name(text)
        logs = failed_build_logs(layout, name)
    if not logs:
        raise MirrorBuilderError(f"no log of a failed build of {text} in {layout.logs} "
                                 f"(a failed bootstrap leaves its log there)")
    return name, logs[0]


def add_keys(commands) -> None:
    keys = commands.add_parser(
        "keys", help="the key that signs build provenance",
        description="generate: make the Ed25519 key that signs every in-toto statement a run "
                    "writes (a DSSE envelope beside each build record), at settings' "
                    "signing.key or --key FILE (PEM, mode 0600), and its public key beside it "
                    "(FILE.pub). Runs publish the public key at the output's root "
                    "(signing-key.pub) and keep every key that signed there in keys/. The "
                    "private key is never written anywhere else or logged.")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    generate = actions.add_parser("generate", help="make the signing key")
    generate.add_argument("--key", type=Path, metavar="FILE",
                          help="where (default: settings' signing.key)")
    generate.add_argument("--force", action="store_true",
                          help="replace a key that exists (statements it signed keep "
                               "verifying with the copy of its public key in each output's "
                               "keys/)")
    keys.set_defaults(run=_keys)


def _keys(args, console: Console) -> int:
    from mirror_builder.errors import UsageError
    from mirror_builder.provenance.signing import generate_key, key_id, load_signer

    path = args.key or settings_of(args).signing_key
    if path is None:
        raise UsageError("no signing key to make: give --key FILE, or set signing: {key: FILE} "
                         "in settings.yaml")
    private, public = generate_key(path, force=args.force)
    signer = load_signer(private)
    console.print(f"signing key {private} (mode 600) and its public key {public}; key id "
                  f"{key_id(signer.public)}", highlight=False, soft_wrap=True)
    return 0

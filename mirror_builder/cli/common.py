"""What every command group shares: settings, the output directory and its lock, NAME==VERSION."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from mirror_builder.errors import MirrorBuilderError, UsageError


def output_option(sub: argparse.ArgumentParser, writes: bool = False,
                  variant: bool = True) -> None:
    """-o/--output (and --wait for commands that write it, --variant unless the command works
    on every variant's output at once)."""
    sub.add_argument("-o", "--output", type=Path, metavar="DIR",
                     help="output directory: index, records, build order (default: settings)")
    if variant:
        variant_option(sub)
    if writes:
        sub.add_argument("--wait", action="store_true",
                         help="if another mirror-builder is writing the output directory, "
                              "wait for it instead of stopping with an error")


def variant_option(sub: argparse.ArgumentParser, output: bool = True) -> None:
    """--variant; output: the command works on the variant's output directory too."""
    sub.add_argument("--variant", metavar="NAME",
                     help="the build variant (variants: in settings; default: the first): its "
                          "packages' variant settings" + (
                              ", and its output, which is OUTPUT itself for the default variant "
                              "and OUTPUT/variants/NAME for the others" if output else ""))


def versions_options(sub: argparse.ArgumentParser, builds: bool = True) -> None:
    """Flags over the versions: section of settings."""
    sub.add_argument("--strict-versions", action="store_true",
                     help="the newest allowed version or nothing: do not pass over a version "
                          "whose build requirements cannot be met (versions.skip_unbuildable)")
    if builds:
        sub.add_argument("--replace-failed-builds", action="store_true",
                         help="with --keep-going, replace a version whose build fails by an "
                              "earlier one, and say so (versions.replace_failed_builds)")


def settings_of(args):
    import dataclasses

    from mirror_builder.config.settings import load_settings

    settings = load_settings(args.settings).for_variant(getattr(args, "variant", None))
    versions = settings.versions
    if getattr(args, "strict_versions", False):
        versions = dataclasses.replace(versions, skip_unbuildable=False)
    if getattr(args, "replace_failed_builds", False):
        versions = dataclasses.replace(versions, replace_failed_builds=True)
    return dataclasses.replace(settings, versions=versions)


def output_of(args, settings, *, existing: bool = False) -> Path:
    """The output directory of the variant settings work on (see layout.variant_output); with
    existing, it must be there already (commands that read or amend an index must not create an
    empty one where a typo points)."""
    from mirror_builder.layout import variant_output

    top = (args.output or settings.output_dir).resolve()
    output = variant_output(top, settings.variant, settings.variant_names[0])
    for path in dict.fromkeys((top, output)):
        if path.exists() and not path.is_dir():
            raise UsageError(f"{path} is a file, not an output directory")
    if existing and not output.is_dir():
        again = "" if output == top else f" --variant {settings.variant}"
        raise UsageError(f"{output}: no such output directory (bootstrap{again} creates one)")
    return output


def writing(args, output: Path, console: Console):
    """Hold the output directory for this command (see outputlock.py)."""
    from mirror_builder.index.outputlock import hold_output

    command = " ".join(sys.argv[1:]) or args.command
    return hold_output(output, command, wait=args.wait, on_wait=lambda holder: console.print(
        f"waiting for {output}: in use by {holder}", highlight=False))


def pin(text: str):
    """NAME==VERSION as (canonical name, Version); anything else is the user's error."""
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


def executor_options(sub: argparse.ArgumentParser) -> None:
    """--executor, --cluster-certs and --insecure: where builds run."""
    sub.add_argument("--executor", metavar="WHERE",
                     help="local (podman on this machine), dask (the cluster in settings' "
                          "executor:), or a scheduler's address tls://HOST:PORT (default: "
                          "settings' executor:, else local)")
    sub.add_argument("--cluster-certs", type=Path, metavar="DIR",
                     help="the cluster's ca.pem and this coordinator's coordinator.pem and "
                          "coordinator.key (mirror-builder cluster certs; default: settings, "
                          "else CACHE_DIR/cluster/certs)")
    sub.add_argument("--insecure", action="store_true",
                     help="allow a tcp:// scheduler address on loopback (tests only: anyone who "
                          "reaches a plain-TCP scheduler runs code on every worker)")


def cluster_of(args, settings):
    """The cluster this command's builds go to (DaskSettings), or None for local podman."""
    import dataclasses

    from mirror_builder.cluster.security import check_address
    from mirror_builder.config.executor import DaskSettings

    choice = getattr(args, "executor", None)
    configured = settings.executor.dask
    if choice == "local" or (choice is None and configured is None):
        return None
    if choice in (None, "dask"):
        if configured is None:
            raise UsageError("--executor dask: settings have no executor: dask: section; give "
                             "the scheduler's address instead (--executor tls://HOST:PORT)")
        cluster = configured
    elif "://" in choice:
        cluster = configured or DaskSettings(scheduler=choice,
                                             certs=settings.cache_dir / "cluster" / "certs")
        cluster = dataclasses.replace(cluster, scheduler=choice)
    else:
        raise UsageError(f"--executor {choice}: expected local, dask or tls://HOST:PORT")
    if args.cluster_certs is not None:
        cluster = dataclasses.replace(cluster, certs=args.cluster_certs)
    cluster = dataclasses.replace(cluster, insecure=args.insecure)
    check_address(cluster.scheduler, cluster.insecure)
    return cluster

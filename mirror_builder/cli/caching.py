"""The machine's build cache: cache list | prune | verify."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.table import Table

from mirror_builder.cli.common import settings_of
from mirror_builder.config.settings import parse_duration
from mirror_builder.errors import UsageError


def add_cache(commands) -> None:
    cache = commands.add_parser(
        "cache", help="the machine's build cache, shared by every output",
        description="Every wheel built from source is kept in CACHE_DIR/builds by its build key "
                    "(sdist, patches, overrides, plugin, image, target and the exact wheels of "
                    "its build environment), with its record and log; a bootstrap into any "
                    "output takes it from there when building would give the same key. "
                    "list: the entries, newest first. prune --older-than AGE: remove the entries "
                    "not used for that long (it waits for running builds). verify: check every "
                    "entry's files against their digests and its build key against its record "
                    "(exit status 1 if any is wrong; --remove-bad removes them). Other "
                    "machines' caches to take from: build_cache.sources in settings.yaml.")
    actions = cache.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the entries, newest first")
    listing.add_argument("names", nargs="*", metavar="NAME", help="only these projects")
    listing.add_argument("--json", action="store_true", help="as JSON on stdout")
    prune = actions.add_parser("prune", help="remove entries not used for a while")
    prune.add_argument("--older-than", required=True, metavar="AGE",
                       help="e.g. 30d, 2w, 12h: entries not taken or stored for that long")
    verify = actions.add_parser("verify", help="check every entry's files and build key")
    verify.add_argument("--remove-bad", action="store_true",
                        help="remove the entries found bad (a bootstrap would build them again "
                             "anyway; it never serves them)")
    cache.set_defaults(run=_cache)


def _cache(args, console: Console) -> int:
    from mirror_builder.buildcache.store import BuildCache

    store = BuildCache(settings_of(args).cache_dir / "builds")
    if args.action == "list":
        return _list(store, args, console)
    if args.action == "prune":
        try:
            age = parse_duration(args.older_than)
        except ValueError as exc:
            raise UsageError(f"--older-than: {exc}") from None
        if _busy(store):
            console.print("waiting for running builds to finish...", style="dim")
        removed, freed = store.prune(age)
        console.print(f"removed {len(removed)} entries not used for {args.older_than}, "
                      f"freed {freed / 1e6:.1f} MB")
        return 0
    count, problems = store.verify()
    for problem in problems:
        console.print(f"[red]bad[/] {problem.entry}: {problem.detail}", highlight=False)
    console.print(f"{count} entries checked, {len(problems)} bad")
    if problems and args.remove_bad:
        removed = store.remove_entries({p.entry for p in problems})
        console.print(f"removed {removed} bad entries")
        return 0
    return 1 if problems else 0


def _list(store, args, console: Console) -> int:
    entries = [e for name in (args.names or [None]) for e in store.entries(name)]
    if args.json:
        sys.stdout.write(json.dumps([{
            "name": e.name, "version": str(e.version), "wheel": e.wheel,
            "wheel_sha256": e.wheel_sha256,
            "build_key": e.build_key, "built_at": e.built_at, "output": e.output,
            "entry": str(e.path), "rebuild_number": e.number,
            "target": e.record.get("target", {}).get("name")} for e in entries], indent=2) + "\n")
        return 0
    table = Table(title=f"build cache {store.root}: {len(entries)} entries")
    for column in ("package", "version", "wheel", "target", "built", "for output"):
        table.add_column(column)
    for e in entries:
        table.add_row(e.name, str(e.version), e.wheel, e.record.get("target", {}).get("name", ""),
                      e.built_at[:16].replace("T", " "), e.output)
    Console().print(table)
    return 0


def _busy(store) -> bool:
    """Whether a run holds the cache now (prune will wait for it)."""
    import fcntl

    lock = store.root / ".lock"
    if not lock.exists():
        return False
    with lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False

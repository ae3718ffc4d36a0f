"""mirror-builder against fromager on the same trees, same machine, same run.

    .venv/bin/python benchmarks/bootstrap_vs_fromager.py [--tree REQ ...] [--rounds N]

Two pairings, each tool from cold caches (fresh output, sdists, index answers and uv cache;
mirror-builder keeps its images, which fromager has no equivalent of), in alternating order:

  fromager 0.77 (the newest for bookworm's Python 3.11, from PyPI in its own venv on this host)
      against mirror-builder building for bookworm-x86_64;
  the newest fromager (it needs Python >= 3.12: run in a trixie container with Python 3.13 and
      network, benchmarks/fromager_container.py; its own time is measured inside, without the
      container's start) against mirror-builder building for trixie-x86_64.

Printed per tree: wall time and the ratios; the whole machine's CPU time (from /proc/stat, since
builds run in containers, not child processes); mirror-builder's warm re-run; then, from the
runs' --timeline files (benchmarks/phases.py), where mirror-builder's time went for each target, the
overhead per package (for each target and for both) and the build slots' use over time.

Goals (issue 19, on our 2-core machines): flask <= 0.5x and stevedore, markupsafe <= 0.7x of
both fromagers, cold; warm re-run of flask < 1 s; overhead per package <= 0.45 s (median).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import phases  # noqa: E402  (benchmarks/phases.py)
from fromager_container import (ensure_fromager as ensure_trixie_fromager,  # noqa: E402
                                fromager_version, fromager_wheels, newest_trixie_image,
                                run_fromager_in_container)

REPO = Path(__file__).resolve().parent.parent
FROMAGER_VENV = REPO / "benchmarks" / ".fromager-venv"
TREES = ["stevedore==5.10.0", "flask==3.1.1", "markupsafe==3.0.2"]
TARGETS = ("bookworm-x86_64", "trixie-x86_64")


def machine_cpu_seconds() -> float:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system = (int(x) for x in fields[:3])
    return (user + nice + system) / os.sysconf("SC_CLK_TCK")


def clean_env(**extra: str) -> dict[str, str]:
    """This shell's environment, less what would make a run unlike a user's: installer
    settings, and PYTHONDONTWRITEBYTECODE (set in some CI shells: every run would compile
    mirror-builder's modules again, while fromager's were compiled when pip installed it)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "UV_")) and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra)
    return env


def timed(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> tuple[float, float, int]:
    cpu, wall = machine_cpu_seconds(), time.perf_counter()
    with log.open("w") as out:
        code = subprocess.run(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    return time.perf_counter() - wall, machine_cpu_seconds() - cpu, code


def ensure_fromager() -> Path:
    fromager = FROMAGER_VENV / "bin" / "fromager"
    if not fromager.exists():
        subprocess.run([sys.executable, "-m", "venv", str(FROMAGER_VENV)], check=True)
        subprocess.run([str(FROMAGER_VENV / "bin" / "pip"), "install", "--quiet", "fromager"],
                       check=True, env=clean_env())
    return fromager


def run_fromager(tree: str, work: Path) -> tuple[float, float, int]:
    fromager = ensure_fromager()
    env = clean_env(PATH=f"{FROMAGER_VENV / 'bin'}:{os.environ['PATH']}",
                    UV_CACHE_DIR=str(work / "uv-cache"))
    return timed([str(fromager), "-o", "sdists", "-w", "wheels", "-t", "work", "bootstrap", tree],
                 work, env, work / "fromager.log")


def mirror_builder_settings(work: Path, images_cache: Path) -> Path:
    cache = work / "cache"
    if images_cache.is_dir():  # the images exist; fromager has nothing to match a cold image
        shutil.copytree(images_cache, cache / "images")
    text = (REPO / "settings.yaml").read_text().replace(
        "containerfile: containerfiles/", f"containerfile: {REPO}/containerfiles/")
    lines = [l for l in text.splitlines() if not l.startswith(("cache_dir:", "patches_dir:",
                                                              "overrides_dir:"))]
    lines += [f"cache_dir: {cache}", f"patches_dir: {REPO / 'patches'}",
              f"overrides_dir: {REPO / 'overrides'}"]
    settings = work / "settings.yaml"
    settings.write_text("\n".join(lines) + "\n")
    return settings


def run_mirror_builder(tree: str, work: Path, target: str, log: str) -> tuple[float, float, int]:
    settings = work / "settings.yaml"
    return timed([sys.executable, "-m", "mirror_builder", "--settings", str(settings), "bootstrap",
                  tree, "-o", "out", "--target", target, "--timeline", f"{log}.timeline.json"],
                 work, clean_env(), work / f"{log}.log")


@dataclass
class TreeRun:
    tree: str
    figures: dict[str, tuple[float, float, int]] = field(default_factory=dict)
    wheels: dict[str, int] = field(default_factory=dict)
    warm: float = 0.0
    timelines: dict[str, dict] = field(default_factory=dict)  # by target, of the cold runs
    output: Path | None = None


def one_tree(tree: str, root: Path, images_cache: Path, flip: bool, trixie: str) -> TreeRun:
    """The four cold runs of a tree (in an order that flips each time) and the warm re-run."""
    run = TreeRun(tree)
    for name in ("fromager-old", "fromager-new", "mb-bookworm", "mb-trixie"):
        (root / name).mkdir()
    mirror_builder_settings(root / "mb-bookworm", images_cache)
    mirror_builder_settings(root / "mb-trixie", images_cache)
    steps = {
        "fromager-old": lambda: run_fromager(tree, root / "fromager-old"),
        "mb-bookworm": lambda: run_mirror_builder(tree, root / "mb-bookworm", "bookworm-x86_64",
                                                  "cold"),
        "fromager-new": lambda: run_fromager_in_container(tree, root / "fromager-new", trixie),
        "mb-trixie": lambda: run_mirror_builder(tree, root / "mb-trixie", "trixie-x86_64", "cold"),
    }
    order = list(steps)
    order = [order[i ^ 1] for i in range(4)] if flip else order
    for name in order:
        run.figures[name] = steps[name]()
        if run.figures[name][2] != 0:
            kept = Path(tempfile.mkdtemp(prefix="bench-failed-"))
            shutil.copytree(root / name, kept / name, dirs_exist_ok=True)
            print(f"!! {name} failed on {tree}; its files are in {kept}", flush=True)
    run.warm = run_mirror_builder(tree, root / "mb-bookworm", "bookworm-x86_64", "warm")[0]
    run.wheels = {
        "fromager-old": len(list((root / "fromager-old/wheels/downloads").glob("*.whl"))),
        "fromager-new": fromager_wheels(root / "fromager-new"),
        "mb-bookworm": len(list((root / "mb-bookworm/out/files").glob("*/*.whl"))),
        "mb-trixie": len(list((root / "mb-trixie/out/files").glob("*/*.whl")))}
    for target in TARGETS:
        timeline = root / f"mb-{target.split('-')[0]}" / "cold.timeline.json"
        if timeline.is_file():
            run.timelines[target] = phases.load(timeline)
    return run


def report(runs: list[TreeRun], old: str, new: str) -> None:
    print(f"\n{'tree':20} {'wheels':>7} | {'fromager ' + old:>14} {'mirror-b.':>9} {'ratio':>6} | "
          f"{'fromager ' + new:>15} {'mirror-b.':>9} {'ratio':>6} | {'warm':>5}")
    print(f"{'':20} {'':>7} | {'(bookworm, 3.11)':>30} {'':>6} | {'(trixie, 3.13)':>31} {'':>6} |")
    for run in runs:
        f = {name: figures[0] for name, figures in run.figures.items()}
        print(f"{run.tree:20} {run.wheels['mb-bookworm']:>3}/{run.wheels['fromager-old']:<3} | "
              f"{f['fromager-old']:>13.1f}s {f['mb-bookworm']:>8.1f}s "
              f"{f['mb-bookworm'] / f['fromager-old']:>5.2f}x | {f['fromager-new']:>14.1f}s "
              f"{f['mb-trixie']:>8.1f}s {f['mb-trixie'] / f['fromager-new']:>5.2f}x | "
              f"{run.warm:>4.1f}s")
    print("\nthe whole machine's CPU seconds in the same runs (bookworm pair, trixie pair):")
    for run in runs:
        c = {name: figures[1] for name, figures in run.figures.items()}
        print(f"  {run.tree:20} {c['fromager-old']:>6.1f} / {c['mb-bookworm']:<6.1f} "
              f"{c['fromager-new']:>10.1f} / {c['mb-trixie']:<6.1f}")
    rows: dict[str, list[phases.PackageTime]] = {target: [] for target in TARGETS}
    for run in runs:
        for target, timeline in run.timelines.items():
            rows[target] += phases.print_breakdown(timeline, f"{run.tree}, {target}, cold")
            print(phases.slot_chart(timeline))
    rows["both targets"] = [row for target in TARGETS for row in rows[target]]
    print()
    for label, chosen in rows.items():
        if chosen:
            print(f"overhead per package over every tree, {label}: median "
                  f"{statistics.median(r.overhead for r in chosen):.2f} s against a median "
                  f"{statistics.median(r.own for r in chosen):.2f} s of the backends' own hooks "
                  f"({len(chosen)} builds)")
    print("goals: flask <= 0.5x, stevedore and markupsafe <= 0.7x (both fromagers); warm flask "
          "< 1 s; overhead <= 0.45 s (median)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", help=f"requirement to bootstrap (default: {TREES})")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    trees = args.tree or TREES
    images_cache = Path(os.path.expanduser("~/.cache/mirror-builder/images"))
    ensure_fromager()
    trixie = newest_trixie_image()
    ensure_trixie_fromager(trixie)
    old = subprocess.run([str(FROMAGER_VENV / "bin" / "python"), "-c",
                          "import importlib.metadata as m; print(m.version('fromager'))"],
                         capture_output=True, text=True, check=True).stdout.strip()
    print(f"fromager {old} (host venv) and {fromager_version()} ({trixie}); "
          f"machine: {os.cpu_count()} cores, {platform.platform()}", flush=True)
    runs = []
    for round_number in range(args.rounds):
        for index, tree in enumerate(trees):
            with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
                runs.append(one_tree(tree, Path(tmp), images_cache,
                                     flip=(index + round_number) % 2 == 1, trixie=trixie))
                print(f"{tree}: done (round {round_number + 1})", flush=True)
    report(runs, old, fromager_version())


if __name__ == "__main__":
    main()

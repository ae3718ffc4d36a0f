"""The build cache's figure: a second output's cold bootstrap with and without the cache.

    .venv/bin/python benchmarks/build_cache.py [--tree REQ ...]

For each tree, in one run with a build cache of its own (the machine's images are copied in,
nothing else): bootstrap into a first output (fills the cache and the sdist cache; not timed),
then into a second, fresh output with --no-build-cache (everything built again: the baseline),
then into a third, fresh output with the cache. Printed: both wall times and with/without
(the goal: 0.15 or less). The smoke tests still run in the third (each output runs its own).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TREES = ["pyyaml==6.0.4", "flask==3.1.1"]


def settings_in(work: Path) -> Path:
    """The repository's settings with a build cache (and sdist cache) of this run's own."""
    text = (REPO / "settings.yaml").read_text().replace(
        "containerfile: containerfiles/", f"containerfile: {REPO}/containerfiles/")
    lines = [line for line in text.splitlines()
             if not line.startswith(("cache_dir:", "patches_dir:", "overrides_dir:"))]
    images = Path.home() / ".cache" / "mirror-builder" / "images"
    if images.is_dir():
        shutil.copytree(images, work / "cache" / "images")
    lines += [f"cache_dir: {work / 'cache'}", f"patches_dir: {REPO / 'patches'}",
              f"overrides_dir: {REPO / 'overrides'}"]
    path = work / "settings.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def bootstrap(settings: Path, tree: str, out: Path, *flags: str) -> float:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mirror_builder", "--settings", str(settings),
                           "bootstrap", tree, "-o", str(out), *flags],
                          capture_output=True, text=True)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"bootstrap {tree} into {out} failed:\n{proc.stderr[-3000:]}")
    return seconds


def statuses(out: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in json.loads((out / "build-order.json").read_text()):
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", help=f"requirement (default: {TREES})")
    args = parser.parse_args()
    for tree in args.tree or TREES:
        with tempfile.TemporaryDirectory(prefix="mb-bench-cache-") as tmp:
            work = Path(tmp)
            settings = settings_in(work)
            bootstrap(settings, tree, work / "first")
            without = bootstrap(settings, tree, work / "without", "--no-build-cache")
            with_cache = bootstrap(settings, tree, work / "with")
            print(f"{tree}: second output without the cache {without:.1f} s "
                  f"({statuses(work / 'without')}), with it {with_cache:.1f} s "
                  f"({statuses(work / 'with')}): with/without = {with_cache / without:.2f} "
                  f"(goal <= 0.15)", flush=True)


if __name__ == "__main__":
    main()

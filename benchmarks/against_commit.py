"""mirror-builder now against mirror-builder at an earlier commit, same machine, same run.

    .venv/bin/python benchmarks/against_commit.py --base REV [--tree REQ ...] [--rounds N]

For a change that should not change speed (a refactoring), this prints the same-run ratio. The
earlier commit is checked out into a temporary git worktree and run with this venv's
dependencies (PYTHONPATH puts its package first). In each round both bootstrap each tree in
alternating order from a cold output (fresh output directory and sdist cache; images, which both
share, are kept), then a warm re-run into the same output (every wheel reused). Printed: the
median wall time of each, and now/base.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TREES = ["stevedore==5.10.0", "flask==3.1.1"]


def settings_for(checkout: Path, work: Path) -> Path:
    text = (checkout / "settings.yaml").read_text().replace(
        "containerfile: containerfiles/", f"containerfile: {checkout}/containerfiles/")
    lines = [line for line in text.splitlines()
             if not line.startswith(("cache_dir:", "patches_dir:", "overrides_dir:"))]
    images = Path.home() / ".cache" / "mirror-builder" / "images"
    cache = work / "cache"
    if images.is_dir():
        shutil.copytree(images, cache / "images")
    lines += [f"cache_dir: {cache}", f"patches_dir: {checkout / 'patches'}",
              f"overrides_dir: {checkout / 'overrides'}"]
    path = work / "settings.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def bootstrap(checkout: Path, settings: Path, tree: str, output: Path, log: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env["PYTHONPATH"] = str(checkout)
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.run([sys.executable, "-m", "mirror_builder", "--settings", str(settings),
                               "bootstrap", tree, "-o", str(output)], cwd=output.parent,
                              env=env, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"{checkout.name}: bootstrap {tree} failed; see {log}")
    return time.perf_counter() - started


def one_round(checkout: Path, tree: str, scratch: Path) -> tuple[float, float]:
    work = Path(tempfile.mkdtemp(dir=scratch))
    settings = settings_for(checkout, work)
    output = work / "out"
    cold = bootstrap(checkout, settings, tree, output, work / "cold.log")
    warm = bootstrap(checkout, settings, tree, output, work / "warm.log")
    shutil.rmtree(work, ignore_errors=True)
    return cold, warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the commit to compare against")
    parser.add_argument("--tree", action="append", help=f"requirements (default: {TREES})")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="mb-against-"))
    base = scratch / "base"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(base), args.base],
                   check=True, capture_output=True)
    try:
        for tree in args.tree or TREES:
            times: dict[str, dict[str, list[float]]] = {
                "now": {"cold": [], "warm": []}, "base": {"cold": [], "warm": []}}
            for number in range(args.rounds):
                order = [("now", REPO), ("base", base)]
                for label, checkout in order if number % 2 == 0 else reversed(order):
                    cold, warm = one_round(checkout, tree, scratch)
                    times[label]["cold"].append(cold)
                    times[label]["warm"].append(warm)
            for kind in ("cold", "warm"):
                now, then = (statistics.median(times[w][kind]) for w in ("now", "base"))
                print(f"{tree} {kind}: now {now:.2f} s, {args.base} {then:.2f} s, "
                      f"ratio {now / then:.2f} ({args.rounds} rounds, medians)", flush=True)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)],
                       capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

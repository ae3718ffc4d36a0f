"""The build cluster's figures, on loopback: what the distributed path costs, and how a tree's
wall time compares with its critical path as workers are added.

    .venv/bin/python benchmarks/cluster.py [--tree REQ] [--rounds N] [--workers 1,2,4]

1. Overhead: the tree cold (--no-build-cache) built locally, then through a loopback cluster
   (real `cluster scheduler` and one `mirror-builder worker`, mutual TLS) whose worker has as
   many slots as local builds run at once, alternating, --rounds times. Printed: the medians
   and cluster/local (the goal: 1.15 or less).
2. Scaling model: N workers of one slot each, each build container held to --cpus (default
   2/max(N)) so that the largest N shares this machine's cores the way N small hosts would.
   Printed per N: wall time, the critical path of the builds (the longest chain that had to
   happen in turn), the total build time, the lower bound max(critical path, total / N) and
   wall / bound.

The coordinator uses the machine's cache (sdists and images are warm); every worker has a cache
of its own, so it fetches its inputs from the coordinator's artifact store as a remote host
would.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the loopback cluster the end-to-end tests use too

from cluster_harness import Cluster  # noqa: E402

TARGET = "bookworm-x86_64"


def bootstrap(tree: str, out: Path, *flags: str) -> tuple[float, str]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mirror_builder", "--settings",
                           str(REPO / "settings.yaml"), "bootstrap", tree, "-o", str(out),
                           "--target", TARGET, "--no-build-cache", *flags],
                          capture_output=True, text=True)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"bootstrap {tree} {' '.join(flags)} failed:\n{proc.stderr[-3000:]}")
    return seconds, " ".join((proc.stdout + proc.stderr).split())


def critical_path(summary: str) -> float:
    match = re.search(r"critical path \(([0-9.]+) s", summary)
    return float(match.group(1)) if match else 0.0


def build_seconds(out: Path) -> float:
    return sum(json.loads(p.read_text())["seconds"] for p in out.glob("records/*/*.build.json"))


def on(cluster: Cluster) -> tuple[str, ...]:
    return ("--executor", cluster.address, "--cluster-certs", str(cluster.certs))


def overhead(tree: str, rounds: int, work: Path) -> None:
    cluster = Cluster(work / "overhead")
    cluster.folder.mkdir()
    try:
        cluster.start_scheduler()
        cluster.start_worker("w1", TARGET, options=("--slots", str(os.cpu_count() or 2)))
        local, remote = [], []
        for number in range(rounds):
            local.append(bootstrap(tree, work / f"local-{number}")[0])
            remote.append(bootstrap(tree, work / f"cluster-{number}", *on(cluster))[0])
            print(f"  round {number + 1}: local {local[-1]:.1f} s, cluster {remote[-1]:.1f} s",
                  flush=True)
    finally:
        cluster.stop()
    ratio = statistics.median(remote) / statistics.median(local)
    print(f"{tree} cold, median of {rounds}: local {statistics.median(local):.1f} s, loopback "
          f"cluster with one worker {statistics.median(remote):.1f} s: cluster/local = "
          f"{ratio:.2f} (goal <= 1.15)", flush=True)


def scaling(tree: str, counts: list[int], work: Path) -> None:
    cpus = 2 / max(counts)
    rows = []
    for count in counts:
        cluster = Cluster(work / f"scale-{count}")
        cluster.folder.mkdir()
        try:
            cluster.start_scheduler()
            for number in range(count):
                cluster.start_worker(f"w{number + 1}", TARGET, wait=False,
                                     options=("--slots", "1", "--cpus", f"{cpus:g}"))
            for worker in cluster.workers.values():
                worker.wait_for("Ctrl-C stops it")
            out = work / f"scale-{count}-out"
            wall, summary = bootstrap(tree, out, *on(cluster))
        finally:
            cluster.stop()
        path, total = critical_path(summary), build_seconds(out)
        bound = max(path, total / count)
        rows.append((count, wall, path, total, bound, wall / bound if bound else 0.0))
        print(f"  {count} worker(s): {wall:.1f} s", flush=True)
    print(f"\n{tree}, workers of one slot and {cpus:g} CPUs per build:")
    print("| workers | wall s | critical path s | build s (sum) | bound s | wall / bound |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for count, wall, path, total, bound, ratio in rows:
        print(f"| {count} | {wall:.1f} | {path:.1f} | {total:.1f} | {bound:.1f} | {ratio:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", default="flask==3.1.1")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", default="1,2,4",
                        help="worker counts for the scaling model (comma-separated; empty: "
                             "no scaling model)")
    parser.add_argument("--skip-overhead", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mb-bench-cluster-") as tmp:
        work = Path(tmp)
        if not args.skip_overhead:
            overhead(args.tree, args.rounds, work)
        if args.workers:
            scaling(args.tree, [int(n) for n in args.workers.split(",")], work)


if __name__ == "__main__":
    main()

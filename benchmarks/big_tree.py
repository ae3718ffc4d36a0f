"""A big tree against the machine's own limit: how close a cold bootstrap comes to the least
time any scheduler could take on this machine.

    .venv/bin/python benchmarks/big_tree.py [--tree langchain-core==1.0.7] [--target NAME]

The lower bound is max(critical path, CPU time / cores): the longest chain of builds that had to
happen one after another (each build's own fetch, prepare, container and stamp time in this
run, benchmarks/phases.py), and all the CPU the run kept the machine busy with (the whole
machine's, from /proc/stat: the builds run in containers, not in our process) spread over every
core. Printed: wall time against that bound, the critical path, the build slots' use over time,
where the time went, and the peak memory of the mirror-builder process.

Goals (issue 19, langchain-core's 58 wheels on a 2-core machine): wall <= 1.15x the bound; peak
memory < 400 MB. Slow (the Rust builds of pydantic-core and maturin): about 10 minutes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import phases  # noqa: E402
from bootstrap_vs_fromager import clean_env, machine_cpu_seconds, mirror_builder_settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", default="langchain-core==1.0.7")
    parser.add_argument("--target", default="bookworm-x86_64")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder")
    args = parser.parse_args()
    images_cache = Path(os.path.expanduser("~/.cache/mirror-builder/images"))
    work = Path(tempfile.mkdtemp(prefix="big-tree-"))
    settings = mirror_builder_settings(work, images_cache)
    cpu, wall = machine_cpu_seconds(), time.perf_counter()
    with (work / "run.log").open("w") as log:
        import subprocess

        code = subprocess.run(
            [sys.executable, "-m", "mirror_builder", "--settings", str(settings), "bootstrap",
             args.tree, "-o", "out", "--target", args.target, "--timeline", "timeline.json"],
            cwd=work, env=clean_env(), stdout=log, stderr=subprocess.STDOUT).returncode
    wall, cpu = time.perf_counter() - wall, machine_cpu_seconds() - cpu
    if code != 0:
        print(f"the bootstrap failed (exit {code}); see {work / 'run.log'}")
        sys.exit(1)
    timeline = phases.load(work / "timeline.json")
    cores = os.cpu_count() or 1
    critical, chain = phases.critical_path(timeline, work / "out")
    bound = max(critical, cpu / cores)
    wheels = len(list((work / "out" / "files").glob("*/*.whl")))
    print(f"{args.tree}: {wheels} wheels for {args.target}, cold, on {cores} cores")
    print(f"  wall {wall:.1f} s; lower bound {bound:.1f} s = max(critical path {critical:.1f} s, "
          f"CPU {cpu:.1f} s / {cores} cores = {cpu / cores:.1f} s); ratio {wall / bound:.2f}x "
          f"(goal <= 1.15x)")
    print(f"  critical path: {' -> '.join(chain)}")
    print(f"  peak memory of the mirror-builder process: "
          f"{timeline['peak_rss_bytes'] / (1 << 20):.0f} MiB (goal < 400 MB)")
    print(phases.slot_chart(timeline))
    phases.print_breakdown(timeline, args.tree)
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept {work}")


if __name__ == "__main__":
    main()

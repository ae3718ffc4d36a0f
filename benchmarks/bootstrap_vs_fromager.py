"""mirror-builder against fromager on the same trees, same machine, same run.

    .venv/bin/python benchmarks/bootstrap_vs_fromager.py [--tree REQ ...] [--rounds N]

For each tree, in alternating order, both tools bootstrap it from cold caches (fresh output,
sdists, index answers and uv cache; mirror-builder keeps its images, which fromager has no
equivalent of). Printed per tree: wall time, CPU time (the whole machine's, from /proc/stat,
because our builds run in containers that are not our child processes) and the ratios. Then
mirror-builder's warm re-run of the same tree and its per-package overhead (container start and
build environment set-up) against the package's own build time, from the build records.

fromager is installed from PyPI into its own venv (benchmarks/.fromager-venv) on first use.
Targets (issue 6, on our 2-core machines): cold wall time at most 1.0x fromager's; a warm
re-run of the flask tree under 3 s; overhead under 1 s per package (median).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FROMAGER_VENV = REPO / "benchmarks" / ".fromager-venv"
TREES = ["stevedore==5.10.0", "flask==3.1.1", "markupsafe==3.0.2"]


def machine_cpu_seconds() -> float:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system = (int(x) for x in fields[:3])
    return (user + nice + system) / os.sysconf("SC_CLK_TCK")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
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


def run_mirror_builder(tree: str, work: Path, settings: Path, log: str) -> tuple[float, float, int]:
    return timed([sys.executable, "-m", "mirror_builder", "--settings", str(settings), "bootstrap",
                  tree, "-o", "out"], work, clean_env(), work / log)


def overheads(output: Path) -> list[tuple[float, float]]:
    """(container and environment overhead, own build time) for each built package."""
    found = []
    for path in output.glob("records/*/*.build.json"):
        timings = json.loads(path.read_text()).get("timings", {})
        if "container" in timings:
            own = timings.get("get_requires", 0) + timings.get("build_wheel", 0)
            found.append((timings["container"] - own, own))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", help=f"requirement to bootstrap (default: {TREES})")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    trees = args.tree or TREES
    images_cache = Path(os.path.expanduser("~/.cache/mirror-builder/images"))
    ensure_fromager()
    results = []
    for round_number in range(args.rounds):
        for index, tree in enumerate(trees):
            with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
                root = Path(tmp)
                (root / "fromager").mkdir()
                (root / "mb").mkdir()
                settings = mirror_builder_settings(root / "mb", images_cache)
                order = ["fromager", "mb"] if (index + round_number) % 2 == 0 else ["mb", "fromager"]
                figures = {}
                for tool in order:
                    if tool == "fromager":
                        figures[tool] = run_fromager(tree, root / "fromager")
                    else:
                        figures[tool] = run_mirror_builder(tree, root / "mb", settings, "cold.log")
                warm = run_mirror_builder(tree, root / "mb", settings, "warm.log")
                wheels = len(list((root / "mb" / "out" / "files").glob("*/*.whl")))
                fromager_wheels = len(list((root / "fromager" / "wheels" / "downloads").glob("*.whl")))
                results.append((tree, figures, warm, overheads(root / "mb" / "out"), wheels,
                                fromager_wheels))
                for tool, (_, _, code) in figures.items():
                    if code != 0:
                        print(f"!! {tool} failed on {tree}; see its log in a kept copy", flush=True)
                        shutil.copytree(root, Path(tempfile.mkdtemp(prefix="bench-failed-")),
                                        dirs_exist_ok=True)

    print(f"\n{'tree':22} {'wheels':>7} {'fromager':>10} {'mirror-b.':>10} {'ratio':>6} "
          f"{'CPU fromager':>13} {'CPU mirror-b.':>14} {'ratio':>6} {'warm':>6}")
    all_overheads = []
    for tree, figures, warm, found, wheels, fromager_wheels in results:
        (f_wall, f_cpu, _), (m_wall, m_cpu, _) = figures["fromager"], figures["mb"]
        all_overheads += found
        print(f"{tree:22} {wheels:>3}/{fromager_wheels:<3} {f_wall:>9.1f}s {m_wall:>9.1f}s "
              f"{m_wall / f_wall:>5.2f}x {f_cpu:>12.1f}s {m_cpu:>13.1f}s {m_cpu / max(f_cpu, 0.01):>5.2f}x "
              f"{warm[0]:>5.1f}s")
    if all_overheads:
        median_overhead = statistics.median(o for o, _ in all_overheads)
        median_own = statistics.median(b for _, b in all_overheads)
        print(f"\nper-package overhead (container start, environment set-up): median "
              f"{median_overhead:.2f} s, against a median own build time of {median_own:.2f} s "
              f"({len(all_overheads)} builds)")
    print("targets: cold ratio <= 1.0; warm flask < 3 s; overhead < 1 s (median)")


if __name__ == "__main__":
    main()

"""How reproducible our builds are: each tree built twice from scratch, and verified.

    .venv/bin/python benchmarks/reproducibility.py [--tree REQ ...] [--once]

For each tree:
  1. two cold bootstraps (--no-build-cache) into two fresh outputs, minutes apart; for every
     wheel both built, the content digest of each record (`content_sha256`: the wheel's files
     apart from the build record it carries) is compared;
  2. `verify --all` on the first output: every wheel rebuilt from its recorded inputs with the
     build directory, host name, CPU count and environment order varied, and compared byte
     for byte with the published file.
Printed per tree: the rates (pure and platform wheels apart), each wheel that differs and why,
and the time of `verify --all` against the first bootstrap's (a same-run ratio).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TREES = ["flask==3.1.1", "sphinx==8.2.3", "pyyaml==6.0.2"]


def bootstrap(tree: str, out: Path) -> float:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mirror_builder", "--settings",
                           str(REPO / "settings.yaml"), "bootstrap", tree, "-o", str(out),
                           "--no-build-cache"], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bootstrap {tree} into {out} failed:\n{proc.stderr[-3000:]}")
    return time.monotonic() - started


def verify_all(out: Path) -> tuple[float, list[dict]]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mirror_builder", "--settings",
                           str(REPO / "settings.yaml"), "verify", "--all", "--json", "-o",
                           str(out)], capture_output=True, text=True)
    if proc.returncode not in (0, 1, 3) or not proc.stdout:
        sys.exit(f"verify --all -o {out} failed:\n{proc.stderr[-3000:]}")
    return time.monotonic() - started, json.loads(proc.stdout)["results"]


def report_verify(tree: str, seconds: float, bootstrap_seconds: float,
                  results: list[dict]) -> None:
    for kind, pure in (("pure", True), ("platform", False)):
        mine = [r for r in results if r["wheel"].endswith("-none-any.whl") == pure]
        same = [r for r in mine if r["status"] == "reproduced"]
        if mine:
            print(f"{tree}: verify: {len(same)} of {len(mine)} {kind} wheels bit-identical "
                  f"({len(same) / len(mine):.0%})", flush=True)
    for r in results:
        if r["status"] != "reproduced":
            print(f"  {r['status']}: {r['wheel']}: {r['summary']}")
    print(f"{tree}: verify --all took {seconds:.1f} s, {seconds / bootstrap_seconds:.2f}x the "
          f"first bootstrap ({bootstrap_seconds:.1f} s)", flush=True)


def digests(out: Path) -> dict[str, tuple[str, Path]]:
    """wheel name (without build tag): (content digest, the wheel)."""
    found = {}
    for path in out.glob("records/*/*.build.json"):
        record = json.loads(path.read_text())
        if record.get("built_from_source", True) and record.get("content_sha256"):
            found[record["wheel"]] = (record["content_sha256"],
                                      out / "files" / path.parent.name / record["wheel"])
    return found


def differing_members(first: Path, second: Path) -> list[str]:
    with zipfile.ZipFile(first) as a, zipfile.ZipFile(second) as b:
        left = {i.filename: a.read(i) for i in a.infolist()}
        right = {i.filename: b.read(i) for i in b.infolist()}
    return sorted(name for name in left.keys() | right.keys()
                  if left.get(name) != right.get(name)
                  and not name.endswith(("/RECORD", "build-record.json")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", help=f"requirement (default: {TREES})")
    parser.add_argument("--once", action="store_true",
                        help="bootstrap once and verify, without the second cold build (for "
                             "big trees: langchain-core==1.0.7)")
    args = parser.parse_args()
    for tree in args.tree or TREES:
        with tempfile.TemporaryDirectory(prefix="mb-bench-repro-") as tmp:
            work = Path(tmp)
            first_seconds = bootstrap(tree, work / "first")
            if args.once:
                seconds, results = verify_all(work / "first")
                report_verify(tree, seconds, first_seconds, results)
                continue
            bootstrap(tree, work / "second")
            first, second = digests(work / "first"), digests(work / "second")
            both = sorted(first.keys() & second.keys())
            same = [w for w in both if first[w][0] == second[w][0]]
            rate = len(same) / len(both) if both else 0.0
            print(f"{tree}: {len(same)} of {len(both)} wheels built from source are "
                  f"bit-identical in content across two builds ({rate:.0%})", flush=True)
            for wheel in both:
                if wheel not in same:
                    members = differing_members(first[wheel][1], second[wheel][1])
                    print(f"  differs: {wheel}: {', '.join(members[:6]) or '(archive only)'}")
            seconds, results = verify_all(work / "first")
            report_verify(tree, seconds, first_seconds, results)


if __name__ == "__main__":
    main()

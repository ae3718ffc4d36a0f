"""How reproducible our builds are: each tree built twice from scratch, compared wheel by wheel.

    .venv/bin/python benchmarks/reproducibility.py [--tree REQ ...]

For each tree: two cold bootstraps (--no-build-cache) into two fresh outputs, minutes apart,
then for every wheel both built the content digest of each record (`content_sha256`: the
wheel's files apart from the build record it carries). Printed per tree: the wheels built, how
many are identical, the rate, and for each one that is not, which members differ. What this
varies is the time of day and the output folder; `verify` (to come) will also vary the build
directory, host name, CPU count and environment order.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TREES = ["flask==3.1.1", "sphinx==8.2.3"]


def bootstrap(tree: str, out: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "mirror_builder", "--settings",
                           str(REPO / "settings.yaml"), "bootstrap", tree, "-o", str(out),
                           "--no-build-cache"], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bootstrap {tree} into {out} failed:\n{proc.stderr[-3000:]}")


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
    args = parser.parse_args()
    for tree in args.tree or TREES:
        with tempfile.TemporaryDirectory(prefix="mb-bench-repro-") as tmp:
            work = Path(tmp)
            bootstrap(tree, work / "first")
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


if __name__ == "__main__":
    main()

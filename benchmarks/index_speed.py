"""Index writing speed: regenerate the index for 10,000 synthetic wheels in 2,000 projects, in
full and incrementally (one wheel added), against a baseline measured in the same run.

    .venv/bin/python benchmarks/index_speed.py [--projects 2000] [--wheels-per-project 5]

The baseline is the least any index writer must do: read every wheel once (sha256) and its
METADATA. Targets (issue 4, on our 2-core machines): full under 3 s, incremental under 50 ms.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

from mirror_builder.index.wheelindex import WheelIndex, verify


def make_wheel(folder: Path, name: str, version: str) -> Path:
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{name}/__init__.py", f"VERSION = {version!r}\n" * 20)
        zf.writestr(f"{name}-{version}.dist-info/METADATA",
                    f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                    f"Requires-Python: >=3.8\nRequires-Dist: six>=1.0\n\n{name} for benchmarking\n")
        zf.writestr(f"{name}-{version}.dist-info/WHEEL", "Wheel-Version: 1.0\nTag: py3-none-any\n")
        zf.writestr(f"{name}-{version}.dist-info/RECORD", "")
    return path


def baseline(files: list[Path]) -> float:
    started = time.perf_counter()
    for path in files:
        hashlib.sha256(path.read_bytes()).hexdigest()
        with zipfile.ZipFile(path) as zf:
            zf.read(next(n for n in zf.namelist() if n.endswith("METADATA")))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=2000)
    parser.add_argument("--wheels-per-project", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "out"
        index = WheelIndex(root)
        files = []
        started = time.perf_counter()
        for p in range(args.projects):
            folder = index.files_dir / f"project{p:05d}"
            folder.mkdir(parents=True)
            for v in range(args.wheels_per_project):
                files.append(make_wheel(folder, f"project{p:05d}", f"1.{v}"))
        print(f"made {len(files)} wheels in {args.projects} projects "
              f"({time.perf_counter() - started:.1f} s)")

        # Three kinds of full regeneration: from bare wheels (every .metadata file and page is
        # new), from wheels with their .metadata files (every page is new: the usual recovery),
        # and over an index that is already right (nothing changes).
        scenarios = {"from bare wheels": ("*/*.metadata", "*/index.*"),
                     "pages from wheels + metadata": ("*/index.*",),
                     "over an up-to-date index": ()}
        full: dict[str, list[float]] = {name: [] for name in scenarios}
        base = []
        for _ in range(args.repeat):
            base.append(baseline(files))
            for name, remove in scenarios.items():
                for pattern in remove:
                    folder = index.files_dir if pattern.endswith(".metadata") else index.simple_dir
                    for path in folder.glob(pattern) if folder.exists() else ():
                        path.unlink()
                started = time.perf_counter()
                count = index.regenerate()
                full[name].append(time.perf_counter() - started)
                assert count == len(files)

        incremental = []
        extra = Path(tmp) / "new"
        extra.mkdir()
        for i in range(max(args.repeat, 5)):
            wheel = make_wheel(extra, f"project{i:05d}", "9.0")
            started = time.perf_counter()
            index.add(wheel)
            incremental.append(time.perf_counter() - started)

        problems = verify(index)
        base_s, inc_s = min(base), statistics.median(incremental)
        print(f"baseline (hash + read METADATA of every wheel): {base_s:.2f} s")
        for name, times in full.items():
            best = min(times)
            print(f"full regeneration, {name + ':':30} {best:5.2f} s = {best / base_s:4.2f}x baseline"
                  f"  (target < 3 s: {'met' if best < 3 else 'MISSED'})")
        print(f"incremental (one wheel added):                  {inc_s * 1000:5.1f} ms"
              f"  (target < 50 ms: {'met' if inc_s < 0.05 else 'MISSED'})")
        print(f"index valid after the runs: {'yes' if not problems else problems[:3]}")


if __name__ == "__main__":
    main()

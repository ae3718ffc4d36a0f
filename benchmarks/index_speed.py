"""Index speed: write the index of 10,000 synthetic wheels in 2,000 projects in full and one
wheel at a time, and serve its pages to 50 clients at once, each against a baseline measured in
the same run.

    .venv/bin/python benchmarks/index_speed.py [--projects 2000] [--wheels-per-project 5]
                                               [--requests 5000] [--clients 50]

Baselines: for writing, the least any index writer must do (read every wheel once, sha256, and
its METADATA); for serving, Python's own threading http.server serving the same files. Targets
(issue 19, on our 2-core machines): full regeneration from bare wheels under 3 s, one wheel
added under 10 ms, p99 of a project page under 50 ms with 50 clients.

Each regeneration runs over a fresh tree of hard links to the same wheels: nothing is deleted
before a timed run. ext4 without a journal (our machines') does not reuse an inode for a minute
or more after it was freed, and looks at every such inode again for each file it makes, so a
run made right after deleting many files (by this benchmark before, or by anything else on
the disk, such as a previous run's clean-up) pays for that: the line "right after deleting"
shows how much. Run it twice within a few minutes and the second run's figures carry the
first one's clean-up.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from mirror_builder.index import findlinks
from mirror_builder.index.wheelindex import SimpleIndex, WheelIndex, verify

SERVER_BASELINE = """
import functools, http.server, sys
class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as aiohttp does
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128  # as serve listens (the default, 5, drops connections)
server = Server(("127.0.0.1", 0), functools.partial(Handler, directory=sys.argv[1]))
print(f"Serving at http://127.0.0.1:{server.server_address[1]}/", flush=True)
server.serve_forever()
"""


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


def linked_output(wheels: Path, dest: Path, metadata_from: Path | None = None) -> WheelIndex:
    """An output directory holding hard links to the wheels (and copies of the .metadata files
    of metadata_from's files/, if given), and nothing else."""
    for folder in sorted(wheels.iterdir()):
        (dest / "files" / folder.name).mkdir(parents=True)
        for wheel in folder.iterdir():
            os.link(wheel, dest / "files" / folder.name / wheel.name)
            if metadata_from is not None:
                name = f"{wheel.name}.metadata"
                shutil.copyfile(metadata_from / "files" / folder.name / name,
                                dest / "files" / folder.name / name)
    return WheelIndex(dest)


def timed_regeneration(index: WheelIndex, expected: int) -> float:
    started = time.perf_counter()
    count = index.regenerate()
    elapsed = time.perf_counter() - started
    assert count == expected, (count, expected)
    return elapsed


def regenerations(tmp: Path, wheels: Path, count: int, repeat: int
                  ) -> tuple[dict[str, list[float]], WheelIndex]:
    """The best times of each kind of full regeneration, and an index made by one of them."""
    times: dict[str, list[float]] = collections.defaultdict(list)
    for run in range(repeat):
        bare = linked_output(wheels, tmp / f"bare-{run}")
        times["from bare wheels"].append(timed_regeneration(bare, count))
        with_metadata = linked_output(wheels, tmp / f"metadata-{run}", bare.root)
        times["pages from wheels + metadata"].append(timed_regeneration(with_metadata, count))
        times["over an up-to-date index"].append(timed_regeneration(bare, count))
    return times, bare


def after_deleting(tmp: Path, count: int, repeat: int) -> float:
    """The best time of a regeneration from bare wheels made right after deleting the pages
    and .metadata files (as this benchmark did before; run last, as it slows what follows)."""
    times = []
    for run in range(repeat):
        index = WheelIndex(tmp / f"metadata-{run}")
        for path in [*index.files_dir.glob("*/*.metadata"), *index.simple_dir.glob("*/index.*")]:
            path.unlink()
        times.append(timed_regeneration(index, count))
    return min(times)


def incremental(index: WheelIndex, extra: Path, count: int) -> dict[str, list[float]]:
    """Seconds per add, of a new version of a project the index has ("new version") and of a
    new project (its root pages change too); and within them, the time spent on the find-links
    page and on the root pages ("new version, find-links page" and so on)."""
    times: dict[str, list[float]] = collections.defaultdict(list)
    kind = ["new version"]
    originals = {label: (owner, attribute) for label, owner, attribute in (
        ("find-links page", findlinks, "update"), ("root pages", SimpleIndex, "_list_in_root"))
        if hasattr(owner, attribute)}  # (not in older versions of the index)
    for label, (owner, attribute) in originals.items():
        original = getattr(owner, attribute)

        @functools.wraps(original)
        def measured(*args, _original=original, _label=label, **kwargs):
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                times[f"{kind[0]}, {_label}"].append(time.perf_counter() - started)
        setattr(owner, attribute, measured)
    try:
        for i in range(count):
            for kind[0], wheel in (
                    ("new version", make_wheel(extra, f"project{i:05d}", "9.0")),
                    ("new project", make_wheel(extra, f"newproject{i:05d}", "1.0"))):
                started = time.perf_counter()
                index.add(wheel)
                times[kind[0]].append(time.perf_counter() - started)
    finally:
        for label, (owner, attribute) in originals.items():
            setattr(owner, attribute, getattr(owner, attribute).__wrapped__)
    return times


async def _client(port: int, paths: list[str], latencies: list[float], failures: list[str]):
    reader = writer = None
    for path in paths:
        if writer is None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.perf_counter()
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                     f"Accept: text/html\r\n\r\n".encode())
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in head[1:] if line)}
        await reader.readexactly(int(headers["content-length"]))
        latencies.append(time.perf_counter() - started)
        if not head[0].startswith("HTTP/1.1 200"):
            failures.append(f"{path}: {head[0]}")
        if headers.get("connection", "").lower() == "close":
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


def load(port: int, paths: list[str], clients: int) -> tuple[list[float], float, list[str]]:
    """Send paths over clients keep-alive connections at once; latencies, seconds, failures."""
    latencies: list[float] = []
    failures: list[str] = []

    async def run() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(_client(port, paths[i::clients], latencies, failures)
                               for i in range(clients)))
        return time.perf_counter() - started
    return latencies, asyncio.run(run()), failures


def serving(command: list[str], cwd: Path, paths: list[str], clients: int
            ) -> list[tuple[list[float], float, list[str]]]:
    """Start command (a server that prints its URL first), and load it twice with paths: the
    first pass finds every page on disk, the second as they were left (cached, if it does)."""
    with open(cwd / "server.log", "ab") as log:
        server = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=log)
    try:
        banner = server.stdout.readline().decode()
        port = int(banner.split("http://127.0.0.1:", 1)[1].split("/", 1)[0])
        return [load(port, paths, clients) for _ in range(2)]
    finally:
        server.terminate()
        server.wait(10)


def serving_figures(root: Path, tmp: Path, projects: int, requests: int, clients: int) -> None:
    rng = random.Random(19)
    paths = [f"/simple/project{rng.randrange(projects):05d}/" for _ in range(requests)]
    (tmp / "settings.yaml").write_text("{}\n")  # not the checkout's (tokens, variants)
    ours = [sys.executable, "-m", "mirror_builder", "serve", "-o", str(root), "--port", "0",
            "--settings", str(tmp / "settings.yaml"), "--access-log", str(tmp / "access.log")]
    theirs = [sys.executable, "-c", SERVER_BASELINE, str(root)]
    print(f"serving {requests} requests for random project pages, {clients} clients at once "
          f"(keep-alive), each server twice:")
    for label, command in (("mirror-builder serve", ours), ("http.server (threads)", theirs)):
        for run, (latencies, seconds, failures) in zip(("first", "again"),
                                                       serving(command, tmp, paths, clients)):
            p50, p99 = (statistics.quantiles(latencies, n=100)[i] * 1000 for i in (49, 98))
            target = f"  (target p99 < 50 ms: {'met' if p99 < 50 else 'MISSED'})" \
                if label.startswith("mirror") else ""
            print(f"  {label:22} {run:6} p50 {p50:5.1f} ms  p99 {p99:5.1f} ms  "
                  f"{len(latencies) / seconds:6.0f} requests/s{target}"
                  + (f"  {len(failures)} FAILED, e.g. {failures[0]}" if failures else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=2000)
    parser.add_argument("--wheels-per-project", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        files = []
        started = time.perf_counter()
        for p in range(args.projects):
            folder = tmp / "wheels" / f"project{p:05d}"
            folder.mkdir(parents=True)
            for v in range(args.wheels_per_project):
                files.append(make_wheel(folder, f"project{p:05d}", f"1.{v}"))
        print(f"made {len(files)} wheels in {args.projects} projects "
              f"({time.perf_counter() - started:.1f} s)")
        base_s = min(baseline(files) for _ in range(args.repeat))
        full, index = regenerations(tmp, tmp / "wheels", len(files), args.repeat)
        extra = tmp / "new"
        extra.mkdir()
        adds = incremental(index, extra, max(args.repeat, 10))
        problems = verify(index)

        print(f"baseline (hash + read METADATA of every wheel): {base_s:.2f} s")
        for kind, times in full.items():
            best = min(times)
            target = f"  (target < 3 s: {'met' if best < 3 else 'MISSED'})" \
                if kind == "from bare wheels" else ""
            print(f"full regeneration, {kind + ':':30} {best:5.2f} s = {best / base_s:4.2f}x "
                  f"baseline{target}")
        every = statistics.median(adds["new version"] + adds["new project"])
        print(f"incremental (one wheel added), median:          {every * 1000:5.1f} ms"
              f"  (target < 10 ms: {'met' if every < 0.01 else 'MISSED'})")
        for kind in ("new version", "new project"):
            parts = "".join(f", {part} {statistics.median(adds[f'{kind}, {part}']) * 1000:.1f}"
                            for part in ("find-links page", "root pages")
                            if adds[f"{kind}, {part}"])
            print(f"  a {kind + ':':12} {statistics.median(adds[kind]) * 1000:5.1f} ms median "
                  f"({max(adds[kind]) * 1000:.1f} at most{parts})")
        print(f"index valid after the runs: {'yes' if not problems else problems[:3]}")
        serving_figures(index.root, tmp, args.projects, args.requests, args.clients)
        best = after_deleting(tmp, len(files), args.repeat)
        print(f"full regeneration from bare wheels, right after deleting the old pages and "
              f".metadata: {best:.2f} s = {best / base_s:4.2f}x baseline")


if __name__ == "__main__":
    main()

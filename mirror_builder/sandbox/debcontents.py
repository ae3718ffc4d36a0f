"""Which Debian packages hold a file: the Contents index of a suite and architecture, fetched from
Debian's mirror once, kept under the cache as a small SQLite index, checked again after its TTL.

Only the paths a build can miss are kept: headers (usr/include), pkg-config files, libraries
(lib*.so, lib*.a), programs (bin, sbin) and CMake package files; about 370,000 of bookworm's
7.3 million lines, 12 MB. The suite's Release file gives each Contents file's sha256: a download
is checked against it, and an index whose files still have those digests is current.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import sqlite3
import time
import zlib
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mirror_builder.config.settings import Settings, TargetSettings
from mirror_builder.errors import UpstreamError
from mirror_builder.files import atomic_write_text
from mirror_builder.resolve.transport import Transport

log = logging.getLogger(__name__)

DEBIAN_MIRROR = "http://deb.debian.org/debian"
# What a build can miss, and so what can be looked up.
Kind = Literal["header", "pkg-config", "library", "program", "cmake"]
# Debian's multiarch folders (usr/lib/<triplet>, usr/include/<triplet>).
MULTIARCH = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu",
             "armhf": "arm-linux-gnueabihf", "armel": "arm-linux-gnueabi",
             "i386": "i386-linux-gnu", "ppc64el": "powerpc64le-linux-gnu",
             "s390x": "s390x-linux-gnu", "riscv64": "riscv64-linux-gnu",
             "mips64el": "mips64el-linux-gnuabi64"}
_BIN_DIRS = ("usr/bin", "bin", "usr/sbin", "sbin")
# Lines worth a closer look: headers and programs by where they start (Contents is sorted by
# path, so these are a few runs of lines); the rest by how their file name ends.
_BY_PREFIX = re.compile(rb"^(?:usr/include/|(?:usr/)?s?bin/)[^\n]*", re.MULTILINE)
_BY_SUFFIX = (b".pc ", b".so ", b".a ", b"onfig.cmake ")
_SCHEMA = """
CREATE TABLE dirs (id INTEGER PRIMARY KEY, path TEXT NOT NULL);
CREATE TABLE packages (id INTEGER PRIMARY KEY, names TEXT NOT NULL);
CREATE TABLE files (name TEXT NOT NULL, dir INTEGER NOT NULL, packages INTEGER NOT NULL,
                    PRIMARY KEY (name, dir, packages)) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class ContentsSource:
    """Where a suite's Contents files are: Debian's mirror, a suite (bookworm), an architecture."""

    suite: str
    arch: str
    mirror: str = DEBIAN_MIRROR

    @property
    def release_url(self) -> str:
        return f"{self.mirror.rstrip('/')}/dists/{self.suite}/Release"

    def url(self, member: str) -> str:
        return f"{self.mirror.rstrip('/')}/dists/{self.suite}/{member}"

    @property
    def members(self) -> tuple[str, str]:
        """The architecture's own Contents file, then the one of architecture-independent
        packages (headers-only libraries, pkg-config files in usr/share, scripts)."""
        return f"main/Contents-{self.arch}.gz", "main/Contents-all.gz"

    def describe(self) -> str:
        return f"Debian {self.suite} ({self.arch})"


class DebianContents:
    """The Contents index of one suite and architecture, kept under cache_dir/debian-contents.
    Safe to use from several threads and processes: one of them makes the index, under a lock,
    and the others wait for it."""

    def __init__(self, cache_dir: Path, source: ContentsSource, transport: Transport,
                 ttl_seconds: float) -> None:
        self.source = source
        self.transport = transport
        self.ttl_seconds = ttl_seconds
        folder = cache_dir / "debian-contents"
        stem = f"{source.suite}-{source.arch}"
        self.database = folder / f"{stem}.sqlite"
        self.state = folder / f"{stem}.json"  # the Contents digests it was made from, when checked
        self._lock = folder / f"{stem}.lock"

    @contextmanager
    def open(self) -> Iterator[ContentsIndex]:
        """The index, made or checked first if it is missing or older than its TTL."""
        self._ensure()
        connection = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)
        with closing(connection):
            yield ContentsIndex(connection, MULTIARCH.get(self.source.arch, ""))

    def _ensure(self) -> None:
        self.database.parent.mkdir(parents=True, exist_ok=True)
        with self._lock.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
            state = self._read_state()
            if state and time.time() - state.get("checked_at", 0) <= self.ttl_seconds:
                return
            try:
                digests = self._release_digests()
            except UpstreamError as exc:
                if not state:
                    raise
                log.warning("%s: %s; using the Contents index from before", self.source.describe(),
                            exc)
                return
            if state and state.get("digests") == digests:
                self._write_state(state | {"checked_at": time.time()})
                return
            self._make(digests)

    def _read_state(self) -> dict | None:
        try:
            state = json.loads(self.state.read_text())
        except (OSError, ValueError):
            return None
        return state if isinstance(state, dict) and self.database.is_file() else None

    def _write_state(self, state: dict) -> None:
        atomic_write_text(self.state, json.dumps(state, indent=1) + "\n")

    def _release_digests(self) -> dict[str, str]:
        """member -> sha256 of the Contents files the suite's Release file lists."""
        response = self.transport.get(self.source.release_url)
        if response.status != 200:
            raise UpstreamError(f"{self.source.release_url}: HTTP {response.status}; is "
                                f"{self.source.suite} a Debian suite?")
        listed = release_sha256(response.body)
        wanted = {m: listed[m] for m in self.source.members if m in listed}
        if self.source.members[0] not in wanted:
            raise UpstreamError(f"{self.source.describe()}: its Release file lists no "
                                f"{self.source.members[0]}")
        return wanted

    def _make(self, digests: dict[str, str]) -> None:
        started = time.monotonic()
        tmp = self.database.with_name(f".{self.database.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            with closing(sqlite3.connect(tmp)) as connection:
                writer = _IndexWriter(connection)
                for member, sha256 in digests.items():
                    self._add(writer, self.source.url(member), sha256)
                rows = writer.finish()
            os.replace(tmp, self.database)
        finally:
            tmp.unlink(missing_ok=True)
        self._write_state({"digests": digests, "checked_at": time.time(), "rows": rows,
                           "made_in_seconds": round(time.monotonic() - started, 1)})
        log.info("%s: Contents index made (%d paths, %.1f s)", self.source.describe(), rows,
                 time.monotonic() - started)


    def _add(self, writer: _IndexWriter, url: str, sha256: str) -> None:
        """One Contents file, downloaded again from its start after a transient failure."""
        self.transport.with_retries(f"cannot download {url}", lambda: writer.add(
            _checked(self.transport.stream(url), sha256, url)))


def contents_for(settings: Settings, target: TargetSettings) -> DebianContents:
    """The Contents index of a target's Debian suite and architecture, checked again after the
    upstream cache TTL of settings.yaml."""
    from mirror_builder import __version__

    up = settings.upstream
    transport = Transport(timeout=up.timeout_seconds, retries=up.retries, backoff_seconds=0.5,
                          user_agent=f"mirror-builder/{__version__}")
    return DebianContents(settings.cache_dir, ContentsSource(target.distribution, target.arch),
                          transport, up.cache_ttl_seconds)


def release_sha256(text: str) -> dict[str, str]:
    """The SHA256: section of a Debian Release file, as path -> digest."""
    found, inside = {}, False
    for line in text.splitlines():
        if not line.startswith(" "):
            inside = line.strip() == "SHA256:"
            continue
        parts = line.split()
        if inside and len(parts) == 3:
            found[parts[2]] = parts[0].lower()
    return found


def _checked(chunks: Iterator[bytes], sha256: str, url: str) -> Iterator[bytes]:
    """The chunks, then an UpstreamError if they were not the file the Release file names."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
        yield chunk
    if digest.hexdigest() != sha256:
        raise UpstreamError(f"{url}: the download is not the file Debian's Release file lists "
                            f"(sha256 {digest.hexdigest()}, expected {sha256})")


class _IndexWriter:
    """Streams Contents files (gzip, as downloaded) into the SQLite index: neither the file nor
    its text is ever whole in memory."""

    BATCH = 20000

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        connection.isolation_level = None  # transactions as written here: one per file
        connection.executescript(_SCHEMA)
        self.dirs: dict[bytes, int] = {}
        self.packages: dict[bytes, int] = {}

    def add(self, gzipped: Iterator[bytes]) -> None:
        """One Contents file. Its rows go in only once all of it was read (a download cut short
        is tried again from its start)."""
        self.connection.execute("SAVEPOINT contents")
        try:
            batch = []
            for line in _lines(gzipped):
                row = self._row(line)
                if row is not None:
                    batch.append(row)
                if len(batch) >= self.BATCH:
                    self._insert(batch)
            self._insert(batch)
        except BaseException:
            self.connection.execute("ROLLBACK TO contents")
            raise
        finally:
            self.connection.execute("RELEASE contents")

    def _row(self, line: bytes) -> tuple[str, int, int] | None:
        path, _, packages = line.rstrip().rpartition(b" ")
        path = path.rstrip()
        if not path or not wanted_path(path.decode("utf-8", "replace")):
            return None
        folder, _, name = path.rpartition(b"/")
        dir_id = self.dirs.setdefault(folder, len(self.dirs))
        packages_id = self.packages.setdefault(packages, len(self.packages))
        return name.decode("utf-8", "replace"), dir_id, packages_id

    def _insert(self, batch: list) -> None:
        self.connection.executemany("INSERT OR IGNORE INTO files VALUES (?, ?, ?)", batch)
        batch.clear()

    def finish(self) -> int:
        """Write the folders and package lists; the number of paths indexed."""
        self.connection.execute("BEGIN")
        self.connection.executemany("INSERT INTO dirs VALUES (?, ?)", (
            (i, path.decode("utf-8", "replace")) for path, i in self.dirs.items()))
        # "libdevel/libzmq3-dev,net/zmq-tools": the packages without their sections.
        self.connection.executemany("INSERT INTO packages VALUES (?, ?)", (
            (i, ",".join(p.rpartition("/")[2] for p in text.decode().split(",")))
            for text, i in self.packages.items()))
        rows = self.connection.execute("SELECT count(*) FROM files").fetchone()[0]
        self.connection.execute("COMMIT")
        self.connection.execute("VACUUM")
        return rows


def _lines(gzipped: Iterator[bytes]) -> Iterator[bytes]:
    """The lines of a gzip stream worth a closer look (see _BY_PREFIX, _BY_SUFFIX)."""
    rest = b"\n"
    for piece in _inflated(gzipped):
        data = rest + piece
        cut = data.rfind(b"\n")
        if cut < 0:
            rest = data
            continue
        rest = data[cut:]  # a line cut short, after its newline
        yield from _candidates(data[:cut + 1])
    if rest != b"\n":
        yield from _candidates(rest if rest.endswith(b"\n") else rest + b"\n")


def _inflated(gzipped: Iterator[bytes], most: int = 1 << 22) -> Iterator[bytes]:
    """The gzip stream's bytes, at most `most` at a time (Contents compresses 15 to 1)."""
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    for chunk in gzipped:
        while chunk:
            yield inflate.decompress(chunk, most)
            chunk = inflate.unconsumed_tail
    yield inflate.flush()


def _candidates(text: bytes) -> Iterator[bytes]:
    """text: whole lines, starting and ending with a newline."""
    yield from _BY_PREFIX.findall(text)
    for suffix in _BY_SUFFIX:
        at = text.find(suffix)
        while at >= 0:
            start = text.rfind(b"\n", 0, at) + 1
            end = text.find(b"\n", at)
            line = text[start:end]
            if not line.startswith((b"usr/include/", b"bin/", b"sbin/", b"usr/bin/", b"usr/sbin/")):
                yield line  # (those came by prefix)
            at = text.find(suffix, end)


def wanted_path(path: str) -> bool:
    """A path the index keeps: one a build may miss."""
    folder, _, name = path.rpartition("/")
    if path.startswith("usr/include/") or folder in _BIN_DIRS:
        return True
    if name.endswith(".pc"):
        return folder.endswith("/pkgconfig")
    if name.endswith(("Config.cmake", "-config.cmake")):
        return "/cmake" in folder.lower() or folder.lower().endswith("cmake")
    return name.startswith("lib") and name.endswith((".so", ".a")) and \
        path.startswith(("usr/lib/", "lib/"))


class ContentsIndex:
    """Lookups in an open index: the packages that provide what a build missed, best first
    (for headers, pkg-config files, libraries and CMake files, -dev packages only if any)."""

    def __init__(self, connection: sqlite3.Connection, triplet: str) -> None:
        self.connection = connection
        self.triplet = triplet

    def packages(self, kind: Kind, name: str) -> tuple[str, ...]:
        if kind == "header":
            return self._header(name)
        if kind == "pkg-config":
            return self._in(f"{name}.pc", _with_triplet(
                ("usr/lib/{t}/pkgconfig", "usr/lib/pkgconfig", "usr/share/pkgconfig"),
                self.triplet))
        if kind == "library":
            return self._library(name)
        if kind == "program":
            return self._in(name, _BIN_DIRS, prefer_dev=False)
        if kind == "cmake":
            return self._cmake(name)
        raise ValueError(f"unknown kind {kind!r}")

    def _rows(self, name: str) -> list[tuple[str, str]]:
        return self.connection.execute(
            "SELECT dirs.path, packages.names FROM files JOIN dirs ON dirs.id = files.dir "
            "JOIN packages ON packages.id = files.packages WHERE files.name = ?",
            (name,)).fetchall()

    def _in(self, name: str, folders, prefer_dev: bool = True) -> tuple[str, ...]:
        return _ranked([p for d, p in self._rows(name) if d in folders], prefer_dev)

    def _header(self, include: str) -> tuple[str, ...]:
        """An #include name ("zmq.h", "libxml/parser.h"): where the compiler looks by default,
        else in any folder under usr/include (which needs an -I the build may add itself)."""
        sub, _, name = include.strip("/").rpartition("/")
        rows = self._rows(name)
        at = {"usr/include", f"usr/include/{self.triplet}"}
        at = {f"{d}/{sub}" for d in at} if sub else at
        exact = [p for d, p in rows if d in at]
        if exact:
            return _ranked(exact, True)
        return _ranked([p for d, p in rows if d.startswith("usr/include/")
                        and (not sub or d.endswith(f"/{sub}"))], True)

    def _library(self, name: str) -> tuple[str, ...]:
        """-lNAME: libNAME.so (else libNAME.a) where the linker looks, else in a folder under
        usr/lib/<triplet> (OpenBLAS's variants)."""
        folders = _with_triplet(("usr/lib/{t}", "usr/lib", "lib/{t}", "lib"), self.triplet)
        for file in (f"lib{name}.so", f"lib{name}.a"):
            rows = self._rows(file)
            found = [p for d, p in rows if d in folders] or \
                [p for d, p in rows if d.startswith(f"usr/lib/{self.triplet}/")]
            if found:
                return _ranked(found, True)
        return ()

    def _cmake(self, name: str) -> tuple[str, ...]:
        """find_package(NAME) in config mode: NAMEConfig.cmake or name-config.cmake where CMake
        searches (<lib or share>/cmake/NAME*/, <lib or share>/NAME*/cmake/)."""
        roots = "|".join(re.escape(r) for r in _with_triplet(
            ("usr/lib/{t}", "usr/lib", "usr/share"), self.triplet))
        where = re.compile(rf"^(?:{roots})/(?:cmake/{re.escape(name)}[^/]*|"
                           rf"{re.escape(name)}[^/]*/cmake)$", re.IGNORECASE)
        found = [p for file in (f"{name}Config.cmake", f"{name.lower()}-config.cmake")
                 for d, p in self._rows(file) if where.match(d)]
        return _ranked(found, True)


def _with_triplet(folders: tuple[str, ...], triplet: str) -> tuple[str, ...]:
    return tuple(f.format(t=triplet) for f in folders)


def _ranked(package_lists: list[str], prefer_dev: bool) -> tuple[str, ...]:
    names = {n for listed in package_lists for n in listed.split(",") if n}
    if prefer_dev and any(n.endswith("-dev") for n in names):
        names = {n for n in names if n.endswith("-dev")}
    return tuple(sorted(names, key=lambda n: (len(n), n)))

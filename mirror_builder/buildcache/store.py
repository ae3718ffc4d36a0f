"""A content-addressed store of built wheels, their logs and build records, shared by every
output on the machine (CACHE_DIR/builds).

    blobs/sha256/ab/abcdef...   every file by its sha256: written beside its place and renamed
                                into it, so a reader sees all of it or nothing
    entries/<name>/<key>-<numbering>-<n>.json
                                one build: its record (with its build key), the wheel's and the
                                log's digests, when and for which output it was built; a build
                                key can have several wheels, rebuilt with other numbers
    entries/<name>/index.json   the project's entries (key, version, wheel), for readers that
                                cannot list a folder: another machine over HTTP (remote.py)

An entry is written after its blobs, atomically; a blob is checked against its digest whenever
it is taken out, so a corrupt or truncated one is found, its entry dropped, and the wheel built
again, never served. Runs hold a shared lock on the store for as long as they may read it;
prune takes it exclusively, so it never removes what a running build is taking.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from packaging.utils import (InvalidWheelFilename, NormalizedName, canonicalize_name,
                             parse_wheel_filename)
from packaging.version import InvalidVersion, Version

from mirror_builder.files import atomic_write_text, copy_hashing, sha256_of
from mirror_builder.provenance.buildkey import build_key_of_dict

log = logging.getLogger(__name__)

_HEX = frozenset("0123456789abcdef")
CLAIM_POLL_SECONDS = 0.5
INDEX = "index.json"


def _is_wheel_name(name: str) -> bool:
    try:
        parse_wheel_filename(name)
    except InvalidWheelFilename:
        return False
    return "/" not in name and name not in (".", "..")


class CorruptEntry(Exception):
    """A cache entry whose files are missing or are not the bytes its digests name."""


@dataclass(frozen=True)
class CacheEntry:
    """One build in the cache."""

    build_key: str
    name: NormalizedName
    version: Version
    wheel: str  # file name
    wheel_sha256: str
    log_sha256: str | None
    built_at: str  # ISO time the entry was stored
    output: str  # the output directory it was built for
    record: dict
    path: Path  # the entry file

    def describe(self) -> str:
        return f"built {self.built_at[:16].replace('T', ' ')} for {self.output}"

    @property
    def numbering(self) -> str:
        return str(self.record.get("rebuild", {}).get("numbering", "build-tag"))

    @property
    def number(self) -> int:
        return int(self.record.get("rebuild", {}).get("number", 0))


@dataclass(frozen=True)
class Problem:
    """What `cache verify` found wrong with an entry."""

    entry: Path
    detail: str


def is_digest(value: object) -> bool:
    """A sha256 digest as the store names files: 64 lower-case hex digits."""
    return isinstance(value, str) and len(value) == 64 and set(value) <= _HEX


def entry_filename(key: str, numbering: str, number: int) -> str:
    if not is_digest(key) or numbering not in ("build-tag", "post-release") \
            or not isinstance(number, int) or number < 0:
        raise CorruptEntry(f"{key!r}, {numbering!r}, {number!r}: not a build key and rebuild")
    return f"{key}-{numbering}-{number}.json"


def record_has_key(record: dict, key: str) -> bool:
    """Whether key is the build key record names and the one its inputs make."""
    try:
        return record.get("build_key") == key == build_key_of_dict(record)
    except (KeyError, TypeError, AttributeError):
        return False  # an incomplete record


def key_matches(entry: CacheEntry) -> bool:
    """Whether the entry's build key is the one its record's inputs make (and its file's name)."""
    try:
        return record_has_key(entry.record, entry.build_key) and \
            entry.path.name == entry_filename(entry.build_key, entry.numbering, entry.number)
    except (TypeError, ValueError, CorruptEntry):
        return False


class BuildCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.entries_dir = root / "entries"

    # -- blobs -----------------------------------------------------------------------------
    def blob(self, sha256: str) -> Path:
        if not is_digest(sha256):
            raise CorruptEntry(f"{sha256!r} is not a sha256 digest")
        return self.blobs / sha256[:2] / sha256

    def add_blob(self, path: Path) -> str:
        """Store path's bytes under their digest (kept if already there and whole): copied
        beside the blobs while hashed, then renamed to the digest the copy had."""
        self.blobs.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.blobs, prefix=".incoming.", suffix=".part")
        os.close(fd)
        try:
            digest = copy_hashing(path, Path(tmp))
            dest = self.blob(digest)
            if not (dest.is_file() and dest.stat().st_size == Path(tmp).stat().st_size):
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(tmp, 0o644)
                os.replace(tmp, dest)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return digest

    def take_blob(self, sha256: str, dest: Path) -> Path:
        """Copy the blob to dest, checked against its digest on the way."""
        source = self.blob(sha256)
        if not source.is_file():
            raise CorruptEntry(f"{source.name[:12]}... is missing from the cache")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if copy_hashing(source, dest) != sha256:
            dest.unlink(missing_ok=True)
            raise CorruptEntry(f"{source} is not the bytes of its digest (corrupt or truncated)")
        return dest

    # -- entries ---------------------------------------------------------------------------
    def put(self, record: dict, wheel: Path, log_file: Path | None,
            output: Path | str) -> CacheEntry:
        """Store a build: its wheel and log first, then the entry naming them. An entry of the
        same build key and rebuild that is whole is kept: the first build stays the one every
        output takes (a later build of the same inputs, --no-build-cache, does not replace it)."""
        key = record["build_key"]
        name = canonicalize_name(record["name"])
        rebuild = record.get("rebuild", {})
        path = self.entries_dir / name / entry_filename(
            key, rebuild.get("numbering", "build-tag"), rebuild.get("number", 0))
        kept = self.read(path) if path.is_file() else None
        if kept is not None and self._whole(kept.wheel_sha256):
            return kept
        if not _is_wheel_name(wheel.name):
            raise CorruptEntry(f"{wheel.name!r} is not a wheel's file name")
        wheel_sha256 = self.add_blob(wheel)
        if record.get("wheel_sha256") not in (None, wheel_sha256):
            raise CorruptEntry(f"{wheel.name} is not the wheel its record names")
        log_sha256 = self.add_blob(log_file) if log_file and log_file.is_file() else None
        data = {"build_key": key, "name": name, "version": record["version"],
                "wheel": wheel.name, "wheel_sha256": wheel_sha256, "log_sha256": log_sha256,
                "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "output": str(output), "record": record}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True))
        self._write_index(name)
        return self._entry(path, data)

    def entries(self, name: str | None = None) -> list[CacheEntry]:
        """The entries (of one project, or all), newest first; unreadable files skipped."""
        folders = [self.entries_dir / canonicalize_name(name)] if name else \
            sorted(p for p in self.entries_dir.glob("*") if p.is_dir())
        found = []
        for folder in folders:
            for path in folder.glob("*.json"):
                if path.name == INDEX:
                    continue
                entry = self.read(path)
                if entry is not None:
                    found.append(entry)
        return sorted(found, key=lambda e: e.built_at, reverse=True)

    def entries_for(self, name: str, version: Version) -> list[CacheEntry]:
        return [e for e in self.entries(name) if e.version == version]

    def read(self, path: Path) -> CacheEntry | None:
        try:
            return self._entry(path, json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError, InvalidVersion) as exc:
            log.warning("%s: not a readable build cache entry (%s); ignored", path, exc)
            return None

    def _whole(self, sha256: str) -> bool:
        try:
            blob = self.blob(sha256)
        except CorruptEntry:
            return False
        return blob.is_file() and sha256_of(blob) == sha256

    def take_wheel(self, entry: CacheEntry, dest_dir: Path) -> Path:
        """The entry's wheel, copied to dest_dir and checked; marks the entry used."""
        wheel = self.take_blob(entry.wheel_sha256, dest_dir / entry.wheel)
        os.utime(entry.path)  # last use, for prune
        return wheel

    def take_log(self, entry: CacheEntry, dest: Path) -> Path | None:
        if entry.log_sha256 is None:
            return None
        return self.take_blob(entry.log_sha256, dest)

    def drop(self, entry: CacheEntry, why: str) -> None:
        log.warning("%s: build cache entry %s dropped: %s", entry.name, entry.build_key[:12], why)
        entry.path.unlink(missing_ok=True)
        self._write_index(entry.name)

    def verify(self) -> tuple[int, list[Problem]]:
        """Every entry's files checked against their digests, and its build key against its
        record: how many entries, and what is wrong."""
        problems, count = [], 0
        for path in sorted(self.entries_dir.glob("*/*.json")):
            if path.name == INDEX:
                continue
            count += 1
            entry = self.read(path)
            if entry is None:
                problems.append(Problem(path, "not a readable entry"))
                continue
            for what, digest in (("wheel", entry.wheel_sha256), ("log", entry.log_sha256)):
                if digest is None:
                    continue
                try:
                    blob = self.blob(digest)
                except CorruptEntry as exc:
                    problems.append(Problem(path, f"its {what}: {exc}"))
                    continue
                if not blob.is_file():
                    problems.append(Problem(path, f"its {what} is missing"))
                elif sha256_of(blob) != digest:
                    problems.append(Problem(path, f"its {what} is corrupt or truncated"))
            if not key_matches(entry):
                problems.append(Problem(path, "its build key does not match its record"))
        return count, problems

    def remove_entries(self, paths: set[Path]) -> int:
        """Remove these entry files (bad ones, as verify found them); their blobs go at the
        next prune. How many were removed."""
        removed = 0
        for path in paths:
            if path.parent.parent == self.entries_dir and path.is_file():
                path.unlink()
                removed += 1
                self._write_index(canonicalize_name(path.parent.name))
        return removed

    def prune(self, older_than: timedelta) -> tuple[list[CacheEntry], int]:
        """Remove entries not used for older_than, then the blobs no entry names: the entries
        removed and the bytes freed. Waits for running builds (their shared locks)."""
        cutoff = time.time() - older_than.total_seconds()
        with self.locked(exclusive=True):
            removed = []
            for entry in self.entries():
                if entry.path.stat().st_mtime < cutoff:
                    entry.path.unlink(missing_ok=True)
                    removed.append(entry)
            for name in {e.name for e in removed}:
                self._write_index(name)
            named = {d for e in self.entries() for d in (e.wheel_sha256, e.log_sha256) if d}
            freed = 0
            for blob in self.blobs.glob("*/*"):
                if blob.name not in named:
                    freed += blob.stat().st_size
                    blob.unlink(missing_ok=True)
        return removed, freed

    @contextmanager
    def claim(self, what: str, wait_seconds: float,
              waiting: Callable[[], None] = lambda: None,
              stop: Callable[[], bool] = lambda: False) -> Iterator[bool]:
        """Claim the machine-wide right to build what (name-version-target): while one run
        builds it, another waits (calling waiting once) instead of building it too. Yields
        whether it waited for another run, which has then stored its build here. After
        wait_seconds, or when stop() says so, it goes on without the claim."""
        folder = self.root / "building"
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / f"{what}.lock").open("a") as handle:
            waited, held = False, False
            deadline = time.monotonic() + wait_seconds
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    held = True
                    break
                except BlockingIOError:
                    if not waited:
                        waiting()
                    waited = True
                    if time.monotonic() > deadline or stop():
                        break
                    time.sleep(CLAIM_POLL_SECONDS)
            try:
                yield waited
            finally:
                if held:
                    fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def locked(self, exclusive: bool = False) -> Iterator[None]:
        """Shared: a run that may take from the store; exclusive: prune."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write_index(self, name: NormalizedName) -> None:
        """Rewrite the project's index.json from its entry files (one writer at a time)."""
        folder = self.entries_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            listed = [{"file": e.path.name, "build_key": e.build_key, "version": str(e.version),
                       "wheel": e.wheel, "built_at": e.built_at} for e in self.entries(name)]
            atomic_write_text(folder / INDEX, json.dumps({"entries": listed}, indent=1))


    @staticmethod
    def _entry(path: Path, data: dict) -> CacheEntry:
        return CacheEntry(
            build_key=data["build_key"], name=canonicalize_name(data["name"]),
            version=Version(data["version"]), wheel=data["wheel"],
            wheel_sha256=data["wheel_sha256"], log_sha256=data.get("log_sha256"),
            built_at=data["built_at"], output=data["output"], record=data["record"], path=path)

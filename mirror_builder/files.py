"""Small file helpers every step shares: hashing, atomic writes, removing a tree."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def copy_hashing(source: Path, dest: Path) -> str:
    """Copy source to dest and return the sha256 of the bytes written: one pass over the file
    (a blob store checks what it copies; reading it again to hash it would double the I/O)."""
    digest = hashlib.sha256()
    with source.open("rb") as reader, dest.open("wb") as writer:
        for chunk in iter(lambda: reader.read(1 << 20), b""):
            digest.update(chunk)
            writer.write(chunk)
    return digest.hexdigest()


def atomic_write_text(path: Path, text: str, mode: int = 0o644) -> None:
    """Write through a temporary file in the same directory, so readers see old or new, never half.
    mkstemp makes files only their owner can read; the index is read by others (a smoke-test
    container's unprivileged user, a web server), hence mode."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_copy(source: Path, dest: Path, mode: int = 0o644) -> None:
    """Copy through a temporary file beside dest: dest is the whole copy or is not there."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)


def failed_write(exc: OSError) -> str:
    """A failed write (disk full, read-only, permissions) in words. Every file here is written
    beside its place and renamed into it, so what failed is simply not there."""
    # For a copy, filename is the source and filename2 the destination.
    path = exc.filename2 or exc.filename
    where = f" to {Path(path).parent}" if path else ""
    return f"could not write{where}: {exc.strerror or exc}; nothing half-written was kept"


def remove_tree(*folders: Path) -> None:
    """rm -rf, in a process of its own: a work folder of unpacked sources (vendored crates:
    tens of thousands of files) took shutil.rmtree 6.6 s of this process's interpreter lock at
    the end of a big run. What rm could not remove (or no rm) goes the slow way, quietly."""
    names = [str(folder) for folder in folders]
    if subprocess.run(["rm", "-rf", "--", *names], capture_output=True).returncode != 0:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


TRASH_PREFIX = ".trash-"


def remove_tree_later(folder: Path) -> None:
    """Out of the way at once (renamed to a trash name beside it, in the same folder), removed by
    an rm of its own that may outlive this process: the end of a run need not wait for it (60
    ms of markupsafe's two-build run). Trash an earlier rm did not finish goes with it."""
    stale = [p for p in folder.parent.glob(f"{TRASH_PREFIX}*")] if folder.parent.is_dir() else []
    trash = folder.parent / f"{TRASH_PREFIX}{folder.name}-{os.getpid()}-{time.time_ns()}"
    try:
        folder.rename(trash)
    except FileNotFoundError:
        trash = None
    except OSError:
        remove_tree(folder)
        trash = None
    names = [str(p) for p in (*stale, *([trash] if trash else []))]
    if names:
        subprocess.Popen(["rm", "-rf", "--", *names], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)

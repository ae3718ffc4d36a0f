"""Write out a tar archive whose members were already checked (prepare/sources.py), with GNU tar.

Python's tarfile writes every member with several calls that each take the interpreter lock:
unpacking setuptools' sdist took 0.2 s of it, and a tree's sdists, unpacked side by side at the
start of a run, held back everything else the process did (resolving, starting builds). GNU tar
does the same in 0.04 s, in a process of its own.

It is a second line of defence, not the first: the members are checked in Python before, and tar
runs as nobody (it can neither make a device nor write where nobody may not), refuses `..` and
absolute names by itself, owns nothing and sets no special bits afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

NOBODY = 65534
# The compressions an sdist's tar comes in, by their first bytes, and tar's flag for each.
COMPRESSIONS = ((b"\x1f\x8b", "-z"), (b"BZh", "-j"), (b"\xfd7zXZ\x00", "-J"))


def tar_flag(archive: Path) -> str | None:
    """tar's flag for the archive's compression ("" for none), or None if GNU tar cannot be
    used for it here (another compression, or no tar, setpriv, chown or chmod)."""
    if not all(shutil.which(tool) for tool in ("tar", "setpriv", "chown", "chmod")):
        return None
    with archive.open("rb") as stream:
        head = stream.read(512)
    for magic, flag in COMPRESSIONS:
        if head.startswith(magic):
            return flag
    return "" if head[257:262] == b"ustar" else None


def untar(archive: Path, dest: Path, flag: str) -> str | None:
    """Write the archive's members into dest (an empty folder); None, or why tar failed.

    As root, tar runs as nobody (dest is lent to it) and the tree is given back to root; the
    archive is read from a descriptor opened here, so nobody needs no access to it."""
    command = ["tar", "-x", *([flag] if flag else []), "-f", "-", "--no-same-owner",
               "--no-same-permissions", "--no-overwrite-dir"]
    root = os.geteuid() == 0
    if root:
        os.chown(dest, NOBODY, NOBODY)
        command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                   *command]
    # Into its working folder, entered while still root: nobody need not reach dest by its path
    # (the cache is usually under root's own home).
    with archive.open("rb") as stream:
        done = subprocess.run(command, stdin=stream, cwd=dest, capture_output=True, text=True,
                              errors="replace")
    if root:
        _run(["chown", "-R", "--no-dereference", "0:0", str(dest)])
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        return lines[0].removeprefix("tar: ") if lines else f"tar exited with {done.returncode}"
    # What the 'data' filter would leave: no set-id or sticky bits, nothing writable by others.
    _run(["chmod", "-R", "u+rwX,go-w,ug-s,o-t", str(dest)])
    return None


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, errors="replace")
    if done.returncode != 0:
        raise OSError(f"{command[0]} failed: {done.stderr.strip()}")

"""User namespaces of the runs: the subordinate id ranges they take ids from, and their id maps.

Every run has a user namespace of its own: its ids, root and the builder user included, are a
block of the subordinate range of "containers" in /etc/subuid and /etc/subgid (./setup.sh adds it),
which no account on the host has, leased to it alone (sandbox/idleases.py). A process that escaped
would be nobody.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mirror_builder.errors import ContainerError

# Each container's ids are a block of this name's subordinate ranges (podman's --userns=auto,
# which anyone else's containers may use, takes its blocks from the same ranges).
SUBID_NAME = "containers"
SUBUID_FILE = Path("/etc/subuid")
SUBGID_FILE = Path("/etc/subgid")
# What ./setup.sh adds when the name has no range (podman's documented example).
SUBID_DEFAULT = "containers:2147483647:2147483648"


@dataclass(frozen=True)
class IdRange:
    """A subordinate id range: count ids from start."""

    start: int
    count: int

    def __contains__(self, host_id: object) -> bool:
        return isinstance(host_id, int) and self.start <= host_id < self.start + self.count


def subordinate_ids(path: Path, name: str = SUBID_NAME) -> tuple[IdRange, ...]:
    """name's ranges in a subordinate id file (/etc/subuid or /etc/subgid)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return ()
    ranges = []
    for line in lines:
        fields = line.strip().split(":")
        if len(fields) == 3 and fields[0] == name and fields[1].isdigit() and fields[2].isdigit() \
                and int(fields[2]) > 0:
            ranges.append(IdRange(int(fields[1]), int(fields[2])))
    return tuple(ranges)


def check_subordinate_ids(subuid: Path = SUBUID_FILE, subgid: Path = SUBGID_FILE) -> None:
    """Containers cannot start without ids for their user namespaces: say how to add them
    (podman's own message is "could not find enough available IDs")."""
    for path in (subuid, subgid):
        if not subordinate_ids(path):
            raise ContainerError(
                f"containers run in user namespaces of their own, which need a subordinate id "
                f"range for \"{SUBID_NAME}\" in {path}; run ./setup.sh (it adds "
                f"{SUBID_DEFAULT} to /etc/subuid and /etc/subgid) or add a free range there")


def id_map_text(text: object) -> str:
    """A uid_map/gid_map in one canonical form, "inside outside count" per line, from
    /proc/PID/uid_map's columns or podman's "inside:outside:count" entries ("" if malformed)."""
    if isinstance(text, list | tuple):
        text = "\n".join(str(entry) for entry in text)
    if not isinstance(text, str):
        return ""
    lines = []
    for line in text.replace(":", " ").splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3 or not all(f.isdigit() for f in fields):
            return ""
        lines.append(" ".join(str(int(f)) for f in fields))
    return "\n".join(lines)


def give_back(path: Path) -> None:
    """Make what a container wrote at path (a file, or a folder and all it holds) the host user's
    again: lchown every entry, following no links. Only for paths made for that run, and only
    after it ended."""
    uid, gid = os.getuid(), os.getgid()
    os.lchown(path, uid, gid)
    if path.is_symlink() or not path.is_dir():
        return
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)

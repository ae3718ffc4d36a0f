"""Each run's own user namespace ids: a block of the "containers" subordinate ids, leased to one
container at a time, by every mirror-builder process on the machine.

Podman's --userns=auto would pick a free block itself, but in podman 4.3 (Debian 12's) its
bookkeeping deadlocks: a create that allocates a block holds the store's layer lock while it
waits for the store lock, which a `podman container cleanup` of a container that just ended holds
while it waits for that container's lock, which the service holds while it waits for the layer
lock. Every podman call hangs from then on (three builds at once hung a run within a minute; six
short runs at once hung within a hundred). With the mappings given explicitly podman takes none
of those locks out of order, so the block is chosen here.

A lease is a lock (flock) on a file named after the block under LEASE_DIR, held until the
container is gone: two live containers never share ids, across threads and processes alike, and a
process that dies lets its blocks go with it. The first free block of the range's upper half is
taken (then of the lower half): podman's own --userns=auto, for anyone else's containers, takes
them from the bottom, and the lease files stay as few as the containers that ran at once.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mirror_builder.errors import ContainerError
from mirror_builder.sandbox.userns import (SUBGID_FILE, SUBID_NAME, SUBUID_FILE, IdRange,
                                           subordinate_ids)

# Ids per container: the image's accounts go up to nobody (65534).
BLOCK_SIZE = 65536
# On the tmpfs every process of the machine sees; gone at reboot with the containers.
LEASE_DIR = Path("/run/mirror-builder/userns")


@dataclass(frozen=True)
class IdBlock:
    """The host ids one container's ids 0 .. size-1 are."""

    uids: IdRange
    gids: IdRange

    def podman_mappings(self) -> dict:
        """podman's IDMappings for the block (container id 0 is the block's first host id)."""
        return {"UIDMap": [_entry(self.uids)], "GIDMap": [_entry(self.gids)]}


def _entry(ids: IdRange) -> dict:
    return {"container_id": 0, "host_id": ids.start, "size": ids.count}


class Lease:
    """A block held until release() (or until the process ends)."""

    def __init__(self, block: IdBlock, fd: int) -> None:
        self.block = block
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor lets the flock go
            self._fd = None


def _blocks(ranges: Sequence[IdRange], size: int) -> list[tuple[int, int]]:
    """(first host id, blocks) of each range that holds a whole block."""
    return [(r.start, r.count // size) for r in ranges if r.count >= size]


def _nth(blocks: list[tuple[int, int]], n: int, size: int) -> IdRange:
    for start, count in blocks:
        if n < count:
            return IdRange(start + n * size, size)
        n -= count
    raise IndexError(n)


class IdLeases:
    """Hands out blocks of the subordinate ranges, each to one container at a time."""

    def __init__(self, uid_ranges: Sequence[IdRange], gid_ranges: Sequence[IdRange],
                 lease_dir: Path = LEASE_DIR, size: int = BLOCK_SIZE) -> None:
        self.lease_dir = lease_dir
        self.size = size
        self._uids, self._gids = _blocks(uid_ranges, size), _blocks(gid_ranges, size)
        self.count = min(sum(c for _, c in self._uids), sum(c for _, c in self._gids))
        if self.count == 0:
            raise ContainerError(
                f"containers run in user namespaces of their own of {size} ids each, but the "
                f"subordinate ranges of \"{SUBID_NAME}\" in {SUBUID_FILE} and {SUBGID_FILE} "
                f"hold no range that large; run ./setup.sh or give it a larger range there")

    @classmethod
    def for_machine(cls) -> "IdLeases":
        return cls(subordinate_ids(SUBUID_FILE), subordinate_ids(SUBGID_FILE))

    def block(self, n: int) -> IdBlock:
        return IdBlock(_nth(self._uids, n, self.size), _nth(self._gids, n, self.size))

    def lease(self) -> Lease:
        """A block no other live container (of any mirror-builder on the machine) has."""
        try:
            self.lease_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ContainerError(f"cannot keep the user namespaces' leases in {self.lease_dir}: "
                                 f"{exc.strerror}") from None
        for n in self._candidates():
            block = self.block(n)
            fd = os.open(self.lease_dir / f"{block.uids.start}-{block.gids.start}.lock",
                         os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return Lease(block, fd)
        raise ContainerError(f"all {self.count} user namespace id blocks are in use by running "
                             f"containers (leases in {self.lease_dir})")

    def _candidates(self) -> Iterator[int]:
        half = self.count // 2
        yield from range(half, self.count)
        yield from range(half)

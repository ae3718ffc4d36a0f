"""Each container's user namespace is a block of the "containers" subordinate ids, leased to it
alone while it lives (sandbox/idleases.py), by every mirror-builder process on the machine."""

import subprocess
import sys

import pytest

from mirror_builder.errors import ContainerError
from mirror_builder.sandbox.idleases import IdLeases
from mirror_builder.sandbox.userns import IdRange

SIZE = 65536
RANGE = IdRange(2147483647, 8 * SIZE)  # eight blocks


@pytest.fixture
def leases(tmp_path) -> IdLeases:
    return IdLeases([RANGE], [RANGE], lease_dir=tmp_path / "leases")


def overlap(a: IdRange, b: IdRange) -> bool:
    return a.start < b.start + b.count and b.start < a.start + a.count


def test_leases_held_at_once_never_overlap(leases):
    held = [leases.lease() for _ in range(8)]

    blocks = [lease.block for lease in held]
    for i, one in enumerate(blocks):
        for other in blocks[i + 1:]:
            assert not overlap(one.uids, other.uids) and not overlap(one.gids, other.gids)


def test_every_block_is_whole_and_inside_the_range(leases):
    for lease in [leases.lease() for _ in range(8)]:
        assert lease.block.uids.count == SIZE
        assert lease.block.uids.start in RANGE and lease.block.uids.start + SIZE - 1 in RANGE


def test_the_upper_half_is_taken_first_then_the_lower(leases):
    starts = [leases.lease().block.uids.start for _ in range(8)]

    assert starts == [RANGE.start + n * SIZE for n in (4, 5, 6, 7, 0, 1, 2, 3)]


def test_a_released_block_is_taken_again(leases):
    first = leases.lease()
    block = first.block
    first.release()

    assert leases.lease().block == block


def test_when_every_block_is_held_the_error_says_so(leases):
    held = [leases.lease() for _ in range(8)]

    with pytest.raises(ContainerError, match="all 8 user namespace id blocks are in use"):
        leases.lease()
    held[3].release()
    assert leases.lease().block == held[3].block


def test_uids_and_gids_come_from_their_own_ranges(tmp_path):
    gids = IdRange(100_000_000, 4 * SIZE)
    leases = IdLeases([RANGE], [gids], lease_dir=tmp_path)

    block = leases.lease().block

    assert block.uids.start in RANGE and block.gids.start in gids
    assert leases.count == 4  # the smaller of the two
    assert block.podman_mappings() == {
        "UIDMap": [{"container_id": 0, "host_id": block.uids.start, "size": SIZE}],
        "GIDMap": [{"container_id": 0, "host_id": block.gids.start, "size": SIZE}]}


def test_blocks_span_several_ranges(tmp_path):
    ranges = [IdRange(1_000_000, SIZE), IdRange(5_000_000, 2 * SIZE + 5)]
    leases = IdLeases(ranges, ranges, lease_dir=tmp_path)

    starts = sorted(leases.lease().block.uids.start for _ in range(3))

    assert starts == [1_000_000, 5_000_000, 5_000_000 + SIZE]


def test_a_range_too_small_for_a_block_says_to_run_setup(tmp_path):
    with pytest.raises(ContainerError, match=r"no range that large; run \./setup\.sh"):
        IdLeases([IdRange(100_000, 1000)], [RANGE], lease_dir=tmp_path)


HOLD = """
import sys, time
from pathlib import Path
from mirror_builder.sandbox.idleases import IdLeases
from mirror_builder.sandbox.userns import IdRange
r = IdRange(2147483647, 8 * 65536)
lease = IdLeases([r], [r], lease_dir=Path(sys.argv[1])).lease()
print(lease.block.uids.start, flush=True)
if sys.argv[2] == "hold":
    sys.stdin.read()
"""


def test_a_block_another_process_holds_is_not_handed_out(leases):
    other = subprocess.Popen([sys.executable, "-c", HOLD, str(leases.lease_dir), "hold"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        theirs = int(other.stdout.readline())

        ours = [leases.lease().block.uids.start for _ in range(7)]

        assert theirs not in ours
    finally:
        other.communicate("")


def test_a_process_that_ends_lets_its_block_go(leases):
    ended = subprocess.run([sys.executable, "-c", HOLD, str(leases.lease_dir), "end"],
                           capture_output=True, text=True, check=True)

    assert leases.lease().block.uids.start == int(ended.stdout)

"""Containers run in user namespaces of their own: the subordinate ids they need, the mapping
the build reports (checked against podman's), and what the host does with files they wrote."""

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from mirror_builder.build.builder import _user_namespace
from mirror_builder.sandbox.podman import RunResult
from mirror_builder.sandbox.userns import (IdRange, check_subordinate_ids, give_back, id_map_text,
                                           subordinate_ids)
from mirror_builder.errors import BuildError, ContainerError
from mirror_builder.cli.views import _id_ranges

PODMAN = RunResult(exit_code=0, timed_out=False, seconds=1.0,
                   uid_map="0 2147483647 65534", gid_map="0 2147483647 65534")


def request():
    return SimpleNamespace(source=SimpleNamespace(name="demo", version="1.0"), chain=(),
                           log_path=Path("/logs/demo-1.0.log"))


def test_the_containers_range_is_read_and_other_names_are_ignored(tmp_path):
    subuid = tmp_path / "subuid"
    subuid.write_text("alice:100000:65536\ncontainers:2147483647:2147483648\n"
                      "containersx:5:5\ncontainers:10:0\n")

    (found,) = subordinate_ids(subuid)

    assert found == IdRange(2147483647, 2147483648)
    assert 2147484647 in found and 4294967294 in found
    assert 1000 not in found and 0 not in found and 4294967295 not in found


def test_without_a_range_the_error_says_to_run_setup(tmp_path):
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    subuid.write_text("containers:2147483647:2147483648\n")
    subgid.write_text("alice:100000:65536\n")

    with pytest.raises(ContainerError, match=r"\./setup\.sh") as caught:
        check_subordinate_ids(subuid, subgid)
    assert str(subgid) in str(caught.value) and '"containers"' in str(caught.value)

    with pytest.raises(ContainerError, match=str(tmp_path / "missing")):
        check_subordinate_ids(tmp_path / "missing", subgid)

    subgid.write_text("containers:2147483647:2147483648\n")
    check_subordinate_ids(subuid, subgid)


def test_a_map_from_proc_and_podmans_entries_read_the_same():
    proc = "         0 2147483647      65534\n"
    assert id_map_text(proc) == id_map_text(["0:2147483647:65534"]) == "0 2147483647 65534"
    assert id_map_text(["0:5:1", "1:10:9"]) == "0 5 1\n1 10 9"


@pytest.mark.parametrize("text", [None, 7, "0 1", "a b c", "0 1 2 3", "0 -1 2"])
def test_a_malformed_map_reads_as_none(text):
    assert id_map_text(text) == ""


def test_the_reported_namespace_is_taken_when_podman_agrees():
    reported = {"uid_map": "0 2147483647 65534", "gid_map": "0  2147483647 65534"}

    assert _user_namespace(reported, PODMAN, request()) == {"uid_map": "0 2147483647 65534",
                                                            "gid_map": "0 2147483647 65534"}


@pytest.mark.parametrize("reported", [
    None, "0 2147483647 65534", {"uid_map": "0 2147483647 65534"},
    # a build that claims it ran without a namespace (as the host's ids)
    {"uid_map": "0 0 4294967295", "gid_map": "0 0 4294967295"},
    {"uid_map": "0 2147483647 65534", "gid_map": "0 3000000000 65534"},
])
def test_a_reported_namespace_podman_did_not_set_up_is_not_trusted(reported):
    with pytest.raises(BuildError, match="user namespace other than the one podman gave"):
        _user_namespace(reported, PODMAN, request())


def test_a_run_podman_said_nothing_about_is_not_trusted():
    reported = {"uid_map": "", "gid_map": ""}
    silent = RunResult(exit_code=0, timed_out=False, seconds=1.0)

    with pytest.raises(BuildError, match="not trusted"):
        _user_namespace(reported, silent, request())


@pytest.mark.skipif(os.getuid() != 0, reason="giving files to another uid needs root")
def test_what_a_container_wrote_is_given_back_without_following_links(tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("a host file")
    os.chown(outside, 4242, 4242)
    out = tmp_path / "out"
    (out / "dist").mkdir(parents=True)
    (out / "dist" / "demo.whl").write_text("wheel")
    os.symlink(outside, out / "dist" / "link")
    for path in (out, out / "dist", out / "dist" / "demo.whl"):
        os.chown(path, 2147484647, 2147484647)
    os.lchown(out / "dist" / "link", 2147484647, 2147484647)

    give_back(out)

    for path in (out, out / "dist", out / "dist" / "demo.whl", out / "dist" / "link"):
        assert (path.lstat().st_uid, path.lstat().st_gid) == (os.getuid(), os.getgid())
    assert (outside.stat().st_uid, outside.stat().st_gid) == (4242, 4242)


def test_inspect_shows_which_host_ids_the_builds_ids_were():
    assert _id_ranges("0 2147483647 65534") == "0-65533 are host 2147483647-2147549180"
    assert _id_ranges("0 5 1\n1 10 9") == "0-0 are host 5-5, 1-9 are host 10-18"
    assert _id_ranges("[/bold] 1 2") == "'\\[/bold] 1 2'"

"""What crosses the scheduler between coordinator and workers: plain data naming files by
sha256, checked on arrival; the prepared tree as a tar that is the same bytes for the same
tree and cannot write outside its folder when unpacked."""

import io
import json
import os
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from mirror_builder.cluster.wire import (RemoteBuild, RemoteOutcome, WireError, code_version,
                                         image_resource, pack_tree, unpack_tree)
from test_build_request import REQUEST

TREE = "e" * 64


def outcome(**changes) -> dict:
    document = RemoteOutcome("built", {"name": "wbook", "host": "build-3"},
                             result={"status": "built"}, wheel=("demo-1.0-py3-none-any.whl",
                                                                "f" * 64),
                             log_sha256="0" * 64).to_dict()
    return document | changes


def test_a_remote_build_is_plain_json_and_comes_back_equal():
    document = json.loads(json.dumps(RemoteBuild(REQUEST, TREE, "https://coord:8790/").to_dict()))
    back = RemoteBuild.from_dict(document)
    assert (back.request, back.tree_sha256, back.store) == (REQUEST, TREE, "https://coord:8790/")
    assert document["version"] == code_version()


@pytest.mark.parametrize("change, problem", [
    ({"schema": "mirror-builder/build-request/v1"}, "remote-build/v1"),
    ({"version": "0.1.0+000000000000"}, "run the same code on the coordinator and workers"),
    ({"tree": "../../etc/passwd"}, "not named by a sha256"),
    ({"request": {"schema": "mirror-builder/build-request/v1"}}, "not a build request"),
])
def test_a_remote_build_from_other_code_or_malformed_is_refused(change, problem):
    document = RemoteBuild(REQUEST, TREE, "https://coord:8790/").to_dict() | change
    with pytest.raises(WireError, match=problem):
        RemoteBuild.from_dict(document)


def test_an_outcome_comes_back_with_its_digests_and_worker():
    back = RemoteOutcome.from_dict(json.loads(json.dumps(outcome())))
    assert back.wheel == ("demo-1.0-py3-none-any.whl", "f" * 64)
    assert back.worker == {"name": "wbook", "host": "build-3"}
    assert back.log_sha256 == "0" * 64


@pytest.mark.parametrize("document, problem", [
    ("<pickled object>", "not an outcome"),
    (outcome(status="trust-me"), "status 'trust-me'"),
    (outcome(wheel=["demo-1.0-py3-none-any.whl", "not-a-digest"]), "without a sha256"),
    (outcome(log="../log"), "log without a sha256"),
    (outcome(result=None), "built without a build result"),
    (outcome(worker=["wbook"]), "other than a mapping"),
    (outcome(version="9.9"), "run the same code"),
])
def test_an_outcome_that_is_not_what_this_version_sends_is_refused(document, problem):
    with pytest.raises(WireError, match=problem):
        RemoteOutcome.from_dict(document)


def make_tree(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("X = 1\n")
    (root / "setup.py").write_text("print('hi')\n")
    (root / "build.sh").write_text("#!/bin/sh\n")
    (root / "build.sh").chmod(0o755)
    (root / "link").symlink_to("setup.py")
    for path in root.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000), follow_symlinks=False)
    return root


def test_packing_a_tree_twice_gives_the_same_bytes_and_unpacks_to_the_same_tree(tmp_path):
    tree = make_tree(tmp_path / "tree")
    first = pack_tree(tree, tmp_path / "one.tar").read_bytes()
    second = pack_tree(tree, tmp_path / "two.tar").read_bytes()
    assert first == second
    unpacked = unpack_tree(tmp_path / "one.tar", tmp_path / "out")
    assert (unpacked / "pkg" / "__init__.py").read_text() == "X = 1\n"
    assert os.access(unpacked / "build.sh", os.X_OK)
    assert os.readlink(unpacked / "link") == "setup.py"
    assert (unpacked / "setup.py").stat().st_mtime == 1_700_000_000
    with tarfile.open(tmp_path / "one.tar") as tar:
        assert {(m.uid, m.gid, m.uname, m.gname) for m in tar.getmembers()} == {(0, 0, "", "")}


def test_a_changed_file_time_changes_the_packed_bytes(tmp_path):
    tree = make_tree(tmp_path / "tree")
    before = pack_tree(tree, tmp_path / "a.tar").read_bytes()
    os.utime(tree / "setup.py", (1_800_000_000, 1_800_000_000))
    assert pack_tree(tree, tmp_path / "b.tar").read_bytes() != before


@pytest.mark.parametrize("member", ["../escaped.txt", "link-out"])
def test_an_archive_reaching_outside_its_folder_is_refused(tmp_path, member):
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo(member)
        if member == "link-out":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
            info = tarfile.TarInfo("link-out/x")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    with pytest.raises(WireError, match="could not be unpacked"):
        unpack_tree(archive, tmp_path / "dest")
    assert not (tmp_path / "escaped.txt").exists()


def test_an_absolute_member_lands_inside_the_folder(tmp_path):
    archive = tmp_path / "abs.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo(str(tmp_path / "absolute.txt"))
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    unpack_tree(archive, tmp_path / "dest")
    assert not (tmp_path / "absolute.txt").exists()
    assert (tmp_path / "dest" / str(tmp_path).lstrip("/") / "absolute.txt").read_bytes() == b"evil"


def test_an_images_resource_names_its_content_not_its_id():
    image = REQUEST.runtime.image
    same_content = replace(image, id="sha256:other-host", tag="localhost/img:other")
    other_packages = replace(image, system_packages=("gcc=13",))
    assert image_resource(image) == image_resource(same_content)
    assert image_resource(image) != image_resource(other_packages)
    assert image_resource(image).startswith("image-bookworm-x86_64-")


def smoke_request(**changes) -> dict:
    from mirror_builder.cluster.wire import RemoteSmoke
    from mirror_builder.config.settings import BuildSettings

    document = RemoteSmoke(REQUEST.runtime.image, BuildSettings(),
                           (("simple/demo/index.html", "1" * 64),
                            ("files/demo/demo-1.0-py3-none-any.whl", "2" * 64)),
                           (("demo-1.0-py3-none-any.whl", "2" * 64),),
                           (("demo-1.0-py3-none-any.whl", ("demo",)),),
                           "https://coord:8790/").to_dict()
    return json.loads(json.dumps(document)) | changes


def test_a_smoke_request_is_plain_json_and_comes_back_equal():
    from mirror_builder.cluster.wire import RemoteSmoke

    back = RemoteSmoke.from_dict(smoke_request())
    assert back.image == REQUEST.runtime.image
    assert back.tests == (("demo-1.0-py3-none-any.whl", ("demo",)),)


@pytest.mark.parametrize("change, problem", [
    ({"index": [["../../etc/passwd", "1" * 64]]}, "not a path inside an index"),
    ({"index": [["simple/../../../etc/cron.d/x", "1" * 64]]}, "not a path inside an index"),
    ({"index": [["logs/secret.log", "1" * 64]]}, "not a path inside an index"),
    ({"index": [["simple/demo/index.html", "not-hex"]]}, "by its sha256"),
    ({"staged": [["../demo-1.0-py3-none-any.whl", "2" * 64]]}, "not a file name"),
    ({"tests": [["/etc/passwd", ["demo"]]]}, "not a file name"),
])
def test_a_smoke_request_naming_files_outside_its_folders_is_refused(change, problem):
    from mirror_builder.cluster.wire import RemoteSmoke

    with pytest.raises(WireError, match=problem):
        RemoteSmoke.from_dict(smoke_request(**change))


def test_smoke_results_are_taken_only_for_the_wheels_asked_about():
    from mirror_builder.build.request import SmokeResult
    from mirror_builder.cluster.wire import smoke_results_from_dict, smoke_results_to_dict

    sent = smoke_results_to_dict({"demo-1.0-py3-none-any.whl": SmokeResult(
        "demo-1.0-py3-none-any.whl", "passed", {"demo": None}, ("demo==1.0",))})
    back = smoke_results_from_dict(json.loads(json.dumps(sent)), {"demo-1.0-py3-none-any.whl"})
    assert back["demo-1.0-py3-none-any.whl"].freeze == ("demo==1.0",)
    with pytest.raises(WireError, match="other wheels"):
        smoke_results_from_dict(sent, {"other-1.0-py3-none-any.whl"})
    forged = json.loads(json.dumps(sent))
    forged["demo-1.0-py3-none-any.whl"]["status"] = "trusted"
    with pytest.raises(WireError, match="malformed"):
        smoke_results_from_dict(forged, {"demo-1.0-py3-none-any.whl"})

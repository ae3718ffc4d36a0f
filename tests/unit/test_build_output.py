"""What a build container leaves in /out is read without trusting it: the build ran there."""

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from mirror_builder.build.builder import Builder, _built_wheel, check_freeze
from mirror_builder.sandbox.jobfolders import read_result
from mirror_builder.errors import BuildError


def request(env_wheels=()):
    return SimpleNamespace(source=SimpleNamespace(name="demo", version="1.0"), chain=("top==2",),
                           log_path=Path("/logs/demo-1.0.log"),
                           env=SimpleNamespace(wheels=tuple(map(Path, env_wheels))))


def fail(message):
    """How a build step reports a refused wheel: a BuildError naming the package."""
    return Builder._error(request(), message)


def test_the_result_is_read_when_it_is_a_plain_json_object(tmp_path):
    (tmp_path / "result.json").write_text(json.dumps({"status": "built"}))
    assert read_result(tmp_path) == ({"status": "built"}, None)


def test_no_result_is_an_empty_one(tmp_path):
    assert read_result(tmp_path) == ({}, None)


def test_a_result_that_links_to_a_host_file_is_not_followed(tmp_path):
    secret = tmp_path / "host-secret.json"
    secret.write_text(json.dumps({"status": "built", "wheel": "stolen"}))
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(secret, out / "result.json")
    result, problem = read_result(out)
    assert result == {} and "unreadable result" in problem


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '"built"'])
def test_a_result_that_is_not_a_json_object_is_a_clear_failure(tmp_path, text):
    (tmp_path / "result.json").write_text(text)
    assert read_result(tmp_path) == ({}, "the build left a result that is not a JSON object")


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "", None, 3, ".hidden.whl"])
def test_a_wheel_name_that_is_not_a_plain_file_name_is_refused(tmp_path, name):
    (tmp_path / "dist").mkdir()
    with pytest.raises(BuildError, match="which is not a file name") as caught:
        _built_wheel(tmp_path, name, fail)
    assert "demo==1.0" in str(caught.value) and "required by: top==2" in str(caught.value)


def test_a_dist_folder_that_is_a_link_is_refused(tmp_path):
    os.symlink("/etc", tmp_path / "dist")
    with pytest.raises(BuildError, match="output folder was replaced"):
        _built_wheel(tmp_path, "passwd", fail)


def test_a_wheel_that_is_a_link_is_refused(tmp_path):
    (tmp_path / "dist").mkdir()
    os.symlink("/etc/passwd", tmp_path / "dist" / "demo-1.0-py3-none-any.whl")
    with pytest.raises(BuildError, match="is not a regular file"):
        _built_wheel(tmp_path, "demo-1.0-py3-none-any.whl", fail)


def test_a_wheel_the_backend_named_but_did_not_write_is_a_clear_failure(tmp_path):
    (tmp_path / "dist").mkdir()
    with pytest.raises(BuildError, match="did not write it"):
        _built_wheel(tmp_path, "demo-1.0-py3-none-any.whl", fail)


def test_the_freeze_must_list_exactly_the_mounted_wheels():
    wheels = ["setuptools-80.9.0-py3-none-any.whl", "Cython-3.1.0-cp311-cp311-linux_x86_64.whl"]
    check_freeze("cython==3.1.0\nsetuptools==80.9.0\n", request(wheels))
    with pytest.raises(BuildError, match="reported freeze differs"):
        check_freeze("setuptools==80.9.0\n", request(wheels))
    with pytest.raises(BuildError, match="reported freeze differs"):
        check_freeze("cython==3.1.0\nsetuptools==80.9.0\nevil==1.0\n", request(wheels))

"""The unit of work is a value: a BuildRequest and a BuildResult go to JSON and back unchanged,
so an executor on another machine can receive one and answer with the other."""

import json
from pathlib import Path

import pytest

from mirror_builder.build.request import (BuildEnvironment, BuildRequest, BuildResult, FileRef,
                                          Runtime, SourceInputs)
from mirror_builder.config.settings import BuildSettings
from mirror_builder.prepare.buildsystem import BuildSystem
from mirror_builder.sandbox.imagenames import ImageRef

REQUEST = BuildRequest(
    source=SourceInputs("demo", "1.0", FileRef(Path("/cache/demo-1.0.tar.gz"), "a" * 64),
                        Path("/work/src/demo-1.0"),
                        (FileRef(Path("/patches/demo/0001-fix.patch"), "b" * 64),), "python"),
    build_system=BuildSystem(("setuptools>=61",), "setuptools.build_meta", ("backend",)),
    env=BuildEnvironment((FileRef(Path("/out/files/setuptools/setuptools-80.0.0-py3-none-any.whl"),
                                  "c" * 64),), {"CFLAGS": "-O2"}, {"--build-option": "x"}, 4),
    runtime=Runtime(ImageRef("localhost/img:1", "sha256:1", "base", "Containerfile", "d" * 64,
                             "bookworm-x86_64", ("gcc=12",), ()),
                    BuildSettings(), "bookworm-x86_64", 1.5),
    log_path=Path("/out/logs/demo-1.0.log"), chain=("app==2.0",))


def test_a_build_request_goes_to_json_and_back_unchanged():
    document = json.loads(json.dumps(REQUEST.to_dict()))
    assert document["schema"] == "mirror-builder/build-request/v1"
    assert BuildRequest.from_dict(document) == REQUEST


def test_a_build_request_names_its_files_by_content():
    document = REQUEST.to_dict()
    assert document["source"]["sdist"] == {"path": "/cache/demo-1.0.tar.gz", "sha256": "a" * 64}
    assert [w["sha256"] for w in document["env"]["wheels"]] == ["c" * 64]


def test_a_document_of_another_schema_is_refused():
    with pytest.raises(ValueError, match="build-request/v1"):
        BuildRequest.from_dict(REQUEST.to_dict() | {"schema": "something/else"})


def test_a_build_result_goes_to_json_and_back_unchanged():
    result = BuildResult(status="built", wheel=Path("/work/demo-1.0-py3-none-any.whl"),
                         backend_requires=("wheel",), missing=(), freeze="setuptools==80.0.0\n",
                         log_path=Path("/out/logs/demo-1.0.log"), command=("python3", "x"),
                         started_at="2026-11-30T00:00:00+00:00",
                         ended_at="2026-11-30T00:00:01+00:00", seconds=1.0,
                         container_seconds=0.9, timings={"build_wheel": 0.5},
                         environment={"LANG": "C.UTF-8"},
                         user_namespace={"uid_map": "0 100000 65536", "gid_map": "0 100000 65536"})
    assert BuildResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result

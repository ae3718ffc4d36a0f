"""End-to-end: builds are reproducible by default. A real build records the settings that make
it so, its wheel is a normalized archive, and two cold builds of the same tree, into two
outputs, make wheels with the same files (content_sha256) and, apart from the build record
each carries, the same bytes."""

import json
import time
import zipfile

import pytest

from conftest import run_mirror_builder
from mirror_builder.provenance.stamp import content_digest

pytestmark = pytest.mark.e2e


def records(out):
    return {r["wheel"]: r for r in (json.loads(p.read_text())
                                    for p in out.glob("records/*/*.build.json"))}


def test_a_build_records_what_makes_it_reproducible_and_its_wheel_is_normalized(stevedore_output):
    for wheel, record in records(stevedore_output).items():
        environment = record["environment"]
        assert {k: environment[k] for k in ("PYTHONHASHSEED", "TZ", "LC_ALL")} == \
            {"PYTHONHASHSEED": "0", "TZ": "UTC", "LC_ALL": "C.UTF-8"}
        path = stevedore_output / "files" / record["name"] / wheel
        assert record["content_sha256"] == content_digest(path)
        epoch = time.gmtime(int(environment["SOURCE_DATE_EPOCH"]))[:6]
        with zipfile.ZipFile(path) as archive:
            assert {i.date_time for i in archive.infolist()} == {epoch}, wheel
            names = [i.filename for i in archive.infolist()]
            assert names[-1].endswith(".dist-info/RECORD")


def test_two_cold_builds_make_the_same_files(tmp_path):
    for out in ("first", "second"):
        run_mirror_builder("bootstrap", "six==1.17.0", "--no-build-cache", "-o", out,
                           cwd=tmp_path)
    first, second = records(tmp_path / "first"), records(tmp_path / "second")
    assert first.keys() == second.keys() and len(first) >= 2
    for wheel in first:
        assert first[wheel]["content_sha256"] == second[wheel]["content_sha256"], wheel
        assert first[wheel]["started_at"] != second[wheel]["started_at"]

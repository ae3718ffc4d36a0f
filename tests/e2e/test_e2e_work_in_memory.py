"""End-to-end, real podman: a small build is done in memory, its work folder a tmpfs of a quarter
of its memory limit (build/jobspec.py). A build that writes more than that, or that runs out of
memory while its files take some, is not failed for it: it is built again on disk, and its log
says why."""

import json
import shutil

import pytest

from conftest import FIXTURES, make_sdist, run_mirror_builder

pytestmark = pytest.mark.e2e


def bigbuild_sdist(work, name, megabytes, allocate_megabytes=0):
    source = work / "src" / name
    shutil.copytree(FIXTURES / "bigbuild", source)
    (source / "bigbuild.json").write_text(json.dumps(
        {"name": name, "version": "1.0", "megabytes": megabytes,
         "allocate_megabytes": allocate_megabytes}))
    return make_sdist(source, work / "dist", name.replace("-", "_"), "1.0")


def build_log(out, project):
    (log,) = (out / "records" / project).glob("*.whl.log")
    return log.read_text()


def test_a_build_that_outgrows_its_folder_in_memory_is_built_again_on_disk(
        local_upstream, tmp_path):
    local_upstream.add(bigbuild_sdist(tmp_path, "fits-in-memory", 8))
    local_upstream.add(bigbuild_sdist(tmp_path, "outgrows-memory", 96))
    # 256 MiB of memory for each build: a work folder in memory of 64 MiB.
    settings = local_upstream.settings(
        tmp_path / "conf", build={"timeout_seconds": 600, "memory": "256m", "pids_limit": 4096})

    run_mirror_builder("bootstrap", "fits-in-memory==1.0", "outgrows-memory==1.0", "-o", "out",
                       "--no-build-cache", cwd=tmp_path, settings=settings)

    out = tmp_path / "out"
    small = build_log(out, "fits-in-memory")
    assert "building in memory: /tmp/mb-work is a tmpfs of 64 MiB" in small
    assert "BIGBUILD building in /tmp/mb-work/src on tmpfs" in small
    assert "BIGBUILD wrote 8 MiB" in small and "again on disk" not in small

    large = build_log(out, "outgrows-memory")
    first, again = large.split("the build filled its folder in memory (/tmp/mb-work); "
                               "building it again on disk")
    assert "BIGBUILD building in /tmp/mb-work/src on tmpfs" in first
    assert "No space left on device" in first and "BIGBUILD wrote" not in first
    assert "building in memory" not in again
    on = again.split("BIGBUILD building in /tmp/mb-work/src on ")[1].split()[0]
    assert on != "tmpfs"
    assert "BIGBUILD wrote 96 MiB" in again
    records = {}
    for project in ("fits-in-memory", "outgrows-memory"):
        (record,) = (out / "records" / project).glob("*.build.json")
        records[project] = json.loads(record.read_text())
        assert records[project]["smoke_test"]["status"] == "passed"
    # Their records say where they were built.
    assert records["fits-in-memory"]["sandbox"]["in_memory"] == ["/tmp/mb-work (64m)"]
    assert records["outgrows-memory"]["sandbox"]["in_memory"] == []


def test_a_build_that_runs_out_of_memory_while_its_files_take_some_is_built_again_on_disk(
        local_upstream, tmp_path):
    # 60 of its 64 MiB in memory, then 200 MiB taken: over its 256 MiB with the files, not
    # without them.
    local_upstream.add(bigbuild_sdist(tmp_path, "hungry", 60, allocate_megabytes=200))
    settings = local_upstream.settings(
        tmp_path / "conf", build={"timeout_seconds": 600, "memory": "256m", "pids_limit": 4096})

    run_mirror_builder("bootstrap", "hungry==1.0", "-o", "out", "--no-build-cache",
                       cwd=tmp_path, settings=settings)

    log = build_log(tmp_path / "out", "hungry")
    first, again = log.split("; building it again on disk")
    assert "BIGBUILD building in /tmp/mb-work/src on tmpfs" in first
    assert "BIGBUILD took" not in first
    assert "the memory limit killed a process while 6" in first  # 6x MiB of its files
    assert "BIGBUILD took 200 MiB of memory" in again


def test_with_in_memory_off_every_build_is_done_on_disk(local_upstream, tmp_path):
    local_upstream.add(bigbuild_sdist(tmp_path, "on-disk", 1))
    settings = local_upstream.settings(
        tmp_path / "conf", build={"timeout_seconds": 600, "memory": "8g", "pids_limit": 4096,
                                  "in_memory": False})

    run_mirror_builder("bootstrap", "on-disk==1.0", "-o", "out", "--no-build-cache",
                       cwd=tmp_path, settings=settings)

    log = build_log(tmp_path / "out", "on-disk")
    assert "building in memory" not in log
    assert "BIGBUILD building in /tmp/mb-work/src on tmpfs" not in log
    assert "BIGBUILD wrote 1 MiB" in log
    (record,) = (tmp_path / "out" / "records" / "on-disk").glob("*.build.json")
    assert json.loads(record.read_text())["sandbox"]["in_memory"] == []


def test_a_package_whose_override_says_so_is_built_on_disk_however_small(
        local_upstream, tmp_path):
    local_upstream.add(bigbuild_sdist(tmp_path, "kept-on-disk", 1))
    overrides = tmp_path / "overrides"
    overrides.mkdir()
    (overrides / "kept-on-disk.yaml").write_text("in_memory: false\n")
    settings = local_upstream.settings(tmp_path / "conf", overrides_dir=overrides)

    run_mirror_builder("bootstrap", "kept-on-disk==1.0", "-o", "out", "--no-build-cache",
                       cwd=tmp_path, settings=settings)

    log = build_log(tmp_path / "out", "kept-on-disk")
    assert "building in memory" not in log and "BIGBUILD wrote 1 MiB" in log
    (record,) = (tmp_path / "out" / "records" / "kept-on-disk").glob("*.build.json")
    assert json.loads(record.read_text())["sandbox"]["in_memory"] == []

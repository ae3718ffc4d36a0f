"""A small build is done in memory (a tmpfs at its work folder, build/jobspec.py). One that fills
it is not a failed build: it is built again on disk, once. Played here by a fake podman that
answers as the driver does (sandbox/limits.py says which tmpfs is full)."""

import dataclasses
import json
import os
from pathlib import Path

import pytest

from mirror_builder.build.builder import Builder
from mirror_builder.errors import BuildError
from mirror_builder.sandbox import limits
from mirror_builder.sandbox.podman import RunResult
from test_handover import UID_MAP, WHEEL, request
from test_wheelcheck import make_wheel


class FillingPodman:
    """Each run fails with its work tmpfs full while the build has one (or always, with
    always_full); without one, it builds."""

    def __init__(self, always_full=False) -> None:
        self.always_full = always_full
        self.specs = []

    def run(self, spec, log_path, on_started=None, started=None):
        self.specs.append(spec)
        out = {m.target: m.source for m in spec.mounts}["/out"]
        in_memory = [t.target for t in spec.tmpfs if t.target.startswith("/tmp/mb-work")]
        if in_memory or self.always_full:
            result = {"status": "failed", "stage": "build_wheel", "timings": {},
                      "error": "build_wheel failed: OSError: [Errno 28] No space left on device",
                      "retry_on_disk": "the build filled its folder in memory "
                                       f"({', '.join(in_memory or ['/tmp/mb-test'])})"}
        else:
            (out / "dist").mkdir()
            make_wheel(out / "dist")
            result = {"status": "built", "wheel": WHEEL, "freeze": "", "timings": {},
                      "user_namespace": {"uid_map": UID_MAP, "gid_map": UID_MAP}}
        (out / "result.json").write_text(json.dumps(result))
        return RunResult(0 if result["status"] == "built" else 1, False, 0.1,
                         uid_map=UID_MAP, gid_map=UID_MAP)


def plain(tmp_path: Path):
    return dataclasses.replace(request(tmp_path), smoke=None)


def test_a_build_that_fills_its_folder_in_memory_is_built_again_on_disk(tmp_path):
    podman = FillingPodman()

    result = Builder(podman, tmp_path / "driver", tmp_path / "work").build(plain(tmp_path))

    assert result.status == "built" and result.wheel.is_file()
    assert result.in_memory == ()  # what its record says: built on disk
    first, second = podman.specs
    assert "/tmp/mb-work" in {t.target for t in first.tmpfs}
    assert {t.target for t in second.tmpfs} == {"/tmp/mb-test"}  # the smoke test's only
    log = plain(tmp_path).log_path.read_text()
    assert "filled its folder in memory (/tmp/mb-work); building it again on disk" in log


def test_a_build_says_which_of_its_folders_were_in_memory(tmp_path):
    class Building(FillingPodman):
        def run(self, spec, log_path, on_started=None, started=None):
            return super().run(dataclasses.replace(spec, tmpfs=()), log_path)

    result = Builder(Building(), tmp_path / "driver", tmp_path / "work").build(plain(tmp_path))

    assert result.in_memory == ("/tmp/mb-work (2048m)",)
    assert type(result).from_dict(result.to_dict()).in_memory == ("/tmp/mb-work (2048m)",)


def test_a_build_on_disk_that_fills_a_tmpfs_fails_as_any_failed_build_once(tmp_path):
    podman = FillingPodman(always_full=True)

    with pytest.raises(BuildError) as failed:
        Builder(podman, tmp_path / "driver", tmp_path / "work").build(plain(tmp_path))

    assert len(podman.specs) == 2  # in memory, then on disk; not again
    assert type(failed.value) is BuildError
    assert str(failed.value).startswith("demo==1.0: build_wheel failed: OSError")


MOUNTS = ("overlay / overlay rw 0 0\n"
          "tmpfs /tmp/mb-work tmpfs rw,size=65536k 0 0\n"
          "tmpfs /tmp/mb-test tmpfs rw,size=524288k 0 0\n"
          "tmpfs /dev/shm tmpfs rw 0 0\n")


def in_container(tmp_path, monkeypatch, free, oom_kills=0):
    """mounts and statvfs as a build container would see them: each tmpfs 512 MiB with free[path]
    bytes free; the cgroup's OOM kill counter at oom_kills."""
    mounts = tmp_path / "mounts"
    mounts.write_text(MOUNTS)
    events = tmp_path / "memory.events"
    events.write_text(f"low 0\nhigh 0\nmax 0\noom 0\noom_kill {oom_kills}\n")
    monkeypatch.setattr(limits, "OOM_EVENTS", (str(events),))

    def statvfs(path):
        blocks = free[path] // 4096
        return os.statvfs_result((4096, 4096, (512 << 20) // 4096, blocks, blocks, 0, 0, 0, 0,
                                  255))

    monkeypatch.setattr(limits.os, "statvfs", statvfs)
    return str(mounts)


def test_a_build_that_filled_its_tmpfs_is_to_be_built_again_on_disk(tmp_path, monkeypatch):
    mounts = in_container(tmp_path, monkeypatch,
                          {"/tmp/mb-work": 100 << 10, "/tmp/mb-test": 512 << 20, "/dev/shm": 0})

    assert limits.why_retry_on_disk(mounts) == \
        "the build filled its folder in memory (/tmp/mb-work)"


def test_a_build_the_oom_killer_struck_while_its_files_took_memory_is_built_again(
        tmp_path, monkeypatch):
    free = {"/tmp/mb-work": 300 << 20, "/tmp/mb-test": 512 << 20, "/dev/shm": 0}

    assert limits.why_retry_on_disk(in_container(tmp_path, monkeypatch, free)) is None
    assert limits.why_retry_on_disk(in_container(tmp_path, monkeypatch, free, oom_kills=1)) == \
        "the memory limit killed a process while 212 MiB of the build's files were in memory " \
        "(/tmp/mb-work)"
    # Nothing of its own in memory: the limit is the build's alone.
    empty = {"/tmp/mb-work": 512 << 20, "/tmp/mb-test": 512 << 20, "/dev/shm": 0}
    assert limits.why_retry_on_disk(in_container(tmp_path, monkeypatch, empty, oom_kills=1)) \
        is None


def test_the_reason_the_driver_gives_reaches_the_log_on_one_line(tmp_path):
    class Worded(FillingPodman):
        def run(self, spec, log_path, on_started=None, started=None):
            done = super().run(spec, log_path, on_started, started)
            out = {m.target: m.source for m in spec.mounts}["/out"]
            result = json.loads((out / "result.json").read_text())
            if "retry_on_disk" in result:
                result["retry_on_disk"] = "full\n[mirror-builder] forged line"
                (out / "result.json").write_text(json.dumps(result))
            return done

    Builder(Worded(), tmp_path / "driver", tmp_path / "work").build(plain(tmp_path))

    log = plain(tmp_path).log_path.read_text()
    assert "full [mirror-builder] forged line; building it again on disk" in log
    assert "\n[mirror-builder] forged line" not in log

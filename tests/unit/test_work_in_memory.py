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
                      "tmpfs_full": in_memory or ["/tmp/mb-test"]}
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
    first, second = podman.specs
    assert "/tmp/mb-work" in {t.target for t in first.tmpfs}
    assert {t.target for t in second.tmpfs} == {"/tmp/mb-test"}  # the smoke test's only
    log = plain(tmp_path).log_path.read_text()
    assert "filled its folder in memory (/tmp/mb-work); building it again on disk" in log


def test_a_build_on_disk_that_fills_a_tmpfs_fails_as_any_failed_build_once(tmp_path):
    podman = FillingPodman(always_full=True)

    with pytest.raises(BuildError) as failed:
        Builder(podman, tmp_path / "driver", tmp_path / "work").build(plain(tmp_path))

    assert len(podman.specs) == 2  # in memory, then on disk; not again
    assert type(failed.value) is BuildError
    assert str(failed.value).startswith("demo==1.0: build_wheel failed: OSError")


def test_the_driver_names_the_tmpfs_under_tmp_that_are_full(tmp_path, monkeypatch):
    mounts = tmp_path / "mounts"
    mounts.write_text("overlay / overlay rw 0 0\n"
                      "tmpfs /tmp/mb-work tmpfs rw,size=65536k 0 0\n"
                      "tmpfs /tmp/mb-test tmpfs rw,size=524288k 0 0\n"
                      "tmpfs /dev/shm tmpfs rw 0 0\n")
    free = {"/tmp/mb-work": 100 << 10, "/tmp/mb-test": 400 << 20, "/dev/shm": 0}

    def statvfs(path):
        return os.statvfs_result((4096, 4096, (512 << 20) // 4096, 0, free[path] // 4096, 0, 0,
                                  0, 0, 255))

    monkeypatch.setattr(limits.os, "statvfs", statvfs)

    assert limits.full_tmpfs(str(mounts)) == ["/tmp/mb-work"]

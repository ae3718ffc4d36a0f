"""End-to-end: the output directory survives two writers at once and a full disk."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, clean_environment, error_lines, run_mirror_builder

pytestmark = pytest.mark.e2e


def start_bootstrap(cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mirror_builder", "--settings",
                             str(REPO / "settings.yaml"), "bootstrap", *args],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=clean_environment())


def wait_for_holder(lock: Path, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return json.loads(lock.read_text())
        except (OSError, ValueError):
            time.sleep(0.05)
    raise AssertionError(f"nobody took {lock}")


def test_a_second_bootstrap_on_the_same_output_refuses_or_waits_and_the_index_stays_whole(tmp_path):
    first = start_bootstrap(tmp_path, "six==1.17.0", "-o", "out")
    try:
        holder = wait_for_holder(tmp_path / "out" / ".mirror-builder.lock")
        assert holder["pid"] == first.pid

        refused = run_mirror_builder("bootstrap", "six==1.17.0", "-o", "out", cwd=tmp_path, check=False)
        assert refused.returncode == 1
        (line,) = error_lines(refused.stderr.replace("\n", " ").replace("error:", "\nerror:"))
        message = " ".join(line.split())
        assert f"out is in use by another mirror-builder (pid {first.pid}, `mirror-builder " in message
        assert "bootstrap six==1.17.0 -o out`, since " in message
        assert "--wait" in message

        waited = run_mirror_builder("bootstrap", "six==1.17.0", "-o", "out", "--wait", cwd=tmp_path)
        assert "waiting for" in " ".join(waited.stderr.split())
        assert first.poll() == 0, "the waiting run went ahead before the first had finished"
    finally:
        first.kill() if first.poll() is None else None
        first.wait()
    assert len(list((tmp_path / "out" / "files" / "six").glob("six-1.17.0-*.whl"))) == 1
    run_mirror_builder("index", "--check", "-o", "out", cwd=tmp_path)


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB file system for the output (a tmpfs; needs root, as the CI machine is)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_fails_the_package_clearly_and_leaves_nothing_half_written(tmp_path, small_disk):
    out = small_disk / "out"
    proc = run_mirror_builder("bootstrap", "six==1.17.0", "-o", str(out), cwd=tmp_path, check=False)

    assert proc.returncode == 1
    text = " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr
    assert "No space left on device; nothing half-written was kept" in text
    assert "(required by: six==1.17.0)" in text
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".") and p.suffix in (".part", ".tmp")]
    assert leftovers == []
    assert not list(out.rglob("setuptools-*.whl"))
    if (out / "simple").is_dir():  # (six, small, may have fit: then it is whole and listed)
        run_mirror_builder("index", "--check", "-o", str(out), cwd=tmp_path)

    # With room again, the same command finishes the job and the index checks out.
    subprocess.run(["mount", "-o", "remount,size=256m", str(small_disk)], check=True)
    run_mirror_builder("bootstrap", "six==1.17.0", "-o", str(out), cwd=tmp_path)
    assert list((out / "files" / "six").glob("six-1.17.0-*.whl"))
    run_mirror_builder("index", "--check", "-o", str(out), cwd=tmp_path)

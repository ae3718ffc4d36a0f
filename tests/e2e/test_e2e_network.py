"""End-to-end: a package whose build tries to reach the network cannot, and the failure is
reported for that package while what was built before it stays in the index."""

import json

import pytest

from conftest import make_sdist, run_mirror_builder

pytestmark = pytest.mark.e2e


def test_a_build_that_reaches_for_the_network_fails_and_everything_built_stays(tmp_path, fixtures_dir):
    sdist = make_sdist(fixtures_dir / "netprobe", tmp_path / "dist", "netprobe", "1.0")
    proc = run_mirror_builder("bootstrap", str(sdist), "--output", "out", cwd=tmp_path, check=False)

    assert proc.returncode == 1
    error = proc.stderr
    assert "netprobe==1.0" in error
    assert "get_requires_for_build_wheel failed" in error
    log_path = tmp_path / "out" / "logs" / "netprobe-1.0.log"
    assert str(log_path) in error.replace("\n", "")
    log = log_path.read_text()
    assert "NETPROBE dns: failed" in log
    assert "NETPROBE connect: failed" in log
    assert "connected" not in log.replace("NETPROBE connect: failed", "")

    # setuptools was built first, for netprobe's build environment, and is kept.
    out = tmp_path / "out"
    kept = list((out / "files" / "setuptools").glob("setuptools-*.whl"))
    assert len(kept) == 1
    assert (out / "records" / "setuptools" / f"{kept[0].name}.build.json").is_file()
    assert not (out / "files" / "netprobe").exists()
    order = json.loads((out / "build-order.json").read_text())
    assert [e["name"] for e in order] == ["setuptools"]


def test_keep_going_builds_the_rest_and_lists_the_failure_with_its_log(tmp_path, fixtures_dir):
    sdist = make_sdist(fixtures_dir / "netprobe", tmp_path / "dist", "netprobe", "1.0")
    proc = run_mirror_builder("bootstrap", str(sdist), "six==1.17.0", "--keep-going", "-o", "out",
                              cwd=tmp_path, check=False)
    assert proc.returncode == 1
    out = tmp_path / "out"
    assert list((out / "files" / "six").glob("six-1.17.0-*.whl"))  # unrelated work went on
    text = " ".join(proc.stderr.split())
    assert "failed netprobe==1.0: get_requires_for_build_wheel failed" in text
    assert f"log: {out / 'logs' / 'netprobe-1.0.log'}" in text
    assert "1 package(s) failed" in text


def test_a_build_cannot_write_into_its_image_or_its_source(tmp_path, fixtures_dir):
    sdist = make_sdist(fixtures_dir / "writeprobe", tmp_path / "dist", "writeprobe", "1.0")
    run_mirror_builder("bootstrap", str(sdist), "-o", "out", cwd=tmp_path)
    (wheel,) = (tmp_path / "out" / "files" / "writeprobe").glob("*.whl")
    log = (tmp_path / "out" / "records" / "writeprobe" / f"{wheel.name}.log").read_text()
    attempts = [line for line in log.splitlines() if line.startswith("WRITEPROBE /")]
    assert len(attempts) >= 4 and all("refused" in line for line in attempts), attempts
    assert "WRITEPROBE uid 1000" in log
    record = json.loads((tmp_path / "out" / "records" / "writeprobe" / f"{wheel.name}.build.json").read_text())
    assert record["sandbox"]["root_filesystem"].startswith("read-only")

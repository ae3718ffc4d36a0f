"""End-to-end: a build's container may be started before the build (build/warm.py), its driver
waiting for the job. The build that takes it gets its source tree, environment wheels and
closure through its read-only job folder, as links to the run's own files: it cannot change
them. Containers started for builds that never came do not outlive the run."""

import hashlib
import json
import subprocess
import sys

import pytest

from conftest import REPO, clean_environment
from test_e2e_smoke_waits import hostile_sdist

pytestmark = pytest.mark.e2e


def test_a_build_in_a_container_started_before_it_cannot_change_what_it_was_given(
        local_upstream, tmp_path):
    # A chain: each asks its backend for the next one down (warm-top -> warm-mid -> warm-dep).
    local_upstream.add(hostile_sdist(tmp_path, "warm-dep", "plain"))
    local_upstream.add(hostile_sdist(tmp_path, "warm-mid", "plain", build_requires=["warm-dep"]))
    local_upstream.add(hostile_sdist(tmp_path, "warm-top", "tamper",
                                     build_requires=["warm-mid"], requires=["warm-dep"]))
    settings = local_upstream.settings(tmp_path / "conf")

    run = subprocess.run(
        [sys.executable, "-m", "mirror_builder", "--settings", str(settings), "bootstrap",
         "warm-top==1.0", "-o", "out", "--no-build-cache", "--timeline", "timeline.json"],
        cwd=tmp_path, capture_output=True, text=True, env=clean_environment())
    assert run.returncode == 0, run.stderr
    out = tmp_path / "out"

    # warm-top's first container (which learns what its build needs) was started for it, and
    # nothing else was under way then; from warm-mid's first on, each build had a container
    # waiting for it, started while the one before ran, but for the last: nothing was left to
    # come, so none was started after it.
    spans = json.loads((tmp_path / "timeline.json").read_text())["spans"]
    runs = [(s["package"], s["parts"]) for s in sorted(spans, key=lambda s: s["start"])
            if s["phase"] == "container"]
    assert [pin for pin, _ in runs] == ["warm-top==1.0", "warm-mid==1.0", "warm-dep==1.0",
                                        "warm-mid==1.0", "warm-top==1.0"]
    assert [("podman_warm" in parts, "podman_create" in parts) for _, parts in runs] == \
        [(False, True), (False, True), (True, False), (True, False), (True, False)]

    (top_log,) = (out / "records" / "warm-top").glob("*.whl.log")
    # Its environment (one small wheel) was made in the container's memory, and so was its
    # smoke test's venv.
    assert "making an empty venv at /tmp/mb-work/env (in memory)" in top_log.read_text()
    assert "/tmp/mb-test/smoke/smoke-built" in top_log.read_text()
    tries = [line for line in top_log.read_text().splitlines() if line.startswith("HOSTILE")]
    given = [line for line in tries if "/job/wheels/warm_mid-1.0-py3-none-any.whl" in line]
    assert len(given) == 3 and all("refused" in line for line in given), tries
    assert any("/job/src/" in line for line in tries)
    assert not [line for line in tries if "managed to" in line]
    # Its smoke test ran in that container, on the closure linked into its job folder too.
    (top_record,) = (out / "records" / "warm-top").glob("*.build.json")
    tested = json.loads(top_record.read_text())["smoke_test"]
    assert tested["status"] == "passed" and tested["container"] == "build"
    assert "warm-dep==1.0" in tested["installed"]
    (dep_wheel,) = (out / "files" / "warm-mid").glob("*.whl")
    (dep_record,) = (out / "records" / "warm-mid").glob("*.build.json")
    assert hashlib.sha256(dep_wheel.read_bytes()).hexdigest() == \
        json.loads(dep_record.read_text())["wheel_sha256"]

    # Nothing the run started outlives it.
    left = subprocess.run(
        ["podman", "ps", "--all", "--quiet", "--filter", "label=io.mirror-builder.owner-pid"],
        capture_output=True, text=True,
        env=clean_environment(CONTAINERS_CONF=str(REPO / "mirror_builder" / "data" /
                                                  "containers.conf")))
    assert left.returncode == 0 and left.stdout.strip() == ""

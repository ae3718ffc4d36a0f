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
    local_upstream.add(hostile_sdist(tmp_path, "warm-dep", "plain"))
    local_upstream.add(hostile_sdist(tmp_path, "warm-top", "tamper", build_requires=["warm-dep"],
                                     requires=["warm-dep"]))
    settings = local_upstream.settings(tmp_path / "conf")

    run = subprocess.run(
        [sys.executable, "-m", "mirror_builder", "--settings", str(settings), "bootstrap",
         "warm-top==1.0", "-o", "out", "--no-build-cache", "--timeline", "timeline.json"],
        cwd=tmp_path, capture_output=True, text=True, env=clean_environment())
    assert run.returncode == 0, run.stderr
    out = tmp_path / "out"

    # warm-top's first container (which learns that its build needs warm-dep) was started for
    # it; warm-dep's and then warm-top's build had theirs waiting for them.
    spans = json.loads((tmp_path / "timeline.json").read_text())["spans"]
    runs = [(s["package"], s["parts"]) for s in sorted(spans, key=lambda s: s["start"])
            if s["phase"] == "container"]
    assert [pin for pin, _ in runs] == ["warm-top==1.0", "warm-dep==1.0", "warm-top==1.0"]
    assert runs[0][1]["podman_create"] > 0 and "podman_warm" not in runs[0][1]
    for _, later in runs[1:]:
        assert later["podman_warm"] > 0 and "podman_create" not in later

    (top_log,) = (out / "records" / "warm-top").glob("*.whl.log")
    tries = [line for line in top_log.read_text().splitlines() if line.startswith("HOSTILE")]
    given = [line for line in tries if "/job/wheels/warm_dep-1.0-py3-none-any.whl" in line]
    assert len(given) == 3 and all("refused" in line for line in given), tries
    assert any("/job/src/" in line for line in tries)
    assert not [line for line in tries if "managed to" in line]
    (dep_wheel,) = (out / "files" / "warm-dep").glob("*.whl")
    (dep_record,) = (out / "records" / "warm-dep").glob("*.build.json")
    assert hashlib.sha256(dep_wheel.read_bytes()).hexdigest() == \
        json.loads(dep_record.read_text())["wheel_sha256"]

    # The container started for a third build, which never came, went with the run.
    left = subprocess.run(
        ["podman", "ps", "--all", "--quiet", "--filter", "label=io.mirror-builder.owner-pid"],
        capture_output=True, text=True,
        env=clean_environment(CONTAINERS_CONF=str(REPO / "mirror_builder" / "data" /
                                                  "containers.conf")))
    assert left.returncode == 0 and left.stdout.strip() == ""

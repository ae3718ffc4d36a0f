"""End-to-end: a bootstrap killed in the middle of a build leaves nothing half-written, and a
rerun continues where it stopped, removing what the killed run could not (its containers, its
podman service's socket folder)."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import REPO, clean_environment, run_mirror_builder
from mirror_builder.index.wheelindex import WheelIndex, verify

pytestmark = pytest.mark.e2e


def test_a_killed_bootstrap_leaves_a_consistent_index_and_a_rerun_finishes(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mirror_builder", "--settings", str(REPO / "settings.yaml"),
         "bootstrap", "stevedore==5.10.0", "-o", str(out), "-j", "1", "--no-build-cache"],
        cwd=tmp_path, env=clean_environment(), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    # Wait until the first wheel is published (listed by the root page: the file alone is
    # copied in a moment before its pages are written, and the publisher works beside the
    # next build) and the next build is under way, then kill -9.
    root = out / "simple" / "index.html"
    while not (root.is_file() and "setuptools" in root.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    while not (out / "logs" / "pbr-7.1.3.log").exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # Its podman service's socket folder, which only a run's own end removes.
    (socket_folder,) = Path(tempfile.gettempdir()).glob(f"mb-podman-{proc.pid}-*")

    index = WheelIndex(out)
    assert verify(index) == []
    assert not [p for p in out.rglob("*") if p.name.endswith((".part", ".tmp"))]
    for wheel in out.glob("files/*/*.whl"):  # every published wheel has its record
        assert (out / "records" / wheel.parent.name / f"{wheel.name}.build.json").is_file()

    run_mirror_builder("bootstrap", "stevedore==5.10.0", "-o", str(out), "--no-build-cache",
                       cwd=tmp_path)
    order = {e["name"]: e["status"] for e in json.loads((out / "build-order.json").read_text())}
    assert order["setuptools"] == "reused"
    assert order["pbr"] == "built" and order["stevedore"] == "built"
    assert verify(index) == []
    assert not socket_folder.exists()  # removed by the rerun's service
    # Neither run's podman service is left: the rerun's was asked to end, not waited for.
    deadline = time.monotonic() + 10
    while services_running() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not services_running()
    leftovers = subprocess.run(
        ["podman", "ps", "--all", "--quiet", "--filter", f"label=io.mirror-builder.owner-pid={proc.pid}"],
        capture_output=True, text=True,
        env=clean_environment(CONTAINERS_CONF=str(REPO / "mirror_builder" / "data" / "containers.conf")))
    assert leftovers.stdout.strip() == ""


def services_running() -> list[str]:
    """Command lines of mirror-builder's podman services still running."""
    found = subprocess.run(["pgrep", "-af", "system service --time=0 unix:///.*mb-podman-"],
                           capture_output=True, text=True).stdout
    return found.splitlines()


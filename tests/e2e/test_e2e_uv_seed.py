"""End-to-end: the build image carries uv's answers about its interpreters (/opt/mb-uv-seed,
made by the Containerfile), for the base python and for a venv at every path the driver and the
smoke tests make one, so that no container asks an interpreter about itself again (30 to 40 ms
each time, four times a build). Checked in the image a real bootstrap built with."""

import json
import subprocess

import pytest

from mirror_builder.sandbox import VENVS as MAKE_VENVS
from mirror_builder.sandbox.smokerun import IN_BUILD_VENVS, WORK
from mirror_builder.sandbox.uvenv import SEED

pytestmark = pytest.mark.e2e

# The driver's build environment and repair environment, those of a smoke-test container's first
# tests, and the in-build smoke test's (in memory or on disk).
VENVS = [f"{WORK}/env", f"{WORK}/repair-env", *(f"{WORK}/smoke-{n}" for n in range(32)),
         *IN_BUILD_VENVS]
CACHED = "Found cached interpreter info"


@pytest.fixture(scope="module")
def image(stevedore_output) -> str:
    (record, *_) = sorted((stevedore_output / "records").rglob("*.build.json"))
    return json.loads(record.read_text())["image"]["tag"]


def uv_in(image: str, script: str) -> str:
    """script's output, run as the builder in a container of image with no network (the
    driver's venv maker at /mb/lib, as in a build)."""
    return subprocess.run(
        ["podman", "run", "--rm", "--network", "none", "--user", "1000",
         "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096",
         "-v", f"{MAKE_VENVS}:/mb/lib/mb_venvs.py:ro", image, "bash", "-c",
         f"set -e; cp -r {SEED} /tmp/cache; export UV_CACHE_DIR=/tmp/cache UV_OFFLINE=1 "
         f"UV_NO_CONFIG=1 UV_PYTHON_DOWNLOADS=never; {script}"],
        capture_output=True, text=True, check=True).stdout


def make_venv(venv: str) -> str:
    """The shell command that makes a venv as the driver and the smoke tests do."""
    return (f"python3 -c 'import sys; sys.path.insert(0, \"/mb/lib\"); "
            f"import mb_venvs; mb_venvs.make_venv(\"{venv}\")'")


def test_uv_knows_the_images_python_and_every_venv_path_without_asking(image):
    script = "; ".join(
        f"{make_venv(venv)}; "
        f"uv pip freeze -vv --python {venv}/bin/python 2>&1 | grep -c '{CACHED}' || true"
        for venv in VENVS)
    counts = uv_in(image, script).split()

    assert counts == ["1"] * len(VENVS)


def test_a_venv_elsewhere_is_asked_about_as_before(image):
    out = uv_in(image, f"{make_venv('/tmp/elsewhere')}; "
                       f"uv pip freeze -vv --python /tmp/elsewhere/bin/python 2>&1 | grep -c "
                       f"'{CACHED}' || true")

    assert out.split() == ["0"]

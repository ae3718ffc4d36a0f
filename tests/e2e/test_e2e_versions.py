"""End-to-end: two versions of one project side by side in the index, each installable by its
pin (with pip and uv) and by a version wildcard, each the wheel we built."""

import json
import subprocess
from pathlib import Path

import pytest

from conftest import clean_environment, fresh_venv, run_mirror_builder

pytestmark = pytest.mark.e2e

OLD, NEW = "1.16.0", "1.17.0"


@pytest.fixture(scope="module")
def two_sixes(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("versions")
    run_mirror_builder("bootstrap", f"six=={OLD}", f"six=={NEW}", "-o", "out", cwd=work)
    return work / "out"


def installed_six(venv: Path) -> tuple[str, dict]:
    """six.__version__ as the venv imports it, and the build record its .dist-info carries."""
    version = subprocess.run([str(venv / "bin" / "python"), "-c", "import six; print(six.__version__)"],
                             check=True, capture_output=True, text=True, cwd=venv).stdout.strip()
    (dist_info,) = (venv / "lib").glob("python3*/site-packages/six-*.dist-info")
    record = json.loads((dist_info / "mirror_builder" / "build-record.json").read_text())
    return version, record


def pip_install(venv: Path, out: Path, requirement: str) -> None:
    subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--index-url",
                    (out / "simple").as_uri() + "/", "--only-binary", ":all:", requirement],
                   check=True, capture_output=True, env=clean_environment())


def test_both_wheels_are_in_the_index_side_by_side(two_sixes):
    wheels = sorted(p.name for p in (two_sixes / "files" / "six").glob("*.whl"))
    assert wheels == [f"six-{OLD}-py2.py3-none-any.whl", f"six-{NEW}-py2.py3-none-any.whl"]
    page = json.loads((two_sixes / "simple" / "six" / "index.json").read_text())
    assert page["versions"] == [OLD, NEW]
    html = (two_sixes / "simple" / "six" / "index.html").read_text()
    assert all(wheel in html for wheel in wheels)


@pytest.mark.parametrize("version", [OLD, NEW])
def test_pip_in_a_fresh_venv_installs_each_pinned_version(two_sixes, tmp_path, version):
    venv = fresh_venv(tmp_path / "venv")
    pip_install(venv, two_sixes, f"six=={version}")
    imported, record = installed_six(venv)
    assert imported == version
    assert record["source"]["filename"] == f"six-{version}.tar.gz"


def test_uv_in_a_fresh_venv_installs_the_older_version(two_sixes, tmp_path):
    uv = Path(__import__("uv").find_uv_bin())
    venv = tmp_path / "venv"
    subprocess.run([str(uv), "venv", "-q", str(venv)], check=True, env=clean_environment())
    subprocess.run([str(uv), "pip", "install", "--no-cache", "--python", str(venv / "bin" / "python"),
                    "--index-url", (two_sixes / "simple").as_uri() + "/", "--only-binary", ":all:",
                    f"six=={OLD}"], check=True, capture_output=True, env=clean_environment())
    imported, record = installed_six(venv)
    assert imported == OLD
    assert record["source"]["filename"] == f"six-{OLD}.tar.gz"


def test_pip_with_a_wildcard_gets_the_older_version(two_sixes, tmp_path):
    venv = fresh_venv(tmp_path / "venv")
    pip_install(venv, two_sixes, "six==1.16.*")
    imported, _ = installed_six(venv)
    assert imported == OLD

"""An empty venv and a venv's freeze without a process (sandbox/venvs.py, run in containers): a
venv python and uv take for one, and the very lines `uv pip freeze` prints for it."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mirror_builder.sandbox import venvs

UV = Path(sys.executable).parent / "uv"
OFFLINE = {**os.environ, "UV_OFFLINE": "1", "UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never"}


@pytest.fixture
def image_python(monkeypatch):
    """This interpreter stands for the image's python, as the driver's does in a container."""
    monkeypatch.setattr(venvs, "PYTHON", os.path.realpath(sys.executable))


def uv_freeze(env_dir: Path) -> str:
    return subprocess.run([str(UV), "pip", "freeze", "--python", str(env_dir / "bin" / "python")],
                          env=OFFLINE, check=True, capture_output=True, text=True).stdout


def dist_info(env_dir: Path, folder: str, direct_url: dict | None = None) -> None:
    path = Path(venvs.site_packages(str(env_dir))) / folder
    path.mkdir()
    (path / "METADATA").write_text("Metadata-Version: 2.1\nName: other\nVersion: 9.9\n")
    if direct_url is not None:
        (path / "direct_url.json").write_text(json.dumps(direct_url))


def test_python_runs_in_the_venv_as_in_one_python_made(image_python, tmp_path):
    venvs.make_venv(str(tmp_path / "env"))

    found = json.loads(subprocess.run(
        [str(tmp_path / "env" / "bin" / "python3"), "-c",
         "import json, site, sys; "
         "print(json.dumps([sys.prefix, sys.base_prefix, site.getsitepackages()]))"],
        check=True, capture_output=True, text=True).stdout)

    prefix, base_prefix, site_packages = found
    assert prefix == str(tmp_path / "env") and base_prefix != prefix
    assert venvs.site_packages(str(tmp_path / "env")) in site_packages


def test_the_venv_can_be_made_in_an_empty_folder_already_there(image_python, tmp_path):
    # A tmpfs's mount point, where the build environment is made in memory.
    (tmp_path / "env").mkdir()

    venvs.make_venv(str(tmp_path / "env"))

    assert (tmp_path / "env" / "pyvenv.cfg").is_file()


def test_a_driver_on_another_python_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(venvs, "PYTHON", str(tmp_path / "not-this-python"))

    with pytest.raises(RuntimeError, match="not the image's"):
        venvs.make_venv(str(tmp_path / "env"))


def test_uv_installs_into_it_and_its_freeze_is_uvs(image_python, tmp_path):
    wheel = tmp_path / "Demo_Pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("demo_pkg/__init__.py", "")
        archive.writestr("Demo_Pkg-1.0.dist-info/METADATA",
                         "Metadata-Version: 2.1\nName: Demo_Pkg\nVersion: 1.0\n")
        archive.writestr("Demo_Pkg-1.0.dist-info/WHEEL",
                         "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                         "Tag: py3-none-any\n")
        archive.writestr("Demo_Pkg-1.0.dist-info/RECORD", "")
    env = tmp_path / "env"
    venvs.make_venv(str(env))

    subprocess.run([str(UV), "pip", "install", "--python", str(env / "bin" / "python"),
                    "--cache-dir", str(tmp_path / "cache"), str(wheel)],
                   env=OFFLINE, check=True, capture_output=True)

    assert venvs.freeze(str(env)) == uv_freeze(env) == f"demo-pkg @ file://{wheel}\n"


def test_the_freeze_names_and_orders_as_uv_does(image_python, tmp_path):
    env = tmp_path / "env"
    venvs.make_venv(str(env))
    dist_info(env, "Zed-2.dist-info")
    dist_info(env, "Foo_Bar-1.0.0.RC1.dist-info")  # normalized, as uv does, by packaging
    dist_info(env, "a.b.c-3.0.dist-info")
    dist_info(env, "Mism-1.0.dist-info")  # the folder's name, not METADATA's, counts
    dist_info(env, "url-1.0.dist-info", {"url": "file:///x/url-1.0-py3-none-any.whl",
                                         "archive_info": {}})
    dist_info(env, "vcs-1.0.dist-info", {"url": "https://h/r.git",
                                         "vcs_info": {"vcs": "git", "commit_id": "abc"}})
    dist_info(env, "ed-1.0.dist-info", {"url": "file:///src/ed", "dir_info": {"editable": True}})
    dist_info(env, "noversion.dist-info")  # not a distribution uv lists
    (Path(venvs.site_packages(str(env))) / "module.py").write_text("")

    frozen = venvs.freeze(str(env))

    assert frozen.splitlines() == [
        "a-b-c==3.0", "-e file:///src/ed", "foo-bar==1.0.0rc1", "mism==1.0",
        "url @ file:///x/url-1.0-py3-none-any.whl", "vcs @ git+https://h/r.git@abc", "zed==2"]
    assert frozen == uv_freeze(env)

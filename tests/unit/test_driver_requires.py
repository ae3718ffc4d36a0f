"""The driver (sandbox/driver.py, run inside the build container) builds when what the backend's
get_requires_for_build_wheel asks for is installed, and otherwise says what is missing; it
starts without packaging's requirement parser or importlib.metadata, which only a backend that
asks for more needs."""

import subprocess
import sys
from pathlib import Path

import pytest

from mirror_builder.sandbox import driver


class Hooks:
    def __init__(self, requires):
        self.requires = requires

    def get_requires_for_build_wheel(self, config_settings):
        return self.requires

    def build_wheel(self, dist_dir, config_settings):
        return "demo-1.0-py3-none-any.whl"


def dist_info(site: Path, name: str, version: str, requires=()) -> None:
    folder = site / f"{name}-{version}.dist-info"
    folder.mkdir(parents=True)
    lines = [f"Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
             *(f"Requires-Dist: {r}" for r in requires)]
    (folder / "METADATA").write_text("\n".join(lines) + "\n")


def outcome(tmp_path, requires, site) -> dict:
    result = {"timings": {}}
    driver.run_hooks({"out": str(tmp_path / "out"), "backend": "demo"}, result, Hooks(requires),
                     str(site))
    return result


@pytest.fixture
def site(tmp_path) -> Path:
    site = tmp_path / "site-packages"
    dist_info(site, "wheel", "0.45.1")
    dist_info(site, "Setuptools_SCM", "8.1.0", requires=['tomli>=1; extra == "toml"'])
    return site


def test_a_backend_that_asks_for_nothing_more_builds(tmp_path, site):
    assert outcome(tmp_path, [], site)["status"] == "built"


def test_what_is_installed_in_the_versions_asked_for_builds(tmp_path, site):
    result = outcome(tmp_path, ["wheel>=0.40", "setuptools-scm>=8"], site)

    assert result["status"] == "built" and result["requires"] == ["wheel>=0.40", "setuptools-scm>=8"]


@pytest.mark.parametrize("asked", ["wheel>=1", "cython", "setuptools-scm[toml]>=8"])
def test_what_is_missing_or_too_old_is_named_and_nothing_is_built(tmp_path, site, asked):
    result = outcome(tmp_path, ["wheel", asked], site)

    assert (result["status"], result["missing"]) == ("needs", [asked])
    assert not (tmp_path / "out" / "dist").exists()


def test_a_requirement_for_another_platform_is_not_missing(tmp_path, site):
    result = outcome(tmp_path, ['pywin32; sys_platform == "win32"'], site)

    assert result["status"] == "built"


def test_a_wheels_pin_is_its_name_and_version():
    assert driver.pin_of("/wheels/setuptools_scm-8.1.0-py3-none-any.whl") == "setuptools_scm==8.1.0"
    assert driver.pin_of("/wheels/foo-2.0-1-cp311-cp311-linux_x86_64.whl") == "foo==2.0"


def test_the_driver_starts_without_the_requirement_parser_or_importlib_metadata():
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, runpy; runpy.run_path(sys.argv[1]); "
         "print(' '.join(sorted(sys.modules)))", driver.__file__],
        capture_output=True, text=True, check=True).stdout.split()

    assert "pyproject_hooks" in loaded
    assert not {"packaging.requirements", "importlib.metadata"} & set(loaded)

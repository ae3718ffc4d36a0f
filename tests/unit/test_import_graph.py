"""plan and overrides lint are read-only: nothing that starts podman, publishes or smoke-tests is
even imported, neither by their modules nor by running them (each check in a fresh interpreter).
plan takes the target's markers from when its image was made, and says so if it never was."""

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from mirror_builder.config.settings import load_settings
from mirror_builder.sandbox import imagenames

from conftest import clean_environment, error_lines, write_settings

PODMAN_SIDE = {"podman", "mirror_builder.sandbox.podman", "mirror_builder.sandbox.images",
               "mirror_builder.prepare.vendoring", "mirror_builder.index.publisher",
               "mirror_builder.build.smoketest", "mirror_builder.build.builder",
               "mirror_builder.build.executor", "mirror_builder.engine.pipeline",
               "mirror_builder.engine.run"}

MARKERS = {"implementation_name": "cpython", "implementation_version": "3.11.2", "os_name": "posix",
           "platform_machine": "x86_64", "platform_release": "", "platform_system": "Linux",
           "platform_version": "", "python_full_version": "3.11.2",
           "platform_python_implementation": "CPython", "python_version": "3.11",
           "sys_platform": "linux"}


def modules_after(code: str, tmp_path: Path) -> set[str]:
    """The modules a fresh interpreter holds after running code."""
    report = tmp_path / "modules.json"
    script = f"{code}\nimport json, sys\nopen({str(report)!r}, 'w').write(json.dumps(sorted(sys.modules)))\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, env=clean_environment(), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return set(json.loads(report.read_text()))


def test_the_modules_of_plan_and_lint_import_nothing_that_starts_podman(tmp_path):
    loaded = modules_after("import mirror_builder.cli.app, mirror_builder.cli.building, "
                           "mirror_builder.cli.configuring, mirror_builder.config.lint", tmp_path)
    assert "mirror_builder.cli.building" in loaded  # the check saw what it was to check
    assert loaded & PODMAN_SIDE == set()


def sdist(folder: Path, name: str, version: str, build_requires: list[str]) -> Path:
    """An sdist with a static [build-system] and a PEP 643 PKG-INFO (no dependencies)."""
    base = f"{name}-{version}"
    files = {"pyproject.toml": f"[build-system]\nrequires = {json.dumps(build_requires)}\n"
                               "build-backend = 'setuptools.build_meta'\n",
             "PKG-INFO": f"Metadata-Version: 2.2\nName: {name}\nVersion: {version}\n"}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{base}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for member, text in files.items():
            info = tarfile.TarInfo(f"{base}/{member}")
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return path


@pytest.fixture
def plan_settings(tmp_path, local_upstream) -> Path:
    """Settings whose upstream holds app (built with tool) and tool, and whose default target's
    image was made (its markers recorded as `images` records them)."""
    local_upstream.add(sdist(tmp_path / "dist", "app", "1.0", ["tool"]))
    local_upstream.add(sdist(tmp_path / "dist", "tool", "1.0", []))
    for folder in ("overrides", "patches"):
        (tmp_path / folder).mkdir()
    path = local_upstream.settings(tmp_path / "conf", overrides_dir=tmp_path / "overrides",
                                   patches_dir=tmp_path / "patches")
    settings = load_settings(path)
    target = settings.target(None)
    images = imagenames.images_dir(settings.cache_dir)
    imagenames.record_image(images, target, imagenames.containerfile_bytes(target),
                            "localhost/mirror-builder-test:0", "sha256:test")
    imagenames.markers_file(images, "sha256:test").write_text(json.dumps(MARKERS))
    return path


def test_running_plan_and_lint_imports_nothing_that_starts_podman(tmp_path, plan_settings):
    plan_json = tmp_path / "plan.json"
    loaded = modules_after(f"""
import contextlib
from mirror_builder.cli.app import main
with open({str(plan_json)!r}, "w") as out, contextlib.redirect_stdout(out):
    assert main(["--settings", {str(plan_settings)!r}, "plan", "app==1.0", "--json"]) == 0
assert main(["--settings", {str(plan_settings)!r}, "overrides", "lint"]) == 0
""", tmp_path)
    # The plan really ran: read the sdists and resolved the build requirement.
    assert [p["name"] for p in json.loads(plan_json.read_text())] == ["tool", "app"]
    assert "mirror_builder.engine.planner" in loaded and "mirror_builder.config.lint" in loaded
    assert loaded & PODMAN_SIDE == set()


def test_plan_for_a_target_whose_image_was_never_made_says_how_to_make_it(tmp_path):
    settings = write_settings(tmp_path / "conf", cache_dir=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-m", "mirror_builder", "--settings", str(settings),
                           "plan", "six==1.17.0", "--target", "trixie-x86_64"],
                          capture_output=True, text=True, cwd=tmp_path, env=clean_environment(),
                          timeout=120)
    assert proc.returncode == 1
    assert error_lines(proc.stderr) == [
        "error: the image for target trixie-x86_64 has not been made yet; run mirror-builder "
        "images --target trixie-x86_64 (plan does not start podman)"]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "cache" / "state").exists()  # where a podman service would run

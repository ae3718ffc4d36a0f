"""End-to-end, with real podman and Debian's real Contents index: three packages whose builds
need what the build image lacks (a header, a pkg-config module, a program). Each fails with an
error that names the missing thing and the Debian package that has it; `overrides suggest`
writes the override; with it, the next bootstrap builds.

The Contents index is kept under the normal cache (~/.cache/mirror-builder/debian-contents), so
only the first run on a machine downloads it (about 45 MB for bookworm/amd64).
"""

import json
import subprocess
import zipfile

import pytest
import yaml

from conftest import FIXTURES, make_sdist, run_mirror_builder, write_settings

pytestmark = pytest.mark.e2e

# package -> what its error names: the missing thing and its Debian package, in bookworm/amd64
NEEDS = {
    "needheader": ("the header zmq.h (package libzmq3-dev)", "libzmq3-dev"),
    "needpkgconfig": ("the pkg-config module libxml-2.0 (package libxml2-dev)", "libxml2-dev"),
    "needprogram": ("the program xsltproc (package xsltproc)", "xsltproc"),
}


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory):
    """One bootstrap of the three (--keep-going: setuptools is built once for all of them)."""
    work = tmp_path_factory.mktemp("needs-debian")
    (work / "overrides").mkdir()
    settings = write_settings(work / "conf", overrides_dir=str(work / "overrides"))
    sdists = {name: make_sdist(FIXTURES / name, work / "dist", name, "1.0") for name in NEEDS}
    proc = run_mirror_builder("bootstrap", *map(str, sdists.values()), "--keep-going",
                              "-o", "out", cwd=work, settings=settings, check=False)
    return work, settings, sdists, proc


def failure_of(stderr: str, name: str) -> str:
    """The one line that names name==1.0's failure, whitespace as printed collapsed."""
    text = " ".join(stderr.split())
    marker = f"{name}==1.0: "
    assert marker in text, stderr
    return text.split(marker, 1)[1].split("; log: ", 1)[0]


@pytest.mark.parametrize("name", NEEDS)
def test_a_build_that_misses_something_names_it_and_the_debian_package_to_add(failed_run, name):
    work, _, _, proc = failed_run
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    what, package = NEEDS[name]
    failure = failure_of(proc.stderr, name)
    assert f"It is missing {what} in Debian bookworm (amd64): add system_packages: " \
           f"[{package}] to " in failure, failure
    assert f"overrides/{name}.yaml, or run `mirror-builder overrides suggest {name}`" in failure
    assert (work / "out" / "logs" / f"{name}-1.0.log").is_file()


def test_overrides_suggest_writes_the_override_and_the_next_bootstrap_builds(failed_run, tmp_path):
    work, settings, sdists, _ = failed_run
    overrides = work / "overrides"
    (overrides / "needheader.yaml").write_text("# libzmq's headers\ntimeout: 600\n")
    for name, (_, package) in NEEDS.items():
        proc = run_mirror_builder("overrides", "suggest", name, "-o", "out", cwd=work,
                                  settings=settings)
        assert proc.stdout.splitlines()[-1].endswith(
            f"overrides/{name}.yaml: system_packages: [{package}]"), proc.stdout
    assert (overrides / "needheader.yaml").read_text() == (
        "# libzmq's headers\ntimeout: 600\nsystem_packages: [libzmq3-dev]\n")
    assert yaml.safe_load((overrides / "needprogram.yaml").read_text()) == {
        "system_packages": ["xsltproc"]}

    run_mirror_builder("bootstrap", str(sdists["needheader"]), "-o", "out", cwd=work,
                       settings=settings)
    (wheel,) = (work / "out" / "files" / "needheader").glob("needheader-1.0-*.whl")
    record = json.loads(next((work / "out" / "records" / "needheader").glob(
        "*.build.json")).read_text())
    assert "libzmq3-dev" in json.dumps(record)
    # The extension was compiled against Debian's libzmq headers (bookworm: 4.3.4).
    subprocess.run(["python3", "-m", "venv", str(tmp_path / "venv")], check=True)
    subprocess.run([str(tmp_path / "venv" / "bin" / "pip"), "install", "--quiet", "--no-index",
                    str(wheel)], check=True)
    probe = subprocess.run([str(tmp_path / "venv" / "bin" / "python"), "-c",
                            "import needheader; print(needheader.ZMQ_MAJOR)"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "4"
    with zipfile.ZipFile(wheel) as archive:
        assert any(n.startswith("needheader/_zmqversion") for n in archive.namelist())

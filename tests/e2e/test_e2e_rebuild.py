"""End-to-end with real podman and PyPI: rebuild one version with the next rebuild number,
install it with pip and uv, inspect how it was made, and refuse bad rebuilds changing nothing."""

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from conftest import (clean_environment, error_lines, fresh_venv, make_sdist, run_mirror_builder,
                      tree_digest, write_settings)

pytestmark = pytest.mark.e2e

FIRST = "six-1.17.0-py2.py3-none-any.whl"
REBUILT = "six-1.17.0-1-py2.py3-none-any.whl"


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory) -> dict:
    """six bootstrapped, then rebuilt once; with the first wheel's hash from before the rebuild."""
    work = tmp_path_factory.mktemp("rebuild")
    out = work / "out"
    run_mirror_builder("bootstrap", "six==1.17.0", "-o", str(out), cwd=work)
    first = hashlib.sha256((out / "files" / "six" / FIRST).read_bytes()).hexdigest()
    proc = run_mirror_builder("rebuild", "six==1.17.0", "--reason", "rebuilt against patched openssl",
                              "-o", str(out), cwd=work)
    return {"out": out, "work": work, "first_sha256": first, "stderr": proc.stderr}


def inspect_json(out: Path, what: str, cwd: Path) -> dict:
    return json.loads(run_mirror_builder("inspect", what, "--json", "-o", str(out), cwd=cwd).stdout)


def test_a_rebuild_gets_build_tag_1_and_the_first_wheel_stays_byte_for_byte(rebuilt):
    files = rebuilt["out"] / "files" / "six"
    assert sorted(p.name for p in files.glob("*.whl")) == [REBUILT, FIRST]
    assert hashlib.sha256((files / FIRST).read_bytes()).hexdigest() == rebuilt["first_sha256"]
    page = (rebuilt["out"] / "simple" / "six" / "index.html").read_text()
    assert FIRST in page and REBUILT in page


def test_pip_in_a_fresh_venv_installs_the_rebuilt_wheel(rebuilt, tmp_path):
    venv = fresh_venv(tmp_path / "venv")
    report = tmp_path / "report.json"
    subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--report", str(report),
                    "--index-url", (rebuilt["out"] / "simple").as_uri(), "--only-binary", ":all:",
                    "six==1.17.0"], check=True, env=clean_environment(), capture_output=True)
    (item,) = json.loads(report.read_text())["install"]
    assert item["download_info"]["url"].endswith("/" + REBUILT)


def test_uv_in_a_fresh_venv_installs_the_rebuilt_wheel(rebuilt, tmp_path):
    uv = Path(__import__("uv").find_uv_bin())
    venv = tmp_path / "venv"
    subprocess.run([str(uv), "venv", "-q", str(venv)], check=True, env=clean_environment())
    subprocess.run([str(uv), "pip", "install", "--no-cache", "--python", str(venv / "bin" / "python"),
                    "--index-url", (rebuilt["out"] / "simple").as_uri(), "--only-binary", ":all:",
                    "six==1.17.0"], check=True, env=clean_environment(), capture_output=True)
    (dist_info,) = (venv / "lib").glob("python3*/site-packages/six-1.17.0.dist-info")
    assert "Build: 1" in (dist_info / "WHEEL").read_text()
    embedded = json.loads((dist_info / "mirror_builder" / "build-record.json").read_text())
    assert embedded["rebuild"]["number"] == 1
    assert embedded["rebuild"]["reason"] == "rebuilt against patched openssl"


def test_inspect_shows_the_freeze_of_the_build_container_and_the_source_hash_pypi_publishes(rebuilt):
    out, work = rebuilt["out"], rebuilt["work"]
    records = inspect_json(out, "six==1.17.0", work)["records"]
    assert [r["wheel"] for r in records] == [REBUILT, FIRST]  # newest first
    newest = records[0]
    # What uv reported installing inside the container ("+ name==version") for the build
    # environment, before the backend's first hook (the smoke test after the build installs
    # too), is the freeze.
    log = run_mirror_builder("inspect", "six==1.17.0", "--log", "-o", str(out), cwd=work).stdout
    environment = log.split("[mirror-builder] get_requires_for_build_wheel")[0]
    installed = sorted(re.findall(r"^ \+ (\S+==\S+)", environment, re.MULTILINE))
    assert installed and installed == sorted(newest["build_env"]["freeze"])
    freeze = run_mirror_builder("inspect", "six==1.17.0", "--freeze", "-o", str(out), cwd=work)
    assert sorted(freeze.stdout.split()) == installed
    page = requests.get("https://pypi.org/simple/six/", timeout=60).text
    assert f"six-1.17.0.tar.gz#sha256={newest['source']['sha256']}" in page


def test_inspect_reads_the_record_a_wheel_carries_and_its_slsa_statement(rebuilt, tmp_path):
    out, work = rebuilt["out"], rebuilt["work"]
    wheel = out / "files" / "six" / REBUILT
    copy = tmp_path / REBUILT
    copy.write_bytes(wheel.read_bytes())
    record = inspect_json(out, str(copy), work)["records"][0]
    assert record["wheel"] == REBUILT and record["rebuild"]["number"] == 1
    slsa = json.loads(run_mirror_builder("inspect", "six==1.17.0", "--slsa", "-o", str(out),
                                         cwd=work).stdout)
    assert slsa["predicateType"] == "https://slsa.dev/provenance/v1"
    assert slsa["subject"][0]["digest"]["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()


def test_inspect_of_a_wheel_we_did_not_build_says_so(rebuilt, tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                    "--no-cache-dir", "-d", str(tmp_path), "six==1.17.0"], check=True,
                   capture_output=True, env=clean_environment())
    (upstream_wheel,) = tmp_path.glob("six-*.whl")
    proc = run_mirror_builder("inspect", str(upstream_wheel), cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert error_lines(proc.stderr) == [
        f"error: {upstream_wheel.name} was not built by mirror-builder: it carries no build "
        f"record in its .dist-info"]


@pytest.mark.parametrize("requirement, message", [
    ("six==1.16.0", "six==1.16.0 was never built (the index has 1.17.0); bootstrap it first"),
    ("not-in-index==1.0", "not-in-index is not in the index; bootstrap it first"),
])
def test_rebuilding_what_was_never_built_is_one_error_line_and_changes_nothing(
        rebuilt, requirement, message):
    out = rebuilt["out"]
    before = tree_digest(out / "files") | tree_digest(out / "simple") | tree_digest(out / "records")
    proc = run_mirror_builder("rebuild", requirement, "--reason", "test", "-o", str(out),
                              cwd=rebuilt["work"], check=False)
    assert proc.returncode == 1
    (line,) = error_lines(proc.stderr)
    assert message in line
    assert "Traceback" not in proc.stderr
    after = tree_digest(out / "files") | tree_digest(out / "simple") | tree_digest(out / "records")
    assert after == before


def test_a_rebuild_with_a_patch_that_does_not_apply_names_it_and_changes_nothing(rebuilt, tmp_path):
    out = rebuilt["out"]
    patch = tmp_path / "patches" / "six-1.17.0" / "0001-broken.patch"
    patch.parent.mkdir(parents=True)
    patch.write_text("--- a/six.py\n+++ b/six.py\n@@ -1,2 +1,2 @@\n-this line is not in six.py\n"
                     "+neither is this one\n context\n")
    settings = write_settings(tmp_path, patches_dir=str(tmp_path / "patches"))
    before = tree_digest(out / "files") | tree_digest(out / "simple") | tree_digest(out / "records")
    proc = run_mirror_builder("rebuild", "six==1.17.0", "--reason", "test", "-o", str(out),
                              cwd=tmp_path, settings=settings, check=False)
    assert proc.returncode == 1
    (line,) = error_lines(proc.stderr)
    assert f"patch {patch} does not apply" in line
    after = tree_digest(out / "files") | tree_digest(out / "simple") | tree_digest(out / "records")
    assert after == before


def test_a_missing_build_dependency_is_named_and_can_be_bootstrapped(tmp_path):
    # An index holding six but not setuptools (as if it had been pruned): the rebuild says what
    # is missing and why, and --bootstrap-missing builds it first.
    out = tmp_path / "out"
    run_mirror_builder("bootstrap", "six==1.17.0", "-o", str(out), cwd=tmp_path)
    for path in [out / "files" / "setuptools", out / "simple" / "setuptools",
                 out / "records" / "setuptools"]:
        subprocess.run(["rm", "-rf", str(path)], check=True)
    proc = run_mirror_builder("rebuild", "six==1.17.0", "--reason", "test", "-o", str(out),
                              cwd=tmp_path, check=False)
    assert proc.returncode == 1
    (line,) = error_lines(proc.stderr)
    assert "six==1.17.0: our index cannot provide the build-system requirements " \
           "(setuptools>=40.8.0)" in line
    assert "--bootstrap-missing" in line
    run_mirror_builder("rebuild", "six==1.17.0", "--reason", "test", "--bootstrap-missing",
                       "-o", str(out), cwd=tmp_path)
    # The refused attempt had already taken number 1: numbers never repeat, so this is 2.
    assert (out / "files" / "six" / "six-1.17.0-2-py2.py3-none-any.whl").is_file()
    assert list((out / "files" / "setuptools").glob("setuptools-*.whl"))


class TestPostReleaseNumbering:
    def test_the_rebuilt_distribution_reports_version_post1(self, tmp_path):
        settings = write_settings(tmp_path, rebuild_numbering="post-release")
        out = tmp_path / "out"
        run_mirror_builder("bootstrap", "six==1.17.0", "-o", str(out), cwd=tmp_path, settings=settings)
        run_mirror_builder("rebuild", "six==1.17.0", "--reason", "test", "-o", str(out),
                           cwd=tmp_path, settings=settings)
        assert (out / "files" / "six" / "six-1.17.0.post1-py2.py3-none-any.whl").is_file()
        venv = fresh_venv(tmp_path / "venv")
        subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--index-url",
                        (out / "simple").as_uri(), "--only-binary", ":all:", "six"],
                       check=True, env=clean_environment(), capture_output=True)
        version = subprocess.run([str(venv / "bin" / "python"), "-c",
                                  "import importlib.metadata as m; print(m.version('six'))"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        assert version == "1.17.0.post1"

    def test_it_is_refused_while_a_wheel_in_the_index_pins_the_version(self, tmp_path, fixtures_dir):
        settings = write_settings(tmp_path, rebuild_numbering="post-release")
        out = tmp_path / "out"
        sdist = make_sdist(fixtures_dir / "pinsix", tmp_path / "dist", "pinsix", "1.0")
        run_mirror_builder("bootstrap", str(sdist), "-o", str(out), cwd=tmp_path, settings=settings)
        before = tree_digest(out / "files") | tree_digest(out / "simple")
        proc = run_mirror_builder("rebuild", "six==1.17.0", "--reason", "test", "-o", str(out),
                                  cwd=tmp_path, settings=settings, check=False)
        assert proc.returncode == 1
        (line,) = error_lines(proc.stderr)
        assert "1.17.0.post1" in line and "pinsix-1.0-py3-none-any.whl requires six==1.17.0" in line
        assert tree_digest(out / "files") | tree_digest(out / "simple") == before
        run_mirror_builder("rebuild", "six==1.17.0", "--reason", "test", "--force", "-o", str(out),
                           cwd=tmp_path, settings=settings)
        assert (out / "files" / "six" / "six-1.17.0.post1-py2.py3-none-any.whl").is_file()

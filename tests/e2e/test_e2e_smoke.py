"""End-to-end: every built wheel is smoke-tested (installed with its install closure from our
index alone, in a container with no network, and its top-level modules imported) before it is
published. A wheel that builds but cannot be imported stays out of the index, and the run says so."""

import json
import re
import subprocess

import pytest

from conftest import FIXTURES, clean_environment, fresh_venv, make_sdist, run_mirror_builder

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def badimport_run(tmp_path_factory) -> dict:
    """badimport (builds, but importing it raises) and six, bootstrapped with --keep-going."""
    work = tmp_path_factory.mktemp("smoke")
    sdist = make_sdist(FIXTURES / "badimport", work / "dist", "badimport", "1.0")
    # Built here, with its build job and smoke test: not taken from the machine's build cache.
    proc = run_mirror_builder("bootstrap", str(sdist), "six==1.17.0", "--keep-going", "-o", "out",
                              "--no-build-cache", cwd=work, check=False)
    return {"work": work, "out": work / "out", "proc": proc}


def test_a_wheel_that_cannot_be_imported_fails_the_run_naming_it_and_the_import_error(badimport_run):
    proc = badimport_run["proc"]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    text = " ".join(proc.stderr.split())
    assert "badimport==1.0" in text
    assert "kept out of the index" in text
    assert "ImportError: badimport is broken on purpose" in text
    assert "1 package(s) failed" in text


def test_it_is_kept_out_of_the_index_while_six_is_published(badimport_run):
    out = badimport_run["out"]
    assert not (out / "files" / "badimport").exists()
    assert not (out / "simple" / "badimport").exists()
    root_html = (out / "simple" / "index.html").read_text()
    root_json = json.loads((out / "simple" / "index.json").read_text())
    assert "badimport" not in root_html
    assert "six" in root_html
    assert [p["name"] for p in root_json["projects"] if p["name"] in ("six", "badimport")] == ["six"]
    assert list((out / "files" / "six").glob("six-1.17.0-*.whl"))


def test_the_rejected_record_says_the_smoke_test_failed_and_six_s_says_it_passed(badimport_run):
    out = badimport_run["out"]
    (rejected,) = (out / "rejected" / "records" / "badimport").glob("*.build.json")
    smoke = json.loads(rejected.read_text())["smoke_test"]
    assert smoke["status"] == "failed"
    assert "badimport is broken on purpose" in smoke["error"]
    assert "badimport is broken on purpose" in smoke["imports"]["badimport"]
    assert not (out / "records" / "badimport").exists()

    (wheel,) = (out / "files" / "six").glob("six-1.17.0-*.whl")
    record = json.loads((out / "records" / "six" / f"{wheel.name}.build.json").read_text())
    assert record["smoke_test"]["status"] == "passed"
    assert record["smoke_test"]["imports"] == {"six": None}
    assert record["smoke_test"]["error"] == ""


def test_a_leaf_is_tested_in_its_build_container_and_a_failure_there_is_tested_again_alone(
        badimport_run):
    """six needs nothing: its build container tests it as soon as it is built. badimport fails
    there too, but only a pass is taken from a build container: its own smoke-test container
    decided, with the same error."""
    out = badimport_run["out"]
    (wheel,) = (out / "files" / "six").glob("six-1.17.0-*.whl")
    six = json.loads((out / "records" / "six" / f"{wheel.name}.build.json").read_text())
    assert six["smoke_test"]["container"] == "build"
    assert six["smoke_test"]["how"].startswith("in its build container")
    assert [line.split(" @ ")[0] for line in six["smoke_test"]["installed"]] == ["six"]
    (rejected,) = (out / "rejected" / "records" / "badimport").glob("*.build.json")
    assert json.loads(rejected.read_text())["smoke_test"]["container"] == "smoke-test"
    log = (out / "rejected" / "records" / "badimport").glob("*.log")
    text = next(log).read_text()
    # Both tests are in its log: the one after the build, then its own.
    assert text.count("badimport is broken on purpose") >= 2
    assert "--find-links /closure" not in text  # it needs nothing: no closure was mounted


def test_history_shows_a_smoke_failed_job_for_badimport_and_a_built_one_for_six(badimport_run):
    out, work = badimport_run["out"], badimport_run["work"]
    jobs = json.loads(run_mirror_builder("history", "-o", str(out), "--json", cwd=work).stdout)
    results = {(job["package"], job["version"]): job for job in jobs}
    assert results[("badimport", "1.0")]["result"] == "smoke-failed"
    assert "badimport is broken on purpose" in results[("badimport", "1.0")]["message"]
    assert results[("six", "1.17.0")]["result"] == "built"
    assert results[("six", "1.17.0")]["wheel"].startswith("six-1.17.0-")


def test_pip_cannot_install_it_from_our_index(badimport_run, tmp_path):
    venv = fresh_venv(tmp_path / "venv")
    proc = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--index-url",
                           (badimport_run["out"] / "simple").as_uri() + "/", "badimport"],
                          capture_output=True, text=True, env=clean_environment())
    assert proc.returncode != 0
    assert "No matching distribution found for badimport" in proc.stderr
    assert not list((venv / "lib").glob("python3*/site-packages/badimport*"))


def test_the_smoke_test_installs_the_install_closure_from_our_index(tmp_path, fixtures_dir):
    sdist = make_sdist(fixtures_dir / "needsdep", tmp_path / "dist", "needsdep", "1.0")
    run_mirror_builder("bootstrap", str(sdist), "-o", "out", cwd=tmp_path)
    out = tmp_path / "out"
    (six,) = (out / "files" / "six").glob("six-*.whl")
    six_version = six.name.split("-")[1]
    (wheel,) = (out / "files" / "needsdep").glob("needsdep-1.0-*.whl")
    smoke = json.loads((out / "records" / "needsdep" / f"{wheel.name}.build.json").read_text())["smoke_test"]
    assert smoke["status"] == "passed"
    assert smoke["imports"] == {"needsdep": None}  # and needsdep imports six at import time
    # The freeze of the smoke test's venv: six came in with it, the very version our index has
    # (the container has no network, and uv was given our index and this run's wheels only).
    installed = {line.split("==")[0].split(" @ ")[0]: line for line in smoke["installed"]}
    assert installed["six"] == f"six=={six_version}"
    assert set(installed) == {"needsdep", "six"}

    shown = run_mirror_builder("inspect", "needsdep==1.0", "-o", str(out), cwd=tmp_path).stdout
    # Tested in its own build container when six was built before it started, else in one of
    # its own: inspect says which.
    where = "in its build container: installed from our wheels alone" \
        if smoke["container"] == "build" else "installed from our index alone"
    text = " ".join(shown.replace("\u2502", " ").split())  # the panel's side lines out
    assert re.search(rf"smoke test\s+passed: {where}", text), shown

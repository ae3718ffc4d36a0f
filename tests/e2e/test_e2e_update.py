"""End-to-end: keeping the index current with `update`, the review queue and mirrored yanks,
against a local upstream index (tests/conftest.py's LocalUpstream, real sdists from PyPI) with
real podman builds and real pip in fresh venvs."""

import json
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import clean_environment, fresh_venv, make_sdist, run_mirror_builder

pytestmark = pytest.mark.e2e

SETUPTOOLS = "84.2.1"  # what six's and the fixtures' builds resolve to (see test_e2e_local_upstream)
LONG_AGO = datetime.now(timezone.utc) - timedelta(days=30)
POLICY = {"track": "newer", "specifier": "", "prereleases": False, "min_release_age": "3d"}


def update(tmp_path: Path, settings: Path, *args: str) -> dict:
    proc = run_mirror_builder("update", "-o", "out", "--json", *args, cwd=tmp_path,
                              settings=settings, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def history(tmp_path: Path, settings: Path) -> list[dict]:
    proc = run_mirror_builder("history", "-o", "out", "--json", cwd=tmp_path, settings=settings)
    return json.loads(proc.stdout)


def pip_install(tmp_path: Path, venv_name: str, *requirements: str) -> Path:
    venv = fresh_venv(tmp_path / venv_name)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--only-binary", ":all:",
                    "--index-url", (tmp_path / "out" / "simple").as_uri() + "/", *requirements],
                   check=True, env=clean_environment())
    return venv


def test_update_builds_exactly_the_new_release_and_then_costs_only_304s(local_upstream, tmp_path):
    local_upstream.add_from_pypi("setuptools", SETUPTOOLS, upload_time=LONG_AGO)
    local_upstream.add_from_pypi("six", "1.16.0", upload_time=LONG_AGO)
    settings = local_upstream.settings(tmp_path / "conf", update=POLICY,
                                       overrides_dir=str(tmp_path / "overrides"))
    run_mirror_builder("bootstrap", "six==1.16.0", "-o", "out", cwd=tmp_path, settings=settings)

    # Upstream releases 1.17.0: old enough for the cool-down, newer than what we carry.
    local_upstream.add_from_pypi("six", "1.17.0", upload_time=LONG_AGO + timedelta(days=10))
    report = update(tmp_path, settings)

    assert report["built"] == ["six==1.17.0"]
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "files" / "six").glob("*.whl")) == [
        "six-1.16.0-py2.py3-none-any.whl", "six-1.17.0-py2.py3-none-any.whl"]
    record = json.loads((out / "records" / "six" / "six-1.17.0-py2.py3-none-any.whl.build.json")
                        .read_text())
    assert record["smoke_test"]["status"] == "passed"
    assert record["job"]["trigger"] == "upstream-release"
    (job,) = [j for j in history(tmp_path, settings) if j["version"] == "1.17.0"]
    assert (job["trigger"], job["result"], job["id"]) == ("upstream-release", "built", record["job"]["id"])

    # Nothing new: a second update builds nothing and downloads nothing in full.
    local_upstream.clear_log()
    again = update(tmp_path, settings)
    assert again["built"] == [] and again["checked"] == 2 and again["unchanged"] == 2
    assert again["upstream"]["full_responses"] == 0
    assert again["upstream"]["not_modified"] == 2
    assert local_upstream.count(status=200) == 0 and local_upstream.count(status=304) == 2

    # Users pin either version and get the right wheel.
    for version in ("1.16.0", "1.17.0"):
        venv = pip_install(tmp_path, f"venv-{version}", f"six=={version}")
        got = subprocess.run([str(venv / "bin" / "python"), "-c", "import six; print(six.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
        assert got == version

    # Upstream yanks 1.16.0: the next update yanks it in our index, with the reason; no file goes.
    local_upstream.yank("six-1.16.0.tar.gz", "a broken release")
    report = update(tmp_path, settings)
    assert report["yanked"] == ["six-1.16.0-py2.py3-none-any.whl"]
    page = json.loads((out / "simple" / "six" / "index.json").read_text())
    yanked = {f["filename"]: f["yanked"] for f in page["files"]}
    assert yanked == {"six-1.16.0-py2.py3-none-any.whl": "yanked upstream: a broken release",
                      "six-1.17.0-py2.py3-none-any.whl": False}
    assert (out / "files" / "six" / "six-1.16.0-py2.py3-none-any.whl").is_file()
    assert 'data-yanked="yanked upstream: a broken release"' in \
        (out / "simple" / "six" / "index.html").read_text()

    # A change to six's overrides rebuilds the versions we carry: trigger config-change.
    (tmp_path / "overrides").mkdir(exist_ok=True)
    (tmp_path / "overrides" / "six.yaml").write_text("env: {SIX_NOTE: rebuilt}\n")
    report = update(tmp_path, settings)
    assert sorted(report["rebuilt"]) == ["six-1.16.0-1-py2.py3-none-any.whl",
                                         "six-1.17.0-1-py2.py3-none-any.whl"]
    assert {j["trigger"] for j in history(tmp_path, settings)
            if j["wheel"] and "-1-" in j["wheel"]} == {"config-change"}


def demoapp_sdist(tmp_path: Path, version: str, requires: list[str]) -> Path:
    source = tmp_path / "src" / f"demoapp-{version}"
    (source / "demoapp").mkdir(parents=True)
    (source / "demoapp" / "__init__.py").write_text(
        "".join(f"import {r.split('>')[0].split('=')[0]}\n" for r in requires) + f"VERSION = '{version}'\n")
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "demoapp"\nversion = "{version}"\ndependencies = {json.dumps(requires)}\n')
    return make_sdist(source, tmp_path / "dist", "demoapp", version)


def test_a_new_dependency_waits_for_review_and_approval_builds_it_and_resumes_the_job(
        local_upstream, tmp_path):
    local_upstream.add_from_pypi("setuptools", SETUPTOOLS, upload_time=LONG_AGO)
    local_upstream.add_from_pypi("six", "1.17.0", upload_time=LONG_AGO)
    local_upstream.add(demoapp_sdist(tmp_path, "1.0", []), upload_time=LONG_AGO)
    settings = local_upstream.settings(tmp_path / "conf", update=POLICY,
                                       overrides_dir=str(tmp_path / "overrides"))
    run_mirror_builder("bootstrap", "demoapp==1.0", "-o", "out", cwd=tmp_path, settings=settings)

    # 2.0 adds a dependency we do not carry; 2.1 is too fresh for the cool-down.
    local_upstream.add(demoapp_sdist(tmp_path, "2.0", ["six>=1.16"]), upload_time=LONG_AGO)
    local_upstream.add(demoapp_sdist(tmp_path, "2.1", ["six>=1.16"]),
                       upload_time=datetime.now(timezone.utc) - timedelta(hours=2))
    report = update(tmp_path, settings)

    assert report["waiting"] == {"demoapp==2.0": ["six"]}
    assert report["built"] == []
    reasons = {d["version"]: d["reason"] for d in report["decisions"]["demoapp"]}
    assert reasons["2.1"].startswith("too fresh")
    out = tmp_path / "out"
    assert not (out / "files" / "six").exists()
    queue = json.loads(run_mirror_builder("review", "list", "-o", "out", "--json", cwd=tmp_path,
                                          settings=settings).stdout)
    assert [(e["name"], e["state"]) for e in queue] == [("six", "pending")]
    (request,) = queue[0]["requests"]
    assert (request["by"], request["requirement"]) == ("demoapp==2.0", "six>=1.16")
    (waiting,) = [j for j in history(tmp_path, settings) if j["version"] == "2.0"]
    assert (waiting["result"], waiting["waiting_for"]) == ("waiting-review", ["six"])

    # A person approves six: it is built, and the job that waited for it completes.
    approved = run_mirror_builder("review", "approve", "six", "--note", "looks fine", "-o", "out",
                                  cwd=tmp_path, settings=settings)
    assert "built demoapp==2.0" in " ".join(approved.stderr.split())
    jobs = {(j["package"], j["version"]): j for j in reversed(history(tmp_path, settings))}  # newest wins
    assert (jobs[("six", "1.17.0")]["trigger"], jobs[("six", "1.17.0")]["result"]) == ("approved", "built")
    assert jobs[("demoapp", "2.0")]["result"] == "built"
    assert jobs[("demoapp", "2.0")]["trigger"] == "upstream-release"
    assert json.loads(run_mirror_builder("review", "list", "-o", "out", "--json", cwd=tmp_path,
                                         settings=settings).stdout) == []

    venv = pip_install(tmp_path, "venv", "demoapp==2.0")
    got = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "import demoapp, six; print(demoapp.VERSION, six.__version__)"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert got == ["2.0", "1.17.0"]

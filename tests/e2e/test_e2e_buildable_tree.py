"""End-to-end, with real podman and a real local upstream: resolving to a tree that can be built.
A version whose build requirement is missing is passed over for an earlier one, and a build
cycle is named in full, then broken in stages by an override, its full build published."""

import json
import subprocess

import pytest

from conftest import FIXTURES, clean_environment, fresh_venv, make_sdist, run_mirror_builder

pytestmark = pytest.mark.e2e

SETUPTOOLS = "84.2.1"  # the only setuptools the local upstream holds (see test_e2e_local_upstream)


def tiny_project(folder, name, version, build_requires):
    folder.mkdir(parents=True)
    (folder / name).mkdir()
    (folder / name / "__init__.py").write_text(f"VERSION = {version!r}\n")
    (folder / "pyproject.toml").write_text(
        f"[build-system]\nrequires = {json.dumps(['setuptools>=61', *build_requires])}\n"
        f"build-backend = 'setuptools.build_meta'\n\n[project]\nname = '{name}'\n"
        f"version = '{version}'\n")
    return folder


def install_and_run(tmp_path, out, requirement, code):
    venv = fresh_venv(tmp_path / "venv")
    subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--index-url",
                    (out / "simple").as_uri(), "--only-binary", ":all:", requirement],
                   check=True, env=clean_environment(), capture_output=True)
    return subprocess.run([str(venv / "bin" / "python"), "-c", code], check=True,
                          capture_output=True, text=True).stdout


def test_a_version_whose_build_requirement_is_missing_is_passed_over(local_upstream, tmp_path):
    local_upstream.add_from_pypi("setuptools", SETUPTOOLS)
    for version, needs in (("2.0", ["python-sbom>=0.1.2"]), ("1.0", [])):
        source = tiny_project(tmp_path / f"src-{version}", "skipme", version, needs)
        local_upstream.add(make_sdist(source, tmp_path / "sdists", "skipme", version))
    settings = local_upstream.settings(tmp_path / "conf")

    done = run_mirror_builder("bootstrap", "skipme", "-o", "out", cwd=tmp_path, settings=settings)
    assert "skipme 2.0 skipped: build requirement python-sbom is not on the index; took 1.0" \
        in " ".join(done.stderr.split())
    out = tmp_path / "out"
    assert [p.name for p in (out / "files" / "skipme").glob("*.whl")] == \
        ["skipme-1.0-py3-none-any.whl"]
    record = json.loads((out / "records" / "skipme" /
                         "skipme-1.0-py3-none-any.whl.build.json").read_text())
    assert record["skipped_versions"] == [
        {"version": "2.0", "reason": "build requirement python-sbom is not on the index"}]

    # Strict: the newest or nothing, and the error says why.
    strict = run_mirror_builder("bootstrap", "skipme", "--strict-versions", "-o", "strict",
                                cwd=tmp_path, settings=settings, check=False)
    assert strict.returncode == 1
    assert "cannot resolve python-sbom: skipme==2.0 needs python-sbom>=0.1.2 to build" in \
        " ".join(strict.stderr.split())
    assert "Traceback" not in strict.stderr


def test_a_build_cycle_is_named_in_full_then_broken_in_stages(local_upstream, tmp_path):
    local_upstream.add_from_pypi("setuptools", SETUPTOOLS)
    for name in ("cyclea", "cycleb"):
        local_upstream.add(make_sdist(FIXTURES / name, tmp_path / "sdists", name, "1.0"))
    settings = local_upstream.settings(tmp_path / "conf")

    # Without an override: the whole cycle, each step's kind and requirement, and the way out.
    failed = run_mirror_builder("bootstrap", "cyclea", "-o", "first", cwd=tmp_path,
                                settings=settings, check=False)
    message = " ".join(failed.stderr.split())
    assert failed.returncode == 1, failed.stderr
    assert "cyclea==1.0 -[build-system: cycleb]-> cycleb==1.0 -[install: cyclea]-> cyclea==1.0" \
        in message
    assert "bootstrap_stage: {remove: [cycleb]} in cyclea.yaml" in message
    assert "Traceback" not in failed.stderr

    (tmp_path / "conf" / "overrides").mkdir(exist_ok=True)
    (tmp_path / "conf" / "overrides" / "cyclea.yaml").write_text(
        "bootstrap_stage:\n  remove: [cycleb]\n")
    done = run_mirror_builder("bootstrap", "cyclea", "-o", "out", cwd=tmp_path,
                              settings=settings)
    assert "built in stages cyclea==1.0: stage 1 without cycleb for its build cycle (not " \
           "published), then in full" in " ".join(done.stderr.split())
    out = tmp_path / "out"
    # Only the full build is published, with the next rebuild number; no stage-1 wheel.
    assert sorted(p.name for p in (out / "files" / "cyclea").glob("*.whl")) == \
        ["cyclea-1.0-1-py3-none-any.whl"]
    assert sorted(p.name for p in (out / "files" / "cycleb").glob("*.whl")) == \
        ["cycleb-1.0-py3-none-any.whl"]
    record = json.loads((out / "records" / "cyclea" /
                         "cyclea-1.0-1-py3-none-any.whl.build.json").read_text())
    stage = record["bootstrap_stage"]
    assert stage["stage"] == "full" and stage["removed"] == ["cycleb"]
    assert stage["stage1"]["wheel"] == "cyclea-1.0-py3-none-any.whl"
    assert (out / stage["stage1"]["log"]).is_file()
    assert any(line.startswith("cycleb==") for line in record["build_env"]["freeze"])

    # Both install from our index, and the cyclea installed is the full build.
    printed = install_and_run(tmp_path, out, "cycleb",
                              "import cyclea._stage, cycleb; print(cyclea._stage.STAGE)")
    assert printed.strip() == "full"

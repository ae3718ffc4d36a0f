"""End-to-end: a build container whose wheel's install closure is not built yet waits for it
after handing its wheel over (without a build slot), and tests the wheel itself once the run
has built the closure: no smoke-test container of its own. When the run will not build the
closure, the container is told to skip, and the outcome is what it always was."""

import json
import shutil
import time

import pytest

from conftest import FIXTURES, make_sdist, run_mirror_builder

pytestmark = pytest.mark.e2e


def hostile_sdist(work, name, mode, **config):
    """An sdist of the hostile fixture's backend in a harmless mode (linger: its build keeps a
    process alive for config["seconds"]); config["requires"] becomes its wheel's
    Requires-Dist. Its sdist has no PKG-INFO: what it requires is known only once built."""
    source = work / "src" / name
    shutil.copytree(FIXTURES / "hostile", source)
    (source / "hostile.json").write_text(json.dumps(
        {"name": name, "version": "1.0", "mode": mode, "marker": f"mb-{name}", **config}))
    return make_sdist(source, work / "dist", name.replace("-", "_"), "1.0")


def smoke_record(out, project):
    (record,) = (out / "records" / project).glob("*.build.json")
    return json.loads(record.read_text())["smoke_test"]


def test_a_package_built_before_its_dependency_is_tested_in_its_own_build_container(
        local_upstream, tmp_path):
    local_upstream.add(hostile_sdist(tmp_path, "waits-top", "plain", requires=["waits-slow"]))
    local_upstream.add(hostile_sdist(tmp_path, "waits-slow", "linger", seconds=3))
    settings = local_upstream.settings(tmp_path / "conf")

    run_mirror_builder("bootstrap", "waits-top==1.0", "-o", "out", "--no-build-cache",
                       "--timeline", "timeline.json", cwd=tmp_path, settings=settings)

    out = tmp_path / "out"
    top = smoke_record(out, "waits-top")
    assert top["status"] == "passed" and top["container"] == "build"
    assert "waits-slow==1.0" in top["installed"]  # its closure, given to it after its build
    spans = json.loads((tmp_path / "timeline.json").read_text())["spans"]
    slow_built = max(s["end"] for s in spans if s["package"] == "waits-slow==1.0"
                     and s["phase"] == "container")
    (top_container,) = [s for s in spans if s["package"] == "waits-top==1.0"
                        and s["phase"] == "container"]
    (top_test,) = [s for s in spans if s["package"] == "waits-top==1.0" and s["phase"] == "smoke"]
    # Built first, its wheel handed over at once; tested only once its dependency was built.
    assert top_container["end"] < slow_built <= top_test["start"]
    assert top_test["parts"] == {"wheels": 1, "in_build": 1}


def test_a_closure_the_run_cannot_build_ends_the_wait_and_fails_as_before(
        local_upstream, tmp_path):
    local_upstream.add(hostile_sdist(tmp_path, "waits-orphan", "plain",
                                     requires=["waits-nowhere"]))
    settings = local_upstream.settings(tmp_path / "conf")

    started = time.monotonic()
    proc = run_mirror_builder("bootstrap", "waits-orphan==1.0", "--keep-going", "-o", "out",
                              "--no-build-cache", cwd=tmp_path, settings=settings, check=False)

    assert time.monotonic() - started < 120  # the container did not wait it out
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "waits-nowhere" in " ".join(proc.stderr.split())
    assert not (tmp_path / "out" / "files" / "waits-orphan").exists()

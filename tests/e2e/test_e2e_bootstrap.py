"""End-to-end, as in the README: bootstrap stevedore from PyPI with real podman, then install it
from our index in a fresh virtual environment."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from conftest import STEVEDORE, clean_environment, run_mirror_builder

pytestmark = pytest.mark.e2e

@pytest.fixture
def output(stevedore_output) -> Path:
    return stevedore_output


def build_order(output: Path) -> list[dict]:
    return json.loads((output / "build-order.json").read_text())


def test_the_closure_includes_the_build_tools_and_is_built_bottom_up(output):
    order = build_order(output)
    names = [entry["name"] for entry in order]
    assert {"stevedore", "pbr", "setuptools"} <= set(names)
    assert names.index("setuptools") < names.index("pbr") < names.index("stevedore")
    assert all(entry["status"] == "built" for entry in order)
    stevedore = next(e for e in order if e["name"] == "stevedore")
    assert stevedore["version"] == STEVEDORE
    graph = json.loads((output / "graph.json").read_text())
    kinds = {(e["from"], e["to"].split("==")[0], e["kind"]) for e in graph["edges"]}
    assert (f"stevedore=={STEVEDORE}", "pbr", "build-system") in kinds
    assert (None, "stevedore", "toplevel") in kinds


def test_every_wheel_was_built_by_us_in_a_network_less_container(output):
    wheels = sorted((output / "files").glob("*/*.whl"))
    assert len(wheels) == len(build_order(output)) >= 3
    for wheel in wheels:
        project = wheel.parent.name
        record_dir = output / "records" / project
        record = json.loads((record_dir / f"{wheel.name}.build.json").read_text())
        assert record["wheel"] == wheel.name
        assert record["sandbox"]["network"] == "none"
        assert record["image"]["tag"].startswith("localhost/mirror-builder-")
        log = (record_dir / f"{wheel.name}.log").read_text()
        # These lines are printed by the driver that only runs inside the build container.
        assert "network none" in log
        assert "[mirror-builder] build_wheel" in log
        assert f"[mirror-builder] built {wheel.name}" in log


def test_each_build_environment_is_recorded_and_holds_only_our_wheels(output):
    ours = {w.name for w in (output / "files").glob("*/*.whl")}
    for record_file in (output / "records").glob("*/*.build.json"):
        record = json.loads(record_file.read_text())
        freeze_file = record_file.with_name(record["wheel"] + ".freeze.txt")
        frozen = sorted(line for line in freeze_file.read_text().splitlines() if line)
        assert frozen == sorted(record["build_env"]["freeze"])
        env_wheels = [w["filename"] for w in record["build_env"]["wheels"]]
        assert set(env_wheels) <= ours
        expected = sorted(f"{f.split('-')[0].replace('_', '-')}=={f.split('-')[1]}" for f in env_wheels)
        assert [line.lower() for line in frozen] == [line.lower() for line in expected]
        if record["name"] != "setuptools":  # setuptools builds itself, with nothing installed
            assert frozen, f"{record['name']} had an empty build environment"


def test_source_hashes_are_the_ones_the_index_publishes(output):
    for record_file in (output / "records").glob("*/*.build.json"):
        record = json.loads(record_file.read_text())
        page = requests.get(f"https://pypi.org/simple/{record['name']}/", timeout=60).text
        assert f"{record['source']['filename']}#sha256={record['source']['sha256']}" in page


def test_pip_installs_stevedore_from_our_index_alone(output, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    report = tmp_path / "report.json"
    subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--report", str(report),
                    "--index-url", (output / "simple").as_uri(), "--only-binary", ":all:",
                    f"stevedore=={STEVEDORE}"],
                   check=True, env=clean_environment(), capture_output=True)
    installed = json.loads(report.read_text())["install"]
    assert [i["metadata"]["name"] for i in installed] == ["stevedore"]
    for item in installed:
        assert item["download_info"]["url"].startswith((output / "files").as_uri())
    subprocess.run([str(venv / "bin" / "python"), "-c", "import stevedore.extension"], check=True)


def test_a_second_bootstrap_reuses_what_is_in_the_index_without_asking_the_index(output):
    proc = run_mirror_builder("bootstrap", f"stevedore=={STEVEDORE}", "--output", str(output),
                              cwd=output.parent)
    assert {e["status"] for e in build_order(output)} == {"reused"}
    assert "0 requests to the upstream index" in " ".join(proc.stderr.split())


def test_every_record_follows_the_documented_schema(output):
    import jsonschema

    schema = json.loads((Path(__file__).parents[2] / "mirror_builder" / "data" /
                         "build-record.schema.json").read_text())
    records = list((output / "records").glob("*/*.build.json"))
    assert records
    for record_file in records:
        jsonschema.validate(json.loads(record_file.read_text()), schema)


def test_the_timeline_says_where_each_real_build_spent_its_time(output):
    """--timeline of the real run: every built package's phases, its container's parts as the
    driver and podman measured them, and the smoke tests that published it."""
    timeline = json.loads((output.parent / "timeline.json").read_text())
    spans = timeline["spans"]
    built = {f"{e['name']}=={e['version']}" for e in build_order(output)}
    containers = {s["package"]: s for s in spans if s["phase"] == "container"}
    assert set(containers) == built
    for span in containers.values():
        parts = span["parts"]
        # A container started for the build, or one started before it that waited for it
        # (build/warm.py: the first build has none, the next ones do).
        started_for_it = ("podman_create", "podman_start") if "podman_create" in parts else ()
        for part in ("environment", "get_requires", "build_wheel", "driver", "podman_wait",
                     *(started_for_it or ("podman_warm",))):
            assert parts[part] > 0, (span["package"], part)
        # The driver starts while podman's start call is still returning: its time fits in
        # the start and the wait together.
        assert parts["driver"] < parts.get("podman_start", 0) + parts["podman_wait"]
        assert parts["podman_wait"] <= span["end"] - span["start"]
    assert {"podman_create" in s["parts"] for s in containers.values()} == {True, False}
    # Each was smoke-tested: in a container of its own, or in its build container once it had
    # handed the wheel over (setuptools needs nothing, so always there), as its record says.
    tests = [s for s in spans if s["phase"] == "smoke"]
    smoked = {pin for s in tests for pin in s["package"].split(", ")}
    in_build = {s["package"] for s in tests if s["parts"].get("in_build")}
    assert smoked == built
    assert any(pin.startswith("setuptools==") for pin in in_build)
    for record_file in (output / "records").glob("*/*.build.json"):
        record = json.loads(record_file.read_text())
        pin = f"{record['name']}=={record['version']}"
        if record["smoke_test"]["container"] == "build":
            assert pin in in_build
            # The test ran after the hand-over, while the wheel was stamped and staged.
            (test,) = [s for s in tests if s["package"] == pin and s["parts"].get("in_build")]
            assert test["start"] >= containers[pin]["end"] - 0.01
    assert 0 < timeline["peak_rss_bytes"] < 1 << 30 and timeline["slots"] >= 1

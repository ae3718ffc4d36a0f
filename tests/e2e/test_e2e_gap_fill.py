"""End-to-end: bootstrap --gap-fill (python.build's model) against real PyPI and real podman.
pinsix is an sdist upstream has no wheel of (a local one: upstream does not have it at all),
so it is built from source; its build requirement setuptools and its install requirement six
have wheels on PyPI that fit the target, so those are taken, hash-checked and recorded as
upstream wheels. The index holds all three; its from-source/ view only pinsix."""

import hashlib
import json

import pytest

from conftest import FIXTURES, make_sdist, run_mirror_builder

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gap_filled(tmp_path_factory):
    work = tmp_path_factory.mktemp("gapfill")
    sdist = make_sdist(FIXTURES / "pinsix", work / "dist", "pinsix", "1.0")
    plan = run_mirror_builder("plan", str(sdist), "--gap-fill", "--json", cwd=work)
    proc = run_mirror_builder("bootstrap", str(sdist), "--gap-fill", "-o", "out",
                              "--no-build-cache", cwd=work)
    return {"work": work, "out": work / "out", "proc": proc, "plan": json.loads(plan.stdout)}


def records(out):
    return {r["name"]: r for r in (json.loads(p.read_text())
                                   for p in out.glob("records/*/*.build.json"))}


def test_what_upstream_lacks_is_built_and_the_rest_taken_as_upstream_wheels(gap_filled):
    found = records(gap_filled["out"])
    assert set(found) == {"pinsix", "setuptools", "six"}
    assert found["pinsix"]["built_from_source"] and found["pinsix"]["sandbox"]["network"] == "none"
    for name in ("setuptools", "six"):
        record = found[name]
        assert record["built_from_source"] is False
        assert record["source"]["origin"]["kind"] == "upstream wheel"
        assert record["source"]["url"].startswith("https://files.pythonhosted.org/")
        wheel = gap_filled["out"] / "files" / name / record["wheel"]
        # hash-checked: the file is the one upstream's page gave the sha256 of
        assert hashlib.sha256(wheel.read_bytes()).hexdigest() == record["wheel_sha256"] \
            == record["source"]["sha256"]
    # pinsix's build environment is the upstream setuptools wheel, by hash
    (env_wheel,) = found["pinsix"]["build_env"]["wheels"]
    assert env_wheel["sha256"] == found["setuptools"]["wheel_sha256"]


def test_the_plan_said_the_same(gap_filled):
    sources = {p["name"]: p["source"] for p in gap_filled["plan"]}
    assert sources["setuptools"].startswith("upstream wheel, gap-fill")
    assert sources["pinsix"] == "sdist"


def test_the_summary_counts_both_views_and_the_from_source_view_holds_only_the_built(gap_filled):
    text = " ".join(gap_filled["proc"].stderr.split())
    assert "gap-fill: 2 upstream wheels taken, not built from source" in text
    assert "The index has 3 wheels (everything); its from-source/ view has the 1 built from source" \
        in text
    out = gap_filled["out"]
    everything = json.loads((out / "simple" / "index.json").read_text())["projects"]
    from_source = json.loads((out / "from-source" / "simple" / "index.json").read_text())["projects"]
    assert {p["name"] for p in everything} == {"pinsix", "setuptools", "six"}
    assert [p["name"] for p in from_source] == ["pinsix"]
    (wheel,) = (out / "from-source" / "files" / "pinsix").glob("*.whl")
    assert wheel.read_bytes() == (out / "files" / "pinsix" / wheel.name).read_bytes()


def test_inspect_says_an_upstream_wheel_was_not_built_from_source(gap_filled):
    shown = run_mirror_builder("inspect", "six==1.17.0", "-o", "out", cwd=gap_filled["work"])
    text = " ".join(shown.stdout.replace("│", " ").split())  # the panel's wrapped lines
    assert "NOT built from source: an upstream wheel (gap-fill: upstream has a wheel for" in text

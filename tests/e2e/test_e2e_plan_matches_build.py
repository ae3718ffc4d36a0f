"""End-to-end (real PyPI, real podman): `plan` and a real bootstrap of the same tree, with an
override that edits build requirements, list the same packages, versions and build
requirements, because plan calls the very functions the build uses (issue 14).

Before, plan compared names as written: `remove: [cython]` left `Cython>=3` in the plan, and
`Flit_Core>=3` did not replace `flit-core<1`, while the build did both."""

import json

import pytest

from conftest import FIXTURES, make_sdist, run_mirror_builder, write_settings

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def plan_and_build(tmp_path_factory):
    work = tmp_path_factory.mktemp("planbuild")
    overrides = work / "overrides"
    overrides.mkdir()
    (overrides / "editreqs.yaml").write_text(
        "build_requires:\n  remove: [cython]\n  add: [\"Flit_Core>=3\"]\n")
    settings = write_settings(work / "conf", overrides_dir=str(overrides))
    sdist = make_sdist(FIXTURES / "editreqs", work / "dist", "editreqs", "1.0")
    run_mirror_builder("images", cwd=work, settings=settings)  # plan reads the image's markers
    plan = json.loads(run_mirror_builder("plan", str(sdist), "--json", cwd=work,
                                         settings=settings).stdout)
    out = work / "out"
    run_mirror_builder("bootstrap", str(sdist), "-o", str(out), cwd=work, settings=settings)
    return plan, out


def built_requirements(out, name: str) -> list[str]:
    (record,) = (out / "records" / name).glob("*.build.json")
    return json.loads(record.read_text())["build_system"]["requires"]


def test_the_plan_applies_the_override_as_the_build_does(plan_and_build):
    plan, out = plan_and_build
    planned = next(p for p in plan if p["name"] == "editreqs")
    assert planned["build_requires"] == ["setuptools>=61", "Flit_Core>=3"]
    assert built_requirements(out, "editreqs") == planned["build_requires"]


def test_plan_and_build_list_the_same_packages_and_versions(plan_and_build):
    plan, out = plan_and_build
    order = json.loads((out / "build-order.json").read_text())
    assert {(p["name"], p["version"]) for p in plan} == \
        {(b["name"], b["version"]) for b in order}
    assert "cython" not in {p["name"] for p in plan}


def test_every_package_has_the_build_requirements_the_plan_said(plan_and_build):
    plan, out = plan_and_build
    for planned in plan:
        assert built_requirements(out, planned["name"]) == planned["build_requires"], \
            planned["name"]

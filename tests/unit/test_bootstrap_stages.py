"""A build cycle broken in stages: the package whose overrides say which build requirements it
can do without (bootstrap_stage) is built once without them, only for the rest of the cycle,
then again in full; the index holds the full build and its record tells of stage 1."""

import json

import pytest
from packaging.requirements import Requirement
from packaging.utils import parse_wheel_filename

from mirror_builder.errors import BuildCycleError
from test_bootstrap import Package, bootstrap  # noqa: F401  (the fixture)

# ext build-requires lab; lab installs ext: ext's own build environment holds ext.
LAB_CYCLE = {
    "ext": {"0.3": Package(build_requires=["backend", "lab"])},
    "lab": {"4.0": Package(build_requires=["backend"], requires_dist=["ext"])},
    "backend": {"1.0": Package()},
}


def published(output, name):
    return sorted(p.name for p in (output / "files" / name).glob("*.whl"))


def record_of(output, name):
    (path,) = (output / "records" / name).glob("*.build.json")
    return json.loads(path.read_text())


def test_a_cycle_through_a_staged_package_builds_stage_one_then_the_full_build(bootstrap):
    bootstrap.overrides.mkdir(exist_ok=True)
    (bootstrap.overrides / "ext.yaml").write_text("bootstrap_stage:\n  remove: [lab]\n")
    bootstrapper, builder = bootstrap.make(LAB_CYCLE)
    report = bootstrapper.run([Requirement("ext")])

    ext_builds = [sorted(env) for name, env in builder.builds if name == "ext"]
    assert ext_builds == [["backend"], ["backend", "ext", "lab"]]
    assert published(bootstrap.output, "ext") == ["ext-0.3-1-py3-none-any.whl"]
    assert [w.path.name for w in report.wheels if w.name == "ext"] == \
        ["ext-0.3-1-py3-none-any.whl"]
    assert report.staged == {"ext==0.3": ("lab",)}

    record = record_of(bootstrap.output, "ext")
    assert record["rebuild"]["number"] == 1
    assert record["rebuild"]["reason"] == "full build after bootstrap stage 1"
    stage = record["bootstrap_stage"]
    assert stage["stage"] == "full" and stage["removed"] == ["lab"]
    assert stage["stage1"]["wheel"] == "ext-0.3-py3-none-any.whl"
    assert (bootstrap.output / stage["stage1"]["log"]).is_file()
    # lab was built without needing ext at all; the full ext was built with the stage-1 ext.
    full_env = {w["filename"] for w in record["build_env"]["wheels"]}
    assert "ext-0.3-py3-none-any.whl" in full_env


def test_the_override_may_sit_on_another_package_of_the_cycle(bootstrap):
    bootstrap.overrides.mkdir(exist_ok=True)
    (bootstrap.overrides / "b.yaml").write_text("bootstrap_stage:\n  remove: [a]\n")
    bootstrapper, builder = bootstrap.make({"a": {"1.0": Package(build_requires=["b"])},
                                            "b": {"1.0": Package(build_requires=["a"])}})
    bootstrapper.run([Requirement("a")])
    assert [(name, sorted(env)) for name, env in builder.builds] == \
        [("b", []), ("a", ["b"]), ("b", ["a"])]
    assert published(bootstrap.output, "b") == ["b-1.0-1-py3-none-any.whl"]
    assert published(bootstrap.output, "a") == ["a-1.0-py3-none-any.whl"]


def test_without_a_stage_override_the_cycle_is_named_with_the_way_out(bootstrap):
    with pytest.raises(BuildCycleError) as raised:
        bootstrap(LAB_CYCLE, "ext")
    assert "bootstrap_stage: {remove: [lab]} in ext.yaml" in str(raised.value)


def test_a_stage_that_does_not_break_the_cycle_is_named_as_a_cycle(bootstrap):
    bootstrap.overrides.mkdir(exist_ok=True)
    (bootstrap.overrides / "ext.yaml").write_text("bootstrap_stage:\n  remove: [backend]\n")
    bootstrapper, _ = bootstrap.make(LAB_CYCLE)
    with pytest.raises(BuildCycleError, match="build dependencies form a cycle"):
        bootstrapper.run([Requirement("ext")])


def test_a_package_outside_the_cycle_waits_for_the_full_build(bootstrap):
    bootstrap.overrides.mkdir(exist_ok=True)
    (bootstrap.overrides / "ext.yaml").write_text("bootstrap_stage:\n  remove: [lab]\n")
    packages = dict(LAB_CYCLE, app={"1.0": Package(build_requires=["ext"])})
    bootstrapper, builder = bootstrap.make(packages)
    bootstrapper.run([Requirement("app")])
    (app,) = [request for request in builder.requests if request.source.name == "app"]
    ext_wheels = [w.path.name for w in app.env.wheels if w.path.name.startswith("ext-")]
    assert ext_wheels == ["ext-0.3-1-py3-none-any.whl"]


def test_the_run_ends_only_when_the_cycles_full_build_does(bootstrap, monkeypatch):
    """Nothing waits for b's full build (a took the stage-1 stand-in, and the user asked for a
    alone), yet it is the run's: the run waits for it, and publishes it."""
    import time

    bootstrap.overrides.mkdir(exist_ok=True)
    (bootstrap.overrides / "b.yaml").write_text("bootstrap_stage:\n  remove: [a]\n")
    bootstrapper, builder = bootstrap.make({"a": {"1.0": Package(build_requires=["b"])},
                                            "b": {"1.0": Package(build_requires=["a"])}})
    real_build = type(builder).build

    def slow_full_build_of_b(self, request):
        if request.source.name == "b" and request.env.wheels:
            time.sleep(1.0)
        return real_build(self, request)

    monkeypatch.setattr(type(builder), "build", slow_full_build_of_b)
    bootstrapper.run([Requirement("a")])
    assert ("b", ["a"]) in [(name, sorted(env)) for name, env in builder.builds]
    assert published(bootstrap.output, "b") == ["b-1.0-1-py3-none-any.whl"]

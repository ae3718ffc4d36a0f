"""plan: the bottom-up order, build requirements read statically, overrides shown, nothing built."""

import pytest
from packaging.requirements import Requirement

from mirror_builder.errors import BuildCycleError, MirrorBuilderError
from mirror_builder.engine.planner import Planner
from mirror_builder.config.settings import load_settings
from test_bootstrap import TARGET, FakeIndex, Package


@pytest.fixture
def planner(tmp_path):
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text("cache_dir: cache\npatches_dir: patches\noverrides_dir: overrides\n")
    settings = load_settings(settings_file)
    (tmp_path / "overrides").mkdir()

    def make(packages):
        return Planner(settings, FakeIndex(tmp_path, packages), TARGET)

    make.overrides = tmp_path / "overrides"
    return make


def test_the_plan_lists_build_dependencies_before_what_needs_them(planner):
    plan = planner({
        "app": {"1.0": Package(build_requires=["backend"], requires_dist=["lib"])},
        "backend": {"1.0": Package(build_requires=["tool"])},
        "tool": {"1.0": Package()}, "lib": {"1.0": Package()},
    }).plan([Requirement("app")])
    order = [p.candidate.name for p in plan.order]
    assert order.index("tool") < order.index("backend") < order.index("app")
    assert set(order) == {"app", "backend", "tool", "lib"}
    backend = next(p for p in plan.order if p.candidate.name == "backend")
    assert backend.build_requires == ["tool"]
    assert backend.needed_by == ["app==1.0 (build-system)"]


def test_the_plan_shows_overrides_and_applies_build_requires_edits(planner):
    make = planner
    (make.overrides / "app.yaml").write_text(
        "env:\n  X: '1'\nbuild_requires:\n  remove: [heavy]\n  add: [light]\n")
    plan = make({"app": {"1.0": Package(build_requires=["heavy"])},
                 "heavy": {"1.0": Package()}, "light": {"1.0": Package()}}).plan([Requirement("app")])
    app = next(p for p in plan.order if p.candidate.name == "app")
    assert app.build_requires == ["light"]
    assert app.overrides == ["env", "build_requires_add", "build_requires_remove"]
    assert "heavy" not in [p.candidate.name for p in plan.order]


def test_a_build_cycle_is_an_error_in_the_plan_too(planner):
    with pytest.raises(BuildCycleError, match=r"a==1.0 -\[build-system: b\]-> b==1.0 "
                                              r"-\[build-system: a\]-> a==1.0"):
        planner({"a": {"1.0": Package(build_requires=["b"])},
                 "b": {"1.0": Package(build_requires=["a"])}}).plan([Requirement("a")])


def test_a_pre_built_package_is_marked_and_has_no_build_requirements(planner):
    make = planner
    (make.overrides / "app.yaml").write_text("pre_built: true\n")
    plan = make({"app": {"1.0": Package(build_requires=["tool"])},
                 "tool": {"1.0": Package()}}).plan([Requirement("app")])
    (app,) = plan.order
    assert app.source == "pre-built upstream wheel (NOT from source)"
    assert app.build_requires == []


def test_a_package_with_no_sdist_and_no_override_is_named(planner):
    class WheelsOnly(FakeIndex):
        def project_files(self, name):
            from mirror_builder.resolve.pages import DistributionFile
            return [DistributionFile(f"{name}-1.0-py3-none-any.whl", "https://example.invalid/w", None)]

    make = planner
    (make.overrides / "app.yaml").write_text("source:\n  git: https://example.invalid/app.git\n  tag: v${version}\n")
    finder = WheelsOnly(make.overrides.parent, {"app": {"1.0": Package()}, "dep": {"1.0": Package()}})
    p = Planner(load_settings(make.overrides.parent / "settings.yaml"), finder, TARGET)
    plan = p.plan([Requirement("app")])
    assert plan.order[0].source == "override: https://example.invalid/app.git @ v1.0"
    with pytest.raises(MirrorBuilderError, match=r"dep has no source distribution on the index "
                                                 r"\(wheels only\)"):
        Planner(load_settings(make.overrides.parent / "settings.yaml"), finder, TARGET).plan(
            [Requirement("dep")])


def test_the_plan_says_which_packages_the_deny_list_would_refuse(tmp_path):
    (tmp_path / "deny.txt").write_text("# never\nlib\n")
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text("cache_dir: cache\noverrides_dir: overrides\n"
                             "carry: {deny_list: deny.txt}\n")
    plan = Planner(load_settings(settings_file), FakeIndex(tmp_path, {
        "app": {"1.0": Package(requires_dist=["lib"])}, "lib": {"1.0": Package()},
    }), TARGET).plan([Requirement("app")])
    notes = {p.candidate.name: p.note for p in plan.order}
    assert notes["lib"] == f"lib is on the deny list ({tmp_path / 'deny.txt'}:2): a bootstrap would refuse it"
    assert notes["app"] == ""


def test_a_cycle_through_a_package_with_a_stage_override_is_planned_in_stages(planner):
    # ext build-requires lab; lab installs ext: ext's own build environment holds ext.
    make = planner
    (make.overrides / "ext.yaml").write_text("bootstrap_stage:\n  remove: [lab]\n")
    plan = make({"ext": {"0.3": Package(build_requires=["backend", "lab"])},
                 "lab": {"4.0": Package(build_requires=["backend"], requires_dist=["ext"])},
                 "backend": {"1.0": Package()}}).plan([Requirement("ext")])
    steps = [(p.candidate.name, p.stage) for p in plan.order]
    assert steps == [("backend", ""), ("lab", ""), ("ext", "1"), ("ext", "full")]
    stage_one = plan.order[2]
    assert stage_one.build_requires == ["backend"]
    assert "stage 1: built without lab" in stage_one.note


def test_a_stage_override_elsewhere_on_the_cycle_puts_that_package_s_stage_first(planner):
    # a build-requires b, b build-requires a; the override is on b, met second.
    make = planner
    (make.overrides / "b.yaml").write_text("bootstrap_stage:\n  remove: [a]\n")
    plan = make({"a": {"1.0": Package(build_requires=["b"])},
                 "b": {"1.0": Package(build_requires=["a"])}}).plan([Requirement("a")])
    assert [(p.candidate.name, p.stage) for p in plan.order] == \
        [("b", "1"), ("a", ""), ("b", "full")]


def test_a_stage_that_still_needs_its_cycle_is_named_as_a_cycle(planner):
    make = planner
    (make.overrides / "a.yaml").write_text("bootstrap_stage:\n  remove: [unrelated]\n")
    with pytest.raises(BuildCycleError, match=r"a==1.0 -\[build-system: b\]-> b==1.0 "):
        make({"a": {"1.0": Package(build_requires=["b", "unrelated"])},
              "b": {"1.0": Package(build_requires=["a"])},
              "unrelated": {"1.0": Package()}}).plan([Requirement("a")])


def test_a_cycle_through_an_install_requirement_is_named_in_full_in_the_plan(planner):
    with pytest.raises(BuildCycleError) as raised:
        planner({"ext": {"0.3": Package(build_requires=["lab"])},
                 "lab": {"4.0": Package(requires_dist=["ext"])}}).plan([Requirement("ext")])
    assert "ext==0.3 -[build-system: lab]-> lab==4.0 -[install: ext]-> ext==0.3" in \
        str(raised.value)
    assert "bootstrap_stage: {remove: [lab]} in ext.yaml" in str(raised.value)

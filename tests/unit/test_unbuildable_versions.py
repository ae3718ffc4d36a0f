"""A version that cannot be built from source is a dead end, not an error: resolution passes it
over for an earlier version and says so, in `plan` and in a bootstrap alike. Strict settings,
and a top-level == pin, make it the error instead."""

import dataclasses
import json

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from mirror_builder.config.settings import VersionChoice, load_settings
from mirror_builder.engine.context import Options
from mirror_builder.engine.planner import Planner
from mirror_builder.errors import BuildError, ResolutionError
from mirror_builder.resolve.explain import describe_skipped
from test_bootstrap import TARGET, FakeIndex, Package, bootstrap  # noqa: F401  (the fixture)


def sbom_tree(**extra):
    """platformdirs' newest releases build-require python-sbom, which the index lacks."""
    return {
        "app": {"1.0": Package(requires_dist=["platformdirs"])},
        "platformdirs": {"4.14.8": Package(build_requires=["hatchling", "python-sbom>=0.1.2"]),
                         "4.14.7": Package(build_requires=["hatchling", "python-sbom>=0.1.2"]),
                         "4.13.2": Package(build_requires=["hatchling"])},
        "hatchling": {"1.27.0": Package()},
        **extra,
    }


@pytest.fixture
def plan(tmp_path):
    (tmp_path / "overrides").mkdir()

    def make(packages, *requirements, settings_yaml=""):
        settings_file = tmp_path / "settings.yaml"
        settings_file.write_text("cache_dir: cache\npatches_dir: patches\n"
                                 "overrides_dir: overrides\n" + settings_yaml)
        planner = Planner(load_settings(settings_file), FakeIndex(tmp_path, packages), TARGET)
        return planner.plan([Requirement(r) for r in requirements])

    make.root = tmp_path
    return make


def planned(plan, name):
    return next(p for p in plan.order if p.candidate.name == name)


# -- plan ------------------------------------------------------------------------------------

def test_plan_takes_the_newest_version_that_can_be_built_and_says_what_it_skipped(plan):
    result = plan(sbom_tree(), "app")
    platformdirs = planned(result, "platformdirs")
    assert platformdirs.candidate.version == Version("4.13.2")
    assert [str(v) for v, _ in platformdirs.skipped] == ["4.14.8", "4.14.7"]
    assert describe_skipped("platformdirs", platformdirs.skipped) == (
        "platformdirs 4.14.8, 4.14.7 skipped: build requirement python-sbom is not on the index")


def test_strict_versions_make_the_newest_unbuildable_version_the_error(plan):
    with pytest.raises(ResolutionError, match=r"cannot resolve python-sbom: platformdirs==4\.14\.8 "
                                              r"needs python-sbom>=0\.1\.2 to build"):
        plan(sbom_tree(), "app", settings_yaml="versions: {skip_unbuildable: false}\n")


def test_a_top_level_pin_is_never_replaced_its_build_problem_is_the_error(plan):
    with pytest.raises(ResolutionError, match=r"cannot resolve python-sbom: platformdirs==4\.14\.8 "
                                              r"needs python-sbom>=0\.1\.2 to build.*does not exist"):
        plan(sbom_tree(), "platformdirs==4.14.8")


def test_when_no_version_can_be_built_the_error_lists_each_with_its_reason(plan):
    tree = sbom_tree()
    del tree["platformdirs"]["4.13.2"]
    with pytest.raises(ResolutionError) as caught:
        plan(tree, "app")
    assert "app==1.0 requires platformdirs" in str(caught.value)
    assert ("platformdirs 4.14.8, 4.14.7 skipped: build requirement python-sbom is not on the "
            "index") in str(caught.value)


def test_a_build_requirement_on_the_deny_list_is_a_dead_end_too(plan):
    (plan.root / "deny.txt").write_text("flit-core\n")
    result = plan({"app": {"2.0": Package(build_requires=["flit-core"]),
                           "1.0": Package(build_requires=["setuptools"])},
                   "flit-core": {"3.9": Package()}, "setuptools": {"70": Package()}},
                  "app", settings_yaml=f"carry: {{deny_list: {plan.root / 'deny.txt'}}}\n")
    app = planned(result, "app")
    assert app.candidate.version == Version("1.0")
    assert app.skipped[0][1].reason.startswith("build requirement flit-core is on the deny list")


def test_a_version_whose_build_requirement_cannot_itself_be_built_is_skipped(plan):
    # tool's only version needs a missing backend, so app 2.0 (which needs tool) is a dead end.
    result = plan({"app": {"2.0": Package(build_requires=["tool"]),
                           "1.0": Package(build_requires=["setuptools"])},
                   "tool": {"1.0": Package(build_requires=["gone"])},
                   "setuptools": {"70": Package()}}, "app")
    app = planned(result, "app")
    assert app.candidate.version == Version("1.0")
    assert app.skipped[0][1].reason == (
        "build requirement no version of tool can be built (build requirement gone is not on "
        "the index)")
    assert "tool" not in [p.candidate.name for p in result.order]


# -- bootstrap -------------------------------------------------------------------------------

def with_versions(bootstrapper, **versions):
    """The bootstrapper with the versions: section of settings set so."""
    services = bootstrapper.services
    bootstrapper.services = dataclasses.replace(services, settings=dataclasses.replace(
        services.settings, versions=VersionChoice(**versions)))


def test_bootstrap_builds_the_earlier_version_and_records_what_it_skipped(bootstrap):
    bootstrapper, builder = bootstrap.make(sbom_tree())
    report = bootstrapper.run([Requirement("app")])
    assert ("platformdirs", Version("4.13.2")) in {(w.name, w.version) for w in report.wheels}
    assert [str(v) for v, _ in report.skipped_for("platformdirs", Version("4.13.2"))] == \
        ["4.14.8", "4.14.7"]
    record = json.loads(next((bootstrap.output / "records" / "platformdirs").glob(
        "*.build.json")).read_text())
    assert record["skipped_versions"] == [
        {"version": "4.14.8", "reason": "build requirement python-sbom is not on the index"},
        {"version": "4.14.7", "reason": "build requirement python-sbom is not on the index"}]
    assert [name for name, _ in builder.builds].count("platformdirs") == 1


def test_a_backend_requirement_found_missing_at_build_time_replaces_the_version(bootstrap):
    # Only the backend knows (get_requires_for_build_wheel): nothing static gives it away.
    packages = {"app": {"2.0": Package(backend_requires=["missing-plugin"]),
                        "1.0": Package()}}
    bootstrapper, builder = bootstrap.make(packages)
    report = bootstrapper.run([Requirement("app>=1")])
    assert [(w.name, str(w.version)) for w in report.wheels] == [("app", "1.0")]
    (skipped,) = report.skipped_for("app", Version("1.0"))
    assert skipped[1].reason == "build requirement missing-plugin is not on the index"


def test_a_failed_build_is_replaced_only_when_settings_allow_and_keep_going(bootstrap):
    packages = {"app": {"2.0": Package(fails=True), "1.0": Package()}}
    bootstrapper, _ = bootstrap.make(packages)
    with pytest.raises(BuildError, match="the compiler said no"):
        bootstrapper.run([Requirement("app")])

    bootstrapper, _ = bootstrap.make(packages, options=Options(keep_going=True))
    with_versions(bootstrapper, replace_failed_builds=True)
    report = bootstrapper.run([Requirement("app")])
    assert [(w.name, str(w.version)) for w in report.wheels] == [("app", "1.0")]
    (skipped,) = report.skipped_for("app", Version("1.0"))
    assert skipped[1].reason.startswith("its build failed; log: ")


def test_a_failed_build_of_a_top_level_pin_stays_the_error(bootstrap):
    from mirror_builder.engine.model import BootstrapFailed

    packages = {"app": {"2.0": Package(fails=True), "1.0": Package()}}
    bootstrapper, _ = bootstrap.make(packages, options=Options(keep_going=True))
    with_versions(bootstrapper, replace_failed_builds=True)
    with pytest.raises((BuildError, BootstrapFailed), match="the compiler said no"):
        bootstrapper.run([Requirement("app==2.0")])


def test_strict_bootstrap_fails_on_the_newest_version_as_before(bootstrap):
    bootstrapper, builder = bootstrap.make(sbom_tree())
    with_versions(bootstrapper, skip_unbuildable=False)
    with pytest.raises(ResolutionError, match="platformdirs==4.14.8 needs python-sbom"):
        bootstrapper.run([Requirement("app")])
    assert "platformdirs" not in [name for name, _ in builder.builds]


def test_rebuild_bootstrap_missing_passes_over_an_unbuildable_build_requirement(bootstrap):
    import shutil

    from mirror_builder.jobs.triggers import RebuildRequest

    packages = {"app": {"1.0": Package(build_requires=["tool"])}, "tool": {"1.0": Package()}}
    bootstrap(packages, "app")
    for folder in ("files", "simple", "records"):  # tool is pruned from the index
        shutil.rmtree(bootstrap.output / folder / "tool")
    # Since then, upstream released a tool that cannot be built here.
    packages["tool"]["2.0"] = Package(build_requires=["python-sbom"])
    bootstrapper, builder = bootstrap.make(packages, options=Options(build_cache=False))
    bootstrapper.rebuild("app", Version("1.0"), RebuildRequest(reason="test",
                                                               bootstrap_missing=True))
    assert [(name, sorted(env)) for name, env in builder.builds] == \
        [("tool", []), ("app", ["tool"])]
    record = json.loads((bootstrap.output / "records" / "tool" /
                         "tool-1.0-py3-none-any.whl.build.json").read_text())
    assert record["skipped_versions"] == [
        {"version": "2.0", "reason": "build requirement python-sbom is not on the index"}]


NESTED = {"app": {"1.0": Package(requires_dist=["lib"], build_requires=["tool"])},
          "lib": {"3.0": Package(build_requires=["gone"]), "2.0": Package(build_requires=["tool"])},
          "tool": {"2.0": Package(build_requires=["helper"]), "1.0": Package()},
          "helper": {"1.0": Package(build_requires=["gone>=2"])}}


@pytest.mark.parametrize("packages", [sbom_tree(), NESTED], ids=["sbom", "nested"])
def test_plan_and_bootstrap_choose_the_same_versions(plan, bootstrap, packages):
    planned_versions = {(p.candidate.name, str(p.candidate.version))
                        for p in plan(packages, "app").order}
    bootstrapper, _ = bootstrap.make(packages)
    built = {(w.name, str(w.version)) for w in bootstrapper.run([Requirement("app")]).wheels}
    assert planned_versions == built


def finishes(call, seconds=30):
    """call()'s outcome, or a failure if it has not finished in seconds (a loop, not a bug
    report that hangs the suite)."""
    import threading

    outcome = {}

    def run():
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_a_local_sdist_whose_build_requirement_is_missing_is_the_error_not_a_loop(bootstrap):
    from mirror_builder.engine.context import ResolveOptions
    from mirror_builder.resolve.pages import DistributionFile
    from mirror_builder.resolve.resolver import Candidate

    packages = {"local": {"1.0": Package(build_requires=["python-sbom"])}}
    local = Candidate("local", Version("1.0"), DistributionFile(
        "local-1.0.tar.gz", "file:///nowhere/local-1.0.tar.gz", None))
    bootstrapper, _ = bootstrap.make(packages, options=Options(
        resolve=ResolveOptions(direct={"local": local})))
    with pytest.raises(ResolutionError, match="local==1.0 needs python-sbom to build"):
        finishes(lambda: bootstrapper.run([Requirement("local")]))


# -- a source override vouches for the versions it gives a sha256 for ------------------------

def override_with_hash_for(overrides_dir, version):
    (overrides_dir / "app.yaml").write_text(
        "source:\n  url: https://example.org/app-${version}.tar.gz\n"
        f"  sha256:\n    \"{version}\": {'ab' * 32}\n")


def test_plan_passes_over_versions_the_source_override_gives_no_sha256_for(plan):
    override_with_hash_for(plan.root / "overrides", "1.0")
    result = plan({"app": {"2.0": Package(), "1.0": Package()}}, "app")
    app = planned(result, "app")
    assert app.candidate.version == Version("1.0")
    ((version, why),) = app.skipped
    assert version == Version("2.0") and "gives no sha256 for this version" in why.reason


def test_a_runs_resolution_passes_over_them_too(bootstrap):
    bootstrapper, builder = bootstrap.make({"app": {"2.0": Package(), "1.0": Package()},
                                            "lib": {"1.0": Package(requires_dist=["app"])}})
    bootstrap.overrides.mkdir(exist_ok=True)
    override_with_hash_for(bootstrap.overrides, "1.0")
    run = bootstrapper._new_run()
    resolution = run.closures._resolve([Requirement("lib")], run.services.finder, "sdist", (),
                                       None)
    assert resolution.pins["app"].version == Version("1.0")
    ((version, why),) = resolution.skipped["app"]
    assert version == Version("2.0") and why.reason.startswith(
        "its source cannot be had: the source override in ")

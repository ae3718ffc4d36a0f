"""A build's container smoke-tests the wheel it made when the wheel's install closure is at hand
as the build starts; the host takes only a pass from there, and tests anything else on its own."""

import dataclasses
import json
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from mirror_builder.build.builder import _smoke_result
from mirror_builder.build.request import (BuildRequest, BuildResult, FileRef, SmokePlan,
                                          SmokeResult)
from mirror_builder.engine.model import BuiltWheel
from mirror_builder.engine.smokeplan import closure_at_hand
from mirror_builder.sandbox.toplevel import top_level_modules
from test_bootstrap import TARGET, FakeBuilder, Package, bootstrap  # noqa: F401 (fixture)


def built(name, version, requires=(), status="built"):
    return BuiltWheel(name, Version(version), Path(f"/w/{name}-{version}-py3-none-any.whl"),
                      tuple(requires), status, 0.0, (), sha256=f"{name}{version}")


def done(*wheels):
    return {(w.name, w.version): w for w in wheels}


def names(closure):
    return [ref.name.split("-")[0] for ref in closure]


# -- which wheels a build's own smoke test installs ---------------------------------------------

def test_a_package_that_needs_nothing_has_an_empty_closure_at_hand():
    assert closure_at_hand("leaf", [], done(), TARGET.applies) == ()


def test_the_closure_follows_each_member_s_real_requirements():
    wheels = done(built("jinja2", "3.1.6", ["markupsafe>=2.0"]), built("markupsafe", "3.0.4"))
    assert names(closure_at_hand("flask", ["jinja2>=3.1"], wheels, TARGET.applies)) == \
        ["jinja2", "markupsafe"]


def test_a_member_not_built_yet_means_no_test_in_the_build_container():
    wheels = done(built("jinja2", "3.1.6", ["markupsafe>=2.0"]))
    assert closure_at_hand("flask", ["jinja2>=3.1"], wheels, TARGET.applies) is None


def test_only_a_version_the_requirement_accepts_will_do():
    wheels = done(built("flit-core", "3.12.0"), built("flit-core", "4.2.0"))
    (chosen,) = closure_at_hand("app", ["flit-core<4"], wheels, TARGET.applies)
    assert chosen.name == "flit-core-3.12.0-py3-none-any.whl"
    assert closure_at_hand("app", ["flit-core>5"], wheels, TARGET.applies) is None


def test_requirements_whose_markers_do_not_hold_for_the_target_are_left_out():
    wheels = done(built("tomli", "2.0.0"))
    requires = ["colorama; sys_platform == 'win32'", "tomli; python_version < '3.12'",
                "extra-only; extra == 'docs'"]
    assert names(closure_at_hand("app", requires, wheels, TARGET.applies)) == ["tomli"]


def test_a_member_s_extras_bring_their_own_requirements():
    wheels = done(built("httpx", "0.28.0", ["h2; extra == 'http2'"]), built("h2", "4.1.0"))
    assert names(closure_at_hand("app", ["httpx[http2]"], wheels, TARGET.applies)) == \
        ["h2", "httpx"]


def test_a_rejected_wheel_is_no_member():
    wheels = done(built("dep", "1.0", status="rejected"))
    assert closure_at_hand("app", ["dep"], wheels, TARGET.applies) is None


# -- what the host takes from the build container's report --------------------------------------

def request_with(imports=None) -> BuildRequest:
    class Image:
        tag = "localhost/test:1"

    class Runtime:
        image = Image()

    class Request:  # only what _smoke_result reads
        smoke = SmokePlan((), imports)
        runtime = Runtime()

    return Request()


def report(status="passed", imports=None, imported=("demo",), **changes):
    return {"status": status, "imports": imports if imports is not None else {"demo": None},
            "freeze": ["demo @ file:///out/dist/demo-1.0-py3-none-any.whl"],
            "imported": list(imported), "error": "", "seconds": 0.1, **changes}


def test_a_pass_is_taken_as_the_build_container_s():
    result = _smoke_result(report(), "demo-1.0-py3-none-any.whl", request_with())
    assert (result.status, result.container, result.imports) == ("passed", "build", {"demo": None})


@pytest.mark.parametrize("reported", [
    "passed", {"status": "passed"}, report(imports={"demo": 3}), report(freeze="demo"),
    report(imported="demo"), report(imports={1: None}),
], ids=["not a mapping", "missing fields", "an import's error not text", "freeze not a list",
        "imported not a list", "a module not named by text"])
def test_a_malformed_report_is_a_failure(reported):
    result = _smoke_result(reported, "demo-1.0-py3-none-any.whl", request_with())
    assert result is None or result.status == "failed"
    assert reported == "passed" or result.status == "failed"


def test_a_pass_that_imported_other_modules_than_asked_is_no_pass():
    assert _smoke_result(report(imports={"other": None}), "demo-1.0-py3-none-any.whl",
                         request_with()).status == "failed"
    assert _smoke_result(report(), "demo-1.0-py3-none-any.whl",
                         request_with(imports=("other",))).status == "failed"


def test_a_build_that_was_not_asked_to_test_reports_no_test():
    class Unasked:
        smoke = None

    assert _smoke_result(report(), "demo-1.0-py3-none-any.whl", Unasked()) is None


def test_a_build_result_with_its_smoke_test_survives_json():
    result = BuildResult(status="built", wheel=Path("/w/demo-1.0-py3-none-any.whl"),
                         backend_requires=(), missing=(), freeze="", log_path=Path("/l"),
                         command=("x",), started_at="", ended_at="", seconds=1.0,
                         container_seconds=1.0, timings={},
                         smoke=SmokeResult("demo-1.0-py3-none-any.whl", "passed",
                                           {"demo": None}, ("demo==1.0",), container="build"))
    assert BuildResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    forged = dict(result.to_dict(), smoke=dict(result.to_dict()["smoke"], container="elsewhere"))
    with pytest.raises(ValueError):
        BuildResult.from_dict(forged)


# -- a run: who tests what ----------------------------------------------------------------------

class SelfTestingBuilder(FakeBuilder):
    """Its build containers test their own wheels: a pass, unless the package is in fails."""

    def __init__(self, work_dir, fails=()):
        super().__init__(work_dir)
        self.in_build_fails = set(fails)

    def build(self, request):
        result = super().build(request)
        if result.status != "built" or request.smoke is None:
            return result
        passed = request.source.name not in self.in_build_fails
        # What the driver imports: the wheel's top-level modules (these fakes have none).
        modules = top_level_modules(result.wheel)
        return BuildResult(**{**result.__dict__, "smoke": SmokeResult(
            result.wheel.name, "passed" if passed else "failed",
            {m: None if passed else "ImportError: no" for m in modules},
            tuple(f"{ref.name.split('-')[0]}==x" for ref in request.smoke.closure),
            container="build")})


def read_record(out, name):
    (path,) = (out / "records" / name).glob("*.build.json")
    return json.loads(path.read_text())


def test_a_wheel_whose_closure_was_built_first_is_tested_in_its_build_container(bootstrap):
    """dep is app's build requirement and install requirement: built before app starts, it is
    app's closure, and app's container tests app."""
    runner, builder = bootstrap.make(
        {"app": {"1.0": Package(build_requires=["dep"], requires_dist=["dep"])},
         "dep": {"1.0": Package()}}, builder=SelfTestingBuilder(bootstrap.work))
    runner.run([Requirement("app")])
    plans = {r.source.name: r.smoke for r in builder.requests}
    assert names(plans["app"].closure) == ["dep"]
    assert "app-1.0-py3-none-any.whl" not in builder.smoke_tester.tested
    record = read_record(bootstrap.output, "app")
    assert record["smoke_test"]["container"] == "build"
    assert record["smoke_test"]["how"].startswith("in its build container")


class HandingOverBuilder(SelfTestingBuilder):
    """Its containers hand the wheel over before their smoke test ends: dep's test ends only
    when told to (or after 10 s)."""

    def __init__(self, work_dir):
        super().__init__(work_dir)
        self.dep_tested = threading.Event()
        self.events: list[str] = []

    def build(self, request):
        self.events.append(f"build {request.source.name}")
        result = super().build(request)
        if not isinstance(result.smoke, SmokeResult):
            return result
        later = Future()

        def test_ends():
            self.dep_tested.wait(10)
            self.events.append(f"tested {request.source.name}")
            later.set_result(result.smoke)

        if request.source.name == "dep":
            threading.Thread(target=test_ends).start()
        else:
            later.set_result(result.smoke)
        return dataclasses.replace(result, smoke=later)


def test_a_build_that_hands_its_wheel_over_lets_its_dependents_build_while_it_is_tested(bootstrap):
    """app waits for dep's wheel, not for dep's test in dep's container; dep is published with
    that test's pass once it ends."""
    from mirror_builder.engine.context import Options

    builder = HandingOverBuilder(bootstrap.work)
    runner, _ = bootstrap.make({"app": {"1.0": Package(build_requires=["dep"])},
                                "dep": {"1.0": Package()}}, builder=builder,
                               options=Options(jobs=2))
    threading.Timer(0.5, builder.dep_tested.set).start()
    runner.run([Requirement("app")])
    assert builder.events[:2] == ["build dep", "build app"]  # app built before dep's test ended
    assert builder.smoke_tester.tested == []
    assert read_record(bootstrap.output, "dep")["smoke_test"]["container"] == "build"


def test_the_slot_of_a_build_that_handed_its_wheel_over_is_held_until_its_test_ends(bootstrap):
    from mirror_builder.engine.context import Options

    builder = HandingOverBuilder(bootstrap.work)
    runner, _ = bootstrap.make({"app": {"1.0": Package(build_requires=["dep"])},
                                "dep": {"1.0": Package()}}, builder=builder,
                               options=Options(jobs=1))
    threading.Timer(0.3, builder.dep_tested.set).start()
    runner.run([Requirement("app")])
    assert builder.events[:3] == ["build dep", "tested dep", "build app"]


def test_a_failure_in_the_build_container_is_tested_again_on_its_own(bootstrap):
    runner, builder = bootstrap.make({"app": {"1.0": Package()}},
                                     builder=SelfTestingBuilder(bootstrap.work, fails={"app"}))
    runner.run([Requirement("app")])
    assert builder.smoke_tester.tested == ["app-1.0-py3-none-any.whl"]
    assert read_record(bootstrap.output, "app")["smoke_test"]["container"] == "smoke-test"


def test_a_wheel_whose_dependency_was_not_built_yet_is_tested_on_its_own(bootstrap):
    """app's install requirement is built beside it, not before: no closure at hand."""
    runner, builder = bootstrap.make(
        {"app": {"1.0": Package(requires_dist=["slow"])}, "slow": {"1.0": Package()}},
        builder=SelfTestingBuilder(bootstrap.work))
    runner.run([Requirement("app")])
    app = next(r for r in builder.requests if r.source.name == "app")
    if app.smoke is None:  # slow was still building when app's slot came
        assert "app-1.0-py3-none-any.whl" in builder.smoke_tester.tested
    else:
        assert names(app.smoke.closure) == ["slow"]
    assert read_record(bootstrap.output, "app")["smoke_test"]["status"] == "passed"


def test_no_test_in_the_build_container_when_the_overrides_turn_smoke_tests_off(bootstrap):
    bootstrap.overrides.mkdir(exist_ok=True)
    (bootstrap.overrides / "app.yaml").write_text("smoke_test: false\n")
    runner, builder = bootstrap.make({"app": {"1.0": Package()}},
                                     builder=SelfTestingBuilder(bootstrap.work))
    runner.run([Requirement("app")])
    assert [r.smoke for r in builder.requests] == [None]
    assert read_record(bootstrap.output, "app")["smoke_test"]["status"] == "skipped"


def test_no_test_in_the_build_container_when_the_stamp_renames_the_wheel(bootstrap):
    """A post-release rebuild number changes the version inside the wheel: what the build
    container tested would not be the wheel published."""
    bootstrap.overrides.mkdir(exist_ok=True)
    (bootstrap.overrides / "app.yaml").write_text('changelog:\n  "1.0":\n    - rebuilt\n')
    runner, builder = bootstrap.make({"app": {"1.0": Package()}}, numbering="post-release",
                                     builder=SelfTestingBuilder(bootstrap.work))
    runner.run([Requirement("app")])
    assert [r.smoke for r in builder.requests] == [None]
    assert builder.smoke_tester.tested == ["app-1.0.post1-py3-none-any.whl"]


def test_the_plan_travels_with_the_request_as_json(bootstrap):
    runner, builder = bootstrap.make(
        {"app": {"1.0": Package(build_requires=["dep"], requires_dist=["dep"])},
         "dep": {"1.0": Package()}}, builder=SelfTestingBuilder(bootstrap.work))
    runner.run([Requirement("app")])
    app = next(r for r in builder.requests if r.source.name == "app")
    assert isinstance(app.smoke.closure[0], FileRef)
    assert BuildRequest.from_dict(json.loads(json.dumps(app.to_dict()))) == app



def test_a_closure_once_at_hand_stays_so_and_the_plan_takes_what_is_built_then():
    from mirror_builder.engine.smokeplan import SelfTest

    built: list[str] = []
    asked = []

    def closure():
        asked.append(1)
        return tuple(FileRef(Path(f"/w/{n}-1.0-py3-none-any.whl"), n) for n in built) \
            if built else None

    test = SelfTest(closure, ("app",), generation=lambda: len(built))
    assert not test.at_hand() and test.plan() is None
    calls = len(asked)
    assert not test.at_hand() and len(asked) == calls  # nothing built since: not asked again
    built.append("lib")
    assert test.at_hand()
    calls = len(asked)
    assert test.at_hand() and len(asked) == calls  # at hand stays so
    plan = test.plan()
    assert names(plan.closure) == ["lib"] and plan.imports == ("app",)


class RecordingTester:
    """The publisher's executor: records which wheels it was asked to test; answers status."""

    def __init__(self, status):
        self.status = status
        self.tested = []

    def smoke_test(self, request):
        self.tested.extend(t.wheel.name for t in request.tests)
        return {t.wheel.name: SmokeResult(t.wheel.name, self.status) for t in request.tests}


class NoRecords:
    def write(self, record, log_path):
        pass

    def copy_statement(self, record, dest):
        pass


def publisher_for(tmp_path, tester):
    from mirror_builder.config.settings import BuildSettings
    from mirror_builder.index.publisher import Publisher
    from mirror_builder.index.wheelindex import WheelIndex

    return Publisher(index=WheelIndex(tmp_path / "out"), records=NoRecords(),
                     rejected=NoRecords(), executor=tester, target=TARGET,
                     limits=BuildSettings(), on_outcome=lambda outcome: None)


def staged_wheel(tmp_path, name, requires, tested):
    """name 1.0, staged with requires as its Requires-Dist and tested as its build container's
    test (a Future while it runs)."""
    from mirror_builder.index.publisher import Staged
    from mirror_builder.sandbox.imagenames import ImageRef
    from test_index import make_wheel

    wheel = make_wheel(tmp_path / "staged", f"{name}-1.0-py3-none-any.whl")
    log_path = tmp_path / f"{name}.log"
    log_path.write_text("log\n")
    return Staged(
        name=name, version="1.0", chain=(), wheel=wheel, record={}, requires_python=None,
        requires_dist=tuple(requires), log_path=log_path,
        image=ImageRef("localhost/test:1", "sha256:0", "base", "Containerfile", "0", "test"),
        imports=(name,), publish_source=lambda: None, tested=tested)


def test_a_wheel_still_tested_in_its_build_container_when_the_run_ends_is_decided_whole(tmp_path):
    """app needs dep, which waits for review: once app's build container has finished its test
    (which could not install dep), app is held with the run, not tested again and failed."""
    tester = RecordingTester("failed")
    publisher = publisher_for(tmp_path, tester)
    later = Future()
    publisher.submit(staged_wheel(tmp_path, "app", ["dep"], later))
    threading.Timer(0.3, lambda: later.set_result(None)).start()  # its test could not pass
    held = publisher.finish(hold=frozenset({"dep"}))
    assert [s.name for s in held] == ["app"] and tester.tested == []


def test_a_pass_in_a_build_container_counts_while_its_dependency_is_still_tested_in_its_own(
        tmp_path):
    """app's test passed in its build container with dep in its closure; dep's own test, in
    dep's build container, ends just after: app is published with its pass, not tested again
    because dep was not yet staged when app's pass came."""
    tester = RecordingTester("passed")
    publisher = publisher_for(tmp_path, tester)
    dep_test, app_test = Future(), Future()
    publisher.submit(staged_wheel(tmp_path, "dep", [], dep_test))
    publisher.submit(staged_wheel(tmp_path, "app", ["dep"], app_test))
    app_test.set_result(SmokeResult("app-1.0-py3-none-any.whl", "passed", {"app": None},
                                    container="build"))
    time.sleep(0.2)  # app's pass is taken up while dep's test still runs
    dep_test.set_result(SmokeResult("dep-1.0-py3-none-any.whl", "passed", {"dep": None},
                                    container="build"))
    publisher.finish()

    assert tester.tested == []
    assert (tmp_path / "out" / "files" / "app").is_dir()


def passed_in_build(name):
    return SmokeResult(f"{name}-1.0-py3-none-any.whl", "passed", {name: None}, container="build")


def test_a_pass_that_comes_before_the_run_stages_its_dependency_waits_for_it(tmp_path):
    """The run gives a waiting build container dep's wheel as soon as dep is built, before dep
    reaches the publisher: app's pass from there is kept until dep is staged, not thrown away
    for a test of its own, and app is published after dep."""
    tester = RecordingTester("passed")
    published = []
    publisher = publisher_for(tmp_path, tester)
    publisher.on_outcome = lambda outcome: published.append(outcome.staged.name)
    publisher.submit(staged_wheel(tmp_path, "app", ["dep"], passed_in_build("app")))
    assert published == []  # dep is neither staged nor in the index yet

    publisher.submit(staged_wheel(tmp_path, "dep", [], passed_in_build("dep")))
    publisher.finish()

    assert tester.tested == []
    assert published == ["dep", "app"]


def test_a_pass_whose_dependency_never_reaches_the_stage_is_tested_again_at_the_end(tmp_path):
    tester = RecordingTester("failed")
    publisher = publisher_for(tmp_path, tester)
    publisher.submit(staged_wheel(tmp_path, "app", ["dep"], passed_in_build("app")))
    publisher.finish()

    assert tester.tested == ["app-1.0-py3-none-any.whl"]
    assert not (tmp_path / "out" / "files" / "app").exists()


def test_a_pass_that_comes_while_its_dependency_is_being_published_is_not_tested_again(
        tmp_path):
    """dep passed in its build container and is being published (its record, the index) when
    app's pass comes, at the run's end: for that moment dep must still count as staged, or
    app's closure looks incomplete and app is tested again."""
    tester = RecordingTester("passed")
    publisher = publisher_for(tmp_path, tester)
    app_test, add = Future(), publisher.index.add

    def add_while_app_arrives(wheel, *args, **kwargs):
        if wheel.name.startswith("dep"):
            app_test.set_result(passed_in_build("app"))
            deadline = time.monotonic() + 5
            while "app==1.0" in publisher._awaited and time.monotonic() < deadline:
                time.sleep(0.01)  # until app's pass has been looked at
        return add(wheel, *args, **kwargs)

    publisher.index.add = add_while_app_arrives
    publisher.submit(staged_wheel(tmp_path, "app", ["dep"], app_test))
    publisher._finishing.set()  # the run's builds are done: nothing more is waited for
    publisher.submit(staged_wheel(tmp_path, "dep", [], passed_in_build("dep")))
    publisher.finish()

    assert tester.tested == []
    assert (tmp_path / "out" / "files" / "app").is_dir()

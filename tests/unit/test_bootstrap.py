"""The bootstrap's order of work, without podman or network: an in-memory index of real little
sdists and a builder that makes real little wheels, driven through the real Bootstrapper."""

import dataclasses
import gzip
import io
import shutil
import json
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from mirror_builder.engine.bootstrap import Bootstrapper

from mirror_builder.jobs.triggers import RebuildRequest
from mirror_builder.build.request import BuildResult
from mirror_builder.engine.context import BuildTarget, Options, Services
from mirror_builder.sandbox.imagenames import ImageRef
from mirror_builder.errors import BuildCycleError, BuildError, RebuildError
from mirror_builder.index.wheelindex import WheelIndex
from mirror_builder.cli.progress import QuietReporter
from mirror_builder.provenance.store import RecordStore
from mirror_builder.config.settings import load_settings
from mirror_builder.resolve.target import TargetEnvironment
from mirror_builder.resolve.pages import DistributionFile

TARGET = TargetEnvironment("test", {
    "implementation_name": "cpython", "implementation_version": "3.11.2", "os_name": "posix",
    "platform_machine": "x86_64", "platform_release": "", "platform_system": "Linux",
    "platform_version": "", "python_full_version": "3.11.2",
    "platform_python_implementation": "CPython", "python_version": "3.11", "sys_platform": "linux"})


@dataclass
class Package:
    build_requires: list[str] = field(default_factory=list)
    requires_dist: list[str] = field(default_factory=list)
    backend_requires: list[str] = field(default_factory=list)
    # what upstream metadata claims before the build (None: same as requires_dist)
    advertised: list[str] | None = None
    fails: bool = False


class FakeIndex:
    """Finder + fetch over {name: {version: Package}}; sdists are made on demand."""

    def __init__(self, root: Path, packages: dict[str, dict[str, Package]]) -> None:
        self.root = root
        self.packages = packages
        self.known = {}
        self.from_wheel = {}

    def project_files(self, name):
        versions = self.packages.get(canonicalize_name(name), {})
        return [DistributionFile(f"{name}-{v}.tar.gz", f"https://example.invalid/{name}-{v}.tar.gz",
                                 None) for v in versions]

    def dependencies(self, candidate):
        known = self.known.get((candidate.name, candidate.version))
        if known is not None:
            return list(known)
        package = self.packages[candidate.name][str(candidate.version)]
        return package.requires_dist if package.advertised is None else package.advertised

    def fetch(self, candidate):
        package = self.packages[candidate.name][str(candidate.version)]
        base = f"{candidate.name}-{candidate.version}"
        files = {
            "pyproject.toml": "[build-system]\nrequires = %s\nbuild-backend = 'fake'\n"
                              % json.dumps(package.build_requires),
            "fake.json": json.dumps({"requires_dist": package.requires_dist,
                                     "backend_requires": package.backend_requires,
                                     "fails": package.fails}),
        }
        path = self.root / "sdists" / f"{base}.tar.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        # Byte for byte the same every time, like a file on a real index.
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, \
                tarfile.open(fileobj=gz, mode="w") as tar:
            for name, text in files.items():
                data = text.encode()
                info = tarfile.TarInfo(f"{base}/{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return path


class FakeBuilder:
    """An Executor whose builds write a wheel whose METADATA says what fake.json says, and whose
    smoke tests are the FakeSmokeTester's."""

    def __init__(self, work_dir: Path, smoke_fails=()) -> None:
        self.builds: list[tuple[str, list[str]]] = []
        self.requests = []  # every BuildRequest, as the executor received it
        self.work_dir = work_dir
        self.smoke_tester = FakeSmokeTester(smoke_fails)

    def smoke_test(self, request):
        return self.smoke_tester.run(request.image, request.index, request.staged,
                                     request.tests, request.limits, request.log_path)

    def capacity(self):
        return None

    def workers_summary(self):
        return []

    def build(self, request):
        self.requests.append(request)
        work_dir = self.work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        spec = json.loads((request.source.tree / "fake.json").read_text())
        name, version = request.source.name, request.source.version
        env = [canonicalize_name(w.name.split("-")[0]) for w in request.env.wheels]
        self.builds.append((name, env))
        request.log_path.parent.mkdir(parents=True, exist_ok=True)
        request.log_path.write_text("fake build\n")
        if spec["fails"]:
            raise BuildError("the compiler said no", package=name, version=version,
                             chain=request.chain, log_path=str(request.log_path))
        missing = [r for r in spec["backend_requires"]
                   if canonicalize_name(Requirement(r).name) not in env]
        common = dict(backend_requires=tuple(spec["backend_requires"]), freeze="",
                      log_path=request.log_path, command=("fake",), started_at="", ended_at="",
                      seconds=0.0, container_seconds=0.0, timings={})
        if missing:
            return BuildResult(status="needs", wheel=None, missing=tuple(missing), **common)
        stem = f"{name.replace('-', '_')}-{version}"
        wheel = work_dir / f"{stem}-py3-none-any.whl"
        metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
            f"Requires-Dist: {r}\n" for r in spec["requires_dist"])
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(f"{stem}.dist-info/METADATA", metadata)
            zf.writestr(f"{stem}.dist-info/WHEEL", "Wheel-Version: 1.0\n")
            zf.writestr(f"{stem}.dist-info/RECORD", "")
        return BuildResult(status="built", wheel=wheel, missing=(), **common)


class FakeSmokeTester:
    """Passes every wheel whose name is not in fails; remembers what it was asked."""

    def __init__(self, fails=()) -> None:
        self.fails = set(fails)
        self.tested: list[str] = []

    def run(self, image, index_root, staged, tests, limits, log_path):
        from mirror_builder.build.request import SmokeResult

        results = {}
        for test in tests:
            self.tested.append(test.wheel.name)
            failed = test.wheel.name.split("-")[0] in self.fails
            results[test.wheel.name] = SmokeResult(
                test.wheel.name, "failed" if failed else "passed",
                error="import broken failed: ImportError: nope" if failed else "")
        return results


def fake_bootstrapper(settings, image, finder, builder, out: Path, options=None) -> Bootstrapper:
    """The real Bootstrapper over the fakes, publishing to out."""
    return Bootstrapper(Services(settings=settings, target=BuildTarget(TARGET, image),
                                 finder=finder, executor=builder, index=WheelIndex(out),
                                 reporter=QuietReporter()), options)


@pytest.fixture
def bootstrap(tmp_path):
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text("cache_dir: cache\npatches_dir: patches\noutput_dir: out\n"
                             "overrides_dir: overrides\n")
    settings = load_settings(settings_file)
    image = ImageRef("localhost/test:1", "sha256:0", "base", "Containerfile", "0", "test")

    def make(packages, numbering="build-tag", smoke_fails=(), builder=None, options=None,
             output=None, **settings_changes):
        run_settings = dataclasses.replace(settings, rebuild_numbering=numbering,
                                           **settings_changes)
        builder = builder or FakeBuilder(tmp_path / "fake-work", smoke_fails)
        bootstrapper = fake_bootstrapper(run_settings, image, FakeIndex(tmp_path, packages),
                                         builder, output or tmp_path / "out", options)
        return bootstrapper, builder

    def run(packages, *requirements, numbering="build-tag"):
        bootstrapper, builder = make(packages, numbering)
        report = bootstrapper.run([Requirement(r) for r in requirements])
        return report, builder

    run.make = make
    run.output = tmp_path / "out"
    run.work = tmp_path / "fake-work"
    run.overrides = tmp_path / "overrides"
    run.cache = tmp_path / "cache"
    return run


def order_of(report):
    return [w.name for w in report.wheels]


def test_build_dependencies_are_built_before_the_package_that_needs_them(bootstrap):
    report, _ = bootstrap({
        "app": {"1.0": Package(build_requires=["backend"], requires_dist=["lib"])},
        "backend": {"1.0": Package(build_requires=["tool"])},
        "tool": {"1.0": Package()},
        "lib": {"1.0": Package(build_requires=["tool"])},
    }, "app")
    order = order_of(report)
    assert order.index("tool") < order.index("backend") < order.index("app")
    assert set(order) == {"app", "backend", "tool", "lib"}
    assert order.count("tool") == 1  # built once, used by two build environments


def test_a_build_environment_holds_the_install_closure_of_its_build_requirements(bootstrap):
    _, builder = bootstrap({
        "app": {"1.0": Package(build_requires=["backend"])},
        "backend": {"1.0": Package(requires_dist=["helper"])},
        "helper": {"1.0": Package()},
    }, "app")
    assert sorted(dict(builder.builds)["app"]) == ["backend", "helper"]


def test_a_cycle_among_build_dependencies_is_an_error_that_names_the_cycle(bootstrap):
    with pytest.raises(BuildCycleError) as raised:
        bootstrap({
            "a": {"1.0": Package(build_requires=["b"])},
            "b": {"1.0": Package(build_requires=["a"])},
        }, "a")
    # Each step names its kind and the requirement behind it.
    assert "a==1.0 -[build-system: b]-> b==1.0 -[build-system: a]-> a==1.0" in str(raised.value)
    assert "bootstrap_stage" in str(raised.value)


def test_a_cycle_through_an_install_requirement_shows_every_package_in_it(bootstrap):
    # jupyterlab-pygments build-requires jupyterlab, which installs jupyterlab-pygments: the
    # message once hid the middle ("pygments==0.3 -> pygments==0.3").
    with pytest.raises(BuildCycleError) as raised:
        bootstrap({
            "pygments-ext": {"0.3": Package(build_requires=["lab"])},
            "lab": {"4.0": Package(requires_dist=["pygments-ext"])},
        }, "pygments-ext")
    assert "pygments-ext==0.3 -[build-system: lab]-> lab==4.0 -[install: pygments-ext]-> " \
           "pygments-ext==0.3" in str(raised.value)


def test_a_cycle_among_install_dependencies_is_fine(bootstrap):
    report, _ = bootstrap({
        "a": {"1.0": Package(requires_dist=["b"])},
        "b": {"1.0": Package(requires_dist=["a"])},
    }, "a")
    assert sorted(order_of(report)) == ["a", "b"]


def test_requirements_the_backend_asks_for_are_built_and_then_the_package_is_built_again(bootstrap):
    report, builder = bootstrap({
        "app": {"1.0": Package(build_requires=["backend"], backend_requires=["plugin>=1"])},
        "backend": {"1.0": Package()},
        "plugin": {"1.0": Package()},
    }, "app")
    assert [b for b in builder.builds if b[0] == "app"] == [("app", ["backend"]),
                                                          ("app", ["backend", "plugin"])]
    kinds = {(e.parent, e.child, e.kind) for e in report.edges}
    assert ("app==1.0", "plugin==1.0", "build-backend") in kinds
    assert ("app==1.0", "backend==1.0", "build-system") in kinds


def test_dependencies_that_only_the_built_wheel_reveals_are_bootstrapped_too(bootstrap):
    report, _ = bootstrap({
        "app": {"1.0": Package(requires_dist=["surprise"], advertised=[])},
        "surprise": {"1.0": Package()},
    }, "app")
    assert order_of(report) == ["app", "surprise"]


def test_a_failed_build_names_the_chain_and_keeps_what_was_built(bootstrap):
    with pytest.raises(BuildError) as raised:
        bootstrap({
            "app": {"1.0": Package(build_requires=["tool"], requires_dist=["broken"])},
            "tool": {"1.0": Package()},
            "broken": {"1.0": Package(build_requires=["tool"], fails=True)},
        }, "app")
    message = str(raised.value)
    assert message.startswith("broken==1.0: the compiler said no")
    assert "required by: app==1.0" in message
    published = sorted(p.name for p in (bootstrap.output / "files").glob("*/*.whl"))
    assert published == ["app-1.0-py3-none-any.whl", "tool-1.0-py3-none-any.whl"]
    order = json.loads((bootstrap.output / "build-order.json").read_text())
    assert [e["name"] for e in order] == ["tool", "app"]


def test_a_second_run_reuses_every_wheel_already_in_the_index(bootstrap):
    packages = {"app": {"1.0": Package(build_requires=["tool"])}, "tool": {"1.0": Package()}}
    bootstrap(packages, "app")
    report, builder = bootstrap(packages, "app")
    assert builder.builds == []
    assert {w.status for w in report.wheels} == {"reused"}


def wheels_of(output, project):
    return sorted(p.name for p in (output / "files" / project).glob("*.whl"))


def test_a_changelog_entry_makes_the_next_bootstrap_build_a_numbered_rebuild(bootstrap):
    packages = {"app": {"1.0": Package()}}
    bootstrap(packages, "app")
    bootstrap.overrides.mkdir()
    (bootstrap.overrides / "app.yaml").write_text("changelog:\n  '1.0': [built with -O2]\n")
    report, builder = bootstrap(packages, "app")
    assert [w.status for w in report.wheels] == ["built"]
    assert wheels_of(bootstrap.output, "app") == ["app-1.0-1-py3-none-any.whl",
                                                  "app-1.0-py3-none-any.whl"]
    _, builder = bootstrap(packages, "app")
    assert builder.builds == []  # number 1 satisfies the one changelog entry


def test_a_rebuild_takes_the_next_number_and_keeps_the_earlier_wheel(bootstrap):
    packages = {"app": {"1.0": Package(build_requires=["tool"])}, "tool": {"1.0": Package()}}
    bootstrap(packages, "app")
    first = (bootstrap.output / "files" / "app" / "app-1.0-py3-none-any.whl").read_bytes()
    for expected in (1, 2):
        pipeline, builder = bootstrap.make(packages)
        wheel = pipeline.rebuild("app", Version("1.0"), RebuildRequest(reason="test"))
        assert wheel.path.name == f"app-1.0-{expected}-py3-none-any.whl"
        assert builder.builds == [("app", ["tool"])]  # tool came from our index, not rebuilt
    assert (bootstrap.output / "files" / "app" / "app-1.0-py3-none-any.whl").read_bytes() == first


def test_a_rebuild_names_a_build_dependency_our_index_lacks(bootstrap):
    packages = {"app": {"1.0": Package(build_requires=["tool"])}, "tool": {"1.0": Package()}}
    bootstrap(packages, "app")
    for folder in ("files", "simple", "records"):  # tool is pruned from the index
        shutil.rmtree(bootstrap.output / folder / "tool")
    pipeline, _ = bootstrap.make(packages)
    with pytest.raises(RebuildError, match=r"app==1.0: our index cannot provide the build-system "
                                           r"requirements \(tool\).*--bootstrap-missing"):
        pipeline.rebuild("app", Version("1.0"), RebuildRequest(reason="test"))
    # (Without the machine's build cache, which still has tool's wheel: test_build_cache.py.)
    pipeline, builder = bootstrap.make(packages, options=Options(build_cache=False))
    pipeline.rebuild("app", Version("1.0"), RebuildRequest(reason="test", bootstrap_missing=True))
    assert [b[0] for b in builder.builds] == ["tool", "app"]


def test_a_rebuild_uses_the_archived_sdist(bootstrap):
    packages = {"app": {"1.0": Package()}}
    bootstrap(packages, "app")
    archived = bootstrap.output / "sources" / "files" / "app" / "app-1.0.tar.gz"
    assert archived.is_file()
    packages["app"]["1.0"] = Package(fails=True)  # upstream's copy would not build
    pipeline, builder = bootstrap.make(packages)
    pipeline.rebuild("app", Version("1.0"), RebuildRequest(reason="test"))
    assert builder.builds == [("app", [])]


def test_a_post_release_rebuild_is_refused_while_a_wheel_pins_the_exact_version(bootstrap):
    packages = {"app": {"1.0": Package(requires_dist=["lib==1.0"])}, "lib": {"1.0": Package()}}
    bootstrap(packages, "app", numbering="post-release")
    pipeline, _ = bootstrap.make(packages, numbering="post-release")
    with pytest.raises(RebuildError, match=r"lib==1.0: a post-release rebuild would be 1.0.post1.*"
                                           r"app-1.0-py3-none-any.whl requires lib==1.0"):
        pipeline.rebuild("lib", Version("1.0"), RebuildRequest(reason="test"))
    pipeline, _ = bootstrap.make(packages, numbering="post-release")
    wheel = pipeline.rebuild("lib", Version("1.0"), RebuildRequest(reason="test", force=True))
    assert wheel.path.name == "lib-1.0.post1-py3-none-any.whl"  # a refusal takes no number


NEW_FILE_PATCH = """--- /dev/null
+++ b/patched.txt
@@ -0,0 +1 @@
+patched
"""


def test_a_changed_patch_rebuilds_that_package_and_its_build_dependents_only(bootstrap, tmp_path):
    packages = {"lib": {"1.0": Package()},
                "app": {"1.0": Package(requires_dist=["lib"])},           # installs with lib
                "compiled": {"1.0": Package(build_requires=["lib"])}}     # builds with lib
    bootstrap(packages, "app", "compiled")
    patch = tmp_path / "patches" / "lib" / "0001-add-a-file.patch"
    patch.parent.mkdir(parents=True)
    patch.write_text(NEW_FILE_PATCH)

    report, builder = bootstrap(packages, "app", "compiled")

    assert sorted(name for name, _ in builder.builds) == ["compiled", "lib"]
    status = {w.name: (w.status, w.path.name) for w in report.wheels}
    assert status["lib"] == ("built", "lib-1.0-1-py3-none-any.whl")
    assert status["compiled"] == ("built", "compiled-1.0-1-py3-none-any.whl")
    assert status["app"] == ("reused", "app-1.0-py3-none-any.whl")
    _, builder = bootstrap(packages, "app", "compiled")
    assert builder.builds == []  # and then nothing has changed any more


def test_a_new_upstream_release_of_a_build_tool_does_not_rebuild_what_was_built_with_it(bootstrap):
    packages = {"app": {"1.0": Package(build_requires=["tool"])}, "tool": {"1.0": Package()}}
    bootstrap(packages, "app")
    packages["tool"]["2.0"] = Package()
    report, builder = bootstrap(packages, "app")
    assert builder.builds == []
    assert {w.pin: w.status for w in report.wheels} == {"tool==1.0": "reused", "app==1.0": "reused"}


def test_every_record_carries_its_build_key(bootstrap):
    bootstrap({"app": {"1.0": Package(build_requires=["tool"])}, "tool": {"1.0": Package()}}, "app")
    keys = [json.loads(p.read_text())["build_key"]
            for p in (bootstrap.output / "records").glob("*/*.build.json")]
    assert len(keys) == 2 and all(len(k) == 64 for k in keys) and keys[0] != keys[1]


# -- smoke tests before publishing -----------------------------------------------------------------
def test_every_built_wheel_is_smoke_tested_before_it_is_in_the_index(bootstrap):
    bootstrapper, _ = bootstrap.make({
        "app": {"1.0": Package(build_requires=["tool"], requires_dist=["lib"])},
        "tool": {"1.0": Package()},
        "lib": {"1.0": Package(build_requires=["tool"])},
    })
    bootstrapper.run([Requirement("app")])
    tested = {name.split("-")[0] for name in bootstrapper.services.executor.smoke_tester.tested}
    assert tested == {"app", "tool", "lib"}
    index = WheelIndex(bootstrap.output)
    assert {p for p in index.projects()} == {"app", "tool", "lib"}
    record = RecordStore(bootstrap.output).for_version("app", Version("1.0"))[0]
    assert record["smoke_test"]["status"] == "passed"


def test_a_wheel_that_fails_its_smoke_test_stays_out_and_the_run_names_it(bootstrap):
    from mirror_builder.engine.model import BootstrapFailed

    bootstrapper, _ = bootstrap.make({
        "app": {"1.0": Package(build_requires=["tool"])},
        "broken": {"1.0": Package(build_requires=["tool"])},
        "tool": {"1.0": Package()},
    }, smoke_fails={"broken"})
    with pytest.raises(BootstrapFailed) as caught:
        bootstrapper.run([Requirement("app"), Requirement("broken")])
    assert "broken==1.0: kept out of the index: import broken failed" in str(caught.value)
    index = WheelIndex(bootstrap.output)
    assert index.entries("broken") == [] and index.entries("app")
    (rejected,) = (bootstrap.output / "rejected" / "records" / "broken").glob("*.build.json")
    assert json.loads(rejected.read_text())["smoke_test"]["status"] == "failed"


def test_a_wheel_that_needs_a_rejected_wheel_is_held_back_with_the_reason(bootstrap):
    from mirror_builder.engine.model import BootstrapFailed

    bootstrapper, _ = bootstrap.make({
        "app": {"1.0": Package(build_requires=["tool"], requires_dist=["broken"])},
        "broken": {"1.0": Package(build_requires=["tool"])},
        "tool": {"1.0": Package()},
    }, smoke_fails={"broken"})
    with pytest.raises(BootstrapFailed) as caught:
        bootstrapper.run([Requirement("app")])
    assert "app==1.0: kept out of the index: held back: it requires broken (failed its smoke " \
           "test" in str(caught.value)
    assert WheelIndex(bootstrap.output).entries("app") == []
    assert WheelIndex(bootstrap.output).entries("tool")


def test_wheels_that_require_each_other_are_both_published(bootstrap):
    bootstrapper, _ = bootstrap.make({
        "a": {"1.0": Package(build_requires=["tool"], requires_dist=["b"])},
        "b": {"1.0": Package(build_requires=["tool"], requires_dist=["a"])},
        "tool": {"1.0": Package()},
    })
    bootstrapper.run([Requirement("a")])
    index = WheelIndex(bootstrap.output)
    assert index.entries("a") and index.entries("b")


# -- the carry gate and build jobs (issue 9) -------------------------------------------------------
# A Bootstrapper like the fixture's, with what `update` gives it: a review queue, a job policy,
# and settings that may name allow and deny lists.
BASE_SETTINGS = ("cache_dir: cache\npatches_dir: patches\noutput_dir: out\n"
                 "overrides_dir: overrides\n")


def make_bootstrapper(root, packages, *, settings_yaml="", review=None, job_policy=None,
                      smoke_fails=(), numbering="build-tag"):
    """(Bootstrapper, FakeBuilder) over FakeIndex(root, packages), publishing to root/out, with
    root/settings.yaml as the fixture writes it plus settings_yaml."""
    settings_file = root / "settings.yaml"
    settings_file.write_text(BASE_SETTINGS + settings_yaml)
    settings = dataclasses.replace(load_settings(settings_file), rebuild_numbering=numbering)
    image = ImageRef("localhost/test:1", "sha256:0", "base", "Containerfile", "0", "test")
    builder = FakeBuilder(root / "fake-work", smoke_fails)
    bootstrapper = fake_bootstrapper(settings, image, FakeIndex(root, packages), builder,
                                     root / "out", Options(job_policy=job_policy, review=review))
    return bootstrapper, builder


@pytest.fixture
def gate(tmp_path):
    """make(packages, review=True, requested=("app",)): a Bootstrapper whose jobs go through the
    review queue (gate.queue) as update's do, logged in gate.jobs; review=False is a bootstrap."""
    from mirror_builder.jobs.triggers import JobPolicy
    from mirror_builder.jobs.log import JobLog
    from mirror_builder.jobs.review import ReviewQueue

    out = tmp_path / "out"

    def make(packages, *, review=True, requested=("app",), trigger="upstream-release",
             detail="new upstream release", settings_yaml="", smoke_fails=()):
        policy = JobPolicy(log=JobLog(out), trigger=trigger, detail=detail,
                           requested=frozenset(canonicalize_name(n) for n in requested))
        return make_bootstrapper(tmp_path, packages, settings_yaml=settings_yaml,
                                 review=ReviewQueue(out) if review else None, job_policy=policy,
                                 smoke_fails=smoke_fails)

    make.root = tmp_path
    make.output = out
    make.queue = ReviewQueue(out)
    make.jobs = JobLog(out)
    return make


def needs_six():
    return {"app": {"2.0": Package(requires_dist=["six>=1"])}, "six": {"1.17.0": Package()}}


def published(output):
    return sorted(p.name for p in (output / "files").glob("*/*.whl"))


def test_under_review_a_package_we_do_not_carry_stops_the_job_before_anything_is_built(gate):
    from mirror_builder.jobs.review import NeedsReview

    bootstrapper, builder = gate(needs_six())
    with pytest.raises(NeedsReview) as raised:
        bootstrapper.run([Requirement("app==2.0")])

    assert set(raised.value.needed) == {"six"}
    request = raised.value.needed["six"]
    assert (request.by, request.requirement, request.chain) == ("app==2.0", "six>=1", ("app==2.0",))
    assert "waiting for review of six" in str(raised.value)
    assert "required by: app==2.0" in str(raised.value)
    assert builder.builds == []
    assert published(gate.output) == []


def test_a_package_approved_in_review_is_built_by_the_next_run_as_an_approved_job(gate):
    from mirror_builder.jobs.review import NeedsReview

    bootstrapper, _ = gate(needs_six())
    with pytest.raises(NeedsReview):
        bootstrapper.run([Requirement("app==2.0")])
    gate.queue.decide("six", "approved", "alice", note="widely used")

    bootstrapper, builder = gate(needs_six())
    bootstrapper.run([Requirement("app==2.0")])

    assert sorted(name for name, _ in builder.builds) == ["app", "six"]
    jobs = {r.job.package: r for r in gate.jobs.read()}
    assert jobs["six"].job.trigger == "approved"
    assert jobs["six"].job.detail == "needed by app==2.0; approved with new upstream release"
    assert jobs["six"].result == "built"
    assert jobs["app"].job.trigger == "upstream-release"  # the job's own trigger


def test_a_package_rejected_in_review_is_refused_naming_who_rejected_it(gate):
    from mirror_builder.engine.model import CarryRefused

    gate.queue.decide("six", "rejected", "alice", note="unmaintained")
    bootstrapper, builder = gate(needs_six())
    with pytest.raises(CarryRefused) as raised:
        bootstrapper.run([Requirement("app==2.0")])
    assert str(raised.value) == ("six==1.17.0: rejected in review by alice (unmaintained) "
                                 "(required by: app==2.0)")
    assert builder.builds == []


def test_a_package_already_in_the_index_needs_no_review(gate):
    bootstrapper, _ = gate({"six": {"1.17.0": Package()}}, review=False, requested=("six",))
    bootstrapper.run([Requirement("six")])

    bootstrapper, builder = gate(needs_six())
    report = bootstrapper.run([Requirement("app==2.0")])
    assert builder.builds == [("app", [])]
    assert {w.name: w.status for w in report.wheels} == {"app": "built", "six": "reused"}
    assert gate.queue.entries() == []


def test_without_a_review_queue_a_bootstrap_builds_the_whole_tree_and_nothing_waits(gate):
    bootstrapper, builder = gate(needs_six(), review=False)
    bootstrapper.run([Requirement("app==2.0")])
    assert sorted(name for name, _ in builder.builds) == ["app", "six"]
    assert not (gate.output / "review").exists()


@pytest.mark.parametrize("app", [Package(requires_dist=["six"]), Package(build_requires=["six"])],
                         ids=["install-dependency", "build-dependency"])
@pytest.mark.parametrize("review", [False, True], ids=["bootstrap", "update"])
def test_the_deny_list_refuses_a_package_in_any_resolution_naming_the_file_and_line(
        gate, app, review):
    from mirror_builder.engine.model import CarryRefused

    deny = gate.root / "deny.txt"
    deny.write_text("# never carried\nsix  # see CVE-0000\n")
    bootstrapper, builder = gate({"app": {"2.0": app}, "six": {"1.17.0": Package()}},
                                 review=review, settings_yaml=f"carry: {{deny_list: {deny}}}\n")
    with pytest.raises(CarryRefused) as raised:
        bootstrapper.run([Requirement("app==2.0")])
    assert str(raised.value) == (f"six==1.17.0: six is on the deny list ({deny}:2), so it cannot "
                                 f"be built (required by: app==2.0)")
    assert "six" not in [name for name, _ in builder.builds]
    assert published(gate.output) == []


def test_the_deny_list_refuses_a_package_already_in_the_index_when_a_rebuild_needs_it(gate):
    from mirror_builder.engine.model import CarryRefused

    packages = {"app": {"2.0": Package(build_requires=["six"])}, "six": {"1.17.0": Package()}}
    gate(packages, review=False)[0].run([Requirement("app==2.0")])
    deny = gate.root / "deny.txt"
    deny.write_text("six\n")
    bootstrapper, builder = gate(packages, review=False,
                                 settings_yaml=f"carry: {{deny_list: {deny}}}\n")
    with pytest.raises(CarryRefused, match=rf"six is on the deny list \({deny}:1\)"):
        bootstrapper.rebuild("app", Version("2.0"), RebuildRequest(reason="test"))
    assert builder.builds == []


def test_the_deny_list_refuses_the_requested_package_itself(gate):
    from mirror_builder.engine.model import CarryRefused

    deny = gate.root / "deny.txt"
    deny.write_text("app\n")
    bootstrapper, builder = gate(needs_six(), review=False,
                                 settings_yaml=f"carry: {{deny_list: {deny}}}\n")
    with pytest.raises(CarryRefused, match=rf"^app==2.0: app is on the deny list \({deny}:1\)"):
        bootstrapper.run([Requirement("app==2.0")])
    assert builder.builds == []


def test_the_allow_list_refuses_a_package_it_does_not_name(gate):
    from mirror_builder.engine.model import CarryRefused

    allow = gate.root / "allow.txt"
    allow.write_text("app\n")
    bootstrapper, builder = gate(needs_six(), review=False,
                                 settings_yaml=f"carry: {{allow_list: {allow}}}\n")
    with pytest.raises(CarryRefused) as raised:
        bootstrapper.run([Requirement("app==2.0")])
    assert str(raised.value) == (f"six==1.17.0: six is not on the allow list ({allow}), so it "
                                 f"cannot be built (required by: app==2.0)")
    assert builder.builds == []

    allow.write_text("app\nsix\n")
    bootstrapper, builder = gate(needs_six(), review=False,
                                 settings_yaml=f"carry: {{allow_list: {allow}}}\n")
    bootstrapper.run([Requirement("app==2.0")])
    assert sorted(name for name, _ in builder.builds) == ["app", "six"]


# -- every build is a job, logged in OUTPUT/jobs/history.jsonl -------------------------------------
def test_each_build_appends_one_built_job_to_the_history_with_its_wheel_and_log(gate):
    from mirror_builder.provenance.stamp import read_embedded_record

    bootstrapper, _ = gate({"app": {"2.0": Package(build_requires=["tool"])},
                            "tool": {"1.0": Package()}}, review=False, trigger="approved",
                           detail="bootstrap app==2.0 (run by alice)")
    bootstrapper.run([Requirement("app==2.0")])

    history = sorted(gate.jobs.read(), key=lambda r: r.job.package)
    assert [(r.job.package, r.job.version, r.result) for r in history] == [
        ("app", "2.0", "built"), ("tool", "1.0", "built")]
    records = RecordStore(gate.output)
    for result in history:
        assert result.job.target == TARGET.name
        assert result.rebuild_number == 0
        assert result.wheel == f"{result.job.package}-{result.job.version}-py3-none-any.whl"
        # Named relative to the output, so a moved output keeps its logs.
        assert gate.jobs.log_file(result) == records.log_path(result.job.package, result.wheel)
        assert not Path(result.log_path).is_absolute()
        assert gate.jobs.log_file(result).is_file()
        beside = records.read(result.job.package, result.wheel)["job"]
        inside = read_embedded_record(
            gate.output / "files" / result.job.package / result.wheel)["job"]
        assert beside == inside
        assert (beside["id"], beside["trigger"], beside["detail"], beside["started_at"]) == (
            result.job.id, result.job.trigger, result.job.detail, result.job.started_at)
    app, tool = history[0].job, history[1].job
    assert (app.trigger, app.detail) == ("approved", "bootstrap app==2.0 (run by alice)")
    assert (tool.trigger, tool.detail) == (
        "approved", "needed by app==2.0; approved with bootstrap app==2.0 (run by alice)")


def test_a_reused_wheel_is_no_job(gate):
    packages = {"app": {"2.0": Package()}}
    gate(packages, review=False)[0].run([Requirement("app==2.0")])
    gate(packages, review=False)[0].run([Requirement("app==2.0")])
    assert len(gate.jobs.read()) == 1


def test_a_failed_build_is_a_failed_job_with_the_message_and_its_log(gate):
    bootstrapper, _ = gate({"app": {"2.0": Package(fails=True)}}, review=False)
    with pytest.raises(BuildError):
        bootstrapper.run([Requirement("app==2.0")])
    (result,) = gate.jobs.read()
    assert (result.job.package, result.result, result.wheel) == ("app", "failed", None)
    assert result.message == "the compiler said no"
    assert gate.jobs.log_file(result) == gate.output / "logs" / "app-2.0.log"


def test_a_job_that_fails_because_a_build_dependency_failed_names_the_dependency(gate):
    bootstrapper, _ = gate({"app": {"2.0": Package(build_requires=["tool"])},
                            "tool": {"1.0": Package(fails=True)}}, review=False)
    with pytest.raises(BuildError):
        bootstrapper.run([Requirement("app==2.0")])
    results = {r.job.package: r for r in gate.jobs.read()}
    assert results["tool"].message == "the compiler said no"
    assert results["app"].result == "failed"
    assert "tool==1.0" in results["app"].message


def test_a_wheel_that_fails_its_smoke_test_is_a_smoke_failed_job(gate):
    bootstrapper, _ = gate({"app": {"2.0": Package()}}, review=False, smoke_fails={"app"})
    with pytest.raises(Exception, match="kept out of the index"):
        bootstrapper.run([Requirement("app==2.0")])
    (result,) = gate.jobs.read()
    assert (result.result, result.wheel) == ("smoke-failed", "app-2.0-py3-none-any.whl")
    assert "import broken failed" in result.message
    rejected = gate.output / "rejected" / "records" / "app"
    assert gate.jobs.log_file(result) == rejected / "app-2.0-py3-none-any.whl.log"
    record = json.loads((rejected / "app-2.0-py3-none-any.whl.build.json").read_text())
    assert (record["job"]["id"], record["job"]["trigger"]) == (result.job.id, result.job.trigger)


@pytest.mark.parametrize("request_, trigger, detail", [
    (RebuildRequest(reason="CVE-2025-1 in the vendored zlib"), "rebuild",
     "CVE-2025-1 in the vendored zlib"),
    (RebuildRequest(reason="its overrides changed", trigger="config-change"), "config-change",
     "its overrides changed"),
], ids=["rebuild", "config-change"])
def test_a_rebuild_is_a_job_with_the_rebuild_trigger_and_number(gate, request_, trigger, detail):
    from mirror_builder.provenance.stamp import read_embedded_record

    packages = {"app": {"2.0": Package()}}
    gate(packages, review=False)[0].run([Requirement("app==2.0")])
    bootstrapper, _ = gate(packages, review=False)
    wheel = bootstrapper.rebuild("app", Version("2.0"), request_)

    first, rebuilt = gate.jobs.read()
    assert first.job.trigger == "upstream-release"
    assert (rebuilt.job.trigger, rebuilt.job.detail) == (trigger, detail)
    assert (rebuilt.result, rebuilt.rebuild_number, rebuilt.wheel) == (
        "built", 1, "app-2.0-1-py3-none-any.whl")
    assert rebuilt.job.id != first.job.id
    embedded = read_embedded_record(wheel.path)["job"]
    assert (embedded["id"], embedded["trigger"]) == (rebuilt.job.id, trigger)


def test_a_wheel_that_cannot_be_written_into_the_index_is_that_packages_failure(bootstrap, monkeypatch):
    import errno

    from mirror_builder.engine.model import BootstrapFailed

    bootstrapper, _ = bootstrap.make({
        "app": {"1.0": Package(build_requires=["tool"])},
        "tool": {"1.0": Package()},
    })
    real_add = WheelIndex.add

    def full_disk(self, file, requires_python=None):
        if file.name.startswith("app-"):
            raise OSError(errno.ENOSPC, "No space left on device", str(self.files_dir / "app" / ".x.part"))
        return real_add(self, file, requires_python)

    monkeypatch.setattr(WheelIndex, "add", full_disk)
    with pytest.raises(BootstrapFailed) as caught:
        bootstrapper.run([Requirement("app")])
    assert "app==1.0: kept out of the index: could not write to" in str(caught.value)
    assert "No space left on device; nothing half-written was kept" in str(caught.value)
    assert WheelIndex(bootstrap.output).entries("tool")


def test_a_wheel_waits_for_the_version_of_a_dependency_it_requires_not_just_the_project(tmp_path):
    """httpx2 2.16.2 requires httpcore2==2.16.2; httpcore2 2.16.0 in the index is no use to it."""
    from mirror_builder.index.publisher import Publisher, Staged
    from mirror_builder.config.settings import BuildSettings

    index = WheelIndex(tmp_path / "out")
    from test_index import make_wheel
    index.add(make_wheel(tmp_path / "built", "httpcore2-2.16.0-py3-none-any.whl"))
    tested = []

    class Tester:
        def smoke_test(self, request):
            from mirror_builder.build.request import SmokeResult
            tested.extend(t.wheel.name for t in request.tests)
            return {t.wheel.name: SmokeResult(t.wheel.name, "passed") for t in request.tests}

    image = ImageRef("localhost/test:1", "sha256:0", "base", "Containerfile", "0", "test")

    def staged(name, version, requires=()):
        wheel = make_wheel(tmp_path / "staged", f"{name}-{version}-py3-none-any.whl")
        log_path = tmp_path / "logs" / f"{name}.log"
        log_path.parent.mkdir(exist_ok=True)
        log_path.write_text("log\n")
        return Staged(name=name, version=version, chain=(), wheel=wheel, record={"name": name,
                      "wheel": wheel.name, "build_env": {"freeze": []}}, requires_python=None,
                      requires_dist=tuple(requires), log_path=log_path, image=image,
                      imports=(name,), publish_source=lambda: None)

    class Records:  # what is written beside the index is not the point here
        def write(self, record, log_path):
            pass

        def copy_statement(self, record, dest):
            pass

    publisher = Publisher(index=index, records=Records(), rejected=Records(), executor=Tester(),
                          target=TARGET, limits=BuildSettings(), on_outcome=lambda outcome: None)
    publisher._pending.append(staged("httpx2", "2.16.2", ["httpcore2==2.16.2"]))
    assert publisher._take_ready() == []  # only 2.16.0 is in the index
    publisher._pending.append(staged("httpcore2", "2.16.2"))
    assert len(publisher._take_ready()) == 2  # tested together, in one container start
    publisher.finish()
    assert sorted(tested) == ["httpcore2-2.16.2-py3-none-any.whl", "httpx2-2.16.2-py3-none-any.whl"]
    assert index.entries("httpx2")


def test_a_wheel_is_tested_while_its_dependency_still_is_and_published_only_after_it(tmp_path):
    """app needs dep: app's test need not wait for dep's, but the index gets app only once
    dep is in it; and when dep then fails, app is held back although it passed."""
    import threading
    import time

    from mirror_builder.build.request import SmokeResult
    from mirror_builder.config.settings import BuildSettings
    from mirror_builder.index import publisher as publishing
    from mirror_builder.index.publisher import Publisher, Staged
    from test_index import make_wheel

    index = WheelIndex(tmp_path / "out")
    image = ImageRef("localhost/test:1", "sha256:0", "base", "Containerfile", "0", "test")
    dep_may_finish, app_tested = threading.Event(), threading.Event()
    outcomes = []

    class Tester:
        def smoke_test(self, request):
            names = [t.wheel.name.split("-")[0] for t in request.tests]
            if names == ["dep"]:
                assert dep_may_finish.wait(10)
                return {t.wheel.name: SmokeResult(t.wheel.name, "failed", error="import dep failed")
                        for t in request.tests}
            app_tested.set()
            return {t.wheel.name: SmokeResult(t.wheel.name, "passed") for t in request.tests}

    class Records:
        def write(self, record, log_path):
            pass

        def copy_statement(self, record, dest):
            pass

    def staged(name, requires=()):
        wheel = make_wheel(tmp_path / "staged", f"{name}-1.0-py3-none-any.whl")
        log_path = tmp_path / "logs" / f"{name}.log"
        log_path.parent.mkdir(exist_ok=True)
        log_path.write_text("log\n")
        return Staged(name=name, version="1.0", chain=(), wheel=wheel, record={
            "name": name, "wheel": wheel.name, "build_env": {"freeze": []}}, requires_python=None,
            requires_dist=tuple(requires), log_path=log_path, image=image, imports=(name,),
            publish_source=lambda: None)

    publisher = Publisher(index=index, records=Records(), rejected=Records(), executor=Tester(),
                          target=TARGET, limits=BuildSettings(), on_outcome=outcomes.append)
    old_gather, publishing.GATHER_SECONDS = publishing.GATHER_SECONDS, 0.0
    try:
        publisher.submit(staged("dep"))
        time.sleep(0.3)  # dep's test is under way
        publisher.submit(staged("app", ["dep"]))
        assert app_tested.wait(10)
        time.sleep(0.2)
        assert index.entries("app") == []  # passed, but dep is not in the index yet
        dep_may_finish.set()
        publisher.finish()
    finally:
        publishing.GATHER_SECONDS = old_gather
    by_name = {o.staged.name: o for o in outcomes}
    assert by_name["dep"].published is None and by_name["app"].published is None
    assert by_name["app"].result.error == \
        "held back: it requires dep (failed its smoke test: import dep failed)"
    assert index.entries("app") == [] and index.entries("dep") == []


def test_the_executor_gets_each_file_by_its_content_and_a_request_that_survives_json(bootstrap):
    import hashlib

    from mirror_builder.build.request import BuildRequest

    checked = []

    class Checking(FakeBuilder):
        def build(self, request):
            # While the build runs, every file it is given is there, with the hash it is named by.
            checked.extend(hashlib.sha256(ref.path.read_bytes()).hexdigest() == ref.sha256
                           for ref in (request.source.sdist, *request.env.wheels))
            return super().build(request)

    pipeline, builder = bootstrap.make({"app": {"1.0": Package(build_requires=["tool"])},
                                        "tool": {"1.0": Package()}},
                                       builder=Checking(bootstrap.work))
    pipeline.run([Requirement("app")])
    (app,) = [r for r in builder.requests if r.source.name == "app"]
    assert [w.name for w in app.env.wheels] == ["tool-1.0-py3-none-any.whl"]
    assert checked and all(checked)
    assert BuildRequest.from_dict(json.loads(json.dumps(app.to_dict()))) == app


def test_what_a_built_wheel_really_requires_is_built_before_the_round_ends(bootstrap):
    """app's metadata upstream says dep<2, its built wheel dep>=2 (pydantic and pydantic-core):
    dep 2.0's build starts as soon as app is built, while slow, of the same round, still builds;
    not after it, when the resolution is made again."""
    import threading
    import time

    events = []
    slow_may_end = threading.Event()

    class Timed(FakeBuilder):
        def build(self, request):
            events.append(("start", request.source.name, request.source.version))
            if request.source.name == "slow":
                slow_may_end.wait(10)
            elif request.source.name == "dep" and request.source.version == "2.0":
                slow_may_end.set()
            return super().build(request)

    runner, _ = bootstrap.make({
        "app": {"1.0": Package(requires_dist=["dep>=2"], advertised=["dep<2"])},
        "dep": {"1.0": Package(), "2.0": Package()},
        "slow": {"1.0": Package()},
    }, builder=Timed(bootstrap.work), options=Options(jobs=4))
    started = time.monotonic()
    report = runner.run([Requirement("app"), Requirement("slow")])
    assert time.monotonic() - started < 8  # slow was let go by dep 2.0's build, not its timeout
    assert ("start", "dep", "2.0") in events
    assert {(w.name, str(w.version)) for w in report.wheels} >= {("dep", "2.0"), ("app", "1.0")}

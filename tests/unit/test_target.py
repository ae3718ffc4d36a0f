"""The target's environment (mirror_builder/target.py): wheel tags, markers, requires-python."""

from __future__ import annotations

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.tags import Tag

from mirror_builder.resolve.target import TargetEnvironment


def linux(machine: str = "x86_64", python: str = "3.11.2", libc: str = "2.36") -> TargetEnvironment:
    return TargetEnvironment("bookworm-" + machine, {
        "implementation_name": "cpython",
        "implementation_version": python,
        "os_name": "posix",
        "platform_machine": machine,
        "platform_release": "6.1.0-18-amd64",
        "platform_system": "Linux",
        "platform_version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)",
        "python_full_version": python,
        "platform_python_implementation": "CPython",
        "python_version": ".".join(python.split(".")[:2]),
        "sys_platform": "linux",
        "libc_version": libc,
    })


def tag(text: str) -> Tag:
    interpreter, abi, platform = text.split("-")
    return Tag(interpreter, abi, platform)


# -- supported_tags -------------------------------------------------------------------------------
def test_supported_tags_most_preferred_is_the_exact_interpreter_and_newest_manylinux():
    tags = linux().supported_tags()

    assert tags[0] == tag("cp311-cp311-manylinux_2_36_x86_64")


@pytest.mark.parametrize("expected", [
    "cp311-cp311-manylinux_2_17_x86_64",
    "cp311-cp311-manylinux2014_x86_64",
    "cp311-cp311-manylinux1_x86_64",
    "cp311-abi3-manylinux_2_17_x86_64",
    "cp37-abi3-manylinux_2_28_x86_64",
    "cp311-none-linux_x86_64",
    "py3-none-manylinux2014_x86_64",
    "py3-none-linux_x86_64",
    "py311-none-any",
    "py3-none-any",
])
def test_supported_tags_include(expected):
    assert tag(expected) in linux().supported_tags()


@pytest.mark.parametrize("unexpected", [
    "cp311-cp311-manylinux_2_37_x86_64",
    "py3-none-manylinux_2_37_x86_64",
    "cp311-cp311-manylinux_2_4_x86_64",
    "cp312-cp312-manylinux_2_17_x86_64",
    "cp312-abi3-manylinux_2_17_x86_64",
    "cp311-cp311-musllinux_1_2_x86_64",
    "cp311-cp311-win_amd64",
])
def test_supported_tags_exclude(unexpected):
    assert tag(unexpected) not in linux().supported_tags()


def test_supported_tags_have_no_newer_glibc_and_no_other_architecture():
    platforms = {t.platform for t in linux().supported_tags()}

    assert not any("manylinux_2_37" in p or "aarch64" in p for p in platforms)
    assert platforms == ({f"manylinux_2_{m}_x86_64" for m in range(5, 37)}
                         | {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64",
                            "linux_x86_64", "any"})


def test_supported_tags_prefer_manylinux_over_plain_linux_over_any():
    tags = linux().supported_tags()

    assert (tags.index(tag("cp311-cp311-manylinux_2_36_x86_64"))
            < tags.index(tag("cp311-cp311-manylinux_2_17_x86_64"))
            < tags.index(tag("cp311-cp311-linux_x86_64"))
            < tags.index(tag("cp311-abi3-manylinux_2_36_x86_64"))
            < tags.index(tag("py3-none-manylinux_2_36_x86_64"))
            < tags.index(tag("py3-none-any")))


def test_supported_tags_for_aarch64_has_only_aarch64_platforms():
    tags = linux("aarch64").supported_tags()

    assert tags[0] == tag("cp311-cp311-manylinux_2_36_aarch64")
    assert tag("cp311-abi3-manylinux2014_aarch64") in tags
    assert {t.platform for t in tags} - {"any"} == (
        {f"manylinux_2_{m}_aarch64" for m in range(5, 37)}
        | {"manylinux2014_aarch64", "manylinux2010_aarch64", "manylinux1_aarch64",
           "linux_aarch64"})


def test_supported_tags_with_an_older_glibc_stop_at_it():
    platforms = {t.platform for t in linux(libc="2.12").supported_tags()}

    assert "manylinux_2_12_x86_64" in platforms and "manylinux2010_x86_64" in platforms
    assert "manylinux_2_13_x86_64" not in platforms and "manylinux2014_x86_64" not in platforms


def test_supported_tags_without_a_libc_version_have_only_the_plain_platform():
    platforms = {t.platform for t in linux(libc="").supported_tags()}

    assert platforms == {"linux_x86_64", "any"}


def test_supported_tags_follow_the_targets_python():
    tags = linux(python="3.12.1").supported_tags()

    assert tags[0] == tag("cp312-cp312-manylinux_2_36_x86_64")
    assert tag("cp311-cp311-manylinux_2_36_x86_64") not in tags
    assert tag("cp311-abi3-manylinux_2_36_x86_64") in tags


# -- evaluate / applies ---------------------------------------------------------------------------
def test_evaluate_without_marker_applies():
    assert linux().evaluate(None) is True


@pytest.mark.parametrize("marker, expected", [
    ('python_version >= "3.11"', True),
    ('python_version < "3.11"', False),
    ('platform_machine == "x86_64"', True),
    ('platform_machine == "aarch64"', False),
    ('sys_platform == "win32"', False),
    ('python_full_version == "3.11.2"', True),
])
def test_evaluate_uses_the_targets_markers(marker, expected):
    assert linux().evaluate(Marker(marker)) is expected


def test_evaluate_extra_marker_needs_that_extra():
    marker = Marker('extra == "socks"')

    assert linux().evaluate(marker) is False
    assert linux().evaluate(marker, frozenset({"socks"})) is True
    assert linux().evaluate(marker, frozenset({"http2"})) is False
    assert linux().evaluate(marker, frozenset({"http2", "socks"})) is True


def test_applies_checks_the_requirements_marker_with_extras():
    target = linux()

    assert target.applies(Requirement("pysocks; extra == 'socks'"), frozenset({"socks"})) is True
    assert target.applies(Requirement("pysocks; extra == 'socks'")) is False
    assert target.applies(Requirement("colorama; sys_platform == 'win32'"),
                          frozenset({"socks"})) is False
    assert target.applies(Requirement("tomli; python_version < '3.11' and extra == 'toml'"),
                          frozenset({"toml"})) is False
    assert target.applies(Requirement("requests>=2")) is True


# -- accepts_python -------------------------------------------------------------------------------
@pytest.mark.parametrize("requires_python, expected", [
    (None, True),
    ("", True),
    (">=3.8", True),
    (">=3.12", False),
    (">=3.11.3", False),
    ("~=3.11.0", True),
    ("!=3.11.2", False),
    (">=3.11.0rc1", True),
])
def test_accepts_python(requires_python, expected):
    assert linux().accepts_python(requires_python) is expected


@pytest.mark.parametrize("unparsable", ["=>3.8", "python3", ">= 3.x", "3.11", ">=3.8;"])
def test_accepts_python_with_an_unparsable_specifier_is_false(unparsable):
    assert linux().accepts_python(unparsable) is False


def test_python_version_is_the_full_version():
    assert str(linux(python="3.11.2").python_version) == "3.11.2"

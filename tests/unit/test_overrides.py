"""Per-package settings, overrides/<name>.yaml (mirror_builder/overrides.py)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from packaging.version import Version

from mirror_builder.errors import SettingsError
from mirror_builder.config.overrides import PackageSettings, load_package_settings


def write(overrides: Path, name: str, text: str) -> Path:
    overrides.mkdir(parents=True, exist_ok=True)
    path = overrides / f"{name}.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def test_no_file_gives_empty_settings_under_the_canonical_name(tmp_path):
    settings = load_package_settings(tmp_path / "overrides", "Foo_Bar")

    assert settings == PackageSettings("foo-bar")
    assert settings.source_file is None
    assert settings.changelog == {}
    assert settings.reasons_for(Version("1.0")) == ()
    assert settings.as_dict()["changelog"] == {}


def test_the_file_is_found_by_canonical_name(tmp_path):
    path = write(tmp_path, "foo-bar", """
        changelog:
          "1.0": rebuilt with a newer compiler
    """)

    settings = load_package_settings(tmp_path, "Foo_Bar")

    assert settings.name == "foo-bar"
    assert settings.source_file == path
    assert settings.reasons_for(Version("1.0")) == ("rebuilt with a newer compiler",)


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "changelog:\n", "changelog: {}\n"])
def test_an_empty_file_or_changelog_gives_no_reasons(tmp_path, text):
    path = write(tmp_path, "demo", text)

    settings = load_package_settings(tmp_path, "demo")

    assert settings.changelog == {}
    assert settings.source_file == path


def test_changelog_reasons_as_a_list_and_as_a_single_string(tmp_path):
    write(tmp_path, "demo", """
        changelog:
          "1.0":
            - rebuilt against openssl 3.0.13
            - patched CVE-2024-0001
          "2.0": single reason
    """)

    settings = load_package_settings(tmp_path, "demo")

    assert settings.reasons_for(Version("1.0")) == ("rebuilt against openssl 3.0.13",
                                                    "patched CVE-2024-0001")
    assert settings.reasons_for(Version("2.0")) == ("single reason",)
    assert settings.reasons_for(Version("3.0")) == ()
    assert settings.as_dict()["changelog"] == {
        "1.0": ["rebuilt against openssl 3.0.13", "patched CVE-2024-0001"],
        "2.0": ["single reason"]}


def test_version_keys_are_compared_as_versions(tmp_path):
    assert Version("1.0.0") == Version("1.0")  # what the lookup relies on
    write(tmp_path, "demo", """
        changelog:
          "1.0.0": zero-padded
          "2.0RC1": upper-case pre-release
    """)

    settings = load_package_settings(tmp_path, "demo")

    assert settings.reasons_for(Version("1.0")) == ("zero-padded",)
    assert settings.reasons_for(Version("1.0.0")) == ("zero-padded",)
    assert settings.reasons_for(Version("2.0rc1")) == ("upper-case pre-release",)
    assert settings.as_dict()["changelog"] == {"1.0.0": ["zero-padded"],
                                                "2.0rc1": ["upper-case pre-release"]}


def test_unquoted_simple_version_keys_work(tmp_path):
    write(tmp_path, "demo", """
        changelog:
          1.0: a float key in YAML
          2: an int key in YAML
    """)

    settings = load_package_settings(tmp_path, "demo")

    assert settings.reasons_for(Version("1.0")) == ("a float key in YAML",)
    assert settings.reasons_for(Version("2")) == ("an int key in YAML",)


def test_unquoted_version_key_with_trailing_zero_is_not_read_as_a_float(tmp_path):
    write(tmp_path, "demo", """
        changelog:
          1.10: rebuilt for 1.10
    """)

    settings = load_package_settings(tmp_path, "demo")

    assert settings.reasons_for(Version("1.10")) == ("rebuilt for 1.10",)
    assert settings.reasons_for(Version("1.1")) == ()


def test_an_unknown_top_level_key_names_file_line_and_key(tmp_path):
    path = write(tmp_path, "demo", """
        changelog:
          "1.0": fine
        rebuild_numbering: post-release
    """)

    with pytest.raises(SettingsError) as caught:
        load_package_settings(tmp_path, "demo")

    message = str(caught.value)
    assert message.startswith(f"{path}:3: rebuild_numbering: unknown key")
    assert "allowed here: bootstrap_stage, build_dir, build_requires, changelog" in message


def test_a_bad_version_key_names_file_line_and_key(tmp_path):
    path = write(tmp_path, "demo", """
        changelog:
          "1.0": fine
          not-a-version: oops
    """)

    with pytest.raises(SettingsError) as caught:
        load_package_settings(tmp_path, "demo")

    assert str(caught.value) == (f"{path}:3: changelog.not-a-version: "
                                 f"'not-a-version' is not a version")


@pytest.mark.parametrize("reasons", ["[42]", "[fine, 7]", "{why: not a list}", "['']", "",
                                     "[[nested]]", "true"])
def test_a_reason_that_is_not_a_non_empty_string_names_the_key(tmp_path, reasons):
    path = write(tmp_path, "demo", f"""
        changelog:
          "1.0": fine
          "2.0": {reasons}
    """)

    with pytest.raises(SettingsError) as caught:
        load_package_settings(tmp_path, "demo")

    assert str(caught.value) == (f"{path}:3: changelog.2.0: "
                                 f"expected a list of reasons (strings)")


def test_a_changelog_that_is_not_a_mapping_names_the_key(tmp_path):
    path = write(tmp_path, "demo", """
        changelog:
          - "1.0"
    """)

    with pytest.raises(SettingsError, match=re.escape(f"{path}:1: changelog: expected a mapping")):
        load_package_settings(tmp_path, "demo")


def test_invalid_yaml_is_a_settings_error_naming_the_file(tmp_path):
    path = write(tmp_path, "demo", "changelog: [unclosed\n")

    with pytest.raises(SettingsError, match=re.escape(str(path))):
        load_package_settings(tmp_path, "demo")


# -- digest ---------------------------------------------------------------------------------------

BASE = """
    changelog:
      "1.0":
        - first reason
      "2.0": second reason
"""


def digest_of(tmp_path: Path, text: str, folder: str) -> str:
    write(tmp_path / folder, "demo", text)
    return load_package_settings(tmp_path / folder, "demo").digest()


def test_digest_is_a_sha256_and_stable_across_loads(tmp_path):
    first = digest_of(tmp_path, BASE, "a")

    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert load_package_settings(tmp_path / "a", "demo").digest() == first


def test_digest_ignores_key_order_and_list_or_string_spelling(tmp_path):
    reordered = """
        changelog:
          "2.0":
            - second reason
          "1.0": first reason
    """

    assert digest_of(tmp_path, reordered, "b") == digest_of(tmp_path, BASE, "a")


def test_digest_of_empty_settings_is_the_same_with_or_without_a_file(tmp_path):
    write(tmp_path / "with", "demo", "changelog: {}\n")

    assert (load_package_settings(tmp_path / "with", "demo").digest()
            == load_package_settings(tmp_path / "without", "demo").digest())


@pytest.mark.parametrize("changed", [
    BASE.replace("first reason", "first reason, reworded"),
    BASE + '      "3.0": a new version\n',
    BASE.replace("        - first reason\n", "        - first reason\n        - another\n"),
    BASE.replace('"2.0"', '"2.1"'),
    "changelog: {}\n",
])
def test_digest_changes_when_the_changelog_changes(tmp_path, changed):
    assert digest_of(tmp_path, changed, "b") != digest_of(tmp_path, BASE, "a")


# =================================================================================================
# Every overrides key, and its bad values (each a SettingsError "file:line: key: problem")
# =================================================================================================

from mirror_builder.config.overrides import SourceOverride, all_package_settings  # noqa: E402

HEX_A = "a" * 64
HEX_B = "0123456789abcdef" * 4


def load_error(tmp_path: Path, text: str, name: str = "demo") -> tuple[Path, str]:
    """Write overrides/<name>.yaml, load it, and return the path and the SettingsError's text."""
    path = write(tmp_path, name, text)
    with pytest.raises(SettingsError) as caught:
        load_package_settings(tmp_path, name)
    return path, str(caught.value)


# -- env ------------------------------------------------------------------------------------------
def test_env_templates_are_rendered_with_name_version_and_jobs(tmp_path):
    write(tmp_path, "demo", """
        env:
          CFLAGS: -O2
          TAG: ${name}-${version}
          MAKEFLAGS: -j${jobs}
          PRICE: $$5
    """)

    settings = load_package_settings(tmp_path, "demo")

    assert settings.env == {"CFLAGS": "-O2", "TAG": "${name}-${version}", "MAKEFLAGS": "-j${jobs}",
                            "PRICE": "$$5"}
    assert settings.environment(Version("1.2.3"), 8) == {
        "CFLAGS": "-O2", "TAG": "demo-1.2.3", "MAKEFLAGS": "-j8", "PRICE": "$5"}


def test_env_renders_the_canonical_name(tmp_path):
    write(tmp_path, "foo-bar", "env:\n  WHO: ${name}\n")

    assert load_package_settings(tmp_path, "Foo_Bar").environment(Version("2.0"), 1) == {
        "WHO": "foo-bar"}


def test_env_integer_value_becomes_a_string(tmp_path):
    write(tmp_path, "demo", "env:\n  OPT_LEVEL: 3\n")

    assert load_package_settings(tmp_path, "demo").env == {"OPT_LEVEL": "3"}


def test_env_unknown_template_is_rejected_at_load_naming_the_variable(tmp_path):
    path, message = load_error(tmp_path, """
        env:
          FINE: ok
          BAD: ${foo}/lib
    """)

    assert message == (f"{path}:3: env.BAD: unknown template 'foo' "
                       f"(known here: ${{name}}, ${{version}}, ${{jobs}})")


def test_env_stray_dollar_is_rejected_at_load(tmp_path):
    path, message = load_error(tmp_path, "env:\n  BAD: cost $ 5\n")

    assert message.startswith(f"{path}:2: env.BAD: unknown template")


@pytest.mark.parametrize("value", ["[a, b]", "{x: y}", "true", "null"])
def test_env_non_string_value_is_rejected(tmp_path, value):
    path, message = load_error(tmp_path, f"env:\n  FINE: ok\n  BAD: {value}\n")

    assert message == f"{path}:3: env.BAD: expected a string"


def test_env_that_is_not_a_mapping_is_rejected(tmp_path):
    path, message = load_error(tmp_path, "env:\n  - A=1\n")

    assert message == f"{path}:1: env: expected a mapping, got list"


def test_env_unquoted_number_keeps_the_text_as_written(tmp_path):
    write(tmp_path, "demo", "env:\n  ABI_VERSION: 1.10\n")

    assert load_package_settings(tmp_path, "demo").env == {"ABI_VERSION": "1.10"}


# -- system_packages ------------------------------------------------------------------------------
def test_system_packages_accepts_debian_names_and_pinned_versions(tmp_path):
    write(tmp_path, "demo", """
        system_packages:
          - libxml2-dev
          - libssl-dev=3.0.11-1~deb12u2
          - g++
          - libstdc++6
    """)

    assert load_package_settings(tmp_path, "demo").system_packages == (
        "libxml2-dev", "libssl-dev=3.0.11-1~deb12u2", "g++", "libstdc++6")


@pytest.mark.parametrize("bad", ["Bad Name", "LibXML2", "-dash-first", "x", "libfoo;rm -rf /"])
def test_system_packages_rejects_what_is_not_a_debian_package_name(tmp_path, bad):
    path, message = load_error(tmp_path, f"""
        system_packages:
          - libxml2-dev
          - "{bad}"
    """)

    assert message == f"{path}:1: system_packages: {bad!r} is not a Debian package name"


@pytest.mark.parametrize("value", ["libxml2-dev", "[libxml2-dev, 7]", "['']", "{a: b}"])
def test_system_packages_must_be_a_list_of_strings(tmp_path, value):
    path, message = load_error(tmp_path, f"system_packages: {value}\n")

    assert message == f"{path}:1: system_packages: expected a list of strings"


# -- source ---------------------------------------------------------------------------------------
def test_source_url_with_one_sha256_applies_to_every_version(tmp_path):
    write(tmp_path, "demo", f"""
        source:
          url: https://example.org/releases/${{name}}-${{version}}.tar.gz
          sha256: {HEX_A}
    """)

    source = load_package_settings(tmp_path, "demo").source

    assert source == SourceOverride(url="https://example.org/releases/${name}-${version}.tar.gz",
                                    sha256={"*": HEX_A})
    assert source.url_for("demo", Version("2.0")) == "https://example.org/releases/demo-2.0.tar.gz"
    assert source.sha256_for(Version("2.0")) == HEX_A
    assert source.sha256_for(Version("99")) == HEX_A


def test_source_url_with_sha256_per_version_keeps_unquoted_versions_as_written(tmp_path):
    write(tmp_path, "demo", f"""
        source:
          url: https://example.org/demo-${{version}}.tar.gz
          sha256:
            1.10: {HEX_A}
            "2.0.0": {HEX_B}
    """)

    source = load_package_settings(tmp_path, "demo").source

    assert source.sha256 == {"1.10": HEX_A, "2.0.0": HEX_B}
    assert source.sha256_for(Version("1.10")) == HEX_A
    assert source.sha256_for(Version("1.1")) is None
    assert source.sha256_for(Version("2.0")) == HEX_B  # compared as versions
    assert source.sha256_for(Version("3.0")) is None
    assert source.url_for("demo", Version("1.10")) == "https://example.org/demo-1.10.tar.gz"


def test_source_git_with_tag(tmp_path):
    write(tmp_path, "demo", """
        source:
          git: https://github.com/example/demo.git
          tag: v${version}
    """)

    source = load_package_settings(tmp_path, "demo").source

    assert source == SourceOverride(git="https://github.com/example/demo.git", tag="v${version}")
    assert source.url is None and source.sha256 == {}


def test_source_url_without_sha256_is_rejected(tmp_path):
    path, message = load_error(tmp_path, """
        env: {A: b}
        source:
          url: https://example.org/demo.tar.gz
    """)

    assert message == (f"{path}:2: source: a source url needs sha256 "
                       f"(one hash, or version: hash)")


@pytest.mark.parametrize("bad", ["abc123", "A" * 64, "g" * 64, "a" * 63, "a" * 65])
def test_source_sha256_that_is_not_64_lowercase_hex_digits_is_rejected(tmp_path, bad):
    path, message = load_error(tmp_path, f"""
        source:
          url: https://example.org/demo.tar.gz
          sha256: {bad}
    """)

    assert message == f"{path}:3: source.sha256: {bad!r} is not a sha256 (64 hex digits)"


def test_source_sha256_mapping_with_a_bad_hash_is_rejected(tmp_path):
    path, message = load_error(tmp_path, f"""
        source:
          url: https://example.org/demo.tar.gz
          sha256:
            "1.0": {HEX_A}
            "2.0": nothex
    """)

    assert message == f"{path}:3: source.sha256: 'nothex' is not a sha256 (64 hex digits)"


def test_source_sha256_mapping_with_a_bad_version_is_rejected(tmp_path):
    path, message = load_error(tmp_path, f"""
        source:
          url: https://example.org/demo.tar.gz
          sha256:
            latest: {HEX_A}
    """)

    assert message == f"{path}:4: source.sha256.latest: not a version"


def test_source_sha256_as_a_list_is_rejected(tmp_path):
    path, message = load_error(tmp_path, f"""
        source:
          url: https://example.org/demo.tar.gz
          sha256: [{HEX_A}]
    """)

    assert message.startswith(f"{path}:3: source.sha256: ")


def test_source_git_without_tag_is_rejected(tmp_path):
    path, message = load_error(tmp_path, """
        source:
          git: https://github.com/example/demo.git
    """)

    assert message == f"{path}:1: source: a git source needs tag (e.g. v${{version}})"


@pytest.mark.parametrize("body", [
    f"url: https://example.org/demo.tar.gz\n  sha256: {HEX_A}\n  git: https://example.org/demo.git",
    "tag: v1.0",
    "{}",
])
def test_source_needs_exactly_one_of_url_and_git(tmp_path, body):
    text = f"source:\n  {body}\n" if body != "{}" else "source: {}\n"
    path, message = load_error(tmp_path, text)

    assert message == f"{path}:1: source: give either url (with sha256) or git (with tag)"


def test_source_unknown_sub_key_is_rejected(tmp_path):
    path, message = load_error(tmp_path, f"""
        source:
          url: https://example.org/demo.tar.gz
          sha256: {HEX_A}
          branch: main
    """)

    assert message == f"{path}:4: source.branch: unknown key (allowed here: git, sha256, tag, url)"


def test_source_unknown_template_in_url_or_tag_is_rejected(tmp_path):
    path, message = load_error(tmp_path, f"""
        source:
          url: https://example.org/${{project}}.tar.gz
          sha256: {HEX_A}
    """)
    assert message.startswith(f"{path}:2: source.url: unknown template 'project'")

    path, message = load_error(tmp_path, """
        source:
          git: https://example.org/demo.git
          tag: release-${release}
    """)
    assert message.startswith(f"{path}:3: source.tag: unknown template 'release'")


def test_source_url_with_jobs_template_is_rejected_at_load(tmp_path):
    path, message = load_error(tmp_path, f"""
        source:
          url: https://example.org/demo-${{jobs}}.tar.gz
          sha256: {HEX_A}
    """)

    assert message.startswith(f"{path}:2: source.url: unknown template 'jobs'")


def test_source_that_is_not_a_mapping_is_rejected(tmp_path):
    path, message = load_error(tmp_path, "source: https://example.org/demo.tar.gz\n")

    assert message == f"{path}:1: source: expected a mapping, got str"


# -- build_dir ------------------------------------------------------------------------------------
def test_build_dir_relative_path_is_kept(tmp_path):
    write(tmp_path, "demo", "build_dir: python/bindings\n")

    assert load_package_settings(tmp_path, "demo").build_dir == "python/bindings"


@pytest.mark.parametrize("bad", ["/abs/path", "../outside", "python/../../outside"])
def test_build_dir_absolute_or_escaping_is_rejected(tmp_path, bad):
    path, message = load_error(tmp_path, f"env: {{}}\nbuild_dir: {bad}\n")

    assert message == f"{path}:2: build_dir: must be a relative path inside the source tree"


def test_build_dir_must_be_a_string(tmp_path):
    path, message = load_error(tmp_path, "build_dir: [python]\n")

    assert message == f"{path}:1: build_dir: expected str, got ['python']"


# -- config_settings ------------------------------------------------------------------------------
def test_config_settings_take_strings_numbers_and_lists_of_strings(tmp_path):
    write(tmp_path, "demo", """
        config_settings:
          builddir: build
          compile-args: 4
          ratio: 0.5
          setup-args: ["-Dblas=openblas", "-Dlapack=openblas"]
    """)

    assert load_package_settings(tmp_path, "demo").config_settings == {
        "builddir": "build", "compile-args": "4", "ratio": "0.5",
        "setup-args": ["-Dblas=openblas", "-Dlapack=openblas"]}


@pytest.mark.parametrize("value", ["{nested: map}", "[a, 1]", "true", "null"])
def test_config_settings_mapping_or_other_values_are_rejected(tmp_path, value):
    path, message = load_error(tmp_path, f"config_settings:\n  fine: x\n  bad: {value}\n")

    assert message == f"{path}:3: config_settings.bad: expected a string or a list of strings"


# -- build_requires -------------------------------------------------------------------------------
def test_build_requires_add_and_remove_with_names_canonicalized(tmp_path):
    write(tmp_path, "demo", """
        build_requires:
          add: ["cython>=3.0", "numpy>=2; python_version >= '3.9'"]
          remove: [Setuptools_SCM, wheel]
    """)

    settings = load_package_settings(tmp_path, "demo")

    assert settings.build_requires_add == ("cython>=3.0", "numpy>=2; python_version >= '3.9'")
    assert settings.build_requires_remove == ("setuptools-scm", "wheel")


def test_build_requires_add_must_hold_valid_requirements(tmp_path):
    path, message = load_error(tmp_path, """
        build_requires:
          remove: [wheel]
          add: ["cython>=3.0", "not a requirement!"]
    """)

    assert message.startswith(f"{path}:3: build_requires.add: 'not a requirement!': ")


def test_build_requires_unknown_sub_key_is_rejected(tmp_path):
    path, message = load_error(tmp_path, """
        build_requires:
          add: [cython]
          replace: [wheel]
    """)

    assert message == f"{path}:3: build_requires.replace: unknown key (allowed here: add, remove)"


def test_build_requires_remove_must_be_a_list_of_strings(tmp_path):
    path, message = load_error(tmp_path, "build_requires:\n  remove: wheel\n")

    assert message == f"{path}:2: build_requires.remove: expected a list of strings"


# -- pre_built, vendor_rust -----------------------------------------------------------------------
@pytest.mark.parametrize("key", ["pre_built", "vendor_rust"])
def test_boolean_keys_take_true_and_false(tmp_path, key):
    write(tmp_path / "t", "demo", f"{key}: true\n")
    write(tmp_path / "f", "demo", f"{key}: false\n")

    assert getattr(load_package_settings(tmp_path / "t", "demo"), key) is True
    assert getattr(load_package_settings(tmp_path / "f", "demo"), key) is False


def test_boolean_keys_default_to_false_and_to_unset(tmp_path):
    settings = load_package_settings(tmp_path, "demo")

    assert settings.pre_built is False
    assert settings.vendor_rust is None  # decided by whether the tree has Cargo files


@pytest.mark.parametrize("value, shown", [('"yes"', "'yes'"), ("1", "1"), ("[true]", "[True]")])
def test_boolean_keys_reject_what_is_not_a_bool(tmp_path, value, shown):
    path, message = load_error(tmp_path, f"env: {{}}\npre_built: {value}\n")

    assert message == f"{path}:2: pre_built: expected bool, got {shown}"


def test_vendor_rust_may_name_the_manifests_to_vendor_relative_to_the_source_tree(tmp_path):
    write(tmp_path, "demo", "vendor_rust: [rust/Cargo.toml, Cargo.toml, rust/Cargo.toml]\n")

    settings = load_package_settings(tmp_path, "demo")

    assert settings.vendor_rust == ("rust/Cargo.toml", "Cargo.toml")
    assert settings.as_dict()["vendor_rust"] == ("rust/Cargo.toml", "Cargo.toml")
    assert settings.configured() == ["vendor_rust"]


@pytest.mark.parametrize("value, shown", [('"yes"', "'yes'"), ("1", "1"), ("[true]", "[True]"),
                                          ('{a: b}', "{'a': 'b'}"), ('[""]', "['']")])
def test_vendor_rust_rejects_what_is_neither_a_bool_nor_a_list_of_paths(tmp_path, value, shown):
    path, message = load_error(tmp_path, f"env: {{}}\nvendor_rust: {value}\n")

    assert message == (f"{path}:2: vendor_rust: expected true, false or a list of Cargo.toml "
                       f"paths, got {shown}")


def test_vendor_rust_rejects_an_empty_list(tmp_path):
    path, message = load_error(tmp_path, "env: {}\nvendor_rust: []\n")

    assert message == (f"{path}:2: vendor_rust: name at least one Cargo.toml (or write false to "
                       f"vendor nothing)")


@pytest.mark.parametrize("manifest", ["/src/Cargo.toml", "../other/Cargo.toml", "rust/Cargo.lock",
                                      "rust", "a/../../Cargo.toml"])
def test_vendor_rust_paths_must_be_cargo_toml_files_inside_the_tree(tmp_path, manifest):
    path, message = load_error(tmp_path, f"env: {{}}\nvendor_rust: [Cargo.toml, {manifest}]\n")

    assert message == (f"{path}:2: vendor_rust: {manifest!r} is not the path of a Cargo.toml "
                       f"inside the source tree (e.g. rust/Cargo.toml)")


# -- timeout, memory, cpus ------------------------------------------------------------------------
def test_timeout_memory_and_cpus_are_read(tmp_path):
    write(tmp_path, "demo", "timeout: 7200\nmemory: 16g\ncpus: 2.5\n")

    settings = load_package_settings(tmp_path, "demo")

    assert (settings.timeout, settings.memory, settings.cpus) == (7200, "16g", 2.5)


def test_a_process_limit_is_read_and_must_be_a_positive_integer(tmp_path):
    write(tmp_path, "demo", "pids_limit: 64\n")
    assert load_package_settings(tmp_path, "demo").pids_limit == 64

    path, message = load_error(tmp_path, "env: {}\npids_limit: 0\n")
    assert message == f"{path}:2: pids_limit: must be a positive number, got 0"


def test_a_package_can_be_built_on_disk_however_small_without_changing_its_build_key(tmp_path):
    write(tmp_path, "plain", "env: {A: b}\n")
    write(tmp_path, "demo", "env: {A: b}\nin_memory: false\n")
    plain, demo = (load_package_settings(tmp_path, name) for name in ("plain", "demo"))

    assert (plain.in_memory, demo.in_memory) == (None, False)
    assert "in_memory" in demo.configured() and "in_memory" not in demo.as_dict()
    assert {**demo.as_dict(), "name": "plain"} == plain.as_dict()  # the same build key
    path, message = load_error(tmp_path, "env: {}\nin_memory: 'no'\n")
    assert message.startswith(f"{path}:2: in_memory: expected bool")


def test_integer_cpus_is_a_float(tmp_path):
    write(tmp_path, "demo", "cpus: 4\n")

    cpus = load_package_settings(tmp_path, "demo").cpus

    assert cpus == 4.0 and isinstance(cpus, float)


@pytest.mark.parametrize("value, problem", [
    ("0", "must be a positive number, got 0"),
    ("-5", "must be a positive number, got -5"),
    ("1.5", "expected int, got 1.5"),
    ("true", "expected int, got True"),
    ('"60"', "expected int, got '60'"),
])
def test_timeout_must_be_a_positive_integer(tmp_path, value, problem):
    path, message = load_error(tmp_path, f"env: {{}}\ntimeout: {value}\n")

    assert message == f"{path}:2: timeout: {problem}"


@pytest.mark.parametrize("value", ["8g", "512m", "1024k", "16G", "2000000"])
def test_memory_accepts_sizes(tmp_path, value):
    write(tmp_path, "demo", f"memory: '{value}'\n")

    assert load_package_settings(tmp_path, "demo").memory == value


@pytest.mark.parametrize("value", ["lots", "8 g", "8gb", "-1g", "1.5g"])
def test_memory_rejects_what_is_not_a_size(tmp_path, value):
    path, message = load_error(tmp_path, f"env: {{}}\nmemory: '{value}'\n")

    assert message == f"{path}:2: memory: expected a size like 8g or 512m, got {value!r}"


def test_memory_must_be_a_string(tmp_path):
    path, message = load_error(tmp_path, "memory: [8g]\n")

    assert message == f"{path}:1: memory: expected str, got ['8g']"


@pytest.mark.parametrize("value, problem", [
    ("0", "must be a positive number, got 0"),
    ("-1.5", "must be a positive number, got -1.5"),
    ("true", "must be a positive number, got True"),
    ("four", "expected int or float, got 'four'"),
])
def test_cpus_must_be_a_positive_number(tmp_path, value, problem):
    path, message = load_error(tmp_path, f"env: {{}}\ncpus: {value}\n")

    assert message == f"{path}:2: cpus: {problem}"


@pytest.mark.parametrize("value", [".nan", ".inf"])
def test_cpus_not_a_finite_number_is_rejected(tmp_path, value):
    path, message = load_error(tmp_path, f"cpus: {value}\n")

    assert message.startswith(f"{path}:1: cpus: ")


# -- configured, digest ---------------------------------------------------------------------------
def test_configured_lists_the_keys_that_are_set_in_field_order(tmp_path):
    write(tmp_path, "demo", """
        timeout: 60
        env: {A: b}
        build_requires:
          add: [cython]
        vendor_rust: false
    """)

    assert load_package_settings(tmp_path, "demo").configured() == [
        "env", "build_requires_add", "timeout", "vendor_rust"]


def test_configured_of_no_settings_is_empty(tmp_path):
    assert load_package_settings(tmp_path, "demo").configured() == []


def test_configured_lists_every_key_when_all_are_set(tmp_path):
    write(tmp_path, "demo", f"""
        env: {{A: b}}
        system_packages: [libxml2-dev]
        source: {{url: "https://example.org/x.tar.gz", sha256: {HEX_A}}}
        build_dir: sub
        config_settings: {{k: v}}
        build_requires: {{add: [cython], remove: [wheel]}}
        pre_built: true
        changelog: {{"1.0": why}}
        timeout: 10
        memory: 1g
        cpus: 1
        vendor_rust: true
        update: {{track: all}}
    """)

    assert load_package_settings(tmp_path, "demo").configured() == [
        "env", "system_packages", "source", "build_dir", "config_settings", "build_requires_add",
        "build_requires_remove", "pre_built", "changelog", "timeout", "memory", "cpus",
        "vendor_rust", "update"]


EVERY_KEY = f"""
    env: {{A: b}}
    system_packages: [libxml2-dev]
    source: {{url: "https://example.org/x.tar.gz", sha256: {HEX_A}}}
    build_dir: sub
    config_settings: {{k: v}}
    build_requires: {{add: [cython], remove: [wheel]}}
    pre_built: false
    changelog: {{"1.0": why}}
    timeout: 10
    memory: 1g
    cpus: 1
    vendor_rust: true
"""


@pytest.mark.parametrize("old, new", [
    ("A: b", "A: c"),
    ("[libxml2-dev]", "[libxml2-dev, zlib1g-dev]"),
    (HEX_A, HEX_B),
    ("x.tar.gz", "y.tar.gz"),
    ("build_dir: sub", "build_dir: other"),
    ("k: v", "k: w"),
    ("add: [cython]", "add: [cython<3]"),
    ("remove: [wheel]", "remove: [setuptools]"),
    ("pre_built: false", "pre_built: true"),
    ('"1.0": why', '"1.0": because'),
    ("timeout: 10", "timeout: 11"),
    ("memory: 1g", "memory: 2g"),
    ("cpus: 1", "cpus: 2"),
    ("vendor_rust: true", "vendor_rust: false"),
    ("vendor_rust: true", "vendor_rust: [Cargo.toml]"),
])
def test_digest_changes_with_any_key(tmp_path, old, new):
    assert old in EVERY_KEY
    changed = EVERY_KEY.replace(old, new)

    assert digest_of(tmp_path, changed, "b") != digest_of(tmp_path, EVERY_KEY, "a")


@pytest.mark.parametrize("key", ["env: {A: b}", "system_packages: [gcc]", "build_dir: sub",
                                 "config_settings: {k: v}", "build_requires: {remove: [wheel]}",
                                 "pre_built: true", "timeout: 10", "memory: 1g", "cpus: 1",
                                 "vendor_rust: false"])
def test_digest_changes_when_a_key_is_added(tmp_path, key):
    assert digest_of(tmp_path, key + "\n", "b") != digest_of(tmp_path, "", "a")


def test_digest_ignores_where_the_file_is(tmp_path):
    assert digest_of(tmp_path, EVERY_KEY, "one") == digest_of(tmp_path, EVERY_KEY, "two")


# -- all_package_settings -------------------------------------------------------------------------
def test_all_package_settings_loads_every_file_sorted(tmp_path):
    write(tmp_path, "zope-interface", "timeout: 60\n")
    write(tmp_path, "cffi", "system_packages: [libffi-dev]\n")
    (tmp_path / "README.md").write_text("not an override\n")

    found = all_package_settings(tmp_path)

    assert [p.name for p in found] == ["cffi", "zope-interface"]
    assert found[0].system_packages == ("libffi-dev",)
    assert found[1].timeout == 60


def test_all_package_settings_without_a_folder_is_empty(tmp_path):
    assert all_package_settings(tmp_path / "missing") == []


def test_all_package_settings_rejects_a_file_not_named_by_canonical_name(tmp_path):
    write(tmp_path, "cffi", "timeout: 60\n")
    path = write(tmp_path, "Foo_Bar", "timeout: 60\n")

    with pytest.raises(SettingsError) as caught:
        all_package_settings(tmp_path)

    assert str(caught.value) == (f"{path}: override files are named by canonical project name: "
                                 f"foo-bar.yaml")


def test_all_package_settings_reports_a_bad_file(tmp_path):
    write(tmp_path, "cffi", "timeout: 60\n")
    path = write(tmp_path, "demo", "env: {}\nmemory: lots\n")

    with pytest.raises(SettingsError) as caught:
        all_package_settings(tmp_path)

    assert str(caught.value) == f"{path}:2: memory: expected a size like 8g or 512m, got 'lots'"


def test_config_settings_unquoted_number_keeps_the_text_as_written(tmp_path):
    write(tmp_path, "demo", "config_settings:\n  abi: 1.10\n")

    assert load_package_settings(tmp_path, "demo").config_settings == {"abi": "1.10"}


# -- update: the package's own update policy -------------------------------------------------------
from datetime import timedelta  # noqa: E402

from packaging.specifiers import SpecifierSet  # noqa: E402

from mirror_builder.config.overrides import UpdateOverride, effective_policy  # noqa: E402
from mirror_builder.config.settings import UpdatePolicy  # noqa: E402


def test_update_keys_are_read(tmp_path):
    write(tmp_path, "torch", """
        update:
          track: 3
          specifier: ">=2.1,<2.4"
          prereleases: true
          min_release_age: 2w
    """)

    assert load_package_settings(tmp_path, "torch").update == UpdateOverride(
        track=3, specifier=SpecifierSet(">=2.1,<2.4"), prereleases=True,
        min_release_age=timedelta(weeks=2))


def test_update_keys_not_given_stay_none_and_fall_back_to_the_global_policy(tmp_path):
    write(tmp_path, "torch", "update:\n  min_release_age: 0\n")
    package = load_package_settings(tmp_path, "torch")
    default = UpdatePolicy(track=2, specifier=SpecifierSet("<3"), prereleases=True)

    assert package.update == UpdateOverride(min_release_age=timedelta(0))
    assert effective_policy(default, package) == UpdatePolicy(
        track=2, specifier=SpecifierSet("<3"), prereleases=True, min_release_age=timedelta(0))


def test_a_null_specifier_overrides_the_global_one_with_any_version(tmp_path):
    write(tmp_path, "torch", "update:\n  specifier: null\n")
    package = load_package_settings(tmp_path, "torch")

    assert effective_policy(UpdatePolicy(specifier=SpecifierSet("<3")), package).specifier == \
        SpecifierSet("")


@pytest.mark.parametrize("text", ["", "update:\n", "update: {}\n"])
def test_no_update_keys_is_the_global_policy(tmp_path, text):
    write(tmp_path, "demo", text)
    package = load_package_settings(tmp_path, "demo")
    default = UpdatePolicy(track="all")

    assert package.update == UpdateOverride()
    assert effective_policy(default, package) == default
    assert "update" not in package.configured()


@pytest.mark.parametrize(("text", "line", "key", "problem"), [
    ("update:\n  track: none\n", 2, "update.track",
     "must be newer, all or a positive number (the N newest releases), got 'none'"),
    ("update:\n  track: 0\n", 2, "update.track",
     "must be newer, all or a positive number (the N newest releases), got 0"),
    ("update:\n  specifier: '2.1'\n", 2, "update.specifier",
     "'2.1' is not a PEP 440 version specifier (e.g. \">=2.1,<2.4\")"),
    ("update:\n  prereleases: maybe\n", 2, "update.prereleases", "expected bool, got 'maybe'"),
    ("timeout: 5\nupdate:\n  min_release_age: 3\n", 3, "update.min_release_age",
     "expected a duration like 0, 12h, 3d or 2w (units: w d h m s), got 3"),
    ("update:\n  track: all\n  cooldown: 3d\n", 3, "update.cooldown",
     "unknown key (allowed here: min_release_age, prereleases, specifier, track)"),
    ("update: newer\n", 1, "update", "expected a mapping, got str"),
], ids=["bad track", "zero track", "bad specifier", "bad prereleases", "duration without unit",
        "unknown key", "not a mapping"])
def test_a_bad_update_key_is_an_error_naming_file_line_and_key(tmp_path, text, line, key, problem):
    path = write(tmp_path, "demo", text)

    with pytest.raises(SettingsError) as caught:
        load_package_settings(tmp_path, "demo")

    assert str(caught.value) == f"{path}:{line}: {key}: {problem}"


def test_the_update_policy_is_not_part_of_the_build(tmp_path):
    """It decides which versions are built, not how: as_dict() (build records, build keys)
    and the digest leave it out, so changing it rebuilds nothing."""
    write(tmp_path / "a", "demo", EVERY_KEY)
    write(tmp_path / "b", "demo", EVERY_KEY + "    update: {track: 2, min_release_age: 0}\n")
    without = load_package_settings(tmp_path / "a", "demo")
    with_policy = load_package_settings(tmp_path / "b", "demo")

    assert "update" not in with_policy.as_dict()
    assert with_policy.as_dict() == without.as_dict()
    assert with_policy.digest() == without.digest()


def test_update_override_as_dict_shows_the_keys_given_as_written():
    override = UpdateOverride(track=2, specifier=SpecifierSet("<2.4,>=2.1"),
                              min_release_age=timedelta(hours=36))

    assert override.as_dict() == {"track": 2, "specifier": ">=2.1,<2.4", "min_release_age": "1 d 12 h"}
    assert UpdateOverride().as_dict() == {}


# -- lint: an update.specifier must match an upstream version -----------------------------------
from mirror_builder.config.lint import lint  # noqa: E402
from mirror_builder.config.settings import load_settings  # noqa: E402
from mirror_builder.resolve.pages import DistributionFile  # noqa: E402


class _Finder:
    def __init__(self, versions: dict[str, list[str]]) -> None:
        self.versions = versions

    def project_files(self, name: str) -> list[DistributionFile]:
        return [DistributionFile(f"{name}-{v}.tar.gz", f"https://example.org/{name}-{v}.tar.gz", None)
                for v in self.versions.get(name, [])]


@pytest.mark.parametrize(("specifier", "found"), [(">=2.1,<2.4", False), (">=3", True),
                                                  ("==2.4rc1", False)])
def test_lint_reports_an_update_specifier_that_matches_no_version(tmp_path, specifier, found):
    (tmp_path / "settings.yaml").write_text("overrides_dir: overrides\npatches_dir: patches\n")
    path = write(tmp_path / "overrides", "torch", f"update:\n  specifier: \"{specifier}\"\n")

    findings = lint(load_settings(tmp_path / "settings.yaml"),
                    _Finder({"torch": ["2.1.0", "2.3.1", "2.4rc1"]}))

    problem = f"update.specifier: no version of torch matches {specifier}"
    assert [(f.where, f.problem) for f in findings] == ([(str(path), problem)] if found else [])


# -- smoke_test ---------------------------------------------------------------------------------
def test_smoke_test_is_on_by_default_and_can_be_turned_off_or_given_modules(tmp_path):
    assert load_package_settings(tmp_path, "demo").smoke_test is True
    write(tmp_path, "demo", "smoke_test: false\n")
    assert load_package_settings(tmp_path, "demo").smoke_test is False
    write(tmp_path, "demo", "smoke_test: {imports: [demo, demo.sub]}\n")
    assert load_package_settings(tmp_path, "demo").smoke_test == ("demo", "demo.sub")


def test_smoke_test_modules_must_be_module_names(tmp_path):
    path, message = load_error(tmp_path, "smoke_test: {imports: [demo-pkg]}\n")
    assert message == f"{path}:1: smoke_test.imports: 'demo-pkg' is not a module name"


def test_the_smoke_test_setting_is_not_part_of_how_the_wheel_is_built(tmp_path):
    write(tmp_path, "demo", "smoke_test: false\n")
    assert "smoke_test" not in load_package_settings(tmp_path, "demo").as_dict()

"""Per-package settings, overrides/<name>.yaml (mirror_builder/overrides.py)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from packaging.version import Version

from mirror_builder.errors import SettingsError
from mirror_builder.overrides import PackageSettings, load_package_settings


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
    assert "allowed here: build_dir, build_requires, changelog" in message


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

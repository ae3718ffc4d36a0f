"""Specification of mirror_builder.settings: defaults, path resolution and strict validation."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from mirror_builder.errors import SettingsError
from mirror_builder.settings import (
    BuildSettings,
    Settings,
    TargetSettings,
    UpstreamSettings,
    find_settings_file,
    load_settings,
)


def write_settings(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conf" / "settings.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def settings_error(path: Path) -> str:
    with pytest.raises(SettingsError) as excinfo:
        load_settings(path)
    return str(excinfo.value)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """~ and $XDG_CACHE_HOME must not depend on the machine running the tests."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    return home


# -- defaults --------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["", "# only a comment\n", "upstream:\nbuild:\n"],
                         ids=["empty file", "comment only", "empty sections"])
def test_minimal_file_gives_all_defaults(tmp_path, isolated_home, text):
    path = write_settings(tmp_path, text)
    project = path.parent.resolve()

    settings = load_settings(path)

    assert settings.source == path
    assert settings.project_dir == project
    assert settings.upstream == UpstreamSettings(
        index_url="https://pypi.org/simple/", json_api_url="https://pypi.org/pypi/",
        cache_ttl_seconds=21600, timeout_seconds=60, retries=4)
    assert settings.build == BuildSettings(timeout_seconds=3600, memory="8g", pids_limit=4096)
    assert settings.targets == (TargetSettings(
        name="bookworm-x86_64",
        containerfile=project / "containerfiles/bookworm/Containerfile",
        distribution="bookworm", arch="amd64"),)
    assert settings.output_dir == project / "output"
    assert settings.patches_dir == project / "patches"
    assert settings.cache_dir == isolated_home / ".cache" / "mirror-builder"
    assert settings.allow_prereleases is False


def test_default_cache_dir_follows_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))

    settings = load_settings(write_settings(tmp_path, ""))

    assert settings.cache_dir == tmp_path / "xdg" / "mirror-builder"


def test_every_key_can_be_set(tmp_path):
    path = write_settings(tmp_path, """\
        upstream:
          index_url: http://mirror.example/simple
          json_api_url: http://mirror.example/pypi/
          cache_ttl_seconds: 0
          timeout_seconds: 5
          retries: 0
        targets:
          trixie-arm64:
            containerfile: /abs/Containerfile
            distribution: trixie
            arch: arm64
        build:
          timeout_seconds: 10
          memory: 2g
          pids_limit: 100
        allow_prereleases: true
        """)

    settings = load_settings(path)

    assert settings.upstream == UpstreamSettings(
        index_url="http://mirror.example/simple/", json_api_url="http://mirror.example/pypi/",
        cache_ttl_seconds=0, timeout_seconds=5, retries=0)
    assert settings.targets == (TargetSettings(name="trixie-arm64",
                                               containerfile=Path("/abs/Containerfile"),
                                               distribution="trixie", arch="arm64"),)
    assert settings.build == BuildSettings(timeout_seconds=10, memory="2g", pids_limit=100)
    assert settings.allow_prereleases is True


def test_index_url_gets_exactly_one_trailing_slash(tmp_path):
    for written in ("https://idx.example/simple", "https://idx.example/simple/",
                    "https://idx.example/simple//"):
        path = write_settings(tmp_path, f"upstream:\n  index_url: {written}\n")
        assert load_settings(path).upstream.index_url == "https://idx.example/simple/"


def test_file_index_url_is_accepted(tmp_path):
    path = write_settings(tmp_path, "upstream:\n  index_url: file:///srv/simple/\n")

    assert load_settings(path).upstream.index_url == "file:///srv/simple/"


def test_json_api_url_null_turns_it_off(tmp_path):
    path = write_settings(tmp_path, "upstream:\n  json_api_url: null\n")

    assert load_settings(path).upstream.json_api_url is None


def test_json_api_url_tilde_also_turns_it_off(tmp_path):
    path = write_settings(tmp_path, "upstream:\n  json_api_url: ~\n")

    assert load_settings(path).upstream.json_api_url is None


# -- paths -----------------------------------------------------------------------------------
def test_relative_paths_are_resolved_against_the_settings_files_folder(tmp_path, monkeypatch):
    path = write_settings(tmp_path, """\
        output_dir: out/wheels
        cache_dir: .cache
        patches_dir: ../shared/patches
        targets:
          t1:
            containerfile: containerfiles/t1/Containerfile
        """)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory must not matter
    project = (tmp_path / "conf").resolve()

    settings = load_settings(path)

    assert settings.project_dir == project
    assert settings.output_dir == project / "out/wheels"
    assert settings.cache_dir == project / ".cache"
    assert settings.patches_dir == project / "../shared/patches"
    assert settings.target("t1").containerfile == project / "containerfiles/t1/Containerfile"


def test_relative_settings_path_still_gives_absolute_paths(tmp_path, monkeypatch):
    write_settings(tmp_path, "output_dir: out\n")
    monkeypatch.chdir(tmp_path)

    settings = load_settings(Path("conf/settings.yaml"))

    assert settings.output_dir.is_absolute()
    assert settings.output_dir == (tmp_path / "conf").resolve() / "out"


def test_absolute_home_and_env_paths_are_expanded_not_joined(tmp_path, isolated_home, monkeypatch):
    monkeypatch.setenv("MB_TEST_DIR", str(tmp_path / "from-env"))
    path = write_settings(tmp_path, f"""\
        output_dir: {tmp_path / 'abs-out'}
        cache_dir: ~/cache
        patches_dir: $MB_TEST_DIR/patches
        """)

    settings = load_settings(path)

    assert settings.output_dir == tmp_path / "abs-out"
    assert settings.cache_dir == isolated_home / "cache"
    assert settings.patches_dir == tmp_path / "from-env" / "patches"


# -- unknown keys ----------------------------------------------------------------------------
def test_unknown_top_level_key_names_file_line_and_key(tmp_path):
    path = write_settings(tmp_path, """\
        output_dir: out
        # a comment

        ouptut_dir: typo
        """)

    message = settings_error(path)

    assert message.startswith(f"{path}:4: ouptut_dir: unknown key")
    assert "output_dir" in message  # lists what is allowed


def test_unknown_nested_key_names_file_line_and_dotted_key(tmp_path):
    path = write_settings(tmp_path, """\
        upstream:
          retries: 2
          index_ur: https://example.org/simple/
        """)

    message = settings_error(path)

    assert message.startswith(f"{path}:3: upstream.index_ur: unknown key")
    assert "index_url" in message


def test_unknown_key_inside_a_target_names_the_target(tmp_path):
    path = write_settings(tmp_path, """\
        targets:
          bookworm-x86_64:
            containerfile: Containerfile
            archh: amd64
        """)

    assert settings_error(path).startswith(f"{path}:4: targets.bookworm-x86_64.archh: unknown key")


# -- wrong types and values ------------------------------------------------------------------
@pytest.mark.parametrize(("text", "line", "key", "problem"), [
    ("upstream:\n  timeout_seconds: '60'\n", 2, "upstream.timeout_seconds", "expected int, got '60'"),
    ("upstream:\n  retries: yes\n", 2, "upstream.retries", "expected int, got True"),
    ("upstream:\n  cache_ttl_seconds: 1.5\n", 2, "upstream.cache_ttl_seconds", "expected int, got 1.5"),
    ("build:\n  pids_limit: on\n", 2, "build.pids_limit", "expected int, got True"),
    ("build:\n  memory: 8\n", 2, "build.memory", "expected str, got 8"),
    ("allow_prereleases: 1\n", 1, "allow_prereleases", "expected bool, got 1"),
    ("\noutput_dir: [a, b]\n", 2, "output_dir", "expected str, got ['a', 'b']"),
    ("upstream:\n  index_url: null\n", 2, "upstream.index_url", "expected str, got None"),
    ("upstream: 5\n", 1, "upstream", "expected a mapping, got int"),
], ids=["string for int", "yes for int", "float for int", "on for int", "int for str",
        "int for bool", "list for path", "null for index_url", "scalar for section"])
def test_wrong_type_is_an_error_naming_file_line_and_key(tmp_path, text, line, key, problem):
    path = write_settings(tmp_path, text)

    assert settings_error(path) == f"{path}:{line}: {key}: {problem}"


@pytest.mark.parametrize("value", [0, -5])
@pytest.mark.parametrize("key", ["upstream.timeout_seconds", "build.timeout_seconds",
                                 "build.pids_limit"])
def test_non_positive_limits_are_refused(tmp_path, key, value):
    section, name = key.split(".")
    path = write_settings(tmp_path, f"{section}:\n  {name}: {value}\n")

    assert settings_error(path) == f"{path}:2: {key}: must be a positive number, got {value}"


@pytest.mark.parametrize("url", ["ftp://example.org/simple/", "pypi.org/simple", "/srv/simple"])
def test_index_url_must_be_http_https_or_file(tmp_path, url):
    path = write_settings(tmp_path, f"upstream:\n  index_url: {url}\n")

    message = settings_error(path)

    assert message.startswith(f"{path}:2: upstream.index_url: must be an http(s):// or file:// URL")
    assert repr(url) in message


def test_target_without_containerfile_is_an_error(tmp_path):
    path = write_settings(tmp_path, "targets:\n  t1:\n    arch: arm64\n")

    assert settings_error(path) == f"{path}:2: targets.t1: missing key 'containerfile'"


@pytest.mark.parametrize("text", ["targets: {}\n", "targets: [a]\n", "targets: 3\n"])
def test_targets_must_be_a_non_empty_mapping(tmp_path, text):
    path = write_settings(tmp_path, text)

    assert settings_error(path).startswith(f"{path}:1: targets: expected a non-empty mapping")


def test_top_level_that_is_not_a_mapping_is_an_error(tmp_path):
    path = write_settings(tmp_path, "- a\n- b\n")

    assert settings_error(path) == f"{path}: (top level): expected a mapping, got list"


# -- invalid YAML ----------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "line"), [
    ("output_dir: out\nupstream: [1, 2\nbuild: {}\n", 3),
    ("upstream:\n\tindex_url: x\n", 2),
    ("output_dir: out\n  patches_dir: p\n", 2),
], ids=["unclosed list", "tab indent", "bad indentation"])
def test_invalid_yaml_names_file_and_line(tmp_path, text, line):
    path = write_settings(tmp_path, text)

    message = settings_error(path)

    assert message.startswith(f"{path}:{line}: not valid YAML: ")


# -- finding the file ------------------------------------------------------------------------
def test_explicit_settings_file_that_does_not_exist_is_an_error(tmp_path):
    missing = tmp_path / "nope.yaml"

    with pytest.raises(SettingsError, match=re.escape(f"{missing}: settings file not found")):
        load_settings(missing)


def test_explicit_settings_file_is_used_as_given(tmp_path):
    path = write_settings(tmp_path, "")

    assert find_settings_file(path) == path


def test_settings_file_in_the_working_directory_is_found(tmp_path, monkeypatch):
    (tmp_path / "settings.yaml").write_text("output_dir: here\n")
    monkeypatch.chdir(tmp_path)

    assert find_settings_file() == tmp_path / "settings.yaml"
    assert load_settings().output_dir == tmp_path.resolve() / "here"


# -- targets ---------------------------------------------------------------------------------
@pytest.fixture
def two_targets(tmp_path) -> Settings:
    return load_settings(write_settings(tmp_path, """\
        targets:
          bookworm-x86_64:
            containerfile: cf/bookworm
          trixie-arm64:
            containerfile: cf/trixie
            distribution: trixie
            arch: arm64
        """))


def test_targets_keep_file_order(two_targets):
    assert [t.name for t in two_targets.targets] == ["bookworm-x86_64", "trixie-arm64"]


def test_target_none_is_the_first_one(two_targets):
    assert two_targets.target(None).name == "bookworm-x86_64"


def test_target_by_name(two_targets):
    target = two_targets.target("trixie-arm64")

    assert (target.name, target.distribution, target.arch) == ("trixie-arm64", "trixie", "arm64")
    assert target.containerfile == two_targets.project_dir / "cf/trixie"


def test_unknown_target_lists_the_known_ones(two_targets):
    with pytest.raises(SettingsError) as excinfo:
        two_targets.target("bullseye")

    assert str(excinfo.value) == (f"unknown target 'bullseye'; {two_targets.source} defines: "
                                  "bookworm-x86_64, trixie-arm64")


def test_containerfile_path_expands_home_and_env_like_the_other_paths(tmp_path, isolated_home,
                                                                     monkeypatch):
    monkeypatch.setenv("MB_TEST_DIR", str(tmp_path / "from-env"))
    path = write_settings(tmp_path, """\
        targets:
          t1:
            containerfile: ~/cf/Containerfile
          t2:
            containerfile: $MB_TEST_DIR/Containerfile
        """)

    settings = load_settings(path)

    assert settings.target("t1").containerfile == isolated_home / "cf/Containerfile"
    assert settings.target("t2").containerfile == tmp_path / "from-env" / "Containerfile"


@pytest.mark.parametrize("key", ["cache_ttl_seconds", "retries"])
def test_negative_upstream_counts_are_rejected(tmp_path, key):
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text(f"upstream:\n  {key}: -1\n")
    with pytest.raises(SettingsError, match=rf"settings.yaml:2: upstream.{key}: must not be negative"):
        load_settings(settings_file)

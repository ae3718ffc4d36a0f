"""Specification of mirror_builder.config.settings: defaults, path resolution and strict validation."""

from __future__ import annotations

import re
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from mirror_builder.errors import SettingsError
from mirror_builder.config.settings import (
    BuildSettings,
    CarrySettings,
    Settings,
    TargetSettings,
    UpdatePolicy,
    UpstreamSettings,
    find_settings_file,
    format_duration,
    load_settings,
    parse_duration,
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
    assert settings.update == UpdatePolicy(track="newer", specifier=SpecifierSet(""),
                                           prereleases=False, min_release_age=timedelta(days=3))
    assert settings.carry == CarrySettings(allow_list=None, deny_list=None)


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
          in_memory: false
        allow_prereleases: true
        """)

    settings = load_settings(path)

    assert settings.upstream == UpstreamSettings(
        index_url="http://mirror.example/simple/", json_api_url="http://mirror.example/pypi/",
        cache_ttl_seconds=0, timeout_seconds=5, retries=0)
    assert settings.targets == (TargetSettings(name="trixie-arm64",
                                               containerfile=Path("/abs/Containerfile"),
                                               distribution="trixie", arch="arm64"),)
    assert settings.build == BuildSettings(timeout_seconds=10, memory="2g", pids_limit=100,
                                           in_memory=False)
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
    ("build:\n  in_memory: 'no'\n", 2, "build.in_memory", "expected bool, got 'no'"),
    ("allow_prereleases: 1\n", 1, "allow_prereleases", "expected bool, got 1"),
    ("\noutput_dir: [a, b]\n", 2, "output_dir", "expected str, got ['a', 'b']"),
    ("upstream:\n  index_url: null\n", 2, "upstream.index_url", "expected str, got None"),
    ("upstream: 5\n", 1, "upstream", "expected a mapping, got int"),
], ids=["string for int", "yes for int", "float for int", "on for int", "int for str",
        "string for bool", "int for bool", "list for path", "null for index_url", "scalar for section"])
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


def test_invalid_yaml_is_said_in_the_same_words_whichever_parser_read_it(tmp_path):
    """Settings are parsed by libyaml where PyYAML has it; its words for a mistake differ a
    little, so the mistake is said as the pure-Python parser says it."""
    path = write_settings(tmp_path, "build:\n  jobs: [1, 2\n  memory: 8g\n")

    assert settings_error(path) == (
        f"{path}:3: not valid YAML: expected ',' or ']', but got ':' (while parsing a flow "
        f"sequence that starts at line 2)")


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


# -- update: the update policy ---------------------------------------------------------------
def test_every_update_key_can_be_set(tmp_path):
    path = write_settings(tmp_path, """\
        update:
          track: 2
          specifier: ">=2.1,<2.4"
          prereleases: true
          min_release_age: 12h
        """)

    assert load_settings(path).update == UpdatePolicy(
        track=2, specifier=SpecifierSet(">=2.1,<2.4"), prereleases=True,
        min_release_age=timedelta(hours=12))


def test_update_keys_not_given_keep_their_defaults(tmp_path):
    path = write_settings(tmp_path, "update:\n  track: all\n")

    assert load_settings(path).update == UpdatePolicy(track="all")


def test_the_shipped_settings_file_shows_the_defaults():
    shipped = Path(__file__).resolve().parents[2] / "settings.yaml"

    settings = load_settings(shipped)

    assert settings.update == UpdatePolicy()
    assert settings.carry == CarrySettings()


@pytest.mark.parametrize("text", ["specifier: \"\"", "specifier: null", "specifier:"])
def test_an_empty_or_null_specifier_allows_any_version(tmp_path, text):
    path = write_settings(tmp_path, f"update:\n  {text}\n")

    assert load_settings(path).update.specifier == SpecifierSet("")


@pytest.mark.parametrize(("value", "problem"), [
    ("0", "must be newer, all or a positive number (the N newest releases), got 0"),
    ("-2", "must be newer, all or a positive number (the N newest releases), got -2"),
    ("'3'", "must be newer, all or a positive number (the N newest releases), got '3'"),
    ("yes", "must be newer, all or a positive number (the N newest releases), got True"),
    ("latest", "must be newer, all or a positive number (the N newest releases), got 'latest'"),
    ("1.5", "must be newer, all or a positive number (the N newest releases), got 1.5"),
    ("null", "must be newer, all or a positive number (the N newest releases), got None"),
])
def test_track_must_be_newer_all_or_a_positive_number(tmp_path, value, problem):
    path = write_settings(tmp_path, f"update:\n  prereleases: false\n  track: {value}\n")

    assert settings_error(path) == f"{path}:3: update.track: {problem}"


@pytest.mark.parametrize(("value", "problem"), [
    ('"2.1"', "'2.1' is not a PEP 440 version specifier (e.g. \">=2.1,<2.4\")"),
    ('">=2.1;<2.4"', "'>=2.1;<2.4' is not a PEP 440 version specifier (e.g. \">=2.1,<2.4\")"),
    ('"torch>=2"', "'torch>=2' is not a PEP 440 version specifier (e.g. \">=2.1,<2.4\")"),
    ("2.1", "expected str, got 2.1"),
    ("[\">=2\"]", "expected str, got ['>=2']"),
])
def test_a_bad_specifier_is_an_error_naming_file_line_and_key(tmp_path, value, problem):
    path = write_settings(tmp_path, f"update:\n  specifier: {value}\n")

    assert settings_error(path) == f"{path}:2: update.specifier: {problem}"


def test_prereleases_must_be_a_bool(tmp_path):
    path = write_settings(tmp_path, "update:\n  prereleases: 1\n")

    assert settings_error(path) == f"{path}:2: update.prereleases: expected bool, got 1"


@pytest.mark.parametrize(("value", "expected"), [
    ("0", timedelta(0)), ("'0'", timedelta(0)), ("0d", timedelta(0)), ("45s", timedelta(seconds=45)),
    ("90m", timedelta(minutes=90)), ("12h", timedelta(hours=12)), ("3d", timedelta(days=3)),
    ("2w", timedelta(weeks=2)), ("1d12h", timedelta(days=1, hours=12)),
])
def test_min_release_age_takes_durations(tmp_path, value, expected):
    path = write_settings(tmp_path, f"update:\n  min_release_age: {value}\n")

    assert load_settings(path).update.min_release_age == expected


@pytest.mark.parametrize("value", ["3", "'3'", "3 d", "3days", "-1d", "1.5d", "3D", "yes", "null",
                                   "''", "d"])
def test_a_bad_min_release_age_is_an_error_naming_file_line_and_key(tmp_path, value):
    path = write_settings(tmp_path, f"update:\n  min_release_age: {value}\n")

    message = settings_error(path)

    assert message.startswith(f"{path}:2: update.min_release_age: expected a duration like 0, "
                              f"12h, 3d or 2w (units: w d h m s), got ")


def test_an_unknown_update_key_lists_the_allowed_ones(tmp_path):
    path = write_settings(tmp_path, "update:\n  track: all\n  min_age: 3d\n")

    assert settings_error(path) == (f"{path}:3: update.min_age: unknown key (allowed here: "
                                    f"min_release_age, prereleases, specifier, track)")


@pytest.mark.parametrize(("duration", "text"), [
    (timedelta(0), "0 s"), (timedelta(seconds=40), "40 s"), (timedelta(hours=5), "5 h"),
    (timedelta(hours=5, minutes=30, seconds=9), "5 h 30 m"), (timedelta(days=3), "3 d"),
    (timedelta(days=1, minutes=5), "1 d"), (timedelta(weeks=2), "14 d"),
    (timedelta(days=3) - timedelta(microseconds=1), "2 d 23 h"), (-timedelta(minutes=5), "-5 m"),
])
def test_format_duration_cuts_down_to_two_units(duration, text):
    assert format_duration(duration) == text


def test_parse_duration_refuses_a_bool():
    with pytest.raises(ValueError):
        parse_duration(False)


# -- carry: allow and deny lists -------------------------------------------------------------
def test_carry_lists_are_resolved_against_the_settings_files_folder(tmp_path, monkeypatch):
    path = write_settings(tmp_path, "carry:\n  allow_list: lists/allow.txt\n"
                                    "  deny_list: ../deny.txt\n")
    (path.parent / "lists").mkdir()
    (path.parent / "lists" / "allow.txt").write_text("six\n")
    (tmp_path / "deny.txt").write_text("evil\n")
    monkeypatch.chdir(tmp_path)
    project = path.parent.resolve()

    assert load_settings(path).carry == CarrySettings(allow_list=project / "lists/allow.txt",
                                                      deny_list=project / "../deny.txt")


def test_carry_lists_may_be_null(tmp_path):
    path = write_settings(tmp_path, "carry:\n  allow_list: null\n  deny_list:\n")

    assert load_settings(path).carry == CarrySettings()


@pytest.mark.parametrize("key", ["allow_list", "deny_list"])
def test_a_carry_list_that_does_not_exist_is_an_error_naming_the_key(tmp_path, key):
    path = write_settings(tmp_path, f"carry:\n  {key}: missing.txt\n")

    assert settings_error(path) == (f"{path}:2: carry.{key}: "
                                    f"{path.parent.resolve() / 'missing.txt'}: no such file")


def test_a_carry_list_must_be_a_path(tmp_path):
    path = write_settings(tmp_path, "carry:\n  deny_list: [a, b]\n")

    assert settings_error(path) == f"{path}:2: carry.deny_list: expected str, got ['a', 'b']"


def test_an_unknown_carry_key_lists_the_allowed_ones(tmp_path):
    path = write_settings(tmp_path, "carry:\n  allowlist: x\n")

    assert settings_error(path) == (f"{path}:2: carry.allowlist: unknown key (allowed here: "
                                    f"allow_list, deny_list)")


# -- serve: the tokens file --------------------------------------------------------------------
def test_the_tokens_file_is_resolved_against_the_settings_files_folder_and_may_be_absent(tmp_path):
    from mirror_builder.config.settings import ServeSettings

    path = write_settings(tmp_path, "serve:\n  tokens_file: private/tokens\n")
    # Not required to exist: `mirror-builder tokens add` makes it.
    assert load_settings(path).serve == ServeSettings(
        tokens_file=path.parent.resolve() / "private/tokens")
    assert load_settings(write_settings(tmp_path, "serve:\n  tokens_file: null\n")).serve == \
        ServeSettings(tokens_file=None)


@pytest.mark.parametrize("text, problem", [
    ("serve:\n  tokens_file: 3\n", "serve.tokens_file: expected str, got 3"),
    ("serve:\n  tokens_file: ''\n", "serve.tokens_file: expected a file path or null"),
    ("serve:\n  token_file: x\n",
     "serve.token_file: unknown key (allowed here: fallback, tokens_file)"),
    ("serve:\n  fallback: sdists\n",
     "serve.fallback: expected one of off, redirect, wheels-only, got 'sdists'"),
])
def test_a_bad_serve_setting_is_an_error_naming_file_line_and_key(tmp_path, text, problem):
    path = write_settings(tmp_path, text)

    assert settings_error(path).startswith(f"{path}:2: {problem}")


@pytest.mark.parametrize("text, mode", [("", "off"), ("  fallback: off\n", "off"),
                                        ("  fallback: wheels-only\n", "wheels-only")])
def test_the_fallback_is_off_unless_asked_and_a_bare_yaml_off_means_off(tmp_path, text, mode):
    path = write_settings(tmp_path, "serve:\n  tokens_file: null\n" + text)
    assert load_settings(path).serve.fallback == mode

"""The update policy applied to what upstream offers, and the allow and deny lists
(mirror_builder/policy.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from mirror_builder.errors import SettingsError
from mirror_builder.config.overrides import PackageSettings, UpdateOverride
from mirror_builder.jobs.policy import CarryRules, Decision, Offer, decide, effective_policy
from mirror_builder.config.settings import CarrySettings, UpdatePolicy

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
OLD = NOW - timedelta(days=30)
NO_COOL_DOWN = UpdatePolicy(min_release_age=timedelta(0))


def offers(*versions: str, at: datetime | None = OLD) -> list[Offer]:
    return [Offer(Version(v), at) for v in versions]


def V(*versions: str) -> list[Version]:
    return [Version(v) for v in versions]


def table(decisions: list[Decision]) -> list[tuple[str, bool, str]]:
    return [(str(d.version), d.build, d.reason) for d in decisions]


def policy(**changes) -> UpdatePolicy:
    values = {"min_release_age": timedelta(0), **changes}
    if isinstance(values.get("specifier"), str):
        values["specifier"] = SpecifierSet(values["specifier"])
    return UpdatePolicy(**values)


# -- track: newer ---------------------------------------------------------------------------------
def test_newer_builds_every_release_newer_than_the_newest_we_carry():
    decisions = decide(offers("1.0", "1.1", "2.0", "2.1", "0.9"), V("1.0", "1.1"), policy(), NOW)

    assert table(decisions) == [
        ("2.1", True, "new release, newer than 1.1"),
        ("2.0", True, "new release, newer than 1.1"),
        ("1.1", False, "already carried"),
        ("1.0", False, "already carried"),
        ("0.9", False, "older than 1.1, the newest we carry (track: newer)"),
    ]


def test_newer_with_gaps_below_the_newest_carried_does_not_fill_them():
    decisions = decide(offers("1.0", "1.5", "2.0"), V("1.0", "2.0"), policy(), NOW)

    assert table(decisions) == [
        ("2.0", False, "already carried"),
        ("1.5", False, "older than 2.0, the newest we carry (track: newer)"),
        ("1.0", False, "already carried"),
    ]


def test_newer_with_nothing_carried_builds_the_newest_release_only():
    decisions = decide(offers("1.0", "2.0", "1.5"), [], policy(), NOW)

    assert table(decisions) == [
        ("2.0", True, "the newest release; nothing carried yet"),
        ("1.5", False, "older than 2.0, the newest release (nothing carried yet; track: newer)"),
        ("1.0", False, "older than 2.0, the newest release (nothing carried yet; track: newer)"),
    ]


def test_newer_with_nothing_carried_takes_the_newest_that_is_old_enough():
    fresh = Offer(Version("2.0"), NOW - timedelta(hours=5))
    decisions = decide([fresh, *offers("1.5", "1.0")], [], policy(min_release_age=timedelta(days=3)),
                       NOW)

    assert table(decisions) == [
        ("2.0", False, "too fresh: released 5 h ago, cool-down 3 d"),
        ("1.5", True, "the newest release; nothing carried yet"),
        ("1.0", False, "older than 1.5, the newest release (nothing carried yet; track: newer)"),
    ]


def test_newer_counts_from_the_newest_carried_version_the_specifier_covers():
    """A specifier tracks its own line: 2.3.x releases are built while 2.5 is carried too."""
    decisions = decide(offers("2.2", "2.3", "2.3.1", "2.5", "2.6"), V("2.3", "2.5"),
                       policy(specifier=">=2.1,<2.4"), NOW)

    assert table(decisions) == [
        ("2.6", False, "outside >=2.1,<2.4"),
        ("2.5", False, "already carried"),
        ("2.3.1", True, "new release, newer than 2.3"),
        ("2.3", False, "already carried"),
        ("2.2", False, "older than 2.3, the newest we carry (track: newer)"),
    ]


def test_newer_ignores_a_carried_pre_release_when_pre_releases_are_off():
    decisions = decide(offers("1.0", "1.1", "2.0rc1"), V("1.0", "2.0rc1"), policy(), NOW)

    assert table(decisions) == [
        ("2.0rc1", False, "already carried"),
        ("1.1", True, "new release, newer than 1.0"),
        ("1.0", False, "already carried"),
    ]


def test_carried_versions_that_upstream_no_longer_offers_still_count():
    decisions = decide(offers("1.0", "3.0"), V("2.0"), policy(), NOW)

    assert table(decisions) == [
        ("3.0", True, "new release, newer than 2.0"),
        ("1.0", False, "older than 2.0, the newest we carry (track: newer)"),
    ]


# -- track: all -----------------------------------------------------------------------------------
def test_all_builds_every_release_not_carried():
    decisions = decide(offers("1.0", "1.1", "2.0"), V("1.1"), policy(track="all"), NOW)

    assert table(decisions) == [
        ("2.0", True, "not carried yet (track: all)"),
        ("1.1", False, "already carried"),
        ("1.0", True, "not carried yet (track: all)"),
    ]


def test_all_still_honours_the_specifier_pre_releases_and_cool_down():
    fresh = Offer(Version("2.1"), NOW - timedelta(hours=1))
    decisions = decide([fresh, *offers("2.0", "2.1b1", "1.0")], [],
                       policy(track="all", specifier=">=2", min_release_age=timedelta(hours=12)),
                       NOW)

    assert table(decisions) == [
        ("2.1", False, "too fresh: released 1 h ago, cool-down 12 h"),
        ("2.1b1", False, "pre-release"),
        ("2.0", True, "not carried yet (track: all)"),
        ("1.0", False, "outside >=2"),
    ]


# -- track: N -------------------------------------------------------------------------------------
def test_n_builds_the_n_newest_not_carried():
    decisions = decide(offers("1.0", "1.1", "1.2", "1.3"), V("1.3"), policy(track=3), NOW)

    assert table(decisions) == [
        ("1.3", False, "already carried"),
        ("1.2", True, "among the 3 newest"),
        ("1.1", True, "among the 3 newest"),
        ("1.0", False, "not among the 3 newest"),
    ]


def test_n_of_one():
    decisions = decide(offers("1.0", "1.1"), [], policy(track=1), NOW)

    assert table(decisions) == [
        ("1.1", True, "the newest"),
        ("1.0", False, "not the newest (track: 1)"),
    ]


def test_n_counts_only_matching_releases_that_are_old_enough():
    fresh = Offer(Version("3.0"), NOW - timedelta(days=1))
    decisions = decide([fresh, *offers("2.0", "2.0rc1", "1.9", "1.8", "0.5")], [],
                       policy(track=2, specifier=">=1", min_release_age=timedelta(days=2)), NOW)

    assert table(decisions) == [
        ("3.0", False, "too fresh: released 1 d ago, cool-down 2 d"),
        ("2.0", True, "among the 2 newest"),
        ("2.0rc1", False, "pre-release"),
        ("1.9", True, "among the 2 newest"),
        ("1.8", False, "not among the 2 newest"),
        ("0.5", False, "outside >=1"),
    ]


def test_n_counts_a_carried_release_whatever_its_age():
    fresh_carried = Offer(Version("3.0"), NOW - timedelta(hours=1))
    decisions = decide([fresh_carried, *offers("2.0", "1.0")], V("3.0"),
                       policy(track=2, min_release_age=timedelta(days=3)), NOW)

    assert table(decisions) == [
        ("3.0", False, "already carried"),
        ("2.0", True, "among the 2 newest"),
        ("1.0", False, "not among the 2 newest"),
    ]


# -- pre-releases and specifiers ------------------------------------------------------------------
def test_pre_releases_are_skipped_by_default():
    decisions = decide(offers("1.0", "2.0a1", "2.0.dev3"), V("1.0"), policy(), NOW)

    assert table(decisions) == [
        ("2.0a1", False, "pre-release"),
        ("2.0.dev3", False, "pre-release"),
        ("1.0", False, "already carried"),
    ]


def test_pre_releases_are_built_when_the_policy_allows_them():
    decisions = decide(offers("1.0", "2.0a1"), V("1.0"), policy(prereleases=True), NOW)

    assert table(decisions)[0] == ("2.0a1", True, "new release, newer than 1.0")


def test_a_specifier_naming_a_pre_release_lets_pre_releases_in():
    decisions = decide(offers("1.0", "2.0rc1", "2.0rc2"), [], policy(track="all",
                                                                      specifier=">=2.0rc1"), NOW)

    assert table(decisions) == [
        ("2.0rc2", True, "not carried yet (track: all)"),
        ("2.0rc1", True, "not carried yet (track: all)"),
        ("1.0", False, "outside >=2.0rc1"),
    ]


def test_only_pre_releases_upstream_still_builds_nothing_without_prereleases():
    decisions = decide(offers("1.0a1", "1.0b1"), [], policy(), NOW)

    assert [d.build for d in decisions] == [False, False]


def test_the_reason_shows_the_specifier_lower_bound_first():
    decisions = decide(offers("3.0"), [], policy(specifier="<2.4, >=2.1, !=2.2.*"), NOW)

    assert decisions == [Decision(Version("3.0"), False, "outside >=2.1,!=2.2.*,<2.4")]


# -- the cool-down --------------------------------------------------------------------------------
COOL = policy(track="all", min_release_age=timedelta(days=3))


@pytest.mark.parametrize(("age", "build", "reason"), [
    (timedelta(days=3), True, "not carried yet (track: all)"),
    (timedelta(days=3, seconds=1), True, "not carried yet (track: all)"),
    (timedelta(days=3) - timedelta(microseconds=1), False,
     "too fresh: released 2 d 23 h ago, cool-down 3 d"),
    (timedelta(hours=5, minutes=30), False, "too fresh: released 5 h 30 m ago, cool-down 3 d"),
    (timedelta(0), False, "too fresh: released 0 s ago, cool-down 3 d"),
    (-timedelta(minutes=5), False, "too fresh: upload time 5 m in the future, cool-down 3 d"),
], ids=["exactly the age", "a second older", "a microsecond too young", "hours", "just now",
        "in the future"])
def test_cool_down_boundaries(age, build, reason):
    decisions = decide([Offer(Version("1.0"), NOW - age)], [], COOL, NOW)

    assert decisions == [Decision(Version("1.0"), build, reason)]


def test_unknown_upload_time_is_held_back_by_a_cool_down_and_says_so():
    decisions = decide(offers("1.0", at=None), [], COOL, NOW)

    assert decisions == [Decision(Version("1.0"), False, "release time unknown: held back by the "
                                  "cool-down of 3 d (min_release_age: 0 builds it)")]


def test_unknown_upload_time_is_built_without_a_cool_down():
    decisions = decide(offers("1.0", at=None), [], policy(track="all"), NOW)

    assert decisions == [Decision(Version("1.0"), True, "not carried yet (track: all)")]


def test_the_same_version_offered_twice_takes_its_earliest_known_time():
    decisions = decide([Offer(Version("1.0"), None), Offer(Version("1.0"), NOW - timedelta(hours=1)),
                        Offer(Version("1.0"), OLD)], [], COOL, NOW)

    assert decisions == [Decision(Version("1.0"), True, "not carried yet (track: all)")]


# -- edges ----------------------------------------------------------------------------------------
def test_nothing_offered_decides_nothing():
    assert decide([], V("1.0"), policy(), NOW) == []


def test_decisions_are_newest_first_by_version_not_by_offer_order():
    decisions = decide(offers("1.10", "1.9", "1.2", "1.11"), [], policy(track="all"), NOW)

    assert [str(d.version) for d in decisions] == ["1.11", "1.10", "1.9", "1.2"]


def test_equal_versions_spelled_differently_count_as_carried():
    decisions = decide(offers("1.0.0"), V("1.0"), policy(), NOW)

    assert decisions == [Decision(Version("1.0.0"), False, "already carried")]


def test_decide_takes_iterables_once():
    decisions = decide(iter(offers("1.0", "2.0")), iter(V("1.0")), policy(), NOW)

    assert table(decisions)[0] == ("2.0", True, "new release, newer than 1.0")


def test_the_default_policy_has_a_three_day_cool_down():
    fresh = Offer(Version("2.0"), NOW - timedelta(days=2))
    decisions = decide([fresh, *offers("1.0")], V("1.0"), UpdatePolicy(), NOW)

    assert table(decisions)[0] == ("2.0", False, "too fresh: released 2 d ago, cool-down 3 d")


# -- effective_policy -----------------------------------------------------------------------------
def test_a_package_override_replaces_only_the_keys_it_gives():
    base = UpdatePolicy(track="newer", specifier=SpecifierSet(">=1"), prereleases=False,
                        min_release_age=timedelta(days=3))
    package = PackageSettings("torch", update=UpdateOverride(track=2,
                                                             min_release_age=timedelta(0)))

    assert effective_policy(base, package) == UpdatePolicy(
        track=2, specifier=SpecifierSet(">=1"), prereleases=False, min_release_age=timedelta(0))


def test_no_package_override_is_the_global_policy():
    base = UpdatePolicy(track="all")

    assert effective_policy(base, PackageSettings("six")) == base


def test_describe_policy():
    assert UpdatePolicy().describe() == "track: newer, any version, no pre-releases, cool-down 3 d"
    assert policy(track=2, specifier="<2.4,>=2.1", prereleases=True).describe() == (
        "track: 2, >=2.1,<2.4, pre-releases, no cool-down")


# -- CarryRules -----------------------------------------------------------------------------------
def write_list(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_no_lists_carry_everyone():
    rules = CarryRules.load(CarrySettings())

    assert rules.allowed("six") and not rules.denied("six")
    assert rules.why_not("six") is None
    assert rules.may_carry("six")


def test_the_deny_list_names_its_file_and_line(tmp_path):
    deny = write_list(tmp_path, "deny.txt", "# never these\n\nevil-pkg\n  Six   # because\n")
    rules = CarryRules.load(CarrySettings(deny_list=deny))

    assert rules.denied("six") and rules.denied("SIX") and rules.denied("Evil_Pkg")
    assert not rules.denied("requests")
    assert rules.allowed("six")  # there is no allow list
    assert rules.why_not("six") == f"six is on the deny list ({deny}:4)"
    assert rules.why_not("requests") is None
    assert not rules.may_carry("six")


def test_the_allow_list_lets_only_its_names_in(tmp_path):
    allow = write_list(tmp_path, "allow.txt", "requests\nzope.interface\n")
    rules = CarryRules.load(CarrySettings(allow_list=allow))

    assert rules.allowed("requests") and rules.allowed("Zope-Interface")
    assert not rules.allowed("six")
    assert rules.why_not("six") == f"six is not on the allow list ({allow})"
    assert rules.why_not("requests") is None


def test_the_deny_list_wins_over_the_allow_list(tmp_path):
    allow = write_list(tmp_path, "allow.txt", "six\n")
    deny = write_list(tmp_path, "deny.txt", "six\n")
    rules = CarryRules.load(CarrySettings(allow_list=allow, deny_list=deny))

    assert rules.allowed("six") and rules.denied("six")
    assert rules.why_not("six") == f"six is on the deny list ({deny}:1)"


def test_an_empty_allow_list_allows_no_one(tmp_path):
    allow = write_list(tmp_path, "allow.txt", "# nobody yet\n")
    rules = CarryRules.load(CarrySettings(allow_list=allow))

    assert not rules.allowed("six")


def test_a_name_listed_twice_is_reported_at_its_first_line(tmp_path):
    deny = write_list(tmp_path, "deny.txt", "six\nSix\n")

    assert CarryRules.load(CarrySettings(deny_list=deny)).why_not("six") == (
        f"six is on the deny list ({deny}:1)")


@pytest.mark.parametrize("line", ["six==1.16", "-six", "six pkg", "six,", "six.", "requests[socks]"])
def test_a_line_that_is_not_a_project_name_is_an_error_naming_file_and_line(tmp_path, line):
    deny = write_list(tmp_path, "deny.txt", f"ok\n{line}  # comment\n")

    with pytest.raises(SettingsError) as caught:
        CarryRules.load(CarrySettings(deny_list=deny))

    assert str(caught.value) == (f"{deny}:2: {line!r} is not a project name "
                                 f"(one name a line; # starts a comment)")


@pytest.mark.parametrize("key", ["allow_list", "deny_list"])
def test_a_missing_list_file_names_the_settings_key(tmp_path, key):
    missing = tmp_path / "gone.txt"

    with pytest.raises(SettingsError) as caught:
        CarryRules.load(CarrySettings(**{key: missing}))

    assert str(caught.value) == f"carry.{key}: {missing}: no such file"

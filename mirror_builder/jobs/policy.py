"""Which upstream releases to carry: the update policy, and the allow and deny lists.

decide() is the update policy (settings.yaml's update:, a package's own update: override) applied
to what upstream offers; it is pure, so `mirror-builder update` (and its tests) give it the offers,
the versions we carry and the time. CarryRules reads carry.allow_list / carry.deny_list: who may
be carried at all, honoured by every command.

How decide() reads the policy, one decision per offered version, newest first:

- A version we carry is never built again here ("already carried").
- A version outside the specifier is skipped; so is a pre-release, unless prereleases is true or
  the specifier names a pre-release itself (packaging's rule: ">=2.4rc1" lets them in). Unlike
  an install, a project with nothing but pre-releases does not let them in either.
- The cool-down: a release is built once it is at least min_release_age old (exactly that age
  is old enough). A release whose upload time upstream does not give is held back whenever
  there is a cool-down, since its age cannot be known; min_release_age: 0 (for that package)
  builds it. The reason says so.
- track: newer builds every eligible release newer than the newest version we carry that the
  policy covers (in the specifier, and a pre-release only when pre-releases are allowed): so a
  specifier such as ">=2.1,<2.4" keeps following 2.3.x even while 2.5 is carried as well. With
  nothing carried it builds the newest eligible release only (one that is not too fresh: the
  fresher ones follow once their cool-down is over).
- track: all builds every eligible release not carried.
- track: N keeps the N newest: the N newest releases in the specifier that are old enough (a
  carried one counts whatever its age), minus those carried.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from mirror_builder.errors import SettingsError
from mirror_builder.config.overrides import effective_policy
from mirror_builder.config.settings import CarrySettings, UpdatePolicy, describe_specifier, format_duration

__all__ = ["CarryRules", "Decision", "Offer", "decide", "effective_policy"]

# PEP 508's name, as the core metadata specification gives it.
_PROJECT_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


@dataclass(frozen=True)
class Offer:
    """A version upstream offers: one per version with a sdist that is not yanked. upload_time is
    the sdist's (timezone-aware), None when the index does not give it."""

    version: Version
    upload_time: datetime | None = None


@dataclass(frozen=True)
class Decision:
    version: Version
    build: bool
    reason: str


def decide(offers: Iterable[Offer], carried: Iterable[Version], policy: UpdatePolicy,
           now: datetime) -> list[Decision]:
    """What to do with each offered version under policy, newest first (see the module's
    docstring). now and the upload times must both be timezone-aware, or both naive."""
    upload_times = _earliest_upload_times(offers)
    have = set(carried)
    newest_carried = max((v for v in have if _covered(v, policy)), default=None)
    decisions: dict[Version, Decision] = {}
    eligible: list[Version] = []  # covered, and carried or old enough: newest first
    for version in sorted(upload_times, reverse=True):
        if version in have:
            if _covered(version, policy):
                eligible.append(version)
            decisions[version] = Decision(version, False, "already carried")
        elif (reason := _held_back(version, upload_times[version], policy, newest_carried,
                                   now)) is not None:
            decisions[version] = Decision(version, False, reason)
        else:
            eligible.append(version)
    for rank, version in enumerate(eligible):
        if version not in decisions:  # not carried
            decisions[version] = _by_track(version, rank, eligible, policy, newest_carried)
    return [decisions[v] for v in sorted(decisions, reverse=True)]


def _earliest_upload_times(offers: Iterable[Offer]) -> dict[Version, datetime | None]:
    """Each offered version's upload time; the same version twice: its earliest known one."""
    by_version: dict[Version, datetime | None] = {}
    for offer in offers:
        known = [t for t in (by_version.get(offer.version), offer.upload_time) if t is not None]
        by_version[offer.version] = min(known) if known else None
    return by_version


def _allows_prereleases(policy: UpdatePolicy) -> bool:
    return policy.prereleases or bool(policy.specifier.prereleases)


def _covered(version: Version, policy: UpdatePolicy) -> bool:
    """In the policy's specifier, and a pre-release only when the policy allows them."""
    return policy.specifier.contains(version, prereleases=True) and \
        (_allows_prereleases(policy) or not version.is_prerelease)


def _held_back(version: Version, upload_time: datetime | None, policy: UpdatePolicy,
               newest_carried: Version | None, now: datetime) -> str | None:
    """Why a version we do not carry is not built whatever its rank, or None when it may be."""
    if not policy.specifier.contains(version, prereleases=True):
        return f"outside {describe_specifier(policy.specifier)}"
    if version.is_prerelease and not _allows_prereleases(policy):
        return "pre-release"
    if policy.track == "newer" and newest_carried is not None and version < newest_carried:
        return f"older than {newest_carried}, the newest we carry (track: newer)"
    return _too_fresh(upload_time, policy.min_release_age, now)


def _too_fresh(upload_time: datetime | None, cool_down: timedelta, now: datetime) -> str | None:
    if cool_down <= timedelta(0):
        return None
    if upload_time is None:
        return (f"release time unknown: held back by the cool-down of {format_duration(cool_down)}"
                f" (min_release_age: 0 builds it)")
    age = now - upload_time
    if age >= cool_down:
        return None
    if age < timedelta(0):
        return (f"too fresh: upload time {format_duration(-age)} in the future, cool-down "
                f"{format_duration(cool_down)}")
    return f"too fresh: released {format_duration(age)} ago, cool-down {format_duration(cool_down)}"


def _by_track(version: Version, rank: int, eligible: list[Version], policy: UpdatePolicy,
              newest_carried: Version | None) -> Decision:
    """The decision for an eligible version we do not carry, at rank among the eligible ones."""
    if policy.track == "all":
        return Decision(version, True, "not carried yet (track: all)")
    if policy.track == "newer" and newest_carried is not None:
        return Decision(version, True, f"new release, newer than {newest_carried}")
    if policy.track == "newer":
        if rank == 0:
            return Decision(version, True, "the newest release; nothing carried yet")
        return Decision(version, False, f"older than {eligible[0]}, the newest release "
                                        f"(nothing carried yet; track: newer)")
    if rank < policy.track:
        return Decision(version, True, f"among the {policy.track} newest"
                        if policy.track > 1 else "the newest")
    return Decision(version, False, f"not among the {policy.track} newest"
                    if policy.track > 1 else "not the newest (track: 1)")


@dataclass(frozen=True)
class CarryRules:
    """The allow list (who may be carried; None: anyone) and the deny list (never carried), by
    canonical name, each with the line that names it."""

    allow: dict[NormalizedName, int] | None = None
    deny: dict[NormalizedName, int] = field(default_factory=dict)
    allow_path: Path | None = None
    deny_path: Path | None = None

    @classmethod
    def load(cls, carry: CarrySettings) -> CarryRules:
        allow = _read_list(carry.allow_list, "carry.allow_list") if carry.allow_list else None
        deny = _read_list(carry.deny_list, "carry.deny_list") if carry.deny_list else {}
        return cls(allow, deny, carry.allow_list, carry.deny_list)

    def allowed(self, name: str) -> bool:
        """On the allow list, or there is none (the deny list is not consulted)."""
        return self.allow is None or canonicalize_name(name) in self.allow

    def denied(self, name: str) -> bool:
        return canonicalize_name(name) in self.deny

    def may_carry(self, name: str) -> bool:
        return self.why_not(name) is None

    def why_not(self, name: str) -> str | None:
        """Why name may not be carried (the deny list first), or None when it may."""
        canonical = canonicalize_name(name)
        if canonical in self.deny:
            return f"{name} is on the deny list ({self.deny_path}:{self.deny[canonical]})"
        if self.allow is not None and canonical not in self.allow:
            return f"{name} is not on the allow list ({self.allow_path})"
        return None


def _read_list(path: Path, key: str) -> dict[NormalizedName, int]:
    """A list file: a project name a line; # starts a comment; blank lines are fine."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(f"{key}: {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{key}: {path}: cannot read it: {exc}") from None
    names: dict[NormalizedName, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        if not _PROJECT_NAME.match(entry):
            raise SettingsError(f"{path}:{number}: {entry!r} is not a project name "
                                f"(one name a line; # starts a comment)")
        names.setdefault(canonicalize_name(entry), number)
    return names

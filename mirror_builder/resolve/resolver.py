"""Resolve requirements to sdist candidates with resolvelib (backtracking, not highest-per-name).

The provider answers only resolvelib's questions. Listing files and reading dependency metadata
is a Finder's job, so the resolver is pure logic and is tested against an in-memory index.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import resolvelib
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import (InvalidSdistFilename, InvalidWheelFilename, NormalizedName,
                             canonicalize_name, parse_sdist_filename, parse_wheel_filename)
from packaging.version import Version

from mirror_builder.errors import ResolutionError
from mirror_builder.resolve.target import TargetEnvironment
from mirror_builder.resolve.pages import DistributionFile

log = logging.getLogger(__name__)


class Finder(Protocol):
    """Where candidates and their dependencies come from."""

    def project_files(self, name: str) -> list[DistributionFile]: ...

    def dependencies(self, candidate: "Candidate") -> list[str] | None:
        """Requires-Dist of the candidate, or None when unknown before it is built."""


@dataclass(frozen=True)
class Candidate:
    """One version of a project, as an sdist (or a local sdist given directly)."""

    name: NormalizedName
    version: Version
    file: DistributionFile
    extras: frozenset[str] = frozenset()

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"

    def with_extras(self, extras: frozenset[str]) -> "Candidate":
        return Candidate(self.name, self.version, self.file, extras)

    def __str__(self) -> str:
        extras = f"[{','.join(sorted(self.extras))}]" if self.extras else ""
        return f"{self.name}{extras}=={self.version}"


@dataclass(frozen=True)
class Resolution:
    """A consistent set of pins, and for each pin the requirements that selected it."""

    pins: Mapping[NormalizedName, Candidate]
    # child name -> [(parent pin or None for a top-level requirement, requirement text)]
    why: Mapping[NormalizedName, tuple[tuple[str | None, str], ...]] = field(default_factory=dict)
    # parent name -> child names, from the dependencies used during resolution
    edges: Mapping[NormalizedName, tuple[NormalizedName, ...]] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Candidate]:
        return iter(self.pins.values())


def identify(name: str, extras: Iterable[str]) -> str:
    extras = sorted(canonicalize_name(e) for e in extras)
    base = canonicalize_name(name)
    return f"{base}[{','.join(extras)}]" if extras else base


def sdist_version(file: DistributionFile, name: str) -> Version | None:
    try:
        parsed_name, version = parse_sdist_filename(file.filename)
    except InvalidSdistFilename:
        return None
    if parsed_name != canonicalize_name(name):
        return None
    return version


def file_version(file: DistributionFile, name: str) -> Version | None:
    """The version of an sdist or a wheel of project name, or None if it is neither."""
    if file.is_wheel:
        try:
            wheel_name, version, _, _ = parse_wheel_filename(file.filename)
        except InvalidWheelFilename:
            return None
        return version if wheel_name == canonicalize_name(name) else None
    return sdist_version(file, name)


class Provider(resolvelib.AbstractProvider):
    def __init__(self, finder: Finder, target: TargetEnvironment, *,
                 constraints: Mapping[NormalizedName, SpecifierSet] | None = None,
                 allow_prereleases: bool = False,
                 preferred: Mapping[NormalizedName, Version] | None = None,
                 direct: Mapping[NormalizedName, Candidate] | None = None,
                 distributions: str = "sdist",
                 any_file: frozenset[NormalizedName] = frozenset()) -> None:
        self.finder = finder
        # "sdist" to resolve what to build upstream; "wheel" to resolve over our own index.
        self.distributions = distributions
        # Projects whose versions may come from any file: their source comes from an override
        # (or they are taken pre-built), so an sdist on the index is not needed.
        self.any_file = any_file
        self.target = target
        self.constraints = dict(constraints or {})
        self.allow_prereleases = allow_prereleases
        self.preferred = dict(preferred or {})
        self.direct = dict(direct or {})
        self.dependency_cache: dict[Candidate, list[Requirement]] = {}

    def identify(self, requirement_or_candidate: Requirement | Candidate) -> str:
        return identify(requirement_or_candidate.name, requirement_or_candidate.extras)

    def get_preference(self, identifier, resolutions, candidates, information, backtrack_causes):
        # Pinned and direct requirements first, then what caused backtracking, then fewest options.
        infos = list(information[identifier])
        pinned = any(
            spec.operator in ("==", "===") and "*" not in spec.version
            for info in infos for spec in info.requirement.specifier)
        cause = any(c.requirement.name == identifier.split("[")[0] for c in backtrack_causes)
        return (not pinned, not cause, identifier)

    def find_matches(self, identifier, requirements, incompatibilities):
        name = canonicalize_name(identifier.split("[")[0])
        extras = frozenset(e for r in requirements[identifier] for e in r.extras)
        reqs = list(requirements[identifier])
        bad = {c.version for c in incompatibilities[identifier]}
        if name in self.direct:
            candidate = self.direct[name]
            if candidate.version in bad:
                return []
            if all(self._spec_allows(r.specifier, candidate.version, pinned=True) for r in reqs):
                return [candidate.with_extras(extras)]
            return []
        specifier = SpecifierSet()
        for r in reqs:
            specifier &= r.specifier
        combined = specifier & self.constraints.get(name, SpecifierSet())
        pinned = any(s.operator == "===" or (s.operator == "==" and not s.version.endswith(".*"))
                     for s in combined)
        by_version: dict[Version, DistributionFile] = {}
        for file in self.finder.project_files(name):
            wanted = file.is_wheel if self.distributions == "wheel" else file.is_sdist
            if not wanted and not (name in self.any_file and (file.is_wheel or file.is_sdist)):
                continue
            version = file_version(file, name)
            if version is None or version in bad or version in by_version:
                continue
            if file.yanked and not pinned:
                continue  # PEP 592: a yanked file is only chosen by an exact pin
            if not self.target.accepts_python(file.requires_python):
                continue
            # One check against the combined set, so that a pre-release named by either the
            # requirement or the constraint lets pre-releases in.
            if not self._spec_allows(combined, version, pinned):
                continue
            by_version[version] = file
        preferred = self.preferred.get(name)
        ordered = sorted(by_version, key=lambda v: (v == preferred, v), reverse=True)
        return [Candidate(name, v, by_version[v], extras) for v in ordered]

    def _spec_allows(self, specifier: SpecifierSet, version: Version, pinned: bool) -> bool:
        # Pre-releases only when asked for: globally, or by a specifier that names one.
        prereleases = self.allow_prereleases or bool(specifier.prereleases) or pinned
        return specifier.contains(version, prereleases=prereleases)

    def is_satisfied_by(self, requirement: Requirement, candidate: Candidate) -> bool:
        if canonicalize_name(requirement.name) != candidate.name:
            return False
        if requirement.url:
            return candidate.file.url == requirement.url
        return self._spec_allows(requirement.specifier, candidate.version, pinned=True)

    def get_dependencies(self, candidate: Candidate) -> list[Requirement]:
        deps = []
        if candidate.extras:
            # The extra-carrying candidate depends on its own base, at the same version.
            deps.append(Requirement(f"{candidate.name}=={candidate.version}"))
        for req in self.requirements_of(candidate):
            if self.target.applies(req, candidate.extras):
                deps.append(req)
        return deps

    def requirements_of(self, candidate: Candidate) -> list[Requirement]:
        base = candidate.with_extras(frozenset())
        if base not in self.dependency_cache:
            raw = self.finder.dependencies(base)
            if raw is None:
                log.debug("%s: dependencies unknown until it is built", base)
                raw = []
            reqs = []
            for text in raw:
                try:
                    reqs.append(Requirement(text))
                except InvalidRequirement as exc:
                    log.warning("%s: ignoring unparsable requirement %r: %s", base, text, exc)
            self.dependency_cache[base] = reqs
        return self.dependency_cache[base]


def resolve(requirements: Sequence[Requirement], finder: Finder, target: TargetEnvironment, *,
            constraints: Mapping[NormalizedName, SpecifierSet] | None = None,
            allow_prereleases: bool = False,
            preferred: Mapping[NormalizedName, Version] | None = None,
            direct: Mapping[NormalizedName, Candidate] | None = None,
            context: Sequence[str] = (), distributions: str = "sdist",
            any_file: frozenset[NormalizedName] = frozenset()) -> Resolution:
    """Resolve requirements (markers already applicable to the target) to one pin per name."""
    provider = Provider(finder, target, constraints=constraints,
                        allow_prereleases=allow_prereleases, preferred=preferred, direct=direct,
                        distributions=distributions, any_file=any_file)
    applicable = [r for r in requirements if target.applies(r)]
    required_by = RequiredBy()
    resolver = resolvelib.Resolver(provider, required_by)
    try:
        result = resolver.resolve(applicable, max_rounds=5000)
    except resolvelib.ResolutionImpossible as exc:
        # A resolution inside a chain resolves what its last package needs to build.
        asked_by = context[-1] if context and "==" in context[-1] else None
        raise ResolutionError(explain_conflict(exc.causes, provider, target, required_by,
                                               asked_by), chain=context) from None
    except resolvelib.ResolutionTooDeep:
        raise ResolutionError("resolution took too many rounds; add constraints to narrow it",
                              chain=context) from None

    pins: dict[NormalizedName, Candidate] = {}
    for identifier, candidate in result.mapping.items():
        if "[" not in identifier:
            pins[candidate.name] = candidate
    why: dict[NormalizedName, list[tuple[str | None, str]]] = {}
    edges: dict[NormalizedName, set[NormalizedName]] = {}
    for identifier, criterion in result.criteria.items():
        child = canonicalize_name(identifier.split("[")[0])
        for info in criterion.information:
            parent = info.parent
            if parent is not None and parent.name == child:
                continue  # an extra's link to its own base
            why.setdefault(child, []).append((parent.pin if parent else None, str(info.requirement)))
            if parent is not None:
                edges.setdefault(parent.name, set()).add(child)
    return Resolution(
        pins=pins,
        why={k: tuple(v) for k, v in why.items()},
        edges={k: tuple(sorted(v)) for k, v in edges.items()},
    )


class RequiredBy(resolvelib.BaseReporter):
    """Remembers which candidate required each project, to tell the chain behind a failure."""

    def __init__(self) -> None:
        self.parents: dict[NormalizedName, list[Candidate | None]] = {}

    def adding_requirement(self, requirement: Requirement, parent: Candidate | None) -> None:
        name = canonicalize_name(requirement.name)
        if parent is not None and parent.name == name:
            return  # an extra's link to its own base
        self.parents.setdefault(name, []).append(parent)

    def path_to(self, candidate: Candidate) -> tuple[str, ...]:
        """The pins from a top-level requirement down to candidate, candidate included."""
        path = [candidate.pin]
        seen = {candidate.name}
        current = candidate.name
        while True:
            parents = self.parents.get(current, [])
            if not parents or None in parents:
                break
            # The latest: what was added before backtracking may since have been undone.
            parent = parents[-1]
            if parent.name in seen:
                break
            seen.add(parent.name)
            path.append(parent.pin)
            current = parent.name
        return tuple(reversed(path))


WHEEL_ONLY_HINT = ("mirror-builder builds from sdists. To use {name} anyway, set pre_built: true "
                   "(take the upstream wheel as it is) or a source (url with sha256, or git with "
                   "tag) in {name}.yaml in the overrides folder")


def explain_conflict(causes, provider: Provider, target: TargetEnvironment,
                     required_by: RequiredBy | None = None, asked_by: str | None = None) -> str:
    """Say who wants what, like a resolver should, and why no version of it can be used.

    asked_by: the package whose build requirements these are; None for the user's own."""
    by_name: dict[NormalizedName, list] = {}
    for cause in causes:
        by_name.setdefault(canonicalize_name(cause.requirement.name), []).append(cause)
    return " Also: ".join(
        f"cannot resolve {name}: "
        f"{'; '.join(_who_wants_what(name, found, provider, required_by, asked_by))}. "
        f"{_why_no_version_fits(name, [c.requirement for c in found], provider, target)}"
        for name, found in sorted(by_name.items()))


def _who_wants_what(name: NormalizedName, causes, provider: Provider,
                    required_by: RequiredBy | None, asked_by: str | None) -> list[str]:
    # An extra's link to its own base (a[x]==1.0 requires a==1.0) says nothing new.
    telling = [c for c in causes if c.parent is None or c.parent.name != name] or list(causes)
    wants = []
    for cause in telling:
        if cause.parent is None:
            text = f"{asked_by} needs {cause.requirement} to build" if asked_by \
                else f"you asked for {cause.requirement}"
        else:
            path = required_by.path_to(cause.parent) if required_by else (cause.parent.pin,)
            text = f"{' -> '.join(path)} requires {cause.requirement}"
        if text not in wants:
            wants.append(text)
    constraint = provider.constraints.get(name)
    if constraint:
        wants.append(f"{name} is constrained to {constraint} (-c)")
    return wants


def _why_no_version_fits(name: NormalizedName, requirements: Sequence[Requirement],
                         provider: Provider, target: TargetEnvironment) -> str:
    if name in provider.direct:
        local = provider.direct[name]
        return f"{name} is the local sdist {local.file.filename} (version {local.version})"
    files = provider.finder.project_files(name)
    if not files:
        return f"{name} does not exist on the index; check the name"
    builds_from_sdist = provider.distributions == "sdist" and name not in provider.any_file
    offered = [f for f in files if _is_wanted(f, provider, name)]
    if builds_from_sdist and not offered:
        newest = max(_versions(files, name), default=None)
        every = f": every version, up to {newest}, exists only as wheels" if newest else ""
        return (f"{name} has no source distribution on the index (wheels only){every}. "
                + WHEEL_ONLY_HINT.format(name=name))
    specifiers = [r.specifier for r in requirements] + \
        [c for c in [provider.constraints.get(name)] if c]
    specifier = SpecifierSet()
    for one in specifiers:
        specifier &= one
    pinned = _pinned_version(specifier)
    usable = [f for f in offered if target.accepts_python(f.requires_python) and not f.yanked]
    usable_versions = _versions(usable, name)
    matching = {v for v in _versions(files, name)
                if provider._spec_allows(specifier, v, pinned is not None)}
    if not matching:
        reason = _no_version_allowed(name, specifiers, specifier, pinned, usable_versions, provider)
    elif not matching & set(_versions(offered, name)):
        reason = _only_as_wheels(name, matching)
    else:
        reason = _why_unusable(name, matching, offered, pinned, target)
    kind = "sdists" if builds_from_sdist else "wheels" if provider.distributions == "wheel" \
        else "files"
    listing = (f"{name} {kind} usable on Python {target.python_version}: "
               f"{_nearby(usable_versions, pinned)}")
    return f"{reason}. {listing}" if reason else listing


def _no_version_allowed(name: NormalizedName, specifiers: list[SpecifierSet],
                        combined: SpecifierSet, pinned: Version | None,
                        usable: list[Version], provider: Provider) -> str:
    distinct = list(dict.fromkeys(str(s) for s in specifiers))
    pre_releases = [v for v in usable if v.is_prerelease and combined.contains(v, prereleases=True)]
    if pre_releases:
        return (f"only pre-releases of {name} are allowed ({_nearby(pre_releases, None, 3)}); "
                f"pass --pre, or name one in the requirement ({name}=={pre_releases[-1]})")
    if len(distinct) > 1:
        takes = []
        for text in distinct:
            allowed = [v for v in usable if provider._spec_allows(SpecifierSet(text), v, False)]
            takes.append(f"{name}{text} alone would take {allowed[-1]}" if allowed
                         else f"no usable version is {name}{text}")
        return f"no version of {name} satisfies all of them ({', '.join(takes)})"
    if pinned is not None:
        return f"{name} has no version {pinned}"
    return f"{name} has no version matching {combined}" if combined else f"{name} has no release"


def _only_as_wheels(name: NormalizedName, versions: set[Version]) -> str:
    shown = sorted(versions)
    listed = ", ".join(str(v) for v in shown[-3:])
    older = f" (and {len(shown) - 3} older versions)" if len(shown) > 3 else ""
    verb = "exists" if len(shown) == 1 else "exist"
    return (f"{name} {listed}{older} {verb} only as wheels on the index. "
            + WHEEL_ONLY_HINT.format(name=name))


def _why_unusable(name: NormalizedName, matching: set[Version], offered: list[DistributionFile],
                  pinned: Version | None, target: TargetEnvironment) -> str:
    """What keeps the newest allowed versions out: requires-python, or a yank."""
    problems = []
    for version in sorted(matching & set(_versions(offered, name)), reverse=True)[:3]:
        files = [f for f in offered if file_version(f, name) == version]
        if not any(target.accepts_python(f.requires_python) for f in files):
            problems.append(f"{name} {version} requires Python {files[0].requires_python} (the "
                            f"target {target.name} has {target.python_version})")
        elif all(f.yanked for f in files) and pinned is None:
            why = files[0].yanked_reason or "no reason given"
            problems.append(f"{name} {version} is yanked ({why}); pin it with == to take it anyway")
    return "; ".join(problems)


def _is_wanted(file: DistributionFile, provider: Provider, name: NormalizedName) -> bool:
    if name in provider.any_file:
        return file.is_wheel or file.is_sdist
    return file.is_wheel if provider.distributions == "wheel" else file.is_sdist


def _versions(files: Iterable[DistributionFile], name: str) -> list[Version]:
    return sorted({v for f in files if (v := file_version(f, name)) is not None})


def _pinned_version(specifier: SpecifierSet) -> Version | None:
    """The version an exact == pin names, if the specifier has one."""
    for spec in specifier:
        if spec.operator in ("==", "===") and "*" not in spec.version:
            try:
                return Version(spec.version)
            except ValueError:
                return None
    return None


def _nearby(versions: list[Version], around: Version | None, count: int = 8) -> str:
    """Up to count versions: those nearest to around when given, else the newest ones."""
    if not versions:
        return "none"
    if around is None:
        start = max(0, len(versions) - count)
    else:
        at = bisect.bisect_left(versions, around)
        start = min(max(0, at - count // 2), max(0, len(versions) - count))
    text = ", ".join(str(v) for v in versions[start:start + count])
    if start > 0:
        text = "... " + text
    if start + count < len(versions):
        text += f" ... (the newest is {versions[-1]})"
    return text

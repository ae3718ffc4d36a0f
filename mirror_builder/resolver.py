"""Resolve requirements to sdist candidates with resolvelib (backtracking, not highest-per-name).

The provider answers only resolvelib's questions. Listing files and reading dependency metadata
is a Finder's job, so the resolver is pure logic and is tested against an in-memory index.
"""

from __future__ import annotations

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
from mirror_builder.target import TargetEnvironment
from mirror_builder.upstream import DistributionFile

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
    resolver = resolvelib.Resolver(provider, resolvelib.BaseReporter())
    try:
        result = resolver.resolve(applicable, max_rounds=5000)
    except resolvelib.ResolutionImpossible as exc:
        raise ResolutionError(explain_conflict(exc.causes, provider, target),
                              chain=context) from None
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


def explain_conflict(causes, provider: Provider, target: TargetEnvironment) -> str:
    """Say who wants what, like a resolver should."""
    wants = []
    names = set()
    for cause in causes:
        if cause.parent is not None:
            wants.append(f"{cause.parent.pin} requires {cause.requirement}")
        else:
            wants.append(f"you asked for {cause.requirement}")
        names.add(canonicalize_name(cause.requirement.name))
    detail = []
    for name in sorted(names):
        files = provider.finder.project_files(name)
        if not files:
            detail.append(f"{name} does not exist on the index")
            continue
        sdists = [f for f in files if f.is_sdist]
        if not sdists:
            detail.append(f"{name} has no source distribution on the index (wheels only)")
            continue
        usable = [f for f in sdists if target.accepts_python(f.requires_python) and not f.yanked]
        versions = sorted({v for f in usable if (v := sdist_version(f, name)) is not None})
        shown = ", ".join(str(v) for v in versions[-8:]) or "none"
        constraint = provider.constraints.get(name)
        extra = f"; constrained to {constraint}" if constraint else ""
        detail.append(f"{name} sdists usable on Python {target.python_version}: "
                      f"{'... ' if len(versions) > 8 else ''}{shown}{extra}")
    return "no versions satisfy the requirements: " + "; ".join(wants) + ". " + "; ".join(detail)

"""Resolve requirements to sdist candidates with resolvelib (backtracking, not highest-per-name).

The provider answers only resolvelib's questions. Listing files and reading dependency metadata
is a Finder's job, so the resolver is pure logic and is tested against an in-memory index.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import resolvelib
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from mirror_builder.errors import PackageError, ResolutionError
from mirror_builder.resolve.target import TargetEnvironment
from mirror_builder.resolve.explain import explain_conflict, pinned_version, summarize_conflict
from mirror_builder.resolve.pages import DistributionFile, file_version

log = logging.getLogger(__name__)


class Finder(Protocol):
    """Where candidates and their dependencies come from."""

    def project_files(self, name: str) -> list[DistributionFile]: ...

    def dependencies(self, candidate: "Candidate") -> list[str] | None:
        """Requires-Dist of the candidate, or None when unknown before it is built."""


@runtime_checkable
class Prefetching(Protocol):
    """A Finder that can start answering ahead, while the resolver is busy elsewhere: what
    resolvelib asks next is known one step early (a candidate's dependencies are looked up
    next, and the projects they name after that), and the answers come over the network."""

    def prefetch(self, names: Sequence[str], candidate: "Candidate | None" = None) -> None:
        """Start fetching these projects' files, and the candidate's dependencies."""


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
class Unbuildable:
    """Why a version cannot be built from source: a short reason for listings ("build
    requirement python-sbom is not on the index") and the full error behind it."""

    reason: str
    error: PackageError | None = field(default=None, compare=False)


# Asked of each candidate, newest first, as the resolver reaches it: None if it can be built.
# A version that cannot is passed over like one that does not match, so the resolver
# backtracks to an earlier one.
Vet = Callable[[Candidate], "Unbuildable | None"]


@dataclass(frozen=True)
class Resolution:
    """A consistent set of pins, and for each pin the requirements that selected it."""

    pins: Mapping[NormalizedName, Candidate]
    # child name -> [(parent pin or None for a top-level requirement, requirement text)]
    why: Mapping[NormalizedName, tuple[tuple[str | None, str], ...]] = field(default_factory=dict)
    # parent name -> child names, from the dependencies used during resolution
    edges: Mapping[NormalizedName, tuple[NormalizedName, ...]] = field(default_factory=dict)
    # name -> the versions passed over because they cannot be built, newest first
    skipped: Mapping[NormalizedName, tuple[tuple[Version, Unbuildable], ...]] = \
        field(default_factory=dict)

    def __iter__(self) -> Iterator[Candidate]:
        return iter(self.pins.values())


def identify(name: str, extras: Iterable[str]) -> str:
    extras = sorted(canonicalize_name(e) for e in extras)
    base = canonicalize_name(name)
    return f"{base}[{','.join(extras)}]" if extras else base


class Provider(resolvelib.AbstractProvider):
    # Asked of each candidate the resolver reaches (see resolve()); None: every one is usable.
    vet: Vet | None = None

    def __init__(self, finder: Finder, target: TargetEnvironment, *,
                 constraints: Mapping[NormalizedName, SpecifierSet] | None = None,
                 allow_prereleases: bool = False,
                 preferred: Mapping[NormalizedName, Version] | None = None,
                 direct: Mapping[NormalizedName, Candidate] | None = None,
                 distributions: str = "sdist",
                 any_file: frozenset[NormalizedName] = frozenset()) -> None:
        self.finder = finder
        self.skipped: dict[NormalizedName, dict[Version, Unbuildable]] = {}
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
        candidates = [Candidate(name, v, by_version[v], extras) for v in ordered]
        if candidates and isinstance(self.finder, Prefetching):
            self.finder.prefetch((), candidates[0].with_extras(frozenset()))
        if self.vet is None:
            return candidates
        return lambda: self._buildable(candidates)

    def _buildable(self, candidates: list[Candidate]) -> Iterator[Candidate]:
        # Lazily, so only the versions the resolver reaches are vetted (vetting one reads its
        # sdist and resolves its build environment).
        for candidate in candidates:
            why = self.vet(candidate.with_extras(frozenset()))
            if why is None:
                yield candidate
            else:
                self.skipped.setdefault(candidate.name, {})[candidate.version] = why

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

    def skipped_over(self, name: NormalizedName, requirements: Sequence[Requirement]
                     ) -> list[tuple[Version, Unbuildable]]:
        """The versions of name these requirements allow that were passed over, newest first."""
        allowed = [(v, why) for v, why in self.skipped.get(name, {}).items()
                   if all(self._spec_allows(r.specifier, v, pinned=True) for r in requirements)]
        return sorted(allowed, key=lambda item: item[0], reverse=True)

    def get_dependencies(self, candidate: Candidate) -> list[Requirement]:
        deps = []
        if candidate.extras:
            # The extra-carrying candidate depends on its own base, at the same version.
            deps.append(Requirement(f"{candidate.name}=={candidate.version}"))
        for req in self.requirements_of(candidate):
            if self.target.applies(req, candidate.extras):
                deps.append(req)
        if isinstance(self.finder, Prefetching):
            self.finder.prefetch([r.name for r in deps if canonicalize_name(r.name) not in self.direct])
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
            any_file: frozenset[NormalizedName] = frozenset(),
            vet: Vet | None = None) -> Resolution:
    """Resolve requirements (markers already applicable to the target) to one pin per name.

    vet: asked of each candidate the resolver reaches; a version it refuses is passed over (and
    listed in the resolution's skipped), except that a top-level exact pin is never replaced:
    its refusal is the error."""
    provider = Provider(finder, target, constraints=constraints,
                        allow_prereleases=allow_prereleases, preferred=preferred, direct=direct,
                        distributions=distributions, any_file=any_file)
    provider.vet = vet
    applicable = [r for r in requirements if target.applies(r)]
    required_by = RequiredBy()
    resolver = resolvelib.Resolver(provider, required_by)
    try:
        result = resolver.resolve(applicable, max_rounds=5000)
    except resolvelib.ResolutionImpossible as exc:
        pinned = _refused_pin(exc.causes, provider)
        if pinned is not None:
            raise pinned from None
        # A resolution inside a chain resolves what its last package needs to build.
        asked_by = context[-1] if context and "==" in context[-1] else None
        raise ResolutionError(explain_conflict(exc.causes, provider, target, required_by,
                                               asked_by), chain=context,
                              summary=summarize_conflict(exc.causes, provider)) from None
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
        skipped={name: tuple(sorted(found.items(), key=lambda item: item[0], reverse=True))
                 for name, found in provider.skipped.items()},
    )


def _refused_pin(causes, provider: Provider) -> PackageError | None:
    """The error of a top-level exact pin that cannot be built: that is the error to report,
    since no other version may replace it."""
    for cause in causes:
        if cause.parent is not None or pinned_version(cause.requirement.specifier) is None:
            continue
        name = canonicalize_name(cause.requirement.name)
        refused = provider.skipped_over(name, [cause.requirement])
        if refused and refused[0][1].error is not None:
            return refused[0][1].error
    return None


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

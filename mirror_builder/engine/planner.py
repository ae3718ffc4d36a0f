"""`plan`: what a bootstrap would build, in what order, with which overrides, without building.

Install requirements come from upstream metadata (PEP 658 files, else the JSON API or the
sdist's PKG-INFO); build requirements are read statically from each sdist's pyproject.toml. The
source choice, the build_requires edit, the reading of [build-system] and the naming of a build
cycle are the very functions the build uses (source/choice.py, prepare/buildsystem.py,
engine/decisions.py), so plan and build cannot disagree on them. The backend's
get_requires_for_build_wheel is not asked (that would run package code), so a plan can list
fewer build requirements than the build.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName
from packaging.version import Version

from mirror_builder.config.lint import configured
from mirror_builder.config.overrides import PackageSettings
from mirror_builder.config.settings import Settings
from mirror_builder.engine.buildable import Buildability, StaticBuild, read_static_build
from mirror_builder.engine.decisions import cycle_error
from mirror_builder.jobs.policy import CarryRules
from mirror_builder.source.finders import UpstreamFinder
from mirror_builder.resolve.resolver import Candidate, Resolution, Unbuildable, resolve
from mirror_builder.resolve.target import TargetEnvironment


@dataclass
class PlannedPackage:
    candidate: Candidate
    source: str
    build_requires: list[str]
    needed_by: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    patches: int = 0
    plugin_hooks: list[str] = field(default_factory=list)
    note: str = ""
    # Newer versions passed over because they cannot be built, newest first.
    skipped: list[tuple[Version, Unbuildable]] = field(default_factory=list)


@dataclass
class Plan:
    order: list[PlannedPackage]


class Planner:
    def __init__(self, settings: Settings, finder: UpstreamFinder, target: TargetEnvironment, *,
                 constraints: Mapping[NormalizedName, SpecifierSet] | None = None,
                 direct: Mapping[NormalizedName, Candidate] | None = None,
                 allow_prereleases: bool = False, skip_unbuildable: bool | None = None) -> None:
        self.settings = settings
        self.finder = finder
        self.target = target
        self.constraints = dict(constraints or {})
        self.direct = dict(direct or {})
        self.allow_prereleases = allow_prereleases or settings.allow_prereleases
        self.configured = configured(settings)
        self.any_file = frozenset(n for n, c in self.configured.items() if c.settings and
                                  (c.settings.source is not None or c.settings.pre_built))
        self.carry_rules = CarryRules.load(settings.carry)
        skip = settings.versions.skip_unbuildable if skip_unbuildable is None else skip_unbuildable
        self.buildability = Buildability(self._read, self._environment,
                                         self.carry_rules.why_not) if skip else None
        self.planned: dict[tuple, PlannedPackage] = {}
        self.order: list[PlannedPackage] = []
        self._visiting: list[tuple] = []

    def plan(self, requirements: Sequence[Requirement]) -> Plan:
        self._closure(list(requirements), parent="(requested)", kind="toplevel", chain=())
        return Plan(self.order)

    def _resolve(self, requirements: list[Requirement], context: tuple[str, ...]) -> Resolution:
        return resolve(requirements, self.finder, self.target, constraints=self.constraints,
                       allow_prereleases=self.allow_prereleases, direct=self.direct,
                       context=context, any_file=self.any_file, vet=self.buildability)

    def _read(self, candidate: Candidate) -> StaticBuild:
        item = self.configured.get(candidate.name)
        package = item.settings if item and item.settings else PackageSettings(candidate.name)
        return read_static_build(candidate, package, self.finder.fetch, self.settings.patches_dir)

    def _environment(self, requirements: list[Requirement], candidate: Candidate) -> Resolution:
        return self._resolve(requirements, (candidate.pin,))

    def _closure(self, requirements: list[Requirement], parent: str, kind: str,
                 chain: tuple[str, ...]) -> None:
        resolution = self._resolve(requirements, chain or (parent,))
        for candidate in resolution:
            reasons = resolution.why.get(candidate.name, ())
            via = next((p for p, _ in reasons if p), None)
            self._visit(candidate, f"{via} (install)" if via else f"{parent} ({kind})", chain)
            planned = self.planned[(candidate.name, candidate.version)]
            for version, why in resolution.skipped.get(candidate.name, ()):
                if version > candidate.version and version not in {v for v, _ in planned.skipped}:
                    planned.skipped.append((version, why))
            planned.skipped.sort(key=lambda item: item[0], reverse=True)

    def _visit(self, candidate: Candidate, needed_by: str, chain: tuple[str, ...]) -> None:
        key = (candidate.name, candidate.version)
        if key in self.planned:
            if needed_by not in self.planned[key].needed_by:
                self.planned[key].needed_by.append(needed_by)
            return
        if key in self._visiting:
            ring = [f"{n}=={v}" for n, v in self._visiting[self._visiting.index(key):]]
            raise cycle_error(ring, chain, candidate)
        self._visiting.append(key)
        try:
            planned = self._planned(candidate, needed_by)
            if planned.build_requires:
                self._closure([Requirement(r) for r in planned.build_requires],
                              parent=candidate.pin, kind="build-system",
                              chain=chain + (candidate.pin,))
        finally:
            self._visiting.pop()
        self.planned[key] = planned
        self.order.append(planned)

    def _planned(self, candidate: Candidate, needed_by: str) -> PlannedPackage:
        item = self.configured.get(candidate.name)
        package = item.settings if item and item.settings else PackageSettings(candidate.name)
        build = self.buildability.static(candidate) if self.buildability else self._read(candidate)
        note = build.note
        planned = PlannedPackage(
            candidate, build.source.describe(), list(build.requires), needed_by=[needed_by],
            overrides=package.configured(),
            patches=len(item.patches) if item else 0,
            plugin_hooks=sorted(item.plugin.hooks) if item and item.plugin else [], note=note)
        if not note and self.finder.dependencies(candidate) is None:
            planned.note = ("install requirements unknown until built: upstream serves no "
                            "metadata for this version")
        why_not = self.carry_rules.why_not(candidate.name)
        if why_not:  # a bootstrap would refuse it: say so in the plan
            planned.note = f"{why_not}: a bootstrap would refuse it"
        return planned

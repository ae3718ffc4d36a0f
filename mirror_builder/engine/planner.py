"""`plan`: what a bootstrap would build, in what order, with which overrides, without building.

Install requirements come from upstream metadata (PEP 658 files, else the JSON API or the
sdist's PKG-INFO); build requirements are read statically from each sdist's pyproject.toml. The
source choice, the build_requires edit, the reading of [build-system] and the naming of a build
cycle are the very functions the build uses (source/choice.py, prepare/buildsystem.py,
engine/decisions.py), so plan and build cannot disagree on them. The backend's
get_requires_for_build_wheel is not asked (that would run package code), so a plan can list
fewer build requirements than the build.

Versions that cannot be built are passed over as the build passes them over (engine/
buildable.py), and a build cycle through a package with a bootstrap_stage override is planned
as the build breaks it: that package's stage-1 build first, its full build after the cycle.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from mirror_builder.config.lint import configured
from mirror_builder.config.overrides import PackageSettings
from mirror_builder.config.settings import Settings
from mirror_builder.config.variants import VariantDelta
from mirror_builder.engine.buildable import Buildability, StaticBuild, read_static_build
from mirror_builder.engine.decisions import cycle_error, path_to, stage_member
from mirror_builder.jobs.policy import CarryRules
from mirror_builder.engine.model import EVERY_PROJECT
from mirror_builder.source.fetch import fitting_wheel
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
    # "1": a stage-1 build that breaks a build cycle; "full": the build after it; "": neither.
    stage: str = ""
    # Built once per build variant (its settings or plugin differ between variants), or one
    # wheel shared by all; and what it does differently in the variant planned for.
    per_variant: bool = False
    variant_delta: VariantDelta | None = None


class _StageFirst(Exception):
    """A cycle is to be broken by building this package in stages, from the start of its visit.
    error: the cycle, named, should staging not break it."""

    def __init__(self, key: tuple, ring: set[tuple], error: Exception) -> None:
        self.key, self.ring, self.error = key, ring, error


@dataclass
class Plan:
    order: list[PlannedPackage]


class Planner:
    def __init__(self, settings: Settings, finder: UpstreamFinder, target: TargetEnvironment, *,
                 constraints: Mapping[NormalizedName, SpecifierSet] | None = None,
                 direct: Mapping[NormalizedName, Candidate] | None = None,
                 allow_prereleases: bool = False, gap_fill: bool = False) -> None:
        self.settings = settings
        self.gap_fill = gap_fill  # upstream's wheel where one fits the target (see run.py)
        self.finder = finder
        self.target = target
        self.constraints = dict(constraints or {})
        self.direct = dict(direct or {})
        self.allow_prereleases = allow_prereleases or settings.allow_prereleases
        self.configured = configured(settings)
        self.any_file = EVERY_PROJECT if gap_fill else frozenset(
            n for n, c in self.configured.items()
            if c.settings and (c.settings.source is not None or c.settings.pre_built))
        self.carry_rules = CarryRules.load(settings.carry)
        self.buildability = Buildability(self._read, self._environment, self.carry_rules.why_not) \
            if settings.versions.skip_unbuildable else None
        # Packages to build in stages (a cycle found them) -> the other members of the cycle.
        self._stage_first: dict[tuple, set[tuple]] = {}

    def plan(self, requirements: Sequence[Requirement]) -> Plan:
        while True:
            self.planned: dict[tuple, PlannedPackage] = {}
            self.staged: dict[tuple, PlannedPackage] = {}  # stage-1 builds planned
            self.order: list[PlannedPackage] = []
            self._visiting: list[tuple] = []
            self._staging: set[tuple] = set()
            # (parent pin, child pin) -> (kind, requirement): what a cycle's steps are named by
            self._wanted: dict[tuple[str, str], tuple[str, str]] = {}
            # Full builds that wait for their cycle to be built with their stage 1.
            self._deferred: list[tuple[Candidate, str, tuple[str, ...]]] = []
            try:
                self._closure(list(requirements), parent="(requested)", kind="toplevel", chain=())
                while self._deferred:
                    self._visit(*self._deferred.pop(0))
                return Plan(self.order)
            except _StageFirst as found:
                # The stage-1 build must be planned before the cycle is entered: plan again,
                # knowing it.
                if found.key in self._stage_first:
                    raise found.error from None
                self._stage_first[found.key] = found.ring

    def _resolve(self, requirements: list[Requirement], context: tuple[str, ...]) -> Resolution:
        return resolve(requirements, self.finder, self.target, constraints=self.constraints,
                       allow_prereleases=self.allow_prereleases, direct=self.direct,
                       context=context, any_file=self.any_file, vet=self.buildability)

    def _read(self, candidate: Candidate) -> StaticBuild:
        item = self.configured.get(candidate.name)
        package = item.settings if item and item.settings else PackageSettings(candidate.name)
        upstream_wheel = self.gap_fill and fitting_wheel(
            self.finder.project_files(candidate.name), candidate, self.target) is not None
        return read_static_build(candidate, package, self.finder.fetch, self.settings.patches_dir,
                                 upstream_wheel)

    def _environment(self, requirements: list[Requirement], candidate: Candidate) -> Resolution:
        return self._resolve(requirements, (candidate.pin,))

    def _closure(self, requirements: list[Requirement], parent: str, kind: str,
                 chain: tuple[str, ...]) -> None:
        resolution = self._resolve(requirements, chain or (parent,))
        for child, reasons in resolution.why.items():
            for parent_pin, requirement in reasons:
                self._wanted[(parent_pin or parent, resolution.pins[child].pin)] = (
                    kind if parent_pin is None else "install", requirement)
        for candidate in resolution:
            reasons = resolution.why.get(candidate.name, ())
            via = next((p for p, _ in reasons if p), None)
            self._visit(candidate, f"{via} (install)" if via else f"{parent} ({kind})",
                        chain + path_to(resolution, candidate.name))
            key = (candidate.name, candidate.version)
            planned = self.planned.get(key) or self.staged[key]
            for version, why in resolution.skipped.get(candidate.name, ()):
                if version > candidate.version and version not in {v for v, _ in planned.skipped}:
                    planned.skipped.append((version, why))
            planned.skipped.sort(key=lambda item: item[0], reverse=True)

    def _visit(self, candidate: Candidate, needed_by: str, chain: tuple[str, ...]) -> None:
        key = (candidate.name, candidate.version)
        known = self.planned.get(key) or (self.staged.get(key) if key in self._visiting and
                                          key not in self._staging else None)
        if known is not None:  # planned, or inside its own cycle where its stage 1 serves
            if needed_by not in known.needed_by:
                known.needed_by.append(needed_by)
            return
        if key in self._visiting:
            ring = [f"{n}=={v}" for n, v in self._visiting[self._visiting.index(key):]]
            member = None if key in self._staging else \
                stage_member(ring, candidate.pin, self._stages)
            if member is None:
                raise cycle_error(ring, chain, candidate, self._wanted)
            if member != candidate.pin:
                members = set(self._visiting[self._visiting.index(key):])
                raise _StageFirst(next(k for k in members if f"{k[0]}=={k[1]}" == member),
                                  members, cycle_error(ring, chain, candidate, self._wanted))
            self._plan_stage_one(candidate, needed_by, chain)
            return
        if key in self._stage_first:
            if key not in self.staged:
                self._plan_stage_one(candidate, needed_by, chain)
            if self._stage_first[key] & set(self._visiting):
                # Needed inside its cycle: stage 1 serves; the full build comes after.
                self._deferred.append((candidate, needed_by, chain))
                return
        self._visiting.append(key)
        try:
            planned = self._planned(candidate, needed_by)
            if planned.build_requires:
                self._closure([Requirement(r) for r in planned.build_requires],
                              parent=candidate.pin, kind="build-system",
                              chain=chain + (candidate.pin,))
        finally:
            self._visiting.pop()
        if key in self.staged:
            planned.stage = "full"
            planned.note = planned.note or "the full build, after its stage 1 served the cycle"
        self.planned[key] = planned
        self.order.append(planned)

    def _stages(self, name: NormalizedName) -> tuple[str, ...]:
        item = self.configured.get(name)
        return item.settings.bootstrap_stage if item and item.settings else ()

    def _plan_stage_one(self, candidate: Candidate, needed_by: str, chain: tuple[str, ...]) -> None:
        """A stage-1 build: without the build requirements its bootstrap_stage override names,
        used only by the rest of its cycle; the full build follows in the order."""
        key = (candidate.name, candidate.version)
        left_out = self._stages(candidate.name)
        full = self._planned(candidate, needed_by)
        requires = [r for r in full.build_requires
                    if canonicalize_name(Requirement(r).name) not in left_out]
        stage = dataclasses.replace(full, build_requires=requires, stage="1", note=(
            f"stage 1: built without {', '.join(left_out)} to break a build cycle; used only by "
            f"the rest of the cycle and never published"))
        self.staged[key] = stage
        self._staging.add(key)
        self._visiting.append(key)
        try:
            if requires:
                self._closure([Requirement(r) for r in requires], parent=candidate.pin,
                              kind="build-system", chain=chain + (candidate.pin,))
        finally:
            self._visiting.pop()
            self._staging.discard(key)
        self.order.append(stage)

    def _planned(self, candidate: Candidate, needed_by: str) -> PlannedPackage:
        item = self.configured.get(candidate.name)
        package = item.settings if item and item.settings else PackageSettings(candidate.name)
        build = self.buildability.static(candidate) if self.buildability else self._read(candidate)
        note = build.note
        planned = PlannedPackage(
            candidate, build.source.describe(), list(build.requires), needed_by=[needed_by],
            overrides=package.configured(),
            patches=len(item.patches) if item else 0,
            plugin_hooks=sorted(item.plugin.hooks) if item and item.plugin else [], note=note,
            per_variant=bool(item and item.per_variant), variant_delta=item.delta if item else None)
        notes = [note] if note else []
        if self.finder.dependencies(candidate) is None:
            notes.append("install requirements unknown until built: upstream serves no "
                         "metadata for this version")
        wheel = self.finder.from_wheel.get((candidate.name, candidate.version))
        if wheel:
            notes.append(f"install requirements read from the upstream wheel {wheel} (not "
                         f"from our build, which confirms or corrects them)")
        planned.note = "; ".join(notes)
        why_not = self.carry_rules.why_not(candidate.name)
        if why_not:  # a bootstrap would refuse it: say so in the plan
            planned.note = f"{why_not}: a bootstrap would refuse it"
        return planned

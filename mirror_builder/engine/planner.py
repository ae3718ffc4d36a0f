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

import tarfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName

from mirror_builder.config.lint import configured
from mirror_builder.config.overrides import PackageSettings
from mirror_builder.config.settings import Settings
from mirror_builder.engine.decisions import cycle_error
from mirror_builder.jobs.policy import CarryRules
from mirror_builder.prepare.buildsystem import build_system_of
from mirror_builder.source.finders import UpstreamFinder
from mirror_builder.resolve.resolver import Candidate, resolve
from mirror_builder.resolve.target import TargetEnvironment
from mirror_builder.source.choice import choose_source


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


@dataclass
class Plan:
    order: list[PlannedPackage]


class Planner:
    def __init__(self, settings: Settings, finder: UpstreamFinder, target: TargetEnvironment, *,
                 constraints: Mapping[NormalizedName, SpecifierSet] | None = None,
                 direct: Mapping[NormalizedName, Candidate] | None = None,
                 allow_prereleases: bool = False) -> None:
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
        self.planned: dict[tuple, PlannedPackage] = {}
        self.order: list[PlannedPackage] = []
        self._visiting: list[tuple] = []

    def plan(self, requirements: Sequence[Requirement]) -> Plan:
        self._closure(list(requirements), parent="(requested)", kind="toplevel", chain=())
        return Plan(self.order)

    def _closure(self, requirements: list[Requirement], parent: str, kind: str,
                 chain: tuple[str, ...]) -> None:
        resolution = resolve(requirements, self.finder, self.target, constraints=self.constraints,
                             allow_prereleases=self.allow_prereleases, direct=self.direct,
                             context=chain or (parent,), any_file=self.any_file)
        for candidate in resolution:
            reasons = resolution.why.get(candidate.name, ())
            via = next((p for p, _ in reasons if p), None)
            self._visit(candidate, f"{via} (install)" if via else f"{parent} ({kind})", chain)

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
        source, requires, note = self._build_requires(candidate, package)
        planned = PlannedPackage(
            candidate, source, requires, needed_by=[needed_by], overrides=package.configured(),
            patches=len(item.patches) if item else 0,
            plugin_hooks=sorted(item.plugin.hooks) if item and item.plugin else [], note=note)
        if not note and self.finder.dependencies(candidate) is None:
            planned.note = ("install requirements unknown until built: upstream serves no "
                            "metadata for this version")
        why_not = self.carry_rules.why_not(candidate.name)
        if why_not:  # a bootstrap would refuse it: say so in the plan
            planned.note = f"{why_not}: a bootstrap would refuse it"
        return planned

    def _build_requires(self, candidate: Candidate, package: PackageSettings
                        ) -> tuple[str, list[str], str]:
        """The source a build would use, its build requirements as the build would read them,
        and a note when those cannot be known without fetching the override's source."""
        choice = choose_source(package, candidate)
        if choice.kind == "pre-built":
            return choice.describe(), [], ""
        if choice.kind != "sdist":
            added = list(package.build_requires_add)
            return choice.describe(), added, \
                "build requirements beyond the override's additions are read when it is fetched"
        sdist = self.finder.fetch(candidate)
        pyproject = _read_member(sdist, f"{package.build_dir}/pyproject.toml"
                                 if package.build_dir else "pyproject.toml")
        build_system = build_system_of(pyproject, package, candidate.pin)
        return choice.describe(), list(build_system.requires), ""


def _read_member(archive: Path, relative: str) -> bytes | None:
    """One file of an sdist, read without unpacking it (None if it has none)."""
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if name.split("/", 1)[-1] == relative and name.count("/") == relative.count("/") + 1:
                    return zf.read(name)
        return None
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.split("/", 1)[-1] == relative and \
                    member.name.count("/") == relative.count("/") + 1:
                return tar.extractfile(member).read()
    return None

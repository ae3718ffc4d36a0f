"""`plan`: what a bootstrap would build, in what order, with which overrides, without building.

Install requirements come from upstream metadata (PEP 658 files, else the JSON API or the
sdist's PKG-INFO); build requirements are read statically from each sdist's pyproject.toml, with
the package's build_requires edits applied. The backend's get_requires_for_build_wheel is not
asked (that would run package code), so a plan can list fewer build requirements than the build.
"""

from __future__ import annotations

import io
import tarfile
import tomllib
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName

from mirror_builder.engine.bootstrap import UpstreamFinder
from mirror_builder.prepare.buildsystem import LEGACY_REQUIRES
from mirror_builder.errors import BuildCycleError, MirrorBuilderError
from mirror_builder.config.lint import configured
from mirror_builder.config.overrides import PackageSettings, render
from mirror_builder.jobs.policy import CarryRules
from mirror_builder.resolve.resolver import Candidate, resolve
from mirror_builder.config.settings import Settings
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


@dataclass
class Plan:
    order: list[PlannedPackage]


class Planner:
    def __init__(self, settings: Settings, finder: UpstreamFinder, target: TargetEnvironment, *,
                 constraints: Mapping[NormalizedName, SpecifierSet] | None = None,
                 allow_prereleases: bool = False) -> None:
        self.settings = settings
        self.finder = finder
        self.target = target
        self.constraints = dict(constraints or {})
        self.allow_prereleases = allow_prereleases or settings.allow_prereleases
        self.configured = configured(settings)
        self.any_file = frozenset(n for n, c in self.configured.items() if c.settings and
                                  (c.settings.source is not None or c.settings.pre_built))
        self.carry_rules = CarryRules.load(settings.carry)
        self.planned: dict[tuple, PlannedPackage] = {}
        self.order: list[PlannedPackage] = []
        self._visiting: list[tuple] = []

    def plan(self, requirements: Sequence[Requirement]) -> Plan:
        self._closure(list(requirements), parent="(requested)", kind="toplevel")
        return Plan(self.order)

    def _closure(self, requirements: list[Requirement], parent: str, kind: str) -> None:
        resolution = resolve(requirements, self.finder, self.target, constraints=self.constraints,
                             allow_prereleases=self.allow_prereleases, context=(parent,),
                             any_file=self.any_file)
        for candidate in resolution:
            reasons = resolution.why.get(candidate.name, ())
            via = next((p for p, _ in reasons if p), None)
            self._visit(candidate, f"{via} (install)" if via else f"{parent} ({kind})")

    def _visit(self, candidate: Candidate, needed_by: str) -> None:
        key = (candidate.name, candidate.version)
        if key in self.planned:
            if needed_by not in self.planned[key].needed_by:
                self.planned[key].needed_by.append(needed_by)
            return
        if key in self._visiting:
            cycle = [f"{n}=={v}" for n, v in self._visiting[self._visiting.index(key):]]
            raise BuildCycleError(f"build dependencies form a cycle: "
                                  f"{' -> '.join(cycle + [candidate.pin])}",
                                  package=candidate.name, version=str(candidate.version))
        self._visiting.append(key)
        try:
            item = self.configured.get(candidate.name)
            package = item.settings if item and item.settings else PackageSettings(candidate.name)
            planned = PlannedPackage(
                candidate, *self._build_requires(candidate, package), needed_by=[needed_by],
                overrides=package.configured(), patches=len(item.patches) if item else 0,
                plugin_hooks=sorted(item.plugin.hooks) if item and item.plugin else [])
            if self.finder.dependencies(candidate) is None:
                planned.note = ("install requirements unknown until built: upstream serves no "
                                "metadata for this version")
            why_not = self.carry_rules.why_not(candidate.name)
            if why_not:  # a bootstrap would refuse it: say so in the plan
                planned.note = f"{why_not}: a bootstrap would refuse it"
            if planned.build_requires:
                self._closure([Requirement(r) for r in planned.build_requires],
                              parent=candidate.pin, kind="build-system")
        finally:
            self._visiting.pop()
        self.planned[key] = planned
        self.order.append(planned)

    def _build_requires(self, candidate: Candidate, package: PackageSettings) -> tuple[str, list[str]]:
        if package.pre_built:
            return "pre-built upstream wheel (NOT from source)", []
        if package.source is not None:
            tag = render(package.source.tag or "", name=candidate.name, version=str(candidate.version))
            where = package.source.url_for(candidate.name, candidate.version) \
                if package.source.url else f"{package.source.git} @ {tag}"
            return f"override: {where}", self._edited(list(package.build_requires_add), package)
        if not candidate.file.is_sdist:
            raise MirrorBuilderError(f"{candidate.pin}: upstream has no sdist of this version; "
                                     f"give a source override or pre_built")
        sdist = self.finder.fetch(candidate)
        requires = read_static_build_requires(sdist, package.build_dir)
        return "sdist", self._edited(requires, package)

    @staticmethod
    def _edited(requires: list[str], package: PackageSettings) -> list[str]:
        removed = set(package.build_requires_remove) | \
            {Requirement(r).name for r in package.build_requires_add}
        kept = [r for r in requires if Requirement(r).name not in removed]
        return kept + [r for r in package.build_requires_add if r not in kept]


def read_static_build_requires(sdist: Path, build_dir: str | None = None) -> list[str]:
    """[build-system] requires from the sdist's pyproject.toml, without unpacking it."""
    text = _read_member(sdist, f"{build_dir}/pyproject.toml" if build_dir else "pyproject.toml")
    if text is None:
        return list(LEGACY_REQUIRES)
    table = tomllib.loads(text).get("build-system")
    if table is None:
        return list(LEGACY_REQUIRES)
    return list(table.get("requires", []))


def _read_member(archive: Path, relative: str) -> str | None:
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if name.split("/", 1)[-1] == relative and name.count("/") == relative.count("/") + 1:
                    return zf.read(name).decode()
        return None
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.split("/", 1)[-1] == relative and \
                    member.name.count("/") == relative.count("/") + 1:
                return io.TextIOWrapper(tar.extractfile(member), encoding="utf-8").read()
    return None

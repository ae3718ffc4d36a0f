"""Whether a version can be built from source at all.

The resolver asks this of each candidate it reaches (resolve/resolver.py, `vet`), so a version
whose build environment cannot be had (a build requirement missing from the index, denied,
yanked, for another Python, or itself unbuildable) is passed over like a version that does not
match, and resolution backtracks to an earlier one. `plan` and every run (bootstrap, rebuild
--bootstrap-missing, update) ask the same object the same question, with the build
requirements read the way the build reads them (source/choice.py, prepare/buildsystem.py).
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import NormalizedName
from packaging.version import Version

from mirror_builder.config.overrides import PackageSettings
from mirror_builder.engine.model import CarryRefused
from mirror_builder.errors import BuildError, ResolutionError, SourceError
from mirror_builder.prepare.buildsystem import build_system_of, read_build_system
from mirror_builder.prepare.sources import find_patches, prepare_source, read_member
from mirror_builder.resolve.resolver import Candidate, Resolution, Unbuildable
from mirror_builder.source.choice import SourceChoice, choose_source


@dataclass(frozen=True)
class StaticBuild:
    """What a version's source says about building it, read without running its code."""

    source: SourceChoice
    requires: tuple[str, ...]
    # Set when the build requirements cannot all be known before the source is fetched.
    note: str = ""


def read_static_build(candidate: Candidate, package: PackageSettings,
                      fetch: Callable[[Candidate], Path], patches_dir: Path,
                      upstream_wheel: bool = False) -> StaticBuild:
    """The source a build would use and its [build-system] requires as the build would read
    them: overrides' edits applied, and the package's patches when it has any. upstream_wheel:
    gap-fill takes upstream's wheel of this version (nothing is built)."""
    choice = choose_source(package, candidate, upstream_wheel)
    if choice.kind in ("pre-built", "upstream-wheel"):
        return StaticBuild(choice, ())
    if choice.kind != "sdist":
        return StaticBuild(choice, tuple(package.build_requires_add),
                           "build requirements beyond the override's additions are read when "
                           "it is fetched")
    sdist = fetch(candidate)
    if find_patches(patches_dir, candidate.name, candidate.version):
        # A patch may edit pyproject.toml: read it from the patched tree, as the build does.
        with tempfile.TemporaryDirectory(prefix="mirror-builder-vet-") as work:
            source = prepare_source(sdist, "", candidate.name, candidate.version,
                                    work_dir=Path(work), patches_dir=patches_dir,
                                    build_dir=package.build_dir,
                                    requires_add=package.build_requires_add,
                                    requires_remove=package.build_requires_remove)
            return StaticBuild(choice, read_build_system(source.project, candidate.pin).requires)
    member = f"{package.build_dir}/pyproject.toml" if package.build_dir else "pyproject.toml"
    build_system = build_system_of(read_member(sdist, member), package, candidate.pin)
    return StaticBuild(choice, build_system.requires)


class Buildability:
    """The resolver's vet: can this version be built? Answers are kept for the whole command,
    and a build that finds a version unbuildable after all says so with mark().

    read gives a version's static build requirements, environment resolves them (asking this
    same object of each of their candidates), refuse says why a project may not be carried.
    Without them it only keeps what builds found: a run's builds meet the same dead ends as
    they go, in parallel (a version's build environment is resolved just as the check would,
    before anything is built), instead of one thread reading every sdist of the tree before
    the first build could start. plan, which builds nothing, checks ahead."""

    def __init__(self, read: Callable[[Candidate], StaticBuild] | None = None,
                 environment: Callable[[list[Requirement], Candidate], Resolution] | None = None,
                 refuse: Callable[[NormalizedName], str | None] = lambda name: None,
                 package: Callable[[NormalizedName], PackageSettings] | None = None,
                 upstream_wheel: Callable[[Candidate], bool] = lambda candidate: False) -> None:
        self._read, self._environment, self._refuse = read, environment, refuse
        self._upstream_wheel = upstream_wheel  # gap-fill: takes upstream's wheel of it
        # Without checking ahead, still the cheap question: can its source be had at all?
        self._package = package
        self.ahead = read is not None and environment is not None
        self._lock = threading.RLock()
        self._verdicts: dict[tuple[NormalizedName, Version], Unbuildable | None] = {}
        self._checking: set[tuple[NormalizedName, Version]] = set()
        self._builds: dict[tuple[NormalizedName, Version], StaticBuild] = {}

    def __call__(self, candidate: Candidate) -> Unbuildable | None:
        key = (candidate.name, candidate.version)
        with self._lock:
            if key in self._verdicts:
                return self._verdicts[key]
            if not self.ahead:
                return self._source_verdict(candidate) if self._package else None
            if key in self._checking:
                # A build cycle: bootstrap stages break it, or the build names it in full.
                return None
            self._checking.add(key)
            try:
                verdict = self._check(candidate)
            finally:
                self._checking.discard(key)
            self._verdicts[key] = verdict
            return verdict

    def static(self, candidate: Candidate) -> StaticBuild:
        key = (candidate.name, candidate.version)
        with self._lock:
            if key not in self._builds:
                self._builds[key] = self._read(candidate)
            return self._builds[key]

    def mark(self, candidate: Candidate, why: Unbuildable) -> None:
        """A build found candidate unbuildable after all: resolutions from now on pass it over."""
        with self._lock:
            self._verdicts[(candidate.name, candidate.version)] = why

    def _source_verdict(self, candidate: Candidate) -> Unbuildable | None:
        try:
            choose_source(self._package(candidate.name), candidate,
                          self._upstream_wheel(candidate))
        except SourceError as exc:
            verdict = Unbuildable(f"its source cannot be had: {exc}", BuildError(
                str(exc), package=candidate.name, version=str(candidate.version)))
        else:
            verdict = None
        self._verdicts[(candidate.name, candidate.version)] = verdict
        return verdict

    def _check(self, candidate: Candidate) -> Unbuildable | None:
        try:
            build = self.static(candidate)
        except SourceError as exc:
            return Unbuildable(f"its source or [build-system] cannot be read: {exc}", BuildError(
                str(exc), package=candidate.name, version=str(candidate.version)))
        if not build.requires:
            return None
        try:
            env = self._environment([Requirement(r) for r in build.requires], candidate)
        except ResolutionError as exc:
            return Unbuildable(f"build requirement {exc.summary or exc.detail}", exc)
        for pin in env:
            why_not = self._refuse(pin.name)
            if why_not:
                return Unbuildable(f"build requirement {why_not}", CarryRefused(
                    f"{why_not}, so it cannot be built", package=pin.name,
                    version=str(pin.version), chain=(candidate.pin,)))
        return None

"""Break a build cycle in stages, as Debian's build profiles do: a package whose overrides say
which build requirements it can do without (bootstrap_stage) is built once without them
(stage 1), that wheel serves only the waits inside the cycle (the scheduler's stand-in), and
the package's own build goes on with its full build requirements. The full build is published
with the next rebuild number and its record holds the stage-1 build's; the stage-1 wheel is
never published."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packaging.utils import NormalizedName
from packaging.version import Version

from mirror_builder.engine.decisions import cycle_error, stage_member
from mirror_builder.engine.model import BuiltWheel
from mirror_builder.engine.scheduler import CycleError
from mirror_builder.files import sha256_of
from mirror_builder.logs import about
from mirror_builder.provenance.record import Rebuild
from mirror_builder.resolve.resolver import Candidate

if TYPE_CHECKING:
    from mirror_builder.engine.run import BootstrapRun
    from mirror_builder.index.publisher import Staged

log = logging.getLogger(__name__)

STAGE_ONE = "stage 1"  # the last part of a stage-1 build's task key


@dataclass(frozen=True)
class StageOne:
    """A stage-1 build that served its cycle."""

    wheel: BuiltWheel
    number: int
    removed: tuple[NormalizedName, ...]
    record: dict


class Stages:
    def __init__(self, run: BootstrapRun) -> None:
        self.run = run
        self._lock = run.lock
        # Every build under way: what a stage-1 build of it needs to start.
        self._under_way: dict[tuple[NormalizedName, Version],
                              tuple[Candidate, tuple[str, ...], Rebuild]] = {}
        self.built: dict[tuple[NormalizedName, Version], StageOne] = {}

    def building(self, candidate: Candidate, chain: tuple[str, ...], rebuild: Rebuild) -> None:
        with self._lock:
            self._under_way[(candidate.name, candidate.version)] = (candidate, chain, rebuild)

    def break_cycle(self, exc: CycleError, candidate: Candidate, chain: tuple[str, ...]) -> None:
        """Start the stage-1 build that breaks the cycle exc found while waiting for candidate,
        or raise the cycle, named in full, when no package on it can be built in stages."""
        pins = {_pin(key): key for key in exc.cycle}
        ring = [_pin(key) for key in exc.cycle][:-1]
        member = stage_member(ring, candidate.pin,
                              lambda name: self.run.catalog.package(name).bootstrap_stage)
        key = pins.get(member) if member else None
        with self._lock:
            edges = dict(self.run.wanted)
            under_way = self._under_way.get(key) if key and len(key) == 2 else None
        if under_way is None or self.run.tasks.provided(key):
            # No package on it says how, or its stage 1 itself needs the cycle.
            raise cycle_error(ring, chain, candidate, edges) from None
        staged, staged_chain, rebuild = under_way
        log.warning("build cycle %s: building %s in stages (bootstrap_stage: without %s)",
                    " -> ".join(ring + ring[:1]), member,
                    ", ".join(self.run.catalog.package(staged.name).bootstrap_stage))
        stand_in = (*key, STAGE_ONE)
        self.run.tasks.start(stand_in, lambda: self._build(staged, staged_chain, rebuild))
        self.run.tasks.provide(key, stand_in)

    def _build(self, candidate: Candidate, chain: tuple[str, ...], rebuild: Rebuild) -> BuiltWheel:
        with about(f"{candidate.pin} ({STAGE_ONE})"):
            removed = self.run.catalog.package(candidate.name).bootstrap_stage
            return self.run.packages.build(candidate, chain, rebuild, stage=removed)

    def record_for(self, candidate: Candidate, rebuild: Rebuild,
                   stage: tuple[NormalizedName, ...]) -> tuple[dict | None, Rebuild]:
        """The record's bootstrap_stage, and the rebuild the build is numbered by: a full build
        after a stage 1 takes the next number."""
        if stage:
            return {"stage": "1", "removed": list(stage), "stage1": None}, rebuild
        with self._lock:
            first = self.built.get((candidate.name, candidate.version))
        if first is None:
            return None, rebuild
        record = first.record
        return {"stage": "full", "removed": list(first.removed), "stage1": {
            "wheel": record["wheel"], "sha256": first.wheel.sha256,
            "build_env": record["build_env"], "build_system": record["build_system"],
            "log": str(self.run.index.layout.stage_one_log(candidate.name, candidate.version)
                       .relative_to(self.run.index.layout.root)),
            "started_at": record["started_at"], "ended_at": record["ended_at"]}}, \
            dataclasses.replace(rebuild, number=first.number + 1,
                                reason="full build after bootstrap stage 1")

    def finish(self, candidate: Candidate, staged: Staged, seconds: float,
               chain: tuple[str, ...], number: int, removed: tuple[NormalizedName, ...]
               ) -> BuiltWheel:
        """A stage-1 wheel: usable by the builds inside its cycle (until the full build
        replaces it), never published, not in the run's report."""
        wheel = BuiltWheel(name=candidate.name, version=candidate.version, path=staged.wheel,
                           requires_dist=staged.requires_dist, status="built", seconds=seconds,
                           chain=chain, sha256=sha256_of(staged.wheel))
        key = (candidate.name, candidate.version)
        with self._lock:
            self.built[key] = StageOne(wheel, number, removed, staged.record)
            self.run.done.setdefault(key, wheel)
            self.run.report.staged[candidate.pin] = tuple(removed)
        log.info("%s: stage 1 built as %s (never published)", candidate.pin, staged.wheel.name)
        return wheel


def _pin(key: Hashable) -> str:
    name, version, *stage = key
    return f"{name}=={version}" + (f" ({stage[0]})" if stage else "")

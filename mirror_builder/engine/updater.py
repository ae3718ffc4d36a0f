"""`mirror-builder update`: keep the index current with upstream, cheaply, from cron.

For every project we carry: ask upstream for its page (conditionally: an unchanged project is a
304, or at worst the same page again), mirror upstream's yanks into our index, decide which new
releases the update policy admits (policy.py) and run one build job for each; then rebuild what
changed in how we build it (its overrides, patches or image). A job that meets a package we do
not carry stops and waits in the review queue (review.py); `review approve` resumes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from mirror_builder.engine.bootstrap import Bootstrapper
from mirror_builder.engine.model import BootstrapFailed, CarryRefused
from mirror_builder.jobs.triggers import JobPolicy, RebuildRequest
from mirror_builder.provenance.buildkey import local_config_change
from mirror_builder.config.plugins import load_plugins
from mirror_builder.errors import PackageError
from mirror_builder.index.wheelindex import WheelIndex
from mirror_builder.jobs.log import Job, JobLog
from mirror_builder.config.variants import package_settings_for
from mirror_builder.jobs.policy import Decision, Offer, decide, effective_policy
from mirror_builder.provenance.store import RecordStore
from mirror_builder.resolve.pages import sdist_version
from mirror_builder.jobs.review import NeedsReview, Request, ReviewQueue, WaitingJob
from mirror_builder.config.settings import Settings
from mirror_builder.resolve.pages import DistributionFile
from mirror_builder.resolve.upstream import UpstreamIndex

log = logging.getLogger(__name__)


@dataclass
class UpdateReport:
    checked: int = 0
    unchanged: int = 0  # answered 304, or the same page again
    decisions: dict[str, list[Decision]] = field(default_factory=dict)
    built: list[str] = field(default_factory=list)
    waiting: dict[str, list[str]] = field(default_factory=dict)  # pin -> packages it waits for
    failed: dict[str, str] = field(default_factory=dict)
    yanked: list[str] = field(default_factory=list)
    rebuilt: dict[str, str] = field(default_factory=dict)  # wheel -> what changed
    resumed: list[str] = field(default_factory=list)


class Updater:
    def __init__(self, *, settings: Settings, upstream: UpstreamIndex, index: WheelIndex,
                 target: str, bootstrapper_for: Callable[[JobPolicy], Bootstrapper],
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.settings = settings
        self.upstream = upstream
        self.index = index
        self.records = RecordStore(index.layout)
        self.queue = ReviewQueue(index.layout)
        self.jobs = JobLog(index.layout)
        self.target = target
        # Opening a pipeline starts podman and measures the image: only done when there is a
        # job to run, so an update with nothing new costs only the upstream checks.
        self.bootstrapper_for = bootstrapper_for
        self.now = now

    # -- the whole update ------------------------------------------------------------------
    def run(self, names: list[str] | None = None, *, dry_run: bool = False) -> UpdateReport:
        report = UpdateReport()
        carried = sorted(canonicalize_name(n) for n in (names or self.index.projects()))
        wanted: list[tuple[NormalizedName, Version, Decision]] = []
        for name in carried:
            files = self._check(name, report)
            if files is None:
                continue
            if not dry_run:
                self._mirror_yanks(name, files, report)
            for decision in self._decide(name, files, report):
                wanted.append((name, decision.version, decision))
        if dry_run:
            return report
        waiting = {(j.pin, j.target): j for j in self.queue.waiting()}
        for name, version, decision in wanted:
            already = waiting.get((f"{name}=={version}", self.target))
            if already is not None:  # resume_waiting's, once what it waits for is decided
                report.waiting[already.pin] = list(already.waiting_for)
                continue
            self.run_job(name, version, "upstream-release",
                         f"new upstream release {version} ({decision.reason})", report)
        self._rebuild_changed(carried, report)
        self.resume_waiting(report)
        return report

    # -- upstream --------------------------------------------------------------------------
    def _check(self, name: NormalizedName, report: UpdateReport) -> list[DistributionFile] | None:
        check = self.upstream.check_project(name)
        report.checked += 1
        if not check.changed:
            report.unchanged += 1
        if check.status == "missing":
            log.warning("%s: upstream no longer lists it; nothing to update", name)
            return None
        return check.files

    def _mirror_yanks(self, name: NormalizedName, files: list[DistributionFile],
                      report: UpdateReport) -> None:
        """A release yanked upstream is yanked in our index too (with upstream's reason);
        nothing is deleted."""
        yanked_upstream: dict[Version, str] = {}
        for file in files:
            version = sdist_version(file, name) if file.is_sdist else None
            if version is not None and file.yanked:
                yanked_upstream[version] = file.yanked_reason or "no reason given"
        if not yanked_upstream:
            return
        ours = {entry["filename"]: entry for entry in self.index.entries(name)}
        for version, reason in sorted(yanked_upstream.items()):
            for record in self.records.for_version(name, version):
                entry = ours.get(record["wheel"])
                if entry is None or entry.get("yanked"):
                    continue
                wheel_version = Version(record["wheel_version"])
                changed = self.index.yank(name, wheel_version, f"yanked upstream: {reason}")
                report.yanked.extend(changed)
                for wheel in changed:
                    log.warning("%s: yanked upstream (%s); yanked in our index too", wheel, reason)
                ours = {e["filename"]: e for e in self.index.entries(name)}

    def decide_for(self, name: NormalizedName, report: UpdateReport) -> list[Decision]:
        """The releases of name the policy admits now (asking upstream again)."""
        return self._decide(name, self.upstream.check_project(name).files, report)

    def _decide(self, name: NormalizedName, files: list[DistributionFile],
                report: UpdateReport) -> list[Decision]:
        package = package_settings_for(self.settings, name)
        policy = effective_policy(self.settings.update, package)
        offered: dict[Version, datetime | None] = {}
        for file in files:
            version = sdist_version(file, name) if file.is_sdist else None
            if version is None or file.yanked:
                continue
            earliest = offered.get(version)
            if file.upload_time is not None and (earliest is None or file.upload_time < earliest):
                offered[version] = file.upload_time
            else:
                offered.setdefault(version, earliest)
        if policy.min_release_age and any(t is None for t in offered.values()):
            times = self.upstream.release_times(name)
            offered = {v: t or times.get(v) for v, t in offered.items()}
        decisions = decide([Offer(v, t) for v, t in offered.items()],
                           self.records.versions(name), policy, self.now())
        report.decisions[name] = decisions
        return [d for d in decisions if d.build]

    # -- jobs ------------------------------------------------------------------------------
    def run_job(self, name: NormalizedName, version: Version, trigger: str, detail: str,
                report: UpdateReport) -> bool:
        """One build job for name==version (and whatever it needs that we may carry). True
        when it built; a job that meets an uncarried package waits for review instead."""
        pin = f"{name}=={version}"
        policy = JobPolicy(log=self.jobs, trigger=trigger, detail=detail,
                           requested=frozenset({name}))
        started = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        try:
            self.bootstrapper_for(policy).run([Requirement(pin)])
        except NeedsReview as exc:
            self._wait_for_review(name, version, trigger, detail, exc, report)
            return False
        except BootstrapFailed as exc:
            report.failed[pin] = "; ".join(f.error.args[0] for f in exc.failures)
            return False
        except PackageError as exc:
            report.failed[pin] = str(exc)
            if not any(j.job.package == name and j.job.version == str(version)
                       and j.ended_at >= started for j in self.jobs.read(name)):
                # Refused before any build started (deny list, rejected in review): a job too.
                result = "denied" if isinstance(exc, CarryRefused) else "failed"
                self.jobs.append(Job.start(trigger, name, str(version), self.target, detail)
                                 .finish(result, message=str(exc)))
            return False
        report.built.append(pin)
        return True

    def _wait_for_review(self, name: NormalizedName, version: Version, trigger: str, detail: str,
                         exc: NeedsReview, report: UpdateReport) -> None:
        pin = f"{name}=={version}"
        own = exc.job is not None and (exc.job.package, exc.job.version) == (name, str(version))
        job = exc.job if own else Job.start(trigger, name, str(version), self.target, detail)
        for needed, request in exc.needed.items():
            self.queue.ask(needed, Request(by=request.by, requirement=request.requirement,
                                           chain=request.chain, job=job.id))
        waiting_for = tuple(sorted(exc.needed))
        self.queue.wait(WaitingJob(job.id, trigger, detail, name, str(version), self.target,
                                   waiting_for))
        if not own:  # (a job the bootstrapper had started for this pin has been logged already)
            self.jobs.append(job.finish("waiting-review", message=exc.detail, waiting_for=waiting_for))
        report.waiting[pin] = list(waiting_for)
        log.warning("%s: waiting for review of %s", pin, ", ".join(waiting_for))

    def resume_waiting(self, report: UpdateReport) -> None:
        """Run again the jobs whose every awaited package is now approved (or rejected: then
        the job ends denied)."""
        for waiting in self.queue.waiting():
            if waiting.target != self.target:
                continue
            rejected = [n for n in waiting.waiting_for if self.queue.is_rejected(n)]
            if rejected:
                job = Job.start(waiting.trigger, waiting.package, waiting.version, waiting.target,
                                waiting.detail)
                self.jobs.append(job.finish(
                    "denied", message=f"needs {', '.join(rejected)}, rejected in review"))
                self.queue.done_waiting(waiting)
                report.failed[waiting.pin] = f"needs {', '.join(rejected)}, rejected in review"
                continue
            if not all(self.queue.is_approved(n) or self.index.entries(n) for n in waiting.waiting_for):
                continue
            self.queue.done_waiting(waiting)
            report.resumed.append(waiting.pin)
            self.run_job(waiting.package, Version(waiting.version), waiting.trigger,
                         f"{waiting.detail}; resumed after review", report)

    def _rebuild_changed(self, carried: list[NormalizedName], report: UpdateReport) -> None:
        """Trigger 4: a change to a package's overrides, patches or image rebuilds the versions
        we carry of it (each with the next rebuild number)."""
        plugins = load_plugins(self.settings.overrides_dir, self.settings.variant)
        candidates = []
        for name in carried:
            package = package_settings_for(self.settings, name)
            for version in self.records.versions(name):
                newest = self.records.for_version(name, version)
                if newest and newest[0].get("built_from_source", True) and \
                        newest[0]["target"]["name"] == self.target and \
                        local_config_change(self.settings, package, plugins, version, newest[0]):
                    candidates.append((name, version, newest[0]))
        if not candidates:
            return  # nothing changed in our files: no need to start podman
        bootstrapper = self.bootstrapper_for(JobPolicy(log=self.jobs))
        for name, version, record in candidates:
            changed = bootstrapper.config_change(name, version, record)
            if changed is None:
                continue
            try:
                wheel = bootstrapper.rebuild(name, version, RebuildRequest(
                    reason=f"{changed} since {record['wheel']} was built",
                    trigger="config-change"))
                report.rebuilt[wheel.path.name] = changed
            except PackageError as exc:
                report.failed[f"{name}=={version}"] = str(exc)


class SharedBootstrapper:
    """The engine an update's jobs share: the pipeline (podman service, image, per-package
    settings) is opened on the first job only, and each job gets a Bootstrapper of its own job
    policy over it. Close it (or use it as a context manager) to stop the pipeline."""

    def __init__(self, open_pipeline: Callable[[], AbstractContextManager[Bootstrapper]]) -> None:
        self._open = open_pipeline
        self._stack = ExitStack()
        self._engine: Bootstrapper | None = None

    def for_policy(self, policy: JobPolicy) -> Bootstrapper:
        if self._engine is None:
            self._engine = self._stack.enter_context(self._open())
        return self._engine.with_job_policy(policy)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> SharedBootstrapper:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

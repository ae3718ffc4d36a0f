"""Publish built wheels only once they are shown to install from our index alone.

A built wheel is staged: the run's other builds can use it at once (build environments), but the
index gets it only when (1) every project of its install closure has a wheel in the index or the
stage, and (2) a smoke test (smoketest.py) installed it with that closure, offline, and imported
it. Wheels that become ready together share one container start, and a wheel is published
only once the staged wheels its closure holds passed too. A wheel that fails stays out of
the index; its record, with the reason, goes to OUTPUT/rejected/.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from mirror_builder.sandbox.imagenames import ImageRef
from mirror_builder.errors import MirrorBuilderError
from mirror_builder.files import failed_write
from mirror_builder.index.wheelindex import WheelIndex
from mirror_builder.timeline import Timeline
from mirror_builder.provenance.store import RecordStore
from mirror_builder.config.settings import BuildSettings
from mirror_builder.build.request import Executor, SmokeRequest, SmokeResult, SmokeTest
from mirror_builder.resolve.target import TargetEnvironment

log = logging.getLogger(__name__)

GATHER_SECONDS = 0.25
# Smoke-test containers at once (each also holds one of the run's build slots).
TESTERS = 2


@dataclass
class Staged:
    """A built wheel waiting for its smoke test."""

    name: NormalizedName
    version: str
    chain: tuple[str, ...]
    wheel: Path
    record: dict
    requires_python: str | None
    requires_dist: tuple[str, ...]
    log_path: Path
    image: ImageRef
    imports: tuple[str, ...] | None  # None: the package's overrides skip the smoke test
    publish_source: Callable[[], None]  # archive its sdist beside the index
    extras: frozenset[str] = frozenset()
    # Its smoke test, passed already in its build container (engine/smokeplan.py), or a Future
    # of that (None if it did not pass) while the container still runs it.
    tested: SmokeResult | Future | None = None

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class Pacing:
    """How the publisher shares its run: the timeline its smoke tests and publishing go on, and
    the slot a smoke test holds while it runs (the run's build slots, behind every build that
    waits, so that tests fill the slots builds leave idle instead of crowding them)."""

    timeline: Timeline = field(default_factory=Timeline)
    slot: Callable[[str], AbstractContextManager] = lambda label: nullcontext()


@dataclass(frozen=True)
class Outcome:
    staged: Staged
    result: SmokeResult
    published: Path | None  # the wheel in the index, when it passed


class Publisher:
    """Stages a run's built wheels and publishes each one that passes its smoke test (run by
    executor): its record goes to records, a failed one's to rejected; on_outcome is told of
    each result.

    Testing and publishing are two steps. A wheel is tested as soon as every wheel of its
    install closure is in the index or staged (built, whatever its own test says yet), beside
    other batches; it is published once those staged wheels are published too (an install
    cycle together), and held back if one of them fails. So no smoke test waits for another's
    result, and the index never offers a wheel whose closure it lacks."""

    def __init__(self, index: WheelIndex, records: RecordStore, rejected: RecordStore,
                 executor: Executor, target: TargetEnvironment, limits: BuildSettings,
                 on_outcome: Callable[[Outcome], None], pacing: Pacing | None = None) -> None:
        self.index = index
        self.records = records
        self.rejected = rejected
        self.executor = executor
        self.target = target
        self.limits = limits
        self.on_outcome = on_outcome
        self.pacing = pacing or Pacing()
        self._pending: list[Staged] = []  # waiting for its closure to be staged
        self._testing: list[Staged] = []
        self._passed: dict[str, tuple[Staged, SmokeResult]] = {}  # by pin: to be published
        # By pin: passed in its build container on wheels the run had built but not yet staged
        # here (it hands a waiting container a wheel as soon as it is built); passed once they
        # are staged, tested again if the run ends first.
        self._early: dict[str, tuple[Staged, SmokeResult]] = {}
        self._accepted: list[Staged] = []
        self._rejected: dict[NormalizedName, str] = {}
        self._held: set[NormalizedName] = set()  # held at the end (waiting for review)
        self._lock = threading.Lock()  # guards the seven above
        self._testers = threading.BoundedSemaphore(TESTERS)
        self._publishing = threading.Lock()  # one writer of the index at a time
        self._threads: list[threading.Thread] = []
        self._awaiting: list[threading.Thread] = []  # for tests still running in build containers
        # Their wheels, by pin: staged like a pending one (part of the pool a closure is
        # found in) until their test says.
        self._awaited: dict[str, Staged] = {}
        self._finishing = threading.Event()

    def submit(self, staged: Staged) -> None:
        """Stage a wheel; smoke tests run on another thread, so the build goes on. One that
        passed its test in its build container, with its whole closure at hand, is not tested
        again: it is published as soon as the staged wheels of its closure are."""
        if isinstance(staged.tested, Future):
            # Its build container is still testing it: taken up again once it is done.
            later = staged.tested
            thread = threading.Thread(
                target=lambda: self.submit(dataclasses.replace(staged, tested=later.result())),
                name=f"await {staged.pin}", daemon=True)
            with self._lock:
                self._awaiting.append(thread)
                self._awaited[staged.pin] = staged
                promoted = self._promote_early()
            thread.start()
            if promoted:
                self._publish_what_can()
            return
        with self._lock:
            self._awaited.pop(staged.pin, None)  # now passed or pending, in the same step
            tested = staged.tested is not None
            if tested and not self._closure(staged, self._pool(staged))[1]:
                self._passed[staged.pin] = (staged, staged.tested)
                log.info("%s passed its smoke test in its build container", staged.pin)
            elif tested and not self._finishing.is_set():
                self._early[staged.pin] = (staged, staged.tested)
            else:
                self._pending.append(staged)
                tested = False
            promoted = self._promote_early()
        if tested or promoted:
            self._publish_what_can()
        if tested:
            return
        with self._lock:
            thread = threading.Thread(target=self._drain, name=f"publish {staged.pin}", daemon=True)
            self._threads.append(thread)
        thread.start()

    def finish(self, hold: frozenset[NormalizedName] = frozenset()) -> list[Staged]:
        """Wait for the smoke tests under way, then test what is still waiting: a wheel whose
        closure is incomplete fails there with the installer's own explanation. Wheels whose
        closure needs a package in hold (waiting for review) are neither tested nor published:
        they are returned, and their job waits with them."""
        self._finishing.set()  # no more gathering: the run's builds are done
        for thread in list(self._awaiting):  # every wheel submitted whole before it is decided
            thread.join()
        held: list[Staged] = []
        with self._lock:
            # What their build containers were given never reached the stage: tested here.
            self._pending.extend(staged for staged, _ in self._early.values())
            self._early.clear()
            for staged in list(self._pending):
                if set(self._closure(staged, self._pool())[1]) & hold:
                    self._pending.remove(staged)
                    held.append(staged)
            self._held = {staged.name for staged in held}
        # What is ready now is tested at once, beside the batches under way (not after them:
        # this is the run's last step).
        with self._lock:
            batch = self._take_ready()
            self._start_testing(batch)
        if batch:
            self._process(batch)
        self._join_threads()
        while True:
            with self._lock:
                batch = self._take_ready() or self._take_held_back() or list(self._pending)
                self._start_testing(batch)
            if not batch:
                break
            self._process(batch)
        held += self._publish_what_can(final=True)
        return held

    def _join_threads(self) -> None:
        """Wait for every thread of the publisher's, also those started meanwhile (a wheel its
        build container was still testing is submitted again from one of them)."""
        while True:
            with self._lock:
                alive = [thread for thread in self._threads if thread.is_alive()]
            if not alive:
                return
            for thread in alive:
                thread.join()

    # -- readiness -------------------------------------------------------------------------
    def _drain(self) -> None:
        # Gather: wheels staged moments apart share one container start. Briefly: a test
        # waits for a build slot anyway, and one that starts late lengthens the run's tail.
        self._finishing.wait(GATHER_SECONDS)
        while True:
            with self._testers:
                with self._lock:
                    batch = self._take_ready()
                    self._start_testing(batch)
                if not batch:
                    return
                try:
                    self._process(batch)
                except Exception as exc:  # noqa: BLE001 - on this thread, nobody else would see it
                    for staged in batch:
                        self._could_not_publish(staged, SmokeResult(staged.wheel.name, "failed"),
                                                exc)

    def _start_testing(self, batch: list[Staged]) -> None:
        for staged in batch:
            self._pending.remove(staged)
            self._testing.append(staged)

    def _promote_early(self) -> bool:
        """Move the wheels passed early whose closure is now all staged or in the index to the
        passed ones (under self._lock); whether any moved."""
        pool = self._pool()
        ready = [pin for pin, (staged, _) in self._early.items()
                 if not self._closure(staged, pool)[1]]
        for pin in ready:
            self._passed[pin] = self._early.pop(pin)
            log.info("%s passed its smoke test in its build container", pin)
        return bool(ready)

    def _take_ready(self) -> list[Staged]:
        """Wheels whose whole install closure is in the index or staged: a wheel is tested with
        the staged wheels it needs, whether or not their own tests are done."""
        pool = self._pool()
        return [s for s in self._pending if not self._closure(s, pool)[1]]

    def _take_held_back(self) -> list[Staged]:
        """Wheels that need a project which failed its own smoke test: they cannot pass."""
        pool = self._pool()
        return [s for s in self._pending if self._closure(s, pool)[0] & set(self._rejected)]

    def _pool(self, *more: Staged) -> dict[NormalizedName, list[Staged]]:
        return _by_name([*self._pending, *self._testing, *(s for s, _ in self._passed.values()),
                         *self._accepted, *self._awaited.values(),
                         *(s for s, _ in self._early.values()), *more])

    def _closure(self, staged: Staged, pool: dict[NormalizedName, list[Staged]]
                 ) -> tuple[set[NormalizedName], list[NormalizedName]]:
        """The projects of staged's install closure that come from pool (staged wheels), and
        those that neither pool nor the index can provide."""
        from_pool: set[NormalizedName] = set()
        missing: list[NormalizedName] = []
        seen: set[tuple[NormalizedName, frozenset[str]]] = set()
        todo = [(staged.requires_dist, staged.extras)]
        while todo:
            requires, extras = todo.pop()
            for text in requires:
                requirement = Requirement(text)
                if not self.target.applies(requirement, extras):
                    continue
                name = canonicalize_name(requirement.name)
                key = (name, frozenset(requirement.extras))
                if key in seen or name == staged.name:
                    continue
                seen.add(key)
                # The version matters: another version of the project will not install.
                matches = [s for s in pool.get(name, ()) if name not in self._rejected
                           and requirement.specifier.contains(Version(s.version), prereleases=True)]
                if matches:
                    from_pool.add(name)
                    todo.append((matches[0].requires_dist, frozenset(requirement.extras)))
                elif any(requirement.specifier.contains(w.version, prereleases=True)
                         for w in self.index.wheels(name)):
                    continue
                elif name in self._rejected:
                    from_pool.add(name)
                else:
                    missing.append(name)
        return from_pool, missing

    # -- testing and publishing ------------------------------------------------------------
    def _process(self, batch: list[Staged]) -> None:
        """Test the batch (taken off pending onto testing), then publish what can be."""
        try:
            results = self._test(batch)
        except BaseException:
            with self._lock:
                for staged in batch:
                    self._testing.remove(staged)
            raise
        failed = []
        with self._lock:
            for staged in batch:
                self._testing.remove(staged)
                result = results[staged.wheel.name]
                if result.status == "failed":
                    failed.append(staged)
                else:
                    self._passed[staged.pin] = (staged, result)
        for staged in failed:
            self._publish_one(staged, results[staged.wheel.name])
        self._publish_what_can()

    def _test(self, batch: list[Staged]) -> dict[str, SmokeResult]:
        with self._lock:
            pool = self._pool()
            held = {s.pin: sorted(self._closure(s, pool)[0] & set(self._rejected)) for s in batch}
            staged_wheels = [s.wheel for group in pool.values() for s in group]
        results: dict[str, SmokeResult] = {}
        to_test = []
        for staged in batch:
            if held[staged.pin]:
                reasons = "; ".join(f"{n} ({self._rejected[n]})" for n in held[staged.pin])
                results[staged.wheel.name] = SmokeResult(
                    staged.wheel.name, "failed", image=staged.image.tag,
                    error=f"held back: it requires {reasons}")
            elif staged.imports is None:
                results[staged.wheel.name] = SmokeResult(
                    staged.wheel.name, "skipped", image=staged.image.tag,
                    error="skipped by the package's overrides (smoke_test: false)")
            else:
                to_test.append(staged)
        for image in {s.image.tag: s.image for s in to_test}.values():
            group = [s for s in to_test if s.image.tag == image.tag]
            results |= self._smoke_test(image, group, staged_wheels)
        return results

    def _smoke_test(self, image: ImageRef, group: list[Staged],
                    staged_wheels: list[Path]) -> dict[str, SmokeResult]:
        log_path = group[0].log_path.parent / f"smoke-{group[0].name}-{group[0].version}.log"
        label = ", ".join(s.pin for s in group)
        log.info("smoke-testing %s", label)
        with self.pacing.slot(f"smoke test of {label}"), \
                self.pacing.timeline.span(label, "smoke") as parts:
            parts["wheels"] = len(group)
            results = self.executor.smoke_test(SmokeRequest(
                image, self.index.layout, tuple(staged_wheels),
                tuple(SmokeTest(s.wheel, s.imports or ()) for s in group), self.limits, log_path))
        # The smoke test's output goes into each failed wheel's own log.
        text = log_path.read_text(errors="replace") if log_path.is_file() else ""
        for staged in group:
            if results[staged.wheel.name].status != "passed":
                with staged.log_path.open("a") as out:
                    out.write(f"\n[mirror-builder] smoke test of {staged.wheel.name}\n{text}")
        log_path.unlink(missing_ok=True)
        return results

    def _publish_what_can(self, final: bool = False) -> list[Staged]:
        """Publish the passed wheels whose staged closure is published or publishable with them;
        hold back those that need a wheel that failed. final: nothing is pending or under test
        any more; a passed wheel that needs what was never published (waiting for review) is
        returned, held."""
        with self._publishing:
            while True:
                with self._lock:
                    publish, held_back = self._publishable()
                if not publish and not held_back:
                    break
                for staged, result in held_back:
                    self._publish_one(staged, result)
                for staged, result in publish:
                    self._publish_one(staged, result)
            if not final:
                return []
            with self._lock:
                left = [staged for staged, _ in self._passed.values()]
                self._passed.clear()
            return left

    def _publishable(self) -> tuple[list[tuple[Staged, SmokeResult]],
                                    list[tuple[Staged, SmokeResult]]]:
        """Of the passed wheels: those to publish now, and those to hold back (failed)."""
        pool = self._pool()
        closures = {pin: self._closure(staged, pool) for pin, (staged, _) in self._passed.items()}
        members = {pin: found for pin, (found, _) in closures.items()}
        held_back = []
        for pin, (staged, result) in self._passed.items():
            failed = sorted(members[pin] & set(self._rejected))
            if failed:
                reasons = "; ".join(f"{n} ({self._rejected[n]})" for n in failed)
                held_back.append((staged, dataclasses.replace(
                    result, status="failed", error=f"held back: it requires {reasons}")))
        if held_back:
            return [], held_back
        unsettled = {s.name for s in [*self._pending, *self._testing]}
        # One whose closure lost a member since its test (held for review) waits with it.
        ready = {pin: passed for pin, passed in self._passed.items()
                 if not set(closures[pin][1]) & self._held}
        changed = True
        while changed:  # drop those that need a wheel that is not ready itself
            changed = False
            ready_names = {staged.name for staged, _ in ready.values()}
            accepted = {s.name for s in self._accepted}
            for pin in list(ready):
                needs = members[pin] - accepted - {ready[pin][0].name}
                if needs & unsettled or not needs <= ready_names:
                    del ready[pin]
                    changed = True
        return list(ready.values()), []

    def _publish_one(self, staged: Staged, result: SmokeResult) -> None:
        try:
            with self.pacing.timeline.span(staged.pin, "publish"):
                self._settle(staged, result)
        except (OSError, MirrorBuilderError) as exc:
            self._could_not_publish(staged, result, exc)
        finally:
            # Only now, once it is accepted or rejected: taken out before, it was nowhere for
            # a moment, and a pass submitted then (from a build container that tested with
            # it) found its closure incomplete and was tested again (only publishers take
            # from _passed, one at a time).
            with self._lock:
                self._passed.pop(staged.pin, None)

    def _could_not_publish(self, staged: Staged, result: SmokeResult, exc: Exception) -> None:
        """Publishing failed (a full disk, say): the package's failure. Every file is renamed
        into place, so the index shows the wheel whole or not at all."""
        why = failed_write(exc) if isinstance(exc, OSError) else f"{exc}; nothing half-written was kept"
        failed = dataclasses.replace(result, status="failed", error=why)
        with self._lock:
            self._rejected[staged.name] = failed.error
        log.error("%s: %s", staged.pin, failed.error)
        self.on_outcome(Outcome(staged, failed, None))

    def _settle(self, staged: Staged, result: SmokeResult) -> None:
        published = None
        record = staged.record | {"smoke_test": result.to_dict()}
        if result.status in ("passed", "skipped"):
            # The source and the record go first: a wheel is never in the index without them.
            staged.publish_source()
            self.records.write(record, staged.log_path)
            # Its statement beside the wheel, where the project page's provenance URL points.
            self.records.copy_statement(record, self.index.layout.provenance(
                staged.name, staged.wheel.name))
            published = self.index.add(staged.wheel, staged.requires_python).path
            staged.log_path.unlink(missing_ok=True)  # kept beside the record from now on
            with self._lock:
                self._accepted.append(staged)
            log.info("published %s (smoke test %s)", staged.wheel.name, result.status)
        else:
            self.rejected.write(record, staged.log_path)
            staged.log_path.unlink(missing_ok=True)
            with self._lock:
                self._rejected[staged.name] = _why_not(result)
            log.warning("%s failed its smoke test and stays out of the index: %s",
                        staged.pin, result.error)
        outcome = Outcome(staged, result, published)
        self.on_outcome(outcome)



def _why_not(result: SmokeResult) -> str:
    """Why a wheel of this batch stays out, as its dependents' message names it."""
    if result.error.startswith("held back: "):
        return result.error
    return f"failed its smoke test: {result.error}"


def _by_name(staged: list[Staged]) -> dict[NormalizedName, list[Staged]]:
    found: dict[NormalizedName, list[Staged]] = {}
    for item in staged:
        found.setdefault(item.name, []).append(item)
    return found

"""Whether a build can smoke-test its own wheel before its container ends.

A wheel is smoke-tested with its whole install closure. When every wheel of that closure is
already at hand as the build starts (a leaf, or a package whose dependencies were built first),
the build's container tests the wheel right after building it, instead of a container started
for the test later: one container start less per package, and for most of a tree's packages.

The closure is read from the run's resolution (the package's upstream Requires-Dist, then each
member's real one) over the wheels the run has so far. The built wheel may need otherwise; then
its install fails there, and the publisher tests it on its own as before (build/request.py's
SmokePlan: the host takes only a pass from a build container).

When the closure is not all built as the build starts (a top-level package is built beside its
dependencies), the container may wait for it after the hand-over, without a build slot
(ClosureWait): the host gives it the closure, read from the built wheel's own Requires-Dist,
once the run has built it, and a slot for the test; or tells it to skip the test when the run
will not build it, and the publisher tests the wheel on its own.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from mirror_builder.build.request import BuildResult, FileRef, SmokePlan, SmokeResult
from mirror_builder.engine.model import BuiltWheel

if TYPE_CHECKING:
    from mirror_builder.index.publisher import Staged


def smoke_test_priority(wheels: int = 0) -> tuple:
    """A smoke test's claim on a build slot, beside a build's (how many tasks wait for it,
    whether it compiles, whether its closure is built, whether something asked for it, True):
    behind every build that others wait for and a compiled one nobody waits for yet. Of the
    tests, the one that installs the most wheels goes first: it takes longest, and the run's end
    waits for every test."""
    return (0, True, True, True, False, wheels)


def closure_at_hand(name: NormalizedName, requires: Sequence[str],
                    done: Mapping[tuple[NormalizedName, Version], BuiltWheel],
                    applies: Callable[[Requirement, frozenset[str]], bool]
                    ) -> tuple[FileRef, ...] | None:
    """The wheels of the install closure of a package that requires requires (its own wheel
    left out), from done; None if a member has no wheel there yet (or only a rejected one).
    applies: whether a requirement holds for the target with the extras it was asked with (the
    package's own with none: the test installs the wheel alone)."""
    by_name: dict[NormalizedName, list[BuiltWheel]] = {}
    for wheel in done.values():
        if wheel.status != "rejected":
            by_name.setdefault(wheel.name, []).append(wheel)
    chosen: dict[NormalizedName, BuiltWheel] = {}
    todo: list[tuple[str, frozenset[str]]] = [(text, frozenset()) for text in requires]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        text, extras = todo.pop()
        if (text, extras) in seen:
            continue
        seen.add((text, extras))
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            return None
        if not applies(requirement, extras):
            continue
        member = canonicalize_name(requirement.name)
        if member == name:
            continue
        wheel = chosen.get(member) or _best(by_name.get(member, ()), requirement)
        if wheel is None or not requirement.specifier.contains(wheel.version, prereleases=True):
            return None
        if member not in chosen:
            chosen[member] = wheel
        todo += [(dep, frozenset(requirement.extras)) for dep in wheel.requires_dist]
    return tuple(FileRef(w.path, w.sha256) for _, w in sorted(chosen.items()))


def _best(wheels: Sequence[BuiltWheel], requirement: Requirement) -> BuiltWheel | None:
    fitting = [w for w in wheels if requirement.specifier.contains(w.version, prereleases=True)]
    return max(fitting, key=lambda w: w.version, default=None)


@dataclass
class SelfTest:
    """A build's chance to smoke-test its own wheel, asked again as the run goes on (its
    closure is built bit by bit). closure: the wheels at hand now, or None."""

    closure: Callable[[], tuple[FileRef, ...] | None]
    imports: tuple[str, ...] | None  # None: the wheel's top-level modules
    # How many wheels the run has: the answer can only change when that does (the slots ask
    # every waiting build's priority each time one frees, on a big tree hundreds of times).
    generation: Callable[[], int] = lambda: 0
    _ready: bool = field(default=False, init=False)
    _asked_at: int | None = field(default=None, init=False)

    def at_hand(self) -> bool:
        """Whether its closure is built (once it is, it stays so): of builds otherwise equal,
        these take a free slot first, so that the others' closures are further along."""
        generation = self.generation()
        if not self._ready and generation != self._asked_at:
            self._asked_at = generation
            self._ready = self.closure() is not None
        return self._ready

    def plan(self) -> SmokePlan | None:
        closure = self.closure()
        return None if closure is None else SmokePlan(closure, self.imports)


@dataclass
class ClosureWait:
    """build/request.py's ClosureLater for one build: called once its container has handed the
    wheel over, it waits until the run has the package's wheel and the whole install closure of
    its real Requires-Dist, then takes a slot for the test; None once the run builds nothing
    more, or once deadline (time.monotonic()) passes."""

    key: tuple[NormalizedName, Version]
    done: Callable[[], Mapping[tuple[NormalizedName, Version], BuiltWheel]]  # a copy, now
    applies: Callable[[Requirement, frozenset[str]], bool]
    generation: Callable[[], int]
    running: Callable[[], bool]  # whether the run may still build more
    slot: Callable[[int], AbstractContextManager]  # a build slot for a test of so many wheels
    deadline: float
    on_test: Callable[[float], None] = lambda started: None  # called with its start at its end
    # changed(generation, timeout): returns once generation() may differ from the one given (or
    # the run builds nothing more), or after timeout; None: look every poll_seconds.
    changed: Callable[[int, float], None] | None = None
    poll_seconds: float = 0.02
    # Looked at this often even when nothing was announced (the deadline, a missed notice).
    recheck_seconds: float = 1.0

    def __call__(self) -> tuple[tuple[FileRef, ...], Callable[[], None]] | None:
        asked_at = None
        while time.monotonic() < self.deadline:
            busy = self.running()  # asked first: a task that ends now has added its wheel
            generation = self.generation()
            if generation != asked_at:
                asked_at = generation
                closure = self._closure()
                if closure is not None:
                    return closure, self._take_slot(len(closure) + 1)
            if not busy:
                return None
            if self.changed is None:
                time.sleep(self.poll_seconds)
            else:
                self.changed(generation, max(0.0, min(self.recheck_seconds,
                                                      self.deadline - time.monotonic())))
        return None

    def _closure(self) -> tuple[FileRef, ...] | None:
        done = self.done()
        own = done.get(self.key)
        if own is None or own.status == "rejected":
            return None
        return closure_at_hand(self.key[0], own.requires_dist, done, self.applies)

    def _take_slot(self, wheels: int) -> Callable[[], None]:
        held = self.slot(wheels)
        held.__enter__()
        started = time.monotonic()

        def release() -> None:
            held.__exit__(None, None, None)
            self.on_test(started)

        return release


class WaitingContainers:
    """How many of a run's build containers wait for their closure: at most `most` at once,
    since each holds its memory while it waits."""

    def __init__(self, most: int) -> None:
        self.most = most
        self._count = 0
        self._lock = threading.Lock()

    def admit(self) -> bool:
        with self._lock:
            if self._count >= self.most:
                return False
            self._count += 1
            return True

    def ended(self, smoke: object) -> None:
        """One admitted no longer waits once its container has ended (smoke: the build's
        BuildResult.smoke), at once if it never handed its wheel over (no Future)."""
        if isinstance(smoke, Future):
            smoke.add_done_callback(lambda _: self._leave())
        else:
            self._leave()

    def _leave(self) -> None:
        with self._lock:
            self._count -= 1


def tested_in_build(outcome: BuildResult, staged: Staged, repair: dict | None
                    ) -> SmokeResult | Future | None:
    """The build container's smoke test, when it stands for the staged wheel's: it passed, on
    the wheel that was staged (not repaired since) and for the modules the staged wheel's test
    would import. A Future of that while the container still runs it."""
    def stands_for(tested: SmokeResult | None) -> SmokeResult | None:
        if tested is None or tested.status != "passed" or repair is not None or \
                staged.imports is None or sorted(staged.imports) != sorted(tested.imports):
            return None
        return dataclasses.replace(tested, wheel=staged.wheel.name)

    if not isinstance(outcome.smoke, Future):
        return stands_for(outcome.smoke)
    later: Future = Future()
    outcome.smoke.add_done_callback(lambda done: later.set_result(
        stands_for(done.result() if done.exception() is None else None)))
    return later

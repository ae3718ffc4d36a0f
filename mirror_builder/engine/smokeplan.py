"""Whether a build can smoke-test its own wheel before its container ends.

A wheel is smoke-tested with its whole install closure. When every wheel of that closure is
already at hand as the build starts (a leaf, or a package whose dependencies were built first),
the build's container tests the wheel right after building it, instead of a container started
for the test later: one container start less per package, and for most of a tree's packages.

The closure is read from the run's resolution (the package's upstream Requires-Dist, then each
member's real one) over the wheels the run has so far. The built wheel may need otherwise; then
its install fails there, and the publisher tests it on its own as before (build/request.py's
SmokePlan: the host takes only a pass from a build container).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from mirror_builder.build.request import FileRef, SmokePlan
from mirror_builder.engine.model import BuiltWheel


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

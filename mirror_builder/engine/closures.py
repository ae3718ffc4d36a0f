"""The closures of a run: resolve a set of requirements (the user's, or one build's
environment), get every pin into the index, and resolve again until the built wheels' real
metadata agrees and no pin turned out unbuildable."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Literal

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from mirror_builder.engine.buildable import Buildability
from mirror_builder.engine.decisions import extras_wanted, path_to
from mirror_builder.engine.model import ROOT, CarryRefused, Edge, EdgeKind, UnbuildableVersion
from mirror_builder.errors import BuildError, PackageError, RebuildError, ResolutionError
from mirror_builder.jobs.review import NeedsReview, Request
from mirror_builder.resolve.resolver import Candidate, Finder, Resolution, Unbuildable, resolve

if TYPE_CHECKING:
    from mirror_builder.engine.run import BootstrapRun

log = logging.getLogger(__name__)


class Closures:
    def __init__(self, run: BootstrapRun) -> None:
        self.run = run
        # Asked of every upstream candidate: versions a build found unbuildable are passed over.
        self.buildability = Buildability(package=run.catalog.package,
                                         upstream_wheel=run.upstream_wheel) \
            if run.settings.versions.skip_unbuildable else None

    def closure(self, requirements: list[Requirement], *, parent: str, kind: EdgeKind,
                context: tuple[str, ...],
                preferred: Mapping[NormalizedName, Version] | None = None) -> Resolution:
        """A build environment or the user's install closure, every member in the index.

        A rebuild takes build environments from our own index; what the index cannot satisfy is
        an error, or with --bootstrap-missing is bootstrapped from upstream like any other."""
        if self.run.rebuild_request is not None and kind != "toplevel":
            try:
                return self._settle(requirements, self.run.index_finder, "wheel", parent=parent,
                                    kind=kind, context=context, preferred=preferred)
            except ResolutionError as exc:
                if not self.run.rebuild_request.bootstrap_missing:
                    raise self._missing_from_index(requirements, kind, context, exc) from None
                log.info("bootstrapping what the index is missing: %s", exc.detail)
        return self._settle(requirements, self.run.services.finder, "sdist", parent=parent,
                            kind=kind, context=context, preferred=preferred)

    def _missing_from_index(self, requirements: list[Requirement], kind: str,
                            context: tuple[str, ...], exc: ResolutionError) -> RebuildError:
        wanted = ", ".join(str(r) for r in requirements if self.run.target.applies(r))
        return RebuildError(
            f"our index cannot provide the {kind} requirements ({wanted}): {exc.detail}. Run "
            f"again with --bootstrap-missing to build them first",
            package=context[-1].split("==")[0] if context else "",
            version=context[-1].split("==")[1] if context else "", chain=context[:-1])

    def _settle(self, requirements: list[Requirement], finder: Finder, distributions: str, *,
                parent: str, kind: EdgeKind, context: tuple[str, ...],
                preferred: Mapping[NormalizedName, Version] | None) -> Resolution:
        """Resolve, build every pin, and resolve again until the real metadata of the built
        wheels agrees with the resolution."""
        preferred = dict(preferred or {})
        if kind in ("build-system", "build-backend", "repair"):
            preferred = self.run.index_versions() | preferred
        rounds = 0
        passed_over: set[str] = set()  # by this closure: resolution may not offer them again
        while rounds < 10:
            self.run.reporter.activity(context[-1] if context else "requirements", "resolving")
            resolution = self._resolve(requirements, finder, distributions, context, preferred)
            ahead = (lambda candidate, chain: self._build_ahead(
                candidate, chain, resolution, finder, distributions)) \
                if distributions == "sdist" else None
            outcome = self._ensure_all(resolution, parent, kind, context,
                                       passed_over if distributions == "sdist" else None, ahead)
            if outcome == "replaced":
                # A version turned out unbuildable: resolve again without it (each round passes
                # over one more version, never the same twice, so this ends).
                preferred = {name: c.version for name, c in resolution.pins.items()} | preferred
                continue
            if outcome == "failed" or self._consistent(resolution):
                return resolution
            preferred = {name: c.version for name, c in resolution.pins.items()}
            rounds += 1
            log.info("built metadata differs from upstream's; resolving again")
        raise BuildError("the resolution did not settle after 10 rounds", chain=context)

    def _resolve(self, requirements: list[Requirement], finder: Finder, distributions: str,
                 context: tuple[str, ...],
                 preferred: Mapping[NormalizedName, Version] | None) -> Resolution:
        wanted = self.run.options.resolve
        with self.run.timeline.span(context[-1] if context else "requirements", "resolve"):
            resolution = resolve(
                requirements, finder, self.run.target, constraints=wanted.constraints,
                allow_prereleases=self.run.allow_prereleases, preferred=preferred,
                direct=wanted.direct, context=context, distributions=distributions,
                any_file=self.run.any_file,
                vet=self.buildability if distributions == "sdist" else None)
        with self.run.lock:
            for name, skipped in resolution.skipped.items():
                self.run.report.skipped.setdefault(name, {}).update(skipped)
        return resolution

    def _ensure_all(self, resolution: Resolution, parent: str, kind: EdgeKind,
                    context: tuple[str, ...], passed_over: set[str] | None = None,
                    ahead: Callable[[Candidate, tuple[str, ...]], None] | None = None
                    ) -> Literal["done", "failed", "replaced"]:
        """Every pin in the index: done; failed if one failed and the run goes on without it;
        replaced if one turned out unbuildable and the resolution is to be made again.
        passed_over: the pins this closure replaced so far (None: versions cannot be
        replaced here, as in our own index)."""
        chains = {c.name: context + path_to(resolution, c.name) for c in resolution}
        self._check_carry(resolution, chains, parent)
        with self.run.lock:
            for child, reasons in resolution.why.items():
                for parent_pin, requirement in reasons:
                    self.run.wanted[(parent_pin or parent, resolution.pins[child].pin)] = (
                        kind if parent_pin is None else "install", requirement)
        for candidate in resolution:  # all at once: each starts fetching and resolving now
            started = self.run._start(candidate, chains[candidate.name])
            if ahead is not None:
                started.add_done_callback(
                    lambda done, c=candidate: done.exception() is None and
                    ahead(c, chains[c.name]))
        failed = False
        for candidate in resolution:
            try:
                self.run.ensure(candidate, chains[candidate.name])
            except PackageError as exc:
                # A pin offered again after it was passed over is one resolution may not
                # replace (the user's local sdist): its error is the error.
                why = self._dead_end(exc, candidate) \
                    if passed_over is not None and candidate.pin not in passed_over else None
                if why is not None:
                    passed_over.add(candidate.pin)
                    log.warning("%s cannot be built (%s); resolving again without it",
                                candidate.pin, why.reason)
                    self.buildability.mark(candidate, why)
                    # Resolve again now: the others' builds go on meanwhile, and the next
                    # round waits for them (or their replacements) the same way.
                    return "replaced"
                if isinstance(exc, UnbuildableVersion):
                    exc = exc.cause  # not passed over: the error behind it is the one to tell
                if not (self.run.options.keep_going and kind == "toplevel"):
                    raise exc from None
                self.run._failed(exc, candidate, chains[candidate.name])
                failed = True
        if failed:
            return "failed"
        with self.run.lock:
            for child, reasons in resolution.why.items():
                for parent_pin, requirement in reasons:
                    self.run.edges.add(Edge(parent_pin or parent, resolution.pins[child].pin,
                                        kind if parent_pin is None else "install", requirement))
        return "done"

    def _dead_end(self, exc: PackageError, candidate: Candidate) -> Unbuildable | None:
        """Why candidate's failure makes it a version to pass over, if it does: its build
        environment cannot be had, or (with --keep-going and replace_failed_builds) its own
        build failed."""
        if self.buildability is None or candidate.name in self.run.options.resolve.direct:
            return None  # the user's own sdist is never replaced
        if isinstance(exc, UnbuildableVersion) and exc.pin == candidate.pin:
            return Unbuildable(exc.reason, exc.cause)
        own = exc.package and canonicalize_name(exc.package) == candidate.name and \
            exc.version == str(candidate.version)
        if own and isinstance(exc, BuildError) and self.run.options.keep_going and \
                self.run.settings.versions.replace_failed_builds:
            where = f"; log: {exc.log_path}" if exc.log_path else ""
            return Unbuildable(f"its build failed{where}", exc)
        return None

    def _check_carry(self, resolution: Resolution, chains: Mapping[NormalizedName, tuple[str, ...]],
                     parent: str = ROOT) -> None:
        """The allow and deny lists hold for every command; under review, a package we do not
        carry yet (and no person approved) stops the job until someone does."""
        review = self.run.options.review
        needed: dict[NormalizedName, Request] = {}
        for candidate in resolution:
            chain = chains[candidate.name]
            why_not = self.run.catalog.carry_rules.why_not(candidate.name)
            if why_not:
                raise CarryRefused(f"{why_not}, so it cannot be built", package=candidate.name,
                                   version=str(candidate.version), chain=chain)
            if review is None or self._is_carried(candidate):
                continue
            if review.is_rejected(candidate.name):
                entry = review.get(candidate.name)
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
        review = self.run.options.review
        return (candidate.name in self.run.job_policy.requested
                or bool(self.run.index.entries(candidate.name))
                or (candidate.name, candidate.version) in self.run.done
                or review is not None and review.is_approved(candidate.name))

    def _build_ahead(self, candidate: Candidate, chain: tuple[str, ...],
                     resolution: Resolution, finder: Finder, distributions: str) -> None:
        """candidate is built, and its wheel requires what the resolution did not provide
        (pydantic 2.14.4's metadata upstream says pydantic-core 2.50.2, its built wheel 2.50.5):
        the resolution will be made again when this round ends; start building what it will
        need now, beside the round, instead of after it. Only projects we may carry without
        anyone's review; the new resolution decides all the same (a build it does not take is
        only time spent)."""
        run = self.run
        try:
            wheel = run.done.get((candidate.name, candidate.version))
            if wheel is None or wheel.status != "built" or run.options.review is not None:
                return
            extras = candidate.extras | extras_wanted(resolution, candidate.name)
            for text in wheel.requires_dist:
                requirement = Requirement(text)
                name = canonicalize_name(requirement.name)
                pin = resolution.pins.get(name)
                if not run.target.applies(requirement, extras) or run.catalog.carry_rules.why_not(
                        name) or pin is not None and requirement.specifier.contains(
                        pin.version, prereleases=True):
                    continue
                preferred = {n: c.version for n, c in resolution.pins.items() if n != name}
                needed = self._resolve([requirement], finder, distributions,
                                       chain + (candidate.pin,), preferred).pins[name]
                log.info("%s requires %s, which the resolution did not provide: building %s "
                         "ahead of the next resolution", candidate.pin, requirement, needed.pin)
                run._start(needed, chain + (candidate.pin,))
        except Exception as exc:  # noqa: BLE001 - only a head start; the next round decides
            log.debug("no head start after %s: %s", candidate.pin, exc)

    def _consistent(self, resolution: Resolution) -> bool:
        for candidate in resolution:
            wheel = self.run.done[(candidate.name, candidate.version)]
            extras = candidate.extras | extras_wanted(resolution, candidate.name)
            for text in wheel.requires_dist:
                req = Requirement(text)
                if not self.run.target.applies(req, extras):
                    continue
                pin = resolution.pins.get(canonicalize_name(req.name))
                if pin is None or not req.specifier.contains(pin.version, prereleases=True):
                    log.info("%s requires %s, which the resolution did not provide", candidate, req)
                    return False
        return True

"""Why a build happens: every build is a job, and its trigger says what asked for it."""

from __future__ import annotations

from dataclasses import dataclass

from packaging.utils import NormalizedName

from mirror_builder.jobs.log import JobLog


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

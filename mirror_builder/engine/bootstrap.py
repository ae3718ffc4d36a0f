"""Bootstrap and rebuild: the engine's way in. A Bootstrapper holds what lasts across runs (the
collaborators, the options, per-package settings); each run() or rebuild() is a BootstrapRun of
its own (engine/run.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from mirror_builder.engine.context import Catalog, Options, Services
from mirror_builder.engine.model import BootstrapReport, BuiltWheel
from mirror_builder.engine.run import BootstrapRun
from mirror_builder.engine.verifier import Verifier
from mirror_builder.jobs.triggers import JobPolicy, RebuildRequest
from mirror_builder.resolve.target import TargetEnvironment


class Bootstrapper:
    def __init__(self, services: Services, options: Options | None = None,
                 catalog: Catalog | None = None) -> None:
        self.services = services
        self.options = options or Options()
        self.catalog = catalog or Catalog(services.settings)

    def with_job_policy(self, policy: JobPolicy) -> Bootstrapper:
        """The same engine (collaborators, per-package settings), its builds logged as jobs of
        another policy: how update gives each of its jobs its own trigger."""
        return Bootstrapper(self.services, replace(self.options, job_policy=policy), self.catalog)

    @property
    def target(self) -> TargetEnvironment:
        return self.services.target.environment

    def run(self, requirements: Sequence[Requirement]) -> BootstrapReport:
        """Build the requirements and everything under them (see BootstrapRun.bootstrap)."""
        return self._new_run().bootstrap(requirements)

    def rebuild(self, name: str, version: Version, request: RebuildRequest) -> BuiltWheel:
        """Build one version again with the next rebuild number (see BootstrapRun.rebuild)."""
        return self._new_run(request).rebuild(canonicalize_name(name), version)

    def verify(self, name: str | None = None, version: Version | None = None):
        """Rebuild published wheels from their recorded inputs and compare (engine/verifier.py):
        (each Verification, the wheels passed over and why)."""
        verifier = Verifier(self._new_run())
        records, passed_over = verifier.wanted(name, version)
        return verifier.verify_all(records), passed_over

    def config_change(self, name: NormalizedName, version: Version, record: dict) -> str | None:
        """What changed in how we build this package since record's build, or None."""
        return self._new_run().reuse.config_change(name, version, record)

    def fits(self, filename: str) -> bool:
        return self.target.fits(filename)

    def _new_run(self, rebuild: RebuildRequest | None = None) -> BootstrapRun:
        return BootstrapRun(self.services, self.options, self.catalog, rebuild)

"""The local Executor: every unit of work (build, repair, smoke test) in a network-less podman
container on this machine."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mirror_builder.build.builder import Builder
from mirror_builder.build.request import (BuildRequest, BuildResult, RepairRequest, RepairResult,
                                          SmokeRequest)
from mirror_builder.build.request import ClosureLater, SmokeResult
from mirror_builder.build.smoketest import SmokeTester
from mirror_builder.build.warm import WarmContainers
from mirror_builder.sandbox.podman import PodmanService
from mirror_builder.sandbox.jobfolders import assemble_driver


class PodmanExecutor:
    """Safe to use from several threads. Of a run it keeps only containers started for builds
    to come (close() removes those nobody took)."""

    def __init__(self, podman: PodmanService, state_dir: Path, warm: bool = True) -> None:
        """warm: start each build's container before it is needed (build/warm.py)."""
        driver_dir = assemble_driver(state_dir / "driver")
        self.warm = WarmContainers(podman, state_dir / "work") if warm else None
        self.builder = Builder(podman, driver_dir, state_dir / "work", self.warm)
        self.smoke_tester = SmokeTester(podman, driver_dir, state_dir / "smoke")

    def close(self) -> None:
        """Remove the containers started for builds that never came."""
        if self.warm is not None:
            self.warm.close()

    closure_after_start = True  # the host fills a waiting container's closure folder

    def build(self, request: BuildRequest,
              closure_later: ClosureLater | None = None) -> BuildResult:
        return self.builder.build(request, closure_later)

    def repair(self, request: RepairRequest) -> RepairResult:
        return self.builder.repair(request)

    def smoke_test(self, request: SmokeRequest) -> Mapping[str, SmokeResult]:
        return self.smoke_tester.run(request.image, request.index, request.staged,
                                     request.tests, request.limits, request.log_path)

    def workers_summary(self) -> list[tuple[str, str, int, float]]:
        return []  # every build ran here

    def capacity(self) -> int | None:
        return None  # this machine's cores and memory decide (engine/scheduler.py)

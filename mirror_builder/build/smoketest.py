"""Smoke-test built wheels before they enter the index.

Each wheel is installed with its whole install closure into a fresh venv in a container with no
network, from our index (mounted read-only) plus the wheels staged in this run, and its top-level
modules are imported. Only what passes is published. Many wheels share one container start.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from mirror_builder.build.request import SmokeResult, SmokeTest
from mirror_builder.sandbox.jobfolders import BUILDER_UID, DRIVER_COMMAND, JobFolders, read_result
from mirror_builder.sandbox.imagenames import ImageRef
from mirror_builder.sandbox.toplevel import top_level_modules
from mirror_builder.sandbox.podman import Mount, PodmanService, RunSpec
from mirror_builder.config.settings import BuildSettings
from mirror_builder.layout import IndexLayout


def smoke_imports(setting: bool | tuple[str, ...], wheel: Path) -> tuple[str, ...] | None:
    """What a smoke test imports, by a package's smoke_test override: the wheel's top-level
    modules (True), nothing, no test (False), or the modules it names."""
    if setting is True:
        return top_level_modules(wheel)
    return None if setting is False else tuple(setting)


class SmokeTester:
    def __init__(self, podman: PodmanService, driver_dir: Path, work_dir: Path) -> None:
        self.podman = podman
        self.driver_dir = driver_dir
        self.work_dir = work_dir

    def run(self, image: ImageRef, index: IndexLayout, staged: Sequence[Path],
            tests: Sequence[SmokeTest], limits: BuildSettings, log_path: Path) -> dict[str, SmokeResult]:
        """Smoke-test each of tests against the index (mounted read-only); staged are the wheels
        (tests' own among them) that may complete an install closure besides the index. Keyed by
        wheel file name."""
        for folder in (index.simple, index.files):
            folder.mkdir(parents=True, exist_ok=True)
        job = {"mode": "smoke", "out": "/out", "index_url": "file:///index/simple/",
               "staging": "/staging", "jobs": min(len(tests), os.cpu_count() or 1),
               "tests": [{"wheel": t.wheel.name, "imports": list(t.imports)} for t in tests]}
        folders = JobFolders.create(self.work_dir, job, prefix="smoke-")
        mounts = [Mount(index.simple, "/index/simple"), Mount(index.files, "/index/files"),
                  Mount(folders.job, "/job"), Mount(self.driver_dir, "/mb"),
                  Mount(folders.out, "/out", read_only=False),
                  Mount(folders.scratch, "/tmp", read_only=False)]
        mounts += [Mount(path, f"/staging/{path.name}") for path in {p.name: p for p in staged}.values()]
        spec = RunSpec(image=image.tag, command=list(DRIVER_COMMAND),
                       mounts=tuple(mounts), environment={"HOME": "/tmp/mb-home", "LANG": "C.UTF-8"},
                       workdir="/tmp", user=f"{BUILDER_UID}:{BUILDER_UID}", network=False,
                       timeout_seconds=limits.timeout_seconds, memory=limits.memory,
                       pids_limit=limits.pids_limit, read_only_root=True)
        try:
            run = self.podman.run(spec, log_path)
            # Package code ran in that container too (imports): read its report as untrusted.
            reported = read_result(folders.out)[0].get("results")
            reported = reported if isinstance(reported, dict) else {}
        finally:
            folders.remove()
        results = {}
        for test in tests:
            got = reported.get(test.wheel.name)
            if got is None:
                why = "timed out" if run.timed_out else f"the smoke-test container exited with status {run.exit_code}"
                results[test.wheel.name] = SmokeResult(test.wheel.name, "failed", error=why,
                                                       image=image.tag)
                continue
            results[test.wheel.name] = SmokeResult(
                wheel=test.wheel.name, status="passed" if got.get("status") == "passed" else "failed",
                imports=dict(got.get("imports") or {}), freeze=tuple(got.get("freeze") or ()),
                error=str(got.get("error") or ""), seconds=float(got.get("seconds") or 0.0),
                image=image.tag)
        return results


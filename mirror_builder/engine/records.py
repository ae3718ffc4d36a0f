"""The build record of a wheel a run made (or took pre-built), from what the run knows of it."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from mirror_builder.build.jobspec import BUILD_HOSTNAME
from mirror_builder.build.request import BuildResult
from mirror_builder.prepare.buildsystem import BuildSystem
from mirror_builder.prepare.sources import PreparedSource
from mirror_builder.provenance.record import BuildRecord, Rebuild
from mirror_builder.provenance.stamp import rebuilt_filename, rebuilt_version
from mirror_builder.resolve.resolver import Candidate, Resolution
from mirror_builder.resolve.pages import DistributionFile

if TYPE_CHECKING:
    from mirror_builder.engine.run import BootstrapRun

_NOT_BUILT = {"network": "n/a: not built", "hostname": "", "user": "", "capabilities": "",
              "no_new_privileges": False, "memory": "", "pids_limit": 0, "timeout_seconds": 0,
              "cpus": None, "root_filesystem": "n/a: not built"}


def make_record(run: BootstrapRun, candidate: Candidate, source: PreparedSource | None,
                build_system: BuildSystem | None, env: Resolution | None,
                outcome: BuildResult | None, chain: tuple[str, ...], rebuild: Rebuild,
                origin: dict, *, wheel_name: str | None = None,
                source_file: DistributionFile | None = None) -> BuildRecord:
    """A built wheel's record (source, build_system, env and outcome given), or a pre-built
    one's (wheel_name and source_file given)."""
    if outcome is None:
        return _record(run, candidate, wheel_name, str(candidate.version), rebuild, chain, {
            "source": {"url": source_file.url, "filename": source_file.filename,
                       "sha256": source_file.sha256,
                       "sha256_checked_against_index": source_file.sha256 is not None,
                       "origin": origin}})
    final_name = rebuilt_filename(outcome.wheel.name, rebuild.number, rebuild.numbering)
    env_wheels = [run.done[(c.name, c.version)] for c in env]
    return _record(
        run, candidate, final_name,
        str(rebuilt_version(candidate.version, rebuild.number, rebuild.numbering)), rebuild, chain, {
            "source": {"url": candidate.file.url, "filename": candidate.file.filename,
                       "sha256": source.sdist_sha256,
                       "sha256_checked_against_index": candidate.file.sha256 is not None and
                       origin["kind"] == "sdist", "origin": origin},
            "patches": [asdict(p) for p in source.patches],
            "build_system": {"requires": list(build_system.requires),
                             "backend": build_system.backend,
                             "backend_path": list(build_system.backend_path),
                             "project_dir": source.project_dir},
            "outcome": outcome,
            "build_env": {"freeze": outcome.freeze.splitlines(),
                          "wheels": [{"filename": w.path.name, "sha256": w.sha256}
                                     for w in env_wheels]}})


def _record(run: BootstrapRun, candidate: Candidate, wheel_name: str, wheel_version: str,
            rebuild: Rebuild, chain: tuple[str, ...], parts: dict[str, Any]) -> BuildRecord:
    package = run.catalog.package(candidate.name)
    outcome: BuildResult | None = parts.get("outcome")
    now = datetime.now(timezone.utc).isoformat()
    return BuildRecord(
        name=candidate.name,
        version=str(candidate.version),
        wheel=wheel_name,
        wheel_version=wheel_version,
        source=parts["source"],
        patches=parts.get("patches", []),
        settings={"build": asdict(run.settings.build), "rebuild_numbering": rebuild.numbering,
                  "package": package.as_dict(), "plugin": run.catalog.plugin_record(candidate.name)},
        build_system=parts.get("build_system", {"requires": [], "backend": "", "backend_path": []}),
        backend_requires=list(outcome.backend_requires) if outcome else [],
        build_env=parts.get("build_env", {"freeze": [], "wheels": []}),
        target={"name": run.target.name, **dict(run.target.markers)},
        image=asdict(run.services.target.image_for(package) if outcome else run.services.target.image),
        sandbox=_sandbox(run, package, outcome) if outcome else dict(_NOT_BUILT),
        command=list(outcome.command) if outcome else [],
        environment=dict(outcome.environment) if outcome else {},
        started_at=outcome.started_at if outcome else now,
        ended_at=outcome.ended_at if outcome else now,
        seconds=round(outcome.seconds, 3) if outcome else 0.0,
        exit_status=0,
        rebuild=rebuild,
        required_by=list(chain),
        log=f"{wheel_name}.log",
        timings=({k: round(v, 3) for k, v in outcome.timings.items()}
                 | {"container": round(outcome.container_seconds, 3)}) if outcome else {},
        built_from_source=outcome is not None,
        skipped_versions=[{"version": str(v), "reason": why.reason}
                          for v, why in run.skipped_for(candidate)],
        variant=run.settings.variant,
        linked=[dict(lib) for lib in outcome.linked] if outcome else [],
    )


def _sandbox(run: BootstrapRun, package, outcome: BuildResult) -> dict[str, Any]:
    limits = run.packages.limits(package)
    return {"network": "none", "hostname": BUILD_HOSTNAME, "user": "builder (uid 1000)",
            "capabilities": "all dropped", "no_new_privileges": True,
            "root_filesystem": "read-only; writable: /out and a fresh /tmp",
            "memory": limits.memory, "pids_limit": limits.pids_limit,
            "timeout_seconds": limits.timeout_seconds, "cpus": package.cpus,
            "in_memory": list(outcome.in_memory),
            **({"user_namespace": dict(outcome.user_namespace)} if outcome.user_namespace else {}),
            **({"host": dict(outcome.worker)} if outcome.worker else {})}

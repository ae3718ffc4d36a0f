"""`verify`: rebuild a published wheel from its recorded inputs alone and compare the bytes.

The rebuild takes the sdist from our source archive by hash, the build environment's wheels
from our index by hash, the same patches, overrides, plugin and image (any of them changed
since the build is named as the reason it cannot be exact, never reported as a mismatch), and
varies what should not matter: the folder the tree is built in, the host name, the CPU count
and make's -j, and the order of the environment variables. It takes the same path through
PackageBuilder as a build, stamps the result with the record the published wheel carries, and
so expects the very same file.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
import shutil
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

from mirror_builder.build.request import FileRef, RepairRequest, Variation
from mirror_builder.errors import MirrorBuilderError
from mirror_builder.files import sha256_of
from mirror_builder.logs import about
from mirror_builder.prepare.buildsystem import read_build_system
from mirror_builder.provenance.sbom import sbom_bytes
from mirror_builder.provenance.stamp import EMBEDDED_RECORD, stamp_wheel
from mirror_builder.provenance.verification import (Verification, describe_difference,
                                                    verification_statement)
from mirror_builder.resolve.pages import DistributionFile
from mirror_builder.resolve.resolver import Candidate

if TYPE_CHECKING:
    from mirror_builder.engine.run import BootstrapRun

log = logging.getLogger(__name__)


class InputChanged(Exception):
    """An input of the recorded build is not what it was (or is gone): said in a line."""


class Verifier:
    def __init__(self, run: BootstrapRun) -> None:
        self.run = run

    def wanted(self, name: str | None = None, version: Version | None = None
               ) -> tuple[list[dict[str, Any]], list[str]]:
        """(the records to verify, the wheels passed over and why): of this run's target, the
        newest build of each version (of name, of name==version, or of every project)."""
        run = self.run
        names = [canonicalize_name(name)] if name else run.index.projects()
        chosen, passed_over = [], []
        for project in names:
            versions = [version] if version else run.records.versions(project)
            for each in versions:
                records = [r for r in run.records.for_version(project, each)
                           if r["target"]["name"] == run.target.name]
                if not records:
                    continue
                newest = records[0]
                if not newest.get("built_from_source", True):
                    passed_over.append(f"{newest['wheel']}: taken pre-built, nothing to rebuild")
                else:
                    chosen.append(newest)
        return chosen, passed_over

    def verify_all(self, records: list[dict[str, Any]]) -> list[Verification]:
        """Each record's wheel verified, as many at once as the run has build slots."""
        with self._working(), ThreadPoolExecutor(max(1, self.run.slots.jobs),
                                                 thread_name_prefix="verify") as pool:
            return list(pool.map(self.verify, records))

    def verify(self, record: dict[str, Any]) -> Verification:
        run, name, wheel = self.run, record["name"], record["wheel"]
        started = time.monotonic()
        with about(f"{name}=={record['version']}"):
            published = run.index.layout.file(name, wheel)
            if published.is_file() and sha256_of(published) != record["wheel_sha256"]:
                result = self._result(record, "differs", "the published file is not the one "
                                      "its record describes (its sha256 differs): replaced "
                                      "after publishing", started)
                return self._keep(record, result, None)
            try:
                wheels = self._check_inputs(record, published)
                rebuilt, varied = self._rebuild(record, wheels)
            except InputChanged as exc:
                result = self._result(record, "unverifiable", f"cannot be exact: {exc}", started)
                return self._keep(record, result, None)
            except MirrorBuilderError as exc:
                why = getattr(exc, "detail", None) or str(exc)
                result = self._result(record, "differs", f"the rebuild failed: {why}", started)
                return self._keep(record, result, None)
            rebuilt_sha = sha256_of(rebuilt)
            if rebuilt_sha == record["wheel_sha256"]:
                result = self._result(record, "reproduced", "bit-identical", started,
                                      varied=varied, rebuilt_sha256=rebuilt_sha)
                return self._keep(record, result, None)
            run.reporter.activity(result_label(record), "comparing with diffoscope")
            summary = describe_difference(published, rebuilt)
            differ = run.services.differ
            report = differ(published, rebuilt) if differ else None
            result = self._result(record, "differs", summary, started, varied=varied,
                                  rebuilt_sha256=rebuilt_sha)
            return self._keep(record, result, report or summary + "\n")

    def _check_inputs(self, record: dict[str, Any], published: Path) -> dict[str, Path]:
        """InputChanged naming the first input that is not what the build had; else the
        build environment's and the repair's wheels in the index, by file name (checked)."""
        run, name = self.run, record["name"]
        if not published.is_file():
            raise InputChanged(f"the published wheel {record['wheel']} is not in the index")
        source = record["source"]
        sdist = run.index.sources.layout.file(name, source["filename"])
        if not sdist.is_file() or sha256_of(sdist) != source["sha256"]:
            raise InputChanged(f"the archived sdist {source['filename']} (sha256 "
                               f"{source['sha256'][:12]}...) is not in the source archive")
        changed = run.reuse.config_change(name, Version(record["version"]), record)
        if changed == "the build image changed":
            now = run.services.target.image_for(run.catalog.package(name))
            changed += image_change(record["image"].get("system_packages", []),
                                    now.system_packages)
        if changed:
            raise InputChanged(changed)
        repair = record.get("repair") or {}
        return {w["filename"]: self._index_file(w)
                for w in [*record["build_env"]["wheels"], *repair.get("tools", ())]}

    def _index_file(self, wheel: dict[str, str]) -> Path:
        project = parse_wheel_filename(wheel["filename"])[0]
        path = self.run.index.layout.file(project, wheel["filename"])
        if not path.is_file() or sha256_of(path) != wheel["sha256"]:
            raise InputChanged(f"the build-environment wheel {wheel['filename']} (sha256 "
                               f"{wheel['sha256'][:12]}...) is not in the index")
        return path

    def _rebuild(self, record: dict[str, Any], wheels: dict[str, Path]
                 ) -> tuple[Path, dict[str, Any]]:
        """The wheel rebuilt from record's inputs (wheels: the checked ones, by file name),
        stamped as the published one was; and what was varied."""
        run, packages = self.run, self.run.packages
        name, version, source = record["name"], Version(record["version"]), record["source"]
        candidate = Candidate(name, version, DistributionFile(source["filename"], source["url"],
                                                              source["sha256"]))
        package = run.catalog.package(name)
        token = secrets.token_hex(4)
        work = run.work_dir / f"verify-{token}"
        work.mkdir(parents=True)
        # Beside the record, replaced by each verification: what the last rebuild did.
        log_path = run.records.layout.verify_log(name, record["wheel"])
        log_path.unlink(missing_ok=True)
        prepared, crates = packages.prepare_tree(
            candidate, package, run.index.sources.layout.file(name, source["filename"]),
            work / "src", log_path)
        if crates != source.get("origin", {}).get("vendored_crates", []):
            raise InputChanged("crates.io gave other crates for its Cargo.lock than the build "
                               "vendored")
        env_wheels = tuple(FileRef(wheels[w["filename"]], w["sha256"])
                           for w in record["build_env"]["wheels"])
        jobs = 1 if _jobs_of(record) > 1 else 2
        request = packages.request(prepared, read_build_system(prepared.project, candidate.pin),
                                   env_wheels, log_path, (), jobs=jobs)
        variation = Variation(work_dir=f"/tmp/mb-verify-{token}", hostname=f"verify-{token}")
        request = dataclasses.replace(
            request, runtime=dataclasses.replace(request.runtime, cpus=float(jobs)),
            variation=variation)
        with run.slots.slot(request.label, jobs):
            run.reporter.activity(request.label, "rebuilding to verify")
            outcome = run.services.executor.build(request)
        if outcome.status == "needs":
            raise InputChanged(f"its backend now asks for {', '.join(outcome.missing)}, which "
                               f"the recorded build environment lacks")
        built = outcome.wheel
        if record.get("repair"):
            tools = tuple(wheels[w["filename"]] for w in record["repair"]["tools"])
            built = run.services.executor.repair(RepairRequest(
                built, tools, request.runtime, log_path, candidate.pin)).wheel
        epoch = outcome.environment.get("SOURCE_DATE_EPOCH", "")
        rebuilt = stamp_wheel(built, work / "stamped", number=record["rebuild"]["number"],
                              numbering=record["rebuild"]["numbering"],
                              embed=_embedded(run.index.layout.file(name, record["wheel"]),
                                              outcome.linked),
                              epoch=int(epoch) if epoch.isdigit() else None)
        varied = {"build_dir": f"{variation.work_dir}/src", "hostname": variation.hostname,
                  "cpus": jobs, "make_jobs": jobs, "environment_order": "reversed"}
        return rebuilt, varied

    def _result(self, record: dict[str, Any], status, summary: str, started: float,
                **facts) -> Verification:
        return Verification(record["name"], record["version"], record["wheel"], status,
                            summary, seconds=time.monotonic() - started, **facts)

    def _keep(self, record: dict[str, Any], result: Verification,
              report: str | None) -> Verification:
        """Write the signed statement (and the differences) beside the record."""
        records = self.run.records
        statement_path = records.slsa_path(record["name"], record["wheel"])
        provenance = sha256_of(statement_path) if statement_path.is_file() else None
        records.write_verification(record, verification_statement(record, result, provenance),
                                   report)
        if report is not None:
            result = dataclasses.replace(
                result, differences=records.layout.differences(record["name"], record["wheel"]))
        log.info("%s: %s (%s)", record["wheel"], result.status, result.summary)
        return result

    @contextmanager
    def _working(self) -> Iterator[None]:
        self.run.work_dir.mkdir(parents=True, exist_ok=True)
        try:
            yield
        finally:
            shutil.rmtree(self.run.work_dir, ignore_errors=True)


def image_change(before: list[str], now: tuple[str, ...] | list[str], shown: int = 4) -> str:
    """What changed in an image's Debian packages (name=version lists), as a clause."""
    old = dict(p.split("=", 1) for p in before if "=" in p)
    new = dict(p.split("=", 1) for p in now if "=" in p)
    changes = [f"{n} {old.get(n, '(none)')} -> {new.get(n, '(removed)')}"
               for n in sorted(old.keys() | new.keys()) if old.get(n) != new.get(n)]
    if not changes:
        return " (the same Debian packages, rebuilt)"
    more = f" and {len(changes) - shown} more" if len(changes) > shown else ""
    return f" ({', '.join(changes[:shown])}{more})"


def result_label(record: dict[str, Any]) -> str:
    return f"{record['name']}=={record['version']}"


def _jobs_of(record: dict[str, Any]) -> int:
    flags = record.get("environment", {}).get("MAKEFLAGS", "")
    return int(flags[2:]) if flags.startswith("-j") and flags[2:].isdigit() else 2


def _embedded(published: Path, linked) -> dict[str, bytes]:
    """What stamping embeds in the rebuild: the published wheel's own record (which says when
    and by which job it was built: not something a rebuild can reproduce), and the SBOM made
    anew from it with what the rebuild links to (so a difference there shows)."""
    with zipfile.ZipFile(published) as archive:
        (member,) = [n for n in archive.namelist()
                     if n.partition("/")[0].endswith(".dist-info")
                     and n.partition("/")[2] == EMBEDDED_RECORD]
        embedded = archive.read(member)
    record = json.loads(embedded)
    found = {EMBEDDED_RECORD: embedded}
    if record.get("sbom"):  # records made before wheels carried an SBOM have none
        found[record["sbom"]] = sbom_bytes(dict(record, linked=[dict(x) for x in linked]))
    return found

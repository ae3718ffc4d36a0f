"""Build one package version, or repair its wheel, in a network-less podman container, from the
requests of build/request.py; everything the build leaves is checked before the host trusts it."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import stat
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from mirror_builder.build.grafted import grafted_libraries
from mirror_builder.build.handover import HandOver, copy_out
from mirror_builder.build.request import (BuildRequest, BuildResult, RepairRequest, RepairResult,
                                          ClosureLater, SmokeResult)
from mirror_builder.sandbox.podman import Mount, PodmanService, RunResult, RunSpec
from mirror_builder.sandbox.userns import give_back, id_map_text
from mirror_builder.errors import BuildError
from mirror_builder.sandbox.jobfolders import BUILDER_UID, DRIVER_COMMAND, JobFolders, read_result
from mirror_builder.build.jobspec import (LATER_CLOSURE, BuildJobs, ContainerSettings,
                                          container_settings)
from mirror_builder.build.warm import WarmContainers, link_into
from mirror_builder.build.wheelcheck import WheelRejected, check_built_wheel

log = logging.getLogger(__name__)


class InMemoryFailed(BuildError):
    """A build done in memory failed for it (why, as the driver says: it filled its tmpfs, or
    the OOM killer struck while its files took memory)."""

    def __init__(self, why: str, message: str, **where) -> None:
        super().__init__(message, **where)
        self.why = why


class Builder:
    """Builds and repairs with the in-container driver (sandbox/driver.py) in podman. Safe to
    use from several threads; it keeps nothing of a run."""

    def __init__(self, podman: PodmanService, driver_dir: Path, work_dir: Path,
                 warm: WarmContainers | None = None) -> None:
        self.podman = podman
        self.driver_dir = driver_dir
        self.work_dir = work_dir
        self.warm = warm
        self.jobs = BuildJobs(driver_dir, work_dir)

    def build(self, request: BuildRequest, closure_later: ClosureLater | None = None
              ) -> BuildResult:
        """Build; with request.smoke, the container tests the wheel after handing it over.
        closure_later: for a plan that waits (SmokePlan.wait), what gives it its closure. A
        build done in memory that fails for it (sandbox/limits.py) is built again on disk."""
        settings = container_settings(request)  # reads the environment's wheels: once
        try:
            return self._build_with(request, settings, closure_later)
        except InMemoryFailed as exc:
            # The driver's words, on one line: the build ran in its container.
            note = f"{' '.join(exc.why.split())[:200]}; building it again on disk"
        log.info("%s: %s", request.label, note)
        with request.log_path.open("a") as log_file:
            log_file.write(f"[mirror-builder] {request.label}: {note}\n")
        return self._build_with(request, container_settings(request, on_disk=True),
                                closure_later)

    def _build_with(self, request: BuildRequest, settings: ContainerSettings,
                    closure_later: ClosureLater | None) -> BuildResult:
        """The build with these container settings, saying which of its folders were in
        memory. InMemoryFailed leaves it only for a build that was in memory; on disk, such a
        failure is a failed build like any other."""
        try:
            result = self._build(request, settings, closure_later)
        except InMemoryFailed as exc:
            if settings.in_memory:
                raise
            raise self._error(request, exc.detail) from None
        return dataclasses.replace(result, in_memory=tuple(f"{t.target} ({t.size})"
                                                           for t in settings.tmpfs))

    def _build(self, request: BuildRequest, settings: ContainerSettings,
               closure_later: ClosureLater | None) -> BuildResult:
        started_at = datetime.now(timezone.utc)
        started = time.monotonic()
        warm = None if self.warm is None else self.warm.take(settings.key)
        if warm is not None:
            try:
                folders, spec = self.jobs.warm(request, settings, warm)
            except OSError as exc:
                log.debug("%s: a warm container could not be given the job: %s", request.label, exc)
                self.warm.discard(warm)
                warm = None
        if warm is None:
            folders, spec = self.jobs.cold(request, settings)
        # One for the next build, started while this one runs (once this one has started).
        offer = self.jobs.offer_warm(self.warm, request, settings)
        if warm is not None:
            offer()
        running = warm.started if warm else None
        waits = request.smoke is not None and request.smoke.wait
        _log_start(request)
        container = None
        try:
            if request.smoke is not None:
                container = HandOver(self.podman, spec, request.log_path, folders, running,
                                     on_started=None if warm else offer)
                early = container.wait_for_wheel()
                if early is not None:
                    # A plan that waits with nobody to give it the closure skips its test.
                    return self._handed_over(request, container, *early, started_at, started,
                                             (closure_later or (lambda: None)) if waits else None)
                run = container.end()
            else:
                run = self.podman.run(spec, request.log_path, started=running,
                                      on_started=None if warm else lambda *_: offer())
            result = self._checked_result(request, run, folders.out)
            wheel = self._take_wheel(request, folders.out, result) \
                if result["status"] == "built" else None
            return _build_result(request, result, run, wheel, started_at, started)
        finally:
            if container is not None:  # it may still run its test
                container.remove_folders_at_end()
            else:  # off the build slot: a build environment is thousands of files
                threading.Thread(target=folders.remove, name="remove job folders").start()

    def _handed_over(self, request: BuildRequest, container: HandOver, result: dict,
                     so_far: RunResult, started_at: datetime, started: float,
                     closure_later: ClosureLater | None = None) -> BuildResult:
        """The build's result while its container goes on to smoke-test the wheel: a copy of
        the wheel first, then the driver is let go (when its closure is built, if it waits for
        it), then the checks (on that copy)."""
        wheel = None
        try:
            if result.get("status") == "built":
                built = _built_wheel(container.folders.out, result.get("wheel"),
                                     lambda message: self._error(request, message))
                try:
                    # Under its own name (the checks read it), in a folder of its own.
                    wheel = copy_out(built, Path(tempfile.mkdtemp(dir=self.work_dir)) / built.name)
                except OSError as exc:
                    raise self._error(request, f"the build's wheel was rejected: {exc}") from None
        finally:
            if wheel is None or closure_later is None:
                container.let_go(skip=closure_later is not None)
            else:
                threading.Thread(target=_let_go_with_closure, args=(container, closure_later),
                                 name=f"closure for {request.label}", daemon=True).start()
        if wheel is None:  # not a build this far: the container's end says what it was
            run = container.end()
            result = self._checked_result(request, run, container.folders.out)
            return _build_result(request, result, run, None, started_at, started)
        try:
            _user_namespace(result.get("user_namespace"), so_far, request)
            self._check(request, wheel, result)
        except BuildError:
            shutil.rmtree(wheel.parent)
            container.let_go(skip=True)  # a waiting container need not wait any longer
            raise
        final = self.work_dir / wheel.name
        os.replace(wheel, final)
        wheel.parent.rmdir()
        give_back(final)
        later = container.smoke_result(lambda reported: _smoke_result(reported, final.name, request))
        return _build_result(request, result, so_far, final, started_at, started, smoke=later,
                             tested=container.tested)

    def _checked_result(self, request: BuildRequest, run: RunResult, out_dir: Path) -> dict:
        """The driver's result, only if the container ran to a "built" or "needs" answer."""
        limits = request.runtime.limits
        result, unreadable = read_result(out_dir)
        if run.timed_out:
            raise self._error(request, f"build timed out after {limits.timeout_seconds} s "
                                       f"(the timeout setting, or the package's timeout override)")
        if run.exit_code != 0 or result.get("status") not in ("built", "needs"):
            reason = result.get("error") or unreadable or \
                f"the build container exited with status {run.exit_code}"
            if run.oom_killed and "memory limit" not in reason:
                reason += f" (the memory limit ({limits.memory}) killed a process)"
            retry = result.get("retry_on_disk")
            if isinstance(retry, str) and retry:
                raise InMemoryFailed(retry, f"{reason}{_tail(request.log_path)}",
                                     package=request.source.name, version=request.source.version,
                                     chain=request.chain, log_path=str(request.log_path))
            raise self._error(request, f"{reason}{_tail(request.log_path)}")
        return result

    def _take_wheel(self, request: BuildRequest, out_dir: Path, result: dict) -> Path:
        """Check the built wheel and its freeze, then move it out of the job's folders."""
        built = _built_wheel(out_dir, result.get("wheel"),
                             lambda message: self._error(request, message))
        self._check(request, built, result)
        wheel = self.work_dir / built.name
        shutil.move(built, wheel)
        give_back(wheel)
        return wheel

    def _check(self, request: BuildRequest, wheel: Path, result: dict) -> None:
        """The build environment's freeze and the wheel itself, or the build's error."""
        check_freeze(result.get("freeze", ""), request)
        try:
            check_built_wheel(wheel, request.source.name, Version(request.source.version))
        except WheelRejected as exc:
            raise self._error(request, f"the build's wheel was rejected: {exc}") from None

    def repair(self, request: RepairRequest) -> RepairResult:
        """Repair a platform wheel to a manylinux tag with auditwheel (from our own wheels, in a
        container without network, as unprivileged as a build)."""
        wheel, tools, log_path = request.wheel, request.tools, request.log_path
        image, limits = request.runtime.image, request.runtime.limits
        job = {"mode": "repair", "out": "/out", "wheel": f"/in/{wheel.name}",
               "wheels": [f"/wheels/{w.name}" for w in tools], "wheels_dir": "/wheels"}
        folders = JobFolders.create(self.work_dir, job, prefix="repair-")
        out_dir, job_dir, scratch = folders.out, folders.job, folders.scratch
        spec = RunSpec(
            image=image.tag, command=list(DRIVER_COMMAND),
            mounts=(Mount(wheel, f"/in/{wheel.name}"), Mount(job_dir, "/job"),
                    Mount(self.driver_dir, "/mb"), Mount(out_dir, "/out", read_only=False),
                    Mount(scratch, "/tmp", read_only=False),
                    *(Mount(w, f"/wheels/{w.name}") for w in tools)),
            environment={"HOME": "/tmp/mb-home", "LANG": "C.UTF-8"}, workdir="/tmp",
            user=f"{BUILDER_UID}:{BUILDER_UID}", network=False,
            timeout_seconds=limits.timeout_seconds, memory=limits.memory,
            pids_limit=limits.pids_limit, read_only_root=True)
        name, version = request.label.split("==")
        try:
            run = self.podman.run(spec, log_path)
            result, _ = read_result(out_dir)
            if run.exit_code != 0 or result.get("status") != "repaired":
                raise BuildError(f"{result.get('error') or 'the repair container failed'}"
                                 f"{_tail(log_path)}", package=name, version=version,
                                 log_path=str(log_path))
            built = _built_wheel(out_dir, result.get("wheel"), lambda message: BuildError(
                message, package=name, version=version, log_path=str(log_path)), maker="repair")
            repaired = self.work_dir / built.name
            shutil.move(built, repaired)
            give_back(repaired)
            try:
                bundled = grafted_libraries(wheel, repaired)
            except (zipfile.BadZipFile, OSError) as exc:
                raise BuildError(f"the repaired wheel {repaired.name} cannot be read as a zip "
                                 f"archive: {exc}", package=name, version=version,
                                 log_path=str(log_path)) from None
            return RepairResult(repaired, {"tool": result["tool"], "command": result["command"],
                                           "from": wheel.name, "to": result["wheel"],
                                           "bundled": bundled})
        finally:
            folders.remove()

    @staticmethod
    def _error(request: BuildRequest, message: str) -> BuildError:
        return BuildError(message, package=request.source.name, version=request.source.version,
                          chain=request.chain, log_path=str(request.log_path))


def _build_result(request: BuildRequest, result: dict, run: RunResult, wheel: Path | None,
                  started_at: datetime, started: float, smoke=None, tested=None) -> BuildResult:
    """What the host makes of a checked driver result (run: the container's run so far)."""
    return BuildResult(
        status=result["status"],
        wheel=wheel,
        backend_requires=tuple(result.get("requires", ())),
        missing=tuple(result.get("missing", ())),
        freeze=result.get("freeze", ""),
        log_path=request.log_path,
        command=DRIVER_COMMAND,
        started_at=started_at.isoformat(),
        ended_at=datetime.now(timezone.utc).isoformat(),
        seconds=time.monotonic() - started,
        container_seconds=run.seconds,
        timings={**_numbers(result.get("timings")),
                 **{f"podman_{step}": seconds for step, seconds in run.steps.items()}},
        environment=result.get("environment", {}),
        user_namespace=_user_namespace(result.get("user_namespace"), run, request),
        linked=linked_libraries(result.get("linked")),
        smoke=smoke,
        tested=tested,
    )


def _smoke_result(reported: object, wheel: str, request: BuildRequest) -> SmokeResult | None:
    """The smoke test the driver ran after the build, read as untrusted (the build's code ran
    in that container): a pass only if everything about it is as a pass looks, else a failure,
    which the host tests again on its own."""
    if request.smoke is None or not isinstance(reported, dict):
        return None
    imports = reported.get("imports")
    freeze = reported.get("freeze")
    asked = reported.get("imported")
    well_formed = isinstance(imports, dict) and isinstance(freeze, list) and \
        isinstance(asked, list) and all(isinstance(x, str) for x in [*freeze, *asked, *imports]) \
        and all(v is None or isinstance(v, str) for v in imports.values())
    if not well_formed:
        return SmokeResult(wheel, "failed", error="the build container's smoke test reported "
                                                  "something malformed", container="build")
    seconds = reported.get("seconds")
    passed = reported.get("status") == "passed" and sorted(imports) == sorted(asked) and \
        (request.smoke.imports is None or sorted(asked) == sorted(request.smoke.imports))
    return SmokeResult(
        wheel, "passed" if passed else "failed", imports=dict(imports), freeze=tuple(freeze),
        error="" if passed else str(reported.get("error") or "it did not pass"),
        seconds=float(seconds) if isinstance(seconds, (int, float)) else 0.0,
        image=request.runtime.image.tag, container="build")


def _let_go_with_closure(container: HandOver, closure_later: ClosureLater) -> None:
    """Wait for the closure of a container that waits for it, put its wheels where the
    container sees them (read-only), then let the driver test; or let it skip the test."""
    try:
        given = closure_later()
    except Exception:  # noqa: BLE001 - no closure: the publisher tests the wheel on its own
        log.exception("%s: no closure for its smoke test", container.folders.job)
        given = None
    if given is None:
        container.let_go(skip=True)
        return
    closure, release = given
    container.when_tested(release)
    folder = container.folders.job / LATER_CLOSURE
    try:
        for wheel in closure:
            link_into(wheel.path, folder / wheel.name)
    except OSError as exc:
        log.warning("%s: cannot give the closure to its smoke test: %s", folder, exc)
        container.let_go(skip=True)
        return
    container.let_go()


def _numbers(reported: object) -> dict[str, float]:
    """The driver's timings, as far as they are numbers (the build could have written any)."""
    if not isinstance(reported, dict):
        return {}
    return {k: float(v) for k, v in reported.items() if isinstance(k, str)
            and isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0}


def _log_start(request: BuildRequest) -> None:
    request.log_path.parent.mkdir(parents=True, exist_ok=True)
    with request.log_path.open("a") as log_file:
        log_file.write(f"[mirror-builder] {request.label}: image {request.runtime.image.tag}, "
                       f"network none, {len(request.env.wheels)} wheels in the build environment\n")


def _built_wheel(out_dir: Path, name: object, fail: Callable[[str], BuildError],
                 maker: str = "backend") -> Path:
    """The wheel the backend (or the repair) named, only if it is a plain file right in
    /out/dist; otherwise fail(message) is raised."""
    dist = out_dir / "dist"
    if not isinstance(name, str) or not name or "/" in name or name.startswith(".") or "\0" in name:
        raise fail(f"the {maker} named its wheel {name!r}, which is not a file name")
    if not dist.is_dir() or dist.is_symlink():
        raise fail("the build's output folder was replaced by something else")
    wheel = dist / name
    try:
        mode = wheel.lstat().st_mode
    except OSError:
        raise fail(f"the {maker} reported {name}, but did not write it") from None
    if not stat.S_ISREG(mode):
        raise fail(f"the build's wheel was rejected: {name} is not a regular "
                   f"file (a symbolic link or device would reach outside the build)")
    return wheel


def _user_namespace(reported: object, run: RunResult, request: BuildRequest) -> dict[str, str]:
    """The user namespace the driver read inside the container (/proc/self/uid_map and gid_map,
    before any package code ran), only if it is the one podman says it set up: the build could
    have rewritten the driver's report."""
    said = {"uid_map": run.uid_map, "gid_map": run.gid_map}
    if not isinstance(reported, dict) or \
            {key: id_map_text(reported.get(key)) for key in said} != said or not all(said.values()):
        raise Builder._error(request, "the build reported a user namespace other than the one podman "
                                      "gave its container; the build is not trusted")
    return said


_LINKED_FIELDS = {"soname": r"[\w.+-]{1,200}", "path": r"/[\w./+-]{1,400}",
                  "package": r"[a-z0-9][a-z0-9+.-]{0,100}",
                  "version": r"[\w.+:~-]{1,100}", "architecture": r"[a-z0-9-]{1,40}",
                  "distro": r"[a-z0-9.-]{0,40}"}


def linked_libraries(reported: object) -> tuple[dict[str, str], ...]:
    """The driver's list of linked Debian packages, kept only as far as it is well formed (the
    build ran in the same container and could have written anything there)."""
    if not isinstance(reported, list):
        return ()
    kept = []
    for entry in reported[:500]:
        if isinstance(entry, dict) and entry.keys() == _LINKED_FIELDS.keys() and all(
                isinstance(entry[k], str) and re.fullmatch(pattern, entry[k])
                for k, pattern in _LINKED_FIELDS.items()):
            kept.append(dict(entry))
    return tuple(kept)


def check_freeze(freeze: str, request: BuildRequest) -> None:
    """The freeze the driver reports must list exactly the wheels the host mounted."""
    expected = set()
    for wheel in request.env.wheels:
        name, version, _, _ = parse_wheel_filename(wheel.name)
        expected.add((name, version))
    reported = set()
    for line in freeze.splitlines():
        pin, sep, version = line.strip().partition("==")
        if not sep:
            continue
        try:
            reported.add((canonicalize_name(pin), Version(version)))
        except InvalidVersion:
            reported.add((canonicalize_name(pin), None))
    if reported != expected:
        raise Builder._error(request, "the build environment's reported freeze differs from the "
                                      "wheels that were installed into it; the build is not trusted")


def _tail(log_path: Path, lines: int = 3) -> str:
    try:
        text = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    useful = [line.strip() for line in text if not line.startswith("[mirror-builder]")][-lines:]
    return (": " + " | ".join(useful)) if useful else ""



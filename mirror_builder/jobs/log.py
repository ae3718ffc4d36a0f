"""Build jobs, and the durable, append-only log of every job that ended.

A job builds one package version for one target, started by one of TRIGGERS. When it ends, its
JobResult is appended to OUTPUT/jobs/history.jsonl: one JSON object per line, written with
O_APPEND under an exclusive flock and fsynced before append() returns, so a record that was
reported written survives a crash or a power cut. Existing bytes are never rewritten.

A crash in the middle of a write can leave a torn last line (no newline, not valid JSON). Readers
skip it with a warning. The next append closes it with TORN_MARK and a newline before writing its
own record, so the fragment stays on a line of its own that readers recognise and skip, and the
records before and after it read back intact. Any other line that is not a valid record is an
error naming the file and the line: the log was damaged by something other than a crash.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from mirror_builder.errors import MirrorBuilderError
from mirror_builder.layout import OutputLayout

log = logging.getLogger(__name__)

TRIGGERS = ("upstream-release", "approved", "rebuild", "config-change")
RESULTS = ("built", "failed", "smoke-failed", "waiting-review", "denied")
SCHEMA = 1

# Ends a line that a crash cut short, written by the next append. A record's line always ends
# with "}", so no record can be mistaken for a torn line.
TORN_MARK = "\t<- cut short by a crash; ignored"


def utc_now() -> datetime:
    """The default clock; a clock must return an aware datetime."""
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Job:
    """One build of one package version for one target, and why it was started."""

    id: str
    trigger: str
    package: str
    version: str
    target: str
    detail: str
    started_at: str

    def __post_init__(self) -> None:
        if self.trigger not in TRIGGERS:
            raise ValueError(f"unknown job trigger {self.trigger!r}: it must be one of "
                             f"{', '.join(TRIGGERS)}")
        object.__setattr__(self, "package", canonicalize_name(self.package))
        object.__setattr__(self, "version", str(self.version))

    @classmethod
    def start(cls, trigger: str, package: str, version: str, target: str, detail: str,
              clock: Callable[[], datetime] = utc_now) -> Job:
        """A new job, started now: a fresh id (sortable by start time) and start time."""
        now = clock()
        job_id = f"{now.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
        return cls(id=job_id, trigger=trigger, package=package, version=str(version),
                   target=target, detail=detail, started_at=_iso(now))

    def finish(self, result: str, *, rebuild_number: int | None = None, wheel: str | None = None,
               log_path: str | os.PathLike | None = None, message: str = "",
               waiting_for: tuple[str, ...] = (),
               clock: Callable[[], datetime] = utc_now) -> JobResult:
        """The result of this job, ended now; seconds are counted from started_at."""
        now = clock()
        seconds = max(0.0, (now - datetime.fromisoformat(self.started_at)).total_seconds())
        return JobResult(job=self, result=result, ended_at=_iso(now), seconds=seconds,
                         rebuild_number=rebuild_number, wheel=wheel,
                         log_path=None if log_path is None else str(log_path), message=message,
                         waiting_for=tuple(waiting_for))


@dataclass(frozen=True)
class JobResult:
    """How a job ended: the line the audit log keeps for it."""

    job: Job
    result: str
    ended_at: str
    seconds: float
    rebuild_number: int | None
    wheel: str | None
    log_path: str | None
    message: str
    waiting_for: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.result not in RESULTS:
            raise ValueError(f"unknown job result {self.result!r}: it must be one of "
                             f"{', '.join(RESULTS)}")
        object.__setattr__(self, "waiting_for",
                           tuple(canonicalize_name(name) for name in self.waiting_for))

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self.job)
        document.update({f.name: getattr(self, f.name) for f in fields(self) if f.name != "job"})
        document["waiting_for"] = list(self.waiting_for)
        document["schema"] = SCHEMA
        return document

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> JobResult:
        """Raises ValueError if the document is not a job result of a schema we read."""
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
        if document.get("schema") != SCHEMA:
            raise ValueError(f"schema {document.get('schema')!r} is not {SCHEMA} (written by "
                             f"another version of mirror-builder?)")
        try:
            job = Job(**{f.name: document[f.name] for f in fields(Job)})
            return cls(job=job, **{f.name: document[f.name] for f in fields(cls)
                                   if f.name not in ("job", "waiting_for")},
                       waiting_for=tuple(document.get("waiting_for") or ()))
        except KeyError as exc:
            raise ValueError(f"no {exc.args[0]!r} field") from None
        except TypeError as exc:
            raise ValueError(str(exc)) from None


class JobLog:
    """OUTPUT/jobs/history.jsonl: every job that ended, oldest first, one JSON line each."""

    def __init__(self, output: OutputLayout | Path) -> None:
        layout = OutputLayout.of(output)
        self.root = layout.root
        self.folder = layout.jobs
        self.path = layout.job_history

    def exists(self) -> bool:
        return self.path.is_file()

    def append(self, result: JobResult) -> None:
        """Add one record; once this returns, it is on disk (fsynced) and survives a crash."""
        result = self._relative(result)
        line = (json.dumps(result.to_dict(), ensure_ascii=False) + "\n").encode("utf-8")
        if not self.folder.is_dir():
            self.folder.mkdir(parents=True, exist_ok=True)
            _fsync_directory(self.folder.parent)
        flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o644)
            created = True
        except FileExistsError:
            fd = os.open(self.path, flags)
            created = False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd is closed
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = _close_torn_line(_last_line(fd, size)) + line
            _write_all(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_directory(self.folder)

    def read(self, package: str | None = None) -> list[JobResult]:
        """Every record, oldest first (in the order they were appended); only those of one
        package if given (any spelling of its name)."""
        wanted = canonicalize_name(package) if package is not None else None
        return [r for r in self._records() if wanted is None or r.job.package == wanted]

    def find_by_wheel(self, wheel_filename: str) -> JobResult | None:
        """The newest job that made this wheel (a file name or a path to it)."""
        name = Path(wheel_filename).name
        return next((r for r in reversed(self._records()) if r.wheel == name), None)

    def find(self, job_id: str) -> JobResult | None:
        return next((r for r in reversed(self._records()) if r.job.id == job_id), None)

    def _records(self) -> list[JobResult]:
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return []
        with handle:
            # Shared with other readers, excluded from a writer's append: a line being written
            # right now is never mistaken for a torn one.
            fcntl.flock(handle, fcntl.LOCK_SH)
            data = handle.read()
        lines = data.split(b"\n")
        # After the final newline comes either nothing or a line a crash cut short.
        complete, tail = lines[:-1], lines[-1]
        records = []
        mark = TORN_MARK.encode("utf-8")
        for number, raw in enumerate(complete, start=1):
            if not raw.strip():
                continue
            if raw.endswith(mark):
                log.debug("%s:%d: skipping a line cut short by a crash", self.path, number)
                continue
            try:
                records.append(self._relative(JobResult.from_dict(json.loads(raw))))
            except ValueError as exc:
                raise MirrorBuilderError(
                    f"{self.path}:{number}: not a valid job record ({exc}); the log was changed "
                    f"by something other than mirror-builder") from None
        if tail:
            try:
                records.append(self._relative(JobResult.from_dict(json.loads(tail))))
            except ValueError:
                log.warning("%s:%d: skipping the last line, cut short by a crash while it was "
                            "written", self.path, len(lines))
        return records


    def _relative(self, result: JobResult) -> JobResult:
        """Logs under the output directory are named relative to it, so that a copied or moved
        output still points at its own logs (older lines kept absolute paths)."""
        if result.log_path is None or not os.path.isabs(result.log_path):
            return result
        try:
            inside = Path(result.log_path).resolve().relative_to(self.root.resolve())
        except ValueError:
            return result
        return replace(result, log_path=str(inside))

    def log_file(self, result: JobResult) -> Path | None:
        """Where a job's log is now."""
        return None if result.log_path is None else self.root / result.log_path


def _close_torn_line(tail: bytes) -> bytes:
    """What ends a last line that has no newline: just the newline if it is a whole record
    (only the newline was lost), else TORN_MARK and the newline."""
    try:
        JobResult.from_dict(json.loads(tail))
        return b"\n"
    except ValueError:
        return TORN_MARK.encode("utf-8") + b"\n"


def _last_line(fd: int, size: int) -> bytes:
    """The bytes after the file's last newline."""
    end, chunk = size, b""
    while end > 0:
        start = max(0, end - 65536)
        chunk = os.pread(fd, end - start, start) + chunk
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return chunk[newline + 1:]
        end = start
    return chunk


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_directory(path: Path) -> None:
    """Make a new entry in the directory durable (its name, not only the file's contents)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems cannot fsync a directory
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)

"""The review queue: a package we do not carry waits here until a person approves it.

A build job that meets such a package stops (it is "waiting-review"); the package is queued
with who needs it and why, and the job is kept as waiting. `review approve` marks it approved
and resumes the jobs that were waiting for it; `review reject` ends them as denied. A bootstrap
is the explicit, reviewed way to bring in a whole tree, so it never waits here.

Files (under the output directory, written only while holding its lock, each atomically):
OUTPUT/review/queue.json and OUTPUT/review/waiting.json.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from packaging.utils import NormalizedName, canonicalize_name

from mirror_builder.errors import MirrorBuilderError, PackageError
from mirror_builder.files import atomic_write_text
from mirror_builder.layout import OutputLayout

State = Literal["pending", "approved", "rejected"]


class NeedsReview(PackageError):
    """Packages a job needs are not carried and not approved: the job waits for a person."""

    def __init__(self, needed: dict[NormalizedName, "Request"], *, package: str = "",
                 version: str = "", chain: tuple[str, ...] = ()) -> None:
        self.needed = needed
        self.job = None  # the job that stopped, when one had been started for it
        names = ", ".join(sorted(needed))
        super().__init__(f"waiting for review of {names}, which we do not carry yet "
                         f"(mirror-builder review show NAME; review approve NAME)",
                         package=package, version=version, chain=chain)


@dataclass(frozen=True)
class Request:
    """Why a job needs a package: who asked, by which requirement, through which chain."""

    by: str
    requirement: str
    chain: tuple[str, ...] = ()
    job: str = ""
    at: str = ""


@dataclass(frozen=True)
class Entry:
    name: NormalizedName
    state: State
    first_seen: str
    requests: tuple[Request, ...] = ()
    decided_by: str | None = None
    decided_at: str | None = None
    note: str = ""


@dataclass(frozen=True)
class WaitingJob:
    """A job stopped for review; resumed as the same requirement with the same trigger."""

    job_id: str
    trigger: str
    detail: str
    package: NormalizedName
    version: str
    target: str
    waiting_for: tuple[NormalizedName, ...] = field(default=())

    @property
    def pin(self) -> str:
        return f"{self.package}=={self.version}"


class ReviewQueue:
    def __init__(self, output: OutputLayout | Path) -> None:
        layout = OutputLayout.of(output)
        self.folder = layout.review
        self.queue_path = layout.review_queue
        self.waiting_path = layout.review_waiting

    # -- the queue -------------------------------------------------------------------------
    def entries(self) -> list[Entry]:
        return sorted(self._read_queue().values(), key=lambda e: e.first_seen)

    def get(self, name: str) -> Entry | None:
        return self._read_queue().get(canonicalize_name(name))

    def is_approved(self, name: str) -> bool:
        entry = self.get(name)
        return entry is not None and entry.state == "approved"

    def is_rejected(self, name: str) -> bool:
        entry = self.get(name)
        return entry is not None and entry.state == "rejected"

    def ask(self, name: str, request: Request) -> Entry:
        """Queue name (or add one more reason to its entry)."""
        queue = self._read_queue()
        key = canonicalize_name(name)
        stamped = replace(request, at=request.at or _now())
        entry = queue.get(key) or Entry(name=key, state="pending", first_seen=stamped.at)
        if all((r.by, r.requirement) != (stamped.by, stamped.requirement) for r in entry.requests):
            entry = replace(entry, requests=entry.requests + (stamped,))
        queue[key] = entry
        self._write_queue(queue)
        return entry

    def decide(self, name: str, state: State, who: str, note: str = "") -> Entry:
        queue = self._read_queue()
        key = canonicalize_name(name)
        entry = queue.get(key) or Entry(name=key, state="pending", first_seen=_now())
        entry = replace(entry, state=state, decided_by=who, decided_at=_now(), note=note)
        queue[key] = entry
        self._write_queue(queue)
        return entry

    # -- waiting jobs ----------------------------------------------------------------------
    def waiting(self) -> list[WaitingJob]:
        if not self.waiting_path.is_file():
            return []
        try:
            items = json.loads(self.waiting_path.read_text())
            return [WaitingJob(**{**item, "waiting_for": tuple(item.get("waiting_for", ()))})
                    for item in items]
        except (ValueError, TypeError) as exc:
            raise MirrorBuilderError(f"{self.waiting_path}: unreadable: {exc}") from None

    def wait(self, job: WaitingJob) -> None:
        jobs = [j for j in self.waiting() if j.pin != job.pin or j.target != job.target]
        self._write_waiting(jobs + [job])

    def done_waiting(self, job: WaitingJob) -> None:
        self._write_waiting([j for j in self.waiting() if j.job_id != job.job_id])

    # -- files -----------------------------------------------------------------------------
    def _read_queue(self) -> dict[NormalizedName, Entry]:
        if not self.queue_path.is_file():
            return {}
        try:
            raw = json.loads(self.queue_path.read_text())
            for item in raw["packages"]:
                if item["state"] not in ("pending", "approved", "rejected"):
                    raise ValueError(f"{item['name']} has the unknown state {item['state']!r}")
            return {canonicalize_name(item["name"]): Entry(
                name=canonicalize_name(item["name"]), state=item["state"],
                first_seen=item["first_seen"],
                requests=tuple(Request(**{**r, "chain": tuple(r.get("chain", ()))})
                               for r in item.get("requests", ())),
                decided_by=item.get("decided_by"), decided_at=item.get("decided_at"),
                note=item.get("note", "")) for item in raw["packages"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise MirrorBuilderError(f"{self.queue_path}: unreadable: {exc}") from None

    def _write_queue(self, queue: dict[NormalizedName, Entry]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.queue_path, json.dumps(
            {"packages": [asdict(e) for e in sorted(queue.values(), key=lambda e: e.first_seen)]},
            indent=2))

    def _write_waiting(self, jobs: list[WaitingJob]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.waiting_path, json.dumps([asdict(j) for j in jobs], indent=2))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

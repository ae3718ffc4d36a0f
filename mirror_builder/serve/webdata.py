"""What the web view shows, read from an output directory: the projects and their wheels, each
wheel's build record, last verification and SBOM, the recent failures and the jobs waiting for
a review, and a project's part of the dependency graph. Only files the layout names are read,
each through contained_file (no link is followed out of the output)."""

from __future__ import annotations

import base64
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from mirror_builder.layout import OutputLayout

RECENT = 20  # failures shown on the home page


@dataclass(frozen=True)
class WheelView:
    filename: str
    version: str
    yanked: bool | str
    record: dict[str, Any] | None          # beside the index; None: none kept (odd)
    verification: dict[str, Any] | None    # the last `verify` statement's predicate
    sbom_components: tuple[str, ...] = ()  # purls

    @property
    def target(self) -> str:
        return (self.record or {}).get("target", {}).get("name", "")

    @property
    def variant(self) -> str:
        return (self.record or {}).get("variant", "")


@dataclass(frozen=True)
class ProjectView:
    name: str
    versions: dict[str, list[WheelView]]  # newest version first
    graph_edges: list[dict[str, Any]] = field(default_factory=list)


class OutputReader:
    """Reads one output directory for the web view (root must be resolved)."""

    def __init__(self, root: Path, contained) -> None:
        self.root = root
        self.layout = OutputLayout(root)
        self._contained = contained  # server.contained_file

    def _file(self, path: Path) -> Path | None:
        return self._contained(self.root, path.relative_to(self.root).parts)

    def _json(self, path: Path) -> Any:
        found = self._file(path)
        if found is None:
            return None
        try:
            return json.loads(found.read_text())
        except (OSError, ValueError):
            return None

    def projects(self) -> list[tuple[str, list[str]]]:
        """(project, its versions newest first) for each project of the index."""
        root = self._json(self.layout.json_page()) or {}
        found = []
        for project in root.get("projects", []):
            page = self._json(self.layout.json_page(project["name"])) or {}
            found.append((project["name"], _newest_first(page.get("versions", []))))
        return found

    def project(self, name: str) -> ProjectView | None:
        page = self._json(self.layout.json_page(name))
        if page is None:
            return None
        versions: dict[str, list[WheelView]] = {v: [] for v in
                                                _newest_first(page.get("versions", []))}
        for entry in page.get("files", []):
            try:
                version = str(parse_wheel_filename(entry["filename"])[1])
            except (InvalidWheelFilename, KeyError):
                continue
            versions.setdefault(version, []).append(self._wheel(name, entry, version))
        return ProjectView(name, versions, self._graph_edges(name))

    def _wheel(self, name: str, entry: dict[str, Any], version: str) -> WheelView:
        filename = entry["filename"]
        records = self.layout.records
        verification = self._json(records.verification(name, filename))
        if isinstance(verification, dict) and "payload" in verification:
            try:
                verification = json.loads(base64.b64decode(verification["payload"]))
            except ValueError:
                verification = None
        return WheelView(filename, version, entry.get("yanked", False),
                         self._json(records.record(name, filename)),
                         (verification or {}).get("predicate") if verification else None,
                         self._sbom(name, filename))

    def _sbom(self, name: str, filename: str) -> tuple[str, ...]:
        wheel = self._file(self.layout.file(name, filename))
        if wheel is None:
            return ()
        try:
            with zipfile.ZipFile(wheel) as archive:
                member = next((n for n in archive.namelist() if "/sboms/" in n
                               and n.split("/")[0].endswith(".dist-info")), None)
                if member is None:
                    return ()
                document = json.loads(archive.read(member))
        except (OSError, ValueError, zipfile.BadZipFile):
            return ()
        return tuple(c.get("purl", c.get("name", "")) for c in document.get("components", []))

    def log(self, name: str, filename: str) -> Path | None:
        return self._file(self.layout.records.log(name, filename))

    def recent_failures(self) -> list[dict[str, Any]]:
        history = self._file(self.layout.job_history)
        if history is None:
            return []
        failed = []
        for line in history.read_text(errors="replace").splitlines():
            try:
                job = json.loads(line)
            except ValueError:
                continue
            if isinstance(job, dict) and job.get("result") == "failed":
                failed.append(job)
        return failed[-RECENT:][::-1]

    def waiting_reviews(self) -> list[dict[str, Any]]:
        waiting = self._json(self.layout.review_waiting)
        if isinstance(waiting, dict):
            waiting = waiting.get("jobs", [])
        return [w for w in waiting or [] if isinstance(w, dict)]

    def _graph_edges(self, name: str) -> list[dict[str, Any]]:
        """The edges of graph.json reachable from name's nodes (what it needs, to the bottom),
        and those into them (what needs it)."""
        graph = self._json(self.layout.graph()) or {}
        edges = [e for e in graph.get("edges", []) if isinstance(e, dict) and e.get("from")]
        mine = {n["id"] for n in graph.get("nodes", []) if n.get("name") == name}
        reached, frontier = set(mine), set(mine)
        while frontier:
            frontier = {e["to"] for e in edges if e["from"] in frontier} - reached
            reached |= frontier
        return [e for e in edges if e["from"] in reached or e["to"] in mine]


def _newest_first(versions: list[str]) -> list[str]:
    def key(text: str):
        try:
            return (1, Version(text))
        except InvalidVersion:
            return (0, Version("0"))
    return sorted(versions, key=key, reverse=True)

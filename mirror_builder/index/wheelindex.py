"""Static simple indexes under the output directory: the wheels, and a separate source archive.

Where the pages and files go is mirror_builder.layout.IndexLayout (the output itself for the
wheels, OUTPUT/sources/ for the hash-checked sdists). Beside each wheel goes its METADATA
(PEP 658), so resolvers need not download a wheel to read its dependencies.

Each project's index.json is the state its pages are made from. Every write goes through a
temporary file and a rename, under a lock, so a reader or a crash never sees a half-written page
or file and several builds may publish at once. Adding a file rewrites only its project's pages
and the root list.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import html
import io
import json
import logging
import multiprocessing as mp
import os
import tempfile
import time
import zipfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from packaging.utils import (InvalidSdistFilename, InvalidWheelFilename, NormalizedName,
                             canonicalize_name, parse_sdist_filename, parse_wheel_filename)
from packaging.version import Version

from mirror_builder.errors import MirrorBuilderError
from mirror_builder.index import findlinks
from mirror_builder.files import atomic_copy, atomic_write_text, sha256_of
from mirror_builder.layout import IndexLayout, OutputLayout

log = logging.getLogger(__name__)

API_VERSION = "1.1"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"


@dataclass(frozen=True)
class IndexedWheel:
    project: NormalizedName
    filename: str
    version: Version
    build_tag: tuple[int, str] | tuple[()]
    path: Path
    sha256: str
    requires_python: str | None
    yanked: bool | str = False


class SimpleIndex:
    """One static PEP 503/691 index of wheels or of sdists."""

    def __init__(self, layout: IndexLayout | Path,
                 kind: Literal["wheel", "sdist"] = "wheel") -> None:
        self.layout = layout if isinstance(layout, IndexLayout) else IndexLayout(Path(layout))
        self.root = self.layout.root
        self.kind = kind
        self.files_dir = self.layout.files
        self.simple_dir = self.layout.simple

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the index for writing; first finish whatever a killed writer left half done."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self.layout.index_lock.open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                self._finish_interrupted()
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- write intents ---------------------------------------------------------------------
    # A project's two pages (JSON, then HTML) and the root pages are separate files, each
    # replaced atomically; a writer killed between them leaves pages that disagree. So a writer
    # first notes which projects it is about to write; the note is removed when it is done, and
    # the next writer that finds one writes those pages again from the JSON page (written first,
    # so it is the newest truth), or regenerates everything after an interrupted regeneration.
    @property
    def _intent_path(self) -> Path:
        return self.layout.index_intent

    @contextmanager
    def _intent(self, projects: Iterable[str] | None) -> Iterator[None]:
        note = {"all": True} if projects is None else {"projects": sorted(projects)}
        atomic_write_text(self._intent_path, json.dumps(note))
        yield
        self._intent_path.unlink(missing_ok=True)

    def _finish_interrupted(self) -> None:
        try:
            note = json.loads(self._intent_path.read_text())
        except FileNotFoundError:
            return
        except ValueError:
            note = {"all": True}
        log.warning("%s: finishing the pages an interrupted run was writing", self.root)
        if note.get("all"):
            self._regenerate_locked()
        else:
            for name in note.get("projects", []):
                files = self.entries(name)
                if files:
                    self._write_project(canonicalize_name(name), files)
            self._write_root(self.projects() + [canonicalize_name(n) for n in note.get("projects", [])
                                                if self.entries(n)])
        self._intent_path.unlink(missing_ok=True)

    def url(self) -> str:
        return self.simple_dir.resolve().as_uri() + "/"

    def parse(self, filename: str) -> tuple[NormalizedName, Version, tuple]:
        return _parse_filename(filename, self.kind)

    # -- reading ---------------------------------------------------------------------------
    def projects(self) -> list[NormalizedName]:
        root = self.layout.json_page()
        if not root.is_file():
            return []
        return [canonicalize_name(p["name"]) for p in json.loads(root.read_text())["projects"]]

    def entries(self, project: str) -> list[dict[str, Any]]:
        page = self.layout.json_page(project)
        if not page.is_file():
            return []
        return json.loads(page.read_text())["files"]

    def wheels(self, project: str) -> list[IndexedWheel]:
        name = canonicalize_name(project)
        found = []
        for item in self.entries(name):
            _, version, build = self.parse(item["filename"])
            found.append(IndexedWheel(
                project=name, filename=item["filename"], version=version, build_tag=build,
                path=self.layout.file(name, item["filename"]), sha256=item["hashes"]["sha256"],
                requires_python=item.get("requires-python"), yanked=item.get("yanked", False)))
        return found

    def is_listed(self, project: str, filename: str) -> bool:
        return any(item["filename"] == filename for item in self.entries(project))

    def find(self, project: str, version: Version) -> list[IndexedWheel]:
        return [w for w in self.wheels(project) if w.version == version]

    # -- writing ---------------------------------------------------------------------------
    def add(self, file: Path, requires_python: str | None = None) -> IndexedWheel:
        """Copy a file into the index and list it. An existing file is never replaced."""
        name, version, build = self.parse(file.name)
        with self.locked():
            dest = self.layout.file(name, file.name)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if self.is_listed(name, file.name):
                raise FileExistsError(f"{dest} is already in the index; its files are immutable")
            if dest.exists():
                # Renamed into place by a run that was killed before it listed the file: no page
                # ever offered it, so nobody can have installed it.
                log.warning("%s: left unlisted by an interrupted run; replacing it", dest)
            # The metadata file first, then the file, then the pages: a page never lists a file
            # (or advertises metadata) that is not there yet.
            metadata = _write_metadata(file, self.layout.metadata(name, file.name)) \
                if self.kind == "wheel" else None
            atomic_copy(file, dest)
            entry = self._entry(dest, requires_python, metadata, upload_time=time.time())
            files = [f for f in self.entries(name) if f["filename"] != file.name] + [entry]
            with self._intent([name]):
                self._write_project(name, files)
                self._write_root(self.projects() + [name])
        return self.wheels(name)[[f["filename"] for f in sorted(files, key=lambda f: f["filename"])]
                                 .index(file.name)]

    def yank(self, project: str, version: Version, reason: str | None, undo: bool = False) -> list[str]:
        """Mark (or unmark) every file of project==version yanked (PEP 592). Nothing is deleted."""
        name = canonicalize_name(project)
        with self.locked():
            files = self.entries(name)
            changed = []
            for entry in files:
                if self.parse(entry["filename"])[1] == version:
                    entry["yanked"] = False if undo else (reason or True)
                    changed.append(entry["filename"])
            if changed:
                with self._intent([name]):
                    self._write_project(name, files)
        return changed

    def regenerate(self, workers: int | None = None) -> int:
        """Write every page again from the files on disk, keeping what the pages knew (yanks,
        upload times). Projects are independent, so they are spread over the machine's cores.
        Returns the number of files listed."""
        with self.locked():
            return self._regenerate_locked(workers)

    def _regenerate_locked(self, workers: int | None = None) -> int:
        with self._intent(None):
            folders = sorted(p for p in self.files_dir.iterdir() if p.is_dir()) \
                if self.files_dir.is_dir() else []
            workers = workers or min(os.cpu_count() or 1, 8)
            if workers > 1 and len(folders) > 64:
                chunks = [folders[i::workers] for i in range(workers)]
                with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
                    results = [r for chunk in pool.map(self._regenerate_projects, chunks)
                               for r in chunk]
            else:
                results = self._regenerate_projects(folders)
            self._write_root([name for name, count in results if count])
        return sum(count for _, count in results)

    def _regenerate_projects(self, folders: list[Path]) -> list[tuple[NormalizedName, int]]:
        results = []
        for folder in folders:
            name = canonicalize_name(folder.name)
            known = {e["filename"]: e for e in self.entries(name)}
            files = []
            for path in sorted(folder.iterdir()):
                if path.name.startswith(".") or not self._is_ours(path.name):
                    continue
                data = path.read_bytes()  # read once: hashed, and opened as a zip
                metadata = None
                requires_python = known.get(path.name, {}).get("requires-python")
                if self.kind == "wheel":
                    metadata = _write_metadata(path, self.layout.metadata(name, path.name), data)
                    requires_python = _requires_python(metadata)
                entry = self._entry(path, requires_python, metadata,
                                    upload_time=path.stat().st_mtime, data=data)
                old = known.get(path.name)
                if old:
                    entry["upload-time"] = old.get("upload-time", entry["upload-time"])
                    entry["yanked"] = old.get("yanked", False)
                files.append(entry)
            if files:
                self._write_project(name, files)
            results.append((name, len(files)))
        return results

    def _is_ours(self, filename: str) -> bool:
        try:
            self.parse(filename)
        except (InvalidWheelFilename, InvalidSdistFilename):
            return False
        return filename.endswith(".whl") if self.kind == "wheel" else not filename.endswith(".whl")

    def _entry(self, path: Path, requires_python: str | None, metadata: Path | None,
               upload_time: float, data: bytes | None = None) -> dict[str, Any]:
        name = canonicalize_name(path.parent.name)
        entry: dict[str, Any] = {
            "filename": path.name,
            "url": f"../../files/{name}/{path.name}",
            "hashes": {"sha256": hashlib.sha256(data).hexdigest() if data is not None
                       else sha256_of(path)},
            "requires-python": requires_python,
            "size": len(data) if data is not None else path.stat().st_size,
            "upload-time": datetime.fromtimestamp(upload_time, timezone.utc)
            .strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "yanked": False,
        }
        if metadata is not None:
            # PEP 714 renamed the key; both are given for older clients.
            entry["core-metadata"] = {"sha256": sha256_of(metadata)}
            entry["dist-info-metadata"] = entry["core-metadata"]
        if self.layout.provenance(name, path.name).is_file():
            entry["provenance"] = f"{entry['url']}.provenance"  # PEP 740's key
        return entry

    def _write_project(self, name: NormalizedName, files: list[dict[str, Any]]) -> None:
        files = sorted(files, key=lambda f: f["filename"])
        versions = sorted({str(self.parse(f["filename"])[1]) for f in files}, key=Version)
        self.layout.page_folder(name).mkdir(parents=True, exist_ok=True)
        data = {"meta": {"api-version": API_VERSION}, "name": name, "versions": versions,
                "files": files}
        _write_if_changed(self.layout.json_page(name), _dumps(data))
        links = []
        for f in files:
            attrs = ""
            if f.get("requires-python"):
                attrs += f' data-requires-python="{html.escape(f["requires-python"])}"'
            if f.get("yanked"):
                reason = f["yanked"] if isinstance(f["yanked"], str) else ""
                attrs += f' data-yanked="{html.escape(reason)}"'
            if f.get("core-metadata"):
                value = f'sha256={f["core-metadata"]["sha256"]}'
                attrs += f' data-core-metadata="{value}" data-dist-info-metadata="{value}"'
            if f.get("provenance"):
                attrs += f' data-provenance="{html.escape(f["provenance"])}"'
            href = f'{f["url"]}#sha256={f["hashes"]["sha256"]}'
            links.append(f'    <a href="{html.escape(href)}"{attrs}>{html.escape(f["filename"])}</a><br/>')
        _write_if_changed(self.layout.html_page(name), _html_page(f"Links for {name}", links))

    def _write_root(self, projects: Iterable[NormalizedName]) -> None:
        names = sorted(set(projects))
        data = {"meta": {"api-version": API_VERSION}, "projects": [{"name": p} for p in names]}
        self.simple_dir.mkdir(parents=True, exist_ok=True)
        _write_if_changed(self.layout.json_page(), _dumps(data))
        links = [f'    <a href="{p}/">{p}</a><br/>' for p in names]
        _write_if_changed(self.layout.html_page(), _html_page("Simple index", links))


class WheelIndex(SimpleIndex):
    """The wheels-only index users install from."""

    layout: OutputLayout

    def __init__(self, output: OutputLayout | Path) -> None:
        """output: the output directory, or its layout."""
        super().__init__(OutputLayout.of(output), "wheel")
        self.sources = SimpleIndex(self.layout.sources, "sdist")
        self._regenerating = False  # the find-links page is written once, at the end

    def _write_project(self, name: NormalizedName, files: list[dict[str, Any]]) -> None:
        super()._write_project(name, files)
        if not self._regenerating:
            findlinks.update(self.layout, name, files)

    def _write_root(self, projects: Iterable[NormalizedName]) -> None:
        super()._write_root(projects)
        if self._regenerating:  # still within the regeneration's write intent
            findlinks.write(self.layout, {p: self.entries(p) for p in self.projects()})

    def _regenerate_locked(self, workers: int | None = None) -> int:
        self._regenerating = True
        try:
            return super()._regenerate_locked(workers)
        finally:
            self._regenerating = False


@functools.lru_cache(maxsize=65536)
def _parse_filename(filename: str, kind: str) -> tuple[NormalizedName, Version, tuple]:
    if kind == "wheel":
        name, version, build, _ = parse_wheel_filename(filename)
        return name, version, build
    name, version = parse_sdist_filename(filename)
    return name, version, ()


def _dumps(data: Any) -> str:
    # Compact separators keep json on its C encoder (indent= falls back to pure Python).
    return json.dumps(data, separators=(",", ":"))


def _write_if_changed(path: Path, text: str) -> None:
    """Atomic write, skipped when the file already says exactly this (a new file is the
    expensive part of regenerating on most file systems)."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    atomic_write_text(path, text)


def _write_metadata(wheel: Path, dest: Path, data: bytes | None = None) -> Path:
    """The wheel's METADATA written to dest (<wheel>.metadata), byte for byte (PEP 658)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data) if data is not None else wheel) as zf:
            names = [n for n in zf.namelist()
                     if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            if len(names) != 1:
                raise MirrorBuilderError(f"{wheel.name}: expected one .dist-info/METADATA, "
                                         f"found {len(names)}")
            metadata = zf.read(names[0])
    except zipfile.BadZipFile as exc:
        raise MirrorBuilderError(f"{wheel.name}: not a valid wheel: {exc}") from None
    if not dest.is_file() or dest.read_bytes() != metadata:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(metadata)
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return dest


def _requires_python(metadata: Path) -> str | None:
    for line in metadata.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line:
            break
        if line.lower().startswith("requires-python:"):
            return line.split(":", 1)[1].strip() or None
    return None


def _html_page(title: str, links: list[str]) -> str:
    return "\n".join([
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
        f"    <title>{html.escape(title)}</title>",
        "  </head>",
        "  <body>",
        f"    <h1>{html.escape(title)}</h1>",
        *links,
        "  </body>",
        "</html>",
        "",
    ])


def verify(index: SimpleIndex) -> list[str]:
    """Problems with a written index, read back as a client would: every page parses, HTML and
    JSON agree, every hash and size matches its file, every .metadata is the wheel's METADATA."""
    from mirror_builder.resolve.pages import parse_project_page

    problems: list[str] = []
    root_html = index.layout.html_page()
    projects = index.projects()
    if not root_html.is_file():
        return [f"{root_html} is missing"]
    listed = {a.rstrip("/") for a in _hrefs(root_html.read_text())}
    if listed != set(projects):
        problems.append(f"root pages disagree: HTML lists {sorted(listed ^ set(projects))} differently")
    for name in projects:
        url = index.layout.page_folder(name).as_uri() + "/"
        try:
            from_json = parse_project_page(index.layout.json_page(name).read_text(), JSON_TYPE, url)
            from_html = parse_project_page(index.layout.html_page(name).read_text(), "text/html",
                                           url)
        except (OSError, ValueError, MirrorBuilderError) as exc:
            problems.append(f"{name}: a page does not parse: {exc}")
            continue
        def shared(files):  # what both forms can say (HTML has no size)
            return sorted((f.filename, f.url, f.sha256, f.requires_python, f.yanked,
                           f.yanked_reason, f.has_metadata) for f in files)

        if shared(from_json) != shared(from_html):
            problems.append(f"{name}: the HTML and JSON pages list different files")
        sizes = {f["filename"]: f.get("size") for f in index.entries(name)}
        for file in from_json:
            path = index.layout.file(name, file.filename)
            if not path.is_file():
                problems.append(f"{name}: {file.filename} is listed but missing")
                continue
            if sha256_of(path) != file.sha256:
                problems.append(f"{name}: {file.filename}: sha256 does not match the page")
            if sizes.get(file.filename) != path.stat().st_size:
                problems.append(f"{name}: {file.filename}: size does not match the page")
            if index.kind == "wheel":
                metadata = index.layout.metadata(name, file.filename)
                if not file.has_metadata or not metadata.is_file():
                    problems.append(f"{name}: {file.filename}: no core metadata file")
                    continue
                with zipfile.ZipFile(path) as zf:
                    (inner,) = [n for n in zf.namelist()
                                if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
                    if zf.read(inner) != metadata.read_bytes():
                        problems.append(f"{name}: {metadata.name} differs from the wheel's METADATA")
                entry = next(f for f in index.entries(name) if f["filename"] == file.filename)
                if entry["core-metadata"]["sha256"] != sha256_of(metadata):
                    problems.append(f"{name}: {metadata.name}: sha256 does not match the page")
    return problems


def _hrefs(page: str) -> list[str]:
    import re

    return [html.unescape(h) for h in re.findall(r'<a href="([^"]*)"', page)]

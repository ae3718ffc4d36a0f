"""Static simple indexes under the output directory: the wheels, and a separate source archive.

Where the pages and files go is mirror_builder.layout.IndexLayout (the output itself for the
wheels, OUTPUT/sources/ for the hash-checked sdists). Beside each wheel goes its METADATA
(PEP 658), so resolvers need not download a wheel to read its dependencies.

Each project's index.json is the state its pages are made from. Every write goes through a
temporary file and a rename, under a lock, so a reader or a crash never sees a half-written page
or file and several builds may publish at once. Adding a file rewrites only its project's pages,
its lines of the find-links page (findlinks.py) and, for a new project, the root list; a full
regeneration reads each wheel once and writes only the files whose content changes
(pagefiles.py), one share of the projects per core.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import html
import json
import logging
import multiprocessing as mp
import os
import time
import zipfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from packaging.utils import (InvalidSdistFilename, InvalidWheelFilename, NormalizedName,
                             canonicalize_name, parse_sdist_filename, parse_wheel_filename)
from packaging.version import Version

from mirror_builder.errors import MirrorBuilderError
from mirror_builder.index import findlinks, pagefiles, rootpages
from mirror_builder.index.pagefiles import API_VERSION, core_metadata, dumps, write_if_changed
from mirror_builder.files import atomic_copy, atomic_write_text, sha256_of
from mirror_builder.layout import IndexLayout, OutputLayout

log = logging.getLogger(__name__)

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
        return [_canonical(p["name"]) for p in json.loads(root.read_text())["projects"]]

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
            files = self.entries(name)
            if any(f["filename"] == file.name for f in files):
                raise FileExistsError(f"{dest} is already in the index; its files are immutable")
            if dest.exists():
                # Renamed into place by a run that was killed before it listed the file: no page
                # ever offered it, so nobody can have installed it.
                log.warning("%s: left unlisted by an interrupted run; replacing it", dest)
            # The metadata file first, then the file, then the pages: a page never lists a file
            # (or advertises metadata) that is not there yet.
            metadata = None
            if self.kind == "wheel":
                metadata = core_metadata(file)
                write_if_changed(self.layout.metadata(name, file.name), metadata)
            atomic_copy(file, dest)
            entry = self._entry(name, dest, requires_python, metadata, upload_time=time.time())
            with self._intent([name]):
                self._write_project(name, files + [entry])
                self._list_in_root(name)
        return IndexedWheel(project=name, filename=file.name, version=version, build_tag=build,
                            path=dest, sha256=entry["hashes"]["sha256"],
                            requires_python=entry["requires-python"])

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
            folders = sorted(Path(e.path) for e in os.scandir(self.files_dir) if e.is_dir()) \
                if self.files_dir.is_dir() else []
            workers = workers or min(os.cpu_count() or 1, 8)
            if workers > 1 and len(folders) > 64:
                chunks = [folders[i::workers] for i in range(workers)]
                with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
                    results = [r for chunk in pool.map(self._regenerate_projects, chunks)
                               for r in chunk]
            else:
                results = self._regenerate_projects(folders)
            self._write_root([name for name, files in results if files])
            self._regenerated(results)
        return sum(len(files) for _, files in results)

    def _regenerate_projects(self, folders: list[Path]
                             ) -> list[tuple[NormalizedName, list[dict[str, Any]]]]:
        return [(canonicalize_name(folder.name), self._regenerate_project(folder))
                for folder in folders]

    def _regenerate_project(self, folder: Path) -> list[dict[str, Any]]:
        """Write one project's pages (and its wheels' .metadata) again from the files in folder;
        the entries of its JSON page."""
        name = canonicalize_name(folder.name)
        known = {e["filename"]: e for e in self.entries(name)}
        names = os.listdir(folder)
        # Its own folder (its name normalized): whether a statement is beside a file is known.
        beside = set(names) if folder == self.layout.project_files(name) else None
        files = []
        for filename in sorted(names):
            if filename.startswith(".") or not self._is_ours(filename):
                continue
            path = os.path.join(folder, filename)  # (str: pathlib costs more than the rest)
            with open(path, "rb") as handle:  # read once: hashed, and opened as a zip
                data = handle.read()
                mtime = os.fstat(handle.fileno()).st_mtime
            old = known.get(filename) or {}
            metadata, requires_python = None, old.get("requires-python")
            if self.kind == "wheel":
                metadata = core_metadata(path, data)
                write_if_changed(self.layout.metadata(name, filename), metadata)
                requires_python = pagefiles.requires_python(metadata)
            entry = self._entry(name, path, requires_python, metadata,
                                old.get("upload-time", mtime), data, None if beside is None
                                else self.layout.provenance(name, filename).name in beside)
            entry["yanked"] = old.get("yanked", False)
            files.append(entry)
        if files:
            self._write_project(name, files)
        return files

    def _regenerated(self, results: list[tuple[NormalizedName, list[dict[str, Any]]]]) -> None:
        """Called at the end of a regeneration with every project's entries."""

    def _is_ours(self, filename: str) -> bool:
        try:
            self.parse(filename)
        except (InvalidWheelFilename, InvalidSdistFilename):
            return False
        return filename.endswith(".whl") if self.kind == "wheel" else not filename.endswith(".whl")

    def _entry(self, name: NormalizedName, path: Path | str, requires_python: str | None,
               metadata: bytes | None, upload_time: float | str, data: bytes | None = None,
               provenance: bool | None = None) -> dict[str, Any]:
        """The JSON page's entry for the file at path (data: its bytes, if read already;
        provenance: whether it has a statement beside it, if known already)."""
        filename = os.path.basename(path)
        entry = pagefiles.file_entry(
            name, filename, hashlib.sha256(data).hexdigest() if data is not None
            else sha256_of(Path(path)), len(data) if data is not None else os.stat(path).st_size,
            upload_time, metadata)
        entry["requires-python"] = requires_python
        if provenance is None:
            provenance = self.layout.provenance(name, filename).is_file()
        if provenance:
            entry["provenance"] = f"{entry['url']}.provenance"  # PEP 740's key
        return entry

    def _write_project(self, name: NormalizedName, files: list[dict[str, Any]]) -> None:
        files = sorted(files, key=lambda f: f["filename"])
        versions = sorted({str(self.parse(f["filename"])[1]) for f in files}, key=Version)
        self.layout.page_folder(name).mkdir(parents=True, exist_ok=True)
        data = {"meta": {"api-version": API_VERSION}, "name": name, "versions": versions,
                "files": files}
        write_if_changed(self.layout.json_page(name), dumps(data))
        write_if_changed(self.layout.html_page(name), pagefiles.html_page(
            f"Links for {name}", pagefiles.project_links(files)))

    def _write_root(self, projects: Iterable[NormalizedName]) -> None:
        names = sorted(set(projects))
        data = {"meta": {"api-version": API_VERSION}, "projects": [{"name": p} for p in names]}
        self.simple_dir.mkdir(parents=True, exist_ok=True)
        # (As big as the index is wide: its old blocks are freed on another thread.)
        write_if_changed(self.layout.json_page(), dumps(data), release_old_later=True)
        links = [f'    <a href="{p}/">{p}</a><br/>' for p in names]
        write_if_changed(self.layout.html_page(), pagefiles.html_page("Simple index", links),
                         release_old_later=True)

    def _list_in_root(self, name: NormalizedName) -> None:
        """Put name on the root pages, unless both list it already (as they do for every
        project but a new one: reading them is far cheaper than making them again)."""
        try:
            pages = self.layout.json_page().read_bytes(), self.layout.html_page().read_bytes()
        except OSError:
            self._write_root(self.projects() + [name])
            return
        listed = (f'{{"name":"{name}"}}'.encode() in pages[0],
                  f'<a href="{name}/">'.encode() in pages[1])
        if all(listed):
            return
        both = None if any(listed) else rootpages.with_project(*pages, name)
        if both is None:  # not as _write_root writes them (or one lists it): made again
            self._write_root(self.projects() + [name])
            return
        for path, page in zip((self.layout.json_page(), self.layout.html_page()), both):
            pagefiles.write_atomically(path, page, release_old_later=True)


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

    def _regenerated(self, results: list[tuple[NormalizedName, list[dict[str, Any]]]]) -> None:
        # Still within the regeneration's write intent.
        findlinks.write(self.layout, {name: files for name, files in results if files})

    def _regenerate_locked(self, workers: int | None = None) -> int:
        self._regenerating = True
        try:
            return super()._regenerate_locked(workers)
        finally:
            self._regenerating = False


# The project list is read again for each new project; its names are the same ones each time.
_canonical = functools.lru_cache(maxsize=1 << 17)(canonicalize_name)


@functools.lru_cache(maxsize=65536)
def _parse_filename(filename: str, kind: str) -> tuple[NormalizedName, Version, tuple]:
    if kind == "wheel":
        name, version, build, _ = parse_wheel_filename(filename)
        return name, version, build
    name, version = parse_sdist_filename(filename)
    return name, version, ()


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

"""The wheels-only index under the output directory: files, PEP 503 HTML and PEP 691 JSON pages.

Layout:
    <output>/files/<project>/<wheel>                 the wheels (immutable once written)
    <output>/simple/index.html, index.json           the project list
    <output>/simple/<project>/index.html, index.json one page per project

Every write goes through a temporary file and a rename, under a lock, so a reader or a crash never
sees a half-written page or wheel, and several builds may publish at once. Adding a wheel rewrites
only its project's pages and the root list.
"""

from __future__ import annotations

import fcntl
import html
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from packaging.utils import NormalizedName, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from mirror_builder.files import atomic_write_text, sha256_of

API_VERSION = "1.1"


@dataclass(frozen=True)
class IndexedWheel:
    project: NormalizedName
    filename: str
    version: Version
    build_tag: tuple[int, str] | tuple[()]
    path: Path
    sha256: str
    requires_python: str | None


class WheelIndex:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.files_dir = root / "files"
        self.simple_dir = root / "simple"

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".index.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def url(self) -> str:
        return (self.simple_dir.resolve()).as_uri() + "/"

    # -- reading ---------------------------------------------------------------------------
    def projects(self) -> list[NormalizedName]:
        if not self.simple_dir.is_dir():
            return []
        return sorted(canonicalize_name(p.name) for p in self.simple_dir.iterdir()
                      if (p / "index.json").is_file())

    def wheels(self, project: str) -> list[IndexedWheel]:
        name = canonicalize_name(project)
        page = self.simple_dir / name / "index.json"
        if not page.is_file():
            return []
        data = json.loads(page.read_text())
        found = []
        for item in data["files"]:
            _, version, build, _ = parse_wheel_filename(item["filename"])
            found.append(IndexedWheel(
                project=name, filename=item["filename"], version=version, build_tag=build,
                path=self.files_dir / name / item["filename"], sha256=item["hashes"]["sha256"],
                requires_python=item.get("requires-python")))
        return found

    def find(self, project: str, version: Version) -> list[IndexedWheel]:
        return [w for w in self.wheels(project) if w.version == version]

    # -- writing ---------------------------------------------------------------------------
    def add(self, wheel: Path, requires_python: str | None) -> IndexedWheel:
        """Copy a wheel into the index and list it. An existing file is never replaced."""
        name, version, build, _ = parse_wheel_filename(wheel.name)
        with self.locked():
            dest_dir = self.files_dir / name
            dest_dir.mkdir(parents=True, exist_ok=True)
            dest = dest_dir / wheel.name
            if dest.exists():
                raise FileExistsError(f"{dest} is already in the index; wheels are immutable")
            fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=f".{wheel.name}.", suffix=".part")
            os.close(fd)
            try:
                shutil.copyfile(wheel, tmp)
                os.chmod(tmp, 0o644)
                os.replace(tmp, dest)
            finally:
                Path(tmp).unlink(missing_ok=True)
            entry = {
                "filename": wheel.name,
                "url": f"../../files/{name}/{wheel.name}",
                "hashes": {"sha256": sha256_of(dest)},
                "requires-python": requires_python,
                "size": dest.stat().st_size,
                "upload-time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "yanked": False,
            }
            page = self.simple_dir / name / "index.json"
            files = json.loads(page.read_text())["files"] if page.is_file() else []
            files = [f for f in files if f["filename"] != wheel.name] + [entry]
            self._write_project(name, files)
            self._write_root()
        return IndexedWheel(project=name, filename=wheel.name, version=version, build_tag=build,
                            path=dest, sha256=entry["hashes"]["sha256"],
                            requires_python=requires_python)

    def _write_project(self, name: NormalizedName, files: list[dict]) -> None:
        files = sorted(files, key=lambda f: f["filename"])
        versions = sorted({str(parse_wheel_filename(f["filename"])[1]) for f in files}, key=Version)
        page_dir = self.simple_dir / name
        page_dir.mkdir(parents=True, exist_ok=True)
        data = {"meta": {"api-version": API_VERSION}, "name": name, "versions": versions,
                "files": files}
        atomic_write_text(page_dir / "index.json", json.dumps(data, indent=1))
        links = []
        for f in files:
            attrs = ""
            if f.get("requires-python"):
                attrs += f' data-requires-python="{html.escape(f["requires-python"])}"'
            if f.get("yanked"):
                reason = f["yanked"] if isinstance(f["yanked"], str) else ""
                attrs += f' data-yanked="{html.escape(reason)}"'
            href = f'{f["url"]}#sha256={f["hashes"]["sha256"]}'
            links.append(f'    <a href="{html.escape(href)}"{attrs}>{html.escape(f["filename"])}</a><br/>')
        atomic_write_text(page_dir / "index.html", _html_page(f"Links for {name}", links))

    def _write_root(self) -> None:
        projects = self.projects()
        data = {"meta": {"api-version": API_VERSION},
                "projects": [{"name": p} for p in projects]}
        atomic_write_text(self.simple_dir / "index.json", json.dumps(data, indent=1))
        links = [f'    <a href="{p}/">{p}</a><br/>' for p in projects]
        atomic_write_text(self.simple_dir / "index.html", _html_page("Simple index", links))


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

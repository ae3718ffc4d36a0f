"""The flat find-links page (OUTPUT/find-links.html): every wheel of the index on one page, for
`pip install --find-links URL` and tools that read a wheelhouse page rather than an index.

Each line is one wheel's link (with its sha256 and requires-python, as on a project page);
yanked files are left out, since a find-links page cannot say a file is yanked and pip would
pick it. The index keeps it current with each project page it writes (update), replacing that
project's lines only, and writes it whole after a regeneration (write).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any

from packaging.utils import canonicalize_name

from mirror_builder.files import atomic_write_text
from mirror_builder.layout import OutputLayout

_LINK_START = '    <a href="files/'


def update(layout: OutputLayout, project: str, files: Iterable[Mapping[str, Any]]) -> None:
    """Replace project's lines on the page with files' (none: the project is gone from it)."""
    name = canonicalize_name(project)
    kept = [line for line in _links(layout) if _project_of(line) != name]
    _write(layout, kept + [_link(name, f) for f in files if not f.get("yanked")])


def write(layout: OutputLayout, projects: Mapping[str, Iterable[Mapping[str, Any]]]) -> None:
    """The whole page from every project's files."""
    _write(layout, [_link(canonicalize_name(p), f) for p, files in projects.items()
                    for f in files if not f.get("yanked")])


def _link(project: str, file: Mapping[str, Any]) -> str:
    href = f"files/{project}/{file['filename']}#sha256={file['hashes']['sha256']}"
    attrs = ""
    if file.get("requires-python"):
        attrs = f' data-requires-python="{html.escape(file["requires-python"])}"'
    return f'{_LINK_START[:-len("files/")]}{html.escape(href)}"{attrs}>' \
           f'{html.escape(file["filename"])}</a><br/>'


def _project_of(line: str) -> str:
    return line[len(_LINK_START):].split("/", 1)[0]


def _links(layout: OutputLayout) -> list[str]:
    try:
        text = layout.find_links.read_text()
    except FileNotFoundError:
        return []
    return [line for line in text.splitlines() if line.startswith(_LINK_START)]


def _write(layout: OutputLayout, links: list[str]) -> None:
    # In file name order, as a project page lists them (the project's name leads the href).
    links = sorted(set(links), key=lambda line: line[len(_LINK_START):])
    atomic_write_text(layout.find_links, "\n".join([
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        "    <title>Links for every wheel of this index</title>",
        "  </head>",
        "  <body>",
        "    <h1>Links for every wheel of this index</h1>",
        *links,
        "  </body>",
        "</html>",
        "",
    ]))

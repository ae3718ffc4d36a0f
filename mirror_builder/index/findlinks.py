"""The flat find-links page (OUTPUT/find-links.html): every wheel of the index on one page, for
`pip install --find-links URL` and tools that read a wheelhouse page rather than an index.

Each line is one wheel's link (with its sha256 and requires-python, as on a project page);
yanked files are left out, since a find-links page cannot say a file is yanked and pip would
pick it. The lines are in file name order, so one project's lines are side by side (its name
leads the href, up to a "/"). The index keeps the page current with each project page it writes
(update): that project's run of lines is found by bisection over the page's bytes and replaced,
and the page is written whole through a rename as every page is, but from the old page's bytes
around the new run, without reading it line by line; so an add costs little more than copying
the page (2 MB for 10,000 wheels). After a regeneration it is written whole from every
project's files (write).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any

from packaging.utils import canonicalize_name

from mirror_builder.index.pagefiles import write_atomically, write_if_changed
from mirror_builder.layout import OutputLayout

_LINK_START = '    <a href="files/'
_HEAD = "\n".join([
    "<!DOCTYPE html>",
    "<html>",
    "  <head>",
    "    <title>Links for every wheel of this index</title>",
    "  </head>",
    "  <body>",
    "    <h1>Links for every wheel of this index</h1>",
    "",
]).encode()
_TAIL = "  </body>\n</html>\n".encode()
_LINK = _LINK_START.encode()


def update(layout: OutputLayout, project: str, files: Iterable[Mapping[str, Any]]) -> None:
    """Replace project's lines on the page with files' (none: the project is gone from it)."""
    name = canonicalize_name(project)
    lines = _sorted([_link(name, f) for f in files if not f.get("yanked")])
    try:
        page = layout.find_links.read_bytes()
    except FileNotFoundError:
        page = b""
    base = page or _page([])
    run = "".join(f"{line}\n" for line in lines).encode()
    found = _run_of(base, name)
    if found is None:  # not a page as we write it: made again from its links
        kept = [line for line in _links(page) if _project_of(line) != name]
        write_atomically(layout.find_links, _page(_sorted(kept + lines)), release_old_later=True)
    elif base is not page or base[found[0]:found[1]] != run:
        whole = memoryview(base)  # written in three parts, never copied into one
        write_atomically(layout.find_links, whole[:found[0]], run, whole[found[1]:],
                         release_old_later=True)


def write(layout: OutputLayout, projects: Mapping[str, Iterable[Mapping[str, Any]]]) -> None:
    """The whole page from every project's files (left as it is if it says exactly that)."""
    write_if_changed(layout.find_links, _page(_sorted([
        _link(canonicalize_name(p), f) for p, files in projects.items()
        for f in files if not f.get("yanked")])), release_old_later=True)


def _link(project: str, file: Mapping[str, Any]) -> str:
    href = f"files/{project}/{file['filename']}#sha256={file['hashes']['sha256']}"
    attrs = ""
    if file.get("requires-python"):
        attrs = f' data-requires-python="{html.escape(file["requires-python"])}"'
    return f'{_LINK_START[:-len("files/")]}{html.escape(href)}"{attrs}>' \
           f'{html.escape(file["filename"])}</a><br/>'


def _sorted(links: list[str]) -> list[str]:
    # Every link starts with _LINK_START, so the order of the lines is that of their hrefs.
    return sorted(set(links))


def _page(links: list[str]) -> bytes:
    return _HEAD + "".join(f"{line}\n" for line in links).encode() + _TAIL


def _run_of(page: bytes, name: str) -> tuple[int, int] | None:
    """Where name's run of lines is on page (start and end; equal if it has none, where it
    would go), found by bisection; None if page is not one as _page writes it (head, links,
    tail)."""
    if not (page.startswith(_HEAD) and page.endswith(_TAIL)):
        return None
    first, end = len(_HEAD), len(page) - len(_TAIL)  # the links: page[first:end], whole lines
    if first < end and not page.startswith(_LINK, first):
        return None
    key = _LINK + f"{name}/".encode()
    # Its lines are the first ones that do not sort below key (they start with it; any other
    # line at or above key is above them all).
    start = _insertion_point(page, first, end, key)
    if start is None:
        return None
    stop = start
    while page.startswith(key, stop):
        stop = page.index(b"\n", stop) + 1
    return start, stop


def _insertion_point(page: bytes, first: int, end: int, key: bytes) -> int | None:
    """Where a line starting with key goes among the lines of page[first:end] (each ending in
    a newline, in order): the start of the first line not below key. None if a line there is
    not a link."""
    low, high = first, end  # both at a line's start; the answer is in [low, high]
    while low < high:
        middle = max(low, page.rfind(b"\n", low, (low + high) // 2) + 1)
        stop = page.index(b"\n", middle) + 1
        line = page[middle:stop - 1]
        if not line.startswith(_LINK):
            return None
        if line < key:
            low = stop
        else:
            high = middle
    return low


def _project_of(line: str) -> str:
    return line[len(_LINK_START):].split("/", 1)[0]


def _links(page: bytes) -> list[str]:
    return [line for line in page.decode("utf-8").splitlines() if line.startswith(_LINK_START)]

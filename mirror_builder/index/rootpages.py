"""The project list (simple/index.json and index.html) with one new project put in its place.

An add that brings a new project changes both pages. Parsing them and making them again costs
time in proportion to the projects (3 ms for 2,000); here the new name's place is found by
bisection over each page's bytes and the pages are written from the old bytes around it, which
costs little more than copying them. The pages must be as SimpleIndex._write_root writes them
(compact JSON, one link a line, names in order, none needing an escape): for any other, and for
a name that would need one, the answer is None and the caller makes them again in full.
"""

from __future__ import annotations

import re

from mirror_builder.index import pagefiles

_JSON_HEAD = f'{{"meta":{{"api-version":"{pagefiles.API_VERSION}"}},"projects":['.encode()
_JSON_TAIL = b"]}"
_ENTRY = b'{"name":"'
_HTML_HEAD, _HTML_TAIL = (part.encode() for part in
                          pagefiles.html_page("Simple index", ["\0"]).split("\0\n"))
_LINK = b'    <a href="'
_PLAIN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")  # a normalized name with nothing to escape


def with_project(index_json: bytes, index_html: bytes, name: str) -> tuple[bytes, bytes] | None:
    """Both pages with name (not on either) added in its place; None if they are not pages as
    _write_root writes them, or name is not plain."""
    if not _PLAIN.fullmatch(name) or b"\\" in index_json:
        return None
    json_at = _json_position(index_json, name.encode())
    html_at = _line_position(index_html, name.encode())
    if json_at is None or html_at is None:
        return None
    entry = _ENTRY + f'{name}"}}'.encode()
    if json_at < len(index_json) - len(_JSON_TAIL):  # before another entry
        entry += b","
    elif json_at > len(_JSON_HEAD):  # after the last one
        entry = b"," + entry
    link = f'    <a href="{name}/">{name}</a><br/>\n'.encode()
    return (index_json[:json_at] + entry + index_json[json_at:],
            index_html[:html_at] + link + index_html[html_at:])


def _json_position(page: bytes, name: bytes) -> int | None:
    """Where the entry of name goes among page's entries: the start of the first entry whose
    name is above it, else the end of the last."""
    if not (page.startswith(_JSON_HEAD) and page.endswith(_JSON_TAIL)):
        return None
    low, high = len(_JSON_HEAD), len(page) - len(_JSON_TAIL)  # entry starts (or the end)
    if low < high and not page.startswith(_ENTRY, low):
        return None
    while low < high:
        # The entry that holds the middle byte (low is an entry's start, high is beyond it).
        middle = page.rfind(_ENTRY, low, min((low + high) // 2 + len(_ENTRY), high))
        end = page.find(b'"}', middle)
        if end < 0 or end >= high:
            return None
        if page[middle + len(_ENTRY):end] < name:
            low = end + 3 if end + 2 < high else end + 2  # past the comma
        else:
            high = middle
    return low


def _line_position(page: bytes, name: bytes) -> int | None:
    """Where the link to name goes among page's links (one a line, in the order of their
    names): the start of the first line whose name is above it."""
    if not (page.startswith(_HTML_HEAD) and page.endswith(_HTML_TAIL)):
        return None
    low, high = len(_HTML_HEAD), len(page) - len(_HTML_TAIL)  # line starts
    while low < high:
        middle = max(low, page.rfind(b"\n", low, (low + high) // 2) + 1)
        stop = page.index(b"\n", middle) + 1
        end = page.find(b'/"', middle, stop)
        if not page.startswith(_LINK, middle) or end < 0:
            return None
        if page[middle + len(_LINK):end] < name:
            low = stop
        else:
            high = middle
    return low

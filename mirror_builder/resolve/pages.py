"""Project pages of a simple index: the DistributionFiles a PEP 691 JSON or PEP 503 HTML page lists.

Garbage (a page that is neither PEP 691 JSON nor HTML, a malformed sha256) is an UpstreamError
naming the page.
"""

from __future__ import annotations

import html.parser
import json
import re
import urllib.parse
from dataclasses import dataclass
from functools import cached_property
from datetime import datetime, timezone
from typing import Any

from packaging.utils import (InvalidSdistFilename, InvalidWheelFilename, canonicalize_name,
                             parse_sdist_filename, parse_wheel_filename)
from packaging.version import Version

from mirror_builder.errors import UpstreamError

PEP691_JSON = "application/vnd.pypi.simple.v1+json"
ACCEPT = f"{PEP691_JSON}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
# PyPI's HTML pages end with this comment; its JSON pages say it in meta["_last-serial"].
SERIAL_COMMENT = re.compile(r"<!--\s*SERIAL\s+(\d+)\s*-->")


@dataclass(frozen=True)
class DistributionFile:
    """One file of a project on an index, as the index describes it."""

    filename: str
    url: str
    sha256: str | None
    requires_python: str | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    # PEP 658/714: the index serves the file's METADATA at url + ".metadata".
    has_metadata: bool = False
    size: int | None = None
    # PEP 700 "upload-time" (or the data-upload-time some HTML pages carry), when given.
    upload_time: datetime | None = None

    @property
    def is_sdist(self) -> bool:
        return self.filename.endswith((".tar.gz", ".zip"))

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")

    @cached_property
    def name_and_version(self) -> tuple[str, Version] | None:
        """The project (normalized) and version the file name gives, if it is an sdist's or a
        wheel's. Parsed once: the resolver asks for every file of a page at each step, and a
        page such as setuptools' lists over a thousand files."""
        try:
            if self.is_wheel:
                name, version, _, _ = parse_wheel_filename(self.filename)
                return name, version
            return parse_sdist_filename(self.filename)
        except (InvalidWheelFilename, InvalidSdistFilename):
            return None


def parse_project_page(body: str, content_type: str, page_url: str) -> list[DistributionFile]:
    """The files a PEP 691 JSON or PEP 503 HTML page lists. Anything else is an UpstreamError
    naming the page; HTML without links (a proxy's error page, say) lists no files."""
    media_type = content_type.split(";")[0].strip().lower()
    if media_type == PEP691_JSON or body.lstrip().startswith(("{", "[")):
        return _parse_json_page(_json_of(body, page_url), page_url)
    if "\x00" in body or "\ufffd" in body:  # NUL or undecodable bytes: not a page of text
        raise UpstreamError(f"{page_url}: not a project page: binary data "
                            f"(Content-Type {content_type or 'not given'})")
    return _parse_html_page(body, page_url)


def serial_of(entry: dict[str, Any]) -> int | None:
    """The project's last serial: the X-PyPI-Last-Serial header, else PyPI's mark in the page
    (meta["_last-serial"] of a JSON page, a <!--SERIAL n--> comment in HTML)."""
    if isinstance(entry.get("serial"), int):
        return entry["serial"]
    body = entry.get("body") or ""
    if body.lstrip().startswith("{"):
        try:
            serial = json.loads(body).get("meta", {}).get("_last-serial")
        except (ValueError, AttributeError):
            return None
        return serial if isinstance(serial, int) and not isinstance(serial, bool) else None
    match = SERIAL_COMMENT.search(body)
    return int(match.group(1)) if match else None


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 upload time as an aware datetime (UTC when it names no zone), or None
    when it is not one: a bad time costs the release its age, not the page."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


class _NotPep691(Exception):
    """What is wrong with the shape of a PEP 691 document."""


def _json_of(body: str, page_url: str) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise UpstreamError(f"{page_url}: not a valid PEP 691 project page: not JSON ({exc})"
                            ) from None


def _parse_json_page(data: Any, page_url: str) -> list[DistributionFile]:
    try:
        return [_json_file(item, number, page_url)
                for number, item in enumerate(_files_list(data))]
    except _NotPep691 as exc:
        raise UpstreamError(f"{page_url}: not a valid PEP 691 project page: {exc}") from None


def _files_list(data: Any) -> list[Any]:
    if not isinstance(data, dict):
        raise _NotPep691(f'expected an object with a "files" list, got {_json_kind(data)}')
    if not isinstance(data.get("files"), list):
        got = _json_kind(data["files"]) if "files" in data else 'no "files"'
        raise _NotPep691(f'expected an object with a "files" list, got {got}')
    return data["files"]


def _json_file(item: Any, number: int, page_url: str) -> DistributionFile:
    if not isinstance(item, dict):
        raise _NotPep691(f"files[{number}] is not an object")
    for key in ("filename", "url"):
        if not isinstance(item.get(key), str) or not item[key]:
            raise _NotPep691(f'files[{number}] has no "{key}"')
    filename = item["filename"]
    hashes = item.get("hashes", {})
    if not isinstance(hashes, dict):
        raise _NotPep691(f'{filename}: "hashes" is not an object')
    requires_python = item.get("requires-python")
    if requires_python is not None and not isinstance(requires_python, str):
        raise _NotPep691(f'{filename}: "requires-python" is not a string')
    yanked = item.get("yanked", False)
    metadata = item.get("core-metadata", item.get("dist-info-metadata", False))
    size = item.get("size")
    return DistributionFile(
        filename=filename,
        url=urllib.parse.urljoin(page_url, item["url"]),
        sha256=_checked_sha256(hashes["sha256"], filename, page_url) if "sha256" in hashes else None,
        requires_python=requires_python or None,
        yanked=bool(yanked),
        yanked_reason=yanked if isinstance(yanked, str) and yanked else None,
        has_metadata=bool(metadata),
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        upload_time=parse_time(item.get("upload-time")),
    )


def _json_kind(value: Any) -> str:
    kinds = ((bool, "a boolean"), (int, "a number"), (float, "a number"), (str, "a string"),
             (list, "a list"), (dict, "an object"))
    return next((name for kind, name in kinds if isinstance(value, kind)), "null")


def _checked_sha256(value: Any, filename: str, page_url: str) -> str:
    if not isinstance(value, str) or not SHA256_HEX.fullmatch(value):
        raise UpstreamError(f"{page_url}: {filename}: the index's sha256 is not 64 hex digits: "
                            f"{value!r}")
    return value.lower()


class _AnchorParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[dict[str, str | None]] = []
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))
        elif tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")


def _parse_html_page(body: str, page_url: str) -> list[DistributionFile]:
    parser = _AnchorParser()
    parser.feed(body)
    base = urllib.parse.urljoin(page_url, parser.base) if parser.base else page_url
    files = []
    for attrs in parser.anchors:
        href = attrs.get("href")
        if not href:
            continue
        url = urllib.parse.urljoin(base, href)
        path, _, fragment = url.partition("#")
        filename = urllib.parse.unquote(path.rsplit("/", 1)[-1])
        hashes = dict(part.split("=", 1) for part in fragment.split("&") if "=" in part)
        # PEP 592/714: these attributes may stand without a value, which the parser gives as None.
        yanked = "data-yanked" in attrs
        metadata_key = next((k for k in ("data-core-metadata", "data-dist-info-metadata") if k in attrs), None)
        metadata_value = attrs.get(metadata_key) if metadata_key else None
        files.append(DistributionFile(
            filename=filename,
            url=path,
            sha256=_checked_sha256(hashes["sha256"], filename, page_url)
            if "sha256" in hashes else None,
            requires_python=attrs.get("data-requires-python") or None,
            yanked=yanked,
            yanked_reason=attrs.get("data-yanked") or None,
            has_metadata=metadata_key is not None and metadata_value != "false",
            upload_time=parse_time(attrs.get("data-upload-time")),
        ))
    return files


def sdist_version(file: DistributionFile, name: str) -> Version | None:
    return file_version(file, name) if file.is_sdist else None


def file_version(file: DistributionFile, name: str) -> Version | None:
    """The version of an sdist or a wheel of project name, or None if it is neither."""
    parsed = file.name_and_version
    if parsed is None or (parsed[0] != name and parsed[0] != canonicalize_name(name)):
        return None
    return parsed[1]

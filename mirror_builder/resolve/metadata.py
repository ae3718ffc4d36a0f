"""What upstream says of a release beyond its files: Requires-Dist, and when it was released.

Pure readers of answers already fetched: core metadata (PEP 658) and PyPI's JSON API documents.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from packaging.utils import (InvalidSdistFilename, InvalidWheelFilename, canonicalize_name,
                             parse_sdist_filename, parse_wheel_filename)
from packaging.version import InvalidVersion, Version

from mirror_builder.errors import UpstreamError
from mirror_builder.resolve.pages import parse_time


class NotJsonApi(UpstreamError):
    """A JSON API answer that is not a JSON object with an "info" object."""


def parse_requires_dist(metadata_text: str) -> list[str]:
    """The Requires-Dist entries of core metadata (a METADATA or PKG-INFO text)."""
    from pkginfo import Distribution

    dist = Distribution()
    dist.parse(metadata_text.encode() if isinstance(metadata_text, str) else metadata_text)
    return list(dist.requires_dist or ())


def file_version(filename: str, project: str) -> Version | None:
    """The version of an sdist or a wheel of project, or None when the name is neither."""
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
        else:
            name, version = parse_sdist_filename(filename)
    except (InvalidSdistFilename, InvalidWheelFilename, InvalidVersion):
        return None
    return version if name == canonicalize_name(project) else None


def earliest(pairs: Iterable[tuple[Version | None, datetime | None]]) -> dict[Version, datetime]:
    times: dict[Version, datetime] = {}
    for version, moment in pairs:
        if version is not None and moment is not None:
            times[version] = min(times.get(version, moment), moment)
    return times


def json_api_document_of(entry: dict[str, Any]) -> dict[str, Any] | None:
    """A cached or fetched JSON API document (None for a 404); anything but a JSON object with
    an "info" object is an UpstreamError."""
    if entry["status"] != 200:
        return None
    try:
        data = json.loads(entry["body"])
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("info"), dict):
        raise NotJsonApi(f"{entry.get('url') or entry.get('key')}: not a JSON API document "
                         f"with an info object")
    return data


def release_times_of(document: dict[str, Any] | None) -> dict[Version, datetime]:
    """Each release's earliest upload time from a JSON API project document's "releases"."""
    releases = document.get("releases") if document is not None else None
    if not isinstance(releases, dict):
        return {}
    pairs = []
    for key, files in releases.items():
        try:
            version = Version(key)
        except (InvalidVersion, TypeError):
            continue
        for item in files if isinstance(files, list) else ():
            if isinstance(item, dict):
                pairs.append((version, parse_time(item.get("upload_time_iso_8601")
                                                  or item.get("upload_time"))))
    return earliest(pairs)


def looks_like_core_metadata(text: str) -> bool:
    headers = text.replace("\r\n", "\n").split("\n\n", 1)[0]
    return any(line.lower().startswith("metadata-version:") for line in headers.splitlines())


def is_list_of_str(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)

"""Answers of the index kept on disk: reused within their lifetime, then revalidated.

Past its lifetime (or whenever the caller asks for a fresh answer) the question is conditional:
the cached answer's ETag and Last-Modified go with it, and a 304 Not Modified reuses the cached
answer without downloading it again. An answer its reader refuses is never cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from mirror_builder.errors import UpstreamError
from mirror_builder.files import atomic_write_text
from mirror_builder.resolve.transport import Transport

log = logging.getLogger(__name__)

T = TypeVar("T")


class DiskCache:
    """A small on-disk cache of text answers keyed by URL, with an optional lifetime."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.root / digest[:2] / f"{digest}.json"

    def get(self, key: str, max_age: float | None) -> dict[str, Any] | None:
        path = self._path(key)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if max_age is not None and time.time() - entry.get("stored", 0) > max_age:
            return None
        return entry

    def put(self, key: str, **entry: Any) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"key": key, "stored": time.time(), **entry}))

    def drop(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


@dataclass(frozen=True)
class Fetched(Generic[T]):
    """A cached-or-asked answer as read by its reader, with what was cached before it."""

    value: T
    entry: dict[str, Any]  # the cache entry now
    had_previous: bool  # a usable answer was cached before
    previous: T | None  # what reading it gave
    previous_status: int | None  # its HTTP status
    how: Literal["cached", "not-modified", "full"]  # no request, a 304 or a full answer


def _request_validators(entry: dict[str, Any] | None) -> dict[str, str]:
    """The conditional request headers a cached answer allows (a 404 has none worth sending)."""
    if entry is None or entry.get("status") != 200:
        return {}
    headers = {}
    if isinstance(entry.get("etag"), str):
        headers["If-None-Match"] = entry["etag"]
    if isinstance(entry.get("last_modified"), str):
        headers["If-Modified-Since"] = entry["last_modified"]
    return headers


def fetch(cache: DiskCache, transport: Transport, url: str, accept: str, max_age: float | None,
          read: Callable[[dict[str, Any]], T]) -> Fetched[T]:
    """url's answer as read(entry) gives it: the cached answer while it is younger than
    max_age (None: always ask), else the index's, asked with the cached answer's validators
    (If-None-Match, If-Modified-Since). A 304 keeps the cached answer and restarts its
    lifetime; a full answer is read, so that garbage raises before it is cached, and then
    replaces the cached one. A cached answer that read() refuses is dropped."""
    previous = cache.get(url, None)
    before: T | None = None
    if previous is not None:
        try:
            before = read(previous)
        except (UpstreamError, KeyError):  # cached before garbage was refused; ask again
            log.warning("%s: the cached answer is unusable; asking the index again", url)
            cache.drop(url)
            previous = None
    had_previous = previous is not None
    previous_status = previous.get("status") if previous is not None else None
    if (previous is not None and max_age is not None
            and time.time() - previous.get("stored", 0) <= max_age):
        return Fetched(before, previous, True, before, previous_status, "cached")
    response = transport.get(url, accept=accept, validators=_request_validators(previous))
    if response.status == 304 and previous is not None:
        entry = {k: v for k, v in previous.items() if k not in ("key", "stored")}
        entry.update(response.validators)  # a 304 may bring new ones
        cache.put(url, **entry)
        return Fetched(before, entry, True, before, previous_status, "not-modified")
    entry = {"status": response.status, "content_type": response.content_type,
             "body": response.body if response.status == 200 else "", "url": response.url,
             **response.validators}
    value = read(entry)  # garbage raises here, before it could be cached
    cache.put(url, **entry)
    return Fetched(value, entry, had_previous, before, previous_status, "full")

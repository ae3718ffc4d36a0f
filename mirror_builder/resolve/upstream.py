"""Talk to an upstream package index (PEP 691 JSON, falling back to PEP 503 HTML).

Knows nothing of resolution: it lists a project's files, reads a file's core metadata and
downloads files with their hash checked. Answers are cached on disk, so a second run within the
cache's lifetime does not ask the index again. Past that lifetime, and whenever check_project
asks, the question is conditional: the cached answer's ETag and Last-Modified go with it, and a
304 Not Modified reuses the cached answer without downloading it again (resolve.cache).

Transient failures (timeouts, connections dropped or cut short, 408/429/5xx) are tried again
with exponential backoff, a download from its start; then the error says how many attempts were
made and why the last failed (resolve.transport). Garbage (a page that is neither PEP 691 JSON
nor HTML, a malformed sha256) is an error naming the page and is never cached (resolve.pages).
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from packaging.utils import canonicalize_name
from packaging.version import Version

from mirror_builder.resolve import metadata
from mirror_builder.resolve.cache import DiskCache, Fetched, fetch
from mirror_builder.resolve.downloads import download
from mirror_builder.resolve.metadata import NotJsonApi
from mirror_builder.resolve.pages import ACCEPT, DistributionFile, parse_project_page, serial_of
from mirror_builder.resolve.remotewheel import read_wheel_metadata
from mirror_builder.resolve.transport import Transport

log = logging.getLogger(__name__)
T = TypeVar("T")
# Requests made ahead of the resolver at once (answers it will ask for in a moment).
PREFETCH_THREADS = 8


@dataclass(frozen=True)
class UpstreamOptions:
    """How UpstreamIndex talks to its index (settings.yaml's upstream: resolve.connect)."""

    # PyPI's JSON API, asked for release metadata the index does not serve; None: never asked.
    json_api_url: str | None = None
    # Seconds a cached answer is used without asking the index again.
    ttl: float = 6 * 3600
    timeout: float = 60
    # A request that fails transiently is made up to retries + 1 times, waiting
    # backoff_seconds before the second attempt and twice as long before each next one.
    retries: int = 4
    backoff_seconds: float = 0.5
    # Ask the index again whatever is cached (a TTL of 0).
    refresh: bool = False
    user_agent: str = "mirror-builder"


@dataclass(frozen=True)
class ProjectCheck:
    """What asking the index about a project again found (UpstreamIndex.check_project).

    status is "not-modified" (the index answered 304: nothing was downloaded), "unchanged" (a
    full answer listing the same files as the cached one: what an index without validators
    gives), "changed" (the files differ from the cached answer's, which may have been a 404),
    "new" (nothing usable was cached: first look) or "missing" (the index answered 404).
    changed is False when the files are known to be the same as the cached answer's: for
    "not-modified", "unchanged", and "missing" after a cached 404. serial is the index's
    last serial for the project (X-PyPI-Last-Serial, else the page's own), when known.
    """

    name: str
    files: list[DistributionFile]
    changed: bool
    status: Literal["not-modified", "unchanged", "changed", "new", "missing"]
    serial: int | None


class UpstreamIndex:
    """A PEP 503/691 simple index, plus (optionally) PyPI's JSON API for release metadata."""

    def __init__(self, index_url: str, cache_dir: Path,
                 options: UpstreamOptions | None = None) -> None:
        options = options or UpstreamOptions()
        self.index_url = index_url.rstrip("/") + "/"
        self.json_api_url = options.json_api_url.rstrip("/") + "/" if options.json_api_url else None
        self.cache = DiskCache(cache_dir / "upstream")
        self.ttl = 0 if options.refresh else options.ttl
        # Builds fetch from several threads; the transport counts their requests.
        self.transport = Transport(timeout=options.timeout, retries=options.retries,
                                   backoff_seconds=options.backoff_seconds,
                                   user_agent=options.user_agent)
        self._prefetch_lock = threading.Lock()
        # False once the index answered 404 for a release's JSON document of a project it has
        # one for: a proxy that serves only project documents (each 404 cost a round trip).
        self._release_documents = True
        self._prefetch_slots = threading.BoundedSemaphore(PREFETCH_THREADS)
        self._prefetched: set[Hashable] = set()
        self._in_flight: dict[str, Future] = {}
        # requires_dist's answers: a release's metadata does not change, and the resolutions
        # of a run ask for the same ones again and again (reading PyPI's JSON each time)
        self._requires: dict[tuple, list[str]] = {}

    # -- answering ahead ---------------------------------------------------------------------
    def prefetch(self, key: Hashable, fetch_it: Callable[[], object]) -> None:
        """Run fetch_it on a background thread (at most PREFETCH_THREADS at once), once per
        key: it leaves its answers in the cache, where the resolver finds them. Only the cache
        is warmed, so a failure here is silent: the resolver's own request meets it again."""
        with self._prefetch_lock:
            if key in self._prefetched:
                return
            self._prefetched.add(key)

        def work() -> None:
            with self._prefetch_slots:
                try:
                    fetch_it()
                except Exception as exc:  # noqa: BLE001 - said again by the resolver's request
                    log.debug("prefetching %s failed: %s", key, exc)

        threading.Thread(target=work, name=f"prefetch {key}", daemon=True).start()

    def _once(self, key: str, fetch_it: Callable[[], T]) -> T:
        """fetch_it(), unless another thread is fetching key right now: then its answer."""
        with self._prefetch_lock:
            running = self._in_flight.get(key)
            mine = running is None
            if mine:
                running = self._in_flight[key] = Future()
        if not mine:
            return running.result()
        try:
            value = fetch_it()
            running.set_result(value)
            return value
        except BaseException as exc:
            running.set_exception(exc)
            raise
        finally:
            with self._prefetch_lock:
                self._in_flight.pop(key, None)

    def _fetch(self, url: str, accept: str, max_age: float | None,
               read: Callable[[dict[str, Any]], T]) -> Fetched[T]:
        """resolve.cache.fetch, once at a time per URL and lifetime."""
        return self._once(f"{url} {accept} {max_age}",
                          lambda: fetch(self.cache, self.transport, url, accept, max_age, read))

    # HTTP requests made (attempts included), 200 answers (pages, metadata and downloads
    # alike) and 304 answers; file:// URLs count in none.
    @property
    def requests_made(self) -> int:
        return self.transport.requests_made

    @property
    def full_responses(self) -> int:
        return self.transport.full_responses

    @property
    def not_modified(self) -> int:
        return self.transport.not_modified

    # -- listing ---------------------------------------------------------------------------
    def project_files(self, name: str) -> list[DistributionFile]:
        """All files the index lists for a project ([] when the project does not exist): the
        cached answer within the TTL, else asked again (conditionally when one is cached)."""
        return self._project_page(name, self.ttl).value

    def check_project(self, name: str) -> ProjectCheck:
        """Ask the index about a project now, whatever the TTL, conditionally: an unchanged
        project costs a 304 and no download when the index gives validators; without them, a
        full answer compared with the cached one. The answer is cached as project_files's."""
        fetched = self._project_page(name, None)
        if fetched.entry["status"] == 404:
            status = "missing"
            changed = fetched.previous_status != 404
        elif not fetched.had_previous:
            status, changed = "new", True
        elif fetched.how == "not-modified":
            status, changed = "not-modified", False
        elif fetched.value == fetched.previous:
            status, changed = "unchanged", False
        else:
            status, changed = "changed", True
        return ProjectCheck(name=name, files=fetched.value, changed=changed, status=status,
                            serial=serial_of(fetched.entry))

    def _project_page(self, name: str, max_age: float | None) -> Fetched[list[DistributionFile]]:
        url = urllib.parse.urljoin(self.index_url, f"{canonicalize_name(name)}/")
        return self._fetch(url, ACCEPT, max_age, _files_on)

    # -- release times ---------------------------------------------------------------------
    def release_times(self, name: str) -> dict[Version, datetime]:
        """When each version was released: the earliest upload time of its files, from the
        project page when it gives upload times (PEP 700), else from the JSON API's project
        document. {} when neither says; versions that do not parse are left out."""
        files = self.project_files(name)
        if any(f.upload_time is not None for f in files):
            return metadata.earliest((metadata.file_version(f.filename, name), f.upload_time)
                                     for f in files)
        if not self.json_api_url:
            return {}
        url = urllib.parse.urljoin(self.json_api_url, f"{canonicalize_name(name)}/json")
        try:
            fetched = self._json_api_document(url, self.ttl)
            times = metadata.release_times_of(fetched.value)
            listed = {v for v in (metadata.file_version(f.filename, name) for f in files)
                      if v is not None}
            if fetched.how == "cached" and not listed <= times.keys():
                # The page lists a release the cached document predates: ask again.
                times = metadata.release_times_of(self._json_api_document(url, None).value)
        except NotJsonApi as exc:  # garbage; failing to reach the index is still an error
            log.warning("%s; release times unknown", exc)
            return {}
        return times

    # -- metadata --------------------------------------------------------------------------
    def requires_dist(self, name: str, version: str,
                      files: Iterable[DistributionFile]) -> list[str] | None:
        """Requires-Dist of name==version from upstream metadata, or None when unknown.

        PEP 658 metadata of a wheel of that version comes first (the standard way); PyPI's JSON
        API is the fallback for indexes or proxies that do not serve metadata files.
        """
        files = list(files)
        key = (canonicalize_name(name), version,
               tuple(sorted((f.filename, f.has_metadata) for f in files)))
        with self._prefetch_lock:
            if key in self._requires:
                return list(self._requires[key])
        found = self._requires_dist(name, version, files)
        if found is not None:  # unknown may be a garbage answer, never kept
            with self._prefetch_lock:
                self._requires[key] = found
        return found

    def _requires_dist(self, name: str, version: str,
                       files: list[DistributionFile]) -> list[str] | None:
        wheels = [f for f in files if f.is_wheel]
        for wheel in sorted(wheels, key=lambda f: not f.filename.endswith("-none-any.whl")):
            if wheel.has_metadata:
                text = self.core_metadata(wheel)
                if text is not None:
                    return metadata.parse_requires_dist(text)
        if self.json_api_url and wheels:
            # Only trusted when a wheel exists: PyPI fills this from the first uploaded file, and
            # an sdist-only legacy release may show null although it has dependencies.
            project = canonicalize_name(name)
            info = None
            if self._release_documents:
                info = self._release_info(
                    urllib.parse.urljoin(self.json_api_url, f"{project}/{version}/json"))
            if info is None:
                # Some proxies serve only the project document, whose info is the latest release.
                info = self._release_info(urllib.parse.urljoin(self.json_api_url, f"{project}/json"))
                if info is not None and self._release_documents:
                    log.debug("%s serves no release documents; asking for project documents "
                              "only from now on", self.json_api_url)
                    self._release_documents = False
                if info is not None and info.get("version") != version:
                    info = None
            requires = (info.get("requires_dist") or []) if info is not None else None
            if metadata.is_list_of_str(requires):
                return list(requires)
        return None

    def wheel_requires_dist(self, wheels: Iterable[DistributionFile]
                            ) -> tuple[list[str], DistributionFile] | None:
        """Requires-Dist read from the first of wheels whose METADATA can be read with HTTP
        range requests (a few KB of a wheel that may be 900 MB), and that wheel; for indexes
        that serve neither PEP 658 files nor a JSON API. Cached like metadata files."""
        for wheel in wheels:
            url = wheel.url.split("#", 1)[0]
            key = url + "#range:METADATA"
            entry = self.cache.get(key, None)  # a released file never changes
            if entry is None:
                found = read_wheel_metadata(self.transport, url)
                if found is None:
                    continue
                log.info("%s: METADATA read with %d range requests, %d of %d bytes",
                         wheel.filename, found.requests, found.bytes_fetched, found.wheel_size)
                entry = {"body": found.text}
                self.cache.put(key, **entry)
            return metadata.parse_requires_dist(entry["body"]), wheel
        return None

    def core_metadata(self, file: DistributionFile) -> str | None:
        url = file.url.split("#", 1)[0] + ".metadata"
        return self._once(url, lambda: self._core_metadata(url))

    def _core_metadata(self, url: str) -> str | None:
        entry = self.cache.get(url, None)  # metadata of a released file never changes
        if entry is None:
            response = self.transport.get(url)
            if response.status != 200:
                return None
            if not metadata.looks_like_core_metadata(response.body):
                log.warning("%s: not core metadata (no Metadata-Version header); ignored", url)
                return None
            entry = {"body": response.body}
            self.cache.put(url, **entry)
        return entry["body"]

    def _release_info(self, url: str) -> dict[str, Any] | None:
        """The "info" object of a JSON API document, or None when there is none or it is not
        one (a garbage answer is not cached)."""
        try:
            document = self._json_api_document(url, self.ttl).value
        except NotJsonApi as exc:  # garbage; failing to reach the index is still an error
            log.warning("%s; ignored", exc)
            return None
        return document["info"] if document is not None else None

    def _json_api_document(self, url: str, max_age: float | None
                           ) -> Fetched[dict[str, Any] | None]:
        """A JSON API document (None for a 404), cached and revalidated like project pages.
        An answer that is not a JSON object with an "info" object is an UpstreamError and is
        not cached."""
        return self._fetch(url, "application/json", max_age, metadata.json_api_document_of)

    def download(self, file: DistributionFile, dest_dir: Path) -> Path:
        """Download a file under dest_dir, checking its sha256; reuse a verified earlier copy
        (resolve.downloads)."""
        return download(self.transport, file, dest_dir)


def _files_on(entry: dict[str, Any]) -> list[DistributionFile]:
    """The files on a project page as fetched or cached (none for a 404)."""
    if entry["status"] == 404:
        return []
    return parse_project_page(entry["body"], entry["content_type"], entry["url"])

"""Talk to an upstream package index (PEP 691 JSON, falling back to PEP 503 HTML).

Knows nothing of resolution: it lists a project's files, reads a file's core metadata and
downloads files with their hash checked. Answers are cached on disk, so a second run within the
cache's lifetime does not ask the index again. Past that lifetime, and whenever check_project
asks, the question is conditional: the cached answer's ETag and Last-Modified go with it, and a
304 Not Modified reuses the cached answer without downloading it again.

Transient failures (timeouts, connections dropped or cut short, 408/429/5xx) are tried again
with exponential backoff, a download from its start; then the error says how many attempts were
made and why the last failed. Garbage (a page that is neither PEP 691 JSON nor HTML, a malformed
sha256) is an error naming the page and is never cached.
"""

from __future__ import annotations

import hashlib
import html.parser
import json
import logging
import os
import re
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import requests
import urllib3.exceptions
from packaging.utils import (InvalidSdistFilename, InvalidWheelFilename, canonicalize_name,
                             parse_sdist_filename, parse_wheel_filename)
from packaging.version import InvalidVersion, Version
from requests.adapters import HTTPAdapter

from mirror_builder.errors import UpstreamError
from mirror_builder.files import atomic_write_text, sha256_of

log = logging.getLogger(__name__)

PEP691_JSON = "application/vnd.pypi.simple.v1+json"
ACCEPT = f"{PEP691_JSON}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
# Answers worth asking again for: the index is busy or a proxy in front of it is.
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
TRANSIENT_ERRORS = (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError)
MAX_RETRY_AFTER_SECONDS = 60.0
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
# PyPI's HTML pages end with this comment; its JSON pages say it in meta["_last-serial"].
SERIAL_COMMENT = re.compile(r"<!--\s*SERIAL\s+(\d+)\s*-->")

T = TypeVar("T")


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
class _Response:
    """An answer of the index: status 200, 304 (only to a conditional request) or 404.
    validators: the ETag, Last-Modified and X-PyPI-Last-Serial it gave, as cache entry keys."""

    status: int
    content_type: str
    body: str
    url: str
    validators: dict[str, Any]


@dataclass(frozen=True)
class _Fetched(Generic[T]):
    """A cached-or-asked answer as read by its reader, with what was cached before it."""

    value: T
    entry: dict[str, Any]  # the cache entry now
    had_previous: bool  # a usable answer was cached before
    previous: T | None  # what reading it gave
    previous_status: int | None  # its HTTP status
    how: Literal["cached", "not-modified", "full"]  # no request, a 304 or a full answer


class _NotJsonApi(UpstreamError):
    """A JSON API answer that is not a JSON object with an "info" object."""


class _Transient(Exception):
    """A failure that asking again may cure: a timeout, a dropped or cut-short connection, a
    busy answer (408, 429, 5xx). Carries the server's Retry-After, when it gave one."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def make_session(user_agent: str) -> requests.Session:
    """A session that does not retry by itself: UpstreamIndex retries whole requests, bodies
    included, which urllib3's Retry cannot (it stops once the headers have arrived)."""
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=0, pool_maxsize=8)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = user_agent
    return session


class UpstreamIndex:
    """A PEP 503/691 simple index, plus (optionally) PyPI's JSON API for release metadata."""

    def __init__(self, index_url: str, cache_dir: Path, *, json_api_url: str | None = None,
                 ttl: float = 6 * 3600, timeout: float = 60, retries: int = 4,
                 refresh: bool = False, user_agent: str = "mirror-builder",
                 backoff_seconds: float = 0.5) -> None:
        self.index_url = index_url.rstrip("/") + "/"
        self.json_api_url = json_api_url.rstrip("/") + "/" if json_api_url else None
        self.cache = DiskCache(cache_dir / "upstream")
        self.ttl = 0 if refresh else ttl
        self.timeout = timeout
        # A request that fails transiently is made up to retries + 1 times, waiting
        # backoff_seconds before the second attempt and twice as long before each next one.
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.session = make_session(user_agent)
        # HTTP requests made (attempts included), 200 answers (pages, metadata and downloads
        # alike) and 304 answers; file:// URLs count in none. Builds fetch from several threads.
        self.requests_made = 0
        self.full_responses = 0
        self.not_modified = 0
        self._counters_lock = threading.Lock()

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
                            serial=_serial_of(fetched.entry))

    def _project_page(self, name: str, max_age: float | None) -> _Fetched[list[DistributionFile]]:
        url = urllib.parse.urljoin(self.index_url, f"{canonicalize_name(name)}/")
        return self._fetch(url, ACCEPT, max_age, _files_on)

    # -- release times ---------------------------------------------------------------------
    def release_times(self, name: str) -> dict[Version, datetime]:
        """When each version was released: the earliest upload time of its files, from the
        project page when it gives upload times (PEP 700), else from the JSON API's project
        document. {} when neither says; versions that do not parse are left out."""
        files = self.project_files(name)
        if any(f.upload_time is not None for f in files):
            return _earliest((_file_version(f.filename, name), f.upload_time) for f in files)
        if not self.json_api_url:
            return {}
        url = urllib.parse.urljoin(self.json_api_url, f"{canonicalize_name(name)}/json")
        try:
            fetched = self._json_api_document(url, self.ttl)
            times = _release_times_of(fetched.value)
            listed = {v for v in (_file_version(f.filename, name) for f in files) if v is not None}
            if fetched.how == "cached" and not listed <= times.keys():
                # The page lists a release the cached document predates: ask again.
                times = _release_times_of(self._json_api_document(url, None).value)
        except _NotJsonApi as exc:  # garbage; failing to reach the index is still an error
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
        wheels = [f for f in files if f.is_wheel]
        for wheel in sorted(wheels, key=lambda f: not f.filename.endswith("-none-any.whl")):
            if wheel.has_metadata:
                text = self.core_metadata(wheel)
                if text is not None:
                    return parse_requires_dist(text)
        if self.json_api_url and wheels:
            # Only trusted when a wheel exists: PyPI fills this from the first uploaded file, and
            # an sdist-only legacy release may show null although it has dependencies.
            project = canonicalize_name(name)
            info = self._release_info(urllib.parse.urljoin(self.json_api_url, f"{project}/{version}/json"))
            if info is None:
                # Some proxies serve only the project document, whose info is the latest release.
                info = self._release_info(urllib.parse.urljoin(self.json_api_url, f"{project}/json"))
                if info is not None and info.get("version") != version:
                    info = None
            requires = (info.get("requires_dist") or []) if info is not None else None
            if _is_list_of_str(requires):
                return list(requires)
        return None

    def core_metadata(self, file: DistributionFile) -> str | None:
        url = file.url.split("#", 1)[0] + ".metadata"
        entry = self.cache.get(url, None)  # metadata of a released file never changes
        if entry is None:
            response = self._get(url)
            if response.status != 200:
                return None
            if not _looks_like_core_metadata(response.body):
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
        except _NotJsonApi as exc:  # garbage; failing to reach the index is still an error
            log.warning("%s; ignored", exc)
            return None
        return document["info"] if document is not None else None

    def _json_api_document(self, url: str, max_age: float | None
                           ) -> _Fetched[dict[str, Any] | None]:
        """A JSON API document (None for a 404), cached and revalidated like project pages.
        An answer that is not a JSON object with an "info" object is an UpstreamError and is
        not cached."""
        return self._fetch(url, "application/json", max_age, _json_api_document_of)

    # -- cached answers --------------------------------------------------------------------
    def _fetch(self, url: str, accept: str, max_age: float | None,
               read: Callable[[dict[str, Any]], T]) -> _Fetched[T]:
        """url's answer as read(entry) gives it: the cached answer while it is younger than
        max_age (None: always ask), else the index's, asked with the cached answer's validators
        (If-None-Match, If-Modified-Since). A 304 keeps the cached answer and restarts its
        lifetime; a full answer is read, so that garbage raises before it is cached, and then
        replaces the cached one. A cached answer that read() refuses is dropped."""
        previous = self.cache.get(url, None)
        before: T | None = None
        if previous is not None:
            try:
                before = read(previous)
            except (UpstreamError, KeyError):  # cached before garbage was refused; ask again
                log.warning("%s: the cached answer is unusable; asking the index again", url)
                self.cache.drop(url)
                previous = None
        had_previous = previous is not None
        previous_status = previous.get("status") if previous is not None else None
        if (previous is not None and max_age is not None
                and time.time() - previous.get("stored", 0) <= max_age):
            return _Fetched(before, previous, True, before, previous_status, "cached")
        response = self._get(url, accept=accept, validators=_request_validators(previous))
        if response.status == 304 and previous is not None:
            entry = {k: v for k, v in previous.items() if k not in ("key", "stored")}
            entry.update(response.validators)  # a 304 may bring new ones
            self.cache.put(url, **entry)
            return _Fetched(before, entry, True, before, previous_status, "not-modified")
        entry = {"status": response.status, "content_type": response.content_type,
                 "body": response.body if response.status == 200 else "", "url": response.url,
                 **response.validators}
        value = read(entry)  # garbage raises here, before it could be cached
        self.cache.put(url, **entry)
        return _Fetched(value, entry, had_previous, before, previous_status, "full")

    # -- downloads -------------------------------------------------------------------------
    def download(self, file: DistributionFile, dest_dir: Path) -> Path:
        """Download a file under dest_dir, checking its sha256; reuse a verified earlier copy.

        Copies are kept by hash (or by URL when the index gives none), so two different files
        that share a name (other indexes, local sdists) never stand in for each other. The
        download goes to a .part file that is renamed only once verified, and removed whatever
        happens otherwise.
        """
        key = file.sha256 or hashlib.sha256(file.url.encode()).hexdigest()
        dest_dir = dest_dir / key[:2] / key
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / file.filename
        if dest.exists():
            if file.sha256 is None or sha256_of(dest) == file.sha256:
                return dest
            log.warning("%s: cached copy does not match the index's sha256; downloading again",
                        file.filename)
            dest.unlink()
        fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=f".{file.filename}.", suffix=".part")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            self._download_verified(file, tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def _download_verified(self, file: DistributionFile, tmp: Path) -> None:
        """Download into tmp until it has the index's sha256. A mismatch is downloaded once
        more (a proxy or the connection may have damaged it); a second one is an error."""
        first = self._download_with_retries(file, tmp)
        if file.sha256 is None or first == file.sha256:
            return
        log.warning("%s: sha256 mismatch: the index says %s, the download is %s; downloading "
                    "it once more", file.filename, file.sha256, first)
        second = self._download_with_retries(file, tmp)
        if second == file.sha256:
            return
        both = "the same both times" if second == first else "a different file each time"
        raise UpstreamError(
            f"{file.filename}: sha256 mismatch: the index says {file.sha256}, the download is "
            f"{second} (downloaded twice from {file.url}, {both}); nothing was kept")

    def _download_with_retries(self, file: DistributionFile, tmp: Path) -> str:
        """Download the whole file into tmp, starting over after a transient failure; returns
        its sha256."""
        return self._with_retries(f"cannot download {file.filename} from {file.url}",
                                  lambda: self._download_once(file.url, tmp))

    def _download_once(self, url: str, tmp: Path) -> str:
        digest = hashlib.sha256()
        with tmp.open("wb") as out:
            for chunk in self._stream(url):
                digest.update(chunk)
                out.write(chunk)
        return digest.hexdigest()

    # -- transport -------------------------------------------------------------------------
    def _with_retries(self, failure: str, attempt: Callable[[], T]) -> T:
        """attempt(), made again after a transient failure, up to retries + 1 times in all,
        with exponential backoff; then an UpstreamError: failure, the count and the last reason."""
        attempts = self.retries + 1
        for number in range(1, attempts + 1):
            try:
                return attempt()
            except _Transient as exc:
                last = exc
                if number < attempts:
                    wait = self._wait_before_attempt(number + 1, exc.retry_after)
                    log.warning("%s (%s); trying again in %g s (attempt %d of %d)", failure, exc,
                                wait, number + 1, attempts)
                    time.sleep(wait)
        raise UpstreamError(f"{failure} after {attempts} attempt{'s' if attempts > 1 else ''}: "
                            f"{last}")

    def _wait_before_attempt(self, number: int, retry_after: float | None) -> float:
        backoff = self.backoff_seconds * 2 ** (number - 2)
        if retry_after is None:
            return backoff
        return max(backoff, min(retry_after, MAX_RETRY_AFTER_SECONDS))

    def _count(self, counter: str) -> None:
        with self._counters_lock:
            setattr(self, counter, getattr(self, counter) + 1)

    def _get(self, url: str, accept: str | None = None,
             validators: dict[str, str] | None = None) -> _Response:
        """GET url (validators: conditional request headers; then a 304 may come back)."""
        if url.startswith("file://"):
            return _read_file_url(url)
        return self._with_retries(f"cannot reach {url}",
                                  lambda: self._get_once(url, accept, validators or {}))

    def _get_once(self, url: str, accept: str | None, validators: dict[str, str]) -> _Response:
        self._count("requests_made")
        headers = ({"Accept": accept} if accept else {}) | validators
        try:
            response = self.session.get(url, timeout=self.timeout, headers=headers or None)
        except requests.RequestException as exc:
            raise self._failure(exc, f"cannot reach {url}") from None
        if response.status_code in TRANSIENT_STATUSES:
            raise _busy(response)
        if response.status_code == 304 and validators:
            self._count("not_modified")
            return _Response(304, "", "", response.url, _response_validators(response))
        if response.status_code not in (200, 404):
            raise UpstreamError(f"{url}: the index answered HTTP {response.status_code}")
        content_type = response.headers.get("Content-Type", "")
        body = _decode(response.content, content_type)
        if response.status_code == 200:
            self._count("full_responses")
        return _Response(response.status_code, content_type, body, response.url,
                         _response_validators(response))

    def _stream(self, url: str) -> Iterator[bytes]:
        if url.startswith("file://"):
            path = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path))
            try:
                handle = path.open("rb")
            except OSError as exc:
                raise UpstreamError(f"{url}: download failed: {exc}") from None
            with handle:
                yield from iter(lambda: handle.read(1 << 20), b"")
            return
        self._count("requests_made")
        try:
            with self.session.get(url, stream=True, timeout=self.timeout) as response:
                if response.status_code in TRANSIENT_STATUSES:
                    raise _busy(response)
                if response.status_code != 200:
                    raise UpstreamError(f"{url}: download failed with HTTP {response.status_code}")
                self._count("full_responses")
                # urllib3 raises when the body ends before its Content-Length.
                yield from response.iter_content(1 << 20)
        except requests.RequestException as exc:
            raise self._failure(exc, f"{url}: download failed") from None

    def _failure(self, exc: requests.RequestException, permanent: str) -> Exception:
        """A requests exception as _Transient (to be retried) or a final UpstreamError."""
        if isinstance(exc, TRANSIENT_ERRORS):
            return _Transient(_reason(exc, self.timeout))
        return UpstreamError(f"{permanent}: {_reason(exc, self.timeout)}")


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


def _response_validators(response: requests.Response) -> dict[str, Any]:
    """The answer's ETag, Last-Modified and X-PyPI-Last-Serial, under cache entry keys."""
    found: dict[str, Any] = {}
    for header, key in (("ETag", "etag"), ("Last-Modified", "last_modified")):
        value = response.headers.get(header, "").strip()
        if value:
            found[key] = value
    serial = response.headers.get("X-PyPI-Last-Serial", "").strip()
    if serial.isdigit():
        found["serial"] = int(serial)
    return found


def _busy(response: requests.Response) -> _Transient:
    retry_after = response.headers.get("Retry-After", "").strip()
    return _Transient(f"HTTP {response.status_code} {response.reason}".rstrip(),
                      float(retry_after) if retry_after.isdigit() else None)


def _reason(exc: BaseException, timeout: float) -> str:
    """Why a request failed, in a few words: requests' own text nests three exceptions deep
    and repeats the host."""
    cause = _innermost(exc)
    if isinstance(cause, urllib3.exceptions.IncompleteRead):
        return (f"the connection closed after {cause.partial} bytes, {cause.expected} more "
                f"were expected")
    if isinstance(cause, (TimeoutError, urllib3.exceptions.TimeoutError)):
        return f"no answer within {timeout:g} s"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    text = str(cause) or type(cause).__name__
    # urllib3 starts some messages with the connection's repr: "HTTPConnection(...): ...".
    connection, separator, rest = text.partition("): ")
    return rest if separator and connection.startswith(("HTTP", "<")) else text


def _innermost(exc: BaseException) -> BaseException:
    """The exception at the bottom of requests' and urllib3's wrapping."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "reason", None)  # MaxRetryError
        if not isinstance(inner, BaseException):
            inner = next((a for a in exc.args if isinstance(a, BaseException)), None)
        if inner is None:
            inner = exc.__cause__
        if inner is None:
            return exc
        exc = inner
    return exc


def _decode(body: bytes, content_type: str) -> str:
    """The body as text: in its declared charset, else UTF-8 (PEP 691 JSON always is, and
    simple indexes are in practice). Undecodable bytes become U+FFFD, which marks binary data."""
    charset = "utf-8"
    for parameter in content_type.split(";")[1:]:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
    try:
        return body.decode(charset, errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def _read_file_url(url: str) -> _Response:
    path = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path))
    if path.is_dir():
        for name, content_type in (("index.json", PEP691_JSON), ("index.html", "text/html")):
            if (path / name).is_file():
                return _Response(200, content_type, _decode((path / name).read_bytes(), ""),
                                 url, {})
        return _Response(404, "", "", url, {})
    if not path.is_file():
        return _Response(404, "", "", url, {})
    return _Response(200, "", _decode(path.read_bytes(), ""), url, {})



def parse_requires_dist(metadata_text: str) -> list[str]:
    from pkginfo import Distribution

    dist = Distribution()
    dist.parse(metadata_text.encode() if isinstance(metadata_text, str) else metadata_text)
    return list(dist.requires_dist or ())


# -- page parsing ----------------------------------------------------------------------------
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


def _files_on(entry: dict[str, Any]) -> list[DistributionFile]:
    """The files on a project page as fetched or cached (none for a 404)."""
    if entry["status"] == 404:
        return []
    return parse_project_page(entry["body"], entry["content_type"], entry["url"])


def _serial_of(entry: dict[str, Any]) -> int | None:
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


def _parse_time(value: Any) -> datetime | None:
    """An ISO 8601 upload time as an aware datetime (UTC when it names no zone), or None
    when it is not one: a bad time costs the release its age, not the page."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _file_version(filename: str, project: str) -> Version | None:
    """The version of an sdist or a wheel of project, or None when the name is neither."""
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
        else:
            name, version = parse_sdist_filename(filename)
    except (InvalidSdistFilename, InvalidWheelFilename, InvalidVersion):
        return None
    return version if name == canonicalize_name(project) else None


def _earliest(pairs: Iterable[tuple[Version | None, datetime | None]]) -> dict[Version, datetime]:
    times: dict[Version, datetime] = {}
    for version, moment in pairs:
        if version is not None and moment is not None:
            times[version] = min(times.get(version, moment), moment)
    return times


def _json_api_document_of(entry: dict[str, Any]) -> dict[str, Any] | None:
    """A cached or fetched JSON API document (None for a 404); anything but a JSON object with
    an "info" object is an UpstreamError."""
    if entry["status"] != 200:
        return None
    try:
        data = json.loads(entry["body"])
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("info"), dict):
        raise _NotJsonApi(f"{entry.get('url') or entry.get('key')}: not a JSON API document "
                            f"with an info object")
    return data


def _release_times_of(document: dict[str, Any] | None) -> dict[Version, datetime]:
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
                pairs.append((version, _parse_time(item.get("upload_time_iso_8601")
                                                   or item.get("upload_time"))))
    return _earliest(pairs)


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
        upload_time=_parse_time(item.get("upload-time")),
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


def _looks_like_core_metadata(text: str) -> bool:
    headers = text.replace("\r\n", "\n").split("\n\n", 1)[0]
    return any(line.lower().startswith("metadata-version:") for line in headers.splitlines())


def _is_list_of_str(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


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
            upload_time=_parse_time(attrs.get("data-upload-time")),
        ))
    return files

"""GETs of an index's URLs, made again after transient failures with exponential backoff.

Transient failures (timeouts, connections dropped or cut short, 408/429/5xx) are tried again, a
download from its start; then the error says how many attempts were made and why the last
failed. file:// URLs are read directly and count in no counter.

get_range asks for a byte range (a wheel's metadata without the wheel: resolve.remotewheel). A
server that ignores Range answers 200 with the whole file: that body is not read, and the answer
says so with its status (200), for the caller to fall back to a download.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests
import urllib3.exceptions

from mirror_builder.errors import UpstreamError
from mirror_builder.resolve.pages import PEP691_JSON
from mirror_builder.resolve.tls import PreloadedTLSAdapter

log = logging.getLogger(__name__)

# Answers worth asking again for: the index is busy or a proxy in front of it is.
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
TRANSIENT_ERRORS = (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError)
MAX_RETRY_AFTER_SECONDS = 60.0

T = TypeVar("T")


@dataclass(frozen=True)
class Response:
    """An answer of the index: status 200, 304 (only to a conditional request) or 404.
    validators: the ETag, Last-Modified and X-PyPI-Last-Serial it gave, as cache entry keys."""

    status: int
    content_type: str
    body: str
    url: str
    validators: dict[str, Any]


@dataclass(frozen=True)
class RangeAnswer:
    """An answer to a range request (Transport.get_range).

    206: data are the file's bytes from offset start on (fewer than asked at its end), size its
    whole length from Content-Range (None when the server wrote "*"). 200: the server ignores
    Range and began sending the whole file; that body was not read (data is empty, size the
    Content-Length when given). 416: the range starts past the file's end (size from
    "Content-Range: bytes */N" when given). 404: there is no such file."""

    status: int
    data: bytes
    start: int
    size: int | None


class BadRangeAnswer(UpstreamError):
    """A 206 answer that is not the bytes asked for: no or another Content-Range, a body longer
    than it, or a Content-Encoding (whose ranges would count encoded bytes)."""


class _Transient(Exception):
    """A failure that asking again may cure: a timeout, a dropped or cut-short connection, a
    busy answer (408, 429, 5xx). Carries the server's Retry-After, when it gave one."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def make_session(user_agent: str) -> requests.Session:
    """A session that does not retry by itself: Transport retries whole requests, bodies
    included, which urllib3's Retry cannot (it stops once the headers have arrived)."""
    session = requests.Session()
    # As many kept connections as threads ask at once (prefetching and building): one more
    # than the pool holds is opened, used once and dropped, a TLS handshake each time.
    adapter = PreloadedTLSAdapter(max_retries=0, pool_maxsize=32)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = user_agent
    return session


class Transport:
    """GETs over one session; counts the HTTP requests made (attempts included), the 200
    answers (pages, metadata and downloads alike) and the 304 answers, across threads; and the
    body bytes of range answers (206) in range_bytes."""

    def __init__(self, *, timeout: float, retries: int, backoff_seconds: float,
                 user_agent: str) -> None:
        self.timeout = timeout
        # A request that fails transiently is made up to retries + 1 times, waiting
        # backoff_seconds before the second attempt and twice as long before each next one.
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self._user_agent = user_agent
        self._session: requests.Session | None = None
        self._session_lock = threading.Lock()
        self.requests_made = 0
        self.full_responses = 0
        self.not_modified = 0
        self.range_bytes = 0
        self._counters_lock = threading.Lock()

    @property
    def session(self) -> requests.Session:
        """Made on first use: a run makes transports it may never use (the remote build cache,
        Debian's Contents index), and a session's TLS context costs 20 ms of CPU."""
        with self._session_lock:
            if self._session is None:
                self._session = make_session(self._user_agent)
            return self._session

    def with_retries(self, failure: str, attempt: Callable[[], T]) -> T:
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

    def _count(self, counter: str, amount: int = 1) -> None:
        with self._counters_lock:
            setattr(self, counter, getattr(self, counter) + amount)

    def get(self, url: str, accept: str | None = None,
            validators: dict[str, str] | None = None) -> Response:
        """GET url (validators: conditional request headers; then a 304 may come back)."""
        if url.startswith("file://"):
            return _read_file_url(url)
        return self.with_retries(f"cannot reach {url}",
                                 lambda: self._get_once(url, accept, validators or {}))

    def _get_once(self, url: str, accept: str | None, validators: dict[str, str]) -> Response:
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
            return Response(304, "", "", response.url, _response_validators(response))
        if response.status_code not in (200, 404):
            raise UpstreamError(f"{url}: the index answered HTTP {response.status_code}")
        content_type = response.headers.get("Content-Type", "")
        body = _decode(response.content, content_type)
        if response.status_code == 200:
            self._count("full_responses")
        return Response(response.status_code, content_type, body, response.url,
                        _response_validators(response))

    def stream(self, url: str) -> Iterator[bytes]:
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

    def get_range(self, url: str, start: int | None, end: int | None) -> RangeAnswer:
        """GET bytes start to end of url, both included as HTTP counts them; start None: the
        last end bytes (a suffix range, whose answer gives the file's size); end None: from
        start to the file's end. Only a 206 body is read, and never past the length its
        Content-Range gives (BadRangeAnswer when it is not the bytes asked for); a 200 means
        the server ignores Range (RangeAnswer). Retried and failing as get does."""
        spec = _range_spec(start, end)
        if url.startswith("file://"):
            return _read_file_range(url, start, end)
        return self.with_retries(f"cannot reach {url}",
                                 lambda: self._get_range_once(url, spec, start, end))

    def _get_range_once(self, url: str, spec: str, start: int | None,
                        end: int | None) -> RangeAnswer:
        self._count("requests_made")
        # identity: a compressed answer's ranges would count the compressed bytes.
        headers = {"Range": f"bytes={spec}", "Accept-Encoding": "identity"}
        try:
            with self.session.get(url, stream=True, timeout=self.timeout,
                                  headers=headers) as response:
                status = response.status_code
                if status in TRANSIENT_STATUSES:
                    raise _busy(response)
                if status == 206:
                    answer = _partial_content(response, url, spec, start, end)
                    self._count("range_bytes", len(answer.data))
                    return answer
                if status not in (200, 404, 416):
                    raise UpstreamError(f"{url}: the index answered HTTP {status} to a range "
                                        f"request")
                # Leaving the with block closes the connection: a 200's body stays unread.
                return RangeAnswer(status, b"", 0, _size_without_range(response))
        except requests.RequestException as exc:
            raise self._failure(exc, f"cannot reach {url}") from None

    def _failure(self, exc: requests.RequestException, permanent: str) -> Exception:
        """A requests exception as _Transient (to be retried) or a final UpstreamError."""
        if isinstance(exc, TRANSIENT_ERRORS):
            return _Transient(_reason(exc, self.timeout))
        return UpstreamError(f"{permanent}: {_reason(exc, self.timeout)}")


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


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")


def _range_spec(start: int | None, end: int | None) -> str:
    """The Range header's value after "bytes=" (ValueError for a range that is none)."""
    if start is None:
        if end is None or end <= 0:
            raise ValueError(f"a suffix range needs a positive length, not {end}")
        return f"-{end}"
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"not a byte range: {start}-{end}")
    return f"{start}-" if end is None else f"{start}-{end}"


def _partial_content(response: requests.Response, url: str, spec: str, start: int | None,
                     end: int | None) -> RangeAnswer:
    """A 206's bytes, checked to be those asked for and read no further than they go."""
    content_range = response.headers.get("Content-Range", "").strip()
    match = _CONTENT_RANGE.fullmatch(content_range)
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    first, last = (int(match[1]), int(match[2])) if match else (-1, -1)
    size = int(match[3]) if match and match[3] != "*" else None
    if start is not None:
        expected = start
    else:
        expected = first if size is None else max(size - (end or 0), 0)
    if (not match or last < first or (size is not None and last >= size) or first != expected
            or (start is not None and end is not None and last > end)
            or encoding not in ("", "identity")):
        raise BadRangeAnswer(f"{url}: the answer to a request for bytes={spec} is not those "
                             f"bytes (Content-Range: {content_range or 'none'}, "
                             f"Content-Encoding: {encoding or 'none'})")
    length = last - first + 1
    data = bytearray()
    for chunk in response.iter_content(1 << 16):
        data += chunk
        if len(data) > length:
            raise BadRangeAnswer(f"{url}: the answer to a request for bytes={spec} is longer "
                                 f"than its Content-Range ({content_range})")
    if len(data) < length:
        raise _Transient(f"the answer ended after {len(data)} of {length} bytes")
    return RangeAnswer(206, bytes(data), first, size)


def _size_without_range(response: requests.Response) -> int | None:
    """The file's size as a 200 (Content-Length) or a 416 (Content-Range: bytes */N) gives it."""
    if response.status_code == 416:
        match = _UNSATISFIED_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        return int(match[1]) if match else None
    length = response.headers.get("Content-Length", "").strip()
    return int(length) if response.status_code == 200 and length.isdigit() else None


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


def _read_file_url(url: str) -> Response:
    path = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path))
    if path.is_dir():
        for name, content_type in (("index.json", PEP691_JSON), ("index.html", "text/html")):
            if (path / name).is_file():
                return Response(200, content_type, _decode((path / name).read_bytes(), ""),
                                url, {})
        return Response(404, "", "", url, {})
    if not path.is_file():
        return Response(404, "", "", url, {})
    return Response(200, "", _decode(path.read_bytes(), ""), url, {})


def _read_file_range(url: str, start: int | None, end: int | None) -> RangeAnswer:
    """A byte range of a file:// URL, answered as a server that honours ranges would."""
    path = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path))
    if not path.is_file():
        return RangeAnswer(404, b"", 0, None)
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            first = max(size - (end or 0), 0) if start is None else start
            last = size - 1 if start is None or end is None else min(end, size - 1)
            if first >= size:
                return RangeAnswer(416, b"", 0, size)
            handle.seek(first)
            return RangeAnswer(206, handle.read(last - first + 1), first, size)
    except OSError as exc:
        raise UpstreamError(f"{url}: cannot read: {exc.strerror or exc}") from None

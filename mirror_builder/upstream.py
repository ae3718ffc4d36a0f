"""Talk to an upstream package index (PEP 691 JSON, falling back to PEP 503 HTML).

Knows nothing of resolution: it lists a project's files, reads a file's core metadata and
downloads files with their hash checked. Answers are cached on disk, so a second run within the
cache's lifetime does not ask the index again.
"""

from __future__ import annotations

import hashlib
import html.parser
import json
import logging
import os
import tempfile
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from packaging.utils import canonicalize_name
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from mirror_builder.errors import UpstreamError
from mirror_builder.files import atomic_write_text, sha256_of

log = logging.getLogger(__name__)

PEP691_JSON = "application/vnd.pypi.simple.v1+json"
ACCEPT = f"{PEP691_JSON}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"


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

    @property
    def is_sdist(self) -> bool:
        return self.filename.endswith((".tar.gz", ".zip"))

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")


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


def make_session(retries: int, user_agent: str) -> requests.Session:
    session = requests.Session()
    retry = Retry(total=retries, backoff_factor=0.5, status_forcelist=(429, 500, 502, 503, 504),
                  allowed_methods=("GET", "HEAD"), raise_on_status=False)
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=8)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = user_agent
    return session


class UpstreamIndex:
    """A PEP 503/691 simple index, plus (optionally) PyPI's JSON API for release metadata."""

    def __init__(self, index_url: str, cache_dir: Path, *, json_api_url: str | None = None,
                 ttl: float = 6 * 3600, timeout: float = 60, retries: int = 4,
                 refresh: bool = False, user_agent: str = "mirror-builder") -> None:
        self.index_url = index_url.rstrip("/") + "/"
        self.json_api_url = json_api_url.rstrip("/") + "/" if json_api_url else None
        self.cache = DiskCache(cache_dir / "upstream")
        self.ttl = 0 if refresh else ttl
        self.timeout = timeout
        self.session = make_session(retries, user_agent)
        self.requests_made = 0

    # -- listing ---------------------------------------------------------------------------
    def project_files(self, name: str) -> list[DistributionFile]:
        """All files the index lists for a project ([] when the project does not exist)."""
        url = urllib.parse.urljoin(self.index_url, f"{canonicalize_name(name)}/")
        entry = self.cache.get(url, self.ttl)
        if entry is None:
            status, content_type, body, final_url = self._get(url, accept=ACCEPT)
            if status == 404:
                body = ""
            entry = {"status": status, "content_type": content_type, "body": body, "url": final_url}
            self.cache.put(url, **entry)
        if entry["status"] == 404:
            return []
        return parse_project_page(entry["body"], entry["content_type"], entry["url"])

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
            data = self._cached_json(urllib.parse.urljoin(self.json_api_url, f"{project}/{version}/json"))
            if data is None:
                # Some proxies serve only the project document, whose info is the latest release.
                data = self._cached_json(urllib.parse.urljoin(self.json_api_url, f"{project}/json"))
                if data is not None and data.get("info", {}).get("version") != version:
                    data = None
            if data is not None:
                return list(data.get("info", {}).get("requires_dist") or [])
        return None

    def core_metadata(self, file: DistributionFile) -> str | None:
        url = file.url.split("#", 1)[0] + ".metadata"
        entry = self.cache.get(url, None)  # metadata of a released file never changes
        if entry is None:
            status, _, body, _ = self._get(url)
            if status != 200:
                return None
            entry = {"body": body}
            self.cache.put(url, **entry)
        return entry["body"]

    def _cached_json(self, url: str) -> dict[str, Any] | None:
        entry = self.cache.get(url, self.ttl)
        if entry is None:
            status, _, body, _ = self._get(url, accept="application/json")
            entry = {"status": status, "body": body if status == 200 else ""}
            self.cache.put(url, **entry)
        if entry["status"] != 200:
            return None
        try:
            return json.loads(entry["body"])
        except ValueError:
            return None

    # -- downloads -------------------------------------------------------------------------
    def download(self, file: DistributionFile, dest_dir: Path) -> Path:
        """Download a file under dest_dir, checking its sha256; reuse a verified earlier copy.

        Copies are kept by hash (or by URL when the index gives none), so two different files
        that share a name (other indexes, local sdists) never stand in for each other.
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
        tmp = Path(tmp_name)
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                for chunk in self._stream(file.url):
                    digest.update(chunk)
                    out.write(chunk)
            if file.sha256 is not None and digest.hexdigest() != file.sha256:
                raise UpstreamError(
                    f"{file.filename}: sha256 mismatch: the index says {file.sha256}, "
                    f"the download is {digest.hexdigest()}; nothing was kept")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    # -- transport -------------------------------------------------------------------------
    def _get(self, url: str, accept: str | None = None) -> tuple[int, str, str, str]:
        if url.startswith("file://"):
            return _read_file_url(url)
        self.requests_made += 1
        try:
            response = self.session.get(url, timeout=self.timeout,
                                        headers={"Accept": accept} if accept else None)
        except requests.RequestException as exc:
            raise UpstreamError(f"cannot reach {url}: {exc}") from None
        if response.status_code not in (200, 404):
            raise UpstreamError(f"{url}: the index answered HTTP {response.status_code}")
        return (response.status_code, response.headers.get("Content-Type", ""), response.text,
                response.url)

    def _stream(self, url: str) -> Iterable[bytes]:
        if url.startswith("file://"):
            path = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path))
            try:
                handle = path.open("rb")
            except OSError as exc:
                raise UpstreamError(f"{url}: download failed: {exc}") from None
            with handle:
                yield from iter(lambda: handle.read(1 << 20), b"")
            return
        self.requests_made += 1
        try:
            with self.session.get(url, stream=True, timeout=self.timeout) as response:
                if response.status_code != 200:
                    raise UpstreamError(f"{url}: download failed with HTTP {response.status_code}")
                yield from response.iter_content(1 << 20)
        except requests.RequestException as exc:
            raise UpstreamError(f"{url}: download failed: {exc}") from None


def _read_file_url(url: str) -> tuple[int, str, str, str]:
    path = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path))
    if path.is_dir():
        for name, content_type in (("index.json", PEP691_JSON), ("index.html", "text/html")):
            if (path / name).is_file():
                return 200, content_type, (path / name).read_text(encoding="utf-8"), url
        return 404, "", "", url
    if not path.is_file():
        return 404, "", "", url
    return 200, "", path.read_text(encoding="utf-8"), url



def parse_requires_dist(metadata_text: str) -> list[str]:
    from pkginfo import Distribution

    dist = Distribution()
    dist.parse(metadata_text.encode() if isinstance(metadata_text, str) else metadata_text)
    return list(dist.requires_dist or ())


# -- page parsing ----------------------------------------------------------------------------
def parse_project_page(body: str, content_type: str, page_url: str) -> list[DistributionFile]:
    if content_type.split(";")[0].strip() == PEP691_JSON or body.lstrip().startswith("{"):
        try:
            return _parse_json_page(json.loads(body), page_url)
        except (ValueError, KeyError, TypeError) as exc:
            raise UpstreamError(f"{page_url}: not a valid PEP 691 project page: {exc}") from None
    return _parse_html_page(body, page_url)


def _parse_json_page(data: dict[str, Any], page_url: str) -> list[DistributionFile]:
    files = []
    for item in data["files"]:
        yanked = item.get("yanked", False)
        metadata = item.get("core-metadata", item.get("dist-info-metadata", False))
        files.append(DistributionFile(
            filename=item["filename"],
            url=urllib.parse.urljoin(page_url, item["url"]),
            sha256=item.get("hashes", {}).get("sha256"),
            requires_python=item.get("requires-python") or None,
            yanked=bool(yanked),
            yanked_reason=yanked if isinstance(yanked, str) and yanked else None,
            has_metadata=bool(metadata),
            size=item.get("size"),
        ))
    return files


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
            sha256=hashes.get("sha256"),
            requires_python=attrs.get("data-requires-python") or None,
            yanked=yanked,
            yanked_reason=attrs.get("data-yanked") or None,
            has_metadata=metadata_key is not None and metadata_value != "false",
        ))
    return files

"""Read another machine's build cache (its CACHE_DIR/builds served by any static file server, or
a file:// path): a project's entries from entries/<name>/index.json, an entry, a blob.

Nothing read here is trusted: the caller recomputes each entry's build key from its record and
checks it against its own inputs, and every blob is checked against its digest as it arrives.
A source that cannot be reached, or answers nonsense, is passed over with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import NormalizedName
from packaging.version import InvalidVersion, Version

from mirror_builder.buildcache.store import is_digest
from mirror_builder.errors import UpstreamError
from mirror_builder.resolve.transport import Transport

log = logging.getLogger(__name__)

_ENTRY_FILE = re.compile(r"[0-9a-f]{64}-(build-tag|post-release)-[0-9]+\.json")


@dataclass(frozen=True)
class RemoteEntry:
    """An entry as another cache serves it: not yet checked."""

    source: str
    build_key: str
    data: dict  # the entry file's content (record, digests, when, for which output)


class RemoteCache:
    def __init__(self, url: str, transport: Transport) -> None:
        self.url = url.rstrip("/") + "/"
        self.transport = transport
        # Set when the source cannot be reached: not asked again in this run.
        self.down = False

    def entries_for(self, name: NormalizedName, version: Version) -> list[RemoteEntry]:
        """The source's entries of this version, newest first; [] when it has none or cannot
        be read."""
        if self.down:
            return []
        listed = self._json(f"entries/{name}/index.json")
        found = []
        for item in (listed or {}).get("entries", []) if isinstance(listed, dict) else []:
            key = item.get("build_key") if isinstance(item, dict) else None
            if not is_digest(key) or not _same_version(item.get("version"), version) or \
                    not _ENTRY_FILE.fullmatch(str(item.get("file"))) or \
                    not str(item["file"]).startswith(key):
                continue
            data = self._json(f"entries/{name}/{item['file']}")
            if isinstance(data, dict) and isinstance(data.get("record"), dict):
                found.append(RemoteEntry(self.url, key, data))
        return found

    def fetch_blob(self, sha256: str, dest: Path) -> Path | None:
        """The blob, written to dest and checked against its digest; None if the source does
        not have it whole."""
        if not is_digest(sha256):
            return None
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
        try:
            digest = hashlib.sha256()
            with open(fd, "wb") as handle:
                for chunk in self.transport.stream(f"{self.url}blobs/sha256/{sha256[:2]}/{sha256}"):
                    digest.update(chunk)
                    handle.write(chunk)
            if digest.hexdigest() != sha256:
                log.warning("%s: blob %s... is not the bytes of its digest; not taken", self.url,
                            sha256[:12])
                return None
            Path(tmp).replace(dest)
            return dest
        except UpstreamError as exc:
            log.warning("%s: %s", self.url, exc)
            return None
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _json(self, path: str):
        try:
            answer = self.transport.get(self.url + path)
        except UpstreamError as exc:
            log.warning("build cache %s: %s; passed over for the rest of this run", self.url, exc)
            self.down = True
            return None
        if answer.status != 200:
            return None
        try:
            return json.loads(answer.body)
        except ValueError:
            log.warning("build cache %s: %s is not JSON; passed over", self.url, path)
            return None


def _same_version(text: object, version: Version) -> bool:
    try:
        return isinstance(text, str) and Version(text) == version
    except InvalidVersion:
        return False

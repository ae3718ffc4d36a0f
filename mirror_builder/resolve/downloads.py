"""Downloads of distribution files, checked against the index's sha256 and kept by hash."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

from mirror_builder.errors import UpstreamError
from mirror_builder.files import sha256_of
from mirror_builder.resolve.pages import DistributionFile
from mirror_builder.resolve.transport import Transport

log = logging.getLogger(__name__)


def download(transport: Transport, file: DistributionFile, dest_dir: Path) -> Path:
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
        _download_verified(transport, file, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _download_verified(transport: Transport, file: DistributionFile, tmp: Path) -> None:
    """Download into tmp until it has the index's sha256. A mismatch is downloaded once
    more (a proxy or the connection may have damaged it); a second one is an error."""
    first = _download_with_retries(transport, file, tmp)
    if file.sha256 is None or first == file.sha256:
        return
    log.warning("%s: sha256 mismatch: the index says %s, the download is %s; downloading "
                "it once more", file.filename, file.sha256, first)
    second = _download_with_retries(transport, file, tmp)
    if second == file.sha256:
        return
    both = "the same both times" if second == first else "a different file each time"
    raise UpstreamError(
        f"{file.filename}: sha256 mismatch: the index says {file.sha256}, the download is "
        f"{second} (downloaded twice from {file.url}, {both}); nothing was kept")


def _download_with_retries(transport: Transport, file: DistributionFile, tmp: Path) -> str:
    """Download the whole file into tmp, starting over after a transient failure; returns
    its sha256."""
    return transport.with_retries(f"cannot download {file.filename} from {file.url}",
                                  lambda: _download_once(transport, file.url, tmp))


def _download_once(transport: Transport, url: str, tmp: Path) -> str:
    digest = hashlib.sha256()
    with tmp.open("wb") as out:
        for chunk in transport.stream(url):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()

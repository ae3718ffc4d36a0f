"""The files an index is made of besides the distributions: its pages (PEP 503 HTML, PEP 691
JSON) and the METADATA beside each wheel (PEP 658), each made here and written whole.

Every file is written through a temporary file beside it and a rename, and only when what it
says changes: a new file costs far more than reading the old one, above all on a file system
that will not soon reuse the inodes it freed (ext4 without a journal looks at each recently
freed one before it takes another). The big pages (find-links.html, the project list) replace
the old one without waiting for its blocks to be freed: where the disk is mounted with discard
and has no journal, freeing waits for the disk (a millisecond for 2 MB), so the last reference
to the old file is dropped on a thread of its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import io
import itertools
import json
import os
import queue
import struct
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mirror_builder.errors import MirrorBuilderError

API_VERSION = "1.1"
_numbers = itertools.count()  # of the temporary files this process writes


def dumps(data: Any) -> str:
    """Compact JSON (indent= would fall back from json's C encoder to pure Python)."""
    return json.dumps(data, separators=(",", ":"))


def write_if_changed(path: Path | str, content: str | bytes, *,
                     release_old_later: bool = False) -> bool:
    """Write content to path atomically (see write_atomically), unless path already holds
    exactly that; True if it was written. Text is written as UTF-8."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        with open(path, "rb") as handle:
            if handle.read(len(data) + 1) == data:
                return False
    except OSError:
        pass
    write_atomically(path, data, release_old_later=release_old_later)
    return True


def write_atomically(path: Path | str, *parts: bytes | memoryview,
                     release_old_later: bool = False) -> None:
    """Write parts, one after the other, to path through a temporary file beside it and a
    rename: a reader sees the old file or the new one, never a part of either. With
    release_old_later, the old file's blocks are freed on another thread (see above)."""
    folder, name = os.path.split(path)
    # .NAME.PID-N.tmp is this writer's own (mkstemp costs more, for the same result); one left
    # by a killed writer that had the same process id makes it fall back to mkstemp.
    tmp = os.path.join(folder, f".{name}.{os.getpid()}-{next(_numbers)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
    except FileExistsError:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        try:
            for part in parts:
                view = memoryview(part)
                while view:
                    view = view[os.write(fd, view):]
            os.fchmod(fd, 0o644)  # whatever the umask: the index is read by others
        finally:
            os.close(fd)
        old = _open_old(path) if release_old_later else None
        os.replace(tmp, path)
        if old is not None:
            _release_later(old)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _open_old(path: Path | str) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None


_released: queue.SimpleQueue[int] = queue.SimpleQueue()
_releaser: threading.Thread | None = None
_releaser_lock = threading.Lock()


def _release_later(fd: int) -> None:
    """Close fd (a file just replaced: this is its last reference) on this process's releasing
    thread, started when first needed."""
    global _releaser
    with _releaser_lock:
        if _releaser is None:
            _releaser = threading.Thread(target=_release, args=(_released,),
                                         name="free replaced pages", daemon=True)
            _releaser.start()
    _released.put(fd)


def _release(fds: queue.SimpleQueue[int]) -> None:
    while True:
        os.close(fds.get())


def _forget_releaser() -> None:
    """In a forked child: no releasing thread yet (the parent's is not there), no fd to close
    (the parent's are its own), and no lock held by a thread that is not there either."""
    global _released, _releaser, _releaser_lock
    _released, _releaser, _releaser_lock = queue.SimpleQueue(), None, threading.Lock()


os.register_at_fork(after_in_child=_forget_releaser)


def core_metadata(wheel: Path | str, data: bytes | None = None) -> bytes:
    """The wheel's .dist-info/METADATA, byte for byte (from data, the wheel's bytes, if given)."""
    if data is not None and (found := _plain_metadata(data)) is not None:
        return found
    name = os.path.basename(wheel)
    try:
        with zipfile.ZipFile(io.BytesIO(data) if data is not None else wheel) as zf:
            names = [n for n in zf.namelist()
                     if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            if len(names) != 1:
                raise MirrorBuilderError(f"{name}: expected one .dist-info/METADATA, "
                                         f"found {len(names)}")
            return zf.read(names[0])
    except zipfile.BadZipFile as exc:
        raise MirrorBuilderError(f"{name}: not a valid wheel: {exc}") from None


# zipfile's own layouts: the end of the central directory, its entries, a local file header.
_END = struct.Struct("<4s4H2LH")
_ENTRY = struct.Struct("<4s4B4HL2L5H2L")
_LOCAL = struct.Struct("<4s2B4HL2L2H")


def _plain_metadata(data: bytes) -> bytes | None:
    """What zipfile would read as the one .dist-info/METADATA of the zip data, found by walking
    its directory without making an object of each entry (a wheel may have thousands); None
    for all but the plain case (no zip64, comment, leading bytes or encryption; stored or
    deflated; one such file; every name and extra field as zipfile would accept it; its data
    not running into the next entry, as newer zipfiles check; CRC and size right), which
    zipfile then reads, or rejects."""
    end = len(data) - _END.size
    if end < 0:
        return None
    sig, disk, cd_disk, on_disk, count, cd_size, position, comment = _END.unpack_from(data, end)
    if sig != b"PK\x05\x06" or comment or disk or cd_disk or on_disk != count or \
            position + cd_size != end or data[end - 20:end - 16] == b"PK\x06\x07":
        return None
    found, starts, directory = None, [], position
    for _ in range(count):
        if position + _ENTRY.size > end:
            return None
        (sig, _, _, version, _, flags, method, _, _, crc, size, full, name_length, extra_length,
         comment_length, _, _, _, offset) = _ENTRY.unpack_from(data, position)
        start = position + _ENTRY.size
        name = data[start:start + name_length]
        extra = data[start + name_length:start + name_length + extra_length]
        position = start + name_length + extra_length + comment_length
        starts.append(offset)
        if sig != b"PK\x01\x02" or version > 63 or (flags & 0x800 and not name.isascii()) or \
                0xFFFFFFFF in (size, full, offset) or not _extra_fields_whole(extra):
            return None
        listed = name.split(b"\0", 1)[0]  # zipfile's name for it
        if listed.endswith(b".dist-info/METADATA") and listed.count(b"/") == 1:
            if found is not None or not name.isascii():
                return None
            found = (flags, method, crc, size, full, offset, name)
    if position != end or found is None:
        return None
    limit = min([o for o in starts if o > found[5]] + [directory])
    return _read_member(data, limit, *found)


def _extra_fields_whole(extra: bytes) -> bool:
    while len(extra) >= 4:
        length = int.from_bytes(extra[2:4], "little")
        if length + 4 > len(extra):
            return False
        extra = extra[length + 4:]
    return True


def _read_member(data: bytes, limit: int, flags: int, method: int, crc: int, size: int,
                 full: int, offset: int, name: bytes) -> bytes | None:
    """The member whose local header is at offset, if it ends by limit (the next member's
    header, or the directory)."""
    # (flags: 0x1, 0x40 encrypted, 0x20 patched data; zipfile reads none of them)
    if flags & 0x61 or method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or \
            offset + _LOCAL.size > limit:
        return None
    sig, _, _, _, _, _, _, _, _, _, name_length, extra_length = _LOCAL.unpack_from(data, offset)
    start = offset + _LOCAL.size
    if sig != b"PK\x03\x04" or data[start:start + name_length] != name:
        return None
    start += name_length + extra_length
    if start + size > limit:
        return None
    raw = data[start:start + size]
    try:  # (never more than the size it claims, plus one byte to catch a lie)
        content = raw if method == zipfile.ZIP_STORED else \
            zlib.decompressobj(-15).decompress(raw, full + 1)
    except zlib.error:
        return None
    return content if len(content) == full and zlib.crc32(content) == crc else None


def requires_python(metadata: bytes) -> str | None:
    """The Requires-Python of a METADATA file's headers, if it has one."""
    for line in metadata.decode("utf-8", errors="replace").splitlines():
        if not line:
            break
        if line.lower().startswith("requires-python:"):
            return line.split(":", 1)[1].strip() or None
    return None


def file_entry(project: str, filename: str, sha256: str, size: int, upload_time: float | str,
               metadata: bytes | None) -> dict[str, Any]:
    """A file's entry in its project's JSON page (project normalized; upload_time a time stamp,
    or the entry's upload-time already); requires-python and provenance are the caller's."""
    entry: dict[str, Any] = {
        "filename": filename,
        "url": f"../../files/{project}/{filename}",
        "hashes": {"sha256": sha256},
        "requires-python": None,
        "size": size,
        "upload-time": upload_time if isinstance(upload_time, str) else
        datetime.fromtimestamp(upload_time, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "yanked": False,
    }
    if metadata is not None:
        # PEP 714 renamed the key; both are given for older clients.
        entry["core-metadata"] = {"sha256": hashlib.sha256(metadata).hexdigest()}
        entry["dist-info-metadata"] = entry["core-metadata"]
    return entry


def project_links(files: list[Mapping[str, Any]]) -> list[str]:
    """The anchors of a project's HTML page, one a file, saying what its JSON page says."""
    links = []
    for f in files:
        attrs = ""
        if f.get("requires-python"):
            attrs += f' data-requires-python="{html.escape(f["requires-python"])}"'
        if f.get("yanked"):
            reason = f["yanked"] if isinstance(f["yanked"], str) else ""
            attrs += f' data-yanked="{html.escape(reason)}"'
        if f.get("core-metadata"):
            value = f'sha256={f["core-metadata"]["sha256"]}'
            attrs += f' data-core-metadata="{value}" data-dist-info-metadata="{value}"'
        if f.get("provenance"):
            attrs += f' data-provenance="{html.escape(f["provenance"])}"'
        href = f'{f["url"]}#sha256={f["hashes"]["sha256"]}'
        links.append(f'    <a href="{html.escape(href)}"{attrs}>{html.escape(f["filename"])}</a><br/>')
    return links


def html_page(title: str, links: list[str]) -> str:
    """A PEP 503 page: title, then the links."""
    return "\n".join([
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
        f"    <title>{html.escape(title)}</title>",
        "  </head>",
        "  <body>",
        f"    <h1>{html.escape(title)}</h1>",
        *links,
        "  </body>",
        "</html>",
        "",
    ])

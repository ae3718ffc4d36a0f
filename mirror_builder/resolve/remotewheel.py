"""Read a remote wheel's METADATA with HTTP range requests: a few blocks, not the whole wheel.

For indexes that serve neither PEP 658 metadata files nor PyPI's JSON API. The wheel is opened
as a lazily fetched read-only file (_RemoteFile) and handed to the standard library's zipfile.
The first request asks for the wheel's last block (a suffix range: its Content-Range gives the
file's size), which holds the end of the central directory and, in most wheels, all of it and
METADATA too; zipfile's further reads fetch the aligned blocks they touch, each run of missing
blocks in one request. A wheel with a large central directory (torch) costs about three.

None, with a warning, when the server ignores ranges (it answers 200: the caller downloads the
wheel instead), when the file is no wheel (not a zip, not one top-level .dist-info folder, no
METADATA) and when reading it would take more than max_bytes (a hostile central directory can
claim gigabytes). Only an index that cannot be reached is an UpstreamError, as in transport.
"""

from __future__ import annotations

import io
import logging
import struct
import urllib.parse
import zipfile
import zlib
from dataclasses import dataclass

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from mirror_builder.resolve.metadata import looks_like_core_metadata
from mirror_builder.resolve.transport import BadRangeAnswer, RangeAnswer, Transport

log = logging.getLogger(__name__)

BLOCK = 64 * 1024
MAX_BYTES = 8 * 1024 * 1024
# METADATA is a few KB; a long description makes it a few hundred.
MAX_METADATA = 4 * 1024 * 1024
# Local file headers may carry other extra fields than the central directory's copy.
LOCAL_HEADER_SLACK = 1024
# How many growing windows (x4 each) of the central directory's tail are searched for
# METADATA before the whole directory is read.
TAIL_WINDOWS = 3
# What zipfile raises for archives it cannot read (RuntimeError: encrypted members;
# ValueError includes undecodable names; zlib.error: corrupt deflated data).
UNREADABLE = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError,
              RuntimeError, ValueError, zlib.error, struct.error)


@dataclass(frozen=True)
class RemoteMetadata:
    """A wheel's METADATA read with range requests, and what reading it cost."""

    text: str
    member: str  # "<name>-<version>.dist-info/METADATA"
    wheel_size: int
    bytes_fetched: int  # body bytes of the range answers
    requests: int  # range requests made (a transport's retries of one not counted)


class _GiveUp(Exception):
    """This wheel's metadata cannot be read with ranges; the message says why."""


class _RemoteFile(io.RawIOBase):
    """A read-only, seekable remote file that fetches aligned blocks on demand and keeps them.

    Bytes from tail_start on came with the first (suffix) answer; below it, block k covers
    [k * block, min((k + 1) * block, tail_start)). Fetching past max_bytes in all is refused
    before the request is made."""

    def __init__(self, transport: Transport, url: str, first: RangeAnswer, block: int,
                 max_bytes: int) -> None:
        super().__init__()
        assert first.size is not None
        self.name = url
        self.size = first.size
        self.bytes_fetched = len(first.data)
        self.requests = 1
        self._transport = transport
        self._block = block
        self._max_bytes = max_bytes
        self._tail_start = first.start
        self._tail = first.data
        self._blocks: dict[int, bytes] = {}
        self._position = 0

    @property
    def block(self) -> int:
        return self._block

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @property
    def first_answer_start(self) -> int:
        """Where the bytes of the first (suffix) answer start."""
        return self._tail_start

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            # zipfile probes for the end record this way and takes OSError for "too short".
            raise OSError(f"seek to {base + offset}, before the start of {self.name}")
        self._position = base + offset
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self.size, self._position + size)
        if end <= self._position:
            return b""
        self.prefetch(self._position, end)
        data = self._slice(self._position, end)
        self._position = end
        return data

    def readinto(self, buffer) -> int:  # noqa: ANN001 (any writable buffer)
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def prefetch(self, start: int, end: int) -> None:
        """Fetch the blocks of bytes start to end (excluded) not fetched yet, each run of
        missing blocks in one request."""
        end = min(end, self._tail_start, self.size)
        if start >= end:
            return
        if end - start > self._max_bytes:  # more than could ever be kept: no need to count
            raise _GiveUp(f"reading it would take more than {self._max_bytes} bytes "
                          f"({end - start} asked for at once)")
        missing = [k for k in range(start // self._block, (end - 1) // self._block + 1)
                   if k not in self._blocks]
        runs: list[tuple[int, int]] = []
        for k in missing:
            if runs and runs[-1][1] == k * self._block:
                runs[-1] = (runs[-1][0], self._block_end(k))
            else:
                runs.append((k * self._block, self._block_end(k)))
        wanted = sum(b - a for a, b in runs)
        if self.bytes_fetched + wanted > self._max_bytes:
            raise _GiveUp(f"reading it would take more than {self._max_bytes} bytes "
                          f"({self.bytes_fetched} fetched, {wanted} more asked for)")
        for a, b in runs:
            self._fetch(a, b)

    def _block_end(self, k: int) -> int:
        return min((k + 1) * self._block, self._tail_start)

    def _fetch(self, start: int, end: int) -> None:
        answer = self._transport.get_range(self.name, start, end - 1)
        self.requests += 1
        if answer.status != 206:
            raise _GiveUp(f"the index answered HTTP {answer.status} to a range request after "
                          f"answering 206")
        if answer.size != self.size or len(answer.data) != end - start:
            raise _GiveUp(f"the file changed size while being read ({self.size} bytes, then "
                          f"{answer.size})")
        self.bytes_fetched += len(answer.data)
        for k in range(start // self._block, (end - 1) // self._block + 1):
            self._blocks[k] = answer.data[k * self._block - start:self._block_end(k) - start]

    def _slice(self, start: int, end: int) -> bytes:
        out = bytearray()
        position = start
        while position < end:
            if position >= self._tail_start:
                out += self._tail[position - self._tail_start:end - self._tail_start]
                break
            k, offset = divmod(position, self._block)
            piece = self._blocks[k][offset:offset + end - position]
            out += piece
            position += len(piece)
        return bytes(out)


def read_wheel_metadata(transport: Transport, url: str, *, block: int = BLOCK,
                        max_bytes: int = MAX_BYTES) -> RemoteMetadata | None:
    """The METADATA of the wheel at url, read with range requests of block-sized pieces and
    at most max_bytes in all; None (with a warning) when that cannot be done (module doc)."""
    url = url.split("#", 1)[0]
    try:
        first = transport.get_range(url, None, block)
        if first.status != 206:
            why = ("the index ignores byte ranges (it answered 200)" if first.status == 200
                   else f"the index answered HTTP {first.status} to a range request")
            raise _GiveUp(why)
        if first.size is None:
            raise _GiveUp("the index did not say the file's size (Content-Range: .../*)")
        remote = _RemoteFile(transport, url, first, block, max_bytes)
        member, text = _metadata_of(remote, url)
    except (_GiveUp, BadRangeAnswer) as exc:
        log.warning("%s: metadata not read with byte ranges: %s", url, exc)
        return None
    except UNREADABLE as exc:
        log.warning("%s: not a readable wheel (%s: %s)", url, type(exc).__name__, exc)
        return None
    return RemoteMetadata(text=text, member=member, wheel_size=remote.size,
                          bytes_fetched=remote.bytes_fetched, requests=remote.requests)


def _metadata_of(remote: _RemoteFile, url: str) -> tuple[str, str]:
    """The METADATA member's name and text: from the central directory's tail when it is
    there (wheels write .dist-info last), else read the whole directory with zipfile."""
    found = _metadata_from_ends(remote, url)
    if found is not None:
        return found
    return _metadata_from_directory(remote, url)


def _metadata_from_directory(remote: _RemoteFile, url: str) -> tuple[str, str]:
    """The METADATA member's name and text: the one in the single top-level .dist-info."""
    with zipfile.ZipFile(remote) as archive:
        folders = sorted({name.split("/", 1)[0] for name in archive.namelist()
                          if name.split("/", 1)[0].endswith(".dist-info") and "/" in name})
        if len(folders) != 1:
            raise _GiveUp(f"a wheel has one top-level .dist-info folder; this file has "
                          f"{len(folders)}{': ' + ', '.join(folders) if folders else ''}")
        _check_project(folders[0], url)
        member = f"{folders[0]}/METADATA"
        try:
            info = archive.getinfo(member)
        except KeyError:
            raise _GiveUp(f"it has no {member}") from None
        if info.file_size > MAX_METADATA:
            raise _GiveUp(f"its {member} claims {info.file_size} bytes, over {MAX_METADATA}")
        # One request for the member, instead of one per block zipfile's small reads cross.
        remote.prefetch(info.header_offset, info.header_offset + zipfile.sizeFileHeader
                        + len(info.orig_filename.encode()) + len(info.extra)
                        + LOCAL_HEADER_SLACK + info.compress_size)
        with archive.open(info) as handle:
            data = handle.read(MAX_METADATA + 1)
    text = data.decode("utf-8", errors="replace")
    if not looks_like_core_metadata(text):
        raise _GiveUp(f"its {member} is not core metadata (no Metadata-Version header)")
    return member, text


def _metadata_from_ends(remote: _RemoteFile, url: str) -> tuple[str, str] | None:
    """METADATA found at either end of the central directory, without reading the rest.

    Wheels write .dist-info last, so its entries end the directory; some repacked ones (torch
    before 2.6) put it first. torch's directory is over a megabyte; a block at each end holds
    them. The head is parsed forward from the directory's start; the tail back from its end
    in growing windows, an entry boundary being a signature from which whole entries chain up
    to exactly the directory's end. None (the caller reads the whole directory) for ZIP64
    archives, or when METADATA is not near either end."""
    end = _end_record(remote)
    if end is None:
        return None
    cd_start, cd_end = end
    if cd_end - cd_start > remote.max_bytes:
        raise _GiveUp(f"reading it would take more than {remote.max_bytes} bytes (its central "
                      f"directory claims {cd_end - cd_start})")
    window = max(cd_end - remote.first_answer_start, 1024)  # first, what is already here
    for attempt in range(TAIL_WINDOWS + 1):
        if attempt == 1:  # the head: one block
            head_end = min(cd_end, cd_start + remote.block)
            remote.seek(cd_start)
            entries = _forward_entries(remote.read(head_end - cd_start))
            start = cd_start if head_end == cd_end else None
        else:
            start = max(cd_start, cd_end - window)
            remote.seek(start)
            data = remote.read(cd_end - start)
            entries = _chained_entries(data, start == cd_start) or []
            window *= 4
        found = _metadata_entry(entries, url)
        if found is not None:
            return found.name, _read_entry(remote, found)
        if start == cd_start:
            return None  # the whole directory, and no METADATA: zipfile says it properly
    return None


def _metadata_entry(entries: list[_Entry], url: str) -> _Entry | None:
    """The .dist-info/METADATA among entries; a second .dist-info folder among them is refused."""
    folders = {e.name.split("/", 1)[0] for e in entries
               if e.name.split("/", 1)[0].endswith(".dist-info") and "/" in e.name}
    if len(folders) > 1:
        raise _GiveUp(f"a wheel has one top-level .dist-info folder; this file has "
                      f"{len(folders)}: {', '.join(sorted(folders))}")
    for entry in entries:
        folder, _, leaf = entry.name.partition("/")
        if leaf == "METADATA" and folder.endswith(".dist-info"):
            _check_project(folder, url)
            return entry
    return None


@dataclass(frozen=True)
class _Entry:
    """What one central directory entry says of its member."""

    name: str
    method: int
    crc: int
    compressed: int
    size: int
    offset: int


_CD_ENTRY = struct.Struct("<IHHHHHHIIIHHHHHII")
_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
_END = struct.Struct("<IHHHHIIH")
_ZIP64_LOCATOR = b"PK\x06\x07"


def _end_record(remote: _RemoteFile) -> tuple[int, int] | None:
    """The central directory's start and end, from the end record in the file's last block;
    None for ZIP64 archives and multi-disk ones (zipfile reads those)."""
    tail_start = remote.first_answer_start  # the end record is almost always in it
    remote.seek(tail_start)
    tail = remote.read(remote.size - tail_start)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _END.size:
        return None
    _, disk, cd_disk, _, entries, cd_size, cd_offset, _ = _END.unpack_from(tail, at)
    if disk or cd_disk or 0xFFFFFFFF in (cd_size, cd_offset) or entries == 0xFFFF or \
            (at >= 20 and tail[at - 20:at - 16] == _ZIP64_LOCATOR):
        return None
    if cd_offset + cd_size != tail_start + at:
        return None  # data before the archive (a self-extractor): leave it to zipfile
    return cd_offset, cd_offset + cd_size


def _chained_entries(data: bytes, from_start: bool) -> list[_Entry] | None:
    """The entries in data, which ends where the central directory ends: from its first
    byte when from_start, else from the earliest signature whose entries chain to the end."""
    starts = [0] if from_start else _signatures(data)
    for first in starts:
        entries = _parse_chain(data, first)
        if entries is not None:
            return entries
    return None


def _forward_entries(data: bytes) -> list[_Entry]:
    """The whole entries at the start of data, which starts where the directory starts."""
    entries: list[_Entry] = []
    position = 0
    while True:
        parsed = _parse_entry(data, position)
        if parsed is None:
            return entries
        entry, position = parsed
        entries.append(entry)


def _signatures(data: bytes) -> list[int]:
    found, at = [], data.find(b"PK\x01\x02")
    while at >= 0:
        found.append(at)
        at = data.find(b"PK\x01\x02", at + 1)
    return found


def _parse_chain(data: bytes, position: int) -> list[_Entry] | None:
    """The entries from position on, if they fill data exactly to its end; else None."""
    entries = []
    while position < len(data):
        parsed = _parse_entry(data, position)
        if parsed is None:
            return None
        entry, position = parsed
        entries.append(entry)
    return entries


def _parse_entry(data: bytes, position: int) -> tuple[_Entry, int] | None:
    """The entry at position and where the next one starts; None when data holds no whole
    entry there (or a ZIP64 one, which zipfile reads)."""
    if len(data) - position < _CD_ENTRY.size:
        return None
    (signature, _, _, flags, method, _, _, crc, compressed, size, name_length, extra_length,
     comment_length, _, _, _, offset) = _CD_ENTRY.unpack_from(data, position)
    if signature != 0x02014B50:
        return None
    name_start = position + _CD_ENTRY.size
    following = name_start + name_length + extra_length + comment_length
    if following > len(data) or 0xFFFFFFFF in (compressed, size, offset):
        return None
    raw = data[name_start:name_start + name_length]
    name = raw.decode("utf-8" if flags & 0x800 else "cp437", errors="replace")
    return _Entry(name, method, crc, compressed, size, offset), following


def _read_entry(remote: _RemoteFile, entry: _Entry) -> str:
    """The member's text, checked against the central directory's size and CRC."""
    if entry.size > MAX_METADATA or entry.compressed > MAX_METADATA:
        raise _GiveUp(f"its {entry.name} claims {entry.size} bytes, over {MAX_METADATA}")
    remote.prefetch(entry.offset, entry.offset + _LOCAL_HEADER.size + len(entry.name.encode())
                    + LOCAL_HEADER_SLACK + entry.compressed)
    remote.seek(entry.offset)
    header = remote.read(_LOCAL_HEADER.size)
    if len(header) < _LOCAL_HEADER.size:
        raise _GiveUp(f"its {entry.name} lies past the end of the file")
    signature, *_, name_length, extra_length = _LOCAL_HEADER.unpack(header)
    if signature != 0x04034B50:
        raise _GiveUp(f"its {entry.name} has no local header where the directory says")
    remote.seek(entry.offset + _LOCAL_HEADER.size + name_length + extra_length)
    raw = remote.read(entry.compressed)
    if entry.method == zipfile.ZIP_STORED:
        data = raw
    elif entry.method == zipfile.ZIP_DEFLATED:
        data = zlib.decompressobj(-15).decompress(raw, MAX_METADATA + 1)
    else:
        raise _GiveUp(f"its {entry.name} is compressed with method {entry.method}")
    if len(data) != entry.size or zlib.crc32(data) != entry.crc:
        raise _GiveUp(f"its {entry.name} does not match its size and CRC in the directory")
    text = data.decode("utf-8", errors="replace")
    if not looks_like_core_metadata(text):
        raise _GiveUp(f"its {entry.name} is not core metadata (no Metadata-Version header)")
    return text


def _check_project(folder: str, url: str) -> None:
    """The .dist-info folder must be the project's that the wheel's file name names."""
    filename = urllib.parse.unquote(url.rstrip("/").rsplit("/", 1)[-1])
    try:
        project = parse_wheel_filename(filename)[0]
    except InvalidWheelFilename:
        return  # not named as a wheel: nothing to compare with
    if canonicalize_name(folder.removesuffix(".dist-info").rsplit("-", 1)[0]) != project:
        raise _GiveUp(f"its {folder} is not of project {project}")

"""Small files of the index (its pages, the wheels' .metadata) answered from memory.

aiohttp's FileResponse takes two trips to a thread for every file (one to stat and open it, one
to close it) and sends it with sendfile: right for a wheel, but for a page of a few kilobytes
that is most of what a request costs, and with many clients at once the event loop is the
bottleneck (fifty clients asking for pages got answers in 50 to 75 ms at the 99th percentile).
So the plain request for a small file (GET or HEAD, with no Range and no conditional header)
gets its bytes from here, kept with the file's identity (device, inode, modification time,
size) as stat tells it on every request: a page replaced on disk (every write is a rename) is
read again at once. A file of a few pages is read where it is asked for, as serve already
checks each path's folders there (server.contained_file); a bigger one on a thread. Everything
else (304s, ranges, If-Range) is left to FileResponse, which the caller uses whenever this
answers None.

The answer is the one FileResponse gives: the same status, body and headers (ETag from the
modification time and size, Last-Modified rounded up to the second, Accept-Ranges).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

# Files up to this size are kept; the memory kept is bounded (the oldest go first).
MAX_FILE_BYTES = 1 << 20
MAX_TOTAL_BYTES = 64 << 20
# Up to this size a file is read on the event loop (a thread costs more than the read).
READ_IN_LOOP_BYTES = 64 << 10
# A request with any of these is answered by FileResponse.
_LEFT_TO_FILERESPONSE = ("Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since",
                         "If-Unmodified-Since")


@dataclass(frozen=True)
class _Kept:
    identity: tuple[int, int, int, int]
    body: bytes
    headers: Mapping[str, str]


class SmallFiles:
    """The small files one app has served lately, by path."""

    def __init__(self) -> None:
        self._kept: dict[str, _Kept] = {}
        self._total = 0

    async def response(self, request: web.Request, path: Path, content_type: str,
                       charset: str | None = None,
                       headers: Mapping[str, str] | None = None) -> web.Response | None:
        """The response to a plain request for path (already confined to the root), or None
        when FileResponse must answer it: a request it does not serve, a file that is not
        there, is not regular or is too big."""
        if request.method not in ("GET", "HEAD") or \
                any(name in request.headers for name in _LEFT_TO_FILERESPONSE):
            return None
        key = str(path)
        try:
            st = os.stat(key)
        except OSError:
            return None
        kept = self._kept.get(key)
        if kept is None or kept.identity != _identity(st):
            if st.st_size > MAX_FILE_BYTES:
                return None
            kept = _read(key) if st.st_size <= READ_IN_LOOP_BYTES else \
                await asyncio.get_running_loop().run_in_executor(None, _read, key)
            if kept is None:
                return None
            self._keep(key, kept)
        # The Content-Type header as aiohttp's setters would write it.
        return web.Response(body=kept.body, headers={
            **kept.headers, "Content-Type": f"{content_type}; charset={charset}" if charset
            else content_type, **(headers or {})})

    def _keep(self, key: str, kept: _Kept) -> None:
        old = self._kept.pop(key, None)
        self._total -= len(old.body) if old else 0
        while self._kept and self._total + len(kept.body) > MAX_TOTAL_BYTES:
            self._total -= len(self._kept.pop(next(iter(self._kept))).body)
        self._kept[key] = kept
        self._total += len(kept.body)


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def _read(path: str) -> _Kept | None:
    """The file's bytes and headers, from one open file (so that they agree), if it is a
    regular file of at most MAX_FILE_BYTES."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not (st.st_mode & 0o170000 == 0o100000 and st.st_size <= MAX_FILE_BYTES):
            return None
        chunks, left = [], st.st_size
        while left > 0 and (chunk := os.read(fd, left)):
            chunks.append(chunk)
            left -= len(chunk)
        body = b"".join(chunks)
        if len(body) != st.st_size or os.read(fd, 1):
            return None  # written to in place while read: not a file of the index
    except OSError:
        return None
    finally:
        os.close(fd)
    return _Kept(_identity(st), body, {
        # As FileResponse says them.
        "ETag": f'"{st.st_mtime_ns:x}-{st.st_size:x}"',
        "Last-Modified": time.strftime("%a, %d %b %Y %H:%M:%S GMT",
                                       time.gmtime(math.ceil(st.st_mtime))),
        "Accept-Ranges": "bytes",
    })

"""The index server for tests: make_app served by aiohttp on 127.0.0.1 (a free port) in a thread,
and requests sent byte for byte as written (no client normalizes the path)."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from mirror_builder.serve.accesslog import AccessLogger, access_logger
from mirror_builder.serve.httpauth import TokenAuthenticator
from mirror_builder.index.wheelindex import WheelIndex
from mirror_builder.serve.listener import bind
from mirror_builder.serve.server import make_app

WHEEL = "demo-1.0-py3-none-any.whl"


def demo_index(folder: Path) -> Path:
    """An output directory with one wheel (demo 1.0) in the index and one sdist in sources/."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / WHEEL
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("demo/__init__.py", "x = 1\n" * 200)
        zf.writestr("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
        zf.writestr("demo-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\n")
        zf.writestr("demo-1.0.dist-info/RECORD", "")
    output = folder / "out"
    index = WheelIndex(output)
    index.add(wheel, ">=3.8")
    sdist = folder / "demo-1.0.tar.gz"
    sdist.write_bytes(b"\x1f\x8b the bytes of an sdist")
    index.sources.add(sdist)
    return output


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def parse_reply(data: bytes) -> Reply:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return Reply(int(lines[0].split()[1]), headers, body)


class LiveServer:
    """make_app(root, tokens, variants) on 127.0.0.1 in a thread, with the real access logger."""

    def __init__(self, root: Path, tokens_file: Path | None = None, access_log: Path | None = None,
                 tls: ssl.SSLContext | None = None, variants: tuple[str, ...] = ()) -> None:
        self.tokens = TokenAuthenticator.open(tokens_file) if tokens_file else None
        (self._sock,) = bind("127.0.0.1", 0)
        self.port = self._sock.getsockname()[1]
        self._tls = tls
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(make_app(root, self.tokens, variants),
                                     access_log_class=AccessLogger,
                                     access_log=access_logger(access_log))
        self._loop.run_until_complete(self._start())
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    async def _start(self) -> None:
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock, ssl_context=self._tls).start()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def send(self, data: bytes) -> Reply:
        """One raw request (bytes as given, connection closed after it)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(data)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return parse_reply(b"".join(chunks))

    def request(self, method: str, target: str, headers: dict[str, str | bytes] | None = None
                ) -> Reply:
        """target is sent exactly as written (percent-escapes, dots and all)."""
        headers = {"Host": "127.0.0.1", "Connection": "close", **(headers or {})}
        lines = [f"{method} {target} HTTP/1.1".encode("latin-1")]
        for key, value in headers.items():
            lines.append(key.encode() + b": " + (value if isinstance(value, bytes)
                                                 else value.encode("latin-1")))
        return self.send(b"\r\n".join(lines) + b"\r\n\r\n")

    def get(self, target: str, **headers: str | bytes) -> Reply:
        return self.request("GET", target, {k.replace("_", "-"): v for k, v in headers.items()})


def server_errors(caplog) -> list[str]:
    """What the server logged as an error (aiohttp logs each unhandled exception, a 500)."""
    return [record.getMessage() for record in caplog.records
            if record.name.startswith(("aiohttp", "mirror_builder")) and record.levelno >= logging.ERROR]

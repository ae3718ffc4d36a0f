"""Files moving between the coordinator and its workers: the build cache's blobs
(CACHE_DIR/builds/blobs/sha256/..) over HTTPS with mutual TLS, addressed by sha256.

    GET /blobs/sha256/<hex>    the file, if the store has it (404 if not)
    PUT /blobs/sha256/<hex>    store a file under its digest: checked as it arrives, kept only
                               when its bytes hash to <hex>, at most max_bytes

Workers share no folder with the coordinator: each fetches what it lacks, and sends its results
back by digest, so messages through the scheduler stay small. Nothing else is served; a peer
without a certificate of the cluster's CA is refused at the handshake.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import ssl
import tempfile
import threading
from pathlib import Path

import requests
from aiohttp import web

from mirror_builder.buildcache.store import BuildCache, is_digest
from mirror_builder.errors import MirrorBuilderError
from mirror_builder.files import sha256_of

log = logging.getLogger(__name__)

MAX_BYTES = 4 * 1024 ** 3  # a torch wheel is under 1 GB
CHUNK = 1 << 20


class ArtifactError(MirrorBuilderError):
    """A file could not be moved through the artifact store."""


def artifact_app(cache: BuildCache, max_bytes: int = MAX_BYTES) -> web.Application:
    app = web.Application()
    handlers = _Handlers(cache, max_bytes)
    app.router.add_get("/blobs/sha256/{digest}", handlers.get)
    app.router.add_put("/blobs/sha256/{digest}", handlers.put)
    return app


class _Handlers:
    def __init__(self, cache: BuildCache, max_bytes: int) -> None:
        self.cache, self.max_bytes = cache, max_bytes

    async def get(self, request: web.Request) -> web.StreamResponse:
        return await _get(self.cache, request)

    async def put(self, request: web.Request) -> web.Response:
        return await _put(self.cache, request, self.max_bytes)


async def _get(cache: BuildCache, request: web.Request) -> web.StreamResponse:
    digest = request.match_info["digest"]
    if not is_digest(digest):
        raise web.HTTPBadRequest(text="not a sha256 digest\n")
    path = cache.blob(digest)
    if not path.is_file():
        raise web.HTTPNotFound(text="no such blob\n")
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})


async def _put(cache: BuildCache, request: web.Request, max_bytes: int) -> web.Response:
    digest = request.match_info["digest"]
    if not is_digest(digest):
        raise web.HTTPBadRequest(text="not a sha256 digest\n")
    if request.content_length is not None and request.content_length > max_bytes:
        raise web.HTTPRequestEntityTooLarge(max_size=max_bytes,
                                            actual_size=request.content_length)
    dest = cache.blob(digest)
    if dest.is_file() and await asyncio.to_thread(sha256_of, dest) == digest:
        return web.Response(status=200, text="have it\n")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{digest[:12]}.", suffix=".part")
    try:
        hasher, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as handle:
            async for chunk in request.content.iter_chunked(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise web.HTTPRequestEntityTooLarge(max_size=max_bytes, actual_size=size)
                hasher.update(chunk)
                handle.write(chunk)
        if hasher.hexdigest() != digest:
            raise web.HTTPBadRequest(text="the body's sha256 is not the digest it was sent to\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return web.Response(status=201, text="stored\n")


class ArtifactServer:
    """The store served on host:port (0: any free port) with context, on a thread of its own,
    for as long as the with-block lasts."""

    def __init__(self, cache: BuildCache, context: ssl.SSLContext, host: str = "127.0.0.1",
                 port: int = 0, max_bytes: int = MAX_BYTES) -> None:
        self.cache, self.context, self.host, self.port = cache, context, host, port
        self.max_bytes = max_bytes
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}/"

    def __enter__(self) -> ArtifactServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    def __exit__(self, *exc_info) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    async def _start(self) -> None:
        self._runner = web.AppRunner(artifact_app(self.cache, self.max_bytes), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.context)
        await site.start()
        self.port = self._runner.addresses[0][1]  # the port given, or the one chosen


class ArtifactClient:
    """A member's side: fetch a blob by digest (checked on arrival), push a file."""

    def __init__(self, url: str, ca: str, certificate: tuple[str, str],
                 timeout: float = 60) -> None:
        self.url = url.rstrip("/") + "/"
        self.session = requests.Session()
        # REQUESTS_CA_BUNDLE and proxies from the environment would replace verify= and route
        # a cluster-internal connection elsewhere.
        self.session.trust_env = False
        self.session.verify, self.session.cert = ca, certificate
        self.timeout = timeout

    def fetch(self, digest: str, dest: Path) -> Path:
        """The blob, written to dest; an ArtifactError if it is missing or not its digest."""
        if not is_digest(digest):
            raise ArtifactError(f"{digest!r} is not a sha256 digest")
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            hasher = hashlib.sha256()
            with os.fdopen(fd, "wb") as handle, self._request("GET", digest, stream=True) as answer:
                for chunk in answer.iter_content(CHUNK):
                    hasher.update(chunk)
                    handle.write(chunk)
            if hasher.hexdigest() != digest:
                raise ArtifactError(f"the artifact store sent other bytes for {digest[:12]}...")
            os.chmod(tmp, 0o644)  # build containers read it as their own unprivileged user
            os.replace(tmp, dest)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return dest

    def push(self, path: Path) -> str:
        """Store path's bytes; its digest."""
        digest = sha256_of(path)
        with path.open("rb") as body:
            self._request("PUT", digest, data=body).close()
        return digest

    def _request(self, method: str, digest: str, **kwargs) -> requests.Response:
        url = f"{self.url}blobs/sha256/{digest}"
        try:
            answer = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise ArtifactError(f"artifact store {self.url}: {exc}") from None
        if answer.status_code not in (200, 201):
            answer.close()
            raise ArtifactError(f"artifact store {self.url}: {method} {digest[:12]}... "
                                f"answered HTTP {answer.status_code}")
        return answer

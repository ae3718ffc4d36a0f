"""HTTP Basic authentication for serve: a request needs a read token from the tokens file, or
gets the same 401 wherever it points, so the answer never tells whether a project exists."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import os
from pathlib import Path

from aiohttp import web

from mirror_builder.serve.accesslog import USER_KEY
from mirror_builder.errors import UsageError
from mirror_builder.serve.tokens import TokensFileError, read_tokens, verify

REALM = "mirror-builder"
# Verified headers remembered; more distinct valid headers than this (there is one per token)
# means someone is varying them, and the memory starts again.
_MAX_ADMITTED = 1024

log = logging.getLogger(__name__)


def parse_basic(header: str) -> tuple[str, bytes] | None:
    """(name, token) from an `Authorization: Basic base64(name:token)` header, or None when it
    is anything else: another scheme, not base64, not UTF-8, no colon."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip().encode("ascii"), validate=True)
        name, colon, secret = decoded.decode("utf-8").partition(":")
    except (UnicodeError, binascii.Error, ValueError):
        return None
    return (name, secret.encode("utf-8")) if colon else None


class TokenAuthenticator:
    """Checks Authorization headers against a tokens file, for one app.

    A verified header is remembered by its sha256, so a client's many requests pay for bcrypt
    once. The file is read again whenever it changes (inode, mtime or size), and what was
    remembered is then forgotten: a revoked token stops working without a restart. A file that
    has become unreadable or malformed admits nobody until it is fixed.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._version: tuple[int, int, int] | None = None
        self._hashes: dict[str, bytes] = {}
        self._admitted: dict[bytes, str] = {}

    @classmethod
    def open(cls, path: Path) -> TokenAuthenticator:
        """An authenticator for path; the file must be there, well-formed, with a token."""
        authenticator = cls(path)
        authenticator._hashes = read_tokens(path).hashes()
        authenticator._version = _version_of(path)
        if not authenticator._hashes:
            raise UsageError(f"{path} holds no tokens, so nobody could use the index; add one "
                             f"with `mirror-builder tokens add NAME --file {path}`")
        return authenticator

    @property
    def token_count(self) -> int:
        return len(self._hashes)

    def _current(self) -> dict[str, bytes]:
        version = _version_of(self.path)
        if version != self._version:
            self._version = version
            self._admitted.clear()
            try:
                self._hashes = read_tokens(self.path).hashes()
            except TokensFileError as exc:
                log.error("%s; no request is admitted until it is fixed", exc)
                self._hashes = {}
        return self._hashes

    async def user(self, header: str | None) -> str | None:
        """The name of the token the Authorization header carries, or None if it carries none
        that the tokens file holds now."""
        hashes = self._current()
        if header is None or not hashes:
            return None
        key = hashlib.sha256(header.encode("utf-8", "surrogateescape")).digest()
        if (name := self._admitted.get(key)) is not None:
            return name
        credentials = parse_basic(header)
        if credentials is None:
            return None
        name, secret = credentials
        # bcrypt takes milliseconds: in a thread, so other requests are not held up.
        admitted = await asyncio.get_running_loop().run_in_executor(
            None, verify, hashes, name, secret)
        if not admitted:
            return None
        # Remember it only if the file did not change while checking (a revoke in between).
        if hashes is self._hashes:
            if len(self._admitted) >= _MAX_ADMITTED:
                self._admitted.clear()
            self._admitted[key] = name
        return name


def _version_of(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def unauthorized() -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(
        text="401: this index needs a read token (HTTP Basic: user = token name, "
             "password = token)\n",
        headers={"WWW-Authenticate": f'Basic realm="{REALM}"'})


def require_token(authenticator: TokenAuthenticator):
    """Middleware: every request, to any path, needs a valid token first."""

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        name = await authenticator.user(request.headers.get("Authorization"))
        if name is None:
            raise unauthorized()
        request[USER_KEY] = name
        return await handler(request)

    return middleware

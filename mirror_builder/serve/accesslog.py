"""serve's request log: one line a request, bytes escaped so any request can be logged."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, RequestKey, StreamResponse

# Set by the authentication middleware: the name of the token a request was admitted with.
USER_KEY = RequestKey("mirror_builder.user", str)


def escape(value: str) -> str:
    """A header or request line as printable ASCII: other bytes, '"' and '\\' as \\xNN (as nginx
    does), so a line never breaks, never fails to encode and never fakes a field. aiohttp keeps
    undecodable bytes as surrogates; they come back out as the bytes the client sent."""
    raw = value.encode("utf-8", "surrogateescape")
    return "".join(chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\x{b:02x}"
                   for b in raw)


def body_size(request: BaseRequest, response: StreamResponse) -> int | None:
    """Bytes of the response body sent (headers not counted); None when unknown."""
    if request.method == "HEAD" or response.status < 200 or response.status in (204, 304):
        return 0
    # A response that knows how much of its body went out says so in body_sent (aiohttp's writer
    # does not count a file sent with sendfile, and its %b counts the headers too).
    if hasattr(response, "body_sent"):
        return response.body_sent
    return response.content_length


class AccessLogger(AbstractAccessLogger):
    """REMOTE USER [TIME] "REQUEST LINE" STATUS BODY-BYTES "ACCEPT" "USER-AGENT" SECONDS.
    USER is the token name, or "-"; BODY-BYTES is "-" when a transfer broke off unmeasured."""

    def log(self, request: BaseRequest, response: StreamResponse, time_taken: float) -> None:
        size = body_size(request, response)
        line = (f'{request.remote or "-"} {escape(request.get(USER_KEY, "-"))} '
                f'[{time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())}] '
                f'"{escape(request.method)} {escape(request.raw_path)} '
                f'HTTP/{request.version.major}.{request.version.minor}" '
                f'{response.status} {"-" if size is None else size} '
                f'"{escape(request.headers.get("Accept", ""))}" '
                f'"{escape(request.headers.get("User-Agent", ""))}" {time_taken:.3f}')
        self.logger.info(line)


def access_logger(path: Path | None) -> logging.Logger:
    """A logger of its own (not registered globally) that writes lines to path, else stderr."""
    logger = logging.Logger("mirror_builder.access", logging.INFO)
    handler: logging.Handler = (logging.FileHandler(path, encoding="utf-8") if path
                                else logging.StreamHandler())
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    return logger

"""Serve the output directory over HTTP (aiohttp): the wheel index, its files and the sources.

aiohttp's FileResponse gives ETag and Last-Modified with 304 answers, byte ranges and sendfile;
this module adds PEP 691 content negotiation (Accept q-values), PEP 503 redirects to normalized
names, and the content types of an index.
"""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web
from packaging.utils import canonicalize_name

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
# Server preference on a tie: a browser or curl asking for */* gets the HTML page (as PyPI does).
PAGE_TYPES = ("text/html", HTML_TYPE, JSON_TYPE)
FILE_TYPES = {".whl": "application/octet-stream", ".metadata": "text/plain; charset=utf-8",
              ".gz": "application/gzip", ".zip": "application/zip"}

log = logging.getLogger(__name__)


def negotiate(accept: str | None, offered: tuple[str, ...] = PAGE_TYPES) -> str | None:
    """The offered media type the Accept header prefers (RFC 9110: the most specific matching
    range sets each type's q; ties go to the server's order), or None if none is acceptable."""
    if not accept or not accept.strip():
        return offered[0]
    ranges = []
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        if "/" not in media:
            continue
        q = 1.0
        for param in fields[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = max(0.0, min(1.0, float(value)))
                except ValueError:
                    q = 0.0
        ranges.append((media, q))
    best, best_q = None, 0.0
    for media_type in offered:
        kind = media_type.split("/")[0]
        quality, specificity = 0.0, -1
        for media, q in ranges:
            level = 2 if media == media_type else 1 if media == f"{kind}/*" else \
                0 if media == "*/*" else -1
            if level > specificity:
                quality, specificity = q, level
        if quality > best_q:
            best, best_q = media_type, quality
    return best


def make_app(root: Path) -> web.Application:
    root = root.resolve()
    app = web.Application()

    async def page(request: web.Request) -> web.StreamResponse:
        area = request.match_info.get("area", "")
        base = root / area if area else root
        project = request.match_info.get("project")
        if project is not None:
            normalized = canonicalize_name(project)
            if project != normalized:
                raise web.HTTPMovedPermanently(f"/{area + '/' if area else ''}simple/{normalized}/")
            folder = base / "simple" / normalized
        else:
            folder = base / "simple"
        # PEP 691's ?format= override; an unescaped "+" arrives as a space.
        chosen = request.query.get("format", "").replace(" ", "+") or \
            negotiate(request.headers.get("Accept"))
        if chosen not in PAGE_TYPES:
            raise web.HTTPNotAcceptable(text=f"this index serves {', '.join(PAGE_TYPES)}\n")
        path = folder / ("index.json" if chosen == JSON_TYPE else "index.html")
        if not path.is_file():
            raise web.HTTPNotFound(text="no such project\n")
        response = web.FileResponse(path, headers={"Vary": "Accept"})
        response.content_type = chosen
        if chosen != JSON_TYPE:
            response.charset = "utf-8"
        return response

    async def slashless(request: web.Request) -> web.StreamResponse:
        raise web.HTTPMovedPermanently(str(request.rel_url.with_path(request.path + "/")))

    async def file(request: web.Request) -> web.StreamResponse:
        area = request.match_info.get("area", "")
        base = root / area if area else root
        project, name = request.match_info["project"], request.match_info["filename"]
        path = (base / "files" / project / name).resolve()
        if not path.is_relative_to(base / "files") or not path.is_file() or name.startswith("."):
            raise web.HTTPNotFound()
        suffix = ".metadata" if name.endswith(".metadata") else path.suffix
        response = web.FileResponse(path)
        response.content_type = FILE_TYPES.get(suffix, "application/octet-stream")
        return response

    async def home(request: web.Request) -> web.StreamResponse:
        base = f"{request.scheme}://{request.host}"
        return web.Response(text=usage(base), content_type="text/plain")

    for prefix in ("", "/{area:sources}"):
        app.router.add_get(prefix + "/simple/", page)
        app.router.add_get(prefix + "/simple", slashless)
        app.router.add_get(prefix + "/simple/{project}/", page)
        app.router.add_get(prefix + "/simple/{project}", slashless)
        app.router.add_get(prefix + "/files/{project}/{filename}", file)
    app.router.add_get("/", home)
    return app


def usage(base_url: str) -> str:
    index = f"{base_url}/simple/"
    return f"""\
A wheels-only index built from source by mirror-builder.

  pip install --index-url {index} --only-binary :all: PACKAGE
  uv pip install --index-url {index} --only-binary :all: PACKAGE

pip.conf (~/.config/pip/pip.conf or /etc/pip.conf):
  [global]
  index-url = {index}
  only-binary = :all:

uv.toml (~/.config/uv/uv.toml) or [tool.uv] in pyproject.toml:
  no-build = true

  [[index]]
  url = "{index}"
  default = true

  [pip]
  index-url = "{index}"
  only-binary = [":all:"]

The hash-checked sources the wheels were built from: {base_url}/sources/simple/
"""


def serve(root: Path, host: str, port: int, access_log: Path | None = None,
          print_fn=print) -> None:
    logger = logging.getLogger("mirror_builder.access")
    logger.propagate = False
    handler: logging.Handler = (logging.FileHandler(access_log) if access_log
                                else logging.StreamHandler())
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    base = f"http://{host}:{port}"
    print_fn(f"Serving {root} at {base}/\n\n{usage(base)}")
    web.run_app(make_app(root), host=host, port=port, access_log=logger,
                access_log_format='%a "%r" %s %b "%{Accept}i"', print=None)

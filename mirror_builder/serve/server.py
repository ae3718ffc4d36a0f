"""Serve the output directory over HTTP (aiohttp): the wheel index, its files and the sources.

aiohttp's FileResponse gives ETag and Last-Modified with 304 answers, byte ranges and sendfile;
this module adds PEP 691 content negotiation (Accept q-values), PEP 503 redirects to normalized
names, the content types of an index, and the confinement: only names an index can hold are
looked up, and only regular files reached through real folders under the root are opened.

The other build variants' outputs (OUTPUT/variants/<name>/, see layout.variant_output) are
served side by side at the same paths on disk: /variants/<name>/simple/, /files/ and
/sources/, for the variant names given (settings' variants), and for no other folder.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

from aiohttp import web
from multidict import CIMultiDict
from packaging.utils import canonicalize_name

from mirror_builder.layout import VARIANTS_FOLDER, OutputLayout
from mirror_builder.serve.accesslog import AccessLogger, access_logger
from mirror_builder.serve import webgraph, webpages
from mirror_builder.serve.fallback import Fallback
from mirror_builder.serve.smallfiles import SmallFiles
from mirror_builder.serve.usage import usage
from mirror_builder.serve.webdata import OutputReader
from mirror_builder.errors import UsageError
from mirror_builder.serve.httpauth import TokenAuthenticator, require_token
from mirror_builder.serve.listener import bind, check_log_file, only_loopback, tls_context, url_host

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
# Server preference on a tie: a browser or curl asking for */* gets the HTML page (as PyPI does).
PAGE_TYPES = ("text/html", HTML_TYPE, JSON_TYPE)
FILE_TYPES = {".whl": "application/octet-stream", ".metadata": "text/plain; charset=utf-8",
              ".gz": "application/gzip", ".zip": "application/zip",
              ".provenance": "application/json", ".pub": "application/x-pem-file"}
# A project name as PEP 508 allows it, and in its PEP 503 normalized form (the folder names).
_PROJECT_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_NORMALIZED = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
# A published file: never a hidden one (locks, files being written are ".NAME.tmp").
_FILENAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+!-]*")
# No file system holds a longer name; asking it would be an error, not a miss.
NAME_MAX = 255
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.IGNORECASE)
_HOST = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


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


def _fits(name: str, pattern: re.Pattern[str]) -> bool:
    return len(name.encode("utf-8", "surrogateescape")) <= NAME_MAX and \
        pattern.fullmatch(name) is not None


def contained_file(root: Path, parts: tuple[str, ...]) -> Path | None:
    """root/parts... if every part is a real folder and the last a regular file, none of them a
    symbolic link (so nothing outside root is reachable through one), else None. root must be
    resolved; parts are single names."""
    path = top = str(root)  # (str, not Path: this is on every request's way)
    for i, part in enumerate(parts):
        if part in ("", ".", "..") or "/" in part or "\0" in part:
            return None
        path = os.path.join(path, part)
        try:
            mode = os.lstat(path).st_mode
        except (OSError, ValueError):
            return None
        wanted = stat.S_ISREG if i == len(parts) - 1 else stat.S_ISDIR
        if not wanted(mode):  # a link is neither
            return None
    return Path(path) if _real_path(path).startswith(top + os.sep) else None


def _real_path(path: str) -> str:
    """os.path.realpath of path, a regular file, as the kernel names it once opened (from
    /proc; a tenth of the cost of an lstat of every folder from /); "" if it is no longer a
    regular file (a link now at the end is not followed: it is not the file checked)."""
    if not hasattr(os, "O_PATH"):
        return os.path.realpath(path)
    try:
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(path)
    finally:
        os.close(fd)


class IndexFile(web.FileResponse):
    """aiohttp's FileResponse, with the Range rules of RFC 9110 it does not keep applied first:
    a Range it cannot answer with one part (several ranges, another unit, bad syntax, or not a
    GET) is ignored, so the answer is the whole file with 200 instead of a wrong 416; an
    If-Range that does not match (a weak or other ETag, a date other than Last-Modified) gets
    the whole file too. It never serves a .gz or .br sibling of the file in its place."""

    # The request headers FileResponse reads; no others reach it.
    _CONDITIONAL = frozenset({"if-match", "if-none-match", "if-modified-since",
                              "if-unmodified-since"})

    def __init__(self, path: Path, **kwargs) -> None:
        super().__init__(path, **kwargs)
        self.file_path = path
        # Bytes of body sent, for the access log; None until the whole body went out.
        self.body_sent: int | None = None

    async def prepare(self, request: web.BaseRequest):
        headers: CIMultiDict[str] = CIMultiDict(
            (k, v) for k, v in request.headers.items()
            if k.lower() in self._CONDITIONAL and v.isascii())
        ranges = request.headers.getall("Range", [])
        if request.method == "GET" and len(ranges) == 1 and _one_range(ranges[0]) and \
                self._if_range_holds(request.headers.getall("If-Range", [])):
            headers["Range"] = ranges[0]
            if _RANGE.fullmatch(ranges[0].strip()).groups() == ("", "0") and \
                    (st := _stat(self.file_path)) is not None:
                # The last 0 bytes: unsatisfiable (416), where aiohttp would send everything.
                headers["Range"] = f"bytes={st.st_size}-"
        writer = await super().prepare(request.clone(headers=headers))
        # Reached only when the whole body went out (a broken transfer raises).
        self.body_sent = self.content_length or 0
        return writer

    def _if_range_holds(self, values: list[str]) -> bool:
        if not values:
            return True
        if len(values) > 1 or (st := _stat(self.file_path)) is None:
            return False
        value = values[0].strip()
        # The validators FileResponse sends: ETag "<mtime_ns hex>-<size hex>" (strong), and
        # Last-Modified rounded up to the second.
        if value.startswith('"'):
            return value == f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
        if value.startswith("W/"):
            return False  # a weak validator never matches (RFC 9110, 13.1.5)
        try:
            date = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return False
        return date.tzinfo is not None and date.timestamp() == -(-st.st_mtime_ns // 10**9)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _one_range(value: str) -> bool:
    """One byte range, syntactically valid (unsatisfiable ones are valid: they get 416)."""
    match = _RANGE.fullmatch(value.strip())
    if not match:
        return False
    first, last = match.groups()
    if not first:
        return bool(last)
    return not last or int(first) <= int(last)


def make_app(root: Path, tokens: TokenAuthenticator | None = None,
             variants: tuple[str, ...] = (), fallback: Fallback | None = None) -> web.Application:
    """The index app for root, and for each of variants (the build variants other than the
    default one) its output under /variants/<name>/; with tokens, every request needs one (see
    httpauth.py); with fallback, a project root does not carry is answered from upstream."""
    app = web.Application(middlewares=[require_token(tokens)] if tokens else [])
    handlers = _Handlers(root.resolve(), private=tokens is not None, variants=variants,
                         fallback=fallback)
    # sources/: the sdists; from-source/: the view of the wheels built from source (gap-fill).
    for prefix in ("", "/{area:sources|from-source}", f"/{VARIANTS_FOLDER}/{{variant}}",
                   f"/{VARIANTS_FOLDER}/{{variant}}/{{area:sources|from-source}}"):
        app.router.add_get(prefix + "/simple/", handlers.page)
        app.router.add_get(prefix + "/simple", handlers.without_slash)
        app.router.add_get(prefix + "/simple/{project}/", handlers.page)
        app.router.add_get(prefix + "/simple/{project}", handlers.without_slash)
        app.router.add_get(prefix + "/files/{project}/{filename}", handlers.file)
    for prefix in ("", f"/{VARIANTS_FOLDER}/{{variant}}"):
        app.router.add_get(prefix + f"/{OutputLayout(Path()).find_links}", handlers.find_links)
        app.router.add_get(prefix + f"/{OutputLayout(Path()).public_key}", handlers.public_key)
        app.router.add_get(prefix + f"/{OutputLayout(Path()).key_by_id('{keyid:[0-9a-f]{64}}')}",
                           handlers.public_key)
    app.router.add_get("/", handlers.home)
    # The web view, for people (webpages.py): the main index only, not the variants'.
    app.router.add_get("/project/{project}/", handlers.project_view)
    app.router.add_get("/project/{project}/log/{filename}", handlers.build_log)
    return app


class _Handlers:
    """The request handlers of one index: root (resolved) is the output directory."""

    def __init__(self, root: Path, private: bool, variants: tuple[str, ...] = (),
                 fallback: Fallback | None = None) -> None:
        self.root = root
        self.private = private
        self.variants = frozenset(variants)
        self.fallback = fallback
        self.small = SmallFiles()  # pages and .metadata, from memory

    async def page(self, request: web.Request) -> web.StreamResponse:
        folder = _project_folder(request, self._variant_of(request))
        # PEP 691's ?format= override; an unescaped "+" arrives as a space.
        chosen = request.query.get("format", "").replace(" ", "+") or \
            negotiate(request.headers.get("Accept"))
        if chosen not in PAGE_TYPES:
            raise web.HTTPNotAcceptable(text=f"this index serves {', '.join(PAGE_TYPES)}\n")
        path = contained_file(self.root,
                              (*folder, "index.json" if chosen == JSON_TYPE else "index.html"))
        if path is None and self.fallback is not None and len(folder) == 2 and \
                folder[0] == "simple" and \
                contained_file(self.root, ("simple", "index.json")) is not None:
            # A project of the main index that we do not carry (never a variant's or the
            # sources'), once the index itself exists.
            return await self.fallback.answer(folder[1], chosen)
        if path is None:
            raise _not_found()
        charset = None if chosen == JSON_TYPE else "utf-8"
        if (fast := await self.small.response(request, path, chosen, charset,
                                              {"Vary": "Accept"})) is not None:
            return fast
        response = IndexFile(path, headers={"Vary": "Accept"})
        response.content_type = chosen
        response.charset = charset
        return response

    async def without_slash(self, request: web.Request) -> web.StreamResponse:
        folder = (*self._variant_of(request), *_area_of(request), "simple")
        if (project := request.match_info.get("project")) is not None:
            if not _fits(project, _PROJECT_NAME):
                raise _not_found()
            folder += (canonicalize_name(project),)
        raise _redirect(request, _folder_url(folder))

    async def file(self, request: web.Request) -> web.StreamResponse:
        project, name = request.match_info["project"], request.match_info["filename"]
        if not _fits(project, _NORMALIZED) or not _fits(name, _FILENAME):
            raise _not_found("no such file")
        path = contained_file(self.root, (*self._variant_of(request), *_area_of(request),
                                          "files", project, name))
        if path is None:
            raise _not_found("no such file")
        suffix = ".metadata" if name.endswith(".metadata") else path.suffix
        content_type = FILE_TYPES.get(suffix, "application/octet-stream")
        if suffix == ".metadata" and \
                (fast := await self.small.response(request, path, content_type)) is not None:
            return fast
        response = IndexFile(path)
        response.content_type = content_type
        return response

    async def find_links(self, request: web.Request) -> web.StreamResponse:
        """Every wheel on one flat page (find-links.html), for pip --find-links."""
        return _text_file(contained_file(self.root, (*self._variant_of(request),
                                                     *OutputLayout(Path()).find_links.parts)),
                          "text/html", "no such page")

    async def public_key(self, request: web.Request) -> web.StreamResponse:
        """The public key of the key that signs the statements (signing-key.pub), or of one
        that signed earlier ones (keys/<keyid>.pub)."""
        keyid = request.match_info.get("keyid")
        here = OutputLayout(Path())
        parts = (here.key_by_id(keyid) if keyid else here.public_key).parts
        path = contained_file(self.root, (*self._variant_of(request), *parts))
        if path is None:
            raise _not_found("no such key")
        response = IndexFile(path)
        response.content_type = FILE_TYPES[".pub"]
        return response

    async def home(self, request: web.Request) -> web.StreamResponse:
        # The Host header as the client sent it, if it is a host name or address (and port).
        host = request.headers.get("Host", "")
        base = f"{request.scheme}://{host if _HOST.fullmatch(host) else 'HOST'}"
        text = usage(base, private=self.private, variants=sorted(self.variants))
        if negotiate(request.headers.get("Accept"), ("text/plain", "text/html")) != "text/html":
            return web.Response(text=text, content_type="text/plain")
        reader = OutputReader(self.root, contained_file)
        body = await _off_loop(lambda: webpages.home(
            reader.projects(), reader.recent_failures(), reader.waiting_reviews(), text))
        return _html(body)

    async def project_view(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["project"]
        if not _fits(name, _PROJECT_NAME):
            raise _not_found()
        if name != canonicalize_name(name):
            raise _redirect(request, f"/project/{canonicalize_name(name)}/")
        reader = OutputReader(self.root, contained_file)

        def render() -> str | None:
            view = reader.project(name)
            return None if view is None else \
                webpages.project(view, webgraph.svg(name, view.graph_edges))
        body = await _off_loop(render)
        if body is None:
            raise _not_found()
        return _html(body)

    async def build_log(self, request: web.Request) -> web.StreamResponse:
        project, name = request.match_info["project"], request.match_info["filename"]
        if not _fits(project, _NORMALIZED) or not _fits(name, _FILENAME) or \
                not name.endswith(".whl"):
            raise _not_found("no such log")
        return _text_file(OutputReader(self.root, contained_file).log(project, name),
                          "text/plain", "no such log")

    def _variant_of(self, request: web.Request) -> tuple[str, ...]:
        """("variants", NAME) for a variant's path, () for the default one's; a name that is
        not one of the variants served (.., an undeclared one) is not found."""
        variant = request.match_info.get("variant")
        if variant is None:
            return ()
        if variant not in self.variants:
            raise _not_found("no such variant")
        return (VARIANTS_FOLDER, variant)


async def _off_loop(work):
    """Run blocking work (reading the output, drawing with dot) on a thread."""
    return await asyncio.get_running_loop().run_in_executor(None, work)


def _text_file(path: Path | None, content_type: str, missing: str) -> web.StreamResponse:
    """A UTF-8 text file of the output (None: not found, said as missing)."""
    if path is None:
        raise _not_found(missing)
    response = IndexFile(path)
    response.content_type = content_type
    response.charset = "utf-8"
    return response


def _html(body: str) -> web.Response:
    response = web.Response(text=body, content_type="text/html")
    response.headers["Vary"] = "Accept"
    return response


def _not_found(what: str = "no such project") -> web.HTTPNotFound:
    return web.HTTPNotFound(text=f"{what}\n")


def _redirect(request: web.Request, path: str) -> web.HTTPMovedPermanently:
    query = request.rel_url.raw_query_string
    return web.HTTPMovedPermanently(path + (f"?{query}" if query else ""))


def _folder_url(folder: tuple[str, ...]) -> str:
    return "".join(f"/{part}" for part in folder) + "/"


def _area_of(request: web.Request) -> tuple[str, ...]:
    area = request.match_info.get("area")
    return (area,) if area else ()


def _project_folder(request: web.Request, variant: tuple[str, ...] = ()) -> tuple[str, ...]:
    """("simple", NAME) for the project in the path (under variant's folder); a name that is
    valid but not normalized is redirected to its normalized form, anything else is not found."""
    area = (*variant, *_area_of(request))
    project = request.match_info.get("project")
    if project is None:
        return (*area, "simple")
    if not _fits(project, _PROJECT_NAME):
        raise _not_found()
    normalized = canonicalize_name(project)
    if project != normalized:
        raise _redirect(request, _folder_url((*area, "simple", normalized)))
    return (*area, "simple", normalized)


@dataclass(frozen=True)
class ServeOptions:
    """What `mirror-builder serve` was asked for."""

    root: Path
    host: str = "127.0.0.1"
    port: int = 8080
    access_log: Path | None = None
    # With a tokens file, every request needs a read token from it (see tokens.py).
    tokens_file: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    # The other build variants, served at /variants/<name>/ (the default one is root itself).
    variants: tuple[str, ...] = ()
    # What a project we do not carry gets (serve/fallback.py); None: 404.
    fallback: Fallback | None = None


def serve(options: ServeOptions, print_fn=print) -> None:
    """Check everything and bind, then print the banner and serve until interrupted. Every
    problem before the banner is a UsageError, with nothing written."""
    tls = tls_context(options.certfile, options.keyfile)
    tokens = TokenAuthenticator.open(options.tokens_file) if options.tokens_file else None
    check_log_file(options.access_log)
    sockets = bind(options.host, options.port)
    try:
        logger = access_logger(options.access_log)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise UsageError(f"--access-log {options.access_log}: cannot write it: "
                         f"{exc.strerror}") from None
    port = sockets[0].getsockname()[1]
    base = f"{'https' if tls else 'http'}://{url_host(options.host)}:{port}"
    notes = ""
    if tokens:
        count = f"{tokens.token_count} token{'s' if tokens.token_count != 1 else ''}"
        notes += (f"\nRead tokens: {tokens.path} ({count}); a request without one gets 401. "
                  f"The file is read again when it changes.\n")
        if not tls and not only_loopback(sockets):
            notes += ("warning: tokens cross the network in clear text over plain HTTP; give "
                      "--certfile and --keyfile, or put a TLS server in front.\n")
    if options.fallback is not None:
        notes += (f"\nProjects not carried here: {options.fallback.mode} "
                  f"({options.fallback.upstream_url}).\n")
    print_fn(f"Serving {options.root} at {base}/\n{notes}\n"
             f"{usage(base, private=bool(tokens), variants=options.variants)}")
    web.run_app(make_app(options.root, tokens, options.variants, options.fallback), sock=sockets,
                ssl_context=tls,
                access_log=logger, access_log_class=AccessLogger, print=None)

import hashlib
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def clean_environment(**extra: str) -> dict[str, str]:
    """The environment without pip/uv settings that could pull files from anywhere but our index."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))} | extra


def tls_client_environment(**extra: str) -> dict[str, str]:
    """clean_environment(), without the machine's CA bundles (requests lets REQUESTS_CA_BUNDLE
    and CURL_CA_BUNDLE win over pip's --cert; /etc/pip.conf may name one too): only the test's
    own CA, given as --cert or SSL_CERT_FILE, decides what the installers trust."""
    env = clean_environment(PIP_CONFIG_FILE=os.devnull)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_DIR", "SSL_CERT_FILE"):
        env.pop(name, None)
    return env | extra


def write_settings(folder: Path, **keys: str) -> Path:
    """A settings file like the repository's, with some top-level keys changed."""
    folder.mkdir(parents=True, exist_ok=True)
    text = (REPO / "settings.yaml").read_text().replace(
        "containerfile: containerfiles/", f"containerfile: {REPO}/containerfiles/")
    lines, replacing = [], False
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            replacing = line.split(":")[0] in keys  # a key replaced, with its indented block
        if not replacing:
            lines.append(line)
    lines += [f"{key}: {value}" for key, value in keys.items()]
    path = folder / "settings.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_mirror_builder(*args: str, cwd: Path, check: bool = True, settings: Path | None = None,
                       env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the CLI as a user would, from a working directory of the test's own (env: variables
    to add to the environment)."""
    proc = subprocess.run([sys.executable, "-m", "mirror_builder", "--settings",
                           str(settings or REPO / "settings.yaml"), *args],
                          cwd=cwd, capture_output=True, text=True,
                          env=clean_environment(**(env or {})))
    if check and proc.returncode != 0:
        raise AssertionError(f"mirror-builder {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def make_sdist(source_dir: Path, dest_dir: Path, name: str, version: str) -> Path:
    """Pack a fixture's source folder as NAME-VERSION.tar.gz, the way an sdist is laid out."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    archive = dest_dir / f"{name}-{version}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source_dir, arcname=f"{name}-{version}")
    return archive


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under root with its sha256, to show that nothing changed."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def fresh_venv(folder: Path, current_pip: bool = False) -> Path:
    """A new virtual environment; with current_pip, its pip is upgraded (from PyPI) first."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    if current_pip:
        subprocess.run([str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        "--upgrade", "pip"], check=True, env=clean_environment())
    return folder


STEVEDORE = "5.10.0"


@pytest.fixture(scope="session")
def stevedore_output(tmp_path_factory) -> Path:
    """stevedore bootstrapped from PyPI with real podman, once for the whole session: built
    here, not taken from the machine's build cache (which keeps these builds for the tests that
    take them from there)."""
    work = tmp_path_factory.mktemp("stevedore")
    run_mirror_builder("bootstrap", f"stevedore=={STEVEDORE}", "--output", "out",
                       "--no-build-cache", "--timeline", "timeline.json", cwd=work)
    return work / "out"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(tmp_path):
    """Start `mirror-builder serve` on a free port for an output directory (and serve's options);
    yields its base URL and the path of its request log."""
    import time
    import urllib.request

    processes = []

    def start(output: Path, *options: str):
        port = free_port()
        access_log = tmp_path / f"access-{port}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "mirror_builder", "--settings", str(REPO / "settings.yaml"),
             "serve", "-o", str(output), "--port", str(port), "--access-log", str(access_log),
             *options],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=clean_environment())
        processes.append(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"serve did not start: {proc.stdout.read()}")
                time.sleep(0.1)
        return base, access_log

    yield start
    for proc in processes:
        proc.terminate()
        proc.wait(timeout=10)


def with_upstream(settings: Path, **keys: object) -> Path:
    """Replace the upstream: block of a settings file (from write_settings) with these keys,
    e.g. index_url=..., json_api_url=None, retries=1. Values are written as JSON, which YAML
    reads as the same values."""
    import json

    kept, in_block = [], False
    for line in settings.read_text().splitlines():
        if line.startswith("upstream:"):
            in_block = True
            continue
        if in_block and line.strip() and not line.startswith((" ", "\t")):
            in_block = False
        if not in_block:
            kept.append(line)
    kept += ["upstream:"] + [f"  {key}: {json.dumps(value)}" for key, value in keys.items()]
    settings.write_text("\n".join(kept) + "\n")
    return settings


# -- a misbehaving package index ---------------------------------------------------------------
@dataclass(frozen=True)
class Reply:
    """One scripted answer of a ScriptedIndex. Content-Length is always the whole body's."""

    body: bytes = b""
    status: int = 200
    content_type: str = "text/html"
    headers: tuple[tuple[str, str], ...] = ()
    wait_before: float = 0.0  # seconds before answering at all (past the client's timeout: a timeout)
    cut_after: int | None = None  # send only this many bytes of the body, then close
    stall_after: int | None = None  # send this many bytes of the body, then wait stall_for
    stall_for: float = 0.0


class ScriptedIndex:
    """A real HTTP server on 127.0.0.1 (a free port) whose paths answer from scripts: each path
    gives its replies in order and repeats the last. Unscripted paths are 404. `hits` counts
    the requests each path received."""

    def __init__(self) -> None:
        import collections
        import threading
        from http.server import ThreadingHTTPServer

        self._scripts: dict[str, list[Reply]] = {}
        self.hits: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.handle_error = lambda request, address: None  # clients that gave up
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    def script(self, path: str, *replies: Reply) -> str:
        """Give path its replies; returns the path's full URL."""
        with self._lock:
            self._scripts[path] = list(replies)
        return self.url + path

    def next_reply(self, path: str) -> Reply | None:
        with self._lock:
            self.hits[path] += 1
            replies = self._scripts.get(path)
            if not replies:
                return None
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def close(self) -> None:
        self._stopping.set()  # wakes handlers that are waiting on purpose
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _handler_class(self):
        from http.server import BaseHTTPRequestHandler

        index = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
                reply = index.next_reply(self.path)
                if reply is None:
                    reply = Reply(b"not found", status=404, content_type="text/plain")
                index._stopping.wait(reply.wait_before)
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.end_headers()
                self._send_body(reply)

            def _send_body(self, reply: Reply) -> None:
                body = reply.body
                if reply.cut_after is not None:
                    body = body[:reply.cut_after]
                elif reply.stall_after is not None:
                    self.wfile.write(body[:reply.stall_after])
                    self.wfile.flush()
                    index._stopping.wait(reply.stall_for)
                    body = body[reply.stall_after:]
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, format: str, *args) -> None:  # noqa: A002
                pass

        return Handler


@pytest.fixture
def scripted_index():
    index = ScriptedIndex()
    yield index
    index.close()


class RevalidatingIndex(ScriptedIndex):
    """A ScriptedIndex that honours conditional requests as a caching index does: a 200 reply
    whose ETag matches the request's If-None-Match or, when there is none, whose Last-Modified
    is not later than If-Modified-Since, is answered 304 Not Modified, without a body (its
    ETag and Last-Modified headers are sent again). `requests` records each request's path and
    headers, `not_modified` counts the 304s of each path."""

    def __init__(self) -> None:
        import collections

        self.requests: list[tuple[str, dict[str, str]]] = []
        self.not_modified: collections.Counter[str] = collections.Counter()
        super().__init__()

    def headers_sent(self, path: str) -> list[dict[str, str]]:
        """The headers of each request made for path, in order (names in lower case)."""
        with self._lock:
            return [headers for p, headers in self.requests if p == path]

    @staticmethod
    def is_not_modified(reply: Reply, request_headers: dict[str, str]) -> bool:
        from email.utils import parsedate_to_datetime

        if reply.status != 200:
            return False
        own = {name.lower(): value for name, value in reply.headers}
        if "if-none-match" in request_headers:
            tags = [t.strip() for t in request_headers["if-none-match"].split(",")]
            return "etag" in own and (own["etag"] in tags or "*" in tags)
        if "if-modified-since" in request_headers and "last-modified" in own:
            try:
                return (parsedate_to_datetime(own["last-modified"])
                        <= parsedate_to_datetime(request_headers["if-modified-since"]))
            except (TypeError, ValueError):
                return False
        return False

    def _handler_class(self):
        base = super()._handler_class()
        index = self

        class Handler(base):
            def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
                headers = {name.lower(): value for name, value in self.headers.items()}
                with index._lock:
                    index.requests.append((self.path, headers))
                reply = index.next_reply(self.path)
                if reply is None:
                    reply = Reply(b"not found", status=404, content_type="text/plain")
                index._stopping.wait(reply.wait_before)
                if index.is_not_modified(reply, headers):
                    with index._lock:
                        index.not_modified[self.path] += 1
                    self.send_response(304)
                    for name, value in reply.headers:
                        if name.lower() in ("etag", "last-modified", "x-pypi-last-serial"):
                            self.send_header(name, value)
                    self.end_headers()
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.end_headers()
                self._send_body(reply)

        return Handler


@pytest.fixture
def revalidating_index():
    index = RevalidatingIndex()
    yield index
    index.close()


# -- a package index of our own, standing in for PyPI -----------------------------------------
from typing import NamedTuple  # noqa: E402 (for the LocalUpstream below)


class UpstreamRequest(NamedTuple):
    """One request a LocalUpstream answered; path as requested (with any query)."""

    method: str
    path: str
    status: int


class LocalUpstream:
    """A real upstream index on 127.0.0.1 that a test fills with sdists (or wheels), yanks and
    removes, for mirror-builder to resolve and download from instead of PyPI.

    On disk, under root: simple/index.html and index.json (the project list), and for each
    project simple/<project>/index.html (PEP 503: #sha256=, data-requires-python, data-yanked)
    and simple/<project>/index.json (PEP 691 api-version 1.1: hashes.sha256, requires-python,
    yanked, size, upload-time, and PEP 700's versions), linking ../../files/<file>. The folder
    is a file:// index as well. A project's index.json is the truth its index.html is written
    from; a project whose files were all removed keeps an empty page (as PyPI does).

    Over HTTP (a threaded server in a daemon thread): GET and HEAD of /simple/ and
    /simple/<project>/ (the JSON page when the Accept header prefers
    application/vnd.pypi.simple.v1+json, honouring q-values; otherwise HTML; a non-normalized
    name or a missing slash is a 301 to the normalized page, an unknown project a 404) and
    /files/<file>. Every answer carries an ETag (the sha256 of its body) and a Last-Modified
    (for a page, when it last changed, strictly later at each change, so If-Modified-Since sees
    every change even within one second); a request whose If-None-Match matches, or, when it
    has none, whose If-Modified-Since is not earlier than Last-Modified, gets 304 and no body.
    Every request is logged as UpstreamRequest(method, path, status) in `log`, in order.
    """

    PEP691_JSON = "application/vnd.pypi.simple.v1+json"
    PEP691_HTML = "application/vnd.pypi.simple.v1+html"

    def __init__(self, root: Path, *, pypi_cache: Path | None = None) -> None:
        import threading
        from http.server import ThreadingHTTPServer

        self.root = root
        (root / "simple").mkdir(parents=True, exist_ok=True)
        (root / "files").mkdir(parents=True, exist_ok=True)
        # mirror-builder's cache_dir in settings(): fresh with each LocalUpstream, shared by its
        # runs. Not under simple/ or files/, so never served.
        self.cache_dir = root / "mirror-builder-cache"
        self.pypi_cache = pypi_cache or root / "pypi-cache"
        self.log: list[UpstreamRequest] = []
        self._lock = threading.RLock()
        self._modified: dict[str, int] = {}  # page path -> Last-Modified, epoch seconds
        self._pypi = None
        if not (root / "simple" / "index.json").is_file():
            self._write_root()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, address: None  # clients that gave up
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.index_url = f"{self.url}/simple/"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True, name="local-upstream")
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    # -- filling it ------------------------------------------------------------------------
    def add(self, path: Path, upload_time=None, *, requires_python: str | None = None) -> str:
        """Upload an sdist (NAME-VERSION.tar.gz or .zip) or a wheel; returns its file name.
        upload_time: an aware datetime (naive is taken as UTC); None is now. Requires-Python
        is read from the file's PKG-INFO / METADATA unless given. The same file again changes
        nothing; another file of the same name is refused, as PyPI refuses it."""
        import shutil
        from datetime import datetime, timezone

        path = Path(path)
        project, _ = self._name_and_version(path.name)
        data = path.read_bytes()
        sha256 = hashlib.sha256(data).hexdigest()
        moment = upload_time or datetime.now(timezone.utc)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        if requires_python is None:
            requires_python = self._requires_python_of(path)
        with self._lock:
            page = self._page(project)
            existing = next((f for f in page["files"] if f["filename"] == path.name), None)
            if existing is not None:
                if existing["hashes"]["sha256"] != sha256:
                    raise ValueError(f"{path.name} is already on the index with another content")
                return path.name
            dest = self.root / "files" / path.name
            shutil.copyfile(path, dest.with_name(dest.name + ".part"))
            os.replace(dest.with_name(dest.name + ".part"), dest)
            entry = {"filename": path.name, "url": f"../../files/{path.name}",
                     "hashes": {"sha256": sha256}, "size": len(data),
                     "upload-time": moment.astimezone(timezone.utc).strftime(
                         "%Y-%m-%dT%H:%M:%S.%fZ"),
                     "yanked": False}
            if requires_python:
                entry["requires-python"] = requires_python
            page["files"].append(entry)
            self._write_project(project, page)
        return path.name

    def add_from_pypi(self, project: str, version: str, upload_time=None) -> str:
        """Download project's sdist of version from PyPI (through mirror-builder's own
        UpstreamIndex, sha256 checked, kept in pypi_cache) and add() it with PyPI's
        requires-python; upload_time as for add(). Returns its file name."""
        from packaging.utils import canonicalize_name, parse_sdist_filename
        from packaging.version import Version

        from mirror_builder.resolve.upstream import UpstreamIndex

        if self._pypi is None:
            self._pypi = UpstreamIndex("https://pypi.org/simple/", cache_dir=self.pypi_cache)
        wanted = Version(version)
        candidates = []
        for file in self._pypi.project_files(project):
            if not file.is_sdist:
                continue
            try:
                name, found = parse_sdist_filename(file.filename)
            except ValueError:
                continue
            if name == canonicalize_name(project) and found == wanted:
                candidates.append(file)
        if not candidates:
            raise LookupError(f"PyPI has no sdist of {project}=={version}")
        # Not yanked first, then .tar.gz before .zip.
        file = sorted(candidates, key=lambda f: (f.yanked, not f.filename.endswith(".tar.gz")))[0]
        downloaded = self._pypi.download(file, self.pypi_cache / "files")
        return self.add(downloaded, upload_time, requires_python=file.requires_python or "")

    def yank(self, filename: str, reason: str = "") -> None:
        """Mark a file yanked (PEP 592): data-yanked="reason" in HTML; "yanked": reason, or
        true without one, in JSON."""
        self._set_yanked(filename, reason or True)

    def unyank(self, filename: str) -> None:
        self._set_yanked(filename, False)

    def remove(self, filename: str) -> None:
        """Delete a file: off its project's page and out of files/."""
        project, _ = self._name_and_version(filename)
        with self._lock:
            page = self._page(project)
            kept = [f for f in page["files"] if f["filename"] != filename]
            if len(kept) == len(page["files"]):
                raise KeyError(f"{filename} is not on the index")
            page["files"] = kept
            self._write_project(project, page)
            (self.root / "files" / filename).unlink(missing_ok=True)

    def files(self, project: str) -> list[dict]:
        """The project's files as its index.json lists them ([] for an unknown project)."""
        with self._lock:
            return self._page(project)["files"]

    # -- what was asked --------------------------------------------------------------------
    def count(self, status: int | None = None, path_prefix: str | None = None,
              method: str | None = None) -> int:
        """How many logged requests had this status, a path starting with path_prefix and
        this method (None: any)."""
        with self._lock:
            return sum(1 for r in self.log
                       if (status is None or r.status == status)
                       and (path_prefix is None or r.path.startswith(path_prefix))
                       and (method is None or r.method == method))

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()

    # -- settings for mirror-builder --------------------------------------------------------
    def settings(self, folder: Path, **top_level_keys) -> Path:
        """folder/settings.yaml: the repository's settings (as write_settings makes them) with
        the upstream: block pointing at this index (json_api_url null, timeout_seconds 10,
        retries 1, cache_ttl_seconds as the repository's) and cache_dir this LocalUpstream's
        own (fresh with it, shared by its runs), then top_level_keys: each replaces that
        top-level key's whole block, its value written as JSON (YAML reads the same value; a
        Path is written as its text). upstream={...} is merged into the upstream: block."""
        import json

        import yaml

        path = write_settings(folder)
        repository = yaml.safe_load((REPO / "settings.yaml").read_text())
        upstream = {"index_url": self.index_url, "json_api_url": None,
                    "cache_ttl_seconds": repository["upstream"]["cache_ttl_seconds"],
                    "timeout_seconds": 10, "retries": 1}
        upstream.update(top_level_keys.pop("upstream", None) or {})
        keys = {"cache_dir": str(self.cache_dir)} | top_level_keys | {"upstream": upstream}

        def as_json(value):
            if isinstance(value, Path):
                return str(value)
            if isinstance(value, dict):
                return {k: as_json(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [as_json(v) for v in value]
            return value

        lines, skipping = [], False
        for line in path.read_text().splitlines():
            if line and not line.startswith((" ", "\t", "#")):
                skipping = line.split(":")[0] in keys
            elif line.startswith("#"):
                skipping = False
            if not skipping:
                lines.append(line)
        lines += [f"{key}: {json.dumps(as_json(value))}" for key, value in keys.items()]
        path.write_text("\n".join(lines) + "\n")
        return path

    # -- pages -----------------------------------------------------------------------------
    @staticmethod
    def _name_and_version(filename: str):
        from packaging.utils import parse_sdist_filename, parse_wheel_filename

        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
        else:
            name, version = parse_sdist_filename(filename)
        return name, version

    @staticmethod
    def _requires_python_of(path: Path) -> str | None:
        import email.parser
        import zipfile

        text = None
        if path.name.endswith(".whl") or path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                wanted = ".dist-info/METADATA" if path.name.endswith(".whl") else "/PKG-INFO"
                names = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith(wanted)]
                if names:
                    text = archive.read(names[0]).decode("utf-8", "replace")
        else:
            with tarfile.open(path) as archive:
                member = next((m for m in archive.getmembers() if m.isfile()
                               and m.name.count("/") == 1 and m.name.endswith("/PKG-INFO")), None)
                if member is not None:
                    text = archive.extractfile(member).read().decode("utf-8", "replace")
        if text is None:
            return None
        return email.parser.Parser().parsestr(text, headersonly=True).get("Requires-Python")

    def _page(self, project: str) -> dict:
        import json

        from packaging.utils import canonicalize_name

        path = self.root / "simple" / canonicalize_name(project) / "index.json"
        if path.is_file():
            return json.loads(path.read_text())
        return {"meta": {"api-version": "1.1"}, "name": canonicalize_name(project),
                "versions": [], "files": []}

    def _set_yanked(self, filename: str, yanked) -> None:
        project, _ = self._name_and_version(filename)
        with self._lock:
            page = self._page(project)
            entry = next((f for f in page["files"] if f["filename"] == filename), None)
            if entry is None:
                raise KeyError(f"{filename} is not on the index")
            entry["yanked"] = yanked
            self._write_project(project, page)

    def _write_project(self, project: str, page: dict) -> None:
        import html
        import json

        from packaging.version import Version

        name = page["name"]
        page["versions"] = sorted({str(self._name_and_version(f["filename"])[1])
                                   for f in page["files"]}, key=Version)
        links = []
        for f in page["files"]:
            attributes = ""
            if f.get("requires-python"):
                attributes += f' data-requires-python="{html.escape(f["requires-python"])}"'
            if f["yanked"] is not False:
                reason = f["yanked"] if isinstance(f["yanked"], str) else ""
                attributes += f' data-yanked="{html.escape(reason)}"'
            links.append(f'    <a href="{html.escape(f["url"])}#sha256={f["hashes"]["sha256"]}"'
                         f'{attributes}>{html.escape(f["filename"])}</a><br/>')
        folder = self.root / "simple" / name
        folder.mkdir(parents=True, exist_ok=True)
        new_project = not (folder / "index.json").is_file()
        self._write(folder / "index.json", json.dumps(page, indent=1))
        self._write(folder / "index.html", self._html(f"Links for {name}", links))
        self._touched(f"/simple/{name}/")
        if new_project:
            self._write_root()

    def _write_root(self) -> None:
        import html
        import json

        names = sorted(p.name for p in (self.root / "simple").iterdir()
                       if (p / "index.json").is_file())
        self._write(self.root / "simple" / "index.json", json.dumps(
            {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}, indent=1))
        self._write(self.root / "simple" / "index.html", self._html(
            "Simple index", [f'    <a href="{html.escape(n)}/">{html.escape(n)}</a><br/>'
                             for n in names]))
        self._touched("/simple/")

    @staticmethod
    def _html(title: str, lines: list[str]) -> str:
        return "\n".join(["<!DOCTYPE html>", "<html>", "  <head>",
                          '    <meta name="pypi:repository-version" content="1.1">',
                          f"    <title>{title}</title>", "  </head>", "  <body>",
                          f"    <h1>{title}</h1>", *lines, "  </body>", "</html>", ""])

    @staticmethod
    def _write(path: Path, text: str) -> None:
        tmp = path.with_name(path.name + ".part")
        tmp.write_text(text)
        os.replace(tmp, path)

    def _touched(self, page: str) -> None:
        import time

        self._modified[page] = max(int(time.time()), self._modified.get(page, 0) + 1)

    # -- HTTP ------------------------------------------------------------------------------
    def _choose(self, accept: str) -> str:
        """The media type to answer a page with: the one the Accept header gives the highest
        q-value, then the most specific match; on a tie (*/*, or no header) HTML."""
        offered = ("text/html", self.PEP691_HTML, self.PEP691_JSON)  # by preference on a tie
        ranked = []
        for preference, media in enumerate(reversed(offered)):
            quality, specificity = (1.0, 0) if not accept.strip() else (0.0, -1)
            for item in accept.split(","):
                kind, *params = [part.strip() for part in item.split(";")]
                kind = kind.lower()
                level = (2 if kind == media else 1 if kind == media.split("/")[0] + "/*"
                         else 0 if kind == "*/*" else -1)
                if level < 0 or level < specificity:
                    continue
                q = 1.0
                for param in params:
                    if param.lower().startswith("q="):
                        try:
                            q = float(param[2:])
                        except ValueError:
                            q = 0.0
                quality, specificity = q, level
            ranked.append((quality, specificity, preference, media))
        quality, _, _, media = max(ranked)
        return media if quality > 0 else "text/html"

    def _answer(self, path: str, accept: str):
        """(status, body, content_type, headers) for a GET of path (no query)."""
        import urllib.parse
        from email.utils import formatdate

        from packaging.utils import canonicalize_name

        parts = path.split("/")
        if path == "/simple":
            return 301, b"", "text/plain", {"Location": "/simple/"}
        if path == "/simple/":
            folder, page = self.root / "simple", "/simple/"
        elif len(parts) in (3, 4) and parts[1] == "simple" and parts[2]:
            if len(parts) == 4 and parts[3]:
                return 404, b"not found", "text/plain", {}
            name = canonicalize_name(parts[2])
            folder, page = self.root / "simple" / name, f"/simple/{name}/"
            if not (folder / "index.json").is_file():
                return 404, b"not found", "text/plain", {}
            if path != page:
                return 301, b"", "text/plain", {"Location": page}
        elif len(parts) == 3 and parts[1] == "files":
            filename = urllib.parse.unquote(parts[2])
            file = self.root / "files" / filename
            if "/" in filename or filename in ("", ".", "..") or not file.is_file():
                return 404, b"not found", "text/plain", {}
            body = file.read_bytes()
            return 200, body, "application/octet-stream", {
                "ETag": f'"{hashlib.sha256(body).hexdigest()}"',
                "Last-Modified": formatdate(int(file.stat().st_mtime), usegmt=True)}
        else:
            return 404, b"not found", "text/plain", {}
        media = self._choose(accept)
        body = (folder / ("index.json" if media == self.PEP691_JSON else "index.html")).read_bytes()
        modified = self._modified.get(page) or int((folder / "index.json").stat().st_mtime)
        return 200, body, media + ("" if media == self.PEP691_JSON else "; charset=utf-8"), {
            "ETag": f'"{hashlib.sha256(body).hexdigest()}"',
            "Last-Modified": formatdate(modified, usegmt=True), "Vary": "Accept"}

    @staticmethod
    def _not_modified(headers, answer_headers: dict[str, str]) -> bool:
        from email.utils import parsedate_to_datetime

        if "ETag" not in answer_headers:
            return False
        if headers.get("If-None-Match") is not None:
            tags = [t.strip().removeprefix("W/") for t in headers["If-None-Match"].split(",")]
            return answer_headers["ETag"] in tags or "*" in tags
        if headers.get("If-Modified-Since") is not None:
            try:
                return (parsedate_to_datetime(answer_headers["Last-Modified"])
                        <= parsedate_to_datetime(headers["If-Modified-Since"]))
            except (TypeError, ValueError):
                return False
        return False

    def _handler_class(self):
        from http.server import BaseHTTPRequestHandler

        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
                self._reply(send_body=True)

            def do_HEAD(self) -> None:  # noqa: N802
                self._reply(send_body=False)

            def _reply(self, send_body: bool) -> None:
                with upstream._lock:
                    status, body, content_type, headers = upstream._answer(
                        self.path.split("?", 1)[0], self.headers.get("Accept", ""))
                    if status == 200 and upstream._not_modified(self.headers, headers):
                        status, body = 304, b""
                    upstream.log.append(UpstreamRequest(self.command, self.path, status))
                self.send_response(status)
                if status != 304:
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if send_body and status != 304:
                    self.wfile.write(body)

            def log_message(self, format: str, *args) -> None:  # noqa: A002
                pass

        return Handler


@pytest.fixture(scope="session")
def pypi_download_cache(tmp_path_factory) -> Path:
    """Where LocalUpstream.add_from_pypi keeps what it downloaded, for the whole session."""
    return tmp_path_factory.mktemp("pypi-downloads")


@pytest.fixture
def local_upstream(tmp_path, pypi_download_cache):
    """An empty LocalUpstream under tmp_path/upstream, served until the test ends."""
    upstream = LocalUpstream(tmp_path / "upstream", pypi_cache=pypi_download_cache)
    yield upstream
    upstream.close()


@dataclass(frozen=True)
class Certificates:
    ca: Path    # what clients trust
    cert: Path  # the server's certificate, signed by ca, for 127.0.0.1 and localhost
    key: Path


def make_certificate(folder: Path) -> Certificates:
    """A throw-away CA and a server certificate it signed, made with the openssl CLI. Not one
    self-signed certificate: rustls (uv) refuses a CA certificate used as the server's own."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    cert, key, csr, ext = (folder / "cert.pem", folder / "key.pem", folder / "server.csr",
                           folder / "server.ext")

    def openssl(*args: str) -> None:
        subprocess.run(["/usr/bin/openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out",
            str(ca), "-days", "2", "-subj", "/CN=mirror-builder test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
            "-subj", "/CN=localhost")
    ext.write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = CA:FALSE\n"
                   "keyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return Certificates(ca=ca, cert=cert, key=key)


def wheel_sbom(wheel: Path) -> dict:
    """The CycloneDX SBOM in a wheel's .dist-info/sboms/ (PEP 770), after checking that RECORD
    lists it and that CycloneDX's own validator accepts it."""
    import json
    import zipfile

    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    with zipfile.ZipFile(wheel) as archive:
        (member,) = [n for n in archive.namelist()
                     if n.split("/")[0].endswith(".dist-info") and "/sboms/" in n]
        record = next(n for n in archive.namelist() if n.endswith(".dist-info/RECORD"))
        assert f"{member},sha256=" in archive.read(record).decode(), member
        text = archive.read(member).decode()
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert errors is None, errors
    return json.loads(text)

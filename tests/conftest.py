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


def write_settings(folder: Path, **keys: str) -> Path:
    """A settings file like the repository's, with some top-level keys changed."""
    folder.mkdir(parents=True, exist_ok=True)
    text = (REPO / "settings.yaml").read_text().replace(
        "containerfile: containerfiles/", f"containerfile: {REPO}/containerfiles/")
    lines = [line for line in text.splitlines() if line.split(":")[0] not in keys]
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
    """stevedore bootstrapped from PyPI with real podman, once for the whole session."""
    work = tmp_path_factory.mktemp("stevedore")
    run_mirror_builder("bootstrap", f"stevedore=={STEVEDORE}", "--output", "out", cwd=work)
    return work / "out"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(tmp_path):
    """Start `mirror-builder serve` on a free port for an output directory; yields its base URL
    and the path of its request log."""
    import time
    import urllib.request

    processes = []

    def start(output: Path):
        port = free_port()
        access_log = tmp_path / f"access-{port}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "mirror_builder", "--settings", str(REPO / "settings.yaml"),
             "serve", "-o", str(output), "--port", str(port), "--access-log", str(access_log)],
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

"""Specification of reading a remote wheel's METADATA with HTTP range requests
(resolve.remotewheel) and of Transport.get_range underneath it.

A real HTTP server on 127.0.0.1 (RangeServer, below) serves files with single byte ranges
(`bytes=a-b`, `bytes=a-`, `bytes=-n`: 206 with Content-Range; past the end: 416), or ignores
Range and answers 200 with the whole file. It counts requests and the body bytes it got out.

What must hold: METADATA costs a few blocks, not the wheel; a server that ignores ranges, a file
that is no wheel and a central directory claiming more than the byte bound give None and a
warning, without downloading the file; only an unreachable server is an UpstreamError.
"""

from __future__ import annotations

import io
import os
import re
import socket
import struct
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mirror_builder.errors import UpstreamError
from mirror_builder.resolve.remotewheel import BLOCK, read_wheel_metadata
from mirror_builder.resolve.transport import BadRangeAnswer, Transport

METADATA = ("Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nRequires-Dist: idna>=2.5\n"
            "Requires-Dist: rich; extra == 'cli'\n\nA long description.\n" + "text " * 2000)
PAYLOAD = os.urandom(3 * 1024 * 1024)  # incompressible: stands for a wheel's shared libraries
HUGE = 256 * 1024 * 1024
CHUNK = 64 * 1024


@dataclass(frozen=True)
class Sparse:
    """A made-up file: that many zero bytes, then end."""

    zeros: int
    end: bytes = b""

    def __len__(self) -> int:
        return self.zeros + len(self.end)

    def __getitem__(self, where: slice) -> bytes:
        start, stop = where.start, min(where.stop, len(self))
        tail = self.end[max(start - self.zeros, 0):max(stop - self.zeros, 0)]
        return bytes(max(min(stop, self.zeros) - start, 0)) + tail


class RangeServer:
    """Files over HTTP on 127.0.0.1 (a free port). ignore_ranges: every GET gets 200 and the
    whole file. busy: the first that many requests get 503. shift: 206 answers start that many
    bytes later than asked; encoding: a Content-Encoding they claim (broken servers)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes | Sparse] = {}
        self.types: dict[str, str] = {}  # path -> Content-Type of its whole-file answers
        self.ignore_ranges = False
        self.busy = 0
        self.shift = 0
        self.encoding = ""
        self.hits = 0
        self.sent = 0
        self.headers: list[dict[str, str]] = []
        self.finished = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.handle_error = lambda request, address: None  # clients that hung up
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    def serve(self, path: str, content: bytes | Sparse) -> str:
        self.files[path] = content
        return self.url + path

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def wait_until_answered(self, count: int = 1) -> None:
        for _ in range(count):
            assert self.finished.acquire(timeout=10), "the server is still sending"

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5  # a client that neither reads nor hangs up

            def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
                try:
                    self._answer()
                finally:
                    self.close_connection = True
                    server.finished.release()

            def _answer(self) -> None:
                with server._lock:
                    server.hits += 1
                    server.headers.append(dict(self.headers))
                    busy = server.hits <= server.busy
                content = server.files.get(self.path)
                if busy or content is None:
                    self._head(503 if busy else 404, 0)
                    return
                size = len(content)
                asked = self.headers.get("Range")
                if asked is None or server.ignore_ranges:
                    kind = server.types.get(self.path)
                    self._head(200, size, *([("Content-Type", kind)] if kind else []))
                    self._send(content, 0, size)
                    return
                first, last = parse_range(asked, size)
                if first >= size:
                    self._head(416, 0, ("Content-Range", f"bytes */{size}"))
                    return
                first += server.shift
                headers = [("Content-Range", f"bytes {first}-{last}/{size}")]
                if server.encoding:
                    headers.append(("Content-Encoding", server.encoding))
                self._head(206, last - first + 1, *headers)
                self._send(content, first, last + 1)

            def _head(self, status: int, length: int, *headers: tuple[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(length))
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()

            def _send(self, content: bytes | Sparse, start: int, end: int) -> None:
                for offset in range(start, end, CHUNK):
                    piece = content[offset:min(offset + CHUNK, end)]
                    try:
                        self.wfile.write(piece)
                    except OSError:  # the client hung up
                        return
                    with server._lock:
                        server.sent += len(piece)

            def log_message(self, format: str, *args) -> None:  # noqa: A002
                pass

        return Handler


def parse_range(value: str, size: int) -> tuple[int, int]:
    """bytes=a-b, bytes=a- or bytes=-n as (first, last), last clipped to the file."""
    unit, _, spec = value.partition("=")
    assert unit == "bytes" and "," not in spec, value
    start, _, end = spec.partition("-")
    if not start:
        return max(size - int(end), 0), size - 1
    return int(start), min(int(end), size - 1) if end else size - 1


@pytest.fixture
def server() -> Iterator[RangeServer]:
    running = RangeServer()
    yield running
    running.close()


@pytest.fixture
def transport() -> Transport:
    return Transport(timeout=5, retries=2, backoff_seconds=0.01, user_agent="mirror-builder-test")


def make_wheel(name: str = "demo", version: str = "1.0", *, metadata: str | None = METADATA,
               compression: int = zipfile.ZIP_DEFLATED, dist_info_first: bool = False,
               extra: dict[str, bytes] | None = None,
               after: dict[str, bytes] | None = None) -> bytes:
    """A wheel as setuptools lays one out: the package, then its .dist-info (METADATA, WHEEL,
    RECORD last); dist_info_first puts the .dist-info before the package instead, and after
    are members written after the .dist-info (but before RECORD)."""
    dist_info = f"{name}-{version}.dist-info"
    package = {f"{name}/__init__.py": b"x = 1\n" * 100, f"{name}/_native.so": PAYLOAD}
    meta = {f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: false\n"}
    if metadata is not None:
        meta = {f"{dist_info}/METADATA": metadata.encode()} | meta
    extra = extra or {}  # more of the package's files
    members = meta | package | extra if dist_info_first else package | extra | meta
    members |= after or {}
    members[f"{dist_info}/RECORD"] = b""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return buffer.getvalue()


WHEEL_PATH = "/files/demo-1.0-cp311-cp311-linux_x86_64.whl"


# -- Transport.get_range ------------------------------------------------------------------
def test_a_suffix_range_gives_the_last_bytes_and_the_files_size(server, transport):
    data = os.urandom(100_000)
    url = server.serve("/f.bin", data)

    answer = transport.get_range(url, None, 1000)

    assert (answer.status, answer.start, answer.size) == (206, 99_000, 100_000)
    assert answer.data == data[-1000:]
    assert transport.requests_made == 1
    assert (transport.range_bytes, transport.full_responses) == (1000, 0)
    assert server.headers[0]["Range"] == "bytes=-1000"
    assert server.headers[0]["Accept-Encoding"] == "identity"


def test_a_range_between_offsets_and_a_range_to_the_end_give_those_bytes(server, transport):
    data = os.urandom(100_000)
    url = server.serve("/f.bin", data)

    middle = transport.get_range(url, 10, 19)
    rest = transport.get_range(url, 99_990, None)

    assert (middle.status, middle.start, middle.data) == (206, 10, data[10:20])
    assert (rest.status, rest.start, rest.data) == (206, 99_990, data[99_990:])
    assert transport.range_bytes == 20


def test_a_range_past_the_end_is_416_with_the_files_size(server, transport):
    url = server.serve("/f.bin", b"0123456789")

    answer = transport.get_range(url, 10, 20)

    assert (answer.status, answer.data, answer.size) == (416, b"", 10)


def test_a_server_that_ignores_ranges_answers_200_and_its_body_is_not_read(server, transport):
    server.ignore_ranges = True
    url = server.serve("/huge.whl", Sparse(HUGE))

    answer = transport.get_range(url, None, BLOCK)

    assert (answer.status, answer.data, answer.size) == (200, b"", HUGE)
    server.wait_until_answered()
    assert server.sent < 32 * 1024 * 1024  # what the sockets' buffers took, not 256 MiB
    assert (transport.range_bytes, transport.full_responses) == (0, 0)


def test_a_range_request_answered_503_is_asked_again(server, transport):
    server.busy = 2
    url = server.serve("/f.bin", b"0123456789")

    answer = transport.get_range(url, 2, 4)

    assert (answer.status, answer.data) == (206, b"234")
    assert server.hits == transport.requests_made == 3


def test_a_206_that_is_not_the_bytes_asked_for_is_refused(server, transport):
    server.shift = 1
    url = server.serve("/f.bin", bytes(range(100)))

    with pytest.raises(BadRangeAnswer, match=r"bytes=10-19 is not those bytes.*11-19/100"):
        transport.get_range(url, 10, 19)
    assert server.hits == 1  # not a transient failure: not asked again


def test_a_206_with_a_content_encoding_is_refused(server, transport):
    server.encoding = "gzip"  # its ranges would count compressed bytes
    url = server.serve("/f.bin", bytes(range(100)))

    with pytest.raises(BadRangeAnswer, match="Content-Encoding: gzip"):
        transport.get_range(url, 10, 19)


def test_file_urls_answer_ranges_from_the_file_and_count_in_no_counter(tmp_path, transport):
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")

    assert transport.get_range(path.as_uri(), None, 3).data == b"789"
    assert transport.get_range(path.as_uri(), 2, 4).data == b"234"
    assert transport.get_range(path.as_uri(), 8, None).data == b"89"
    assert transport.get_range(path.as_uri(), None, 50).data == b"0123456789"
    assert transport.get_range(path.as_uri(), 10, None).status == 416
    assert transport.get_range((tmp_path / "none").as_uri(), 0, 1).status == 404
    assert (transport.requests_made, transport.range_bytes) == (0, 0)


# -- read_wheel_metadata --------------------------------------------------------------------
@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED],
                         ids=["deflated", "stored"])
def test_metadata_of_a_wheel_costs_a_few_kilobytes_not_the_whole_wheel(server, transport,
                                                                       compression):
    wheel = make_wheel(compression=compression)
    url = server.serve(WHEEL_PATH, wheel)

    found = read_wheel_metadata(transport, url + "#sha256=abc")

    assert found is not None
    assert found.text == METADATA
    assert found.member == "demo-1.0.dist-info/METADATA"
    assert found.wheel_size == len(wheel) > 3_000_000
    assert found.bytes_fetched < 200_000
    assert found.requests <= 4
    assert server.hits == transport.requests_made == found.requests
    assert transport.range_bytes == found.bytes_fetched


def test_metadata_at_the_start_of_a_wheel_costs_one_more_block(server, transport):
    url = server.serve(WHEEL_PATH, make_wheel(dist_info_first=True))

    found = read_wheel_metadata(transport, url)

    assert found is not None and found.text == METADATA
    assert found.requests == 2
    assert found.bytes_fetched <= 2 * BLOCK


def test_a_long_metadata_far_from_the_central_directory_costs_one_request(server, transport):
    long_metadata = METADATA + os.urandom(100_000).hex()  # some 200 kB, over many blocks
    wheel = make_wheel(metadata=long_metadata, compression=zipfile.ZIP_STORED,
                       dist_info_first=True)
    url = server.serve(WHEEL_PATH, wheel)

    found = read_wheel_metadata(transport, url, block=16 * 1024)

    assert found is not None and found.text == long_metadata
    assert found.requests == 2  # the last block, then all of METADATA's blocks at once


def many_headers(count: int) -> dict[str, bytes]:
    """Members like torch's thousands of C++ headers: a central directory of megabytes."""
    return {f"demo/include/{'deeply/nested/' * 3}header_{i:05d}.h": b"" for i in range(count)}


def test_a_central_directory_of_megabytes_costs_only_its_tail(server, transport):
    # torch's wheel: 1.3 MB of central directory, .dist-info written last.
    headers = many_headers(12_000)
    wheel = make_wheel(extra=headers)
    url = server.serve(WHEEL_PATH, wheel)
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        directory = sum(46 + len(i.filename) for i in archive.infolist())
    assert directory > 1_000_000

    found = read_wheel_metadata(transport, url)

    assert found is not None and found.text == METADATA
    assert found.bytes_fetched <= 3 * BLOCK
    assert found.requests <= 2


def test_a_dist_info_written_first_costs_the_directorys_first_block(server, transport):
    # torch's wheels before 2.6 were repacked with .dist-info first.
    wheel = make_wheel(dist_info_first=True, extra=many_headers(12_000))
    url = server.serve(WHEEL_PATH, wheel)

    found = read_wheel_metadata(transport, url)

    assert found is not None and found.text == METADATA
    assert found.bytes_fetched <= 4 * BLOCK
    assert found.requests == 3  # the last block, the directory's first, METADATA's


def test_a_name_carrying_a_directory_signature_does_not_misplace_entries(server, transport):
    trap = {"demo/PK\x01\x02trap.py": b"PK\x01\x02" * 50}
    url = server.serve(WHEEL_PATH, make_wheel(extra=trap))

    found = read_wheel_metadata(transport, url)

    assert found is not None and found.text == METADATA


def test_a_metadata_whose_bytes_do_not_match_its_crc_gives_none(server, transport, caplog):
    wheel = bytearray(make_wheel(compression=zipfile.ZIP_STORED))
    at = wheel.find(b"A long description.")
    wheel[at] = ord("B")
    url = server.serve(WHEEL_PATH, bytes(wheel))

    assert read_wheel_metadata(transport, url) is None
    assert "does not match its size and CRC" in caplog.text


def test_metadata_of_a_zip64_wheel(server, transport, monkeypatch):
    with monkeypatch.context() as limits:  # zip64 records without writing 4 GiB
        limits.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 1)
        limits.setattr(zipfile, "ZIP64_LIMIT", 1024)
        wheel = make_wheel()
    assert zipfile.stringEndArchive64 in wheel[-200:]
    url = server.serve(WHEEL_PATH, wheel)

    found = read_wheel_metadata(transport, url)

    assert found is not None and found.text == METADATA
    assert found.bytes_fetched < 200_000


def test_a_server_that_ignores_ranges_gives_none_without_sending_the_wheel(server, transport,
                                                                           caplog):
    server.ignore_ranges = True
    url = server.serve(WHEEL_PATH, Sparse(HUGE))

    assert read_wheel_metadata(transport, url) is None
    server.wait_until_answered()
    assert server.hits == 1
    assert server.sent < 32 * 1024 * 1024
    assert "ignores byte ranges" in caplog.text


def test_a_file_that_is_not_a_zip_gives_none(server, transport, caplog):
    url = server.serve(WHEEL_PATH, os.urandom(300_000))

    assert read_wheel_metadata(transport, url) is None
    assert "not a readable wheel" in caplog.text
    assert server.hits <= 2


def test_a_wheel_without_metadata_gives_none(server, transport, caplog):
    url = server.serve(WHEEL_PATH, make_wheel(metadata=None))

    assert read_wheel_metadata(transport, url) is None
    assert "no demo-1.0.dist-info/METADATA" in caplog.text


def test_a_wheel_with_two_dist_info_folders_gives_none(server, transport, caplog):
    wheel = make_wheel(extra={"other-2.0.dist-info/METADATA": METADATA.encode()})
    url = server.serve(WHEEL_PATH, wheel)

    assert read_wheel_metadata(transport, url) is None
    assert "has 2: demo-1.0.dist-info, other-2.0.dist-info" in caplog.text


def test_a_wheel_whose_dist_info_is_of_another_project_gives_none(server, transport, caplog):
    url = server.serve("/files/other-1.0-py3-none-any.whl", make_wheel())

    assert read_wheel_metadata(transport, url) is None
    assert "is not of project other" in caplog.text


def test_a_central_directory_claiming_more_than_the_bound_is_not_fetched(server, transport,
                                                                         caplog):
    body = make_wheel()
    # The end record now says: everything before me is the central directory.
    end_record = struct.pack(zipfile.structEndArchive, zipfile.stringEndArchive, 0, 0, 1, 1,
                             len(body), 0, 0)
    url = server.serve(WHEEL_PATH, body + end_record)

    assert read_wheel_metadata(transport, url, max_bytes=1024 * 1024) is None
    assert "more than 1048576 bytes" in caplog.text
    assert server.hits == 1
    assert transport.range_bytes <= BLOCK


def test_a_zip64_central_directory_claiming_a_petabyte_is_given_up_at_once(server, transport,
                                                                          caplog):
    petabyte = 2 ** 50
    # zip64 end record, its locator, then the end record that points to them.
    records = (struct.pack(zipfile.structEndArchive64, zipfile.stringEndArchive64, 44, 45, 45,
                           0, 0, 1, 1, petabyte, 0)
               + struct.pack(zipfile.structEndArchive64Locator,
                             zipfile.stringEndArchive64Locator, 0, petabyte, 1)
               + struct.pack(zipfile.structEndArchive, zipfile.stringEndArchive, 0xFFFF, 0xFFFF,
                             0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))
    url = server.serve(WHEEL_PATH, Sparse(petabyte, records))

    assert read_wheel_metadata(transport, url) is None
    assert re.search(r"more than 8388608 bytes \(\d{16} asked for at once\)", caplog.text)
    assert server.hits == 1


def test_reading_stops_at_the_byte_bound_when_blocks_add_up_to_it(server, transport, caplog):
    block = 16 * 1024
    # METADATA in the middle of a large directory: the whole directory must be read.
    wheel = make_wheel(extra={f"demo/data/{n:06d}.txt": b"" for n in range(10_000)},
                       after={f"demo/more/{n:06d}.txt": b"" for n in range(10_000)})
    start_dir = zipfile.ZipFile(io.BytesIO(wheel)).start_dir
    central_directory = len(wheel) - start_dir // block * block  # its blocks, tail included
    assert central_directory > 4 * block
    url = server.serve(WHEEL_PATH, wheel)

    # Enough for the central directory, not for METADATA's block too.
    bound = central_directory + 100
    assert read_wheel_metadata(transport, url, block=block, max_bytes=bound) is None
    assert f"more than {bound} bytes" in caplog.text
    assert transport.range_bytes == central_directory
    assert read_wheel_metadata(transport, url, block=block, max_bytes=bound + block) is not None


def test_a_wheel_at_a_file_url_is_read_from_the_file(tmp_path, transport):
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    path.write_bytes(make_wheel())

    found = read_wheel_metadata(transport, path.as_uri())

    assert found is not None and found.text == METADATA
    assert found.requests <= 4
    assert transport.requests_made == 0


def test_an_index_that_cannot_be_reached_is_an_upstream_error(transport):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    transport.retries = 0

    with pytest.raises(UpstreamError, match=f"cannot reach http://127.0.0.1:{port}/"):
        read_wheel_metadata(transport, f"http://127.0.0.1:{port}{WHEEL_PATH}")


# -- the fallback in the resolver's finder --------------------------------------------------
def test_install_requirements_come_from_the_wheel_that_fits_the_target(server, tmp_path):
    """An index with neither PEP 658 files nor a JSON API, and an sdist whose PKG-INFO is too
    old to trust: the finder reads METADATA from the wheel that fits the target, by ranges."""
    import tarfile

    from mirror_builder.resolve.resolver import Candidate
    from mirror_builder.resolve.upstream import UpstreamIndex, UpstreamOptions
    from mirror_builder.source.finders import UpstreamFinder
    from packaging.version import Version

    sdist = tmp_path / "demo-1.0.tar.gz"
    info = tmp_path / "PKG-INFO"
    info.write_text("Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
    with tarfile.open(sdist, "w:gz") as tar:
        tar.add(info, arcname="demo-1.0/PKG-INFO")
    other = make_wheel(metadata=METADATA.replace("Requires-Dist", "X-Not-Requires"))
    mac, linux = ("/files/demo-1.0-cp311-cp311-macosx_11_0_arm64.whl",
                  "/files/demo-1.0-cp311-cp311-linux_x86_64.whl")
    server.serve(mac, other)
    server.serve(linux, make_wheel())
    server.serve("/files/demo-1.0.tar.gz", sdist.read_bytes())
    page = "".join(f'<a href="{path}">{path.rsplit("/", 1)[1]}</a>\n'
                   for path in (mac, linux, "/files/demo-1.0.tar.gz"))
    server.serve("/simple/demo/", page.encode())
    server.types["/simple/demo/"] = "text/html"
    upstream = UpstreamIndex(server.url + "/simple/", tmp_path / "cache",
                             UpstreamOptions(json_api_url=None, retries=0))
    finder = UpstreamFinder(upstream, tmp_path / "sdists",
                            fits=lambda filename: "linux_x86_64" in filename)
    (file,) = [f for f in finder.project_files("demo") if f.is_sdist]

    requires = finder.dependencies(Candidate("demo", Version("1.0"), file))

    assert requires == [line.split(": ", 1)[1] for line in METADATA.splitlines()
                        if line.startswith("Requires-Dist: ")]
    assert finder.from_wheel == {("demo", Version("1.0")): linux.rsplit("/", 1)[1]}
    assert upstream.transport.range_bytes < 200_000

    # What an override says our build does not have (torch's nvidia-*) is left out.
    overridden = UpstreamFinder(upstream, tmp_path / "sdists",
                                fits=lambda filename: "linux_x86_64" in filename,
                                ignored={"demo": ("id*",)})
    assert overridden.dependencies(Candidate("demo", Version("1.0"), file)) == [
        "rich; extra == 'cli'"]

"""Pages and .metadata answered from memory (serve/smallfiles.py) are answered exactly as
FileResponse answers them from disk, and never staler than the file on disk."""

import os

import pytest

from mirror_builder.serve import smallfiles
from mirror_builder.serve.server import JSON_TYPE
from server_harness import WHEEL, LiveServer, demo_index, server_errors

TARGETS = [("/simple/demo/", {"Accept": "text/html"}), ("/simple/demo/", {"Accept": JSON_TYPE}),
           ("/simple/", {}), (f"/files/demo/{WHEEL}.metadata", {}),
           ("/sources/simple/demo/", {"Accept": JSON_TYPE})]


@pytest.fixture
def site(tmp_path, caplog):
    root = demo_index(tmp_path / "site")
    server = LiveServer(root, access_log=tmp_path / "access.log")
    yield server, root
    server.close()
    assert server_errors(caplog) == []


def comparable(reply):
    return reply.status, {k: v for k, v in reply.headers.items() if k != "date"}, reply.body


@pytest.mark.parametrize("target, headers", TARGETS)
def test_a_plain_request_gets_what_fileresponse_gives(site, target, headers):
    server, _ = site
    from_memory = [server.get(target, **headers) for _ in range(2)]  # read, then kept
    # A validator that matches nothing sends the request FileResponse's way, for a 200.
    from_disk = server.get(target, If_None_Match='"none"', **headers)
    assert from_disk.status == 200
    assert comparable(from_memory[0]) == comparable(from_memory[1]) == comparable(from_disk)
    head = server.request("HEAD", target, headers)
    assert comparable(head)[:2] == comparable(from_disk)[:2] and head.body == b""


def test_a_page_replaced_on_disk_is_served_new_at_once(site):
    server, root = site
    page = root / "simple" / "demo" / "index.html"
    assert server.get("/simple/demo/").body == page.read_bytes()
    for text in ("second", "third, longer than the second", "third, longer than the second"):
        new = page.with_name(".new.tmp")
        new.write_text(text)
        os.replace(new, page)  # as the index writes every page
        reply = server.get("/simple/demo/")
        assert reply.body == text.encode()
        assert reply.headers["etag"] == f'"{page.stat().st_mtime_ns:x}-{page.stat().st_size:x}"'


def test_ranges_and_conditions_still_go_to_fileresponse(site):
    server, root = site
    first = server.get("/simple/demo/")
    assert server.get("/simple/demo/", Range="bytes=0-9").body == first.body[:10]
    assert server.get("/simple/demo/", If_None_Match=first.headers["etag"]).status == 304
    assert server.get("/simple/demo/", If_Match='"none"').status == 412


def test_a_file_over_the_size_kept_is_sent_from_disk(site, monkeypatch):
    server, root = site
    monkeypatch.setattr(smallfiles, "MAX_FILE_BYTES", 10)
    reply = server.get("/simple/demo/")
    assert reply.status == 200 and reply.body == (root / "simple/demo/index.html").read_bytes()


def test_the_memory_kept_is_bounded(monkeypatch, tmp_path):
    import asyncio

    from aiohttp.test_utils import make_mocked_request

    monkeypatch.setattr(smallfiles, "MAX_TOTAL_BYTES", 250)
    files = smallfiles.SmallFiles()
    for number in range(5):
        path = tmp_path / f"page{number}"
        path.write_bytes(bytes([number]) * 100)
        response = asyncio.run(files.response(make_mocked_request("GET", "/"), path, "text/plain"))
        assert response.body == bytes([number]) * 100
    assert files._total <= 250 and len(files._kept) == 2

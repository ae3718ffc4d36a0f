"""The index server's HTTP details on a real server on 127.0.0.1: the access log (every request,
whatever bytes it carries; the body's size), byte ranges and If-Range as RFC 9110 says."""

import re

import pytest

from server_harness import WHEEL, LiveServer, demo_index, server_errors

LINE = re.compile(r'^(?P<remote>\S+) (?P<user>\S+) \[[^]]+\] "(?P<request>[^"]*)" (?P<status>\d{3}) '
                  r'(?P<size>\d+|-) "(?P<accept>[^"]*)" "(?P<agent>[^"]*)" [0-9.]+$')


@pytest.fixture
def site(tmp_path, caplog):
    root = demo_index(tmp_path / "site")
    log = tmp_path / "access.log"
    server = LiveServer(root, access_log=log)
    yield server, root, log
    server.close()
    assert server_errors(caplog) == []  # no 500, no traceback


def log_lines(log):
    lines = log.read_text(encoding="ascii").splitlines()
    for line in lines:
        assert LINE.match(line), line
    return [LINE.match(line).groupdict() for line in lines]


def test_a_request_with_bytes_that_are_not_utf8_is_logged_escaped(site):
    server, _, log = site
    reply = server.get("/simple/demo/", Accept=b"text/html, \xff\xfe", User_Agent=b"pip \xc3\x28 \"x\"")
    assert reply.status == 200
    (entry,) = log_lines(log)
    assert entry["accept"] == "text/html, \\xff\\xfe"
    assert entry["agent"] == "pip \\xc3( \\x22x\\x22"
    assert entry["request"] == "GET /simple/demo/ HTTP/1.1"


def test_every_request_is_logged_one_line_each_whatever_it_asks(site):
    server, _, log = site
    targets = ["/", "/simple/", "/simple/%FF%FE/", "/files/demo/%00", "/simple/" + "a" * 300 + "/",
               "/nowhere", "/simple/Demo"]
    for target in targets:
        server.get(target, Accept=b"\x80")
    server.request("POST", "/simple/")
    entries = log_lines(log)
    assert [e["request"].split()[1] for e in entries] == targets + ["/simple/"]


def test_the_size_logged_is_the_body_not_the_headers(site):
    server, root, log = site
    whole = (root / "files" / "demo" / WHEEL).read_bytes()
    replies = [server.get(f"/files/demo/{WHEEL}"),
               server.get(f"/files/demo/{WHEEL}", Range="bytes=10-19"),
               server.request("HEAD", f"/files/demo/{WHEEL}"),
               server.get("/simple/demo/"),
               server.get("/simple/missing/"),
               server.get("/")]
    etag = replies[0].headers["etag"]
    replies.append(server.get(f"/files/demo/{WHEEL}", If_None_Match=etag))
    sizes = [int(e["size"]) for e in log_lines(log)]
    assert sizes == [len(r.body) for r in replies]
    assert sizes[:3] == [len(whole), 10, 0] and sizes[-1] == 0


def test_several_ranges_get_the_whole_file_not_a_416(site):
    server, root, _ = site
    whole = (root / "files" / "demo" / WHEEL).read_bytes()
    for ranges in ("bytes=0-1,5-6", "bytes=0-1, 3-", "bytes=-5,0-0"):
        reply = server.get(f"/files/demo/{WHEEL}", Range=ranges)
        assert reply.status == 200 and reply.body == whole, ranges
        assert "content-range" not in reply.headers


def test_a_range_that_is_not_valid_is_ignored(site):
    server, root, _ = site
    whole = (root / "files" / "demo" / WHEEL).read_bytes()
    for value in ("bytes=5-2", "items=0-10", "bytes=a-b", "bytes=-", "bytes 0-1", "bytes=--1"):
        reply = server.get(f"/files/demo/{WHEEL}", Range=value)
        assert reply.status == 200 and reply.body == whole, value


def test_one_range_is_served_and_an_unsatisfiable_one_is_416(site):
    server, root, _ = site
    whole = (root / "files" / "demo" / WHEEL).read_bytes()
    reply = server.get(f"/files/demo/{WHEEL}", Range="bytes=-10")
    assert reply.status == 206 and reply.body == whole[-10:]
    assert reply.headers["content-range"] == f"bytes {len(whole) - 10}-{len(whole) - 1}/{len(whole)}"
    for unsatisfiable in (f"bytes={len(whole)}-", f"bytes={len(whole) + 5}-{len(whole) + 9}",
                          "bytes=-0"):
        reply = server.get(f"/files/demo/{WHEEL}", Range=unsatisfiable)
        assert reply.status == 416, unsatisfiable
        assert reply.headers["content-range"] == f"bytes */{len(whole)}"


def test_if_range_with_the_current_etag_or_date_gets_the_range(site):
    server, root, _ = site
    whole = (root / "files" / "demo" / WHEEL).read_bytes()
    first = server.get(f"/files/demo/{WHEEL}")
    for validator in (first.headers["etag"], first.headers["last-modified"]):
        reply = server.get(f"/files/demo/{WHEEL}", Range="bytes=0-3", If_Range=validator)
        assert reply.status == 206 and reply.body == whole[:4], validator


def test_if_range_that_does_not_match_gets_the_whole_file(site):
    server, root, _ = site
    whole = (root / "files" / "demo" / WHEEL).read_bytes()
    first = server.get(f"/files/demo/{WHEEL}")
    for validator in ('"another"', f"W/{first.headers['etag']}", "Thu, 01 Jan 2099 00:00:00 GMT",
                      "Thu, 01 Jan 1970 00:00:00 GMT", "not a date", b"\xff"):
        reply = server.get(f"/files/demo/{WHEEL}", Range="bytes=0-3", If_Range=validator)
        assert reply.status == 200 and reply.body == whole, validator


def test_a_head_request_with_a_range_is_answered_as_a_plain_head(site):
    server, _, _ = site
    reply = server.request("HEAD", f"/files/demo/{WHEEL}", {"Range": "bytes=0-3"})
    assert reply.status == 200 and reply.body == b""


def test_conditional_requests_still_get_304(site):
    server, _, _ = site
    first = server.get("/simple/demo/")
    assert server.get("/simple/demo/", If_None_Match=first.headers["etag"]).status == 304
    assert server.get("/simple/demo/", If_Modified_Since=first.headers["last-modified"]).status == 304
    assert server.get("/simple/demo/", If_None_Match=b'"\xff"').status == 200
    # Header names in any case, as HTTP says.
    reply = server.request("GET", "/simple/demo/", {"if-none-match": first.headers["etag"]})
    assert reply.status == 304
    reply = server.request("GET", f"/files/demo/{WHEEL}", {"range": "bytes=0-3",
                                                          "if-range": first.headers["etag"]})
    assert reply.status == 200  # the page's ETag is not the wheel's


def test_the_home_page_names_the_host_asked_for_and_never_fails_on_a_strange_one(site):
    server, _, _ = site
    assert b"http://index.example:8080/simple/" in server.get("/", Host="index.example:8080").body
    for host in (b"\xff\xfe", b"a b", b"<script>"):
        reply = server.send(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
        assert reply.status == 200 and b"http://HOST/simple/" in reply.body, host
    reply = server.send(b"GET / HTTP/1.0\r\n\r\n")
    assert reply.status == 200 and b"http://HOST/simple/" in reply.body

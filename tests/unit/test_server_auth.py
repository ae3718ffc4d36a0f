"""A private index: with a tokens file, every request needs a read token (HTTP Basic, as pip, uv
and Poetry send it), and without one every path gets the same 401, so nothing tells whether a
project exists. On a real server on 127.0.0.1."""

import base64
import os

import pytest

import mirror_builder.serve.httpauth as httpauth
from mirror_builder.serve.tokens import add_token, revoke_token
from server_harness import WHEEL, LiveServer, demo_index, server_errors

PATHS = ["/", "/simple/", "/simple/demo/", "/simple/missing/", "/simple/Demo", "/simple",
         f"/files/demo/{WHEEL}", "/files/demo/missing.whl", "/sources/simple/demo/",
         "/nowhere", "/simple/%2Fetc/", "/files/demo/%00", "/find-links.html",
         "/project/demo/", f"/project/demo/log/{WHEEL}"]


def basic(name: str, token: str | bytes) -> bytes:
    raw = name.encode() + b":" + (token if isinstance(token, bytes) else token.encode())
    return b"Basic " + base64.b64encode(raw)


@pytest.fixture
def private(tmp_path, caplog):
    root = demo_index(tmp_path / "site")
    tokens = tmp_path / "tokens"
    token = add_token(tokens, "ci")
    log = tmp_path / "access.log"
    server = LiveServer(root, tokens_file=tokens, access_log=log)
    yield server, tokens, token, log
    server.close()
    assert [e for e in server_errors(caplog) if "no request is admitted" not in e] == []


def assert_the_one_401(reply, what):
    assert reply.status == 401, (what, reply)
    assert reply.headers["www-authenticate"] == 'Basic realm="mirror-builder"', what
    assert reply.body == httpauth.unauthorized().text.encode(), what


def test_a_valid_token_opens_every_page(private):
    server, _, token, log = private
    auth = basic("ci", token)
    assert server.get("/simple/demo/", Authorization=auth).status == 200
    assert server.get(f"/files/demo/{WHEEL}", Authorization=auth).status == 200
    assert server.get("/sources/simple/demo/", Authorization=auth).status == 200
    assert server.get("/simple/Demo/", Authorization=auth).status == 301
    assert server.get("/simple/missing/", Authorization=auth).status == 404
    home = server.get("/", Authorization=auth)
    assert home.status == 200 and b"NAME:TOKEN@" in home.body and b"netrc" in home.body
    assert all(" ci [" in line for line in log.read_text().splitlines())  # who, in the log


@pytest.mark.parametrize("header", [
    None,                                        # no header
    b"Basic " + base64.b64encode(b"ci:wrong"),   # wrong token
    b"Basic " + base64.b64encode(b"nobody:x"),   # unknown name
    b"Basic !!!not-base64!!!",                   # not base64
    b"Basic " + base64.b64encode(b"no colon"),   # no colon
    b"Basic " + base64.b64encode(b"ci:\xff\xfe"),  # not UTF-8 inside
    b"Basic \xff\xfe",                           # not UTF-8 on the wire
    b"Basic",                                    # nothing after the scheme
    b"Bearer abc",                               # another scheme
    b"Basic " + base64.b64encode(b"ci:" + b"x" * 200),  # longer than bcrypt reads
])
def test_without_valid_credentials_every_path_gets_the_same_401(private, header):
    server, _, token, _ = private
    for path in PATHS:
        headers = {} if header is None else {"Authorization": header}
        assert_the_one_401(server.get(path, **headers), (path, header))
        assert_the_one_401(server.request("POST", path, headers), (path, header, "POST"))
        head = server.request("HEAD", path, headers)
        assert head.status == 401 and head.body == b"" and "www-authenticate" in head.headers


def test_the_right_token_under_another_name_is_refused(private):
    server, tokens, token, _ = private
    add_token(tokens, "second")
    assert_the_one_401(server.get("/simple/", Authorization=basic("second", token)), "swap")


def test_a_revoked_token_stops_working_without_a_restart(private):
    server, tokens, token, _ = private
    auth = basic("ci", token)
    assert server.get("/simple/", Authorization=auth).status == 200  # now remembered
    revoke_token(tokens, "ci")
    assert_the_one_401(server.get("/simple/", Authorization=auth), "revoked")
    later = add_token(tokens, "later")  # and a new one works at once
    assert server.get("/simple/", Authorization=basic("later", later)).status == 200


def test_a_verified_header_pays_for_bcrypt_once(private, monkeypatch):
    server, _, token, _ = private
    calls = []
    real = httpauth.verify
    monkeypatch.setattr(httpauth, "verify", lambda *a: calls.append(a[1]) or real(*a))
    for _ in range(5):
        assert server.get("/simple/demo/", Authorization=basic("ci", token)).status == 200
    for _ in range(3):
        server.get("/simple/demo/", Authorization=basic("ci", "wrong"))
    assert calls == ["ci"] + ["ci"] * 3  # the good header once, each bad one every time


def test_a_tokens_file_broken_while_serving_admits_nobody(private, caplog):
    server, tokens, token, _ = private
    auth = basic("ci", token)
    assert server.get("/simple/", Authorization=auth).status == 200
    tokens.write_text(tokens.read_text() + "garbage\n")
    assert_the_one_401(server.get("/simple/", Authorization=auth), "broken file")
    assert f"{tokens}:5: expected NAME:HASH" in caplog.text  # the operator is told why
    os.unlink(tokens)
    assert_the_one_401(server.get("/simple/", Authorization=auth), "no file")


def test_each_app_remembers_only_its_own_verifications(tmp_path):
    root = demo_index(tmp_path / "site")
    first, second = tmp_path / "first", tmp_path / "second"
    token = add_token(first, "ci")
    add_token(second, "ci")
    one, two = LiveServer(root, tokens_file=first), LiveServer(root, tokens_file=second)
    try:
        assert one.get("/simple/", Authorization=basic("ci", token)).status == 200
        assert_the_one_401(two.get("/simple/", Authorization=basic("ci", token)), "other app")
    finally:
        one.close()
        two.close()

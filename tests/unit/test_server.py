"""The index server: content negotiation and HTTP caching, against aiohttp's test client."""

import asyncio
import json
import zipfile

import pytest
from aiohttp.test_utils import TestClient, TestServer

from mirror_builder.index.wheelindex import WheelIndex
from mirror_builder.serve.server import HTML_TYPE, JSON_TYPE, make_app, negotiate


@pytest.mark.parametrize("accept, chosen", [
    (None, "text/html"),
    ("", "text/html"),
    ("*/*", "text/html"),
    (f"{JSON_TYPE}, {HTML_TYPE};q=0.1, text/html;q=0.01", JSON_TYPE),  # pip
    (f"{JSON_TYPE};q=0.2, text/html", "text/html"),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/html"),  # browser
    ("application/*", HTML_TYPE),
    (f"application/*;q=0.5, {JSON_TYPE}", JSON_TYPE),
    (f"*/*;q=0.5, text/html;q=0", HTML_TYPE),  # an explicit q=0 refuses that type
    (f"{JSON_TYPE};q=abc, text/html;q=0.1", "text/html"),  # a malformed q counts as 0
    ("image/png", None),
])
def test_negotiation_honours_q_values_and_specificity(accept, chosen):
    assert negotiate(accept) == chosen


@pytest.fixture
def output(tmp_path):
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("demo/__init__.py", "x = 1\n" * 200)
        zf.writestr("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
        zf.writestr("demo-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\n")
        zf.writestr("demo-1.0.dist-info/RECORD", "")
    WheelIndex(tmp_path / "out").add(wheel, ">=3.8")
    return tmp_path / "out"


def request(output, method, path, **headers):
    async def go():
        async with TestClient(TestServer(make_app(output))) as client:
            response = await client.request(method, path, headers=headers, allow_redirects=False)
            return response.status, dict(response.headers), await response.read()
    return asyncio.run(go())


def test_a_project_page_comes_as_json_or_html_with_vary_accept(output):
    status, headers, body = request(output, "GET", "/simple/demo/", Accept=JSON_TYPE)
    assert status == 200 and headers["Content-Type"] == JSON_TYPE
    assert headers["Vary"] == "Accept"
    assert json.loads(body)["meta"] == {"api-version": "1.1"}
    status, headers, body = request(output, "GET", "/simple/demo/", Accept="text/html")
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"demo-1.0-py3-none-any.whl" in body


def test_the_format_query_parameter_overrides_accept(output):
    _, headers, _ = request(output, "GET", f"/simple/demo/?format={JSON_TYPE}", Accept="text/html")
    assert headers["Content-Type"] == JSON_TYPE


def test_an_unacceptable_type_is_406(output):
    assert request(output, "GET", "/simple/demo/", Accept="image/png")[0] == 406


def test_a_repeated_request_with_the_etag_is_304(output):
    _, headers, _ = request(output, "GET", "/simple/demo/", Accept=JSON_TYPE)
    status, _, body = request(output, "GET", "/simple/demo/", Accept=JSON_TYPE,
                              **{"If-None-Match": headers["Etag"]})
    assert status == 304 and body == b""
    status, _, _ = request(output, "GET", "/simple/demo/", Accept=JSON_TYPE,
                           **{"If-Modified-Since": headers["Last-Modified"]})
    assert status == 304


def test_wheels_are_served_with_byte_ranges(output):
    whole = (output / "files" / "demo" / "demo-1.0-py3-none-any.whl").read_bytes()
    status, headers, body = request(output, "GET", "/files/demo/demo-1.0-py3-none-any.whl",
                                    Range="bytes=10-19")
    assert status == 206
    assert body == whole[10:20]
    assert headers["Content-Range"] == f"bytes 10-19/{len(whole)}"


def test_metadata_files_are_served_as_text(output):
    status, headers, body = request(output, "GET", "/files/demo/demo-1.0-py3-none-any.whl.metadata")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert body.startswith(b"Metadata-Version: 2.1")


def test_names_are_redirected_to_their_normalized_form(output):
    status, headers, _ = request(output, "GET", "/simple/Demo/")
    assert status == 301 and headers["Location"] == "/simple/demo/"
    status, headers, _ = request(output, "GET", "/simple/demo")
    assert status == 301 and headers["Location"] == "/simple/demo/"


def test_nothing_outside_the_files_is_served(output):
    assert request(output, "GET", "/files/demo/..%2F..%2Fsimple%2Findex.json")[0] == 404
    assert request(output, "GET", "/files/demo/.index.lock")[0] == 404
    assert request(output, "GET", "/simple/missing/")[0] == 404


def test_head_answers_without_a_body(output):
    status, headers, body = request(output, "HEAD", "/files/demo/demo-1.0-py3-none-any.whl")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0

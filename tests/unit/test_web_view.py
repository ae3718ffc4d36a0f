"""serve's web view, for people: browsers get HTML pages at / and /project/<name>/ (installers
and curl keep the plain-text usage and the PEP 503 pages), every value from the output escaped,
a build log only from beside its record, nothing outside the output reachable."""

import json

import pytest

from mirror_builder.index.wheelindex import WheelIndex
from mirror_builder.layout import OutputLayout
from mirror_builder.serve import webgraph
from test_index import make_wheel
from test_server import request

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
WHEEL = "demo-1.0-py3-none-any.whl"


@pytest.fixture
def output(tmp_path):
    index = WheelIndex(tmp_path / "out")
    index.add(make_wheel(tmp_path, WHEEL), None)
    layout = OutputLayout(index.root)
    record = {"name": "demo", "version": "1.0", "wheel": WHEEL, "target": {"name": "bookworm"},
              "variant": "cpu", "built_from_source": True, "seconds": 2.5,
              "started_at": "2026-11-30T00:00:00", "patches": [{"name": "demo/1.0/fix.patch"}],
              "source": {"url": "https://x/demo-1.0.tar.gz", "sha256": "ab" * 32},
              "image": {"tag": "img:1", "id": "cd" * 32},
              "job": {"trigger": "approved", "detail": "<script>alert(1)</script>"},
              "build_env": {"freeze": ["setuptools==80.0"]}}
    layout.records.folder("demo").mkdir(parents=True)
    layout.records.record("demo", WHEEL).write_text(json.dumps(record))
    layout.records.log("demo", WHEEL).write_text("[mirror-builder] built it\n")
    layout.graph().write_text(json.dumps({"nodes": [{"id": "demo==1.0", "name": "demo"}],
                                          "edges": [{"from": "demo==1.0", "to": "lib==2.0",
                                                     "kind": "install"}]}))
    layout.job_history.parent.mkdir(parents=True, exist_ok=True)
    layout.job_history.write_text(json.dumps({"package": "broken", "version": "0.1",
                                              "result": "failed", "message": "no zmq.h"}) + "\n")
    return index.root


def test_a_browser_gets_the_html_home_and_curl_the_plain_usage(output):
    status, headers, body = request(output, "GET", "/", Accept=BROWSER)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'href="/project/demo/"' in body and b"no zmq.h" in body
    status, headers, body = request(output, "GET", "/", Accept="*/*")
    assert headers["Content-Type"].startswith("text/plain") and b"pip install" in body


def test_a_project_page_shows_each_build_record_escaped(output):
    status, _, body = request(output, "GET", "/project/demo/", Accept=BROWSER)
    text = body.decode()
    assert status == 200
    for shown in ("demo 1.0", "bookworm", "https://x/demo-1.0.tar.gz", "demo/1.0/fix.patch",
                  "setuptools==80.0", f"/project/demo/log/{WHEEL}"):
        assert shown in text, shown
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


@pytest.mark.skipif(webgraph.shutil.which("dot") is None, reason="needs Graphviz's dot")
def test_the_graph_is_drawn_inline_as_svg(output):
    _, _, body = request(output, "GET", "/project/demo/")
    assert b"<svg" in body and b"lib==2.0" in body


def test_a_build_log_comes_from_beside_its_record_only(output):
    status, headers, body = request(output, "GET", f"/project/demo/log/{WHEEL}")
    assert status == 200 and body == b"[mirror-builder] built it\n"
    assert headers["Content-Type"].startswith("text/plain")
    for path in ("/project/demo/log/..%2F..%2Fjobs%2Fhistory.jsonl", "/project/demo/log/x.log",
                 f"/project/other/log/{WHEEL}", "/project/..%2Frecords/", "/project/missing/",
                 "/project/demo/log/.hidden.whl", "/project/%00/"):
        assert request(output, "GET", path)[0] == 404, path


def test_a_name_that_is_not_normalized_is_redirected(output):
    status, headers, _ = request(output, "GET", "/project/Demo/")
    assert status == 301 and headers["Location"] == "/project/demo/"

"""serve's fallback for projects the index does not carry: off by default (404), a redirect to
upstream's page, or upstream's page with its sdists removed, marked as not built here. A
project we carry is never answered from upstream."""

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from mirror_builder.errors import UpstreamError
from mirror_builder.resolve.pages import DistributionFile
from mirror_builder.serve.fallback import Fallback
from mirror_builder.serve.server import JSON_TYPE, make_app
from test_server import output  # noqa: F401  (the fixture: an index carrying demo)

UPSTREAM = "https://upstream.example/simple/"
IDNA = [
    DistributionFile("idna-3.10-py3-none-any.whl", "https://files.example/idna-3.10-py3-none-any.whl",
                     "aa" * 32, ">=3.6", has_metadata=True, size=70),
    DistributionFile("idna-3.10.tar.gz", "https://files.example/idna-3.10.tar.gz", "bb" * 32),
    DistributionFile("idna-3.9-py3-none-any.whl", "https://files.example/idna-3.9-py3-none-any.whl",
                     "cc" * 32, yanked=True, yanked_reason="bad"),
]


class Upstream:
    def __init__(self, files=None, error=None):
        self.files, self.error, self.asked = files or {}, error, []

    def __call__(self, project):
        self.asked.append(project)
        if self.error:
            raise self.error
        return self.files.get(project, [])


def ask(output, fallback, path, **headers):
    async def go():
        async with TestClient(TestServer(make_app(output, fallback=fallback))) as client:
            response = await client.get(path, headers=headers, allow_redirects=False)
            return response.status, dict(response.headers), await response.read()
    return asyncio.run(go())


def test_without_a_fallback_a_project_we_do_not_carry_is_not_found(output):
    assert ask(output, None, "/simple/idna/")[0] == 404


def test_redirect_sends_the_installer_to_upstreams_page(output):
    status, headers, _ = ask(output, Fallback("redirect", UPSTREAM), "/simple/idna/")
    assert status == 307 and headers["Location"] == f"{UPSTREAM}idna/"


def test_a_name_is_normalized_before_it_falls_back(output):
    status, headers, _ = ask(output, Fallback("redirect", UPSTREAM), "/simple/IDNA/")
    assert status == 301 and headers["Location"] == "/simple/idna/"


def test_wheels_only_keeps_upstreams_wheels_and_hashes_and_drops_its_sdists(output):
    upstream = Upstream({"idna": IDNA})
    status, headers, body = ask(output, Fallback("wheels-only", UPSTREAM, upstream),
                                "/simple/idna/", Accept=JSON_TYPE)
    assert status == 200 and headers["Content-Type"] == JSON_TYPE
    page = json.loads(body)
    assert [f["filename"] for f in page["files"]] == ["idna-3.10-py3-none-any.whl",
                                                      "idna-3.9-py3-none-any.whl"]
    first, yanked = page["files"]
    assert first["url"] == IDNA[0].url and first["hashes"] == {"sha256": "aa" * 32}
    assert first["core-metadata"] is True and first["requires-python"] == ">=3.6"
    assert yanked["yanked"] == "bad"
    assert page["versions"] == ["3.9", "3.10"]
    assert page["_mirror-builder"]["built_from_source"] is False
    assert headers["X-Mirror-Builder-Origin"] == "upstream"


def test_wheels_only_html_is_marked_and_links_with_hashes(output):
    upstream = Upstream({"idna": IDNA})
    status, headers, body = ask(output, Fallback("wheels-only", UPSTREAM, upstream),
                                "/simple/idna/", Accept="text/html")
    text = body.decode()
    assert status == 200 and '<meta name="mirror-builder:origin" content="upstream">' in text
    assert f'href="{IDNA[0].url}#sha256={"aa" * 32}"' in text and ".tar.gz" not in text
    assert "not built from source by this index" in text


def test_a_project_we_carry_never_asks_upstream(output):
    upstream = Upstream({"demo": IDNA})
    for fallback in (Fallback("wheels-only", UPSTREAM, upstream), Fallback("redirect", UPSTREAM)):
        status, _, body = ask(output, fallback, "/simple/demo/", Accept=JSON_TYPE)
        assert status == 200 and "idna" not in body.decode()
    assert upstream.asked == []


def test_only_the_main_index_falls_back_not_the_sources_or_a_file(output):
    upstream = Upstream({"idna": IDNA})
    fallback = Fallback("wheels-only", UPSTREAM, upstream)
    for path in ("/sources/simple/idna/", "/files/idna/idna-3.10-py3-none-any.whl"):
        assert ask(output, fallback, path)[0] == 404, path
    assert upstream.asked == []


@pytest.mark.parametrize("files, error, status", [
    ({}, None, 404),                                       # upstream does not know it either
    ({"idna": [IDNA[1]]}, None, 404),                      # only an sdist: nothing to offer
    ({}, UpstreamError("connection refused"), 502),        # upstream is down
])
def test_nothing_to_offer_is_404_and_an_unreachable_upstream_502(output, files, error, status):
    fallback = Fallback("wheels-only", UPSTREAM, Upstream(files, error))
    got, _, body = ask(output, fallback, "/simple/idna/")
    assert got == status and b"Traceback" not in body

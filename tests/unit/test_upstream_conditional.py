"""Specification of watching upstream cheaply (issue 9): conditional revalidation of project
pages, counters that prove it, release times for the cool-down, and yanks.

A real HTTP server on 127.0.0.1 (conftest.RevalidatingIndex) answers from scripts and, like a
caching index, answers 304 Not Modified when the request's If-None-Match matches the reply's
ETag or its If-Modified-Since is not older than the reply's Last-Modified. An index that gives
no validators (this machine's PyPI proxy) gets no conditional requests: an unchanged page then
costs a full answer, which check_project compares with the cached one ("unchanged").
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone

import pytest
from packaging.version import Version

from conftest import Reply
from mirror_builder.errors import UpstreamError
from mirror_builder.resolve.pages import PEP691_JSON
from mirror_builder.resolve.upstream import ProjectCheck, UpstreamIndex, UpstreamOptions

SHA = "a" * 64
ETAG = '"page-v1"'
LAST_MODIFIED = "Tue, 03 Nov 2026 10:00:00 GMT"


def json_page(*files: dict, serial: int | None = None) -> bytes:
    meta = {"api-version": "1.1"} | ({"_last-serial": serial} if serial is not None else {})
    return json.dumps({"meta": meta, "name": "demo", "files": list(files)}).encode()


def entry(filename: str, **extra) -> dict:
    return {"filename": filename, "url": f"/files/{filename}", "hashes": {"sha256": SHA}} | extra


def html_page(*anchors: str) -> bytes:
    return ("<!DOCTYPE html><html><body>" + "<br>".join(anchors) + "</body></html>").encode()


V1 = json_page(entry("demo-1.0.tar.gz"))
V2 = json_page(entry("demo-1.0.tar.gz"), entry("demo-1.1.tar.gz"))


def page(body: bytes = V1, *headers: tuple[str, str]) -> Reply:
    return Reply(body, content_type=PEP691_JSON, headers=headers)


@pytest.fixture
def make_index(revalidating_index, tmp_path):
    def make(**kwargs) -> UpstreamIndex:
        options = {"retries": 1, "timeout": 5, "backoff_seconds": 0.01} | kwargs
        return UpstreamIndex(f"{revalidating_index.url}/simple/", tmp_path / "cache",
                             UpstreamOptions(**options))
    return make


@pytest.fixture
def index(make_index) -> UpstreamIndex:
    return make_index()


def counters(index: UpstreamIndex) -> tuple[int, int, int]:
    return index.requests_made, index.full_responses, index.not_modified


def age_cache_entry(index: UpstreamIndex, url: str, seconds: float) -> None:
    """Make the cached answer for url older by seconds, as if time had passed."""
    cached = index.cache.get(url, None)
    cached.pop("key")
    cached["stored"] -= seconds
    index.cache.put(url, **cached)


# -- check_project: revalidation ---------------------------------------------------------------
def test_a_first_check_is_new_and_costs_a_full_response(revalidating_index, index):
    revalidating_index.script("/simple/demo/", page(V1, ("ETag", ETAG)))

    check = index.check_project("demo")

    assert isinstance(check, ProjectCheck)
    assert (check.name, check.status, check.changed) == ("demo", "new", True)
    assert [f.filename for f in check.files] == ["demo-1.0.tar.gz"]
    assert counters(index) == (1, 1, 0)
    assert "if-none-match" not in revalidating_index.headers_sent("/simple/demo/")[0]


def test_a_second_check_of_an_unchanged_page_is_a_304_without_a_download(
        revalidating_index, index):
    revalidating_index.script("/simple/demo/", page(V1, ("ETag", ETAG),
                                                    ("Last-Modified", LAST_MODIFIED)))
    first = index.check_project("demo")

    second = index.check_project("demo")

    assert (second.status, second.changed) == ("not-modified", False)
    assert second.files == first.files  # from the cached body
    assert counters(index) == (2, 1, 1)  # two requests, one full answer, one 304
    assert revalidating_index.not_modified["/simple/demo/"] == 1
    sent = revalidating_index.headers_sent("/simple/demo/")[1]
    assert sent["if-none-match"] == ETAG
    assert sent["if-modified-since"] == LAST_MODIFIED


def test_check_project_asks_the_index_even_within_the_ttl(revalidating_index, make_index):
    index = make_index(ttl=3600)
    revalidating_index.script("/simple/demo/", page(V1, ("ETag", ETAG)))
    index.project_files("demo")

    assert index.project_files("demo")  # within the TTL: from the cache, no request
    assert index.check_project("demo").status == "not-modified"
    assert counters(index) == (2, 1, 1)


def test_last_modified_alone_is_enough_for_a_304(revalidating_index, index):
    revalidating_index.script("/simple/demo/", page(V1, ("Last-Modified", LAST_MODIFIED)))
    index.check_project("demo")

    assert index.check_project("demo").status == "not-modified"
    sent = revalidating_index.headers_sent("/simple/demo/")[1]
    assert "if-none-match" not in sent
    assert sent["if-modified-since"] == LAST_MODIFIED


def test_without_validators_the_same_page_is_unchanged_at_the_cost_of_a_full_response(
        revalidating_index, index):
    # The fallback for an index (like this machine's PyPI proxy) that sends neither an ETag
    # nor a Last-Modified: nothing to ask conditionally, so the whole page comes again.
    revalidating_index.script("/simple/demo/", page(V1))
    index.check_project("demo")

    check = index.check_project("demo")

    assert (check.status, check.changed) == ("unchanged", False)
    assert counters(index) == (2, 2, 0)
    sent = revalidating_index.headers_sent("/simple/demo/")[1]
    assert "if-none-match" not in sent and "if-modified-since" not in sent


def test_a_changed_page_is_changed_with_the_new_files_and_its_new_etag_is_used(
        revalidating_index, index):
    revalidating_index.script("/simple/demo/", page(V1, ("ETag", ETAG)),
                              page(V2, ("ETag", '"page-v2"')))
    index.check_project("demo")

    check = index.check_project("demo")

    assert (check.status, check.changed) == ("changed", True)
    assert [f.filename for f in check.files] == ["demo-1.0.tar.gz", "demo-1.1.tar.gz"]
    assert index.check_project("demo").status == "not-modified"
    assert revalidating_index.headers_sent("/simple/demo/")[2]["if-none-match"] == '"page-v2"'
    assert index.project_files("demo") == check.files


def test_an_upstream_yank_is_a_change_and_shows_on_the_file(revalidating_index, index):
    revalidating_index.script(
        "/simple/demo/", page(V1, ("ETag", ETAG)),
        page(json_page(entry("demo-1.0.tar.gz", yanked="broken")), ("ETag", '"yanked"')))
    assert not index.check_project("demo").files[0].yanked

    check = index.check_project("demo")

    assert check.status == "changed"
    assert (check.files[0].yanked, check.files[0].yanked_reason) == (True, "broken")


def test_an_html_yank_is_read_from_data_yanked(revalidating_index, index):
    revalidating_index.script("/simple/demo/", Reply(html_page(
        '<a href="/files/demo-1.0.tar.gz" data-yanked="bad &amp; withdrawn">demo-1.0.tar.gz</a>',
        '<a href="/files/demo-1.1.tar.gz" data-yanked>demo-1.1.tar.gz</a>',
        '<a href="/files/demo-1.2.tar.gz">demo-1.2.tar.gz</a>')))

    files = index.check_project("demo").files

    assert [(f.yanked, f.yanked_reason) for f in files] == [
        (True, "bad & withdrawn"), (True, None), (False, None)]


def test_a_missing_project_is_missing(revalidating_index, index):
    check = index.check_project("nothing-here")

    assert (check.status, check.files, check.changed) == ("missing", [], True)
    again = index.check_project("nothing-here")
    assert (again.status, again.changed) == ("missing", False)
    assert counters(index) == (2, 0, 0)


def test_a_project_that_disappears_is_missing_and_changed(revalidating_index, index):
    revalidating_index.script("/simple/demo/", page(V1, ("ETag", ETAG)),
                              Reply(b"gone", status=404, content_type="text/plain"))
    index.check_project("demo")

    check = index.check_project("demo")

    assert (check.status, check.files, check.changed) == ("missing", [], True)


def test_garbage_on_a_check_is_an_error_and_the_cached_page_is_kept(revalidating_index, index):
    revalidating_index.script("/simple/demo/", page(V1, ("ETag", ETAG)),
                              Reply(b"\x00\x01binary", content_type="application/octet-stream"),
                              page(V1, ("ETag", ETAG)))
    index.check_project("demo")

    with pytest.raises(UpstreamError, match="not a project page"):
        index.check_project("demo")
    assert index.check_project("demo").status == "not-modified"


def test_the_serial_comes_from_x_pypi_last_serial_and_survives_a_304(revalidating_index, index):
    revalidating_index.script("/simple/demo/", page(V1, ("ETag", ETAG),
                                                    ("X-PyPI-Last-Serial", "4242")))

    assert index.check_project("demo").serial == 4242
    assert index.check_project("demo").serial == 4242  # the 304's, or else the cached one


def test_without_the_header_the_serial_comes_from_the_page_or_is_unknown(revalidating_index, index):
    revalidating_index.script("/simple/json-page/", page(json_page(serial=17)))
    revalidating_index.script("/simple/html-page/", Reply(html_page("<!--SERIAL 23-->")))
    revalidating_index.script("/simple/plain/", Reply(html_page()))

    assert index.check_project("json-page").serial == 17
    assert index.check_project("html-page").serial == 23
    assert index.check_project("plain").serial is None


# -- project_files ----------------------------------------------------------------------------
def test_project_files_past_the_ttl_revalidates_with_a_304_and_restarts_the_ttl(
        revalidating_index, make_index):
    index = make_index(ttl=3600)
    url = revalidating_index.script("/simple/demo/", page(V1, ("ETag", ETAG)))
    files = index.project_files("demo")
    age_cache_entry(index, url, 7200)

    assert index.project_files("demo") == files
    assert counters(index) == (2, 1, 1)
    assert revalidating_index.headers_sent("/simple/demo/")[1]["if-none-match"] == ETAG
    assert index.project_files("demo") == files  # the 304 made the cached page fresh again
    assert index.requests_made == 2


# -- release times ----------------------------------------------------------------------------
def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def test_release_times_come_from_a_json_pages_upload_time_earliest_file_first(
        revalidating_index, index):
    revalidating_index.script("/simple/demo/", page(json_page(
        entry("demo-1.0-py3-none-any.whl", **{"upload-time": "2026-01-02T10:00:00.123456Z"}),
        entry("demo-1.0.tar.gz", **{"upload-time": "2026-01-01T09:00:00Z"}),
        entry("demo-1.1.tar.gz", **{"upload-time": "2026-03-01T12:30:00Z"}),
        entry("demo-1.2.tar.gz"),  # no time given: its age is unknown
        entry("demo-latest.tar.gz", **{"upload-time": "2026-04-01T00:00:00Z"}),  # no version
        entry("demo-1.3.tar.gz", **{"upload-time": "not a time"}))))

    times = index.release_times("demo")

    assert times == {Version("1.0"): utc("2026-01-01T09:00:00"),
                     Version("1.1"): utc("2026-03-01T12:30:00")}
    files = index.project_files("demo")
    assert files[0].upload_time == datetime(2026, 1, 2, 10, 0, 0, 123456, tzinfo=timezone.utc)
    assert index.requests_made == 1  # the page, once: release_times reads the cached one


def test_release_times_come_from_an_html_pages_data_upload_time(revalidating_index, make_index):
    # How this machine's PyPI proxy answers: HTML, with data-upload-time on each link.
    index = make_index(json_api_url=f"{revalidating_index.url}/pypi/")
    revalidating_index.script("/simple/demo/", Reply(html_page(
        '<a href="/files/demo-1.0.tar.gz" data-upload-time="2025-06-01T08:00:00.5Z">x</a>',
        '<a href="/files/demo-1.0-py3-none-any.whl" '
        'data-upload-time="2025-05-31T08:00:00Z">y</a>')))

    assert index.release_times("demo") == {Version("1.0"): utc("2025-05-31T08:00:00")}
    assert revalidating_index.hits["/pypi/demo/json"] == 0


JSON_API_DOC = json.dumps({
    "info": {"name": "demo", "version": "1.1"},
    "releases": {
        "1.0": [{"filename": "demo-1.0.tar.gz", "upload_time_iso_8601": "2024-02-01T10:00:00.5Z"},
                {"filename": "demo-1.0-py3-none-any.whl",
                 "upload_time_iso_8601": "2024-01-31T23:59:59.000001Z"}],
        "1.1": [{"filename": "demo-1.1.tar.gz", "upload_time": "2024-05-05T05:05:05"}],
        "not-a-version!": [{"upload_time_iso_8601": "2024-01-01T00:00:00Z"}],
        "0.9": [],
    },
}).encode()


def test_release_times_fall_back_on_the_json_api_when_the_page_has_none(
        revalidating_index, make_index):
    index = make_index(json_api_url=f"{revalidating_index.url}/pypi/")
    revalidating_index.script("/simple/demo/", Reply(html_page(
        '<a href="/files/demo-1.0.tar.gz">demo-1.0.tar.gz</a>',
        '<a href="/files/demo-1.1.tar.gz">demo-1.1.tar.gz</a>')))
    revalidating_index.script("/pypi/demo/json", Reply(JSON_API_DOC, content_type="application/json",
                                                       headers=(("ETag", '"doc"'),)))

    times = index.release_times("demo")

    assert times == {Version("1.0"): datetime(2024, 1, 31, 23, 59, 59, 1, tzinfo=timezone.utc),
                     Version("1.1"): utc("2024-05-05T05:05:05")}
    assert index.release_times("demo") == times  # both answers cached within the TTL
    assert revalidating_index.hits["/pypi/demo/json"] == 1


def test_the_json_api_document_is_revalidated_when_the_page_lists_a_release_it_lacks(
        revalidating_index, make_index):
    index = make_index(json_api_url=f"{revalidating_index.url}/pypi/", ttl=3600)
    revalidating_index.script(
        "/simple/demo/",
        Reply(html_page('<a href="/files/demo-1.0.tar.gz">demo-1.0.tar.gz</a>'),
              headers=(("ETag", '"p1"'),)),
        Reply(html_page('<a href="/files/demo-1.0.tar.gz">demo-1.0.tar.gz</a>',
                        '<a href="/files/demo-1.2.tar.gz">demo-1.2.tar.gz</a>'),
              headers=(("ETag", '"p2"'),)))
    document = json.loads(JSON_API_DOC)
    revalidating_index.script(
        "/pypi/demo/json",
        Reply(JSON_API_DOC, content_type="application/json", headers=(("ETag", '"d1"'),)),
        Reply(json.dumps(document | {"releases": document["releases"] | {"1.2": [
            {"upload_time_iso_8601": "2026-11-20T00:00:00Z"}]}}).encode(),
            content_type="application/json", headers=(("ETag", '"d2"'),)))
    assert Version("1.2") not in index.release_times("demo")

    assert index.check_project("demo").status == "changed"  # 1.2 appears upstream
    times = index.release_times("demo")

    assert times[Version("1.2")] == utc("2026-11-20T00:00:00")
    sent = revalidating_index.headers_sent("/pypi/demo/json")
    assert len(sent) == 2 and sent[1]["if-none-match"] == '"d1"'


def test_release_times_are_unknown_without_upload_times_or_a_json_api(revalidating_index, index):
    revalidating_index.script("/simple/demo/", Reply(html_page(
        '<a href="/files/demo-1.0.tar.gz">demo-1.0.tar.gz</a>')))

    assert index.release_times("demo") == {}


@pytest.mark.parametrize("reply", [Reply(b"nope", status=404, content_type="text/plain"),
                                   Reply(b"<html>proxy error</html>")],
                         ids=["missing", "garbage"])
def test_release_times_are_unknown_when_the_json_api_has_no_document(
        revalidating_index, make_index, reply):
    index = make_index(json_api_url=f"{revalidating_index.url}/pypi/")
    revalidating_index.script("/simple/demo/", Reply(html_page(
        '<a href="/files/demo-1.0.tar.gz">demo-1.0.tar.gz</a>')))
    revalidating_index.script("/pypi/demo/json", reply)

    assert index.release_times("demo") == {}


# -- counters under concurrency ---------------------------------------------------------------
def test_counters_are_exact_under_eight_threads(revalidating_index, index):
    projects = [f"p{n}" for n in range(32)]
    for name in projects:
        revalidating_index.script(f"/simple/{name}/", page(V1, ("ETag", f'"{name}"')))
    statuses: dict[str, list[str]] = {name: [] for name in projects}
    barrier = threading.Barrier(8)
    failures: list[BaseException] = []

    def worker(mine: list[str]) -> None:
        try:
            barrier.wait()
            for _ in range(2):
                for name in mine:
                    statuses[name].append(index.check_project(name).status)
        except BaseException as exc:  # reported below, from the main thread
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(projects[n::8],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not failures
    assert all(s == ["new", "not-modified"] for s in statuses.values())
    assert counters(index) == (64, 32, 32)
    assert sum(revalidating_index.not_modified.values()) == 32


# -- answering ahead ---------------------------------------------------------------------------
def test_a_page_prefetched_while_the_resolver_asks_for_it_too_is_fetched_once(
        revalidating_index, make_index):
    index = make_index(ttl=3600)
    revalidating_index.script("/simple/demo/", page(V1, ("ETag", ETAG)))
    index.prefetch(("page", "demo"), lambda: index.project_files("demo"))
    index.prefetch(("page", "demo"), lambda: index.project_files("demo"))  # once per key
    files = index.project_files("demo")
    assert [f.filename for f in files] == ["demo-1.0.tar.gz"]
    assert index.requests_made == 1


def test_a_failed_prefetch_is_silent_and_the_resolvers_own_request_meets_the_error(
        revalidating_index, make_index):
    index = make_index(ttl=3600)
    garbage = Reply(b"\x00\x01binary", content_type="application/octet-stream")
    revalidating_index.script("/simple/demo/", garbage, garbage)
    index.prefetch(("page", "demo"), lambda: index.project_files("demo"))
    with pytest.raises(UpstreamError, match="not a project page"):
        index.project_files("demo")

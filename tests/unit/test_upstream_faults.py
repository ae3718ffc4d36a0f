"""Specification of how UpstreamIndex meets an index that misbehaves (issue 8).

A real HTTP server on 127.0.0.1 (conftest.ScriptedIndex) answers each path from a script: 503s,
answers slower than the client's timeout, bodies cut short or stalling halfway, wrong hashes and
garbage. The index is asked with retries=2 (three attempts), a 0.3 s timeout and a tiny backoff.

What must hold: transient failures are tried again and then succeed; when they do not, the error
is one line naming the URL or file and the number of attempts; garbage is an error naming the
page and is never cached; a failed download leaves nothing behind, not even a .part file.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from conftest import Reply
from mirror_builder.errors import UpstreamError
from mirror_builder.resolve import transport
from mirror_builder.resolve.pages import PEP691_JSON, DistributionFile, parse_project_page
from mirror_builder.resolve.upstream import UpstreamIndex, UpstreamOptions

TIMEOUT = 0.3
TOO_LATE = 1.5  # seconds a scripted reply waits: well past TIMEOUT
SDIST = bytes(range(256)) * 4  # 1024 bytes that stand for demo-1.0.tar.gz
SDIST_SHA256 = hashlib.sha256(SDIST).hexdigest()
METADATA = "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nRequires-Dist: idna>=2.5\n"


def json_page(*files: dict) -> bytes:
    return json.dumps({"meta": {"api-version": "1.1"}, "name": "demo", "files": list(files)}).encode()


SDIST_ENTRY = {"filename": "demo-1.0.tar.gz", "url": "/files/demo-1.0.tar.gz",
               "hashes": {"sha256": SDIST_SHA256}}
GOOD_PAGE = Reply(json_page(SDIST_ENTRY), content_type=PEP691_JSON)
UNAVAILABLE = Reply(b"busy", status=503, content_type="text/plain")


@pytest.fixture
def make_index(scripted_index, tmp_path):
    def make(**kwargs) -> UpstreamIndex:
        options = {"retries": 2, "timeout": TIMEOUT, "backoff_seconds": 0.01} | kwargs
        return UpstreamIndex(f"{scripted_index.url}/simple/", tmp_path / "cache",
                             UpstreamOptions(**options))
    return make


@pytest.fixture
def index(make_index) -> UpstreamIndex:
    return make_index()


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """The waits between attempts, recorded instead of slept."""
    waited: list[float] = []
    monkeypatch.setattr(transport.time, "sleep", waited.append)
    return waited


def the_sdist(server, url_path: str = "/files/demo-1.0.tar.gz", sha256: str = SDIST_SHA256
              ) -> DistributionFile:
    return DistributionFile("demo-1.0.tar.gz", server.url + url_path, sha256)


def files_under(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


# -- project pages: transient failures -------------------------------------------------------
def test_a_page_answered_503_twice_is_asked_again_and_then_read(scripted_index, index):
    scripted_index.script("/simple/demo/", UNAVAILABLE, UNAVAILABLE, GOOD_PAGE)

    files = index.project_files("demo")

    assert [f.filename for f in files] == ["demo-1.0.tar.gz"]
    assert scripted_index.hits["/simple/demo/"] == 3
    assert index.requests_made == 3


def test_a_page_that_keeps_answering_503_is_an_error_after_every_attempt(scripted_index, index):
    url = scripted_index.script("/simple/demo/", UNAVAILABLE)

    with pytest.raises(UpstreamError) as info:
        index.project_files("demo")

    assert str(info.value) == f"cannot reach {url} after 3 attempts: HTTP 503 Service Unavailable"
    assert scripted_index.hits["/simple/demo/"] == 3


def test_a_page_that_answers_too_late_is_asked_again(scripted_index, index):
    scripted_index.script("/simple/demo/", Reply(wait_before=TOO_LATE), GOOD_PAGE)

    assert len(index.project_files("demo")) == 1
    assert scripted_index.hits["/simple/demo/"] == 2


def test_a_page_that_never_answers_in_time_is_an_error_naming_the_timeout(scripted_index, index):
    url = scripted_index.script("/simple/demo/", Reply(wait_before=TOO_LATE))

    with pytest.raises(UpstreamError) as info:
        index.project_files("demo")

    assert str(info.value) == f"cannot reach {url} after 3 attempts: no answer within 0.3 s"
    assert scripted_index.hits["/simple/demo/"] == 3


def test_a_page_that_stalls_halfway_is_asked_again(scripted_index, index):
    stalling = Reply(GOOD_PAGE.body, content_type=PEP691_JSON, stall_after=20, stall_for=TOO_LATE)
    scripted_index.script("/simple/demo/", stalling, GOOD_PAGE)

    assert len(index.project_files("demo")) == 1
    assert scripted_index.hits["/simple/demo/"] == 2


def test_a_page_cut_short_is_asked_again(scripted_index, index):
    cut = Reply(GOOD_PAGE.body, content_type=PEP691_JSON, cut_after=20)
    scripted_index.script("/simple/demo/", cut, GOOD_PAGE)

    assert len(index.project_files("demo")) == 1
    assert scripted_index.hits["/simple/demo/"] == 2


def test_an_index_that_refuses_connections_is_an_error_after_every_attempt(tmp_path):
    from conftest import free_port

    url = f"http://127.0.0.1:{free_port()}/simple/"
    index = UpstreamIndex(url, tmp_path / "cache",
                          UpstreamOptions(retries=2, timeout=TIMEOUT, backoff_seconds=0.01))

    with pytest.raises(UpstreamError) as info:
        index.project_files("demo")

    assert str(info.value) == f"cannot reach {url}demo/ after 3 attempts: Connection refused"


def test_a_missing_project_is_not_asked_again(scripted_index, index):
    assert index.project_files("demo") == []  # unscripted: 404
    assert scripted_index.hits["/simple/demo/"] == 1


def test_a_refusal_is_not_asked_again(scripted_index, index):
    url = scripted_index.script("/simple/demo/", Reply(b"no", status=403))

    with pytest.raises(UpstreamError, match=f"^{url}: the index answered HTTP 403$"):
        index.project_files("demo")

    assert scripted_index.hits["/simple/demo/"] == 1


def test_waits_between_attempts_double_from_backoff_seconds(scripted_index, make_index, sleeps):
    scripted_index.script("/simple/demo/", UNAVAILABLE)
    index = make_index(retries=3, backoff_seconds=0.5)

    with pytest.raises(UpstreamError, match="after 4 attempts"):
        index.project_files("demo")

    assert sleeps == [0.5, 1.0, 2.0]


def test_a_retry_after_header_is_honoured_up_to_a_minute(scripted_index, index, sleeps):
    scripted_index.script("/simple/demo/",
                          Reply(status=429, headers=(("Retry-After", "7"),)),
                          Reply(status=503, headers=(("Retry-After", "86400"),)), GOOD_PAGE)

    assert len(index.project_files("demo")) == 1
    assert sleeps == [7.0, 60.0]


def test_no_retries_means_one_attempt(scripted_index, make_index):
    url = scripted_index.script("/simple/demo/", UNAVAILABLE)

    with pytest.raises(UpstreamError, match=f"^cannot reach {url} after 1 attempt: HTTP 503"):
        make_index(retries=0).project_files("demo")

    assert scripted_index.hits["/simple/demo/"] == 1


# -- project pages: garbage ------------------------------------------------------------------
GARBAGE = {
    "truncated JSON": Reply(GOOD_PAGE.body[:40], content_type=PEP691_JSON),
    "binary junk": Reply(gzip.compress(b"<html>not what it seems</html>" * 20),
                         content_type="application/octet-stream"),
    "binary junk said to be HTML": Reply(bytes(range(256)), content_type="text/html"),
    "a JSON list": Reply(b"[]", content_type=PEP691_JSON),
    "files that are a number": Reply(b'{"files": 3}', content_type=PEP691_JSON),
}


@pytest.mark.parametrize("garbage", GARBAGE.values(), ids=GARBAGE.keys())
def test_a_garbage_page_is_an_error_naming_it_and_is_not_cached(scripted_index, index, garbage):
    url = scripted_index.script("/simple/demo/", garbage, GOOD_PAGE)

    with pytest.raises(UpstreamError, match=f"^{url}: not a "):
        index.project_files("demo")
    # The index has mended; the garbage was not kept, so it is asked again.
    assert len(index.project_files("demo")) == 1

    assert scripted_index.hits["/simple/demo/"] == 2


def test_garbage_is_not_kept_between_runs_either(scripted_index, make_index):
    scripted_index.script("/simple/demo/", GARBAGE["truncated JSON"], GOOD_PAGE)
    with pytest.raises(UpstreamError):
        make_index().project_files("demo")

    assert len(make_index().project_files("demo")) == 1
    assert scripted_index.hits["/simple/demo/"] == 2


def test_garbage_already_in_the_cache_is_dropped_and_the_index_asked_again(
        scripted_index, index):
    url = scripted_index.script("/simple/demo/", GOOD_PAGE)
    index.cache.put(url, status=200, content_type=PEP691_JSON, body='{"files": 3', url=url)

    assert len(index.project_files("demo")) == 1
    assert scripted_index.hits["/simple/demo/"] == 1


def test_an_error_page_from_a_proxy_with_status_200_lists_no_files(scripted_index, index):
    scripted_index.script("/simple/demo/",
                          Reply(b"<html><body>502 Bad Gateway</body></html>"))

    assert index.project_files("demo") == []


PAGE_URL = "https://example.invalid/simple/demo/"
WRONG_SHAPES = {
    "a list": ("[]", 'expected an object with a "files" list, got a list'),
    "no files": ('{"name": "demo"}', 'expected an object with a "files" list, got no "files"'),
    "files a number": ('{"files": 3}', 'expected an object with a "files" list, got a number'),
    "a file a string": ('{"files": ["demo-1.0.tar.gz"]}', "files[0] is not an object"),
    "no url": ('{"files": [{"filename": "demo-1.0.tar.gz"}]}', 'files[0] has no "url"'),
    "a numeric filename": ('{"files": [{"filename": 1, "url": "x"}]}',
                           'files[0] has no "filename"'),
    "hashes a list": ('{"files": [{"filename": "d.tar.gz", "url": "x", "hashes": []}]}',
                      'd.tar.gz: "hashes" is not an object'),
    "requires-python a number": (
        '{"files": [{"filename": "d.tar.gz", "url": "x", "requires-python": 3}]}',
        'd.tar.gz: "requires-python" is not a string'),
}


@pytest.mark.parametrize(("body", "reason"), WRONG_SHAPES.values(), ids=WRONG_SHAPES.keys())
def test_json_of_the_wrong_shape_is_an_error_saying_what_is_wrong(body, reason):
    with pytest.raises(UpstreamError) as info:
        parse_project_page(body, PEP691_JSON, PAGE_URL)

    assert str(info.value) == f"{PAGE_URL}: not a valid PEP 691 project page: {reason}"


@pytest.mark.parametrize("digest", ["abc", "z" * 64, "a" * 63, ""])
def test_a_link_whose_sha256_is_not_64_hex_digits_is_an_error_naming_the_file(digest):
    page = f'<a href="demo-1.0.tar.gz#sha256={digest}">demo-1.0.tar.gz</a>'

    with pytest.raises(UpstreamError) as info:
        parse_project_page(page, "text/html", PAGE_URL)

    assert str(info.value) == (f"{PAGE_URL}: demo-1.0.tar.gz: the index's sha256 is not 64 hex "
                               f"digits: {digest!r}")


def test_a_json_file_whose_sha256_is_not_64_hex_digits_is_an_error_naming_the_file():
    page = json.dumps({"files": [{"filename": "demo-1.0.tar.gz", "url": "x",
                                  "hashes": {"sha256": 12}}]})

    with pytest.raises(UpstreamError, match="demo-1.0.tar.gz: the index's sha256 is not 64 hex"):
        parse_project_page(page, PEP691_JSON, PAGE_URL)


def test_an_upper_case_sha256_is_read_as_lower_case():
    page = f'<a href="demo-1.0.tar.gz#sha256={SDIST_SHA256.upper()}">demo-1.0.tar.gz</a>'

    (file,) = parse_project_page(page, "text/html", PAGE_URL)

    assert file.sha256 == SDIST_SHA256


# -- metadata --------------------------------------------------------------------------------
def test_a_metadata_file_that_is_not_metadata_is_ignored_and_not_cached(scripted_index, index):
    wheel = DistributionFile("demo-1.0-py3-none-any.whl",
                             scripted_index.url + "/files/demo-1.0-py3-none-any.whl", None,
                             has_metadata=True)
    scripted_index.script("/files/demo-1.0-py3-none-any.whl.metadata",
                          Reply(b"<html><body>502 Bad Gateway</body></html>"),
                          Reply(METADATA.encode(), content_type="text/plain"))

    assert index.core_metadata(wheel) is None
    assert index.core_metadata(wheel) == METADATA
    assert index.core_metadata(wheel) == METADATA  # now from the cache

    assert scripted_index.hits["/files/demo-1.0-py3-none-any.whl.metadata"] == 2


def test_a_good_json_api_answer_gives_the_dependencies_and_is_cached(scripted_index, make_index):
    index = make_index(json_api_url=f"{scripted_index.url}/pypi/")
    scripted_index.script("/pypi/demo/1.0/json", Reply(
        b'{"info": {"version": "1.0", "requires_dist": ["idna>=2.5"]}}',
        content_type="application/json"))
    wheel = DistributionFile("demo-1.0-py3-none-any.whl", scripted_index.url + "/files/x.whl", None)

    assert index.requires_dist("demo", "1.0", [wheel]) == ["idna>=2.5"]
    assert index.requires_dist("demo", "1.0", [wheel]) == ["idna>=2.5"]
    assert scripted_index.hits["/pypi/demo/1.0/json"] == 1


def test_a_json_api_answer_of_the_wrong_shape_means_unknown_dependencies(scripted_index, make_index):
    index = make_index(json_api_url=f"{scripted_index.url}/pypi/")
    scripted_index.script("/pypi/demo/1.0/json", Reply(b"[1, 2]", content_type="application/json"))
    scripted_index.script("/pypi/demo/json", Reply(b'{"info": 3}', content_type="application/json"))
    wheel = DistributionFile("demo-1.0-py3-none-any.whl", scripted_index.url + "/files/x.whl", None)

    assert index.requires_dist("demo", "1.0", [wheel]) is None
    assert index.requires_dist("demo", "1.0", [wheel]) is None
    assert scripted_index.hits["/pypi/demo/1.0/json"] == 2  # garbage is not cached
    assert scripted_index.hits["/pypi/demo/json"] == 2


def test_json_api_dependencies_that_are_not_a_list_of_strings_are_unknown(
        scripted_index, make_index):
    index = make_index(json_api_url=f"{scripted_index.url}/pypi/")
    scripted_index.script("/pypi/demo/1.0/json", Reply(
        b'{"info": {"version": "1.0", "requires_dist": "idna>=2.5"}}',
        content_type="application/json"))
    wheel = DistributionFile("demo-1.0-py3-none-any.whl", scripted_index.url + "/files/x.whl", None)

    assert index.requires_dist("demo", "1.0", [wheel]) is None


def test_an_index_without_release_documents_is_asked_only_for_project_documents_after_one_404(
        scripted_index, make_index):
    """A proxy that serves /pypi/NAME/json but not /pypi/NAME/VERSION/json: each 404 was a round
    trip (70 ms through this machine's proxy), for every package of a tree."""
    index = make_index(json_api_url=f"{scripted_index.url}/pypi/")
    for name, requires in (("demo", '["idna>=2.5"]'), ("other", '["six"]')):
        scripted_index.script(f"/pypi/{name}/json", Reply(
            f'{{"info": {{"version": "1.0", "requires_dist": {requires}}}}}'.encode(),
            content_type="application/json"))

    def wheel(name):
        return DistributionFile(f"{name}-1.0-py3-none-any.whl", scripted_index.url + "/f.whl", None)

    assert index.requires_dist("demo", "1.0", [wheel("demo")]) == ["idna>=2.5"]
    assert index.requires_dist("other", "1.0", [wheel("other")]) == ["six"]
    assert scripted_index.hits["/pypi/demo/1.0/json"] == 1
    assert scripted_index.hits["/pypi/other/1.0/json"] == 0


# -- downloads -------------------------------------------------------------------------------
def test_a_download_cut_short_is_retried_and_then_kept_whole(scripted_index, index, tmp_path):
    cut = Reply(SDIST, content_type="application/octet-stream", cut_after=300)
    scripted_index.script("/files/demo-1.0.tar.gz", cut, cut, Reply(SDIST))

    path = index.download(the_sdist(scripted_index), tmp_path / "dl")

    assert path.read_bytes() == SDIST
    assert files_under(tmp_path / "dl") == [path]
    assert scripted_index.hits["/files/demo-1.0.tar.gz"] == 3


def test_a_download_cut_short_every_time_is_an_error_and_keeps_nothing(
        scripted_index, index, tmp_path):
    url = scripted_index.script("/files/demo-1.0.tar.gz", Reply(SDIST, cut_after=300))

    with pytest.raises(UpstreamError) as info:
        index.download(the_sdist(scripted_index), tmp_path / "dl")

    assert str(info.value) == (f"cannot download demo-1.0.tar.gz from {url} after 3 attempts: "
                               f"the connection closed after 300 bytes, 724 more were expected")
    assert files_under(tmp_path / "dl") == []
    assert scripted_index.hits["/files/demo-1.0.tar.gz"] == 3


def test_a_download_that_stalls_halfway_is_retried(scripted_index, index, tmp_path):
    scripted_index.script("/files/demo-1.0.tar.gz",
                          Reply(SDIST, stall_after=300, stall_for=TOO_LATE), Reply(SDIST))

    path = index.download(the_sdist(scripted_index), tmp_path / "dl")

    assert path.read_bytes() == SDIST
    assert files_under(tmp_path / "dl") == [path]


def test_a_download_that_always_stalls_is_an_error_naming_the_timeout_and_keeps_nothing(
        scripted_index, index, tmp_path):
    url = scripted_index.script("/files/demo-1.0.tar.gz",
                                Reply(SDIST, stall_after=300, stall_for=TOO_LATE))

    with pytest.raises(UpstreamError) as info:
        index.download(the_sdist(scripted_index), tmp_path / "dl")

    assert str(info.value) == (f"cannot download demo-1.0.tar.gz from {url} after 3 attempts: "
                               f"no answer within 0.3 s")
    assert files_under(tmp_path / "dl") == []


def test_a_download_answered_503_is_retried(scripted_index, index, tmp_path):
    scripted_index.script("/files/demo-1.0.tar.gz", UNAVAILABLE, Reply(SDIST))

    assert index.download(the_sdist(scripted_index), tmp_path / "dl").read_bytes() == SDIST
    assert scripted_index.hits["/files/demo-1.0.tar.gz"] == 2


def test_a_missing_download_is_an_error_at_once(scripted_index, index, tmp_path):
    url = scripted_index.url + "/files/demo-1.0.tar.gz"

    with pytest.raises(UpstreamError, match=f"^{url}: download failed with HTTP 404$"):
        index.download(the_sdist(scripted_index), tmp_path / "dl")

    assert scripted_index.hits["/files/demo-1.0.tar.gz"] == 1
    assert files_under(tmp_path / "dl") == []


def test_a_download_with_the_wrong_sha256_is_fetched_once_more_then_refused_keeping_nothing(
        scripted_index, index, tmp_path):
    url = scripted_index.script("/files/demo-1.0.tar.gz", Reply(SDIST))
    wrong = "0" * 64

    with pytest.raises(UpstreamError) as info:
        index.download(the_sdist(scripted_index, sha256=wrong), tmp_path / "dl")

    assert str(info.value) == (
        f"demo-1.0.tar.gz: sha256 mismatch: the index says {wrong}, the download is "
        f"{SDIST_SHA256} (downloaded twice from {url}, the same both times); nothing was kept")
    assert scripted_index.hits["/files/demo-1.0.tar.gz"] == 2
    assert files_under(tmp_path / "dl") == []


def test_two_downloads_that_differ_and_match_nothing_are_reported_as_such(
        scripted_index, index, tmp_path):
    scripted_index.script("/files/demo-1.0.tar.gz", Reply(b"first"), Reply(b"second"))

    with pytest.raises(UpstreamError, match=r"sha256 mismatch: .*\(downloaded twice from .*, "
                                            r"a different file each time\); nothing was kept"):
        index.download(the_sdist(scripted_index), tmp_path / "dl")

    assert files_under(tmp_path / "dl") == []


def test_a_corrupted_download_that_a_fresh_one_corrects_is_kept(scripted_index, index, tmp_path):
    corrupted = bytes(reversed(SDIST))
    scripted_index.script("/files/demo-1.0.tar.gz", Reply(corrupted), Reply(SDIST))

    path = index.download(the_sdist(scripted_index), tmp_path / "dl")

    assert path.read_bytes() == SDIST
    assert files_under(tmp_path / "dl") == [path]


def test_a_kept_copy_that_went_bad_is_replaced_or_else_removed(scripted_index, index, tmp_path):
    scripted_index.script("/files/demo-1.0.tar.gz", Reply(SDIST, cut_after=10))
    kept = tmp_path / "dl" / SDIST_SHA256[:2] / SDIST_SHA256 / "demo-1.0.tar.gz"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(SDIST[:10])  # an earlier copy, damaged since

    with pytest.raises(UpstreamError, match="after 3 attempts"):
        index.download(the_sdist(scripted_index), tmp_path / "dl")

    assert files_under(tmp_path / "dl") == []

"""Specification of mirror_builder.resolve.pages (page parsing) and of UpstreamIndex over a file:// index.

No network: the index is a directory made in tmp_path, laid out like a static simple index
(simple/<project>/index.json or index.html, files under packages/).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mirror_builder.errors import UpstreamError
from mirror_builder.resolve.pages import PEP691_JSON, DistributionFile, parse_project_page
from mirror_builder.resolve.upstream import UpstreamIndex, UpstreamOptions

PAGE_URL = "https://example.invalid/simple/demo/"
SHA_A = "a" * 64
SHA_B = "b" * 64


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- PEP 691 JSON pages ----------------------------------------------------------------------
JSON_PAGE = json.dumps({
    "meta": {"api-version": "1.1"},
    "name": "demo",
    "files": [
        {"filename": "demo-1.0.tar.gz", "url": "../../packages/demo-1.0.tar.gz",
         "hashes": {"sha256": SHA_A}, "requires-python": ">=3.8", "size": 1234},
        {"filename": "demo-1.0-py3-none-any.whl",
         "url": "https://files.example.invalid/demo-1.0-py3-none-any.whl",
         "hashes": {"sha256": SHA_B, "md5": "c" * 32}, "requires-python": "",
         "core-metadata": {"sha256": "d" * 64}, "yanked": "broken build"},
        {"filename": "demo-0.9.tar.gz", "url": "demo-0.9.tar.gz", "hashes": {},
         "yanked": True, "dist-info-metadata": True},
        {"filename": "demo-0.8.zip", "url": "demo-0.8.zip", "hashes": {},
         "yanked": False, "core-metadata": False},
    ],
})


def test_json_page_lists_every_file_with_what_the_index_says_about_it():
    files = parse_project_page(JSON_PAGE, PEP691_JSON, PAGE_URL)

    assert files == [
        DistributionFile(filename="demo-1.0.tar.gz",
                         url="https://example.invalid/packages/demo-1.0.tar.gz",
                         sha256=SHA_A, requires_python=">=3.8", size=1234),
        DistributionFile(filename="demo-1.0-py3-none-any.whl",
                         url="https://files.example.invalid/demo-1.0-py3-none-any.whl",
                         sha256=SHA_B, requires_python=None, yanked=True,
                         yanked_reason="broken build", has_metadata=True),
        DistributionFile(filename="demo-0.9.tar.gz",
                         url="https://example.invalid/simple/demo/demo-0.9.tar.gz",
                         sha256=None, yanked=True, yanked_reason=None, has_metadata=True),
        DistributionFile(filename="demo-0.8.zip",
                         url="https://example.invalid/simple/demo/demo-0.8.zip",
                         sha256=None),
    ]


def test_json_page_is_recognised_by_its_body_when_the_content_type_is_generic():
    files = parse_project_page(JSON_PAGE, "application/octet-stream", PAGE_URL)

    assert [f.filename for f in files] == [
        "demo-1.0.tar.gz", "demo-1.0-py3-none-any.whl", "demo-0.9.tar.gz", "demo-0.8.zip"]


def test_json_content_type_parameters_are_ignored():
    files = parse_project_page(JSON_PAGE, f"{PEP691_JSON}; charset=utf-8", PAGE_URL)

    assert len(files) == 4


def test_an_invalid_json_page_raises_upstream_error_naming_the_page():
    with pytest.raises(UpstreamError, match="example.invalid/simple/demo/.*not a valid PEP 691"):
        parse_project_page('{"files": [{"url": "x"}]}', PEP691_JSON, PAGE_URL)


def test_sdist_and_wheel_are_told_apart_by_filename():
    sdist_tar, wheel, _, sdist_zip = parse_project_page(JSON_PAGE, PEP691_JSON, PAGE_URL)

    assert (sdist_tar.is_sdist, sdist_tar.is_wheel) == (True, False)
    assert (wheel.is_sdist, wheel.is_wheel) == (False, True)
    assert sdist_zip.is_sdist


# -- PEP 503 HTML pages ----------------------------------------------------------------------
HTML_PAGE = f"""<!DOCTYPE html>
<html><head><meta name="pypi:repository-version" content="1.1"></head><body>
<h1>Links for demo</h1>
<a href="../../packages/demo-1.0.tar.gz#sha256={SHA_A}" data-requires-python="&gt;=3.8">demo-1.0.tar.gz</a><br>
<a href="demo-1.0-py3-none-any.whl#sha256={SHA_B}" data-requires-python="&gt;=3.8,&lt;4"
   data-core-metadata="sha256={'d' * 64}">demo-1.0-py3-none-any.whl</a><br>
<a href="https://files.example.invalid/demo-0.9.tar.gz#md5={'c' * 32}" data-yanked="">demo-0.9.tar.gz</a><br>
<a href="demo-0.8-py3-none-any.whl" data-yanked="broken &amp; withdrawn" data-dist-info-metadata="true">demo-0.8-py3-none-any.whl</a><br>
<a href="demo-0.7.tar.gz#sha256={SHA_A}&amp;md5={'c' * 32}">demo-0.7.tar.gz</a><br>
<a name="no-href">not a file</a>
</body></html>
"""


def test_html_page_lists_every_anchor_with_its_attributes():
    files = parse_project_page(HTML_PAGE, "text/html", PAGE_URL)

    assert files == [
        DistributionFile(filename="demo-1.0.tar.gz",
                         url="https://example.invalid/packages/demo-1.0.tar.gz",
                         sha256=SHA_A, requires_python=">=3.8"),
        DistributionFile(filename="demo-1.0-py3-none-any.whl",
                         url="https://example.invalid/simple/demo/demo-1.0-py3-none-any.whl",
                         sha256=SHA_B, requires_python=">=3.8,<4", has_metadata=True),
        DistributionFile(filename="demo-0.9.tar.gz",
                         url="https://files.example.invalid/demo-0.9.tar.gz",
                         sha256=None, yanked=True, yanked_reason=None),
        DistributionFile(filename="demo-0.8-py3-none-any.whl",
                         url="https://example.invalid/simple/demo/demo-0.8-py3-none-any.whl",
                         sha256=None, yanked=True, yanked_reason="broken & withdrawn",
                         has_metadata=True),
        DistributionFile(filename="demo-0.7.tar.gz",
                         url="https://example.invalid/simple/demo/demo-0.7.tar.gz",
                         sha256=SHA_A),
    ]


def test_html_hrefs_are_resolved_against_a_base_tag():
    page = '<html><head><base href="/mirror/files/"></head><body>' \
           '<a href="demo-1.0.tar.gz">demo-1.0.tar.gz</a></body></html>'

    (file,) = parse_project_page(page, "text/html", PAGE_URL)

    assert file.url == "https://example.invalid/mirror/files/demo-1.0.tar.gz"


def test_html_percent_encoded_filenames_are_decoded_but_the_url_is_kept():
    page = '<a href="demo-1.0%2Blocal.tar.gz">demo-1.0+local.tar.gz</a>'

    (file,) = parse_project_page(page, "text/html", PAGE_URL)

    assert file.filename == "demo-1.0+local.tar.gz"
    assert file.url == "https://example.invalid/simple/demo/demo-1.0%2Blocal.tar.gz"


def test_a_valueless_data_yanked_attribute_marks_the_file_yanked():
    page = '<a href="demo-1.0.tar.gz" data-yanked>demo-1.0.tar.gz</a>'

    (file,) = parse_project_page(page, "text/html", PAGE_URL)

    assert file.yanked
    assert file.yanked_reason is None


# -- UpstreamIndex over a file:// index ------------------------------------------------------
SDIST_BYTES = b"pretend this is a gzipped tarball of demo 1.0\n"
WHEEL_BYTES = b"pretend this is a zip of demo 1.0\n"
METADATA = """Metadata-Version: 2.1
Name: demo
Version: 1.0
Requires-Dist: idna>=2.5
Requires-Dist: PySocks!=1.5.7,>=1.5.6; extra == "socks"

A description that is not a header.
"""


class FileIndex:
    """A static simple index in a directory: simple/<project>/index.{json,html}, packages/."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.simple = root / "simple"
        self.packages = root / "packages"
        self.packages.mkdir(parents=True)
        self.url = self.simple.as_uri() + "/"

    def add_file(self, filename: str, data: bytes) -> Path:
        path = self.packages / filename
        path.write_bytes(data)
        return path

    def json_page(self, project: str, files: list[dict]) -> Path:
        page = self.simple / project / "index.json"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(json.dumps({"meta": {"api-version": "1.1"}, "name": project,
                                    "files": files}), encoding="utf-8")
        return page

    def html_page(self, project: str, body: str) -> Path:
        page = self.simple / project / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(f"<!DOCTYPE html><html><body>{body}</body></html>", encoding="utf-8")
        return page


@pytest.fixture
def index_dir(tmp_path: Path) -> FileIndex:
    index = FileIndex(tmp_path / "index")
    index.add_file("demo-1.0.tar.gz", SDIST_BYTES)
    index.add_file("demo-1.0-py3-none-any.whl", WHEEL_BYTES)
    index.json_page("demo", [
        {"filename": "demo-1.0.tar.gz", "url": "../../packages/demo-1.0.tar.gz",
         "hashes": {"sha256": sha256(SDIST_BYTES)}, "requires-python": ">=3.8"},
        {"filename": "demo-1.0-py3-none-any.whl",
         "url": "../../packages/demo-1.0-py3-none-any.whl",
         "hashes": {"sha256": sha256(WHEEL_BYTES)}},
    ])
    return index


def files_under(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if not p.is_dir())


def upstream(index: FileIndex, tmp_path: Path, **kwargs) -> UpstreamIndex:
    return UpstreamIndex(index.url, tmp_path / "cache", UpstreamOptions(**kwargs))


def test_project_files_reads_a_json_project_page_and_resolves_file_urls(index_dir, tmp_path):
    files = upstream(index_dir, tmp_path).project_files("demo")

    assert files == [
        DistributionFile(filename="demo-1.0.tar.gz",
                         url=(index_dir.packages / "demo-1.0.tar.gz").as_uri(),
                         sha256=sha256(SDIST_BYTES), requires_python=">=3.8"),
        DistributionFile(filename="demo-1.0-py3-none-any.whl",
                         url=(index_dir.packages / "demo-1.0-py3-none-any.whl").as_uri(),
                         sha256=sha256(WHEEL_BYTES)),
    ]


def test_project_files_reads_an_html_project_page(tmp_path):
    index = FileIndex(tmp_path / "index")
    index.add_file("other-2.0.tar.gz", SDIST_BYTES)
    index.html_page("other", f'<a href="../../packages/other-2.0.tar.gz#sha256='
                             f'{sha256(SDIST_BYTES)}" data-requires-python="&gt;=3.9">x</a>')

    (file,) = upstream(index, tmp_path).project_files("other")

    assert file == DistributionFile(filename="other-2.0.tar.gz",
                                    url=(index.packages / "other-2.0.tar.gz").as_uri(),
                                    sha256=sha256(SDIST_BYTES), requires_python=">=3.9")


def test_project_files_looks_up_the_normalized_project_name(tmp_path):
    index = FileIndex(tmp_path / "index")
    index.json_page("zope-interface", [
        {"filename": "zope.interface-6.0.tar.gz", "url": "zope.interface-6.0.tar.gz",
         "hashes": {}}])

    files = upstream(index, tmp_path).project_files("Zope.Interface")

    assert [f.filename for f in files] == ["zope.interface-6.0.tar.gz"]


def test_project_files_of_a_missing_project_is_empty(index_dir, tmp_path):
    assert upstream(index_dir, tmp_path).project_files("no-such-project") == []


def test_project_files_reuses_a_cached_page_within_its_lifetime(index_dir, tmp_path):
    first = upstream(index_dir, tmp_path).project_files("demo")
    (index_dir.simple / "demo" / "index.json").unlink()

    again = upstream(index_dir, tmp_path).project_files("demo")

    assert again == first
    assert len(again) == 2


def test_project_files_with_refresh_asks_the_index_again(index_dir, tmp_path):
    upstream(index_dir, tmp_path).project_files("demo")
    (index_dir.simple / "demo" / "index.json").unlink()

    assert upstream(index_dir, tmp_path, refresh=True).project_files("demo") == []


def test_project_files_asks_again_once_the_cached_page_is_older_than_the_ttl(
        index_dir, tmp_path, monkeypatch):
    upstream(index_dir, tmp_path, ttl=60).project_files("demo")
    (index_dir.simple / "demo" / "index.json").unlink()
    import time
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 61)

    assert upstream(index_dir, tmp_path, ttl=60).project_files("demo") == []


def test_a_file_index_makes_no_http_requests(index_dir, tmp_path):
    index = upstream(index_dir, tmp_path)
    index.project_files("demo")
    index.download(index.project_files("demo")[0], tmp_path / "dl")

    assert index.requests_made == 0


def test_download_copies_the_file_and_checks_its_sha256(index_dir, tmp_path):
    index = upstream(index_dir, tmp_path)
    sdist = index.project_files("demo")[0]

    path = index.download(sdist, tmp_path / "dl")

    digest = sha256(SDIST_BYTES)
    assert path == tmp_path / "dl" / digest[:2] / digest / "demo-1.0.tar.gz"
    assert path.read_bytes() == SDIST_BYTES
    assert files_under(tmp_path / "dl") == [path]


def test_download_with_a_sha256_mismatch_raises_and_keeps_nothing(index_dir, tmp_path):
    index = upstream(index_dir, tmp_path)
    sdist = index.project_files("demo")[0]
    wrong = DistributionFile(sdist.filename, sdist.url, sha256="0" * 64)

    with pytest.raises(UpstreamError, match="demo-1.0.tar.gz: sha256 mismatch") as info:
        index.download(wrong, tmp_path / "dl")

    assert sha256(SDIST_BYTES) in str(info.value)
    assert files_under(tmp_path / "dl") == []  # neither demo-1.0.tar.gz nor a .part file


def test_download_reuses_an_earlier_verified_copy(index_dir, tmp_path):
    index = upstream(index_dir, tmp_path)
    sdist = index.project_files("demo")[0]
    index.download(sdist, tmp_path / "dl")
    (index_dir.packages / "demo-1.0.tar.gz").unlink()

    path = index.download(sdist, tmp_path / "dl")

    assert path.read_bytes() == SDIST_BYTES


def test_download_replaces_an_earlier_copy_that_does_not_match(index_dir, tmp_path):
    index = upstream(index_dir, tmp_path)
    sdist = index.project_files("demo")[0]
    first = index.download(sdist, tmp_path / "dl")
    first.write_bytes(b"truncated")

    path = index.download(sdist, tmp_path / "dl")

    assert path == first
    assert path.read_bytes() == SDIST_BYTES
    assert files_under(tmp_path / "dl") == [path]


def test_download_keeps_same_named_files_with_different_hashes_apart(index_dir, tmp_path):
    index = upstream(index_dir, tmp_path)
    upstream_sdist = index.project_files("demo")[0]
    other_bytes = b"a different demo 1.0 from another index\n"
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    (other_dir / "demo-1.0.tar.gz").write_bytes(other_bytes)
    other_sdist = DistributionFile("demo-1.0.tar.gz", (other_dir / "demo-1.0.tar.gz").as_uri(),
                                   sha256=sha256(other_bytes))

    first = index.download(upstream_sdist, tmp_path / "dl")
    second = index.download(other_sdist, tmp_path / "dl")

    assert first != second
    assert (first.read_bytes(), second.read_bytes()) == (SDIST_BYTES, other_bytes)


def test_download_without_a_hash_is_kept_by_url(index_dir, tmp_path):
    index = upstream(index_dir, tmp_path)
    sdist = index.project_files("demo")[0]
    unhashed = DistributionFile(sdist.filename, sdist.url, sha256=None)

    path = index.download(unhashed, tmp_path / "dl")

    key = sha256(sdist.url.encode())
    assert path == tmp_path / "dl" / key[:2] / key / "demo-1.0.tar.gz"
    assert path.read_bytes() == SDIST_BYTES


def test_download_of_a_file_missing_from_the_index_raises_upstream_error(index_dir, tmp_path):
    index = upstream(index_dir, tmp_path)
    sdist = index.project_files("demo")[0]
    (index_dir.packages / "demo-1.0.tar.gz").unlink()

    with pytest.raises(UpstreamError):
        index.download(sdist, tmp_path / "dl")


# -- PEP 658 metadata ------------------------------------------------------------------------
def add_wheel_with_metadata(index: FileIndex, filename: str, metadata: str) -> dict:
    index.add_file(filename, WHEEL_BYTES)
    (index.packages / f"{filename}.metadata").write_text(metadata, encoding="utf-8")
    return {"filename": filename, "url": f"../../packages/{filename}",
            "hashes": {"sha256": sha256(WHEEL_BYTES)},
            "core-metadata": {"sha256": sha256(metadata.encode())}}


def test_requires_dist_reads_pep_658_metadata_next_to_an_advertised_wheel(tmp_path):
    index = FileIndex(tmp_path / "index")
    index.json_page("demo", [add_wheel_with_metadata(index, "demo-1.0-py3-none-any.whl", METADATA)])
    upstream_index = upstream(index, tmp_path)
    files = upstream_index.project_files("demo")
    assert files[0].has_metadata

    requires = upstream_index.requires_dist("demo", "1.0", files)

    assert requires == ["idna>=2.5", 'PySocks!=1.5.7,>=1.5.6; extra == "socks"']


def test_requires_dist_reads_pep_658_metadata_advertised_on_an_html_page(tmp_path):
    index = FileIndex(tmp_path / "index")
    add_wheel_with_metadata(index, "demo-1.0-py3-none-any.whl", METADATA)
    index.html_page("demo", '<a href="../../packages/demo-1.0-py3-none-any.whl" '
                            'data-dist-info-metadata="true">demo-1.0-py3-none-any.whl</a>')
    upstream_index = upstream(index, tmp_path)

    requires = upstream_index.requires_dist("demo", "1.0", upstream_index.project_files("demo"))

    assert requires == ["idna>=2.5", 'PySocks!=1.5.7,>=1.5.6; extra == "socks"']


def test_requires_dist_prefers_the_pure_python_wheels_metadata(tmp_path):
    index = FileIndex(tmp_path / "index")
    platform = add_wheel_with_metadata(
        index, "demo-1.0-cp39-cp39-manylinux_2_17_aarch64.whl",
        METADATA.replace("idna>=2.5", "platform-only"))
    pure = add_wheel_with_metadata(index, "demo-1.0-py3-none-any.whl", METADATA)
    index.json_page("demo", [platform, pure])
    upstream_index = upstream(index, tmp_path)

    requires = upstream_index.requires_dist("demo", "1.0", upstream_index.project_files("demo"))

    assert requires[0] == "idna>=2.5"


def test_requires_dist_is_unknown_when_no_wheel_advertises_metadata(index_dir, tmp_path):
    # The metadata file exists, but the page does not advertise it, so it is not asked for.
    (index_dir.packages / "demo-1.0-py3-none-any.whl.metadata").write_text(METADATA)
    upstream_index = upstream(index_dir, tmp_path)

    assert upstream_index.requires_dist("demo", "1.0", upstream_index.project_files("demo")) is None


def test_requires_dist_is_unknown_when_advertised_metadata_is_missing(tmp_path):
    index = FileIndex(tmp_path / "index")
    entry = add_wheel_with_metadata(index, "demo-1.0-py3-none-any.whl", METADATA)
    (index.packages / "demo-1.0-py3-none-any.whl.metadata").unlink()
    index.json_page("demo", [entry])
    upstream_index = upstream(index, tmp_path)

    assert upstream_index.requires_dist("demo", "1.0", upstream_index.project_files("demo")) is None


def test_core_metadata_is_cached_for_good(tmp_path):
    index = FileIndex(tmp_path / "index")
    index.json_page("demo", [add_wheel_with_metadata(index, "demo-1.0-py3-none-any.whl", METADATA)])
    (wheel,) = upstream(index, tmp_path).project_files("demo")
    assert upstream(index, tmp_path).core_metadata(wheel) == METADATA
    (index.packages / "demo-1.0-py3-none-any.whl.metadata").unlink()

    assert upstream(index, tmp_path, refresh=True).core_metadata(wheel) == METADATA

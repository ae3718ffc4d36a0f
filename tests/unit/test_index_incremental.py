"""The index's cheap paths (issue 19): one wheel added touches only what it changes (its project's
run of lines on the find-links page, the project list only for a new project), each file is still
written whole through a rename, and the wheel's METADATA read from its bytes is the one zipfile
reads."""

import io
import os
import random
import zipfile

import pytest
from packaging.version import Version

from mirror_builder.errors import MirrorBuilderError
from mirror_builder.index import findlinks, pagefiles, rootpages
from mirror_builder.index.wheelindex import SimpleIndex, WheelIndex, verify
from mirror_builder.layout import OutputLayout
from test_index import make_wheel

NAMES = ["a", "a-b", "a-b-c", "ab", "a0", "b", "x-1", "x1", "zz"]  # prefixes of each other


def test_the_page_updated_one_project_at_a_time_is_the_page_written_whole(tmp_path):
    rng = random.Random(19)
    layout = OutputLayout.of(tmp_path)
    projects: dict[str, list[dict]] = {}
    for step in range(400):
        name = rng.choice(NAMES)
        projects[name] = [
            {"filename": f"{name.replace('-', '_')}-{version}-py3-none-any.whl",
             "hashes": {"sha256": f"{rng.randrange(16 ** 8):08x}"},
             "requires-python": rng.choice([None, ">=3.8", "<4,>=3"]),
             "yanked": rng.random() < 0.2}
            for version in rng.sample(["0.9", "1.0", "1.1", "2.0"], rng.randrange(4))]
        findlinks.update(layout, name, projects[name])
        updated = layout.find_links.read_bytes()
        findlinks.write(layout, projects)
        assert layout.find_links.read_bytes() == updated, step


def test_a_page_not_as_we_write_it_is_made_again_from_its_links(tmp_path):
    layout = OutputLayout.of(tmp_path)
    layout.find_links.write_text('<html><body>\n    <a href="files/b/b-1.0-py3-none-any.whl#sha256=1">'
                                 'b-1.0-py3-none-any.whl</a><br/>\n')
    findlinks.update(layout, "a", [{"filename": "a-1.0-py3-none-any.whl",
                                    "hashes": {"sha256": "2"}}])
    text = layout.find_links.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.endswith("</html>\n")
    assert [line.split('"')[1] for line in text.splitlines() if "<a " in line] == [
        "files/a/a-1.0-py3-none-any.whl#sha256=2", "files/b/b-1.0-py3-none-any.whl#sha256=1"]


def test_the_page_is_not_written_when_the_project_says_the_same(tmp_path):
    layout = OutputLayout.of(tmp_path)
    files = [{"filename": "a-1.0-py3-none-any.whl", "hashes": {"sha256": "1"}}]
    findlinks.update(layout, "a", files)
    before = layout.find_links.stat()
    findlinks.update(layout, "a", files)
    after = layout.find_links.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_new_version_leaves_the_project_list_alone_and_a_new_project_joins_it(tmp_path):
    index = WheelIndex(tmp_path / "out")
    for name in ("b-1.0-py3-none-any.whl", "d-1.0-py3-none-any.whl"):
        index.add(make_wheel(tmp_path / "built", name))
    pages = [index.layout.json_page(), index.layout.html_page()]
    before = [page.stat().st_ino for page in pages]
    index.add(make_wheel(tmp_path / "built", "b-1.1-py3-none-any.whl"))
    assert [page.stat().st_ino for page in pages] == before
    index.add(make_wheel(tmp_path / "built", "c-1.0-py3-none-any.whl"))
    assert index.projects() == ["b", "c", "d"]
    assert '<a href="b/">b</a><br/>\n    <a href="c/">c</a>' in pages[1].read_text()
    assert verify(index) == []


def test_a_new_name_put_in_its_place_gives_the_root_pages_made_whole(tmp_path):
    rng = random.Random(3)
    index = SimpleIndex(tmp_path)
    for trial in range(150):
        names = rng.sample(NAMES + [f"p{number}" for number in range(30)], rng.randrange(12))
        listed = set(names[:rng.randrange(len(names) + 1)])
        index._write_root(listed)
        for name in names:
            if name in listed:
                continue
            pages = index.layout.json_page().read_bytes(), index.layout.html_page().read_bytes()
            spliced = rootpages.with_project(*pages, name)
            listed.add(name)
            index._write_root(listed)
            assert spliced == (index.layout.json_page().read_bytes(),
                               index.layout.html_page().read_bytes()), (trial, name)


def test_root_pages_not_as_we_write_them_or_a_name_to_escape_are_left_to_a_rewrite():
    index_json = b'{"meta":{"api-version":"1.1"},"projects":[{"name":"a"}]}'
    html = pagefiles.html_page("Simple index", ['    <a href="a/">a</a><br/>']).encode()
    assert rootpages.with_project(index_json, html, "b") is not None
    assert rootpages.with_project(index_json.replace(b":[", b": ["), html, "b") is None
    assert rootpages.with_project(index_json, html.replace(b"<h1>", b"<h2>"), "b") is None
    assert rootpages.with_project(index_json, html, "caf\u00e9") is None


def test_a_project_missing_from_one_of_the_root_pages_is_put_back_on_both(tmp_path):
    index = WheelIndex(tmp_path / "out")
    index.add(make_wheel(tmp_path / "built", "a-1.0-py3-none-any.whl"))
    html = index.layout.html_page()
    html.write_text(html.read_text().replace('<a href="a/">a</a><br/>', ""))
    index.add(make_wheel(tmp_path / "built", "a-1.1-py3-none-any.whl"))
    assert '<a href="a/">a</a><br/>' in html.read_text()
    assert verify(index) == []


def test_adds_and_yanks_keep_every_page_as_a_regeneration_writes_it(tmp_path):
    rng = random.Random(5)
    index = WheelIndex(tmp_path / "out")
    for number in range(40):
        name = rng.choice(["a", "a_b", "ab", "b", "c"])
        index.add(make_wheel(tmp_path / "built", f"{name}-1.{number}-py3-none-any.whl"))
        if number % 7 == 6:
            index.yank(name, Version(f"1.{number}"), "broken")
    pages = sorted(p for p in index.root.rglob("*") if p.is_file() and p.suffix in (".html", ".json"))
    written = {p: p.read_bytes() for p in pages}
    assert index.regenerate(workers=1) == 40
    assert {p: p.read_bytes() for p in pages} == written
    assert verify(index) == []


def test_a_file_is_written_whole_readable_by_all_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "page.html"
    old = os.umask(0o077)
    try:
        pagefiles.write_atomically(target, b"one ", memoryview(b"two"))
    finally:
        os.umask(old)
    assert target.read_bytes() == b"one two" and target.stat().st_mode & 0o777 == 0o644
    # A temporary file of this name left by a killed writer (same process id): another is used.
    leftover = tmp_path / f".page.html.{os.getpid()}-{next(pagefiles._numbers) + 1}.tmp"
    leftover.write_text("left")
    pagefiles.write_atomically(target, b"three", release_old_later=True)
    assert target.read_bytes() == b"three"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([leftover.name, "page.html"])


def zipped(entries: dict[str, bytes], method=zipfile.ZIP_DEFLATED, comment=b"") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        zf.comment = comment
    return buffer.getvalue()


METADATA = b"Metadata-Version: 2.1\nName: a\nVersion: 1.0\n"


@pytest.mark.parametrize("data", [
    zipped({"a/__init__.py": b"x", "a-1.0.dist-info/METADATA": METADATA}),
    zipped({"a-1.0.dist-info/METADATA": METADATA}, method=zipfile.ZIP_STORED),
    zipped({"a-1.0.dist-info/METADATA": METADATA}, comment=b"with a comment"),  # zipfile's way
    b"#!/bin/sh\n" + zipped({"a-1.0.dist-info/METADATA": METADATA}),  # leading bytes: zipfile
], ids=["deflated", "stored", "comment", "leading-bytes"])
def test_the_metadata_read_from_the_bytes_is_the_one_zipfile_reads(data):
    assert pagefiles.core_metadata("a-1.0-py3-none-any.whl", data) == METADATA


def test_a_wheel_zipfile_would_refuse_is_refused():
    good = zipped({"a-1.0.dist-info/METADATA": METADATA}, method=zipfile.ZIP_STORED)
    torn = good.replace(METADATA, METADATA.upper())  # the CRC no longer matches
    with pytest.raises(MirrorBuilderError, match="not a valid wheel"):
        pagefiles.core_metadata("a-1.0-py3-none-any.whl", torn)
    twice = zipped({"a-1.0.dist-info/METADATA": METADATA, "b-1.0.dist-info/METADATA": METADATA})
    with pytest.raises(MirrorBuilderError, match="expected one"):
        pagefiles.core_metadata("a-1.0-py3-none-any.whl", twice)


def test_corrupted_wheels_read_from_their_bytes_as_zipfile_reads_them():
    rng = random.Random(7)
    base = zipped({"a/__init__.py": b"x = 1\n" * 50, "a-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\n",
                   "a-1.0.dist-info/METADATA": METADATA * 5, "a-1.0.dist-info/RECORD": b""})
    for _ in range(3000):
        data = bytearray(base)
        position = rng.randrange(len(data) - 300, len(data)) if rng.random() < 0.8 \
            else rng.randrange(len(data))
        data[position] = rng.choice([0, 0x20, 0x40, 0xFF, rng.randrange(256)])
        found = pagefiles._plain_metadata(bytes(data))
        if found is not None:
            with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
                assert zf.read("a-1.0.dist-info/METADATA") == found

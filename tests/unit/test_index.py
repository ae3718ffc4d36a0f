"""Specification of mirror_builder.index.wheelindex: the wheels-only PEP 503 / PEP 691 index on disk."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from packaging.version import Version

from mirror_builder.index.wheelindex import API_VERSION, IndexedWheel, WheelIndex


def make_wheel(directory: Path, filename: str, *, payload: str = "VALUE = 1\n") -> Path:
    """A tiny but valid wheel: one module plus METADATA, WHEEL and RECORD."""
    name, version = filename.split("-")[:2]
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name.lower()}/__init__.py": payload.encode(),
        f"{dist_info}/METADATA": (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n").encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                              b"Tag: py3-none-any\n",
    }
    record = []
    for arcname, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{arcname},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    with zipfile.ZipFile(path, "w") as zf:
        for arcname, data in files.items():
            zf.writestr(arcname, data)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def all_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def index(tmp_path) -> WheelIndex:
    return WheelIndex(tmp_path / "output")


@pytest.fixture
def built(tmp_path) -> Path:
    return tmp_path / "built"


# -- add: layout -----------------------------------------------------------------------------
def test_add_copies_the_wheel_under_files_project(index, built):
    wheel = make_wheel(built, "Foo_Bar-1.0-py3-none-any.whl")

    added = index.add(wheel, ">=3.8")

    dest = index.root / "files" / "foo-bar" / "Foo_Bar-1.0-py3-none-any.whl"
    assert dest.read_bytes() == wheel.read_bytes()
    assert dest.stat().st_mode & 0o777 == 0o644
    assert added == IndexedWheel(project="foo-bar", filename="Foo_Bar-1.0-py3-none-any.whl",
                                 version=Version("1.0"), build_tag=(), path=dest,
                                 sha256=sha256(wheel), requires_python=">=3.8")


def test_add_writes_exactly_the_wheel_and_the_pages_and_leaves_no_temp_files(index, built):
    index.add(make_wheel(built, "a-1.0-py3-none-any.whl"), None)
    index.add(make_wheel(built, "a-1.1-py3-none-any.whl"), None)
    index.add(make_wheel(built, "b-2.0-py3-none-any.whl"), None)

    assert all_files(index.root) == {
        ".index.lock",
        "files/a/a-1.0-py3-none-any.whl",
        "files/a/a-1.0-py3-none-any.whl.metadata",
        "files/a/a-1.1-py3-none-any.whl",
        "files/a/a-1.1-py3-none-any.whl.metadata",
        "files/b/b-2.0-py3-none-any.whl",
        "files/b/b-2.0-py3-none-any.whl.metadata",
        "find-links.html",
        "simple/index.html",
        "simple/index.json",
        "simple/a/index.html",
        "simple/a/index.json",
        "simple/b/index.html",
        "simple/b/index.json",
    }
    assert not [p for p in index.root.rglob("*") if p.name.endswith((".part", ".tmp"))]


# -- add: root list --------------------------------------------------------------------------
def test_root_pages_list_the_project(index, built):
    index.add(make_wheel(built, "Foo_Bar-1.0-py3-none-any.whl"), None)

    root_json = json.loads((index.simple_dir / "index.json").read_text())
    assert root_json == {"meta": {"api-version": "1.1"}, "projects": [{"name": "foo-bar"}]}
    root_html = (index.simple_dir / "index.html").read_text()
    assert '<a href="foo-bar/">foo-bar</a>' in root_html
    assert '<meta name="pypi:repository-version" content="1.1">' in root_html


def test_second_project_is_added_to_the_root_list(index, built):
    index.add(make_wheel(built, "zeta-1.0-py3-none-any.whl"), None)
    index.add(make_wheel(built, "alpha-1.0-py3-none-any.whl"), None)

    root_json = json.loads((index.simple_dir / "index.json").read_text())
    assert root_json["projects"] == [{"name": "alpha"}, {"name": "zeta"}]
    root_html = (index.simple_dir / "index.html").read_text()
    assert '<a href="alpha/">alpha</a>' in root_html
    assert '<a href="zeta/">zeta</a>' in root_html
    assert index.projects() == ["alpha", "zeta"]


# -- add: project pages ----------------------------------------------------------------------
def test_project_html_links_the_wheel_with_its_sha256(index, built):
    wheel = make_wheel(built, "a-1.0-py3-none-any.whl")

    index.add(wheel, None)

    page = (index.simple_dir / "a" / "index.html").read_text()
    metadata = index.files_dir / "a" / "a-1.0-py3-none-any.whl.metadata"
    meta = f"sha256={sha256(metadata)}"
    link = (f'<a href="../../files/a/a-1.0-py3-none-any.whl#sha256={sha256(wheel)}" '
            f'data-core-metadata="{meta}" data-dist-info-metadata="{meta}">'
            "a-1.0-py3-none-any.whl</a>")
    assert link in page
    assert "data-requires-python" not in page
    assert "<title>Links for a</title>" in page


def test_project_html_escapes_requires_python(index, built):
    index.add(make_wheel(built, "a-1.0-py3-none-any.whl"), '>=3.8,<4,!="3.9"')

    page = (index.simple_dir / "a" / "index.html").read_text()
    assert 'data-requires-python="&gt;=3.8,&lt;4,!=&quot;3.9&quot;"' in page
    assert "<4" not in page


def test_project_json_page_is_pep_691_api_1_1(index, built):
    wheel = make_wheel(built, "a-1.0-py3-none-any.whl")

    index.add(wheel, ">=3.8")

    data = json.loads((index.simple_dir / "a" / "index.json").read_text())
    assert data["meta"] == {"api-version": API_VERSION}
    assert API_VERSION == "1.1"
    assert data["name"] == "a"
    assert data["versions"] == ["1.0"]
    [entry] = data["files"]
    assert entry["filename"] == "a-1.0-py3-none-any.whl"
    assert entry["url"] == "../../files/a/a-1.0-py3-none-any.whl"
    assert entry["hashes"] == {"sha256": sha256(wheel)}
    assert entry["size"] == wheel.stat().st_size
    assert entry["requires-python"] == ">=3.8"
    assert entry["yanked"] is False
    assert entry["upload-time"].endswith("Z")


def test_project_json_url_resolves_to_the_stored_wheel(index, built):
    index.add(make_wheel(built, "a-1.0-py3-none-any.whl"), None)

    entry = json.loads((index.simple_dir / "a" / "index.json").read_text())["files"][0]
    assert ((index.simple_dir / "a" / entry["url"]).resolve()
            == (index.files_dir / "a" / "a-1.0-py3-none-any.whl").resolve())


def test_project_versions_are_sorted_as_versions_and_deduplicated(index, built):
    for filename in ("a-1.10-py3-none-any.whl", "a-1.9-py3-none-any.whl",
                     "a-1.9-1-py3-none-any.whl", "a-1.9-cp311-cp311-linux_x86_64.whl"):
        index.add(make_wheel(built, filename), None)

    data = json.loads((index.simple_dir / "a" / "index.json").read_text())
    assert data["versions"] == ["1.9", "1.10"]
    assert [f["filename"] for f in data["files"]] == sorted([
        "a-1.10-py3-none-any.whl", "a-1.9-py3-none-any.whl",
        "a-1.9-1-py3-none-any.whl", "a-1.9-cp311-cp311-linux_x86_64.whl"])


# -- add: immutability -----------------------------------------------------------------------
def test_adding_the_same_wheel_twice_raises_and_keeps_the_first(index, built, tmp_path):
    first = make_wheel(built, "a-1.0-py3-none-any.whl", payload="FIRST = 1\n")
    index.add(first, ">=3.8")
    original = first.read_bytes()
    pages_before = {p: (index.simple_dir / p).read_text()
                    for p in ("index.json", "a/index.json", "a/index.html")}
    rebuilt = make_wheel(tmp_path / "rebuilt", "a-1.0-py3-none-any.whl", payload="SECOND = 2\n")
    assert rebuilt.read_bytes() != original

    with pytest.raises(FileExistsError, match="a-1.0-py3-none-any.whl"):
        index.add(rebuilt, ">=3.9")

    assert (index.files_dir / "a" / "a-1.0-py3-none-any.whl").read_bytes() == original
    assert {p: (index.simple_dir / p).read_text() for p in pages_before} == pages_before
    assert not [p for p in index.root.rglob("*") if p.name.endswith((".part", ".tmp"))]


# -- reading back ----------------------------------------------------------------------------
def test_wheels_reads_back_what_was_added(index, built):
    plain = make_wheel(built, "a-1.0-py3-none-any.whl")
    tagged = make_wheel(built, "a-1.0-1-py3-none-any.whl")
    newer = make_wheel(built, "a-2.0-py3-none-any.whl")
    index.add(plain, ">=3.8")
    index.add(tagged, None)
    index.add(newer, None)

    wheels = {w.filename: w for w in index.wheels("A")}

    assert set(wheels) == {"a-1.0-py3-none-any.whl", "a-1.0-1-py3-none-any.whl",
                           "a-2.0-py3-none-any.whl"}
    assert wheels["a-1.0-1-py3-none-any.whl"] == IndexedWheel(
        project="a", filename="a-1.0-1-py3-none-any.whl", version=Version("1.0"),
        build_tag=(1, ""), path=index.files_dir / "a" / "a-1.0-1-py3-none-any.whl",
        sha256=sha256(tagged), requires_python=None)
    assert wheels["a-1.0-py3-none-any.whl"].build_tag == ()
    assert wheels["a-1.0-py3-none-any.whl"].requires_python == ">=3.8"
    assert wheels["a-1.0-py3-none-any.whl"].sha256 == sha256(plain)
    assert wheels["a-2.0-py3-none-any.whl"].version == Version("2.0")


def test_find_returns_every_wheel_of_that_version_including_build_tags(index, built):
    for filename in ("a-1.0-py3-none-any.whl", "a-1.0-1-py3-none-any.whl",
                     "a-1.0-2abc-py3-none-any.whl", "a-2.0-py3-none-any.whl"):
        index.add(make_wheel(built, filename), None)

    found = index.find("a", Version("1.0"))

    assert sorted((w.filename, w.build_tag) for w in found) == [
        ("a-1.0-1-py3-none-any.whl", (1, "")),
        ("a-1.0-2abc-py3-none-any.whl", (2, "abc")),
        ("a-1.0-py3-none-any.whl", ()),
    ]
    assert index.find("a", Version("1.0.0")) != []  # PEP 440 equality, not string equality
    assert index.find("a", Version("3.0")) == []


def test_reading_an_empty_or_missing_index_finds_nothing(index):
    assert index.projects() == []
    assert index.wheels("a") == []
    assert index.find("a", Version("1.0")) == []


def test_wheels_accepts_any_spelling_of_the_project_name(index, built):
    index.add(make_wheel(built, "Foo_Bar-1.0-py3-none-any.whl"), None)

    for spelling in ("foo-bar", "Foo_Bar", "FOO.bar"):
        assert [w.filename for w in index.wheels(spelling)] == ["Foo_Bar-1.0-py3-none-any.whl"]


def test_a_new_index_object_sees_what_another_one_added(index, built):
    index.add(make_wheel(built, "a-1.0-py3-none-any.whl"), None)

    reopened = WheelIndex(index.root)

    assert reopened.projects() == ["a"]
    assert [w.filename for w in reopened.wheels("a")] == ["a-1.0-py3-none-any.whl"]


def test_url_is_the_file_uri_of_the_simple_folder(index, built):
    index.add(make_wheel(built, "a-1.0-py3-none-any.whl"), None)

    assert index.url() == index.simple_dir.resolve().as_uri() + "/"
    assert index.url().startswith("file:///") and index.url().endswith("/simple/")


# -- core metadata (PEP 658/714), yanks, regeneration, the source archive ---------------------
from mirror_builder.index.wheelindex import SimpleIndex, verify  # noqa: E402


def test_every_wheel_gets_its_metadata_file_advertised_with_its_hash(index, built):
    wheel = make_wheel(built, "a-1.0-py3-none-any.whl")
    index.add(wheel, None)
    metadata = index.files_dir / "a" / "a-1.0-py3-none-any.whl.metadata"
    with zipfile.ZipFile(wheel) as zf:
        assert metadata.read_bytes() == zf.read("a-1.0.dist-info/METADATA")
    (entry,) = json.loads((index.simple_dir / "a" / "index.json").read_text())["files"]
    assert entry["core-metadata"] == {"sha256": sha256(metadata)}
    assert entry["dist-info-metadata"] == entry["core-metadata"]
    assert verify(index) == []


def test_yank_marks_every_file_of_the_version_and_deletes_nothing(index, built):
    index.add(make_wheel(built, "a-1.0-py3-none-any.whl"), None)
    index.add(make_wheel(built, "a-1.0-1-py3-none-any.whl"), None)
    index.add(make_wheel(built, "a-1.1-py3-none-any.whl"), None)
    changed = index.yank("a", Version("1.0"), "broken build")
    assert sorted(changed) == ["a-1.0-1-py3-none-any.whl", "a-1.0-py3-none-any.whl"]
    page = (index.simple_dir / "a" / "index.html").read_text()
    assert page.count('data-yanked="broken build"') == 2
    entries = {e["filename"]: e["yanked"] for e in index.entries("a")}
    assert entries == {"a-1.0-1-py3-none-any.whl": "broken build",
                       "a-1.0-py3-none-any.whl": "broken build", "a-1.1-py3-none-any.whl": False}
    assert len(list((index.files_dir / "a").glob("*.whl"))) == 3
    index.yank("a", Version("1.0"), None, undo=True)
    assert "data-yanked" not in (index.simple_dir / "a" / "index.html").read_text()


def test_a_yank_without_reason_is_still_a_yank(index, built):
    index.add(make_wheel(built, "a-1.0-py3-none-any.whl"), None)
    index.yank("a", Version("1.0"), None)
    assert 'data-yanked=""' in (index.simple_dir / "a" / "index.html").read_text()
    assert index.entries("a")[0]["yanked"] is True


def test_regenerate_rebuilds_every_page_from_the_files_and_keeps_yanks(index, built):
    index.add(make_wheel(built, "a-1.0-py3-none-any.whl"), None)
    index.add(make_wheel(built, "b-2.0-py3-none-any.whl"), None)
    index.yank("a", Version("1.0"), "bad")
    before = json.loads((index.simple_dir / "a" / "index.json").read_text())
    for page in index.simple_dir.rglob("index.html"):
        page.unlink()
    (index.files_dir / "b" / "b-2.0-py3-none-any.whl.metadata").unlink()
    assert index.regenerate() == 2
    assert json.loads((index.simple_dir / "a" / "index.json").read_text()) == before
    assert verify(index) == []


def test_verify_reports_a_file_that_no_longer_matches_its_hash(index, built):
    index.add(make_wheel(built, "a-1.0-py3-none-any.whl"), None)
    path = index.files_dir / "a" / "a-1.0-py3-none-any.whl"
    path.write_bytes(path.read_bytes() + b"tampered")
    problems = verify(index)
    assert "a: a-1.0-py3-none-any.whl: sha256 does not match the page" in problems
    assert "a: a-1.0-py3-none-any.whl: size does not match the page" in problems


def test_the_source_archive_is_its_own_index_of_sdists(tmp_path):
    sources = SimpleIndex(tmp_path / "sources", "sdist")
    sdist = tmp_path / "a-1.0.tar.gz"
    sdist.write_bytes(b"not really a tarball, but the index only hashes it")
    sources.add(sdist)
    (entry,) = sources.entries("a")
    assert entry["hashes"]["sha256"] == sha256(sdist)
    assert "core-metadata" not in entry
    assert (tmp_path / "sources" / "files" / "a" / "a-1.0.tar.gz").read_bytes() == sdist.read_bytes()
    assert verify(sources) == []

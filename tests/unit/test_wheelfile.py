"""Stamping a built wheel with its rebuild number and build record (mirror_builder/wheelfile.py),
on small but real wheels made in tmp_path."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import zipfile
from email.parser import HeaderParser
from pathlib import Path

import pytest
from packaging.version import Version

from mirror_builder.errors import MirrorBuilderError
from mirror_builder.provenance.stamp import (
    EMBEDDED_RECORD,
    read_embedded_record,
    rebuilt_filename,
    rebuilt_version,
    stamp_wheel,
)

MODULE_SOURCE = b'GREETING = "hello"\n'
SCRIPT_SOURCE = b"#!python\nprint('tool')\n"
README_BODY = "A demo package.\n\nVersion: 9.9 is mentioned in the description, not a header.\n"
RECORD_JSON = {"schema": "mirror-builder/build-record/v1", "name": "demo", "rebuild": {"number": 2}}


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(directory: Path, name: str = "demo", version: str = "1.0",
               tag: str = "py3-none-any", *, scripts: bool = False,
               signatures: tuple[str, ...] = ()) -> Path:
    """A valid wheel: a package, a .dist-info with METADATA, WHEEL and a correct RECORD, and
    optionally a .data/scripts/tool and RECORD signature files."""
    base = f"{name}-{version}"
    purelib = tag.endswith("-none-any")
    files: dict[str, bytes] = {
        f"{name}/__init__.py": MODULE_SOURCE,
        f"{base}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: demo\n"
            f"Requires-Dist: packaging>=20\n\n{README_BODY}").encode(),
        f"{base}.dist-info/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: test 1.0\n"
            f"Root-Is-Purelib: {'true' if purelib else 'false'}\nTag: {tag}\n\n").encode(),
    }
    if scripts:
        files[f"{base}.data/scripts/tool"] = SCRIPT_SOURCE
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for path, data in files.items():
        writer.writerow([path, _hash(data), len(data)])
    writer.writerow([f"{base}.dist-info/RECORD", "", ""])
    files[f"{base}.dist-info/RECORD"] = record.getvalue().encode()
    for suffix in signatures:
        files[f"{base}.dist-info/RECORD.{suffix}"] = b"signature-of-the-old-record"

    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            info = zipfile.ZipInfo(path, date_time=(2020, 2, 2, 0, 0, 0))
            executable = path.endswith("/scripts/tool")
            info.external_attr = (0o100755 if executable else 0o100644) << 16
            zf.writestr(info, data)
    return wheel


def stamp(wheel: Path, dest: Path, number: int, numbering: str,
          embed: dict[str, bytes] | None = None) -> Path:
    if embed is None:
        embed = {EMBEDDED_RECORD: json.dumps(RECORD_JSON).encode()}
    return stamp_wheel(wheel, dest, number=number, numbering=numbering, embed=embed)


def contents(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def headers(data: bytes):
    return HeaderParser().parsestr(data.decode())


def top_dirs(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return {n.split("/", 1)[0] for n in zf.namelist() if "/" in n}


def record_rows(wheel: Path) -> list[list[str]]:
    files = contents(wheel)
    [record_name] = [n for n in files if n.endswith(".dist-info/RECORD")]
    return list(csv.reader(io.StringIO(files[record_name].decode())))


# -- build-tag numbering -------------------------------------------------------------------------

def test_build_tag_numbering_puts_the_number_in_file_name_and_wheel_file_only(tmp_path):
    wheel = make_wheel(tmp_path / "in", scripts=True)

    out = stamp(wheel, tmp_path / "out", 1, "build-tag")

    assert out == tmp_path / "out" / "demo-1.0-1-py3-none-any.whl"
    files = contents(out)
    wheel_file = headers(files["demo-1.0.dist-info/WHEEL"])
    assert wheel_file.get_all("Build") == ["1"]
    assert wheel_file["Tag"] == "py3-none-any"
    assert wheel_file["Root-Is-Purelib"] == "true"
    assert headers(files["demo-1.0.dist-info/METADATA"])["Version"] == "1.0"
    assert top_dirs(out) == {"demo", "demo-1.0.dist-info", "demo-1.0.data"}
    assert files["demo/__init__.py"] == MODULE_SOURCE
    assert files["demo-1.0.data/scripts/tool"] == SCRIPT_SOURCE


def test_build_tag_number_zero_leaves_name_and_wheel_file_unchanged(tmp_path):
    wheel = make_wheel(tmp_path / "in")
    original = contents(wheel)

    out = stamp(wheel, tmp_path / "out", 0, "build-tag")

    assert out.name == "demo-1.0-py3-none-any.whl"
    files = contents(out)
    assert files["demo-1.0.dist-info/WHEEL"] == original["demo-1.0.dist-info/WHEEL"]
    assert files["demo-1.0.dist-info/METADATA"] == original["demo-1.0.dist-info/METADATA"]
    assert "Build" not in headers(files["demo-1.0.dist-info/WHEEL"])


def test_build_tag_replaces_an_existing_build_header_rather_than_adding_a_second(tmp_path):
    wheel = make_wheel(tmp_path / "in")
    first = stamp(wheel, tmp_path / "one", 1, "build-tag")

    second = stamp(first, tmp_path / "two", 5, "build-tag", embed={})

    assert second.name == "demo-1.0-5-py3-none-any.whl"
    assert headers(contents(second)["demo-1.0.dist-info/WHEEL"]).get_all("Build") == ["5"]


# -- post-release numbering ----------------------------------------------------------------------

def test_post_release_numbering_renames_version_in_file_name_metadata_and_directories(tmp_path):
    wheel = make_wheel(tmp_path / "in", scripts=True)

    out = stamp(wheel, tmp_path / "out", 2, "post-release")

    assert out.name == "demo-1.0.post2-py3-none-any.whl"
    files = contents(out)
    assert headers(files["demo-1.0.post2.dist-info/METADATA"])["Version"] == "1.0.post2"
    assert top_dirs(out) == {"demo", "demo-1.0.post2.dist-info", "demo-1.0.post2.data"}
    assert files["demo-1.0.post2.data/scripts/tool"] == SCRIPT_SOURCE
    assert f"demo-1.0.post2.dist-info/{EMBEDDED_RECORD}" in files
    old_prefixes = ("demo-1.0.dist-info/", "demo-1.0.data/")
    assert [n for n in files if n.startswith(old_prefixes)] == []
    assert [row[0] for row in record_rows(out) if row[0].startswith(old_prefixes)] == []
    # A post-release is not a build tag.
    assert "Build" not in headers(files["demo-1.0.post2.dist-info/WHEEL"])


def test_post_release_changes_only_the_version_header_of_metadata(tmp_path):
    wheel = make_wheel(tmp_path / "in")

    out = stamp(wheel, tmp_path / "out", 3, "post-release")

    before = contents(wheel)["demo-1.0.dist-info/METADATA"].decode()
    after = contents(out)["demo-1.0.post3.dist-info/METADATA"].decode()
    assert after == before.replace("\nVersion: 1.0\n", "\nVersion: 1.0.post3\n", 1)
    # The description's own "Version: 9.9" line is body text and stays as it was.
    assert after.endswith(README_BODY)
    assert headers(after.encode()).get_all("Version") == ["1.0.post3"]
    assert headers(after.encode())["Metadata-Version"] == "2.1"


def test_post_release_number_zero_leaves_the_wheel_name_and_version(tmp_path):
    wheel = make_wheel(tmp_path / "in", scripts=True)

    out = stamp(wheel, tmp_path / "out", 0, "post-release")

    assert out.name == "demo-1.0-py3-none-any.whl"
    assert top_dirs(out) == {"demo", "demo-1.0.dist-info", "demo-1.0.data"}
    assert headers(contents(out)["demo-1.0.dist-info/METADATA"])["Version"] == "1.0"


def test_post_release_refuses_a_version_that_is_already_a_post_release(tmp_path):
    wheel = make_wheel(tmp_path / "in", version="1.0.post1")

    with pytest.raises(MirrorBuilderError, match="build-tag"):
        stamp(wheel, tmp_path / "out", 1, "post-release")
    assert not (tmp_path / "out").exists()


# -- RECORD ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("numbering, number", [("build-tag", 4), ("post-release", 4),
                                               ("build-tag", 0)])
def test_record_lists_every_file_once_with_its_sha256_and_size(tmp_path, numbering, number):
    wheel = make_wheel(tmp_path / "in", scripts=True)

    out = stamp(wheel, tmp_path / "out", number, numbering)

    files = contents(out)
    rows = record_rows(out)
    listed = [row[0] for row in rows]
    assert sorted(listed) == sorted(files)           # every file, nothing else
    assert len(listed) == len(set(listed))           # each exactly once
    [record_name] = [n for n in files if n.endswith(".dist-info/RECORD")]
    for path, digest, size in rows:
        if path == record_name:
            continue
        data = files[path]
        assert digest == _hash(data), path
        assert "=" not in digest.removeprefix("sha256="), "urlsafe base64 without padding"
        assert int(size) == len(data), path


@pytest.mark.parametrize("numbering", ["build-tag", "post-release"])
def test_record_lists_itself_with_empty_hash_and_size(tmp_path, numbering):
    wheel = make_wheel(tmp_path / "in")

    out = stamp(wheel, tmp_path / "out", 1, numbering)

    dist_info = "demo-1.0.dist-info" if numbering == "build-tag" else "demo-1.0.post1.dist-info"
    assert [f"{dist_info}/RECORD", "", ""] in record_rows(out)
    assert f"{dist_info}/RECORD" in contents(out)


def test_record_includes_the_embedded_files(tmp_path):
    wheel = make_wheel(tmp_path / "in")
    embedded = json.dumps(RECORD_JSON).encode()

    out = stamp(wheel, tmp_path / "out", 1, "build-tag",
                embed={EMBEDDED_RECORD: embedded, "mirror_builder/extra.txt": b"x"})

    rows = {row[0]: row[1:] for row in record_rows(out)}
    assert rows[f"demo-1.0.dist-info/{EMBEDDED_RECORD}"] == [_hash(embedded), str(len(embedded))]
    assert rows["demo-1.0.dist-info/mirror_builder/extra.txt"] == [_hash(b"x"), "1"]


def test_old_record_signatures_are_dropped(tmp_path):
    wheel = make_wheel(tmp_path / "in", signatures=("jws", "p7s"))
    assert "demo-1.0.dist-info/RECORD.jws" in contents(wheel)

    out = stamp(wheel, tmp_path / "out", 1, "build-tag")

    names = set(contents(out))
    assert not {n for n in names if "/RECORD." in n}
    assert not {row[0] for row in record_rows(out) if "/RECORD." in row[0]}
    assert "demo-1.0.dist-info/RECORD" in names


def test_script_keeps_its_executable_mode(tmp_path):
    wheel = make_wheel(tmp_path / "in", scripts=True)

    out = stamp(wheel, tmp_path / "out", 1, "post-release")

    with zipfile.ZipFile(out) as zf:
        mode = zf.getinfo("demo-1.0.post1.data/scripts/tool").external_attr >> 16
        module_mode = zf.getinfo("demo/__init__.py").external_attr >> 16
    assert mode & 0o777 == 0o755
    assert module_mode & 0o777 == 0o644


def test_stamped_wheel_installs_with_pip(tmp_path):
    wheel = make_wheel(tmp_path / "in", scripts=True)
    out = stamp(wheel, tmp_path / "out", 2, "post-release")
    target = tmp_path / "site"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}

    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--no-cache-dir",
         "--disable-pip-version-check", "--no-compile", "--target", str(target), str(out)],
        capture_output=True, text=True, env=env, timeout=120)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (target / "demo" / "__init__.py").read_bytes() == MODULE_SOURCE
    dist_info = target / "demo-1.0.post2.dist-info"
    assert headers((dist_info / "METADATA").read_bytes())["Version"] == "1.0.post2"
    assert json.loads((dist_info / EMBEDDED_RECORD).read_text()) == RECORD_JSON
    tool = target / "bin" / "tool"
    assert tool.is_file()
    assert tool.stat().st_mode & stat.S_IXUSR


# -- read_embedded_record --------------------------------------------------------------------------

@pytest.mark.parametrize("numbering", ["build-tag", "post-release"])
def test_read_embedded_record_returns_the_embedded_json(tmp_path, numbering):
    wheel = make_wheel(tmp_path / "in")
    out = stamp(wheel, tmp_path / "out", 3, numbering)

    assert read_embedded_record(out) == RECORD_JSON


def test_read_embedded_record_is_none_for_a_wheel_without_one(tmp_path):
    wheel = make_wheel(tmp_path / "in")

    assert read_embedded_record(wheel) is None


def test_read_embedded_record_raises_for_a_file_that_is_not_a_zip(tmp_path):
    bogus = tmp_path / "demo-1.0-py3-none-any.whl"
    bogus.write_bytes(b"this is not a zip archive\n")

    with pytest.raises(MirrorBuilderError, match="not a readable wheel"):
        read_embedded_record(bogus)


def test_read_embedded_record_raises_for_a_missing_file(tmp_path):
    with pytest.raises(MirrorBuilderError, match="not a readable wheel"):
        read_embedded_record(tmp_path / "absent-1.0-py3-none-any.whl")


def test_read_embedded_record_raises_for_a_zip_without_dist_info(tmp_path):
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("demo/__init__.py", MODULE_SOURCE)

    with pytest.raises(MirrorBuilderError, match="expected one .dist-info directory, found 0"):
        read_embedded_record(wheel)


# -- rebuilt_version -------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["1.0.post1", "1.0.dev3", "1.0+local.1", "2.0rc1.post1"])
def test_rebuilt_version_refuses_post_dev_or_local_versions_in_post_release_mode(version):
    with pytest.raises(MirrorBuilderError, match="rebuild_numbering: build-tag"):
        rebuilt_version(Version(version), 1, "post-release")


@pytest.mark.parametrize("version, number, expected", [
    ("1.0", 1, "1.0.post1"), ("1.0", 12, "1.0.post12"), ("2.0rc1", 3, "2.0rc1.post3"),
    ("1!3.4.5", 2, "1!3.4.5.post2"),
])
def test_rebuilt_version_appends_the_number_as_post_release(version, number, expected):
    assert rebuilt_version(Version(version), number, "post-release") == Version(expected)
    assert str(rebuilt_version(Version(version), number, "post-release")) == expected


@pytest.mark.parametrize("version", ["1.0", "1.0.post1", "1.0.dev3", "1.0+local.1"])
@pytest.mark.parametrize("number", [0, 1, 7])
def test_rebuilt_version_never_changes_in_build_tag_mode(version, number):
    assert str(rebuilt_version(Version(version), number, "build-tag")) == version


@pytest.mark.parametrize("version", ["1.0", "1.0.post1", "1.0.dev3", "1.0+local.1"])
def test_rebuilt_version_never_changes_for_number_zero(version):
    assert str(rebuilt_version(Version(version), 0, "post-release")) == version


# -- rebuilt_filename --------------------------------------------------------------------------------

@pytest.mark.parametrize("filename, number, numbering, expected", [
    ("pkg-2.0-cp311-cp311-linux_x86_64.whl", 3, "build-tag", "pkg-2.0-3-cp311-cp311-linux_x86_64.whl"),
    ("pkg-2.0-cp311-cp311-linux_x86_64.whl", 3, "post-release",
     "pkg-2.0.post3-cp311-cp311-linux_x86_64.whl"),
    ("pkg-2.0-cp311-cp311-linux_x86_64.whl", 0, "build-tag", "pkg-2.0-cp311-cp311-linux_x86_64.whl"),
    ("pkg-2.0-cp311-cp311-linux_x86_64.whl", 0, "post-release",
     "pkg-2.0-cp311-cp311-linux_x86_64.whl"),
    ("demo-1.0-py3-none-any.whl", 11, "build-tag", "demo-1.0-11-py3-none-any.whl"),
    ("demo-1.0-4-py3-none-any.whl", 5, "build-tag", "demo-1.0-5-py3-none-any.whl"),
])
def test_rebuilt_filename(filename, number, numbering, expected):
    assert rebuilt_filename(filename, number, numbering) == expected


@pytest.mark.parametrize("name, version, tag", [
    ("demo", "1.0", "py3-none-any"),
    ("pkg", "2.0", "cp311-cp311-linux_x86_64"),
    ("my_pkg", "0.3.1", "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"),
])
@pytest.mark.parametrize("numbering", ["build-tag", "post-release"])
@pytest.mark.parametrize("number", [0, 2])
def test_rebuilt_filename_agrees_with_the_name_stamp_wheel_writes(tmp_path, name, version, tag,
                                                                  numbering, number):
    wheel = make_wheel(tmp_path / "in", name=name, version=version, tag=tag, scripts=True)

    out = stamp(wheel, tmp_path / "out", number, numbering)

    assert out.name == rebuilt_filename(wheel.name, number, numbering)
    assert out.parent == tmp_path / "out"
    expected_version = rebuilt_version(Version(version), number, numbering)
    assert top_dirs(out) == {name, f"{name}-{expected_version}.dist-info",
                             f"{name}-{expected_version}.data"}


def test_stamping_a_stamped_wheel_replaces_its_embedded_record(tmp_path):
    first = stamp_wheel(make_wheel(tmp_path), tmp_path / "one", number=1, numbering="build-tag",
                        embed={EMBEDDED_RECORD: b'{"n": 1}'})
    second = stamp_wheel(first, tmp_path / "two", number=2, numbering="build-tag",
                         embed={EMBEDDED_RECORD: b'{"n": 2}'})
    with zipfile.ZipFile(second) as zf:
        names = [n for n in zf.namelist() if n.endswith(EMBEDDED_RECORD)]
    assert len(names) == 1
    assert read_embedded_record(second) == {"n": 2}

"""Specification of mirror_builder.prepare.sources: safe unpacking, patch discovery and patch application."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from packaging.version import Version

from mirror_builder.errors import SourceError
from mirror_builder.prepare.sources import (
    AppliedPatch,
    PreparedSource,
    apply_patches,
    find_patches,
    prepare_source,
    safe_unpack,
    source_date_epoch,
    unpack_sdist,
)

SETUP_PY = "from setuptools import setup\n\nsetup(name='foo', version='1.0')\n"
README = "line one\nline two\nline three\n"


# -- helpers ---------------------------------------------------------------------------------
def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    return info, data


def _dir(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    return info, None


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def _chardev(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3  # /dev/null
    return info, None


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def make_zip(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def good_sdist_members(top: str = "foo-1.0") -> list[tuple[tarfile.TarInfo, bytes | None]]:
    return [
        _dir(top),
        _file(f"{top}/setup.py", SETUP_PY.encode()),
        _dir(f"{top}/pkg"),
        _file(f"{top}/pkg/__init__.py", b"VALUE = 1\n"),
        _file(f"{top}/README.txt", README.encode()),
    ]


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def assert_nothing_left(dest: Path) -> None:
    assert not dest.exists() or list(dest.iterdir()) == [], f"partial tree left in {dest}"


# -- the sdist's newest file time, read while unpacking -----------------------------------------
def test_unpacking_a_tar_sdist_gives_its_newest_file_time_as_a_second_pass_would(tmp_path):
    members = good_sdist_members()
    for (info, _), mtime in zip(members, (1_600_000_000, 1_700_000_123, 1_650_000_000, 1_000, 0)):
        info.mtime = mtime
    archive = make_tar(tmp_path / "foo-1.0.tar.gz", members)

    root, epoch = unpack_sdist(archive, tmp_path / "out")

    assert root == tmp_path / "out" / "foo-1.0"
    assert epoch == 1_700_000_123 == source_date_epoch(archive)


def test_unpacking_a_zip_sdist_gives_its_newest_file_time_as_a_second_pass_would(tmp_path):
    old, new = zipfile.ZipInfo("foo-1.0/setup.py", (2001, 1, 1, 0, 0, 0)), \
        zipfile.ZipInfo("foo-1.0/pkg/__init__.py", (2024, 5, 6, 7, 8, 10))
    archive = make_zip(tmp_path / "foo-1.0.zip", [(old, SETUP_PY.encode()), (new, b"VALUE = 1\n")])

    _, epoch = unpack_sdist(archive, tmp_path / "out")

    assert epoch == 1714979290 == source_date_epoch(archive)


def test_an_sdist_of_files_older_than_1980_gives_1980_the_earliest_a_wheel_can_hold(tmp_path):
    archive = make_tar(tmp_path / "foo-1.0.tar.gz", good_sdist_members())  # every mtime 0

    assert unpack_sdist(archive, tmp_path / "out")[1] == 315532800 == source_date_epoch(archive)


# -- safe_unpack: the normal case ------------------------------------------------------------
def test_safe_unpack_tar_gz_returns_the_single_top_level_directory(tmp_path):
    archive = make_tar(tmp_path / "foo-1.0.tar.gz", good_sdist_members())
    dest = tmp_path / "out"

    root = safe_unpack(archive, dest)

    assert root == dest / "foo-1.0"
    assert files_under(root) == {"setup.py", "pkg", "pkg/__init__.py", "README.txt"}
    assert (root / "setup.py").read_text() == SETUP_PY
    assert (root / "pkg" / "__init__.py").read_text() == "VALUE = 1\n"


def test_safe_unpack_zip_returns_the_single_top_level_directory(tmp_path):
    archive = make_zip(tmp_path / "foo-1.0.zip", [
        ("foo-1.0/setup.py", SETUP_PY.encode()),
        ("foo-1.0/pkg/__init__.py", b"VALUE = 1\n"),
    ])
    dest = tmp_path / "out"

    root = safe_unpack(archive, dest)

    assert root == dest / "foo-1.0"
    assert files_under(root) == {"setup.py", "pkg", "pkg/__init__.py"}
    assert (root / "setup.py").read_text() == SETUP_PY


def test_safe_unpack_returns_dest_itself_when_the_archive_has_several_top_level_entries(tmp_path):
    archive = make_tar(tmp_path / "flat-1.0.tar.gz", [
        _file("setup.py", SETUP_PY.encode()),
        _file("README.txt", README.encode()),
    ])
    dest = tmp_path / "out"

    assert safe_unpack(archive, dest) == dest
    assert files_under(dest) == {"setup.py", "README.txt"}


def test_safe_unpack_replaces_whatever_was_in_dest_before(tmp_path):
    archive = make_tar(tmp_path / "foo-1.0.tar.gz", good_sdist_members())
    dest = tmp_path / "out"
    (dest / "stale").mkdir(parents=True)
    (dest / "stale" / "old.txt").write_text("old")

    root = safe_unpack(archive, dest)

    assert root == dest / "foo-1.0"
    assert [p.name for p in dest.iterdir()] == ["foo-1.0"]


def test_safe_unpack_internal_symlink_is_kept(tmp_path):
    archive = make_tar(tmp_path / "foo-1.0.tar.gz", good_sdist_members() + [
        _link("foo-1.0/README", "README.txt", tarfile.SYMTYPE),
    ])
    root = safe_unpack(archive, tmp_path / "out")

    assert (root / "README").is_symlink()
    assert (root / "README").read_text() == README


# -- safe_unpack: GNU tar writes what Python checked -------------------------------------------
def test_gnu_tar_writes_the_checked_tree_with_no_special_bits_and_nobody_else_s_files(
        tmp_path, monkeypatch):
    """Python's tarfile only reads (the checks); tar writes. What the 'data' filter guaranteed
    still holds: no set-id or sticky bits, nothing writable by group or others, and every file
    ours (as root, tar itself ran as nobody)."""
    def refuse(*args, **kwargs):
        raise AssertionError("tarfile wrote the tree")

    monkeypatch.setattr(tarfile.TarFile, "extractall", refuse)
    setuid, shared, sticky = (_file("foo-1.0/run.sh", b"#!/bin/sh\n"),
                              _file("foo-1.0/shared.txt", b"x"), _dir("foo-1.0/tmp"))
    setuid[0].mode, shared[0].mode, sticky[0].mode = 0o4755, 0o666, 0o1777
    setuid[0].uid = shared[0].uid = 1234
    archive = make_tar(tmp_path / "foo-1.0.tar.gz",
                       good_sdist_members() + [setuid, shared, sticky])

    root = safe_unpack(archive, tmp_path / "out")

    assert (root / "pkg" / "__init__.py").read_text() == "VALUE = 1\n"
    assert stat.S_IMODE((root / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "shared.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o755
    assert {p.lstat().st_uid for p in [root, *root.rglob("*")]} == {os.geteuid()}


def test_a_truncated_archive_is_refused_and_leaves_nothing(tmp_path):
    archive = make_tar(tmp_path / "foo-1.0.tar.gz", good_sdist_members())
    data = gzip.decompress(archive.read_bytes())
    archive.write_bytes(gzip.compress(data[:1500]))  # a member cut off in the middle
    dest = tmp_path / "out"

    with pytest.raises(SourceError, match="foo-1.0.tar.gz: cannot unpack"):
        safe_unpack(archive, dest)
    assert not dest.exists()


def test_what_gnu_tar_cannot_read_it_says_why(tmp_path):
    from mirror_builder.prepare.untar import untar

    archive = tmp_path / "foo-1.0.tar.gz"
    archive.write_bytes(gzip.compress(b"not a tar archive at all" * 40))
    (tmp_path / "out").mkdir()

    assert "not look like a tar archive" in untar(archive, tmp_path / "out", "-z")


def test_without_gnu_tar_python_writes_the_tree_itself(tmp_path, monkeypatch):
    from mirror_builder.prepare import sources, untar

    monkeypatch.setattr(untar.shutil, "which", lambda tool: None)
    monkeypatch.setattr(sources, "untar", lambda *a: pytest.fail("GNU tar was used"))
    archive = make_tar(tmp_path / "foo-1.0.tar.gz", good_sdist_members())

    root = safe_unpack(archive, tmp_path / "out")

    assert files_under(root) == {"setup.py", "pkg", "pkg/__init__.py", "README.txt"}


# -- safe_unpack: refusals -------------------------------------------------------------------
BAD_TAR_MEMBERS = {
    "dot-dot path": (_file("foo-1.0/../../escaped.txt", b"pwned"), "foo-1.0/../../escaped.txt"),
    "absolute path": (_file("/tmp/mirror-builder-absolute.txt", b"pwned"),
                      "/tmp/mirror-builder-absolute.txt"),
    "symlink out of the tree": (_link("foo-1.0/evil", "../../outside.txt", tarfile.SYMTYPE),
                                "foo-1.0/evil"),
    "absolute symlink": (_link("foo-1.0/evil", "/etc/passwd", tarfile.SYMTYPE), "foo-1.0/evil"),
    "hard link out of the tree": (_link("foo-1.0/evil", "../outside.txt", tarfile.LNKTYPE),
                                  "foo-1.0/evil"),
    "absolute hard link": (_link("foo-1.0/evil", "/etc/passwd", tarfile.LNKTYPE), "foo-1.0/evil"),
    "character device": (_chardev("foo-1.0/null"), "foo-1.0/null"),
}


@pytest.mark.parametrize("case", list(BAD_TAR_MEMBERS), ids=list(BAD_TAR_MEMBERS))
def test_safe_unpack_refuses_unsafe_tar_member_naming_it_and_leaves_no_partial_tree(tmp_path, case):
    (bad, member_name) = BAD_TAR_MEMBERS[case]
    # Good members first, so extraction has started when the bad one is met.
    archive = make_tar(tmp_path / "foo-1.0.tar.gz", good_sdist_members() + [bad])
    sentinel = tmp_path / "outside.txt"
    sentinel.write_text("untouched")
    dest = tmp_path / "work" / "out"

    with pytest.raises(SourceError) as excinfo:
        safe_unpack(archive, dest)

    assert member_name in str(excinfo.value)
    assert "foo-1.0.tar.gz" in str(excinfo.value)
    assert_nothing_left(dest)
    assert sentinel.read_text() == "untouched"
    assert not (tmp_path / "escaped.txt").exists()
    assert not Path("/tmp/mirror-builder-absolute.txt").exists()


def test_safe_unpack_refuses_a_fifo_member(tmp_path):
    fifo = tarfile.TarInfo("foo-1.0/pipe")
    fifo.type = tarfile.FIFOTYPE
    archive = make_tar(tmp_path / "foo-1.0.tar.gz", good_sdist_members() + [(fifo, None)])
    dest = tmp_path / "out"

    with pytest.raises(SourceError, match="foo-1.0/pipe"):
        safe_unpack(archive, dest)
    assert_nothing_left(dest)


def test_safe_unpack_refuses_the_whole_archive_before_writing_anything(tmp_path, monkeypatch):
    extracted = []
    monkeypatch.setattr(tarfile.TarFile, "extractall", lambda *a, **k: extracted.append(a))
    archive = make_tar(tmp_path / "foo-1.0.tar.gz", good_sdist_members() + [_chardev("foo-1.0/null")])

    with pytest.raises(SourceError, match=r"'foo-1.0/null': a character device"):
        safe_unpack(archive, tmp_path / "out")
    assert extracted == []


def test_safe_unpack_keeps_links_that_go_through_other_links_and_stay_inside(tmp_path):
    archive = make_tar(tmp_path / "foo-1.0.tar.gz", good_sdist_members() + [
        _dir("foo-1.0/docs"),
        _link("foo-1.0/docs/up", "..", tarfile.SYMTYPE),
        _link("foo-1.0/readme", "docs/up/docs/up/README.txt", tarfile.SYMTYPE),
    ])

    root = safe_unpack(archive, tmp_path / "out")

    assert (root / "readme").read_text() == README


# Links are followed inside the archive, whatever order its members come in: the file system at
# extraction time would only see the links already written.
ESCAPES_THROUGH_LINKS = {
    "a link through a link that climbs (link first)": [
        _link("foo-1.0/pkg/a", "b/../../outside.txt", tarfile.SYMTYPE),
        _link("foo-1.0/pkg/b", "..", tarfile.SYMTYPE)],
    "a link through a link that climbs (climbing link first)": [
        _link("foo-1.0/pkg/b", "..", tarfile.SYMTYPE),
        _link("foo-1.0/pkg/a", "b/../../outside.txt", tarfile.SYMTYPE)],
    "a hard link through a link that leaves": [
        _link("foo-1.0/pkg/b", "..", tarfile.SYMTYPE),
        _link("foo-1.0/pkg/a", "foo-1.0/pkg/b/../../outside.txt", tarfile.LNKTYPE)],
    "a symlink loop": [
        _link("foo-1.0/pkg/a", "b", tarfile.SYMTYPE),
        _link("foo-1.0/pkg/b", "a", tarfile.SYMTYPE)],
}


@pytest.mark.parametrize("case", list(ESCAPES_THROUGH_LINKS), ids=list(ESCAPES_THROUGH_LINKS))
def test_safe_unpack_follows_the_archives_own_links_to_find_escapes(tmp_path, case):
    archive = make_tar(tmp_path / "foo-1.0.tar.gz",
                       good_sdist_members() + ESCAPES_THROUGH_LINKS[case])
    dest = tmp_path / "work" / "out"

    with pytest.raises(SourceError, match=r"foo-1\.0\.tar\.gz: refusing member 'foo-1\.0/pkg/a'"):
        safe_unpack(archive, dest)
    assert_nothing_left(dest)


def test_safe_unpack_keeps_a_hard_link_to_an_earlier_file(tmp_path):
    archive = make_tar(tmp_path / "foo-1.0.tar.gz", good_sdist_members() + [
        _link("foo-1.0/README.copy", "foo-1.0/README.txt", tarfile.LNKTYPE)])

    root = safe_unpack(archive, tmp_path / "out")

    assert (root / "README.copy").read_text() == README


def test_safe_unpack_refuses_a_hard_link_to_nothing_in_the_archive(tmp_path):
    archive = make_tar(tmp_path / "foo-1.0.tar.gz", good_sdist_members() + [
        _link("foo-1.0/dangling", "foo-1.0/missing.txt", tarfile.LNKTYPE)])
    dest = tmp_path / "out"

    with pytest.raises(SourceError, match=r"refusing member 'foo-1\.0/dangling': a hard link to "
                                          r"'foo-1\.0/missing\.txt', which is not a file earlier"):
        safe_unpack(archive, dest)
    assert_nothing_left(dest)


def test_safe_unpack_names_a_loop_of_symlinks_as_such(tmp_path):
    archive = make_tar(tmp_path / "foo-1.0.tar.gz", good_sdist_members() + [
        _link("foo-1.0/a", "b", tarfile.SYMTYPE), _link("foo-1.0/b", "a", tarfile.SYMTYPE)])

    with pytest.raises(SourceError, match=r"'foo-1\.0/a': a symlink to 'b', a loop of symlinks"):
        safe_unpack(archive, tmp_path / "out")


WRITES_THROUGH_LINKS = {
    "a file under a symlinked folder": [
        _link("foo-1.0/shortcut", "pkg", tarfile.SYMTYPE),
        _file("foo-1.0/shortcut/evil.py", b"pwned")],
    "a file that replaces a symlink": [
        _link("foo-1.0/shortcut", "README.txt", tarfile.SYMTYPE),
        _file("foo-1.0/shortcut", b"pwned")],
    "a folder that replaces a symlink": [
        _link("foo-1.0/shortcut", "pkg", tarfile.SYMTYPE),
        _dir("foo-1.0/shortcut")],
}


@pytest.mark.parametrize("case", list(WRITES_THROUGH_LINKS), ids=list(WRITES_THROUGH_LINKS))
def test_safe_unpack_refuses_to_write_through_a_symlink(tmp_path, case):
    archive = make_tar(tmp_path / "foo-1.0.tar.gz", good_sdist_members() + WRITES_THROUGH_LINKS[case])
    dest = tmp_path / "out"

    with pytest.raises(SourceError, match=r"written through the symlink 'foo-1\.0/shortcut'"):
        safe_unpack(archive, dest)
    assert_nothing_left(dest)


@pytest.mark.parametrize(("member", "problem"), [
    (_file("foo-1.0/../escape", b"x"), "a '..' path leaves the source tree"),
    (_file("/tmp/abs", b"x"), "an absolute path"),
    (_chardev("foo-1.0/null"), "a character device; an sdist holds only files, folders and links"),
    (_link("foo-1.0/link", "../../etc/passwd", tarfile.SYMTYPE),
     "a symlink to '../../etc/passwd', outside the source tree"),
    (_link("foo-1.0/link", "/etc/passwd", tarfile.SYMTYPE),
     "a symlink to '/etc/passwd', outside the source tree"),
], ids=["dot-dot", "absolute", "device", "relative symlink", "absolute symlink"])
def test_safe_unpack_says_what_is_wrong_with_the_member(tmp_path, member, problem):
    archive = make_tar(tmp_path / "foo-1.0.tar.gz", good_sdist_members() + [member])

    with pytest.raises(SourceError) as excinfo:
        safe_unpack(archive, tmp_path / "out")

    assert str(excinfo.value) == f"foo-1.0.tar.gz: refusing member {member[0].name!r}: {problem}"


def _zip_symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (0o120777 << 16)
    return info, target.encode()


BAD_ZIP_MEMBERS = {
    "dot-dot path": (("foo-1.0/../../escaped.txt", b"pwned"), "foo-1.0/../../escaped.txt"),
    "absolute path": (("/tmp/mirror-builder-absolute.txt", b"pwned"),
                      "/tmp/mirror-builder-absolute.txt"),
    "backslash dot-dot path": (("foo-1.0\\..\\..\\escaped.txt", b"pwned"),
                               "foo-1.0\\\\..\\\\..\\\\escaped.txt"),
    "drive letter": (("C:/escaped.txt", b"pwned"), "C:/escaped.txt"),
    "symlink member": (_zip_symlink("foo-1.0/evil", "../../outside.txt"), "foo-1.0/evil"),
}


@pytest.mark.parametrize("case", list(BAD_ZIP_MEMBERS), ids=list(BAD_ZIP_MEMBERS))
def test_safe_unpack_refuses_unsafe_zip_member_naming_it_and_leaves_no_partial_tree(tmp_path, case):
    bad, member_name = BAD_ZIP_MEMBERS[case]
    archive = make_zip(tmp_path / "foo-1.0.zip", [("foo-1.0/setup.py", SETUP_PY.encode()), bad])
    dest = tmp_path / "work" / "out"

    with pytest.raises(SourceError) as excinfo:
        safe_unpack(archive, dest)

    assert member_name in str(excinfo.value)
    assert_nothing_left(dest)
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "outside.txt").exists()


def test_safe_unpack_turns_a_corrupt_archive_into_source_error_and_cleans_up(tmp_path):
    archive = tmp_path / "foo-1.0.tar.gz"
    archive.write_bytes(b"this is not a tarball")
    dest = tmp_path / "out"

    with pytest.raises(SourceError, match=r"foo-1\.0\.tar\.gz: cannot unpack"):
        safe_unpack(archive, dest)
    assert_nothing_left(dest)


# -- find_patches ----------------------------------------------------------------------------
def _touch(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_find_patches_every_version_folder_applies_to_any_version(tmp_path):
    _touch(tmp_path / "foo" / "0001-a.patch")

    assert find_patches(tmp_path, "foo", "1.0") == [tmp_path / "foo" / "0001-a.patch"]
    assert find_patches(tmp_path, "foo", Version("2.5")) == [tmp_path / "foo" / "0001-a.patch"]


def test_find_patches_version_folder_applies_only_to_that_version(tmp_path):
    _touch(tmp_path / "foo-1.0" / "0001-a.patch")

    assert find_patches(tmp_path, "foo", "1.0") == [tmp_path / "foo-1.0" / "0001-a.patch"]
    assert find_patches(tmp_path, "foo", Version("1.0")) == [tmp_path / "foo-1.0" / "0001-a.patch"]
    assert find_patches(tmp_path, "foo", "1.1") == []


def test_find_patches_version_folder_with_non_normalized_project_name(tmp_path):
    _touch(tmp_path / "Foo_Bar-1.0" / "0001-a.patch")
    _touch(tmp_path / "Foo.Bar" / "0002-b.patch")

    assert find_patches(tmp_path, "foo-bar", "1.0") == [
        tmp_path / "Foo_Bar-1.0" / "0001-a.patch",
        tmp_path / "Foo.Bar" / "0002-b.patch",
    ]
    assert find_patches(tmp_path, "FOO_bar", "2.0") == [tmp_path / "Foo.Bar" / "0002-b.patch"]


def test_find_patches_sorts_by_file_name_across_both_folders(tmp_path):
    _touch(tmp_path / "foo" / "0002-every.patch")
    _touch(tmp_path / "foo" / "0010-every.patch")
    _touch(tmp_path / "foo-1.0" / "0001-versioned.patch")
    _touch(tmp_path / "foo-1.0" / "0003-versioned.patch")

    found = find_patches(tmp_path, "foo", "1.0")

    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "foo-1.0/0001-versioned.patch",
        "foo/0002-every.patch",
        "foo-1.0/0003-versioned.patch",
        "foo/0010-every.patch",
    ]


def test_find_patches_ignores_files_not_ending_in_dot_patch(tmp_path):
    _touch(tmp_path / "foo" / "0001-a.patch")
    _touch(tmp_path / "foo" / "README.md")
    _touch(tmp_path / "foo" / "0002-b.diff")
    _touch(tmp_path / "foo" / "0003-c.patch.orig")
    _touch(tmp_path / "foo" / "0004-d.patch~")
    (tmp_path / "foo" / "0005-dir.patch").mkdir()

    assert find_patches(tmp_path, "foo", "1.0") == [tmp_path / "foo" / "0001-a.patch"]


def test_find_patches_ignores_other_projects_with_a_common_prefix(tmp_path):
    _touch(tmp_path / "foo-bar" / "0001-other-project.patch")
    _touch(tmp_path / "foobar-1.0" / "0002-other-project.patch")
    _touch(tmp_path / "foo-bar-1.0" / "0003-other-project.patch")
    _touch(tmp_path / "foo.patch")  # a loose file at the top level is not a folder

    assert find_patches(tmp_path, "foo", "1.0") == []


def test_find_patches_without_a_patches_dir_finds_nothing(tmp_path):
    assert find_patches(tmp_path / "does-not-exist", "foo", "1.0") == []


# -- apply_patches ---------------------------------------------------------------------------
FIRST_PATCH = """\
--- a/README.txt
+++ b/README.txt
@@ -1,3 +1,3 @@
 line one
-line two
+line TWO
 line three
"""

# Only applies once FIRST_PATCH has changed "line two": it replaces the line FIRST_PATCH wrote.
SECOND_PATCH = """\
--- a/README.txt
+++ b/README.txt
@@ -1,3 +1,3 @@
 line one
-line TWO
+line 2
 line three
"""

# Adds a line between two context lines that do not exist in README (its context is wrong);
# GNU patch's default fuzz factor of 2 would still apply it.
WRONG_CONTEXT_PATCH = """\
--- a/README.txt
+++ b/README.txt
@@ -1,3 +1,4 @@
 line one
 line TWO
+line two and a half
 line three
"""

# The first file's hunk would apply; the second file's does not.
HALF_BAD_PATCH = """\
--- a/setup.py
+++ b/setup.py
@@ -1,3 +1,3 @@
 from setuptools import setup
 
-setup(name='foo', version='1.0')
+setup(name='foo', version='1.0.post1')
--- a/README.txt
+++ b/README.txt
@@ -1,3 +1,3 @@
 line one
-no such line
+something else
 line three
"""


def make_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "README.txt").write_text(README)
    (tree / "setup.py").write_text(SETUP_PY)
    return tree


def snapshot(tree: Path) -> dict[str, str]:
    return {p.relative_to(tree).as_posix(): p.read_text() for p in tree.rglob("*") if p.is_file()}


def test_apply_patches_applies_in_order_and_records_name_and_sha256(tmp_path):
    tree = make_tree(tmp_path)
    first = _touch(tmp_path / "patches" / "foo" / "0001-first.patch", FIRST_PATCH)
    second = _touch(tmp_path / "patches" / "foo-1.0" / "0002-second.patch", SECOND_PATCH)

    applied = apply_patches(tree, [first, second], package="foo==1.0")

    assert (tree / "README.txt").read_text() == "line one\nline 2\nline three\n"
    assert applied == (
        AppliedPatch(name="foo/0001-first.patch",
                     sha256=hashlib.sha256(FIRST_PATCH.encode()).hexdigest()),
        AppliedPatch(name="foo-1.0/0002-second.patch",
                     sha256=hashlib.sha256(SECOND_PATCH.encode()).hexdigest()),
    )
    assert snapshot(tree).keys() == {"README.txt", "setup.py"}  # no .orig / .rej left behind


def test_apply_patches_with_no_patches_changes_nothing(tmp_path):
    tree = make_tree(tmp_path)
    before = snapshot(tree)

    assert apply_patches(tree, [], package="foo==1.0") == ()
    assert snapshot(tree) == before


def test_apply_patches_in_the_wrong_order_fails_naming_the_patch(tmp_path):
    tree = make_tree(tmp_path)
    first = _touch(tmp_path / "patches" / "foo" / "0001-first.patch", FIRST_PATCH)
    second = _touch(tmp_path / "patches" / "foo" / "0002-second.patch", SECOND_PATCH)
    before = snapshot(tree)

    with pytest.raises(SourceError) as excinfo:
        apply_patches(tree, [second, first], package="foo==1.0")

    message = str(excinfo.value)
    assert message.startswith("foo==1.0: ")
    assert str(second) in message
    assert "does not apply" in message
    assert snapshot(tree) == before


def test_apply_patches_failing_patch_leaves_the_tree_unchanged_by_that_patch(tmp_path):
    tree = make_tree(tmp_path)
    good = _touch(tmp_path / "patches" / "foo" / "0001-first.patch", FIRST_PATCH)
    bad = _touch(tmp_path / "patches" / "foo" / "0002-half-bad.patch", HALF_BAD_PATCH)

    with pytest.raises(SourceError, match="0002-half-bad.patch"):
        apply_patches(tree, [good, bad], package="foo==1.0")

    # setup.py's hunk would have applied on its own: the dry run must have stopped it.
    assert snapshot(tree) == {
        "README.txt": "line one\nline TWO\nline three\n",
        "setup.py": SETUP_PY,
    }


def test_apply_patches_refuses_an_already_applied_patch_instead_of_reversing_it(tmp_path):
    tree = make_tree(tmp_path)
    first = _touch(tmp_path / "patches" / "foo" / "0001-first.patch", FIRST_PATCH)
    apply_patches(tree, [first], package="foo==1.0")
    patched = snapshot(tree)

    with pytest.raises(SourceError, match="0001-first.patch"):
        apply_patches(tree, [first], package="foo==1.0")
    assert snapshot(tree) == patched


def test_apply_patches_refuses_a_patch_whose_context_does_not_match(tmp_path):
    # "Applies cleanly" means no fuzz: GNU patch's default fuzz factor would apply this hunk.
    tree = make_tree(tmp_path)
    wrong = _touch(tmp_path / "patches" / "foo" / "0001-wrong-context.patch", WRONG_CONTEXT_PATCH)
    before = snapshot(tree)

    with pytest.raises(SourceError, match="0001-wrong-context.patch"):
        apply_patches(tree, [wrong], package="foo==1.0")
    assert snapshot(tree) == before


def test_apply_patches_accepts_relative_patch_paths(tmp_path, monkeypatch):
    # `patch -d TREE` changes into TREE before opening the patch file.
    monkeypatch.chdir(tmp_path)
    make_tree(tmp_path)
    _touch(tmp_path / "patches" / "foo" / "0001-first.patch", FIRST_PATCH)
    patches = find_patches(Path("patches"), "foo", "1.0")

    applied = apply_patches(Path("tree"), patches, package="foo==1.0")

    assert [a.name for a in applied] == ["foo/0001-first.patch"]
    assert (tmp_path / "tree" / "README.txt").read_text() == "line one\nline TWO\nline three\n"


# -- prepare_source --------------------------------------------------------------------------
def _prepare_fixture(tmp_path: Path) -> tuple[Path, Path, Path]:
    sdist = make_tar(tmp_path / "Foo_Bar-1.0.tar.gz", good_sdist_members("foo_bar-1.0"))
    patches_dir = tmp_path / "patches"
    _touch(patches_dir / "foo-bar" / "0001-first.patch", FIRST_PATCH)
    _touch(patches_dir / "Foo_Bar-1.0" / "0002-second.patch", SECOND_PATCH)
    _touch(patches_dir / "foo-bar-2.0" / "0003-other-version.patch", "not even a patch")
    return sdist, patches_dir, tmp_path / "work"


def test_prepare_source_unpacks_and_applies_the_matching_patches(tmp_path):
    sdist, patches_dir, work_dir = _prepare_fixture(tmp_path)

    prepared = prepare_source(sdist, "abc123", "Foo_Bar", Version("1.0"),
                              work_dir=work_dir, patches_dir=patches_dir)

    assert isinstance(prepared, PreparedSource)
    assert prepared.name == "Foo_Bar"
    assert prepared.version == "1.0"
    assert prepared.sdist == sdist
    assert prepared.sdist_sha256 == "abc123"
    assert prepared.tree == work_dir / "foo-bar-1.0" / "foo_bar-1.0"
    assert [p.name for p in prepared.patches] == ["foo-bar/0001-first.patch",
                                                  "Foo_Bar-1.0/0002-second.patch"]
    assert prepared.patches[0].sha256 == hashlib.sha256(FIRST_PATCH.encode()).hexdigest()
    assert (prepared.tree / "README.txt").read_text() == (
        "line one\nline 2\nline three\n")
    assert (prepared.tree / "setup.py").read_text() == SETUP_PY


def test_prepare_source_twice_starts_from_a_fresh_tree(tmp_path):
    sdist, patches_dir, work_dir = _prepare_fixture(tmp_path)
    first = prepare_source(sdist, "abc123", "foo-bar", Version("1.0"),
                           work_dir=work_dir, patches_dir=patches_dir)
    (first.tree / "build-leftover.o").write_text("junk")

    again = prepare_source(sdist, "abc123", "foo-bar", Version("1.0"),
                           work_dir=work_dir, patches_dir=patches_dir)

    assert again.tree == first.tree
    assert not (again.tree / "build-leftover.o").exists()
    assert len(again.patches) == 2


def test_prepare_source_reports_a_failing_patch_with_the_package_label(tmp_path):
    sdist = make_tar(tmp_path / "foo-1.0.tar.gz", good_sdist_members())
    _touch(tmp_path / "patches" / "foo" / "0001-bad.patch", HALF_BAD_PATCH)

    with pytest.raises(SourceError, match=r"^foo==1\.0: patch .*0001-bad\.patch does not apply"):
        prepare_source(sdist, "x", "foo", Version("1.0"),
                       work_dir=tmp_path / "work", patches_dir=tmp_path / "patches")

"""Debian's Contents index as mirror-builder keeps it: made once from a suite's Contents files
(checked against its Release file), looked up by what a build misses, checked again after its
TTL and made again only when Debian's files changed."""

import gzip
import json
import sqlite3
import time

import pytest

from mirror_builder.errors import UpstreamError
from mirror_builder.sandbox.debcontents import (_IndexWriter, _lines, release_sha256,
                                                wanted_path)

from debian_mirror import ALL_LINES, ARCH_LINES, contents_text, local_contents, write_mirror


@pytest.fixture
def mirror(tmp_path):
    return write_mirror(tmp_path / "mirror")


@pytest.mark.parametrize("kind, name, packages", [
    ("header", "zmq.h", ("libzmq3-dev",)),
    # in a folder of its own under usr/include: found there (the build needs an -I for it)
    ("header", "libxml/parser.h", ("libxml2-dev",)),
    # where the compiler looks first wins over a copy deeper down (wolfssl's compat header)
    ("header", "openssl/ssl.h", ("libssl-dev",)),
    ("header", "openssl/opensslconf.h", ("libssl-dev",)),  # usr/include/<triplet>
    ("header", "Eigen/Core", ("libeigen3-dev",)),  # from Contents-all
    ("header", "nothere.h", ()),
    ("header", "yaml.h", ("libyaml-dev",)),  # -dev preferred over the other package listed
    ("pkg-config", "libxml-2.0", ("libxml2-dev",)),
    ("pkg-config", "xproto", ("x11proto-dev",)),  # usr/share/pkgconfig, an arch: all package
    ("library", "z", ("zlib1g-dev",)),  # libz.so, not the runtime libz.so.1
    ("library", "geos_c", ("libgeos-dev",)),
    ("library", "openblas", ("libopenblas-openmp-dev", "libopenblas-pthread-dev")),
    ("program", "xsltproc", ("xsltproc",)),
    ("program", "meson", ("meson",)),
    ("program", "pkg-config", ("pkgconf",)),
    ("program", "copyright", ()),  # a file, not in a bin folder
    ("cmake", "GTest", ("libgtest-dev",)),
    # CMake's search paths only: ITK's bundled copy of Eigen3Config.cmake is not one
    ("cmake", "Eigen3", ("libeigen3-dev",)),
])
def test_a_missing_thing_is_looked_up_where_debian_puts_it(tmp_path, mirror, kind, name, packages):
    with local_contents(tmp_path / "cache", mirror).open() as index:
        assert index.packages(kind, name) == packages


def test_the_index_keeps_only_what_a_build_can_miss(tmp_path, mirror):
    contents = local_contents(tmp_path / "cache", mirror)
    with contents.open():
        pass
    connection = sqlite3.connect(contents.database)
    names = {row[0] for row in connection.execute("SELECT name FROM files")}
    connection.close()
    assert "copyright" not in names and "xsltproc.1.gz" not in names and "README.md" not in names
    assert "etree.cpython-311-x86_64-linux-gnu.so" not in names  # not a lib*.so
    assert {"zmq.h", "libz.so", "libz.a", "xsltproc", "libxml-2.0.pc"} <= names
    state = json.loads(contents.state.read_text())
    assert state["rows"] == sum(wanted_path(path) for path, _ in ARCH_LINES + ALL_LINES)


@pytest.mark.parametrize("path, kept", [
    ("usr/include/foo/bar.h", True), ("usr/bin/foo", True), ("sbin/foo", True),
    ("usr/lib/x86_64-linux-gnu/pkgconfig/foo.pc", True), ("usr/share/pkgconfig/foo.pc", True),
    ("usr/lib/x86_64-linux-gnu/libfoo.so", True), ("lib/x86_64-linux-gnu/libfoo.a", True),
    ("usr/lib/x86_64-linux-gnu/cmake/Foo/FooConfig.cmake", True),
    ("usr/share/foo/cmake/foo-config.cmake", True),
    ("usr/bin/sub/foo", False), ("usr/share/doc/foo/copyright", False),
    ("usr/lib/x86_64-linux-gnu/libfoo.so.1", False), ("usr/share/foo/foo.pc", False),
    ("usr/share/foo/FooConfig.cmake", False),
])
def test_which_paths_are_kept(path, kept):
    assert wanted_path(path) is kept


def test_lines_cut_across_download_chunks_are_read_whole(tmp_path):
    data = gzip.compress(contents_text(ARCH_LINES))
    chunks = [data[i:i + 7] for i in range(0, len(data), 7)]
    assert sorted(_lines(iter(chunks))) == sorted(_lines(iter([data])))
    connection = sqlite3.connect(tmp_path / "index.sqlite")
    writer = _IndexWriter(connection)
    writer.add(iter(chunks))
    assert writer.finish() == sum(wanted_path(path) for path, _ in ARCH_LINES)
    last_without_newline = gzip.compress(b"usr/bin/a    devel/a\nusr/bin/zzz    devel/zzz")
    assert list(_lines(iter([last_without_newline]))) == [b"usr/bin/a    devel/a",
                                                         b"usr/bin/zzz    devel/zzz"]


def test_within_its_ttl_the_index_is_used_without_asking_the_mirror(tmp_path, mirror):
    contents = local_contents(tmp_path / "cache", mirror)
    with contents.open():
        pass
    (tmp_path / "mirror" / "dists").rename(tmp_path / "gone")
    with contents.open() as index:
        assert index.packages("header", "zmq.h") == ("libzmq3-dev",)


def test_after_its_ttl_an_index_whose_files_did_not_change_is_only_checked(tmp_path, mirror):
    contents = local_contents(tmp_path / "cache", mirror, ttl_seconds=0)
    with contents.open():
        pass
    made = contents.database.stat().st_mtime_ns
    checked = json.loads(contents.state.read_text())["checked_at"]
    time.sleep(0.01)
    with contents.open():
        pass
    assert contents.database.stat().st_mtime_ns == made
    assert json.loads(contents.state.read_text())["checked_at"] > checked


def test_after_its_ttl_new_contents_files_make_a_new_index(tmp_path, mirror):
    contents = local_contents(tmp_path / "cache", mirror, ttl_seconds=0)
    with contents.open() as index:
        assert index.packages("header", "newlib.h") == ()
    write_mirror(tmp_path / "mirror", arch_lines=ARCH_LINES + [
        ("usr/include/newlib.h", "libdevel/libnew-dev")])
    with contents.open() as index:
        assert index.packages("header", "newlib.h") == ("libnew-dev",)


def test_an_unreachable_mirror_after_the_ttl_leaves_the_index_from_before_in_use(tmp_path, mirror,
                                                                                  caplog):
    contents = local_contents(tmp_path / "cache", mirror, ttl_seconds=0)
    with contents.open():
        pass
    (tmp_path / "mirror" / "dists" / "bookworm" / "Release").unlink()
    with contents.open() as index:
        assert index.packages("program", "xsltproc") == ("xsltproc",)
    assert "using the Contents index from before" in caplog.text


def test_a_download_that_is_not_the_file_the_release_file_names_is_refused(tmp_path, mirror):
    contents_file = tmp_path / "mirror" / "dists" / "bookworm" / "main" / "Contents-amd64.gz"
    contents_file.write_bytes(gzip.compress(contents_text(
        ARCH_LINES + [("usr/bin/evil", "admin/evil")])))
    contents = local_contents(tmp_path / "cache", mirror)
    with pytest.raises(UpstreamError, match="not the file Debian's Release file lists"):
        with contents.open():
            pass
    assert not contents.database.exists()
    assert [p.name for p in contents.database.parent.iterdir()] == ["bookworm-amd64.lock"]


def test_a_suite_without_an_architecture_independent_contents_file_still_works(tmp_path):
    mirror = write_mirror(tmp_path / "mirror", all_lines=None)
    with local_contents(tmp_path / "cache", mirror).open() as index:
        assert index.packages("header", "zmq.h") == ("libzmq3-dev",)
        assert index.packages("program", "meson") == ()


def test_an_unknown_suite_or_architecture_is_an_error_that_says_so(tmp_path, mirror):
    with pytest.raises(UpstreamError, match="is sid2 a Debian suite"):
        with local_contents(tmp_path / "cache", mirror, suite="sid2").open():
            pass
    with pytest.raises(UpstreamError, match=r"Debian bookworm \(riscv64\): its Release file "
                                            r"lists no main/Contents-riscv64.gz"):
        with local_contents(tmp_path / "cache", mirror, arch="riscv64").open():
            pass


def test_the_release_file_s_sha256_section_is_read_and_not_its_md5_one():
    text = ("Codename: bookworm\nMD5Sum:\n"
            " d41d8cd98f00b204e9800998ecf8427e 10 main/Contents-amd64.gz\n"
            "SHA256:\n " + "ab" * 32 + " 10 main/Contents-amd64.gz\n " + "cd" * 32 +
            " 20 main/Contents-all.gz\n")
    assert release_sha256(text) == {"main/Contents-amd64.gz": "ab" * 32,
                                    "main/Contents-all.gz": "cd" * 32}


def test_a_download_cut_short_is_made_again_from_its_start(tmp_path, scripted_index):
    from conftest import Reply
    from mirror_builder.resolve.transport import Transport
    from mirror_builder.sandbox.debcontents import ContentsSource, DebianContents

    files = tmp_path / "mirror" / "dists" / "bookworm"
    write_mirror(tmp_path / "mirror")
    scripted_index.script("/dists/bookworm/Release", Reply((files / "Release").read_bytes()))
    for name in ("Contents-amd64.gz", "Contents-all.gz"):
        data = (files / "main" / name).read_bytes()
        scripted_index.script(f"/dists/bookworm/main/{name}", Reply(data, cut_after=len(data) // 2),
                              Reply(data))
    transport = Transport(timeout=5, retries=1, backoff_seconds=0, user_agent="test")
    contents = DebianContents(tmp_path / "cache", ContentsSource("bookworm", "amd64",
                                                                 scripted_index.url),
                              transport, 3600)
    with contents.open() as index:
        assert index.packages("header", "zmq.h") == ("libzmq3-dev",)
        assert index.packages("program", "meson") == ("meson",)
    assert scripted_index.hits["/dists/bookworm/main/Contents-amd64.gz"] == 2
    assert json.loads(contents.state.read_text())["rows"] == sum(
        wanted_path(path) for path, _ in ARCH_LINES + ALL_LINES)

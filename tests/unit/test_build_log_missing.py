"""Reading a failed build's log for what it missed: the lines compilers, linkers, shells and build
tools really print (gcc 12, clang, pkgconf 1.8, pkg-config, meson, CMake 3.25, GNU ld, lld,
dash, bash, Python's subprocess, setuptools) name a header, pkg-config module, library, program
or CMake package."""

import pytest

from mirror_builder.build.missing import Missing, image_in_log, missing_in_log, read_missing


@pytest.mark.parametrize("line, missing", [
    ("src/zmqneed.c:1:10: fatal error: zmq.h: No such file or directory",
     Missing("header", "zmq.h")),
    ("lxml/etree.c:96:10: fatal error: libxml/xmlversion.h: No such file or directory",
     Missing("header", "libxml/xmlversion.h")),
    ("src/a.cpp:3:10: fatal error: 'boost/python.hpp' file not found",
     Missing("header", "boost/python.hpp")),
    ("Package 'libxml-2.0', required by 'virtual:world', not found",
     Missing("pkg-config", "libxml-2.0")),
    ("Package libxml-2.0 was not found in the pkg-config search path.",
     Missing("pkg-config", "libxml-2.0")),
    ("No package 'libffi' found", Missing("pkg-config", "libffi")),
    ('../meson.build:12:6: ERROR: Dependency "openblas" not found, tried pkgconfig and cmake',
     Missing("pkg-config", "openblas")),
    ("  Could NOT find ZLIB (missing: ZLIB_LIBRARY ZLIB_INCLUDE_DIR)", Missing("cmake", "ZLIB")),
    ('  Could not find a package configuration file provided by "GTest" with any of',
     Missing("cmake", "GTest")),
    ("/usr/bin/ld: cannot find -lgeos_c: No such file or directory",
     Missing("library", "geos_c")),
    ("/usr/bin/ld: cannot find -lz", Missing("library", "z")),
    ("ld.lld: error: unable to find library -lopenblas", Missing("library", "openblas")),
    ("sh: 1: xsltproc: not found", Missing("program", "xsltproc")),
    ("/bin/sh: 1: xsltproc: not found", Missing("program", "xsltproc")),
    ("bash: line 1: swig: command not found", Missing("program", "swig")),
    ("./configure: line 512: xsltproc: command not found", Missing("program", "xsltproc")),
    ("xsltproc: command not found", Missing("program", "xsltproc")),
    ("../meson.build:4:0: ERROR: Program 'xsltproc' not found or not executable",
     Missing("program", "xsltproc")),
    ("error: command '/usr/bin/swig' failed: No such file or directory",
     Missing("program", "swig")),
    ("FileNotFoundError: [Errno 2] No such file or directory: 'xsltproc'",
     Missing("program", "xsltproc", certain=False)),
    ("FileNotFoundError: [Errno 2] No such file or directory: '/usr/bin/protoc'",
     Missing("program", "protoc", certain=False)),
])
def test_a_log_line_names_what_the_build_missed(line, missing):
    assert missing_in_log(["some output", line, "more output"]) == [missing]


@pytest.mark.parametrize("line", [
    "-- Could NOT find PNG (missing: PNG_LIBRARY PNG_PNG_INCLUDE_DIR)",  # optional: a note
    "FileNotFoundError: [Errno 2] No such file or directory: '/tmp/build/README.rst'",
    "Run-time dependency libxml-2.0 found: YES 2.9.14",
    "checking for zmq.h... no",  # a configure probe: the build went on
    "[mirror-builder] fatal error: zmq.h: No such file or directory",  # our own note
    "error: subprocess-exited-with-error",
])
def test_lines_that_do_not_say_a_build_missed_something_name_nothing(line):
    assert missing_in_log([line]) == []


def test_a_cmake_package_that_is_only_optional_is_not_named():
    log = ["CMake Warning at CMakeLists.txt:4 (find_package):",
           '  Could not find a package configuration file provided by "Foo" with any of',
           "CMake Error at /usr/share/cmake-3.25/Modules/FindPackageHandleStandardArgs.cmake:230",
           "  Could NOT find ZLIB (missing: ZLIB_LIBRARY ZLIB_INCLUDE_DIR)"]
    assert missing_in_log(log) == [Missing("cmake", "ZLIB")]


def test_each_thing_is_named_once_in_the_order_the_log_names_it():
    log = ["\x1b[1m\x1b[31mfatal error: \x1b[0mzmq.h: No such file or directory",  # colours
           "sh: 1: xsltproc: not found",
           "a.c:1:10: fatal error: zmq.h: No such file or directory",
           "FileNotFoundError: [Errno 2] No such file or directory: 'xsltproc'"]
    assert missing_in_log(log) == [Missing("header", "zmq.h"), Missing("program", "xsltproc")]


def test_a_log_read_from_its_file_and_the_image_it_ran_in(tmp_path):
    log = tmp_path / "zmqneed-1.0.log"
    log.write_text("[mirror-builder] zmqneed==1.0: image localhost/mirror-builder-bookworm-x86_64"
                   ":0123abcd, network none, 3 wheels in the build environment\n"
                   "src/zmqneed.c:1:10: fatal error: zmq.h: No such file or directory\n"
                   "\udcff not utf-8 is fine\n".encode("utf-8", "surrogateescape").decode(
                       "utf-8", "replace"))
    assert read_missing(log) == [Missing("header", "zmq.h")]
    assert image_in_log(log) == "localhost/mirror-builder-bookworm-x86_64:0123abcd"
    assert read_missing(tmp_path / "gone.log") == [] and image_in_log(tmp_path / "gone.log") is None

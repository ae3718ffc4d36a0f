"""A small Debian mirror on disk (file:// URLs): a suite's Release file and its Contents files,
laid out and formatted as deb.debian.org serves them, with lines of real bookworm packages."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

from mirror_builder.config.settings import Settings, TargetSettings
from mirror_builder.resolve.transport import Transport
from mirror_builder.sandbox.debcontents import ContentsSource, DebianContents

# (path, "section/package[,section/package]"), as Contents-amd64.gz lists them.
ARCH_LINES = [
    ("usr/bin/xsltproc", "text/xsltproc"),
    ("usr/bin/pkgconf", "devel/pkgconf-bin"),
    ("usr/bin/pkg-config", "devel/pkgconf"),
    ("usr/include/zmq.h", "libdevel/libzmq3-dev"),
    ("usr/include/czmq.h", "libdevel/libczmq-dev"),
    ("usr/include/libxml2/libxml/parser.h", "libdevel/libxml2-dev"),
    ("usr/include/libxml2/libxml/xpath.h", "libdevel/libxml2-dev"),
    ("usr/include/openssl/ssl.h", "libdevel/libssl-dev"),
    ("usr/include/wolfssl/openssl/ssl.h", "libdevel/libwolfssl-dev"),
    ("usr/include/x86_64-linux-gnu/openssl/opensslconf.h", "libdevel/libssl-dev"),
    ("usr/include/python3.11/Python.h", "libdevel/libpython3.11-dev"),
    ("usr/include/zlib.h", "libdevel/zlib1g-dev"),
    ("usr/include/yaml.h", "libdevel/libyaml-dev,libs/libyaml-doc-examples"),
    ("usr/include/geos_c.h", "science/libgeos-dev"),
    ("usr/lib/x86_64-linux-gnu/pkgconfig/libxml-2.0.pc", "libdevel/libxml2-dev"),
    ("usr/lib/x86_64-linux-gnu/pkgconfig/geos.pc", "science/libgeos-dev"),
    ("usr/lib/x86_64-linux-gnu/libz.so", "libdevel/zlib1g-dev"),
    ("usr/lib/x86_64-linux-gnu/libz.so.1", "libs/zlib1g"),
    ("usr/lib/x86_64-linux-gnu/libz.a", "libdevel/zlib1g-dev"),
    ("usr/lib/x86_64-linux-gnu/libgeos_c.so", "science/libgeos-dev"),
    ("usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so", "devel/libopenblas-pthread-dev"),
    ("usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so", "devel/libopenblas-openmp-dev"),
    ("usr/lib/x86_64-linux-gnu/cmake/GTest/GTestConfig.cmake", "libdevel/libgtest-dev"),
    ("usr/lib/cmake/ITK-5.2/Modules/Eigen3Config.cmake", "libdevel/libinsighttoolkit5-dev"),
    ("usr/lib/python3/dist-packages/lxml/etree.cpython-311-x86_64-linux-gnu.so",
     "python/python3-lxml"),
    ("usr/share/doc/zlib1g/copyright", "libs/zlib1g"),
    ("usr/share/man/man1/xsltproc.1.gz", "text/xsltproc"),
]
# Contents-all.gz: architecture-independent packages.
ALL_LINES = [
    ("usr/bin/meson", "devel/meson"),
    ("usr/share/eigen3/cmake/Eigen3Config.cmake", "libdevel/libeigen3-dev"),
    ("usr/include/eigen3/Eigen/Core", "libdevel/libeigen3-dev"),
    ("usr/share/pkgconfig/xproto.pc", "x11/x11proto-dev"),
    ("usr/share/doc/meson/README.md", "devel/meson"),
]


def contents_text(lines: list[tuple[str, str]]) -> bytes:
    """Sorted by path, the package column padded as Debian's archive software pads it."""
    return "".join(f"{path:<55} {packages}\n" for path, packages in sorted(lines)).encode()


def write_mirror(root: Path, suite: str = "bookworm", arch: str = "amd64",
                 arch_lines=ARCH_LINES, all_lines=ALL_LINES) -> str:
    """root/dists/<suite>/{Release, main/Contents-<arch>.gz, main/Contents-all.gz}; returns the
    mirror's file:// URL. all_lines None: no Contents-all.gz."""
    suite_dir = root / "dists" / suite
    (suite_dir / "main").mkdir(parents=True, exist_ok=True)
    members = {f"main/Contents-{arch}.gz": arch_lines}
    if all_lines is not None:
        members["main/Contents-all.gz"] = all_lines
    release = [f"Origin: Debian\nSuite: stable\nCodename: {suite}\nArchitectures: {arch}\n"
               f"Components: main\nMD5Sum:\n"]
    sha256 = ["SHA256:\n"]
    for member, lines in members.items():
        data = gzip.compress(contents_text(lines), mtime=0)
        (suite_dir / member).write_bytes(data)
        release.append(f" {hashlib.md5(data).hexdigest()} {len(data):>8} {member}\n")
        sha256.append(f" {hashlib.sha256(data).hexdigest()} {len(data):>8} {member}\n")
    (suite_dir / "Release").write_text("".join(release + sha256))
    return root.resolve().as_uri()


def local_contents(cache_dir: Path, mirror: str, suite: str = "bookworm", arch: str = "amd64",
                   ttl_seconds: float = 3600) -> DebianContents:
    transport = Transport(timeout=5, retries=0, backoff_seconds=0, user_agent="test")
    return DebianContents(cache_dir, ContentsSource(suite, arch, mirror), transport, ttl_seconds)


def cache_contents_for(settings: Settings, target: TargetSettings, mirror_root: Path) -> None:
    """Make the index that contents_for(settings, target) will use, from a local mirror, so that
    a command run with these settings finds it current and asks no one."""
    mirror = write_mirror(mirror_root, target.distribution, target.arch)
    with local_contents(settings.cache_dir, mirror, target.distribution, target.arch).open():
        pass

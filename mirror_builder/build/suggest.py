"""The Debian packages that give a failed build what it missed, and the override that adds them:
one sentence for the build's error, and the packages `overrides suggest` writes."""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from mirror_builder.build.missing import Missing, read_missing
from mirror_builder.errors import MirrorBuilderError
from mirror_builder.sandbox.debcontents import ContentsIndex, DebianContents, Kind

log = logging.getLogger(__name__)

# CMake's own find modules (find_package(ZLIB)) say which module failed, not which file it
# looked for: what each of the common ones looks for, in the order worth trying.
CMAKE_MODULES: dict[str, tuple[tuple[Kind, str], ...]] = {
    "ZLIB": (("header", "zlib.h"),), "PNG": (("header", "png.h"),),
    "JPEG": (("header", "jpeglib.h"),), "TIFF": (("header", "tiffio.h"),),
    "BZip2": (("header", "bzlib.h"),), "LibLZMA": (("header", "lzma.h"),),
    "OpenSSL": (("header", "openssl/ssl.h"),), "CURL": (("header", "curl/curl.h"),),
    "LibXml2": (("header", "libxml/xpath.h"),), "LibXslt": (("header", "libxslt/xslt.h"),),
    "EXPAT": (("header", "expat.h"),), "Freetype": (("header", "ft2build.h"),),
    "Fontconfig": (("header", "fontconfig/fontconfig.h"),), "SQLite3": (("header", "sqlite3.h"),),
    "PostgreSQL": (("header", "libpq-fe.h"),), "HDF5": (("header", "hdf5.h"),),
    "GDAL": (("header", "gdal.h"),), "GEOS": (("header", "geos_c.h"),),
    "GMP": (("header", "gmp.h"),), "Boost": (("header", "boost/version.hpp"),),
    "Eigen3": (("cmake", "Eigen3"),), "LibArchive": (("header", "archive.h"),),
    "Curses": (("header", "ncurses.h"),), "X11": (("header", "X11/Xlib.h"),),
    "OpenGL": (("header", "GL/gl.h"),), "BLAS": (("library", "blas"),),
    "LAPACK": (("library", "lapack"),), "PkgConfig": (("program", "pkg-config"),),
    "SWIG": (("program", "swig"),), "Doxygen": (("program", "doxygen"),),
    "Protobuf": (("header", "google/protobuf/message.h"), ("program", "protoc")),
    "FFTW3": (("header", "fftw3.h"),), "GSL": (("header", "gsl/gsl_version.h"),),
    "Iconv": (("header", "iconv.h"),), "Intl": (("header", "libintl.h"),),
}
SHOWN_PROVIDERS = 3  # alternatives named per missing thing


@dataclass(frozen=True)
class Found:
    """One missing thing and the packages that provide it (best first; () if none does)."""

    missing: Missing
    packages: tuple[str, ...]
    installed: tuple[str, ...] = ()  # of those, the ones the image has already

    def describe(self) -> str:
        what = self.missing.describe()
        if self.installed:
            return (f"{what} (its package {self.installed[0]} is in the image already: the "
                    f"build does not look where Debian puts it)")
        if not self.packages:
            return f"{what} (in no package)"
        shown = self.packages[:SHOWN_PROVIDERS]
        more = len(self.packages) - len(shown)
        return f"{what} (package {' or '.join(shown)}{f' or {more} more' if more else ''})"


@dataclass(frozen=True)
class Suggestion:
    """What a build missed, what provides it in the target's Debian release, what to add."""

    release: str  # "Debian bookworm (amd64)"
    found: tuple[Found, ...]

    @property
    def packages(self) -> tuple[str, ...]:
        """The packages to add: the best provider of each missing thing the image lacks."""
        return tuple(dict.fromkeys(f.packages[0] for f in self.found
                                   if f.packages and not f.installed))

    def summary(self) -> str:
        """What is missing and who has it: "the header zmq.h (package libzmq3-dev) in Debian
        bookworm (amd64)"."""
        return f"{'; '.join(f.describe() for f in self.found)} in {self.release}"

    def sentence(self, overrides_file: str, name: str) -> str:
        """One sentence for the build's error message (without a full stop: the error goes on
        with "; log: ...")."""
        text = f"It is missing {self.summary()}"
        if self.packages:
            text += (f": add system_packages: [{', '.join(self.packages)}] to {overrides_file}, "
                     f"or run `mirror-builder overrides suggest {name}`")
        return text


def suggest(missing: Sequence[Missing], index: ContentsIndex, release: str,
            installed: Iterable[str] = ()) -> Suggestion | None:
    """Look each missing thing up; None when nothing certain is missing. installed: the image's
    packages ("name" or "name=version")."""
    have = {p.partition("=")[0] for p in installed}
    found = []
    for item in missing:
        packages = _providers(item, index)
        if not packages and not item.certain:
            continue  # (a file of that name was not there; no program has the name)
        found.append(Found(item, packages, tuple(p for p in packages if p in have)))
    return Suggestion(release, tuple(found)) if found else None


def suggest_from_log(log_path: Path, contents: DebianContents,
                     installed: Iterable[str] = ()) -> Suggestion:
    """What the failed build whose log this is missed, looked up in the target's Contents index;
    a MirrorBuilderError if the log names nothing missing."""
    missing = read_missing(log_path)
    with contents.open() as index:
        suggestion = suggest(missing, index, contents.source.describe(), installed)
    if suggestion is None:
        raise MirrorBuilderError(f"{log_path}: the log names no missing header, pkg-config "
                                 f"module, library or program; nothing to suggest")
    return suggestion


def _providers(item: Missing, index: ContentsIndex) -> tuple[str, ...]:
    """For CMake's find modules, what the module looks for; for a CMake package otherwise, its
    config file, then a pkg-config module or library of its name."""
    if item.kind != "cmake":
        return index.packages(item.kind, item.name)
    lower = item.name.lower()
    tries = CMAKE_MODULES.get(item.name, ()) + (
        ("cmake", item.name), ("pkg-config", lower), ("library", lower))
    for kind, name in tries:
        packages = index.packages(kind, name)
        if packages:
            return packages
    return ()


def overrides_file_name(overrides_dir: Path, name: str) -> str:
    """overrides/<name>.yaml as the user would type it: relative to where they are, if inside."""
    path = overrides_dir / f"{canonicalize_name(name)}.yaml"
    try:
        return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd()) else str(path)
    except (OSError, ValueError):
        return str(path)


class FailureHints:
    """The sentence a failed build's error gains when its log names what it was missing.
    Never fails itself: the build's own error matters more."""

    def __init__(self, contents: DebianContents, overrides_dir: Path) -> None:
        self.contents = contents
        self.overrides_dir = overrides_dir

    def __call__(self, log_path: Path, name: str, installed: Iterable[str]) -> str | None:
        missing = read_missing(log_path)
        if not missing:
            return None
        release = self.contents.source.describe()
        try:
            with self.contents.open() as index:
                suggestion = suggest(missing, index, release, installed)
        except (MirrorBuilderError, OSError, sqlite3.Error) as exc:
            log.warning("%s: cannot look up what the build missed: %s", release, exc)
            certain = [m.describe() for m in missing if m.certain]
            return (f"It is missing {'; '.join(certain)} (Debian's Contents index of {release} "
                    f"could not be read: {exc})" if certain else None)
        if suggestion is None:
            return None
        return suggestion.sentence(overrides_file_name(self.overrides_dir, name), name)

"""What a failed build was missing, read from its log: a header, a pkg-config module, a library,
a program or a CMake package, each named as the compiler, linker, shell or build tool named it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mirror_builder.sandbox.debcontents import Kind

_NAME = r"[\w.+-]+"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# (kind, pattern whose group 1 is the name, certain). Certain: the line says the thing is
# missing. Not certain: it may be something else (a data file a setup.py failed to open), so
# it is only reported when Debian has a program of that name.
_PATTERNS: tuple[tuple[Kind, re.Pattern, bool], ...] = (
    # gcc: "foo.c:1:10: fatal error: zmq.h: No such file or directory"
    ("header", re.compile(r"fatal error: ([^\s:'\"‘’]+): No such file or directory"), True),
    # clang: "fatal error: 'zmq.h' file not found"
    ("header", re.compile(r"fatal error: ['\"‘]([^'\"’]+)['\"’] file not found"), True),
    # pkgconf: "Package 'libxml-2.0', required by 'virtual:world', not found"
    ("pkg-config", re.compile(r"Package '([^'\s]+)', required by '[^']*', not found"), True),
    # pkg-config: "No package 'libxml-2.0' found"
    ("pkg-config", re.compile(r"No package '([^'\s]+)' found"), True),
    ("pkg-config", re.compile(rf"Package ({_NAME}) was not found in the pkg-config search path"),
     True),
    # meson: 'ERROR: Dependency "libxml-2.0" not found, tried pkgconfig'
    ("pkg-config", re.compile(rf"Dependency \"?({_NAME})\"? not found"), True),
    # CMake, REQUIRED (an optional package's "-- Could NOT find" is skipped below)
    ("cmake", re.compile(r"Could NOT find (\w+)"), True),
    ("cmake", re.compile(r"Could not find a package configuration file provided by \"(\w+)\""),
     True),
    # GNU ld: "/usr/bin/ld: cannot find -lfoo: No such file or directory"; lld
    ("library", re.compile(rf"cannot find -l({_NAME}?)(?::|$|\s)"), True),
    ("library", re.compile(rf"unable to find library -l({_NAME})"), True),
    # dash: "sh: 1: xsltproc: not found"; bash: "bash: line 1: xsltproc: command not found"
    ("program", re.compile(rf"\b(?:sh|bash|dash|zsh)(?:: line \d+|: \d+)?: ({_NAME}): "
                           rf"(?:command )?not found"), True),
    # bash elsewhere: "./configure: line 512: xsltproc: command not found"
    ("program", re.compile(rf"(?:^|: )({_NAME}): command not found"), True),
    # meson: "Program 'xsltproc' not found or not executable"
    ("program", re.compile(rf"Program '?({_NAME})'? not found"), True),
    # distutils/setuptools: "error: command '/usr/bin/swig' failed: No such file or directory"
    ("program", re.compile(rf"error: command '(?:[^']*/)?({_NAME})' failed: No such file or "
                           rf"directory"), True),
    # Python's subprocess: "FileNotFoundError: [Errno 2] No such file or directory: 'xsltproc'"
    ("program", re.compile(rf"FileNotFoundError: \[Errno 2\] No such file or directory: "
                           rf"'(?:/usr)?(?:/s?bin/)?({_NAME})'"), False),
)


@dataclass(frozen=True)
class Missing:
    """One thing a build did not find."""

    kind: Kind
    name: str  # as the log names it: zmq.h, libxml/parser.h, libxml-2.0, foo (for -lfoo), ZLIB
    certain: bool = True  # the log says it is missing (not: a file of that name was not there)

    def describe(self) -> str:
        return {"header": f"the header {self.name}",
                "pkg-config": f"the pkg-config module {self.name}",
                "library": f"the library -l{self.name}",
                "program": f"the program {self.name}",
                "cmake": f"CMake's {self.name}"}[self.kind]


def missing_in_log(lines: Iterable[str]) -> list[Missing]:
    """Everything the lines say is missing, each once, in the order the log names them.
    CMake's packages count only in a "CMake Error" (an optional one is a warning or a "--"
    note)."""
    found: dict[tuple[str, str], Missing] = {}
    cmake_warning = False
    for raw in lines:
        line = _ANSI.sub("", raw).strip()
        if line.startswith(("CMake Error", "CMake Warning")):
            cmake_warning = line.startswith("CMake Warning")
        if not line or line.startswith(("[mirror-builder]", "-- ")):
            continue  # our own notes; CMake's notes on optional packages
        for kind, pattern, certain in _PATTERNS:
            match = pattern.search(line)
            if match and not (kind == "cmake" and cmake_warning):
                key = (kind, match.group(1))
                if key not in found or (certain and not found[key].certain):
                    found[key] = Missing(kind, match.group(1), certain)
                break
    return list(found.values())


def read_missing(log_path: Path) -> list[Missing]:
    """What a build log says is missing; [] when it says nothing of the kind (or is gone)."""
    try:
        with log_path.open(encoding="utf-8", errors="replace") as log_file:
            return missing_in_log(log_file)
    except OSError:
        return []


_IMAGE = re.compile(r"^\[mirror-builder\] \S+: image (\S+?),")


def image_in_log(log_path: Path) -> str | None:
    """The image the build ran in, from the note the builder writes at the top of its log."""
    try:
        with log_path.open(encoding="utf-8", errors="replace") as log_file:
            for line in log_file:
                match = _IMAGE.match(line)
                if match:
                    return match.group(1)
    except OSError:
        pass
    return None

"""Read a source tree's [build-system] table (PEP 517/518), statically: no package code runs."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from mirror_builder.config.overrides import PackageSettings

from mirror_builder.errors import SourceError

# PEP 517: a project without [build-system] is built by setuptools' legacy backend.
LEGACY_REQUIRES = ("setuptools>=40.8.0",)
LEGACY_BACKEND = "setuptools.build_meta:__legacy__"


@dataclass(frozen=True)
class BuildSystem:
    requires: tuple[str, ...]
    backend: str
    backend_path: tuple[str, ...] = ()

    def requirements(self) -> list[Requirement]:
        return [Requirement(r) for r in self.requires]


def read_build_system(tree: Path, package: str) -> BuildSystem:
    pyproject = tree / "pyproject.toml"
    return parse_build_system(pyproject.read_bytes() if pyproject.is_file() else None, package)


def parse_build_system(pyproject: bytes | str | None, package: str) -> BuildSystem:
    """The [build-system] of a pyproject.toml's text (None: the project has none). The build
    reads it from the prepared tree and `plan` from inside the sdist: the same function, so they
    cannot disagree."""
    if pyproject is None:
        return BuildSystem(LEGACY_REQUIRES, LEGACY_BACKEND)
    try:
        text = pyproject.decode("utf-8") if isinstance(pyproject, bytes) else pyproject
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(f"{package}: pyproject.toml is not valid TOML: {exc}") from None
    table = data.get("build-system")
    if table is None:
        return BuildSystem(LEGACY_REQUIRES, LEGACY_BACKEND)
    requires = table.get("requires")
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise SourceError(f"{package}: pyproject.toml [build-system] requires must be a list of strings")
    for text in requires:
        try:
            Requirement(text)
        except InvalidRequirement as exc:
            raise SourceError(f"{package}: pyproject.toml [build-system] requires: {exc}") from None
    backend = table.get("build-backend") or LEGACY_BACKEND
    backend_path = table.get("backend-path", [])
    if not isinstance(backend, str) or not isinstance(backend_path, list):
        raise SourceError(f"{package}: pyproject.toml [build-system] has a malformed build-backend")
    return BuildSystem(tuple(requires), backend, tuple(str(p) for p in backend_path))


def edit_requires(pyproject: str | None, add: tuple[str, ...], remove: tuple[str, ...], *,
                  package: str) -> str:
    """pyproject.toml's text with [build-system] requires edited as an override says (names
    compared normalized: `Cython` and `cython`, `foo-bar` and `Foo_Bar` are one project),
    keeping the file's own formatting and comments (tomlkit)."""
    import tomlkit

    document = tomlkit.parse(pyproject) if pyproject is not None else tomlkit.document()
    if "build-system" not in document:
        table = tomlkit.table()
        table["requires"] = list(LEGACY_REQUIRES)
        table["build-backend"] = LEGACY_BACKEND
        document["build-system"] = table
    build_system = document["build-system"]
    if "requires" not in build_system:
        build_system["requires"] = tomlkit.array()
    requires = build_system["requires"]
    removing = {canonicalize_name(n) for n in remove} | \
        {canonicalize_name(Requirement(a).name) for a in add}
    missing = {canonicalize_name(n) for n in remove} - \
        {_lenient_name(str(r), package) for r in requires}
    if missing:
        raise SourceError(f"{package}: build_requires.remove names {', '.join(sorted(missing))}, "
                          f"which [build-system] requires does not list")
    for index in reversed(range(len(requires))):
        if _lenient_name(str(requires[index]), package) in removing:
            del requires[index]
    for text in add:
        requires.append(text)
    for entry in requires:
        try:
            Requirement(str(entry))
        except InvalidRequirement as exc:
            raise SourceError(f"{package}: pyproject.toml [build-system] requires {str(entry)!r} "
                              f"is not a requirement ({exc}); remove it with "
                              f"build_requires.remove") from None
    return tomlkit.dumps(document)


def _lenient_name(text: str, package: str) -> str:
    # The sdist's own entries may be malformed (the reason to remove one), so a name is read
    # leniently; only a malformed entry that stays is an error.
    try:
        return canonicalize_name(Requirement(text).name)
    except InvalidRequirement:
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", text)
        if match is None:
            raise SourceError(f"{package}: pyproject.toml [build-system] requires has an "
                              f"entry that is not a requirement: {text!r}") from None
        return canonicalize_name(match.group(1))


def build_system_of(pyproject: bytes | None, package: PackageSettings, label: str) -> BuildSystem:
    """[build-system] as the build sees it: the source's own, edited by the package's
    build_requires override (prepare writes the same edit into the tree before the build)."""
    if not package.build_requires_add and not package.build_requires_remove:
        return parse_build_system(pyproject, label)
    text = pyproject.decode("utf-8", errors="replace") if pyproject is not None else None
    return parse_build_system(edit_requires(text, package.build_requires_add,
                                            package.build_requires_remove, package=label), label)

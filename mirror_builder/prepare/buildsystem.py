"""Read a source tree's [build-system] table (PEP 517/518), statically: no package code runs."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

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
    if not pyproject.is_file():
        return BuildSystem(LEGACY_REQUIRES, LEGACY_BACKEND)
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
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

"""What the user asks for: requirement strings, requirements files, constraints, local sdists."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import InvalidSdistFilename, NormalizedName, canonicalize_name, parse_sdist_filename

from mirror_builder.errors import MirrorBuilderError
from mirror_builder.resolve.resolver import Candidate
from mirror_builder.files import sha256_of
from mirror_builder.resolve.pages import DistributionFile


_COMMENT = re.compile(r"(^|\s)#.*$")


@dataclass(frozen=True)
class Request:
    requirements: tuple[Requirement, ...]
    constraints: dict[NormalizedName, SpecifierSet]
    # local sdists given by path: pinned to that very file
    direct: dict[NormalizedName, Candidate]


def read_request(args: list[str], requirement_files: list[Path],
                 constraint_files: list[Path]) -> Request:
    requirements: list[Requirement] = []
    direct: dict[NormalizedName, Candidate] = {}
    lines = [(arg, "the command line") for arg in args]
    for path in requirement_files:
        lines.extend(_read_lines(path))
    for text, origin in lines:
        if text.endswith((".tar.gz", ".zip")):
            if not Path(text).is_file():
                raise MirrorBuilderError(f"{origin}: sdist file {text} not found")
            candidate = _local_sdist(Path(text))
            direct[candidate.name] = candidate
            requirements.append(Requirement(f"{candidate.name}=={candidate.version}"))
            continue
        requirements.append(_parse(text, origin))
    constraints: dict[NormalizedName, SpecifierSet] = {}
    for path in constraint_files:
        for text, origin in _read_lines(path):
            req = _parse(text, origin)
            name = canonicalize_name(req.name)
            constraints[name] = constraints.get(name, SpecifierSet()) & req.specifier
    if not requirements:
        raise MirrorBuilderError("nothing to build: give requirements or -r FILE")
    return Request(tuple(requirements), constraints, direct)


def _parse(text: str, origin: str) -> Requirement:
    try:
        return Requirement(text)
    except InvalidRequirement as exc:
        raise MirrorBuilderError(f"{origin}: not a valid requirement {text!r}: {exc}") from None


def _read_lines(path: Path, seen: frozenset[Path] = frozenset()) -> list[tuple[str, str]]:
    if not path.is_file():
        raise MirrorBuilderError(f"{path}: file not found")
    resolved = path.resolve()
    if resolved in seen:
        raise MirrorBuilderError(f"{path}: includes itself (via -r)")
    found = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        # As pip: a '#' at the start or after whitespace begins a comment.
        line = _COMMENT.sub("", raw).strip()
        if not line:
            continue
        if line.startswith(("-r ", "--requirement ")):
            found.extend(_read_lines(path.parent / line.split(None, 1)[1], seen | {resolved}))
            continue
        if line.startswith("-"):
            raise MirrorBuilderError(f"{path}:{number}: options are not supported here: {line!r}")
        found.append((line, f"{path}:{number}"))
    return found


def _local_sdist(path: Path) -> Candidate:
    try:
        name, version = parse_sdist_filename(path.name)
    except InvalidSdistFilename as exc:
        raise MirrorBuilderError(f"{path}: not an sdist file name: {exc}") from None
    resolved = path.resolve()
    file = DistributionFile(filename=path.name, url=resolved.as_uri(), sha256=sha256_of(resolved))
    return Candidate(name, version, file)

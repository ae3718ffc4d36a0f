"""Check a wheel a build produced before anything on the host trusts it.

The build ran code we did not write, so its wheel is untrusted input: its file must be a plain
file, its name and metadata must say the package and version we asked for, and no path in its
archive or its RECORD may point outside the install tree (an installer that honours such a path
writes wherever the wheel says). stamp_wheel later rewrites RECORD, so a bad RECORD has to be
caught here, before it is laundered. wheelverify.py runs the same archive and RECORD checks on
any wheel a user hands to `inspect` or `verify-wheel`.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import stat
import zipfile
from pathlib import Path, PurePosixPath

from packaging.metadata import parse_email
from packaging.utils import (InvalidWheelFilename, NormalizedName, canonicalize_name,
                             parse_wheel_filename)
from packaging.version import InvalidVersion, Version

from mirror_builder.errors import MirrorBuilderError

DATA_SCHEMES = frozenset({"purelib", "platlib", "headers", "scripts", "data"})
# Files RECORD does not (or cannot) list with a hash.
_UNHASHED = ("RECORD", "RECORD.jws", "RECORD.p7s")


class WheelRejected(MirrorBuilderError):
    """A built wheel is unsafe or is not the package version that was asked for."""


def check_built_wheel(path: Path, name: str, version: Version) -> None:
    """Raise WheelRejected unless path is a sound wheel of name==version."""
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode):
        raise WheelRejected(f"{path.name}: not a regular file (a build may only leave plain files)")
    project = canonicalize_name(name)
    _check_filename(path.name, project, version)
    try:
        with zipfile.ZipFile(path) as archive:
            _check_archive(archive, path.name, project, version)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise WheelRejected(f"{path.name}: not a readable zip archive: {exc}") from None


def _check_filename(filename: str, project: NormalizedName, version: Version) -> None:
    try:
        file_project, file_version, _, _ = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise WheelRejected(f"invalid wheel file name: {exc}") from None
    if file_project != project or file_version != version:
        raise WheelRejected(f"{filename} is not a wheel of {project} {version}")


def _check_archive(archive: zipfile.ZipFile, filename: str, project: NormalizedName,
                   version: Version) -> None:
    _raise_first(archive_problems(archive, filename))
    dist_info = check_identity(archive, filename, project, version)
    _raise_first(record_problems(archive, filename, dist_info))


def archive_problems(archive: zipfile.ZipFile, filename: str) -> list[str]:
    """Members stored twice, paths outside the install tree, symbolic links: every one found."""
    members = archive.infolist()
    names = [m.filename for m in members]
    problems = [f"{filename}: the archive holds {name} more than once"
                for name in sorted({n for n in names if names.count(n) > 1})]
    for member in members:
        problems += filter(None, [_path_problem(member.filename, filename, "archive member")])
        if stat.S_ISLNK(member.external_attr >> 16):
            problems.append(f"{filename}: archive member {member.filename} is a symbolic link")
    return problems


def check_identity(archive: zipfile.ZipFile, filename: str, project: NormalizedName,
                   version: Version) -> str:
    """Raise WheelRejected unless the .dist-info directory and METADATA are project==version
    and every .data entry is in a known install scheme; returns the .dist-info directory."""
    names = archive.namelist()
    dist_info = _dist_info(names, filename, project, version)
    _check_metadata(archive.read(f"{dist_info}/METADATA"), filename, project, version)
    _check_data_dir(names, filename, dist_info)
    return dist_info


def _raise_first(problems: list[str]) -> None:
    if problems:
        raise WheelRejected(problems[0])


def _path_problem(path: str, filename: str, where: str) -> str | None:
    pure = PurePosixPath(path)
    if (not path or path.startswith("/") or "\\" in path or ".." in pure.parts
            or (len(path) > 1 and path[1] == ":")):
        return f"{filename}: {where} {path!r} points outside the install tree"
    return None


def _dist_info(names: list[str], filename: str, project: NormalizedName, version: Version) -> str:
    folders = {n.split("/", 1)[0] for n in names if "/" in n and n.split("/", 1)[0].endswith(".dist-info")}
    if len(folders) != 1:
        raise WheelRejected(f"{filename}: expected one .dist-info directory, found {len(folders)}")
    folder = folders.pop()
    stem = folder[:-len(".dist-info")]
    folder_name, _, folder_version = stem.rpartition("-")
    if canonicalize_name(folder_name) != project or _version(folder_version) != version:
        raise WheelRejected(f"{filename}: its metadata directory {folder} is not {project} {version}")
    for required in ("METADATA", "RECORD", "WHEEL"):
        if f"{folder}/{required}" not in names:
            raise WheelRejected(f"{filename}: {folder}/{required} is missing")
    return folder


def _check_metadata(data: bytes, filename: str, project: NormalizedName, version: Version) -> None:
    raw, _ = parse_email(data)
    meta_name, meta_version = raw.get("name"), raw.get("version")
    if meta_name is None or canonicalize_name(meta_name) != project:
        raise WheelRejected(f"{filename}: METADATA names the project {meta_name!r}, not {project}")
    if meta_version is None or _version(meta_version) != version:
        raise WheelRejected(f"{filename}: METADATA gives version {meta_version!r}, not {version}")


def _check_data_dir(names: list[str], filename: str, dist_info: str) -> None:
    data_dir = dist_info[:-len(".dist-info")] + ".data/"
    for name in names:
        if name.startswith(data_dir) and name != data_dir:
            scheme = name[len(data_dir):].split("/", 1)[0]
            if scheme not in DATA_SCHEMES:
                raise WheelRejected(f"{filename}: {name} is in an unknown install scheme {scheme!r}")


def record_problems(archive: zipfile.ZipFile, filename: str, dist_info: str) -> list[str]:
    """Every way RECORD and the archive disagree: a member not listed (RECORD itself and its
    signatures aside), listed without a sha256, with another hash or size, a listed file the
    archive lacks, a path outside the install tree or listed twice."""
    try:
        rows = list(csv.reader(io.StringIO(archive.read(f"{dist_info}/RECORD").decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        return [f"{filename}: RECORD is unreadable: {exc}"]
    problems: list[str] = []
    listed: dict[str, tuple[str, str]] = {}
    for row in rows:
        if not row:
            continue
        if len(row) != 3:
            return [f"{filename}: RECORD row {row!r} does not have 3 fields"]
        path, digest, size = row
        problem = _path_problem(path, filename, "RECORD entry")
        if problem:
            return [problem]
        if path in listed:
            problems.append(f"{filename}: RECORD lists {path} more than once")
        listed[path] = (digest, size)
    unhashed = {f"{dist_info}/{u}" for u in _UNHASHED}
    for member in archive.infolist():
        if member.is_dir() or member.filename in unhashed:
            continue
        if member.filename not in listed:
            problems.append(f"{filename}: {member.filename} is not listed in RECORD")
            continue
        digest, size = listed[member.filename]
        algorithm, _, expected = digest.partition("=")
        if algorithm != "sha256":
            problems.append(f"{filename}: RECORD gives {member.filename} no sha256 hash")
            continue
        actual = _record_hash(archive.read(member))
        if actual != expected or (size and size != str(member.file_size)):
            problems.append(f"{filename}: {member.filename} does not match its RECORD entry")
    held = set(archive.namelist())
    problems += [f"{filename}: RECORD lists {p}, which the archive does not hold"
                 for p, (digest, _) in sorted(listed.items()) if digest and p not in held]
    return problems


def _record_hash(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None

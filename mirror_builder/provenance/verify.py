"""Decide whether a wheel file is the one its build record describes.

A record inside a wheel proves nothing by itself: anyone can copy a build-record.json into a
wheel and rewrite RECORD to match. What ties a file to a build is its sha256 compared with the
record kept beside the index (records/<project>/<wheel>.build.json, written when the wheel was
published). Everything else here checks that the wheel is internally consistent and that its
embedded record at least names this wheel.
"""

from __future__ import annotations

import json
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from packaging.utils import (InvalidWheelFilename, NormalizedName, canonicalize_name,
                             parse_wheel_filename)
from packaging.version import InvalidVersion, Version

from mirror_builder.files import sha256_of
from mirror_builder.provenance.record import OUTSIDE_ONLY_FIELDS
from mirror_builder.provenance.store import RecordStore
from mirror_builder.build.wheelcheck import (WheelRejected, archive_problems, check_identity,
                                       record_problems)
from mirror_builder.provenance.stamp import EMBEDDED_RECORD

VERIFICATION_SCHEMA = "mirror-builder/wheel-verification/v1"

CheckStatus = Literal["passed", "failed", "skipped"]


@dataclass(frozen=True)
class Check:
    name: str            # file, file name, archive, metadata, RECORD, embedded record, sha256,
    status: CheckStatus  # records agree
    reason: str


@dataclass(frozen=True)
class Verdict:
    """Every check run on one wheel file, and the records it was checked against."""

    path: Path
    sha256: str | None                 # of the file itself; None if it could not be read
    checks: tuple[Check, ...]
    index_record_path: Path | None     # where the record beside the index is (or would be)
    index_record: dict[str, Any] | None
    embedded_record: dict[str, Any] | None
    carries_record: bool | None = None  # None: the archive could not be read that far

    @property
    def status(self) -> Literal["verified", "unverified", "failed"]:
        """failed: some check failed. verified: every check passed, the sha256 against the
        record beside the index among them. unverified: consistent, but nothing to compare with."""
        if any(c.status == "failed" for c in self.checks):
            return "failed"
        if self.check("sha256").status == "passed":
            return "verified"
        return "unverified"

    @property
    def describes_nothing(self) -> bool:
        """No record inside the wheel and none beside the index: a wheel from elsewhere."""
        return (self.carries_record is False and self.index_record is None
                and self.check("sha256").status == "skipped")

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    @property
    def reasons(self) -> list[str]:
        return [c.reason for c in self.checks if c.status == "failed"]

    @property
    def record(self) -> dict[str, Any] | None:
        """The record that describes this file: the one beside the index once verified, the
        embedded claim while unverified, none when the wheel is not what its record claims."""
        status = self.status
        if status == "verified":
            return self.index_record or self.embedded_record
        return self.embedded_record if status == "unverified" else None

    def to_dict(self) -> dict[str, Any]:
        return {"schema": VERIFICATION_SCHEMA, "wheel": str(self.path), "status": self.status,
                "sha256": self.sha256,
                "index_record": str(self.index_record_path) if self.index_record_path else None,
                "index_record_sha256": (self.index_record or {}).get("wheel_sha256"),
                "checks": [{"name": c.name, "status": c.status, "reason": c.reason}
                           for c in self.checks]}


def verify_wheel(path: Path, store: RecordStore) -> Verdict:
    """Check path against itself, its embedded record and the record beside store's index."""
    checks = _Checks(path)
    sha256 = _check_file(checks, path)
    if sha256 is None:
        return checks.verdict()
    filename = path.name
    try:
        project, version, _, _ = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        checks.add("file name", [f"invalid wheel file name: {exc}"], "")
        return checks.verdict(sha256)
    checks.add("file name", [], f"a wheel of {project} {version}")
    record_path = store.record_path(project, filename)
    index_record = _check_sha256(checks, sha256, record_path)
    inside = _check_archive(checks, path, project, version)
    if inside is None:
        return checks.verdict(sha256, record_path, index_record)
    carries, embedded, embedded_problem = inside
    if embedded_problem:
        checks.add("embedded record", [embedded_problem], "")
    elif embedded is None:
        _no_embedded_record(checks, index_record)
    else:
        checks.add("embedded record", _names_this_wheel(embedded, filename, project, version),
                   f"names {filename}")
    _check_records_agree(checks, embedded, index_record)
    return checks.verdict(sha256, record_path, index_record, embedded, carries)


_CHECKS = ("file", "file name", "archive", "metadata", "RECORD", "embedded record", "sha256",
           "records agree")


class _Checks:
    """The checks run so far on one wheel file; the verdict adds the ones not reached."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: list[Check] = []

    def add(self, name: str, problems: list[str], passed: str) -> bool:
        self.done.append(Check(name, "failed", "; ".join(problems)) if problems
                         else Check(name, "passed", passed))
        return not problems

    def skip(self, name: str, reason: str) -> None:
        self.done.append(Check(name, "skipped", reason))

    def keep_only(self, names: tuple[str, ...]) -> None:
        self.done = [c for c in self.done if c.name in names]

    def verdict(self, sha256: str | None = None, record_path: Path | None = None,
                index_record: dict | None = None, embedded: dict | None = None,
                carries: bool | None = None) -> Verdict:
        ran = {c.name for c in self.done}
        rest = [Check(n, "skipped", "not checked: an earlier check failed") for n in _CHECKS
                if n not in ran]
        ordered = sorted(self.done + rest, key=lambda c: _CHECKS.index(c.name))
        return Verdict(self.path, sha256, tuple(ordered), record_path, index_record, embedded,
                       carries)


def _check_file(checks: _Checks, path: Path) -> str | None:
    """The file's sha256, when it is a regular file that can be read."""
    try:
        info = path.lstat()
    except OSError as exc:
        checks.add("file", [f"cannot be read: {exc.strerror}"], "")
        return None
    if not checks.add("file", [] if stat.S_ISREG(info.st_mode) else ["not a regular file"],
                      "a regular file"):
        return None
    try:
        return sha256_of(path)
    except OSError as exc:
        checks.keep_only(())
        checks.add("file", [f"cannot be read: {exc.strerror}"], "")
        return None


def _check_sha256(checks: _Checks, sha256: str, record_path: Path) -> dict | None:
    """Compare the file with the record beside the index, and return that record. The one check
    that ties the file to a build; it needs nothing from inside the archive."""
    index_record, index_problem = _read_index_record(record_path)
    if index_problem:
        checks.add("sha256", [index_problem], "")
    elif index_record is None:
        checks.skip("sha256", f"no record beside an index to compare with (looked for {record_path})")
    else:
        checks.add("sha256", [] if index_record.get("wheel_sha256") == sha256 else [
            f"its sha256 differs from the one in the record beside the index at "
            f"{record_path}: this is not the file that was published"],
            f"matches the record beside the index at {record_path}")
    return index_record


def _check_archive(checks: _Checks, path: Path, project: NormalizedName, version: Version
                   ) -> tuple[bool, dict | None, str | None] | None:
    """Check the archive, its metadata and RECORD; then whether it carries a build record, that
    record and what makes it unreadable. None when the archive is not read further."""
    filename = path.name
    try:
        with zipfile.ZipFile(path) as archive:
            checks.add("archive", _bare(archive_problems(archive, filename), filename),
                       "no member stored twice, outside the install tree or as a link")
            try:
                dist_info = check_identity(archive, filename, project, version)
            except WheelRejected as exc:
                checks.add("metadata", _bare([str(exc)], filename), "")
                return None
            checks.add("metadata", [], f"{dist_info} and its METADATA are {project} {version}")
            checks.add("RECORD", _bare(record_problems(archive, filename, dist_info), filename),
                       "every member is listed with its sha256, nothing else is in the archive")
            carries = f"{dist_info}/{EMBEDDED_RECORD}" in archive.namelist()
            embedded, embedded_problem = _read_embedded(archive, dist_info)
    # A corrupt member shows only when it is read: a bad CRC, bad deflate data, a method
    # zipfile does not know.
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, zlib.error,
            NotImplementedError) as exc:
        checks.keep_only(("file", "file name", "sha256"))
        checks.add("archive", [f"not a readable zip archive: {exc}"], "")
        return None
    return carries, embedded, embedded_problem


def _check_records_agree(checks: _Checks, embedded: dict | None,
                         index_record: dict | None) -> None:
    if index_record is None or embedded is None:
        checks.skip("records agree", "no record beside an index" if index_record is None
                    else "the wheel carries no record")
        return
    differ = _differing_fields(embedded, index_record)
    checks.add("records agree", [f"the record inside it and the one beside the index "
                                 f"differ in {', '.join(differ)}"] if differ else [],
               "the record inside it equals the one beside the index")


def _read_index_record(path: Path) -> tuple[dict | None, str | None]:
    if not path.is_file():
        return None, None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"the record beside the index at {path} is unreadable: {exc}"
    if not isinstance(record, dict) or not isinstance(record.get("wheel_sha256"), str):
        return None, f"the record beside the index at {path} gives no wheel_sha256"
    return record, None


def _read_embedded(archive: zipfile.ZipFile, dist_info: str) -> tuple[dict | None, str | None]:
    member = f"{dist_info}/{EMBEDDED_RECORD}"
    try:
        data = archive.read(member)
    except KeyError:
        return None, None
    try:
        record = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{member} is not readable JSON: {exc}"
    if not isinstance(record, dict):
        return None, f"{member} is not a build record (not a JSON object)"
    return record, None


def _no_embedded_record(checks: _Checks, index_record: dict | None) -> None:
    if index_record is None:
        checks.add("embedded record", ["it carries no build record in its .dist-info: nothing "
                                       "says where it came from"], "")
    elif index_record.get("built_from_source", True):
        checks.add("embedded record", ["it carries no build record, though the record beside "
                                       "the index says it was built from source"], "")
    else:
        checks.add("embedded record", [], "none: the record beside the index says it is an "
                                          "upstream wheel published as it was (not built from source)")


def _names_this_wheel(record: dict, filename: str, project, version: Version) -> list[str]:
    """A record copied from another wheel names that wheel, not this one."""
    problems = []
    if record.get("wheel") != filename:
        problems.append(f"the record inside it describes {record.get('wheel')}")
    name = record.get("name")
    if not isinstance(name, str) or canonicalize_name(name) != project:
        problems.append(f"the record inside it is for the project {name}")
    if _version(record.get("wheel_version")) != version:
        problems.append(f"the record inside it is for version "
                        f"{record.get('wheel_version')}, not {version}")
    return problems


def _differing_fields(embedded: dict, index_record: dict) -> list[str]:
    outside = {k: v for k, v in index_record.items() if k not in OUTSIDE_ONLY_FIELDS}
    absent = object()
    return sorted(k for k in outside.keys() | embedded.keys()
                  if outside.get(k, absent) != embedded.get(k, absent))


def _bare(problems: list[str], filename: str) -> list[str]:
    """wheelcheck's messages start with the file name; a verdict names its file once."""
    return [p.removeprefix(f"{filename}: ") for p in problems]


def _version(text: object) -> Version | None:
    try:
        return Version(text) if isinstance(text, str) else None
    except InvalidVersion:
        return None

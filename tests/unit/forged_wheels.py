"""Wheels for the verification tests, made with zipfile: a genuine one as bootstrap publishes it
(stamped, its record embedded and kept beside the index with its sha256) and forgeries of it."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import zipfile
from pathlib import Path

from mirror_builder.provenance.record import BuildRecord, Rebuild
from mirror_builder.provenance.store import RecordStore
from mirror_builder.provenance.stamp import EMBEDDED_RECORD, stamp_wheel

MODULE = b'GREETING = "hello"\n'


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def sha256_hex(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_record(name: str, version: str, wheel: str, *, number: int = 0) -> BuildRecord:
    """A record with every field inspect shows, as bootstrap writes it for one build."""
    return BuildRecord(
        name=name, version=version, wheel=wheel, wheel_version=version,
        source={"url": f"https://files.example/{name}-{version}.tar.gz",
                "filename": f"{name}-{version}.tar.gz", "sha256": "a" * 64,
                "sha256_checked_against_index": True, "origin": {"kind": "sdist"}},
        patches=[], settings={"package": None},
        build_system={"requires": ["setuptools"], "backend": "setuptools.build_meta",
                      "backend_path": []},
        backend_requires=[], build_env={"freeze": ["setuptools==80.0.0"], "wheels": []},
        target={"name": "bookworm-x86_64", "platform_python_implementation": "CPython",
                "python_full_version": "3.11.2", "sys_platform": "linux",
                "platform_machine": "x86_64"},
        image={"tag": "localhost/mirror-builder-bookworm:0", "id": "sha256:" + "b" * 64,
               "base": "localhost/base:bookworm", "containerfile_sha256": "c" * 64,
               "system_packages": []},
        sandbox={"network": "none", "user": "builder", "capabilities": "all dropped",
                 "memory": "8g", "pids_limit": 4096, "timeout_seconds": 3600},
        command=["python3", "/mb/mb_driver.py"], environment={},
        started_at="2026-01-01T10:00:00+00:00", ended_at="2026-01-01T10:00:05+00:00",
        seconds=5.0, exit_status=0, rebuild=Rebuild(number, "build-tag"), required_by=[],
        log=f"{wheel}.log")


def plain_wheel(folder: Path, name: str = "demo", version: str = "1.0",
                files: dict[str, bytes] | None = None) -> Path:
    """A sound wheel with a correct RECORD, as a build backend (or upstream) makes it."""
    dist_info = f"{name}-{version}.dist-info"
    contents = {f"{name}/__init__.py": MODULE, **(files or {}),
                f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\n"
                                         f"Version: {version}\n".encode(),
                f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\n"
                                      b"Tag: py3-none-any\n"}
    folder.mkdir(parents=True, exist_ok=True)
    return write_wheel(folder / f"{name}-{version}-py3-none-any.whl", contents)


def write_wheel(path: Path, contents: dict[str, bytes], *, rewrite_record: bool = True) -> Path:
    """Write contents as a wheel; with rewrite_record, RECORD is made to match them (what a
    forger does after editing a file), otherwise RECORD is taken from contents as it is."""
    dist_info = next(n.split("/")[0] for n in contents if n.endswith(".dist-info/METADATA"))
    if rewrite_record:
        contents = {n: d for n, d in contents.items() if n != f"{dist_info}/RECORD"}
        rows = io.StringIO()
        writer = csv.writer(rows, lineterminator="\n")
        for member, data in contents.items():
            writer.writerow([member, record_hash(data), len(data)])
        writer.writerow([f"{dist_info}/RECORD", "", ""])
        contents[f"{dist_info}/RECORD"] = rows.getvalue().encode()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, data in contents.items():
            info = zipfile.ZipInfo(member, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return path


def read_members(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {n: archive.read(n) for n in archive.namelist()}


def publish(output: Path, work: Path, name: str = "demo", version: str = "1.0",
            number: int = 0) -> Path:
    """A wheel as bootstrap publishes it: stamped with its record embedded, and the record with
    the wheel's sha256 and its smoke test kept beside the index. Returns the published file."""
    plain = plain_wheel(work / f"plain-{name}-{version}", name, version)
    wheel_name = f"{name}-{version}{f'-{number}' if number else ''}-py3-none-any.whl"
    record = build_record(name, version, wheel_name, number=number)
    stamped = stamp_wheel(plain, output / "files" / name, number=number, numbering="build-tag",
                          embed={EMBEDDED_RECORD: json.dumps(record.to_dict(), indent=2).encode()})
    beside = record.to_dict(wheel_sha256=sha256_hex(stamped)) | {
        "smoke_test": {"status": "passed", "imports": [name], "seconds": 1.0, "error": None}}
    store = RecordStore(output)
    store.folder(name).mkdir(parents=True, exist_ok=True)
    store.record_path(name, wheel_name).write_text(json.dumps(beside, indent=2))
    return stamped


def embedded_member(wheel: Path) -> str:
    return next(n for n in read_members(wheel) if n.endswith(EMBEDDED_RECORD))

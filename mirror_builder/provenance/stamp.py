"""Rewrite a built wheel: give it its rebuild number and embed its build record.

A rebuild number is either the PEP 427 build tag (file name only, plus `Build:` in WHEEL) or a
post-release (`1.0` -> `1.0.post1`: METADATA's Version, the .dist-info and .data directory names
and RECORD all change together). RECORD is regenerated so the wheel stays valid for installers.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
import stat
import time
import zipfile
from pathlib import Path

from packaging.utils import parse_wheel_filename
from packaging.version import Version

from mirror_builder.errors import MirrorBuilderError

EMBEDDED_RECORD = "mirror_builder/build-record.json"  # inside the .dist-info directory


def rebuilt_version(version: Version, number: int, numbering: str) -> Version:
    if numbering != "post-release" or number == 0:
        return version
    if version.is_postrelease or version.is_devrelease or version.local:
        raise MirrorBuilderError(
            f"version {version} already has a post, dev or local part, so a rebuild cannot be "
            f"numbered as a post-release; use rebuild_numbering: build-tag")
    return Version(f"{version}.post{number}")


def rebuilt_filename(filename: str, number: int, numbering: str) -> str:
    """The file name a wheel gets for its rebuild number."""
    _, version, _, _ = parse_wheel_filename(filename)
    stem = filename[:-len(".whl")].split("-")
    dist_part, tag_part = stem[0], "-".join(stem[-3:])
    new_version = rebuilt_version(version, number, numbering)
    build_tag = f"-{number}" if numbering == "build-tag" and number > 0 else ""
    return f"{dist_part}-{new_version}{build_tag}-{tag_part}.whl"


def stamp_wheel(wheel: Path, dest_dir: Path, *, number: int, numbering: str,
                embed: dict[str, bytes], epoch: int | None = None) -> Path:
    """Write a copy of wheel into dest_dir with the rebuild number and embedded files. With
    epoch (the build's SOURCE_DATE_EPOCH) the archive is normalized, so that the same files
    always give the same bytes: members in name order with .dist-info last, every time the
    epoch, modes 644 (755 where the backend made a file executable), all deflated."""
    _, version, _, _ = parse_wheel_filename(wheel.name)
    new_version = rebuilt_version(version, number, numbering)
    new_name = rebuilt_filename(wheel.name, number, numbering)
    with zipfile.ZipFile(wheel) as zin:
        dist_info = _dist_info_dir(zin, wheel.name)
        new_base = f"{dist_info[:-len('.dist-info')].rsplit('-', 1)[0]}-{new_version}"
        headers = {}
        if new_version != version:
            headers[f"{dist_info}/METADATA"] = ("Version", str(new_version))
        if numbering == "build-tag" and number > 0:
            headers[f"{dist_info}/WHEEL"] = ("Build", str(number))
        entries, record_info = _copied_entries(zin, dist_info, new_base, headers,
                                               {f"{new_base}.dist-info/{r}" for r in embed})
    stamp_time = record_info.date_time if record_info else (1980, 1, 1, 0, 0, 0)
    if epoch is not None:
        stamp_time = time.gmtime(max(epoch, ZIP_EPOCH))[:6]
        entries = _normalized(entries, stamp_time)
    for relative, data in sorted(embed.items()):
        entries.append((_new_info(f"{new_base}.dist-info/{relative}", stamp_time), data))
    entries.append(_record(entries, f"{new_base}.dist-info/RECORD", stamp_time))
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / new_name
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for info, data in entries:
            info.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(info, data)
    return dest


def _copied_entries(zin: zipfile.ZipFile, dist_info: str, new_base: str,
                    headers: dict[str, tuple[str, str]], replaced: set[str]
                    ) -> tuple[list[tuple[zipfile.ZipInfo, bytes]], zipfile.ZipInfo | None]:
    """The wheel's members under their new names, with headers[member] = (field, value) set,
    leaving out RECORD (returned apart, for its time), its signatures and the members named in
    replaced."""
    old_base = dist_info[:-len(".dist-info")]
    renames = {f"{old_base}.dist-info/": f"{new_base}.dist-info/",
               f"{old_base}.data/": f"{new_base}.data/"}
    entries: list[tuple[zipfile.ZipInfo, bytes]] = []
    record_info = None
    for info in zin.infolist():
        name = info.filename
        if name == f"{dist_info}/RECORD":
            record_info = info
            continue
        if name.startswith(f"{dist_info}/RECORD."):
            continue  # signatures of RECORD no longer match; drop them
        data = zin.read(info)
        if name in headers:
            data = _set_header(data, *headers[name])
        for old, new in renames.items():
            if name.startswith(old):
                name = new + name[len(old):]
        if name in replaced:
            continue  # replaced by what is embedded now (a wheel stamped before)
        entries.append((_renamed(info, name), data))
    return entries, record_info


ZIP_EPOCH = 315532800  # 1980-01-01, the earliest time a zip member can have


def _normalized(entries: list[tuple[zipfile.ZipInfo, bytes]], stamp_time: tuple[int, ...]
                ) -> list[tuple[zipfile.ZipInfo, bytes]]:
    def order(entry: tuple[zipfile.ZipInfo, bytes]) -> tuple[bool, str]:
        name = entry[0].filename
        return (".dist-info/" in name.split("/", 1)[0] + "/", name)

    normalized = []
    for info, data in sorted(entries, key=order):
        fresh = _new_info(info.filename, stamp_time)
        if info.is_dir():
            fresh.external_attr = ((stat.S_IFDIR | 0o755) << 16) | 0x10
        elif (info.external_attr >> 16) & 0o111:
            # A regular file's type bits too: installers make a file executable only then.
            fresh.external_attr = (stat.S_IFREG | 0o755) << 16
        normalized.append((fresh, data))
    return normalized


def content_digest(wheel: Path) -> str:
    """sha256 over the wheel's files (names and contents) apart from the build record it
    carries and RECORD (which lists the record): equal for two builds that made the same
    files, whenever and wherever they ran."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(wheel) as archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            name = info.filename
            top, _, inner = name.partition("/")
            if top.endswith(".dist-info") and (inner == EMBEDDED_RECORD
                                               or inner.startswith("RECORD")):
                continue
            digest.update(name.encode() + b"\0")
            digest.update(hashlib.sha256(archive.read(info)).digest())
    return digest.hexdigest()


def _record(entries: list[tuple[zipfile.ZipInfo, bytes]], record_path: str,
            stamp_time: tuple[int, ...]) -> tuple[zipfile.ZipInfo, bytes]:
    """The RECORD member listing every file in entries with its hash and size."""
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    for info, data in entries:
        if info.is_dir():
            continue
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        writer.writerow([info.filename, f"sha256={digest}", len(data)])
    writer.writerow([record_path, "", ""])
    return _new_info(record_path, stamp_time), rows.getvalue().encode()


def _new_info(name: str, stamp_time: tuple[int, ...]) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=stamp_time)
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    return info


def read_embedded_record(wheel: Path) -> dict | None:
    """The build record mirror-builder embedded in a wheel, or None for a wheel it did not build."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            dist_info = _dist_info_dir(zf, wheel.name)
            try:
                return json.loads(zf.read(f"{dist_info}/{EMBEDDED_RECORD}"))
            except KeyError:
                return None
    except (zipfile.BadZipFile, OSError) as exc:
        raise MirrorBuilderError(f"{wheel}: not a readable wheel: {exc}") from None


def _dist_info_dir(zf: zipfile.ZipFile, label: str) -> str:
    candidates = {n.split("/", 1)[0] for n in zf.namelist()
                  if n.count("/") == 1 and n.endswith("/METADATA") and ".dist-info/" in n}
    if len(candidates) != 1:
        raise MirrorBuilderError(f"{label}: expected one .dist-info directory, found {len(candidates)}")
    return candidates.pop()


def _set_header(data: bytes, field: str, value: str) -> bytes:
    text = data.decode("utf-8")
    head, sep, body = text.partition("\n\n")
    pattern = re.compile(rf"^{field}:.*$", re.MULTILINE)
    if pattern.search(head):
        head = pattern.sub(f"{field}: {value}", head, count=1)
    else:
        head = head.rstrip("\n") + f"\n{field}: {value}"
    return (head + sep + body if sep else head + "\n").encode("utf-8")


def _renamed(info: zipfile.ZipInfo, name: str) -> zipfile.ZipInfo:
    new = zipfile.ZipInfo(name, date_time=info.date_time)
    new.external_attr = info.external_attr
    new.create_system = info.create_system
    return new

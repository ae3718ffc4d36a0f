"""Turn a candidate into a prepared source tree: fetch, verify, unpack safely, patch.

Patching is plain text manipulation and runs on the host; nothing here runs package code.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.utils import canonicalize_name
from packaging.version import Version

from mirror_builder.errors import SourceError
from mirror_builder.files import sha256_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppliedPatch:
    name: str
    sha256: str


@dataclass(frozen=True)
class PreparedSource:
    """An unpacked, patched source tree ready to be mounted into a build container."""

    name: str
    version: str
    sdist: Path
    sdist_sha256: str
    tree: Path
    patches: tuple[AppliedPatch, ...]


def find_patches(patches_dir: Path, name: str, version: Version | str) -> list[Path]:
    """patches/<name>/*.patch (every version) and patches/<name>-<version>/*.patch, by file name."""
    canonical = canonicalize_name(name)
    found = []
    if patches_dir.is_dir():
        for folder in patches_dir.iterdir():
            if not folder.is_dir():
                continue
            folder_name = canonicalize_name(folder.name)
            if folder_name == canonical or _is_version_folder(folder.name, canonical, version):
                found.extend(p for p in folder.glob("*.patch") if p.is_file())
    return sorted(found, key=lambda p: (p.name, str(p)))


def _is_version_folder(folder: str, canonical: str, version: Version | str) -> bool:
    base, sep, folder_version = folder.rpartition("-")
    if not sep or canonicalize_name(base) != canonical:
        return False
    try:
        return Version(folder_version) == Version(str(version))
    except ValueError:
        return False


def safe_unpack(archive: Path, dest: Path) -> Path:
    """Unpack an sdist into dest, refusing path escapes, links out of the tree and device files.

    Returns the source root: the single top-level directory of the archive.
    """
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    try:
        if archive.name.endswith(".zip"):
            _unpack_zip(archive, dest)
        else:
            with tarfile.open(archive) as tar:
                for member in tar.getmembers():
                    _check_member_name(archive, member.name)
                    if member.isdev() or member.isfifo():
                        raise SourceError(f"{archive.name}: refusing device or fifo member {member.name!r}")
                # The 'data' filter (PEP 706) also rejects links pointing outside dest and strips
                # set-uid bits and ownership.
                tar.extractall(dest, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise SourceError(f"{archive.name}: cannot unpack: {exc}") from None
    except SourceError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    entries = [p for p in dest.iterdir()]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return dest


def _check_member_name(archive: Path, name: str) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    drive_letter = bool(path.parts) and ":" in path.parts[0]
    if path.is_absolute() or ".." in path.parts or drive_letter:
        raise SourceError(f"{archive.name}: refusing member with unsafe path {name!r}")


def _unpack_zip(archive: Path, dest: Path) -> None:
    root = dest.resolve()
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            _check_member_name(archive, info.filename)
            target = (dest / info.filename).resolve()
            if not target.is_relative_to(root):
                raise SourceError(f"{archive.name}: refusing member with unsafe path {info.filename!r}")
            mode = (info.external_attr >> 16) & 0o170000
            if mode and mode not in (0o100000, 0o040000):
                raise SourceError(f"{archive.name}: refusing special file {info.filename!r}")
        zf.extractall(dest)


def apply_patches(tree: Path, patches: list[Path], *, package: str) -> tuple[AppliedPatch, ...]:
    """Apply each patch with `patch -p1`, checking first that it applies cleanly."""
    applied = []
    for patch in patches:
        for args in (["--dry-run"], []):
            # --fuzz=0: a hunk whose context does not match exactly is an error, not a guess;
            # the patch path is absolute because patch changes into the tree before reading it.
            proc = subprocess.run(
                ["patch", "-p1", "--batch", "--forward", "--fuzz=0", "--no-backup-if-mismatch",
                 *args, "-d", str(tree), "-i", str(patch.resolve())],
                capture_output=True, text=True)
            if proc.returncode != 0:
                output = (proc.stdout + proc.stderr).strip().splitlines()
                reason = output[-1] if output else f"exit status {proc.returncode}"
                raise SourceError(f"{package}: patch {patch} does not apply: {reason}")
        applied.append(AppliedPatch(name=str(patch.relative_to(patch.parent.parent)),
                                    sha256=sha256_of(patch)))
        log.info("%s: applied %s", package, patch.name)
    return tuple(applied)


def prepare_source(sdist: Path, sdist_sha256: str, name: str, version: Version, *,
                   work_dir: Path, patches_dir: Path) -> PreparedSource:
    label = f"{name}=={version}"
    tree = safe_unpack(sdist, work_dir / f"{canonicalize_name(name)}-{version}")
    patches = apply_patches(tree, find_patches(patches_dir, name, version), package=label)
    return PreparedSource(name=str(name), version=str(version), sdist=sdist,
                          sdist_sha256=sdist_sha256, tree=tree, patches=patches)

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
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from packaging.utils import canonicalize_name
from packaging.version import Version

from mirror_builder.errors import SourceError
from mirror_builder.prepare.buildsystem import edit_requires
from mirror_builder.prepare.untar import tar_flag, untar
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
    project_dir: str = ""  # the folder inside tree that holds pyproject.toml / setup.py
    source_date_epoch: int | None = None  # the newest file time in the sdist

    @property
    def project(self) -> Path:
        return self.tree / self.project_dir if self.project_dir else self.tree


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

    Every member is checked before anything is written, so a refused archive leaves nothing
    behind. Returns the source root: the single top-level directory of the archive.
    """
    return unpack_sdist(archive, dest)[0]


def unpack_sdist(archive: Path, dest: Path) -> tuple[Path, int]:
    """safe_unpack(), and the newest file time the archive records (SOURCE_DATE_EPOCH for the
    build, read from the members checked anyway rather than from a second pass over the
    archive)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    try:
        if archive.name.endswith(".zip"):
            newest = _unpack_zip(archive, dest)
        else:
            with tarfile.open(archive) as tar:
                members = tar.getmembers()
                _check_tar_members(archive, members)
                newest = max((m.mtime for m in members), default=0)
                flag = tar_flag(archive)
                if flag is None:
                    # The 'data' filter (PEP 706) checks again as it writes, and strips set-uid
                    # bits and ownership.
                    tar.extractall(dest, filter="data")
            if flag is not None:
                failed = untar(archive, dest, flag)  # the same, in GNU tar (prepare/untar.py)
                if failed:
                    raise SourceError(f"{archive.name}: cannot unpack: {failed}")
    except tarfile.FilterError as exc:
        shutil.rmtree(dest, ignore_errors=True)
        member = exc.tarinfo.name if exc.tarinfo else "?"
        raise SourceError(f"{archive.name}: refusing member {member!r}: {exc}") from None
    except (tarfile.TarError, zipfile.BadZipFile, OSError, KeyError) as exc:
        # KeyError: tarfile's way of saying a hard link names no member.
        shutil.rmtree(dest, ignore_errors=True)
        raise SourceError(f"{archive.name}: cannot unpack: {exc}") from None
    except SourceError:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    entries = [p for p in dest.iterdir()]
    epoch = max(int(newest), EARLIEST_ZIP_TIME)
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0], epoch
    return dest, epoch


# 1980-01-01: the earliest time a zip (a wheel) can hold.
EARLIEST_ZIP_TIME = 315532800


def source_date_epoch(sdist: Path) -> int:
    """The newest file time an sdist records, read from it alone (for a build whose unpacking
    did not say): reproducible timestamps inside the wheel, not when we downloaded the file."""
    try:
        if sdist.name.endswith(".zip"):
            with zipfile.ZipFile(sdist) as zf:
                newest = max(datetime(*i.date_time, tzinfo=timezone.utc).timestamp()
                             for i in zf.infolist())
        else:
            with tarfile.open(sdist) as tar:
                newest = max(m.mtime for m in tar.getmembers())
    except (OSError, ValueError, tarfile.TarError, zipfile.BadZipFile):
        return EARLIEST_ZIP_TIME
    return max(int(newest), EARLIEST_ZIP_TIME)


def _check_member_name(archive: Path, name: str) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    drive_letter = bool(path.parts) and ":" in path.parts[0]
    if path.is_absolute() or drive_letter:
        raise SourceError(f"{archive.name}: refusing member {name!r}: an absolute path")
    if ".." in path.parts:
        raise SourceError(f"{archive.name}: refusing member {name!r}: a '..' path leaves the "
                          f"source tree")


def _check_tar_members(archive: Path, members: list[tarfile.TarInfo]) -> None:
    """Refuse the archive unless every member stays inside the tree once unpacked.

    Links are followed inside the archive itself, whatever order they come in, rather than
    trusting the file system at extraction time (the data filter's realpath checks have had
    bypasses)."""
    symlinks = {_parts(m.name): m for m in members if m.issym()}
    files_so_far: set[tuple[str, ...]] = set()
    for member in members:
        _check_member_name(archive, member.name)
        what = f"{archive.name}: refusing member {member.name!r}"
        if member.isdev() or member.isfifo():
            kind = "character device" if member.ischr() else "block device" if member.isblk() \
                else "fifo"
            raise SourceError(f"{what}: a {kind}; an sdist holds only files, folders and links")
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise SourceError(f"{what}: an unknown kind of tar entry ({member.type!r})")
        through = _symlink_on_the_way(_parts(member.name), member, symlinks)
        if through is not None:
            raise SourceError(f"{what}: it would be written through the symlink {through!r}")
        if member.issym() or member.islnk():
            _check_link(what, member, symlinks, files_so_far)
        if member.isfile() or member.islnk():
            files_so_far.add(_parts(member.name))


def _check_link(what: str, member: tarfile.TarInfo,
                symlinks: dict[tuple[str, ...], tarfile.TarInfo],
                files_so_far: set[tuple[str, ...]]) -> None:
    kind = "a symlink" if member.issym() else "a hard link"
    # A symlink's target is taken from its own folder, a hard link's from the top of the tree.
    folder = _parts(member.name)[:-1] if member.issym() else ()
    try:
        target = _resolve_in_tree(folder, member.linkname, symlinks)
    except _LinkLeaves as exc:
        raise SourceError(f"{what}: {kind} to {member.linkname!r}, {exc}") from None
    if member.islnk() and target not in files_so_far:
        raise SourceError(f"{what}: {kind} to {member.linkname!r}, which is not a file earlier "
                          f"in the archive")


def _parts(name: str) -> tuple[str, ...]:
    return tuple(p for p in name.split("/") if p not in ("", "."))


def _symlink_on_the_way(parts: tuple[str, ...], member: tarfile.TarInfo,
                        symlinks: dict[tuple[str, ...], tarfile.TarInfo]) -> str | None:
    """The symlink member that member's path goes through (or replaces), if any."""
    for end in range(1, len(parts) + 1):
        link = symlinks.get(parts[:end])
        if link is not None and link is not member:
            return link.name
    return None


_MAX_LINKS_FOLLOWED = 40  # as the kernel's own limit on symlinks in one path


class _LinkLeaves(Exception):
    """A link that leads out of the source tree, or nowhere; the message says which."""


def _resolve_in_tree(folder: tuple[str, ...], target: str,
                     symlinks: dict[tuple[str, ...], tarfile.TarInfo]) -> tuple[str, ...]:
    """Where target, taken from folder, ends up in the unpacked tree, following the archive's
    own symlinks."""
    if target.startswith("/"):
        raise _LinkLeaves("outside the source tree")
    path = list(folder)
    pending = list(reversed(target.split("/")))
    followed = 0
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not path:
                raise _LinkLeaves("outside the source tree")
            path.pop()
            continue
        path.append(part)
        link = symlinks.get(tuple(path))
        if link is None:
            continue
        followed += 1
        if followed > _MAX_LINKS_FOLLOWED:
            raise _LinkLeaves("a loop of symlinks")
        if link.linkname.startswith("/"):
            raise _LinkLeaves(f"outside the source tree (through {link.name!r})")
        path.pop()
        pending.extend(reversed(link.linkname.split("/")))
    return tuple(path)


def _unpack_zip(archive: Path, dest: Path) -> float:
    """Unpack a checked zip sdist; the newest file time it records."""
    root = dest.resolve()
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _check_member_name(archive, info.filename)
            target = (dest / info.filename).resolve()
            if not target.is_relative_to(root):
                raise SourceError(f"{archive.name}: refusing member with unsafe path {info.filename!r}")
            mode = (info.external_attr >> 16) & 0o170000
            if mode and mode not in (0o100000, 0o040000):
                raise SourceError(f"{archive.name}: refusing special file {info.filename!r}")
        zf.extractall(dest)
    return max((datetime(*i.date_time, tzinfo=timezone.utc).timestamp() for i in infos),
               default=0)


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
                   work_dir: Path, patches_dir: Path, build_dir: str | None = None,
                   requires_add: tuple[str, ...] = (),
                   requires_remove: tuple[str, ...] = ()) -> PreparedSource:
    label = f"{name}=={version}"
    tree, epoch = unpack_sdist(sdist, work_dir / f"{canonicalize_name(name)}-{version}")
    patches = apply_patches(tree, find_patches(patches_dir, name, version), package=label)
    project = tree / build_dir if build_dir else tree
    if not project.is_dir():
        raise SourceError(f"{label}: build_dir {build_dir!r} is not a folder of the source tree")
    edit_build_requires(project, requires_add, requires_remove, package=label)
    return PreparedSource(name=str(name), version=str(version), sdist=sdist,
                          sdist_sha256=sdist_sha256, tree=tree, patches=patches,
                          project_dir=build_dir or "", source_date_epoch=epoch)


def edit_build_requires(project: Path, add: tuple[str, ...], remove: tuple[str, ...],
                        *, package: str) -> bool:
    """Edit [build-system] requires in the tree's pyproject.toml (see buildsystem.edit_requires).
    Returns True when the file changed."""
    if not add and not remove:
        return False
    path = project / "pyproject.toml"
    text = path.read_text(encoding="utf-8") if path.is_file() else None
    path.write_text(edit_requires(text, add, remove, package=package), encoding="utf-8")
    log.info("%s: build requires edited: +%s -%s", package, list(add), list(remove))
    return True


def make_readable(tree: Path) -> None:
    """Let the build's unprivileged user read the tree we unpacked (and vendored into): folders
    755, files readable by all. chmod does it in one process, without this one's interpreter
    lock (a file at a time here held back the run's other threads); it leaves links alone."""
    done = subprocess.run(["chmod", "-R", "a+rX,u+w,go-w,ug-s,o-t", str(tree)],
                          capture_output=True, text=True, errors="replace")
    if done.returncode != 0:
        raise OSError(f"chmod failed on {tree}: {done.stderr.strip()}")


def read_member(archive: Path, relative: str) -> bytes | None:
    """One file of an sdist, read without unpacking it (None if it has none)."""
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if name.split("/", 1)[-1] == relative and name.count("/") == relative.count("/") + 1:
                    return zf.read(name)
        return None
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.split("/", 1)[-1] == relative and \
                    member.name.count("/") == relative.count("/") + 1:
                return tar.extractfile(member).read()
    return None

"""Sources from an override: a release archive by URL, or a git tag, repacked as an sdist."""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from mirror_builder.errors import SourceError
from mirror_builder.prepare.sources import safe_unpack

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OverrideSource:
    """An sdist-like archive made from a source override, and where it came from."""

    archive: Path
    origin: dict


def sdist_from_url(url: str, sha256: str, name: str, version: str, *, download,
                   work_dir: Path, dest_dir: Path) -> OverrideSource:
    """Download a release archive, check its sha256, and repack it as <name>-<version>.tar.gz."""
    label = f"{name}=={version}"
    filename = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "source.tar.gz"
    fetched = download(url, filename, sha256, dest_dir)
    tree = safe_unpack(fetched, work_dir / f"override-{canonicalize_name(name)}-{version}")
    archive = repack_as_sdist(tree, name, version, dest_dir)
    log.info("%s: source from %s", label, url)
    return OverrideSource(archive, {"kind": "url", "url": url, "sha256": sha256,
                                    "filename": filename})


def sdist_from_git(repository: str, tag: str, name: str, version: str, *, dest_dir: Path,
                   work_dir: Path) -> OverrideSource:
    """Clone one tag (on the host: a preparation step, it runs no package code) and archive it."""
    clone = work_dir / f"git-{canonicalize_name(name)}-{version}"
    if clone.exists():
        shutil.rmtree(clone)
    proc = subprocess.run(["git", "clone", "--quiet", "--depth", "1", "--branch", tag,
                           repository, str(clone)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SourceError(f"{name}=={version}: cannot clone {repository} at {tag}: "
                          f"{proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
    commit = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    prefix = f"{canonicalize_name(name).replace('-', '_')}-{version}"
    dest_dir.mkdir(parents=True, exist_ok=True)
    archive = dest_dir / f"{prefix}.tar.gz"
    subprocess.run(["git", "-C", str(clone), "archive", "--format=tar.gz", f"--prefix={prefix}/",
                    "-o", str(archive), "HEAD"], check=True)
    shutil.rmtree(clone, ignore_errors=True)
    return OverrideSource(archive, {"kind": "git", "repository": repository, "tag": tag,
                                    "commit": commit})


def repack_as_sdist(tree: Path, name: str, version: str, dest_dir: Path) -> Path:
    """A deterministic tar.gz of tree named like an sdist: sorted members, fixed owner and time."""
    prefix = f"{canonicalize_name(name).replace('-', '_')}-{version}"
    dest_dir.mkdir(parents=True, exist_ok=True)
    archive = dest_dir / f"{prefix}.tar.gz"
    tmp = archive.with_name(f".{archive.name}.part")

    def normalize(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 315532800
        return info

    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
        for path in sorted(tree.rglob("*")):
            tar.add(path, arcname=f"{prefix}/{path.relative_to(tree)}", recursive=False,
                    filter=normalize)
    os.replace(tmp, archive)
    return archive

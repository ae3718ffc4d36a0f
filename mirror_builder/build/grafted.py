"""The shared libraries auditwheel grafted into a repaired wheel, for its build record."""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath


def grafted_libraries(original: Path, repaired: Path) -> list[str]:
    """The file names, sorted, of what the repaired wheel has and the original had not, outside
    its .dist-info: the libraries auditwheel copied in (into <name>.libs/, renamed with a hash
    of their content). Extensions it only patched (RPATH, NEEDED) were there before, so they are
    not listed. Raises zipfile.BadZipFile or OSError for a wheel that cannot be read."""
    before, after = _files(original), _files(repaired)
    return sorted({PurePosixPath(name).name for name in after - before
                   if not PurePosixPath(name).parts[0].endswith(".dist-info")})


def _files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {info.filename for info in archive.infolist() if not info.is_dir()}

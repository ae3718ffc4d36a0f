"""What the resolver reads: upstream's sdists (fetched on demand), or the wheels in our index."""

from __future__ import annotations

import fnmatch
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import pkginfo
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from mirror_builder.errors import PackageError, UpstreamError
from mirror_builder.index.wheelindex import WheelIndex
from mirror_builder.resolve.pages import file_version
from mirror_builder.resolve.resolver import Candidate, Finder
from mirror_builder.resolve.pages import DistributionFile
from mirror_builder.resolve.upstream import UpstreamIndex


class SourceFinder(Finder, Protocol):
    """A resolver Finder that can also fetch a candidate's sdist and learn built metadata."""

    known: dict[tuple[NormalizedName, Version], tuple[str, ...]]
    from_wheel: dict[tuple[NormalizedName, Version], str]

    def fetch(self, candidate: Candidate) -> Path: ...


class UpstreamFinder:
    """The resolver's view of upstream, preferring what our own builds have shown to be true.

    Install requirements come from upstream's metadata files or JSON API, else the sdist's
    PKG-INFO when reliable (PEP 643), else the METADATA of an upstream wheel of that version,
    read with range requests (the one that fits the target first): from_wheel names those.
    What upstream's metadata says is a prediction of our build's: the requirements an
    override says our build lacks (upstream_requires: ignore:) are left out of it."""

    def __init__(self, upstream: UpstreamIndex, sdist_dir: Path,
                 fits: Callable[[str], bool] = lambda filename: True,
                 ignored: Mapping[NormalizedName, tuple[str, ...]] | None = None) -> None:
        self.upstream = upstream
        self.sdist_dir = sdist_dir
        self.fits = fits
        # Per project: patterns of upstream's requirements our build does not have.
        self.ignored = dict(ignored or {})
        self.known: dict[tuple[NormalizedName, Version], tuple[str, ...]] = {}
        # (name, version) -> the upstream wheel whose METADATA gave its install requirements
        self.from_wheel: dict[tuple[NormalizedName, Version], str] = {}
        self._files: dict[str, list[DistributionFile]] = {}

    def project_files(self, name: str) -> list[DistributionFile]:
        key = canonicalize_name(name)
        if key not in self._files:
            self._files[key] = self.upstream.project_files(key)
        return self._files[key]

    def prefetch(self, names: Sequence[str], candidate: Candidate | None = None) -> None:
        """Warm upstream's answers on background threads (resolve.upstream's prefetch): the
        resolver asks for them in a moment, one at a time."""
        for name in names:
            key = canonicalize_name(name)
            if key not in self._files:
                self.upstream.prefetch(("page", key), lambda key=key: self.project_files(key))
        if candidate is not None and (candidate.name, candidate.version) not in self.known \
                and not candidate.file.url.startswith("file://"):
            self.upstream.prefetch(("requires", candidate.name, str(candidate.version)),
                                   lambda: self._upstream_requires(candidate))

    def _upstream_requires(self, candidate: Candidate) -> None:
        files = [f for f in self.project_files(candidate.name)
                 if file_version(f, candidate.name) == candidate.version]
        self.upstream.requires_dist(candidate.name, str(candidate.version), files)

    def dependencies(self, candidate: Candidate) -> list[str] | None:
        known = self.known.get((candidate.name, candidate.version))
        if known is not None:
            return list(known)
        if candidate.file.url.startswith("file://"):
            return self._sdist_requires(candidate)
        files = [f for f in self.project_files(candidate.name)
                 if file_version(f, candidate.name) == candidate.version]
        deps = self.upstream.requires_dist(candidate.name, str(candidate.version), files)
        if deps is None and candidate.file.is_sdist:
            deps = self._sdist_requires(candidate)
        if deps is None:
            # Wheels that fit the target first, then pure ones: Requires-Dist rarely differs
            # between a release's wheels, and markers are evaluated for the target anyway.
            wheels = sorted((f for f in files if f.is_wheel and not f.yanked),
                            key=lambda f: (not self.fits(f.filename),
                                           not f.filename.endswith("-none-any.whl")))
            found = self.upstream.wheel_requires_dist(wheels)
            if found is not None:
                deps, wheel = found
                self.from_wheel[(candidate.name, candidate.version)] = wheel.filename
        return self._without_ignored(candidate.name, deps)

    def _without_ignored(self, name: NormalizedName, deps: list[str] | None) -> list[str] | None:
        patterns = self.ignored.get(name)
        if not patterns or deps is None:
            return deps
        return [d for d in deps if not any(fnmatch.fnmatchcase(_name_of(d), p) for p in patterns)]


    def fetch(self, candidate: Candidate) -> Path:
        try:
            return self.upstream.download(candidate.file, self.sdist_dir)
        except UpstreamError as exc:
            # Reported as this package's failure, so the error names the package.
            raise PackageError(str(exc), package=candidate.name,
                               version=str(candidate.version)) from exc

    def _sdist_requires(self, candidate: Candidate) -> list[str] | None:
        """Requires-Dist from the sdist's PKG-INFO when reliable, remembered by the sdist's
        sha256 (reading it means unpacking the tarball up to PKG-INFO, on every run)."""
        sha256 = candidate.file.sha256
        key = f"sdist-requires:{sha256}"
        if sha256:
            known = self.upstream.cache.get(key, None)  # a file's content never changes
            if known is not None:
                return known["requires"]
        requires = self._read_sdist_requires(candidate)
        if sha256:
            self.upstream.cache.put(key, requires=requires)
        return requires

    def _read_sdist_requires(self, candidate: Candidate) -> list[str] | None:
        # PEP 643: an sdist's PKG-INFO is reliable from Metadata-Version 2.2 unless it marks
        # Requires-Dist as dynamic.
        try:
            sdist = pkginfo.SDist(str(self.fetch(candidate)))
        except (ValueError, OSError):
            return None
        if Version(sdist.metadata_version or "1.0") < Version("2.2"):
            return None
        if any(canonicalize_name(d) == "requires-dist" for d in (sdist.dynamic or ())):
            return None
        return list(sdist.requires_dist or ())



class IndexFinder:
    """The resolver's view of our own index: wheels we built, for rebuilds' build environments."""

    def __init__(self, index: WheelIndex, fits: Callable[[str], bool] = lambda filename: True) -> None:
        self.index = index
        self.fits = fits

    def project_files(self, name: str) -> list[DistributionFile]:
        wheels = sorted((w for w in self.index.wheels(name) if self.fits(w.filename)),
                        key=lambda w: w.build_tag, reverse=True)
        return [DistributionFile(w.filename, w.path.as_uri(), w.sha256, w.requires_python)
                for w in wheels]

    def dependencies(self, candidate: Candidate) -> list[str] | None:
        path = Path(urllib.parse.unquote(urllib.parse.urlparse(candidate.file.url).path))
        return list(pkginfo.Wheel(str(path)).requires_dist or ())


def _name_of(requirement: str) -> str:
    try:
        return canonicalize_name(Requirement(requirement).name)
    except InvalidRequirement:
        return ""  # kept, for the resolver to report

"""Fetch what a build starts from, as engine/decisions.choose_source says: the sdist from our
source archive or upstream, an override's archive or git tag, or upstream's pre-built wheel."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import parse_wheel_filename

from mirror_builder.config.overrides import PackageSettings
from mirror_builder.config.settings import Settings
from mirror_builder.errors import BuildError
from mirror_builder.files import sha256_of
from mirror_builder.index.wheelindex import WheelIndex
from mirror_builder.prepare.sources import PreparedSource
from mirror_builder.source.finders import SourceFinder
from mirror_builder.resolve.pages import file_version
from mirror_builder.resolve.resolver import Candidate
from mirror_builder.resolve.target import TargetEnvironment
from mirror_builder.resolve.pages import DistributionFile
from mirror_builder.source.choice import SourceChoice, choose_source
from mirror_builder.source.overrides import sdist_from_git, sdist_from_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchedSource:
    """The sdist to build, the candidate whose file describes it, and where it came from."""

    candidate: Candidate
    sdist: Path
    origin: dict


class SourceFetcher:
    def __init__(self, settings: Settings, finder: SourceFinder, index: WheelIndex,
                 work_dir: Path) -> None:
        self.settings = settings
        self.finder = finder
        self.index = index
        self.work_dir = work_dir

    def fetch(self, candidate: Candidate, package: PackageSettings) -> FetchedSource:
        """The archived or upstream sdist, or one made from the package's source override (then
        the candidate's file describes that archive)."""
        choice = choose_source(package, candidate)
        if choice.kind == "sdist":
            sdist = self.archived(candidate) or self.finder.fetch(candidate)
            return FetchedSource(candidate, sdist, {"kind": "sdist"})
        made_dir = self.settings.cache_dir / "override-sources" / candidate.name
        made = self._from_url(candidate, package, choice, made_dir) if choice.kind == "url" else \
            sdist_from_git(choice.repository, choice.tag, candidate.name, str(candidate.version),
                           dest_dir=made_dir, work_dir=self.work_dir / "src")
        sha256 = sha256_of(made.archive)
        if any(e["filename"] == made.archive.name and e["hashes"]["sha256"] != sha256
               for e in self.index.sources.entries(candidate.name)):
            log.warning("the override source differs from the archived one; using the new one")
        file = DistributionFile(made.archive.name, made.origin.get("url") or
                                made.origin.get("repository", ""), sha256)
        return FetchedSource(Candidate(candidate.name, candidate.version, file, candidate.extras),
                             made.archive, made.origin)

    def _from_url(self, candidate: Candidate, package: PackageSettings, choice: SourceChoice,
                  made_dir: Path):
        sha256 = package.source.sha256_for(candidate.version)
        if sha256 is None:
            raise BuildError(f"the source override has no sha256 for version "
                             f"{candidate.version} ({package.source_file})",
                             package=candidate.name, version=str(candidate.version))
        return sdist_from_url(choice.url, sha256, candidate.name, str(candidate.version),
                              download=self._download_url, work_dir=self.work_dir / "src",
                              dest_dir=made_dir)

    def _download_url(self, url: str, filename: str, sha256: str, dest_dir: Path) -> Path:
        return self.finder.upstream.download(DistributionFile(filename, url, sha256), dest_dir)

    def archived(self, candidate: Candidate) -> Path | None:
        """The sdist from our source archive, if it is there with the hash the index gave."""
        path = self.index.sources.layout.file(candidate.name, candidate.file.filename)
        if path.is_file() and candidate.file.sha256 and sha256_of(path) == candidate.file.sha256:
            return path
        return None

    def archive(self, source: PreparedSource, candidate: Candidate) -> None:
        """Keep the hash-checked sdist in the source archive (separate from the wheel index)."""
        archived = {e["filename"]: e for e in self.index.sources.entries(candidate.name)}
        entry = archived.get(source.sdist.name)
        if entry is None:
            self.index.sources.add(source.sdist)
        elif entry["hashes"]["sha256"] != source.sdist_sha256:
            raise BuildError(f"the source archive already holds a different {source.sdist.name} "
                             f"(sha256 {entry['hashes']['sha256']})", package=candidate.name,
                             version=str(candidate.version))

    def fitting_wheel(self, candidate: Candidate, target: TargetEnvironment
                      ) -> DistributionFile | None:
        return fitting_wheel(self.finder.project_files(candidate.name), candidate, target)

    def pre_built(self, candidate: Candidate, target: TargetEnvironment,
                  chain: tuple[str, ...]) -> tuple[DistributionFile, Path]:
        """pre_built (or gap-fill): the upstream wheel of this version that best fits the
        target, downloaded and hash-checked."""
        file = self.fitting_wheel(candidate, target)
        if file is None:
            raise BuildError("pre_built is set, but upstream has no wheel of this version for "
                             f"the target ({target.name})", package=candidate.name,
                             version=str(candidate.version), chain=chain)
        return file, self.finder.upstream.download(file, self.settings.cache_dir / "wheels")


def fitting_wheel(files: list[DistributionFile], candidate: Candidate,
                  target: TargetEnvironment) -> DistributionFile | None:
    """Of a project's upstream files, the wheel of candidate's version that best fits the
    target (not yanked), if any."""
    supported = {tag: rank for rank, tag in enumerate(target.supported_tags())}
    wheels = []
    for file in files:
        if file.is_wheel and not file.yanked and \
                file_version(file, candidate.name) == candidate.version:
            ranks = [supported[t] for t in parse_wheel_filename(file.filename)[3]
                     if t in supported]
            if ranks:
                wheels.append((min(ranks), file))
    return min(wheels, key=lambda pair: pair[0])[1] if wheels else None

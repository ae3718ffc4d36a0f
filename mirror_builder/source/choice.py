"""Where the build of one version starts from: the sdist, an override's archive or git tag, or
upstream's wheel (pre_built, or gap-fill's choice where upstream has a wheel that fits). `plan`
and the build ask this one function."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mirror_builder.config.overrides import PackageSettings, render
from mirror_builder.errors import SourceError
from mirror_builder.resolve.resolver import Candidate


@dataclass(frozen=True)
class SourceChoice:
    """Where the build of one version starts from."""

    kind: Literal["pre-built", "upstream-wheel", "url", "git", "sdist"]
    url: str = ""         # url: the release archive
    repository: str = ""  # git: the repository and the tag, rendered for the version
    tag: str = ""

    def describe(self) -> str:
        return {"pre-built": "pre-built upstream wheel (NOT from source)",
                "upstream-wheel": "upstream wheel, gap-fill (NOT from source)",
                "url": f"override: {self.url}",
                "git": f"override: {self.repository} @ {self.tag}",
                "sdist": "sdist"}[self.kind]


def choose_source(package: PackageSettings, candidate: Candidate,
                  upstream_wheel: bool = False) -> SourceChoice:
    """upstream_wheel: gap-fill is on and upstream has a wheel of this version that fits the
    target (see SourceFetcher.fitting_wheel), so nothing is built."""
    if package.pre_built:
        return SourceChoice("pre-built")
    if upstream_wheel:
        return SourceChoice("upstream-wheel")
    override = package.source
    if override is None:
        if candidate.file is not None and not candidate.file.is_sdist:
            raise SourceError(f"{candidate.pin}: upstream has no sdist of this version; give a "
                              f"source override or pre_built")
        return SourceChoice("sdist")
    if override.url:
        if override.sha256_for(candidate.version) is None:
            # Checked here, not only when fetching, so that plan and resolution pass over a
            # version the override cannot vouch for instead of choosing it.
            raise SourceError(f"the source override in "
                              f"{package.source_file or 'overrides'} gives no sha256 for this "
                              f"version; add one to build it")
        return SourceChoice("url", url=override.url_for(candidate.name, candidate.version))
    tag = render(override.tag or "", name=candidate.name, version=str(candidate.version))
    return SourceChoice("git", repository=override.git or "", tag=tag)

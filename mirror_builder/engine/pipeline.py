"""Wire the steps together for one command: podman, the target's image, upstream, the index."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName

from mirror_builder import __version__
from mirror_builder.engine.bootstrap import Bootstrapper, JobPolicy, Reporter, UpstreamFinder
from mirror_builder.build.builder import Builder
from mirror_builder.sandbox.containers import ImageManager, PodmanService
from mirror_builder.index.wheelindex import WheelIndex
from mirror_builder.provenance.store import RecordStore
from mirror_builder.jobs.review import ReviewQueue
from mirror_builder.resolve.resolver import Candidate
from mirror_builder.config.settings import Settings
from mirror_builder.index.smoketest import SmokeTester
from mirror_builder.resolve.target import TargetEnvironment
from mirror_builder.resolve.upstream import UpstreamIndex
from mirror_builder.prepare.vendoring import RustVendorer


@dataclass(frozen=True)
class RunOptions:
    output: Path
    target: str | None = None
    refresh: bool = False
    allow_prereleases: bool = False
    constraints: Mapping[NormalizedName, SpecifierSet] | None = None
    direct: Mapping[NormalizedName, Candidate] | None = None
    jobs: int | None = None
    keep_going: bool = False
    primary: bool = True  # the first target of a run writes the plain build-order.json
    manylinux: bool | None = None  # None: build.manylinux from settings
    job_policy: JobPolicy | None = None  # None: builds are jobs approved with a bootstrap
    review: bool = False  # a package we do not carry waits for review (update), or is approved


def upstream_for(settings: Settings, refresh: bool = False) -> UpstreamIndex:
    up = settings.upstream
    return UpstreamIndex(up.index_url, settings.cache_dir, json_api_url=up.json_api_url,
                         ttl=up.cache_ttl_seconds, timeout=up.timeout_seconds, retries=up.retries,
                         refresh=refresh, user_agent=f"mirror-builder/{__version__}")


@contextmanager
def open_pipeline(settings: Settings, options: RunOptions, reporter: Reporter,
                  on_image=lambda target_name: None) -> Iterator[tuple[Bootstrapper, UpstreamIndex]]:
    target_settings = settings.target(options.target)
    upstream = upstream_for(settings, options.refresh)
    index = WheelIndex(options.output)
    with PodmanService(settings.cache_dir / "state") as podman:
        images = ImageManager(podman, settings.cache_dir)
        on_image(target_settings.name)
        image = images.ensure(target_settings)
        target = TargetEnvironment(target_settings.name, images.marker_environment(image))
        builder = Builder(podman, settings.cache_dir / "state" / f"builder-{os.getpid()}")
        yield Bootstrapper(
            settings=settings, target=target, image=image,
            finder=UpstreamFinder(upstream, settings.cache_dir / "sdists"),
            builder=builder, index=index, records=RecordStore(options.output), reporter=reporter,
            constraints=options.constraints, direct=options.direct,
            allow_prereleases=options.allow_prereleases, jobs=options.jobs,
            keep_going=options.keep_going, primary=options.primary, manylinux=options.manylinux,
            image_for=images.with_system_packages,
            vendorer=RustVendorer(podman, image).vendor,
            job_policy=options.job_policy,
            review=ReviewQueue(options.output) if options.review else None,
            smoke_tester=SmokeTester(podman, builder.driver_dir,
                                     settings.cache_dir / "state" / f"smoke-{os.getpid()}")), upstream

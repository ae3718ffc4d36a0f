"""Wire the steps together for one command: podman, the target's image, upstream, the index."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from mirror_builder.files import remove_tree
from mirror_builder.build.executor import PodmanExecutor
from mirror_builder.build.suggest import FailureHints
from mirror_builder.config.executor import DaskSettings
from mirror_builder.config.overrides import upstream_requires_ignored
from mirror_builder.config.settings import Settings
from mirror_builder.engine.bootstrap import Bootstrapper
from mirror_builder.engine.context import BuildTarget, Options, Services
from mirror_builder.engine.model import Reporter
from mirror_builder.index.wheelindex import WheelIndex
from mirror_builder.jobs.review import ReviewQueue
from mirror_builder.provenance.signing import load_signer
from mirror_builder.prepare.vendoring import RustVendorer
from mirror_builder.engine.connect import upstream_for
from mirror_builder.source.finders import UpstreamFinder
from mirror_builder.resolve.target import TargetEnvironment
from mirror_builder.resolve.upstream import UpstreamIndex
from mirror_builder.sandbox.debcontents import contents_for
from mirror_builder.sandbox.diffoscope import PACKAGES as DIFFOSCOPE_PACKAGES, Diffoscope
from mirror_builder.sandbox.images import ImageManager
from mirror_builder.sandbox.podman import PodmanService


@dataclass(frozen=True)
class RunOptions:
    """One command's run: where to, for which target, and how (engine options)."""

    output: Path
    target: str | None = None
    refresh: bool = False  # ask the upstream index again instead of using cached answers
    engine: Options = field(default_factory=Options)
    review: bool = False  # a package we do not carry waits for review (update), or is approved
    # Builds on a Dask cluster's workers (settings' executor: dask, or --executor); None: here.
    cluster: DaskSettings | None = None


@contextmanager
def open_pipeline(settings: Settings, options: RunOptions, reporter: Reporter,
                  on_image=lambda target_name: None, podman: PodmanService | None = None
                  ) -> Iterator[tuple[Bootstrapper, UpstreamIndex]]:
    """podman: a service the caller started (and ends); None: one for this pipeline alone."""
    target_settings = settings.target(options.target)
    state = settings.cache_dir / "state" / f"run-{os.getpid()}"
    with ExitStack() as stack:
        # The run's own state (the driver's copy, job folders) goes with it, last.
        stack.callback(remove_tree, state)
        # Connecting to a cluster (importing Dask, starting the artifact store) overlaps with
        # starting podman and checking the image; the podman service starts listening while
        # the rest is set up.
        remote = None if options.cluster is None else stack.enter_context(
            _connecting(options.cluster, settings, reporter, state / "remote"))
        if podman is None:
            podman = stack.enter_context(PodmanService(settings.cache_dir / "state"))
        upstream = upstream_for(settings, options.refresh)
        # Loaded before anything runs: a missing or unusable key stops the run at once. Its
        # public key is published with the first statement (provenance/store.py).
        signer = None if settings.signing_key is None else load_signer(settings.signing_key)
        requires_ignored = upstream_requires_ignored(settings.overrides_dir)
        images = ImageManager(podman, settings.cache_dir)
        on_image(target_settings.name)
        image = images.ensure(target_settings)
        if remote is None:
            executor = PodmanExecutor(podman, state)
            stack.callback(executor.close)
        else:
            executor = remote.result()
            executor.check_image(image)
        target = BuildTarget(TargetEnvironment(target_settings.name,
                                               images.marker_environment(image)),
                             image, images.with_system_packages)
        services = Services(
            settings=settings, target=target,
            finder=UpstreamFinder(upstream, settings.cache_dir / "sdists",
                                  target.environment.fits,
                                  requires_ignored),
            executor=executor,
            index=WheelIndex(options.output), reporter=reporter,
            vendorer=RustVendorer(podman, image).vendor if remote is None else executor.vendor,
            hints=FailureHints(contents_for(settings, target_settings), settings.overrides_dir),
            signer=signer,
            differ=Diffoscope(podman, lambda: images.with_system_packages(
                image, DIFFOSCOPE_PACKAGES), state / "diffoscope"))
        engine = options.engine
        if options.review:
            engine = replace(engine, review=ReviewQueue(options.output))
        yield Bootstrapper(services, engine), upstream


@contextmanager
def _connecting(cluster: DaskSettings, settings: Settings, reporter: Reporter,
                work_dir: Path) -> Iterator[Future]:
    """A DaskExecutor being opened on a thread of its own; closed when the block ends, however
    it ends (result() raises what opening it raised)."""
    def connect():
        from mirror_builder.buildcache.store import BuildCache
        from mirror_builder.cluster.daskexecutor import DaskExecutor  # imports Dask: only here

        return DaskExecutor(cluster, BuildCache(settings.cache_dir / "builds"),
                            reporter.activity, work_dir).__enter__()

    with ThreadPoolExecutor(1, thread_name_prefix="connect") as pool:
        opening = pool.submit(connect)
        try:
            yield opening
        finally:
            if opening.exception() is None:
                opening.result().__exit__(None, None, None)

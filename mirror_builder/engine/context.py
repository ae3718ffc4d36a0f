"""What a run works with: its collaborators, its options, and the per-package settings."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName
from packaging.version import Version

from mirror_builder.build.request import Executor
from mirror_builder.config.overrides import PackageSettings, all_package_settings
from mirror_builder.config.plugins import load_plugins
from mirror_builder.config.settings import Settings
from mirror_builder.config.variants import package_settings_for
from mirror_builder.engine.model import Reporter
from mirror_builder.errors import BuildError, MirrorBuilderError
from mirror_builder.index.wheelindex import WheelIndex
from mirror_builder.jobs.policy import CarryRules
from mirror_builder.jobs.review import ReviewQueue
from mirror_builder.jobs.triggers import JobPolicy
from mirror_builder.provenance.buildkey import plugin_record
from mirror_builder.provenance.signing import Signer
from mirror_builder.provenance.store import RecordStore
from mirror_builder.source.finders import SourceFinder
from mirror_builder.resolve.resolver import Candidate
from mirror_builder.resolve.target import TargetEnvironment
from mirror_builder.sandbox.imagenames import ImageRef


class Vendorer(Protocol):
    """Fetches what a build would download (the crates of these Cargo manifests) while
    preparing the source."""

    def __call__(self, tree: Path, label: str, log_path: Path,
                 manifests: Sequence[Path] | None = None) -> list: ...


class FailureHints(Protocol):
    """A sentence for a failed build's error from its log (what it missed, which Debian
    packages have it), or None."""

    def __call__(self, log_path: Path, name: str, installed: tuple[str, ...]) -> str | None: ...


def _same_image(base: ImageRef, packages: tuple[str, ...]) -> ImageRef:
    return base


@dataclass(frozen=True)
class BuildTarget:
    """The target's marker environment and image; layers gives the image for a package that
    needs extra Debian packages (a cached layer on the image)."""

    environment: TargetEnvironment
    image: ImageRef
    layers: Callable[[ImageRef, tuple[str, ...]], ImageRef] = _same_image

    def image_for(self, package: PackageSettings) -> ImageRef:
        return self.layers(self.image, tuple(package.system_packages))


@dataclass(frozen=True)
class Services:
    """The collaborators of a run, made once per command (engine/pipeline.py)."""

    settings: Settings
    target: BuildTarget
    finder: SourceFinder
    executor: Executor
    index: WheelIndex
    reporter: Reporter
    vendorer: Vendorer | None = None
    hints: FailureHints | None = None
    signer: Signer | None = None  # signs the statements written (settings' signing:)
    # How two wheels differ, in detail (sandbox/diffoscope.py), for `verify`.
    differ: Callable[[Path, Path], str] | None = None

    @property
    def records(self) -> RecordStore:
        return RecordStore(self.index.layout, self.signer)


@dataclass(frozen=True)
class ResolveOptions:
    constraints: Mapping[NormalizedName, SpecifierSet] = field(default_factory=dict)
    direct: Mapping[NormalizedName, Candidate] = field(default_factory=dict)
    allow_prereleases: bool = False


@dataclass(frozen=True)
class Options:
    """How a run goes about its work."""

    resolve: ResolveOptions = field(default_factory=ResolveOptions)
    jobs: int | None = None  # builds at once (None: from settings, else from memory and cores)
    keep_going: bool = False  # a failing package stops only what needs it
    primary: bool = True  # the first target of a run also writes build-order.json, graph.json
    manylinux: bool | None = None  # None: build.manylinux from settings
    job_policy: JobPolicy | None = None  # None: builds are jobs approved with a bootstrap
    # Under review (update), a package we do not carry yet waits for a person's approval.
    review: ReviewQueue | None = None
    # Take wheels from the machine's build cache (CACHE_DIR/builds) when their build key
    # matches (new builds are kept there for every other output either way).
    build_cache: bool = True
    # Say at warning level why a version was not taken from the build cache.
    explain_rebuild: bool = False
    # Take upstream's wheel where one fits the target; build from source only the gaps.
    gap_fill: bool = False
    # Where to write the run's timeline (mirror_builder/timeline.py), if anywhere.
    timeline: Path | None = None


class Catalog:
    """Per-package settings, plugins and carry rules, read once and shared by a run's threads.
    The settings and plugins are those of the build variant the run works on (settings.variant)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._packages: dict[NormalizedName, PackageSettings] = {
            p.name: p.for_variant(settings.variant)
            for p in all_package_settings(settings.overrides_dir, settings.variant_names)}
        # Their source comes from an override or they are taken pre-built: any upstream file
        # names a usable version.
        self.any_file = frozenset(name for name, p in self._packages.items()
                                  if p.source is not None or p.pre_built)
        self.plugins = load_plugins(settings.overrides_dir, settings.variant)
        self.carry_rules = CarryRules.load(settings.carry)
        self._lock = threading.Lock()

    def package(self, name: NormalizedName) -> PackageSettings:
        with self._lock:
            if name not in self._packages:
                self._packages[name] = package_settings_for(self.settings, name)
            return self._packages[name]

    def reasons_for(self, name: NormalizedName, version: Version) -> tuple[str, ...]:
        """The changelog entries that call for numbered rebuilds of this version."""
        return self.package(name).reasons_for(version)

    def plugin_record(self, name: NormalizedName) -> dict | None:
        return plugin_record(self.plugins, name)

    def hook(self, candidate: Candidate, hook: str, context: Callable[[], object]):
        """Call the package's plugin hook, if it has one; its failure is the package's."""
        plugin = self.plugins.get(candidate.name)
        if plugin is None or hook not in plugin.hooks:
            return None
        try:
            return plugin.call(hook, context())
        except MirrorBuilderError:
            raise
        except Exception as exc:  # the plugin's own failure, whatever it is
            raise BuildError(f"plugin {plugin.origin}: {hook} failed: {type(exc).__name__}: {exc}",
                             package=candidate.name, version=str(candidate.version)) from None

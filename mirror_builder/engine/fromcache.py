"""Take a version's wheel from the machine's build cache instead of building it, when an entry's
build key matches what building now would make.

The entry's record is checked as the output's own records are (engine/reuse.py what_changed:
the same sdist, patches, overrides, plugin, image and exact build-environment wheels), and its
build key recomputed from it; its wheel is checked against its digest as it is taken out. The
wheel then goes through the same smoke test as a fresh build before it is published, and its
record says where it came from (`from_cache`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pkginfo

from mirror_builder.build.smoketest import top_level_modules
from mirror_builder.buildcache.store import BuildCache, CacheEntry, CorruptEntry, key_matches
from mirror_builder.engine.model import BuiltWheel
from mirror_builder.index.publisher import Staged
from mirror_builder.resolve.resolver import Candidate

if TYPE_CHECKING:
    from mirror_builder.engine.run import BootstrapRun

log = logging.getLogger(__name__)


class FromCache:
    def __init__(self, run: BootstrapRun, cache: BuildCache | None) -> None:
        self.run = run
        self.cache = cache

    def take(self, candidate: Candidate, chain: tuple[str, ...], earlier: list[dict],
             wanted: int) -> BuiltWheel | None:
        """The cached wheel of candidate, staged for publishing, or None: build it."""
        if self.cache is None:
            return None
        run = self.run
        # Never below a number this output already has: its index would shadow the entry.
        highest = max((r["rebuild"]["number"] for r in earlier), default=-1)
        nearest: tuple[CacheEntry, str] | None = None
        for entry in self.cache.entries_for(candidate.name, candidate.version):
            number = entry.record.get("rebuild", {}).get("number", 0)
            if not run.target.fits(entry.wheel) or number < wanted or number <= highest:
                continue
            if not key_matches(entry):
                self.cache.drop(entry, "its build key does not match its record")
                continue
            changed = run.reuse.what_changed(candidate, entry.record, chain)
            if changed is not None:
                nearest = nearest or (entry, changed)
                continue
            try:
                return self._publish(candidate, entry, chain)
            except CorruptEntry as exc:
                self.cache.drop(entry, f"{exc}; building instead")
        if nearest is not None:
            entry, changed = nearest
            (log.warning if run.options.explain_rebuild else log.info)(
                "%s: not taken from the build cache: %s since %s was %s", candidate.pin, changed,
                entry.wheel, entry.describe())
        elif run.options.explain_rebuild:
            log.warning("%s: the build cache has no build of this version for %s",
                        candidate.pin, run.target.name)
        return None

    def store(self, staged: Staged, published) -> None:
        """Keep a freshly built and published wheel for every output on the machine."""
        if self.cache is None or "from_cache" in staged.record or \
                not staged.record.get("build_key"):
            return
        run = self.run
        try:
            self.cache.put(staged.record, published,
                           run.records.log_path(staged.name, published.name),
                           run.index.layout.root)
        except (OSError, CorruptEntry) as exc:
            log.warning("%s: not kept in the build cache: %s", staged.pin, exc)

    def _publish(self, candidate: Candidate, entry: CacheEntry,
                 chain: tuple[str, ...]) -> BuiltWheel:
        run = self.run
        folder = run.work_dir / "from-cache" / entry.build_key[:16]
        wheel = self.cache.take_wheel(entry, folder)
        log_path = self.cache.take_log(entry, folder / "build.log") or folder / "build.log"
        if not log_path.is_file():
            log_path.write_text(f"{entry.wheel}: taken from the build cache; no log was kept\n")
        package = run.catalog.package(candidate.name)
        metadata = pkginfo.Wheel(str(wheel))
        record = entry.record | {"from_cache": {
            "build_key": entry.build_key, "built_at": entry.built_at, "output": entry.output}}
        log.info("%s: reused from the cache (%s)", candidate.pin, entry.describe())
        staged = Staged(
            name=candidate.name, version=str(candidate.version), chain=chain, wheel=wheel,
            record=record, requires_python=metadata.requires_python,
            requires_dist=tuple(metadata.requires_dist or ()), log_path=log_path,
            image=run.services.target.image_for(package),
            imports=(top_level_modules(wheel) if package.smoke_test is True
                     else None if package.smoke_test is False else package.smoke_test),
            publish_source=lambda: self._archive_source(candidate), extras=candidate.extras)
        built = run.finish(candidate, wheel, "cached", 0.0, chain, note=entry.describe())
        run.publisher.submit(staged)
        return built

    def _archive_source(self, candidate: Candidate) -> None:
        """The output's source archive keeps the sdist, as after a build of its own."""
        run = self.run
        if not candidate.file or not candidate.file.is_sdist or candidate.file.filename in {
                e["filename"] for e in run.index.sources.entries(candidate.name)}:
            return
        package = run.catalog.package(candidate.name)
        if package.source is not None:
            return  # an override's archive is made when built; the record names its origin
        fetched = run.fetcher.fetch(candidate, package)
        run.index.sources.add(fetched.sdist)

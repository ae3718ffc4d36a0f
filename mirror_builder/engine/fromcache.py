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
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pkginfo

from mirror_builder.build.smoketest import smoke_imports
from mirror_builder import __version__
from mirror_builder.buildcache.remote import RemoteCache
from mirror_builder.buildcache.store import (BuildCache, CacheEntry, CorruptEntry, key_matches,
                                             record_has_key)
from mirror_builder.engine.model import BuiltWheel
from mirror_builder.index.publisher import Staged
from mirror_builder.resolve.resolver import Candidate
from mirror_builder.resolve.transport import Transport

if TYPE_CHECKING:
    from mirror_builder.engine.run import BootstrapRun

log = logging.getLogger(__name__)


class FromCache:
    def __init__(self, run: BootstrapRun, cache: BuildCache | None, take: bool = True) -> None:
        self.run = run
        self.cache = cache
        # False (--no-build-cache): build anyway, but still keep the builds for other outputs.
        self.taking = take
        up = run.settings.upstream
        # A cache is an optimisation: one that is slow or down is passed over, not waited for.
        transport = Transport(timeout=min(up.timeout_seconds, 30), retries=1, backoff_seconds=0.5,
                              user_agent=f"mirror-builder/{__version__}")
        self.sources = [RemoteCache(url, transport) for url in run.settings.build_cache.sources]

    def take(self, candidate: Candidate, chain: tuple[str, ...], earlier: list[dict],
             wanted: int) -> BuiltWheel | None:
        """The cached wheel of candidate, staged for publishing, or None: build it."""
        if self.cache is None or not self.taking:
            return None
        run = self.run
        nearest: tuple[CacheEntry, str] | None = None
        for entry in self.cache.entries_for(candidate.name, candidate.version):
            if not self._usable(entry.wheel, entry.record, earlier, wanted):
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
        for source in self.sources:
            entry = self._from_source(source, candidate, chain, earlier, wanted)
            if entry is not None:
                return self._publish(candidate, entry, chain)
        if nearest is not None:
            entry, changed = nearest
            (log.warning if run.options.explain_rebuild else log.info)(
                "%s: not taken from the build cache: %s since %s was %s", candidate.pin, changed,
                entry.wheel, entry.describe())
        elif run.options.explain_rebuild:
            log.warning("%s: the build cache has no build of this version for %s",
                        candidate.pin, run.target.name)
        return None

    def _usable(self, wheel: str, record: dict, earlier: list[dict], wanted: int) -> bool:
        """Whether a build's wheel fits this run's target and is numbered as a build here would
        be: a first build's number (0, or its changelog's) in an output without the version,
        else the next one; by this output's numbering (a .postN wheel would break pins)."""
        rebuild = record.get("rebuild", {})
        expected = self.run.reuse.number_due(earlier, wanted)
        # A wheel stamped by a mirror-builder from before wheels carried an SBOM is built
        # again rather than published without one.
        made_before_sboms = record.get("built_from_source", True) and "sbom" not in record
        return self.run.target.fits(wheel) and rebuild.get("number") == expected and (
            expected == 0 or rebuild.get("numbering") == self.run.settings.rebuild_numbering) \
            and not made_before_sboms

    def _from_source(self, source: RemoteCache, candidate: Candidate, chain: tuple[str, ...],
                     earlier: list[dict], wanted: int) -> CacheEntry | None:
        """An entry of another machine's cache, checked as our own are and stored in ours."""
        run = self.run
        for remote in source.entries_for(candidate.name, candidate.version):
            data, record = remote.data, remote.data["record"]
            wheel_name = str(data.get("wheel", ""))
            if not self._usable(wheel_name, record, earlier, wanted):
                continue
            if not record_has_key(record, remote.build_key) or \
                    data.get("wheel_sha256") != record.get("wheel_sha256"):
                log.warning("%s: %s's entry %s... does not make its own build key; not taken",
                            candidate.pin, source.url, remote.build_key[:12])
                continue
            changed = run.reuse.what_changed(candidate, record, chain)
            if changed is not None:
                log.info("%s: not taken from %s: %s", candidate.pin, source.url, changed)
                continue
            folder = run.work_dir / "from-remote-cache" / remote.build_key[:16]
            wheel = source.fetch_blob(record["wheel_sha256"], folder / os.path.basename(wheel_name))
            if wheel is None:
                continue
            log_digest = data.get("log_sha256")
            log_file = source.fetch_blob(log_digest, folder / "build.log") if log_digest else None
            return self.cache.put(record, wheel, log_file,
                                  f"{data.get('output', '?')} (from {source.url})")
        return None

    @contextmanager
    def claim(self, candidate: Candidate) -> Iterator[bool]:
        """While this run builds candidate, another run (another output) that needs it waits
        and then takes it from the cache. Yields whether this one waited for another."""
        run = self.run
        if self.cache is None or not self.taking:
            yield False
            return

        def waiting() -> None:
            log.info("%s: another run is building it; waiting to take it from the build cache",
                     candidate.pin)
            run.reporter.activity(candidate.pin, "waiting for another run building it")

        with self.cache.claim(f"{candidate.name}-{candidate.version}-{run.target.name}",
                              run.settings.build.timeout_seconds, waiting,
                              run.tasks.stopping.is_set) as waited:
            yield waited

    def store(self, staged: Staged) -> None:
        """Keep a fresh build for every output on the machine, as soon as it is staged (its
        smoke test, in each output, comes before publishing there)."""
        if self.cache is None or "from_cache" in staged.record or \
                not staged.record.get("build_key"):
            return
        try:
            self.cache.put(staged.record, staged.wheel, staged.log_path,
                           self.run.index.layout.root)
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
            imports=smoke_imports(package.smoke_test, wheel),
            publish_source=lambda: self._archive_source(candidate), extras=candidate.extras)
        # A job like a build's: it ends when the wheel is published (or kept out) here.
        run.start_job(candidate, chain, None)
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

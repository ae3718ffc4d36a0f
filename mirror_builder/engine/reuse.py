"""Whether a version in the index can be reused, and the rebuild number a new build gets."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pkginfo
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from mirror_builder.engine.decisions import REPAIR_TOOLS
from mirror_builder.errors import RebuildError
from mirror_builder.provenance.buildkey import local_config_change
from mirror_builder.provenance.stamp import rebuilt_version
from mirror_builder.resolve.resolver import Candidate

if TYPE_CHECKING:
    from mirror_builder.engine.run import BootstrapRun


class Reuse:
    def __init__(self, run: BootstrapRun) -> None:
        self.run = run

    def earlier_builds(self, candidate: Candidate) -> list[dict]:
        """Records of this version whose wheels are in the index and fit the target, newest
        rebuild first. In our index a post-release rebuild's wheel version (1.0.post1) stands
        for its upstream 1.0."""
        run = self.run
        found = [r for r in run.records.for_version(candidate.name, candidate.version)
                 if run.index.is_listed(candidate.name, r["wheel"]) and run.target.fits(r["wheel"])]
        if not found and candidate.file.is_wheel:
            record = run.records.read(candidate.name, candidate.file.filename)
            if record is not None:
                found = [record]
        return found

    def what_changed(self, candidate: Candidate, record: dict, chain: tuple[str, ...]) -> str | None:
        """Why the wheel recorded by record is not what building now would make, or None when
        its build key still holds: the same sdist, patches, package settings and plugin, image,
        target, and the exact wheels of its build environment."""
        if record.get("build_key") is None:
            return None  # recorded before build keys existed: trust it
        run = self.run
        package = run.catalog.package(candidate.name)
        source = record["source"]
        if package.source is None and candidate.file.is_sdist and candidate.file.sha256 and \
                source.get("origin", {}).get("kind", "sdist") == "sdist" and \
                source["sha256"] != candidate.file.sha256:
            return "the sdist's sha256 changed"
        changed = self.config_change(candidate.name, candidate.version, record)
        if changed is not None or record["target"]["name"] != run.target.name:
            # (Built for another target, and its tags fit this one (a pure wheel, say): shared,
            # not built again per target; its record says where it was built.)
            return changed
        return self._environment_change(candidate, record, chain)

    def _environment_change(self, candidate: Candidate, record: dict,
                            chain: tuple[str, ...]) -> str | None:
        """Resolve the build environment as a build would, and compare the exact wheels: the
        static requirements' closure, and when the record's wheels are more than that (the
        backend asked for more), the closure with the backend's requirements too."""
        run = self.run
        pin = candidate.pin
        recorded = {w["filename"]: w["sha256"] for w in record["build_env"]["wheels"]}
        static = [Requirement(r) for r in record["build_system"]["requires"]]
        env = run.closure(static, parent=pin, kind="build-system", context=chain + (pin,))
        found = self._env_wheels(env)
        dynamic = [Requirement(r) for r in record.get("backend_requires") or ()]
        if found != recorded and dynamic and set(recorded) - set(found):
            env = run.closure(static + dynamic, parent=pin, kind="build-backend",
                              context=chain + (pin,),
                              preferred={n: c.version for n, c in env.pins.items()})
            found = self._env_wheels(env)
        for filename, sha256 in sorted(found.items()):
            if recorded.get(filename) != sha256:
                return f"its build environment changed ({filename})"
        for filename in sorted(set(recorded) - set(found)):
            return f"its build environment changed ({filename} is no longer in it)"
        return self._repair_tools_change(candidate, record, chain)

    def _repair_tools_change(self, candidate: Candidate, record: dict,
                             chain: tuple[str, ...]) -> str | None:
        """The repair tools (part of the build key) resolved as the repair resolves them, and
        compared exactly: they are in this output then, as after a repair of its own."""
        repair = record.get("repair")
        if not repair or not repair.get("tools"):
            return None
        run = self.run
        tools = run.closure(list(REPAIR_TOOLS), parent=candidate.pin, kind="repair",
                            context=chain + (candidate.pin,))
        recorded = {w["filename"]: w["sha256"] for w in repair["tools"]}
        if self._env_wheels(tools) != recorded:
            return "its repair tools changed"
        return None

    def _env_wheels(self, env) -> dict[str, str]:
        done = self.run.done
        return {done[(m.name, m.version)].path.name: done[(m.name, m.version)].sha256
                for m in env}

    def config_change(self, name: NormalizedName, version: Version, record: dict) -> str | None:
        """What changed in how we build this package (its patches, overrides, plugin, repair
        setting or image) since record's build, or None. Local and cheap: no resolution."""
        run = self.run
        package = run.catalog.package(name)
        changed = local_config_change(run.settings, package, run.catalog.plugins, version, record)
        if changed is not None:
            return changed
        if bool(record.get("repair")) != run.packages.repairs(name, record["wheel"]):
            return "the manylinux repair setting changed"
        if record["target"]["name"] == run.target.name and \
                record["image"]["id"] != run.services.target.image_for(package).id:
            return "the build image changed"
        return None

    @staticmethod
    def number_due(earlier: list[dict], wanted: int) -> int:
        """The rebuild number a new build of a version gets in this output: a first build's
        (0, or as many as its changelog's reasons), else one past the highest it has."""
        if not earlier:
            return wanted
        return max(max(r["rebuild"]["number"] for r in earlier) + 1, wanted)

    def next_number(self, candidate: Candidate, earlier: list[dict], force: bool) -> int:
        run = self.run
        highest = max((r["rebuild"]["number"] for r in earlier), default=0)
        wanted = len(run.catalog.reasons_for(candidate.name, candidate.version))
        numbering = run.settings.rebuild_numbering
        # Check that the number can be used before handing one out.
        rebuilt_version(candidate.version, highest + 1, numbering)
        if numbering == "post-release" and not force:
            self._refuse_breaking_pins(candidate, highest + 1)
        return run.counter.reserve(candidate.name, candidate.version, max(highest + 1, wanted))

    def _refuse_breaking_pins(self, candidate: Candidate, number: int) -> None:
        index = self.run.index
        new_version = rebuilt_version(candidate.version, number, "post-release")
        broken = []
        for project in index.projects():
            for wheel in index.wheels(project):
                for text in pkginfo.Wheel(str(wheel.path)).requires_dist or ():
                    req = Requirement(text)
                    if canonicalize_name(req.name) == candidate.name and \
                            req.specifier.contains(candidate.version, prereleases=True) and \
                            not req.specifier.contains(new_version, prereleases=True):
                        broken.append(f"{wheel.filename} requires {req}")
        if broken:
            raise RebuildError(
                f"a post-release rebuild would be {new_version}, which these wheels in the index "
                f"do not accept: {'; '.join(sorted(set(broken)))}. Use rebuild_numbering: "
                f"build-tag, or --force", package=candidate.name, version=str(candidate.version))

"""What makes two builds of a version the same: the build key, and what changed since a record."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from packaging.version import Version

from mirror_builder.config.overrides import PackageSettings
from mirror_builder.config.settings import Settings
from mirror_builder.files import sha256_of
from mirror_builder.prepare.sources import find_patches
from mirror_builder.provenance.record import BuildRecord


def build_key(record: BuildRecord) -> str:
    """The same sdist, patches, package settings and plugin, image, target, and the exact wheels
    of the build environment (and of the repair) make the same key."""
    return build_key_of_dict(as_json(record.to_dict()))


def build_key_of_dict(record: dict) -> str:
    """build_key() of a record read back from JSON (a cache entry's, another output's)."""
    repair = record.get("repair")
    parts = {"source": record["source"]["sha256"], "patches": record["patches"],
             "package": record["settings"]["package"], "plugin": record["settings"].get("plugin"),
             "image": record["image"]["id"], "target": record["target"]["name"],
             "build_env": sorted(w["sha256"] for w in record["build_env"]["wheels"]),
             "repair": [w["sha256"] for w in repair["tools"]] if repair else None}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def plugin_record(plugins: Mapping, name: str) -> dict | None:
    plugin = plugins.get(name)
    if plugin is None:
        return None
    path = Path(plugin.origin)
    return {"origin": plugin.origin, "hooks": sorted(plugin.hooks),
            "sha256": sha256_of(path) if path.is_file() else None}


def local_config_change(settings: Settings, package: PackageSettings, plugins: Mapping,
                        version: Version, record: dict) -> str | None:
    """What changed in the files that say how a package is built (patches, its overrides, its
    plugin, its target's Containerfile) since record's build; no podman needed."""
    patches = [{"name": str(p.relative_to(p.parent.parent)), "sha256": sha256_of(p)}
               for p in find_patches(settings.patches_dir, package.name, version)]
    if patches != record["patches"]:
        return "its patches changed"
    if overrides_changed(record["settings"]["package"], package):
        return "its overrides changed"
    if record["settings"].get("plugin") != as_json(plugin_record(plugins, package.name)):
        return "its plugin changed"
    target = next((t for t in settings.targets if t.name == record["target"]["name"]), None)
    if target is not None and target.containerfile.is_file() and \
            sha256_of(target.containerfile) != record["image"].get("containerfile_sha256"):
        return "its image's Containerfile changed"
    return None


def overrides_changed(recorded: dict, package: PackageSettings) -> bool:
    """Whether the package's overrides differ from those a record was built with. A key the
    record does not have, at its default now, is no change: a setting added to mirror-builder
    must not rebuild every package built before it existed."""
    now = as_json(package.as_dict())
    defaults = as_json(PackageSettings(package.name).as_dict())
    now = {key: value for key, value in now.items()
           if key in recorded or value != defaults.get(key)}
    return recorded != now


def as_json(value):
    """value as it reads back from a JSON record (tuples become lists, and so on)."""
    return json.loads(json.dumps(value))

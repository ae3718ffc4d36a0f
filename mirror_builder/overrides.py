"""Per-package settings: overrides/<canonical-name>.yaml, validated on load.

Known keys:
  changelog: {version: [reason, ...]}   each reason raises that version's rebuild number, so a
                                        bootstrap after a change rebuilds with a new number.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

import yaml

from mirror_builder.settings import YamlReader, read_yaml


@dataclass(frozen=True)
class PackageSettings:
    name: NormalizedName
    source: Path | None = None
    changelog: dict[Version, tuple[str, ...]] = field(default_factory=dict)

    def reasons_for(self, version: Version) -> tuple[str, ...]:
        return self.changelog.get(version, ())

    def as_dict(self) -> dict:
        return {"changelog": {str(v): list(r) for v, r in sorted(self.changelog.items())}}

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()


def load_package_settings(overrides_dir: Path, name: str) -> PackageSettings:
    canonical = canonicalize_name(name)
    path = overrides_dir / f"{canonical}.yaml"
    if not path.is_file():
        return PackageSettings(canonical)
    reader, data = read_yaml(path)
    top = reader.mapping(data, (), {"changelog"})
    return PackageSettings(canonical, path, _changelog(reader, top.get("changelog")))


def _changelog(reader: YamlReader, data: object) -> dict[Version, tuple[str, ...]]:
    if data is None:
        return {}
    node = reader.nodes.get(("changelog",))
    if node is None:
        raise reader.fail(("changelog",), "expected a mapping of version to reasons")
    changelog: dict[Version, tuple[str, ...]] = {}
    # Read from the YAML nodes, so a key is the version as written: unquoted 1.10 is 1.10 here,
    # not the float 1.1.
    for key_node, value_node in node.value:
        key = ("changelog", str(key_node.value))
        try:
            version = Version(str(key_node.value))
        except InvalidVersion:
            raise reader.fail(key, f"{key_node.value!r} is not a version") from None
        if version in changelog:
            raise reader.fail(key, f"version {version} appears twice in the changelog")
        if isinstance(value_node, yaml.ScalarNode) and value_node.tag.endswith(":str"):
            items = [value_node]
        elif isinstance(value_node, yaml.SequenceNode):
            items = value_node.value
        else:
            raise reader.fail(key, "expected a list of reasons (strings)")
        reasons = []
        for item in items:
            if not isinstance(item, yaml.ScalarNode) or not item.tag.endswith(":str") or not item.value:
                raise reader.fail(key, "expected a list of reasons (strings)")
            reasons.append(item.value)
        changelog[version] = tuple(reasons)
    return changelog

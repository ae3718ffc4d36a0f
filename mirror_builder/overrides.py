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

from mirror_builder.settings import read_yaml


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
    changelog: dict[Version, tuple[str, ...]] = {}
    raw = reader.mapping(top.get("changelog"), ("changelog",), _AnyKey())
    for version_text, reasons in raw.items():
        key = ("changelog", str(version_text))
        try:
            version = Version(str(version_text))
        except InvalidVersion:
            raise reader.fail(key, f"{version_text!r} is not a version") from None
        if isinstance(reasons, str):
            reasons = [reasons]
        if not isinstance(reasons, list) or not all(isinstance(r, str) and r for r in reasons):
            raise reader.fail(key, "expected a list of reasons (strings)")
        changelog[version] = tuple(reasons)
    return PackageSettings(canonical, path, changelog)


class _AnyKey(set):
    """An 'allowed keys' set that allows every key (for mappings keyed by version)."""

    def __contains__(self, item: object) -> bool:
        return True

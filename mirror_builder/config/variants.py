"""Build variants (cpu, cuda, rocm, ...): their names in settings.yaml, a package's delta in one.

settings.yaml declares the variants (`variants: {cpu: {description: ...}, cuda: {}}`; absent:
one, cpu); the first is the default. An override file's `variants: {NAME: {...}}` holds what that
package does differently in one variant, on top of its own settings (VariantDelta.apply_to):

  env, config_settings   merged; the variant's keys win
  system_packages        added (no duplicates, order kept)
  build_requires         its add and remove added (a name the variant adds is no longer removed,
                         a requirement on a name it removes is no longer added)
  source, pre_built      replaced

A package without a delta for a variant has exactly its own settings in it, so its build key is
the same in every variant and one wheel serves them all; a package whose settings differ between
variants is built once per variant.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if TYPE_CHECKING:
    from mirror_builder.config.overrides import PackageSettings
    from mirror_builder.config.settings import Settings
    from mirror_builder.config.yamlfile import YamlReader

DEFAULT_VARIANT = "cpu"
# A variant's name is also a folder name (OUTPUT/variants/<name>/) and a URL path segment.
VARIANT_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
_NAME_RULE = "lower-case letters, digits and . _ - , starting with a letter or digit (e.g. cu128)"
# The keys a package's override may set per variant.
VARIANT_KEYS = frozenset({"env", "system_packages", "source", "pre_built", "build_requires",
                          "config_settings"})


@dataclass(frozen=True)
class VariantSettings:
    """One variant settings.yaml declares."""

    name: str
    description: str = ""


def read_variants(reader: YamlReader, top: dict[str, Any]) -> tuple[VariantSettings, ...]:
    """settings.yaml's variants:, validated; absent means the one default variant, cpu."""
    raw = top.get("variants")
    if raw is None:
        return (VariantSettings(DEFAULT_VARIANT),)
    if not isinstance(raw, dict) or not raw:
        raise reader.fail(("variants",), "expected a non-empty mapping of variant name to its "
                                         "settings, e.g. {cpu: {}, cuda: {description: ...}}")
    found = []
    for name, body in raw.items():
        key = ("variants", str(name))
        if not isinstance(name, str) or not VARIANT_NAME.fullmatch(name):
            raise reader.fail(key, f"{name!r} is not a variant name: {_NAME_RULE}")
        body = reader.mapping(body, key, {"description"})
        found.append(VariantSettings(name, reader.value(body, key + ("description",), str, "")))
    return tuple(found)


@dataclass(frozen=True)
class VariantDelta:
    """What one package does differently in one variant: the keys given, read as the package's
    own settings are (so they are validated the same way)."""

    settings: PackageSettings
    given: frozenset[str]

    def apply_to(self, package: PackageSettings) -> PackageSettings:
        """The package's effective settings in this variant."""
        own = self.settings
        changes: dict[str, Any] = {}
        if "env" in self.given:
            changes["env"] = package.env | own.env
        if "config_settings" in self.given:
            changes["config_settings"] = package.config_settings | own.config_settings
        if "system_packages" in self.given:
            changes["system_packages"] = tuple(dict.fromkeys(package.system_packages
                                                             + own.system_packages))
        if "build_requires" in self.given:
            added = {canonicalize_name(Requirement(r).name) for r in own.build_requires_add}
            changes["build_requires_add"] = tuple(dict.fromkeys(
                [r for r in package.build_requires_add
                 if canonicalize_name(Requirement(r).name) not in own.build_requires_remove]
                + list(own.build_requires_add)))
            changes["build_requires_remove"] = tuple(dict.fromkeys(
                [n for n in package.build_requires_remove if n not in added]
                + list(own.build_requires_remove)))
        if "source" in self.given:
            changes["source"] = own.source
        if "pre_built" in self.given:
            changes["pre_built"] = own.pre_built
        return replace(package, **changes)

    def describe(self) -> str:
        """The delta in one line, for plan: "env USE_CUDA=1; system_packages +libfoo-dev"."""
        own, parts = self.settings, []
        if own.env:
            parts.append("env " + ", ".join(f"{k}={v}" for k, v in own.env.items()))
        if own.config_settings:
            parts.append("config_settings " + ", ".join(f"{k}={v}" for k, v in
                                                        own.config_settings.items()))
        if own.system_packages:
            parts.append("system_packages " + " ".join(f"+{p}" for p in own.system_packages))
        if own.build_requires_add or own.build_requires_remove:
            parts.append("build_requires " + " ".join(
                [f"+{r}" for r in own.build_requires_add]
                + [f"-{n}" for n in own.build_requires_remove]))
        if "source" in self.given and own.source is not None:
            parts.append(f"source {own.source.url or own.source.git}")
        if "pre_built" in self.given:
            parts.append(f"pre_built {str(own.pre_built).lower()}")
        return "; ".join(parts) or "nothing"


def read_deltas(reader: YamlReader, top: dict[str, Any], declared: Sequence[str] | None,
                read_package: Callable[[YamlReader, dict[str, Any]], PackageSettings]
                ) -> dict[str, VariantDelta]:
    """An override file's variants:, each body read by read_package (the reader of a package's
    own keys) under its own key path, so an error names variants.NAME.KEY. With declared (the
    variants settings.yaml declares), a variant it does not declare is an error."""
    raw = top.get("variants")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise reader.fail(("variants",), "expected a mapping of variant name to its settings")
    deltas = {}
    for name, body in raw.items():
        key = ("variants", str(name))
        if not isinstance(name, str) or not VARIANT_NAME.fullmatch(name):
            raise reader.fail(key, f"{name!r} is not a variant name: {_NAME_RULE}")
        if declared is not None and name not in declared:
            raise reader.fail(key, f"settings.yaml declares no variant {name!r} (declared: "
                                   f"{', '.join(declared)})")
        body = reader.mapping(body, key, set(VARIANT_KEYS))
        deltas[name] = VariantDelta(read_package(reader.scoped(key), body), frozenset(body))
    return deltas


def package_settings_for(settings: Settings, name: str) -> PackageSettings:
    """A package's effective settings in the variant settings work on (settings.variant)."""
    # Imported here: overrides.py imports this module for VariantDelta.
    from mirror_builder.config.overrides import load_package_settings

    return load_package_settings(settings.overrides_dir, name,
                                 settings.variant_names).for_variant(settings.variant)


def built_per_variant(package: PackageSettings, declared: Sequence[str]) -> bool:
    """Whether the package (as loaded, with its deltas) is built differently in some declared
    variant than in another: then each variant builds its own wheel."""
    first = package.for_variant(declared[0]).as_dict()
    return any(package.for_variant(name).as_dict() != first for name in declared[1:])


def delta_as_dict(delta: VariantDelta | None) -> dict[str, Any]:
    """The keys a delta gives, as plain values (plan --json)."""
    if delta is None:
        return {}
    own = delta.settings.as_dict()
    shown: dict[str, Any] = {}
    for key in sorted(delta.given):
        if key == "build_requires":
            shown[key] = {"add": list(own["build_requires_add"]),
                          "remove": list(own["build_requires_remove"])}
        else:
            shown[key] = own[key]
    return shown


"""What is configured for whom, and whether it all refers to something real.

Every override file must load, and name a project that exists upstream; every changelog and
sha256 version must be a version upstream has, and an update.specifier must match one; every
patches folder must name a real project (and version) and hold patches; every plugin must load,
match its hook signatures and name a real project; every folder of variant plugins must name
a variant settings.yaml declares.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from mirror_builder.errors import SettingsError
from mirror_builder.config.overrides import PackageSettings, load_package_settings
from mirror_builder.config.plugins import (VARIANTS_FOLDER, Plugin, load_plugins,
                                           variant_plugin_names)
from mirror_builder.resolve.pages import file_version
from mirror_builder.resolve.resolver import Finder
from mirror_builder.config.settings import Settings, describe_specifier
from mirror_builder.config.variants import VariantDelta, built_per_variant


@dataclass(frozen=True)
class Finding:
    where: str
    problem: str


@dataclass(frozen=True)
class Configured:
    """What is configured for one package, in the variant the settings work on: its effective
    settings and plugin, whether it is built per variant, and its delta in this variant."""

    name: NormalizedName
    settings: PackageSettings | None
    patches: tuple[Path, ...]
    plugin: Plugin | None
    per_variant: bool = False
    delta: VariantDelta | None = None


def configured(settings: Settings) -> dict[NormalizedName, Configured]:
    """Everything configured per package: overrides, patches and plugins (settings.variant's)."""
    names: set[NormalizedName] = set()
    overrides = {}
    if settings.overrides_dir.is_dir():
        for path in settings.overrides_dir.glob("*.yaml"):
            overrides[canonicalize_name(path.stem)] = load_package_settings(
                settings.overrides_dir, path.stem, settings.variant_names)
    patches: dict[NormalizedName, list[Path]] = {}
    for folder, name, _ in _patch_folders(settings.patches_dir):
        patches.setdefault(name, []).extend(sorted(folder.glob("*.patch")))
    plugins = load_plugins(settings.overrides_dir, settings.variant)
    own_plugins = variant_plugin_names(settings.overrides_dir, settings.variant_names)
    names = set(overrides) | set(patches) | set(plugins) | own_plugins
    found = {}
    for n in sorted(names):
        package = overrides.get(n)
        found[n] = Configured(
            n, package.for_variant(settings.variant) if package else None,
            tuple(patches.get(n, ())), plugins.get(n),
            per_variant=n in own_plugins or bool(
                package and built_per_variant(package, settings.variant_names)),
            delta=package.variants.get(settings.variant) if package else None)
    return found


def lint(settings: Settings, finder: Finder) -> list[Finding]:
    findings: list[Finding] = []
    versions_cache: dict[str, set[Version]] = {}

    def versions(name: str) -> set[Version]:
        if name not in versions_cache:
            versions_cache[name] = {v for f in finder.project_files(name)
                                    if (v := file_version(f, name)) is not None}
        return versions_cache[name]

    if settings.overrides_dir.is_dir():
        for path in sorted(settings.overrides_dir.glob("*.yaml")):
            try:
                package = load_package_settings(settings.overrides_dir, path.stem,
                                                settings.variant_names)
            except SettingsError as exc:
                findings.append(Finding(str(path), str(exc)))
                continue
            if canonicalize_name(path.stem) != path.stem:
                findings.append(Finding(str(path), f"name it {canonicalize_name(path.stem)}.yaml"))
            known = versions(package.name)
            if not known:
                findings.append(Finding(str(path), f"no project {package.name} on the upstream index"))
                continue
            for version in package.changelog:
                if version not in known:
                    findings.append(Finding(str(path), f"changelog: {package.name} has no version {version}"))
            if package.source is not None:
                for text in package.source.sha256:
                    if text != "*" and Version(text) not in known:
                        findings.append(Finding(str(path), f"source.sha256: {package.name} has no "
                                                           f"version {text}"))
            spec = package.update.specifier
            if spec and not any(spec.contains(v, prereleases=True) for v in known):
                findings.append(Finding(str(path), f"update.specifier: no version of {package.name} "
                                                   f"matches {describe_specifier(spec)}"))
            if package.pre_built and package.source is not None:
                findings.append(Finding(str(path), "pre_built and source contradict each other"))
    for folder, name, version in _patch_folders(settings.patches_dir):
        if not list(folder.glob("*.patch")):
            findings.append(Finding(str(folder), "holds no *.patch files"))
        known = versions(name)
        if not known:
            findings.append(Finding(str(folder), f"no project {name} on the upstream index"))
        elif version is not None and version not in known:
            findings.append(Finding(str(folder), f"{name} has no version {version}"))
    plugins: dict[str, Plugin] = {}
    for variant in settings.variant_names:
        try:
            plugins |= {p.origin: p for p in load_plugins(settings.overrides_dir, variant).values()}
        except SettingsError as exc:
            if (finding := Finding(str(settings.overrides_dir), str(exc))) not in findings:
                findings.append(finding)  # a plugin every variant loads fails once
    for plugin in plugins.values():
        if not versions(plugin.name):
            findings.append(Finding(plugin.origin,
                                    f"no project {plugin.name} on the upstream index"))
    return findings + _undeclared_variant_folders(settings)


def _undeclared_variant_folders(settings: Settings) -> list[Finding]:
    """overrides/variants/<name>/ folders of variant plugins for a variant not declared."""
    folder = settings.overrides_dir / VARIANTS_FOLDER
    return [Finding(str(path), f"settings.yaml declares no variant {path.name!r} (declared: "
                               f"{', '.join(settings.variant_names)}); its plugins are never used")
            for path in sorted(folder.iterdir() if folder.is_dir() else ())
            if path.is_dir() and path.name not in settings.variant_names]


def _patch_folders(patches_dir: Path):
    """(folder, project, version or None) for every folder under patches/."""
    if not patches_dir.is_dir():
        return
    for folder in sorted(p for p in patches_dir.iterdir() if p.is_dir()):
        base, sep, tail = folder.name.rpartition("-")
        version = None
        if sep:
            try:
                version = Version(tail)
            except InvalidVersion:
                version = None
        if version is not None:
            yield folder, canonicalize_name(base), version
        else:
            yield folder, canonicalize_name(folder.name), None

"""Per-package settings: overrides/<canonical-name>.yaml, validated on load.

Every key is optional; an unknown key or a bad value is an error naming the file, line and key.

  env:              {NAME: value} for the build; templates ${name} ${version} ${jobs}
  system_packages:  [Debian package, ...] added in a per-package image layer (cached by content)
  source:           where the source comes from instead of the PyPI sdist:
                      url: https://.../foo-${version}.tar.gz   sha256: {version: hex} or hex
                      git: URL   tag: v${version}
  build_dir:        the project's folder inside the source tree (a monorepo's subfolder)
  config_settings:  {key: value or [values]} passed to the PEP 517 hooks
  build_requires:   {add: [req, ...], remove: [name, ...]} edited into pyproject.toml
  pre_built:        true: take the upstream wheel instead of building (marked in provenance)
  bootstrap_stage:  {remove: [name, ...]}: how to break a build cycle through this package:
                    build it first without these build requirements (stage 1, used only by
                    the rest of the cycle, never published), then again in full. Not part of
                    the build record's settings (the published, full build is built as before)
  changelog:        {version: [reason, ...]}; each reason raises that version's rebuild number
  timeout:          seconds for one build container
  memory:           memory limit for the build container (e.g. 16g)
  cpus:             CPUs for the build container (also sets make's -j)
  pids_limit:       most processes the build container may run at once
  in_memory:        false: build it on disk however small (not part of the build's key)
  vendor_rust:      which Cargo projects have their crates vendored before the build (default:
                    those the build backend compiles: maturin's manifest, setuptools-rust's
                    extensions; see prepare/cargoprojects.py): false: none; true: those, or
                    every Cargo project outside tests and bundled tools; [path/Cargo.toml, ...]:
                    exactly these (relative to the source tree), also when the sdist carries
                    vendored crates of its own
  manylinux:        true / false: repair this package's platform wheels to a manylinux tag
                    with auditwheel, or not, whatever build.manylinux says (true for a wheel
                    that links a library of its system_packages: the wheel then carries it)
  smoke_test:       false: publish without the smoke test; {imports: [module, ...]}: import
                    these instead of the wheel's top-level modules
  upstream_requires: {ignore: [name or glob, ...]}: install requirements of upstream's
                    metadata (its wheels') that our build does not have, left out of the
                    plan's prediction (torch's CUDA wheels: nvidia-*); not part of the build
  update:           this package's update policy, each key overriding settings.yaml's update:
                      track: newer | all | N   specifier: ">=2.1,<2.4"   prereleases: bool
                      min_release_age: 0 | 12h | 3d | 2w
                    (not part of the build: it changes which versions are built, not how, so it
                    is left out of as_dict(), the digest, build records and build keys)
  variants:         {NAME: {env, system_packages, source, pre_built, build_requires, ...}}:
                    the package's delta in a declared variant (see config/variants.py); the
                    key itself is never in as_dict(): for_variant()'s effective settings are
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import string
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from mirror_builder.errors import SettingsError
from mirror_builder.config.settings import (
    UPDATE_KEYS,
    UpdatePolicy,
    describe_specifier,
    format_duration,
    read_update_policy,
)
from mirror_builder.config.yamlfile import YamlReader, read_yaml
from mirror_builder.config.variants import VariantDelta, read_deltas

TEMPLATE_FIELDS = ("name", "version", "jobs")
KEYS = {"env", "system_packages", "source", "build_dir", "config_settings", "build_requires",
        "pre_built", "bootstrap_stage", "changelog", "timeout", "memory", "cpus", "pids_limit",
        "in_memory", "vendor_rust", "manylinux", "update", "smoke_test", "upstream_requires", "variants"}
_DEBIAN_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MEMORY = re.compile(r"^[0-9]+[bkmg]?$", re.IGNORECASE)


@dataclass(frozen=True)
class SourceOverride:
    url: str | None = None
    sha256: dict[str, str] = field(default_factory=dict)  # version ("*" for any) -> hex
    git: str | None = None
    tag: str | None = None

    def url_for(self, name: str, version: Version) -> str:
        return render(self.url or "", name=name, version=str(version))

    def sha256_for(self, version: Version) -> str | None:
        for key, value in self.sha256.items():
            if key == "*" or Version(key) == version:
                return value
        return None


@dataclass(frozen=True)
class UpdateOverride:
    """A package's own update policy keys; None: the global one (settings.yaml's update:)."""

    track: str | int | None = None
    specifier: SpecifierSet | None = None
    prereleases: bool | None = None
    min_release_age: timedelta | None = None

    def given(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in UPDATE_KEYS if getattr(self, k) is not None}

    def as_dict(self) -> dict[str, Any]:
        """The keys given, as plain values for listings (`overrides show`)."""
        shown = self.given()
        if self.specifier is not None:
            shown["specifier"] = describe_specifier(self.specifier)
        if self.min_release_age is not None:
            shown["min_release_age"] = format_duration(self.min_release_age)
        return shown


@dataclass(frozen=True)
class PackageSettings:
    name: NormalizedName
    source_file: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    system_packages: tuple[str, ...] = ()
    source: SourceOverride | None = None
    build_dir: str | None = None
    config_settings: dict[str, str | list[str]] = field(default_factory=dict)
    build_requires_add: tuple[str, ...] = ()
    build_requires_remove: tuple[NormalizedName, ...] = ()
    pre_built: bool = False
    # The build requirements a stage-1 build leaves out, to break a build cycle; () for none.
    bootstrap_stage: tuple[NormalizedName, ...] = ()
    changelog: dict[Version, tuple[str, ...]] = field(default_factory=dict)
    timeout: int | None = None
    memory: str | None = None
    cpus: float | None = None
    pids_limit: int | None = None
    # None: as build.in_memory says; False: on disk. Left out of as_dict(): not how it is built.
    in_memory: bool | None = None
    # None: the build backend's manifests; a tuple: these manifests (relative to the tree).
    vendor_rust: bool | tuple[str, ...] | None = None
    # None: as build.manylinux (or --manylinux) says; True/False: this package's own choice.
    manylinux: bool | None = None
    # Which versions `update` builds, not how: left out of as_dict() and so of build keys.
    update: UpdateOverride = field(default_factory=UpdateOverride)
    # Checked before publishing, not part of the build: True (the wheel's top-level modules),
    # False (no smoke test), or the modules to import.
    smoke_test: bool | tuple[str, ...] = True
    # Patterns (fnmatch, canonical names) of upstream's install requirements our build lacks:
    # a prediction's correction, not part of the build.
    upstream_requires_ignore: tuple[str, ...] = ()
    # Per-variant deltas (see for_variant); never part of as_dict(): the effective settings are.
    variants: dict[str, VariantDelta] = field(default_factory=dict)

    def for_variant(self, variant: str) -> PackageSettings:
        """The settings a build for variant uses: these, with that variant's delta applied."""
        delta = self.variants.get(variant)
        return self if delta is None else delta.apply_to(self)

    def reasons_for(self, version: Version) -> tuple[str, ...]:
        return self.changelog.get(version, ())

    def environment(self, version: Version, jobs: int) -> dict[str, str]:
        return {k: render(v, name=self.name, version=str(version), jobs=str(jobs))
                for k, v in self.env.items()}

    def configured(self) -> list[str]:
        """The keys this package sets, for listings."""
        defaults = PackageSettings(self.name)
        return [k for k in ("env", "system_packages", "source", "build_dir", "config_settings",
                            "build_requires_add", "build_requires_remove", "pre_built",
                            "bootstrap_stage", "changelog", "timeout", "memory", "cpus",
                            "pids_limit", "in_memory", "vendor_rust", "manylinux", "update",
                            "smoke_test", "upstream_requires_ignore", "variants")
                if getattr(self, k) != getattr(defaults, k)]

    def as_dict(self) -> dict[str, Any]:
        """What the package's wheel is built with: recorded in build records and part of their
        build key. The update policy is not (it decides which versions, not how)."""
        data = asdict(self)
        data.pop("source_file")
        data.pop("update")
        data.pop("smoke_test")
        data.pop("bootstrap_stage")
        data.pop("upstream_requires_ignore")
        data.pop("variants")
        data.pop("in_memory")
        data["changelog"] = {str(v): list(r) for v, r in sorted(self.changelog.items())}
        return data

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()


def effective_policy(default: UpdatePolicy, package: PackageSettings) -> UpdatePolicy:
    """The update policy for one package: its own update: keys, the global policy for the rest."""
    return replace(default, **package.update.given())


def render(template: str, **values: str) -> str:
    return string.Template(template).substitute(values)


def load_package_settings(overrides_dir: Path, name: str,
                          declared: tuple[str, ...] | None = None) -> PackageSettings:
    """A package's settings and variant deltas (declared: the variants that may have one)."""
    canonical = canonicalize_name(name)
    path = overrides_dir / f"{canonical}.yaml"
    if not path.is_file():
        return PackageSettings(canonical)
    reader, data = read_yaml(path)
    top = reader.mapping(data, (), KEYS)
    return replace(_package(reader, top, canonical, path), variants=read_deltas(
        reader, top, declared, lambda scoped, body: _package(scoped, body, canonical, path)))


def _package(reader: YamlReader, top: dict, canonical: NormalizedName,
             path: Path) -> PackageSettings:
    env = _env(reader, top)
    system_packages = _system_packages(reader, top)
    config_settings = _config_settings(reader, top)
    add, remove = _build_requires(reader, top)
    build_dir = _build_dir(reader, top)
    timeout, memory, cpus, pids_limit = _limits(reader, top)
    return PackageSettings(
        name=canonical,
        source_file=path,
        env=env,
        system_packages=system_packages,
        source=_source(reader, top.get("source")),
        build_dir=build_dir,
        config_settings=config_settings,
        build_requires_add=add,
        build_requires_remove=remove,
        pre_built=reader.value(top, ("pre_built",), bool, False),
        bootstrap_stage=_bootstrap_stage(reader, top),
        changelog=_changelog(reader, top.get("changelog")),
        timeout=timeout,
        memory=memory,
        cpus=cpus,
        pids_limit=pids_limit,
        in_memory=reader.value(top, ("in_memory",), bool, None),
        vendor_rust=_vendor_rust(reader, top),
        manylinux=reader.value(top, ("manylinux",), bool, None),
        smoke_test=_smoke_test(reader, top),
        upstream_requires_ignore=tuple(canonicalize_name(n) for n in _strings(
            reader, reader.mapping(top.get("upstream_requires"), ("upstream_requires",),
                                   {"ignore"}), ("upstream_requires", "ignore"))),
        update=UpdateOverride(**read_update_policy(
            reader, reader.mapping(top.get("update"), ("update",), set(UPDATE_KEYS)), ("update",))),
    )


def _env(reader: YamlReader, top: dict) -> dict[str, str]:
    env = {}
    reader.mapping(top.get("env"), ("env",), _Anything())
    for key, value in _scalars_as_written(reader, ("env",), "expected a string"):
        env[key] = _template(reader, ("env", key), value)
    return env


def _system_packages(reader: YamlReader, top: dict) -> tuple[str, ...]:
    system_packages = tuple(_strings(reader, top, ("system_packages",)))
    for package in system_packages:
        if not _DEBIAN_PACKAGE.match(package):
            raise reader.fail(("system_packages",), f"{package!r} is not a Debian package name")
    return system_packages


def _config_settings(reader: YamlReader, top: dict) -> dict[str, str | list[str]]:
    config_settings: dict[str, str | list[str]] = {}
    raw = reader.mapping(top.get("config_settings"), ("config_settings",), _Anything())
    for key, value in raw.items():
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            config_settings[str(key)] = value
    for key, value in _scalars_as_written(reader, ("config_settings",),
                                          "expected a string or a list of strings",
                                          allow_lists=True):
        config_settings[key] = value
    return config_settings


def _build_requires(reader: YamlReader,
                    top: dict) -> tuple[tuple[str, ...], tuple[NormalizedName, ...]]:
    """build_requires: the requirements to add and the canonical names to remove."""
    requires = reader.mapping(top.get("build_requires"), ("build_requires",), {"add", "remove"})
    add = _strings(reader, requires, ("build_requires", "add"))
    for text in add:
        try:
            Requirement(text)
        except InvalidRequirement as exc:
            raise reader.fail(("build_requires", "add"), f"{text!r}: {exc}") from None
    remove = tuple(canonicalize_name(n) for n in _strings(reader, requires, ("build_requires", "remove")))
    return tuple(add), remove


def _bootstrap_stage(reader: YamlReader, top: dict) -> tuple[NormalizedName, ...]:
    stage = reader.mapping(top.get("bootstrap_stage"), ("bootstrap_stage",), {"remove"})
    if "bootstrap_stage" in top and not stage.get("remove"):
        raise reader.fail(("bootstrap_stage", "remove"),
                          "name the build requirements a stage-1 build leaves out")
    names = _strings(reader, stage, ("bootstrap_stage", "remove"))
    for text in names:
        if canonicalize_name(text) != canonicalize_name(text.strip()) or \
                not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", text):
            raise reader.fail(("bootstrap_stage", "remove"), f"{text!r} is not a project name")
    return tuple(canonicalize_name(n) for n in names)


def _build_dir(reader: YamlReader, top: dict) -> str | None:
    build_dir = reader.value(top, ("build_dir",), str, None)
    if build_dir is not None and (build_dir.startswith("/") or ".." in Path(build_dir).parts):
        raise reader.fail(("build_dir",), "must be a relative path inside the source tree")
    return build_dir


def _limits(reader: YamlReader,
            top: dict) -> tuple[int | None, str | None, float | None, int | None]:
    """The container limits: timeout, memory, cpus and pids_limit (None where not given)."""
    timeout = reader.positive(top, ("timeout",), 0) if "timeout" in top else None
    memory = reader.value(top, ("memory",), str, None)
    if memory is not None and not _MEMORY.match(memory):
        raise reader.fail(("memory",), f"expected a size like 8g or 512m, got {memory!r}")
    cpus = reader.value(top, ("cpus",), (int, float), None)
    if cpus is not None and (isinstance(cpus, bool) or not math.isfinite(cpus) or cpus <= 0):
        raise reader.fail(("cpus",), f"must be a positive number, got {cpus!r}")
    pids_limit = reader.positive(top, ("pids_limit",), 0) if "pids_limit" in top else None
    return timeout, memory, float(cpus) if cpus is not None else None, pids_limit


def _vendor_rust(reader: YamlReader, top: dict) -> bool | tuple[str, ...] | None:
    value, key = top.get("vendor_rust"), ("vendor_rust",)
    if value is None or isinstance(value, bool):
        return value
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise reader.fail(key, f"expected true, false or a list of Cargo.toml paths, got {value!r}")
    if not value:
        raise reader.fail(key, "name at least one Cargo.toml (or write false to vendor nothing)")
    for path in value:
        parts = PurePosixPath(path).parts
        if path.startswith("/") or ".." in parts or parts[-1] != "Cargo.toml":
            raise reader.fail(key, f"{path!r} is not the path of a Cargo.toml inside the source "
                                   f"tree (e.g. rust/Cargo.toml)")
    return tuple(dict.fromkeys(value))


def _smoke_test(reader: YamlReader, top: dict) -> bool | tuple[str, ...]:
    value = top.get("smoke_test", True)
    if isinstance(value, bool):
        return value
    spec = reader.mapping(value, ("smoke_test",), {"imports"})
    modules = _strings(reader, spec, ("smoke_test", "imports"))
    for module in modules:
        if not all(part.isidentifier() for part in module.split(".")):
            raise reader.fail(("smoke_test", "imports"), f"{module!r} is not a module name")
    return tuple(modules)


def _strings(reader: YamlReader, data: dict, key: tuple[str, ...]) -> list[str]:
    value = data.get(key[-1])
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise reader.fail(key, "expected a list of strings")
    return value


def _template(reader: YamlReader, key: tuple[str, ...], text: str,
              fields: tuple[str, ...] = TEMPLATE_FIELDS) -> str:
    try:
        string.Template(text).substitute({f: "" for f in fields})
    except (KeyError, ValueError) as exc:
        raise reader.fail(key, f"unknown template {exc} (known here: "
                               f"{', '.join('${' + f + '}' for f in fields)})") from None
    return text


def _scalars_as_written(reader: YamlReader, key: tuple[str, ...], problem: str,
                        allow_lists: bool = False) -> list[tuple[str, str]]:
    """A mapping's scalar values as written in the file: an unquoted 1.10 stays "1.10"
    (YAML would make it the float 1.1)."""
    node = reader.nodes.get(key)
    found = []
    for key_node, value_node in node.value if node is not None else ():
        where = key + (str(key_node.value),)
        if isinstance(value_node, yaml.ScalarNode) and not value_node.tag.endswith((":bool", ":null")):
            found.append((str(key_node.value), value_node.value))
        elif not (allow_lists and isinstance(value_node, yaml.SequenceNode) and all(
                isinstance(v, yaml.ScalarNode) and v.tag.endswith(":str") for v in value_node.value)):
            raise reader.fail(where, problem)
    return found


def _source(reader: YamlReader, data: Any) -> SourceOverride | None:
    if data is None:
        return None
    key = ("source",)
    body = reader.mapping(data, key, {"url", "sha256", "git", "tag"})
    url = reader.value(body, key + ("url",), str, None)
    git = reader.value(body, key + ("git",), str, None)
    if (url is None) == (git is None):
        raise reader.fail(key, "give either url (with sha256) or git (with tag)")
    if url is not None and "tag" in body:
        raise reader.fail(key + ("tag",), "tag goes with git, not with url")
    if git is not None and "sha256" in body:
        raise reader.fail(key + ("sha256",), "sha256 goes with url; a git source records its commit")
    sha256: dict[str, str] = {}
    if url is not None:
        # A source is fetched before anything about the build (such as ${jobs}) is known.
        _template(reader, key + ("url",), url, ("name", "version"))
        raw = body.get("sha256")
        if raw is None:
            raise reader.fail(key, "a source url needs sha256 (one hash, or version: hash)")
        if isinstance(raw, str):
            sha256 = {"*": raw}
        elif not isinstance(raw, dict):
            raise reader.fail(key + ("sha256",), "expected a hash or a mapping of version to hash")
        else:
            node = reader.nodes.get(key + ("sha256",))
            pairs = [(str(k.value), v.value) for k, v in node.value] if node else []
            for version, value in pairs:
                try:
                    Version(version)
                except InvalidVersion:
                    raise reader.fail(key + ("sha256", version), "not a version") from None
                sha256[version] = str(value)
        for version, value in sha256.items():
            if not _SHA256.match(value):
                raise reader.fail(key + ("sha256",), f"{value!r} is not a sha256 (64 hex digits)")
        return SourceOverride(url=url, sha256=sha256)
    tag = reader.value(body, key + ("tag",), str, None)
    if tag is None:
        raise reader.fail(key, "a git source needs tag (e.g. v${version})")
    _template(reader, key + ("tag",), tag, ("name", "version"))
    return SourceOverride(git=git, tag=tag)


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


class _Anything(set):
    """An 'allowed keys' set that allows every key (for mappings the user names)."""

    def __contains__(self, item: object) -> bool:
        return True


def all_package_settings(overrides_dir: Path,
                         declared: tuple[str, ...] | None = None) -> list[PackageSettings]:
    if not overrides_dir.is_dir():
        return []
    found = []
    for path in sorted(overrides_dir.glob("*.yaml")):
        if canonicalize_name(path.stem) != path.stem:
            raise SettingsError(f"{path}: override files are named by canonical project name: "
                                f"{canonicalize_name(path.stem)}.yaml")
        found.append(load_package_settings(overrides_dir, path.stem, declared))
    return found


def upstream_requires_ignored(overrides_dir: Path) -> dict[NormalizedName, tuple[str, ...]]:
    """Per project, the patterns of upstream's install requirements our build does not have
    (upstream_requires: ignore:)."""
    return {p.name: p.upstream_requires_ignore for p in all_package_settings(overrides_dir)
            if p.upstream_requires_ignore}

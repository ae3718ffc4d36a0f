"""Load and validate settings.yaml into frozen, typed values.

Every key is checked on load: an unknown key, a wrong type or a bad value is a SettingsError that
names the file, the line and the dotted key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from mirror_builder import PROJECT_DIR
from mirror_builder.config.durations import format_duration, parse_duration  # noqa: F401
from mirror_builder.config.variants import DEFAULT_VARIANT, VariantSettings, read_variants
from mirror_builder.config.executor import ExecutorSettings, read_executor
from mirror_builder.config.signing import read_signing_key
from mirror_builder.config.yamlfile import YamlReader, read_yaml
from mirror_builder.errors import SettingsError

SETTINGS_FILENAME = "settings.yaml"
REBUILD_NUMBERINGS = ("build-tag", "post-release")
TRACK_MODES = ("newer", "all")
UPDATE_KEYS = ("track", "specifier", "prereleases", "min_release_age")


@dataclass(frozen=True)
class UpstreamSettings:
    index_url: str = "https://pypi.org/simple/"
    # PyPI's JSON API, used for dependency metadata when the index does not serve PEP 658 files
    # (some registry proxies strip them). None disables it.
    json_api_url: str | None = "https://pypi.org/pypi/"
    cache_ttl_seconds: int = 6 * 3600
    timeout_seconds: int = 60
    retries: int = 4


@dataclass(frozen=True)
class TargetSettings:
    name: str
    containerfile: Path
    distribution: str = "bookworm"
    arch: str = "amd64"


@dataclass(frozen=True)
class BuildSettings:
    timeout_seconds: int = 3600
    memory: str = "8g"
    pids_limit: int = 4096
    # Builds at once; None: what the machine's cores and memory allow.
    jobs: int | None = None
    # Repair platform wheels to a manylinux tag with auditwheel, so they install elsewhere too.
    manylinux: bool = False
    # Small builds done in memory (build/jobspec.py); False: every build's files on disk.
    in_memory: bool = True


@dataclass(frozen=True)
class UpdatePolicy:
    """Which upstream releases `mirror-builder update` builds (see mirror_builder.jobs.policy)."""

    # "newer": every release newer than the newest we carry; "all": every release; N: the N newest.
    track: Literal["newer", "all"] | int = "newer"
    # Only versions in this set; an empty set allows any.
    specifier: SpecifierSet = field(default_factory=SpecifierSet)
    prereleases: bool = False
    # Cool-down: a release must be this old before it is built.
    min_release_age: timedelta = timedelta(days=3)

    def describe(self) -> str:
        """One line for listings, e.g. "track: newer, >=2.1,<2.4, no pre-releases, cool-down 3 d"."""
        return ", ".join([
            f"track: {self.track}",
            describe_specifier(self.specifier) or "any version",
            "pre-releases" if self.prereleases else "no pre-releases",
            f"cool-down {format_duration(self.min_release_age)}"
            if self.min_release_age else "no cool-down",
        ])


@dataclass(frozen=True)
class CarrySettings:
    """Who may be carried: files of project names, one a line. None: no such list."""

    allow_list: Path | None = None
    deny_list: Path | None = None


FALLBACKS = ("off", "redirect", "wheels-only")


@dataclass(frozen=True)
class ServeSettings:
    """`mirror-builder serve` and `tokens`."""

    # The read tokens (see tokens.py); when set, serve admits only requests that carry one.
    tokens_file: Path | None = None
    # A project we do not carry: off (404), redirect, wheels-only (see serve/fallback.py).
    fallback: str = "off"


@dataclass(frozen=True)
class BuildCacheSettings:
    """The machine's build cache (CACHE_DIR/builds) and other caches to take wheels from."""

    # Read-only caches of other machines (their CACHE_DIR/builds over http(s):// or file://),
    # tried in order after this machine's; every entry is checked against our own inputs.
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class VersionChoice:
    """What resolution does with a version that cannot be built from source."""

    # True: pass over a version whose build requirements cannot be met and take an earlier
    # one, saying so; False: the newest allowed version or nothing (its failure is the error).
    skip_unbuildable: bool = True
    # With --keep-going, a version whose build fails is replaced by an earlier one.
    replace_failed_builds: bool = False


@dataclass(frozen=True)
class Settings:
    source: Path | None
    project_dir: Path
    upstream: UpstreamSettings
    targets: tuple[TargetSettings, ...]
    build: BuildSettings
    output_dir: Path
    cache_dir: Path
    patches_dir: Path
    overrides_dir: Path
    allow_prereleases: bool = False
    # How a rebuild is told apart: the PEP 427 build tag (version unchanged) or a .postN version.
    rebuild_numbering: str = "build-tag"
    update: UpdatePolicy = field(default_factory=UpdatePolicy)
    carry: CarrySettings = field(default_factory=CarrySettings)
    serve: ServeSettings = field(default_factory=ServeSettings)
    versions: VersionChoice = field(default_factory=VersionChoice)
    build_cache: BuildCacheSettings = field(default_factory=BuildCacheSettings)
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    signing_key: Path | None = None  # signs every in-toto statement written (None: unsigned)
    # The build variants (variants:), the first the default; variant: the one this command works
    # on (--variant), which picks the packages' variant settings and the output (layout.py).
    variants: tuple[VariantSettings, ...] = (VariantSettings(DEFAULT_VARIANT),)
    variant: str = DEFAULT_VARIANT

    @property
    def variant_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variants)

    def for_variant(self, name: str | None) -> Settings:
        """These settings working on variant name (None: the default variant)."""
        name = self.variants[0].name if name is None else name
        if name not in self.variant_names:
            raise SettingsError(f"unknown variant {name!r}; {self.describe()} declares: "
                                f"{', '.join(self.variant_names)}")
        return replace(self, variant=name)

    def target(self, name: str | None) -> TargetSettings:
        if name is None:
            return self.default_target()
        for target in self.targets:
            if target.name == name:
                return target
        known = ", ".join(t.name for t in self.targets)
        raise SettingsError(f"unknown target {name!r}; {self.describe()} defines: {known}")

    def default_target(self) -> TargetSettings:
        """The first target for this machine's own architecture (no emulation needed)."""
        native = host_debian_arch()
        return next((t for t in self.targets if t.arch == native), self.targets[0])

    def select_targets(self, names: list[str] | None) -> list[TargetSettings]:
        """--target values: names, or "all"; none given means the default target."""
        if not names:
            return [self.default_target()]
        if "all" in names:
            return list(self.targets)
        return [self.target(name) for name in dict.fromkeys(names)]

    def describe(self) -> str:
        return str(self.source) if self.source else "the built-in settings"


def host_debian_arch() -> str:
    import platform

    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf", "ppc64le": "ppc64el",
            "s390x": "s390x", "i686": "i386"}.get(machine, machine)


def find_settings_file(explicit: Path | None = None) -> Path | None:
    """The settings file: the one given, else ./settings.yaml, else the checkout's own."""
    if explicit is not None:
        if not explicit.is_file():
            raise SettingsError(f"{explicit}: settings file not found")
        return explicit
    for candidate in (Path.cwd() / SETTINGS_FILENAME,
                      PROJECT_DIR / SETTINGS_FILENAME):
        if candidate.is_file():
            return candidate
    return None


def load_settings(path: Path | None = None) -> Settings:
    source = find_settings_file(path)
    if source is None:
        return _build(YamlReader(Path(SETTINGS_FILENAME)), {}, None, Path.cwd())
    reader, data = read_yaml(source)
    return _build(reader, data, source, source.resolve().parent)


def _build(r: YamlReader, data: Any, source: Path | None, project_dir: Path) -> Settings:
    top = r.mapping(data, (), {"upstream", "targets", "build", "output_dir", "cache_dir",
                               "patches_dir", "overrides_dir", "allow_prereleases",
                               "rebuild_numbering", "update", "carry", "serve", "versions",
                               "variants", "build_cache", "executor", "signing"})
    numbering = r.value(top, ("rebuild_numbering",), str, "build-tag")
    if numbering not in REBUILD_NUMBERINGS:
        raise r.fail(("rebuild_numbering",),
                     f"must be one of {', '.join(REBUILD_NUMBERINGS)}, got {numbering!r}")
    upstream = _upstream(r, top)
    targets = _targets(r, top, project_dir)
    build = _build_settings(r, top)
    update = UpdatePolicy(**read_update_policy(
        r, r.mapping(top.get("update"), ("update",), set(UPDATE_KEYS)), ("update",)))
    carry = _carry(r, top, project_dir)
    serve = _serve(r, top, project_dir)
    versions = r.mapping(top.get("versions"), ("versions",),
                         {"skip_unbuildable", "replace_failed_builds"})
    variants = read_variants(r, top)

    def path_of(key: str, default: str) -> Path:
        return _resolve_path(r.value(top, (key,), str, default), project_dir)

    cache_default = os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "mirror-builder")
    return Settings(
        source=source,
        project_dir=project_dir,
        upstream=upstream,
        targets=targets,
        build=build,
        output_dir=path_of("output_dir", "output"),
        cache_dir=path_of("cache_dir", cache_default),
        patches_dir=path_of("patches_dir", "patches"),
        overrides_dir=path_of("overrides_dir", "overrides"),
        allow_prereleases=r.value(top, ("allow_prereleases",), bool, False),
        rebuild_numbering=numbering,
        update=update,
        carry=carry,
        serve=serve,
        versions=VersionChoice(
            skip_unbuildable=r.value(versions, ("versions", "skip_unbuildable"), bool, True),
            replace_failed_builds=r.value(versions, ("versions", "replace_failed_builds"), bool,
                                          False)),
        variants=variants,
        variant=variants[0].name,
        build_cache=_build_cache(r, top),
        executor=read_executor(r, top, project_dir, path_of("cache_dir", cache_default)),
        signing_key=read_signing_key(r, top, project_dir),
    )


def _build_cache(r: YamlReader, top: dict[str, Any]) -> BuildCacheSettings:
    cache = r.mapping(top.get("build_cache"), ("build_cache",), {"sources"})
    sources = r.value(cache, ("build_cache", "sources"), list, [])
    for url in sources:
        if not isinstance(url, str) or not url.startswith(("http://", "https://", "file://")):
            raise r.fail(("build_cache", "sources"),
                         f"expected http://, https:// or file:// URLs, got {url!r}")
    return BuildCacheSettings(tuple(u.rstrip("/") + "/" for u in sources))


def _resolve_path(raw: str, project_dir: Path) -> Path:
    """A path from settings: ~ and $VARS expanded, relative ones taken from the project folder."""
    path = Path(os.path.expanduser(os.path.expandvars(raw)))
    return path if path.is_absolute() else project_dir / path


def _upstream(r: YamlReader, top: dict[str, Any]) -> UpstreamSettings:
    up = r.mapping(top.get("upstream"), ("upstream",),
                   {"index_url", "json_api_url", "cache_ttl_seconds", "timeout_seconds", "retries"})
    defaults = UpstreamSettings()
    index_url = r.value(up, ("upstream", "index_url"), str, defaults.index_url)
    if not index_url.startswith(("https://", "http://", "file://")):
        raise r.fail(("upstream", "index_url"), f"must be an http(s):// or file:// URL, got {index_url!r}")
    return UpstreamSettings(
        index_url=index_url.rstrip("/") + "/",
        json_api_url=r.value(up, ("upstream", "json_api_url"), str, defaults.json_api_url)
        if up.get("json_api_url", "") is not None else None,
        cache_ttl_seconds=r.not_negative(up, ("upstream", "cache_ttl_seconds"), defaults.cache_ttl_seconds),
        timeout_seconds=r.positive(up, ("upstream", "timeout_seconds"), defaults.timeout_seconds),
        retries=r.not_negative(up, ("upstream", "retries"), defaults.retries),
    )


def _targets(r: YamlReader, top: dict[str, Any], project_dir: Path) -> tuple[TargetSettings, ...]:
    raw_targets = top.get("targets")
    if raw_targets is None:
        raw_targets = {"bookworm-x86_64": {"containerfile": "containerfiles/bookworm/Containerfile"}}
    if not isinstance(raw_targets, dict) or not raw_targets:
        raise r.fail(("targets",), "expected a non-empty mapping of target name to settings")
    targets = []
    for name, body in raw_targets.items():
        key = ("targets", str(name))
        body = r.mapping(body, key, {"containerfile", "distribution", "arch"})
        if "containerfile" not in body:
            raise r.fail(key, "missing key 'containerfile'")
        containerfile = _resolve_path(r.value(body, key + ("containerfile",), str, ""), project_dir)
        targets.append(TargetSettings(
            name=str(name),
            containerfile=containerfile,
            distribution=r.value(body, key + ("distribution",), str, "bookworm"),
            arch=r.value(body, key + ("arch",), str, "amd64"),
        ))
    return tuple(targets)


def _build_settings(r: YamlReader, top: dict[str, Any]) -> BuildSettings:
    b = r.mapping(top.get("build"), ("build",), {"timeout_seconds", "memory", "pids_limit", "jobs",
                                                 "manylinux", "in_memory"})
    build_defaults = BuildSettings()
    return BuildSettings(
        timeout_seconds=r.positive(b, ("build", "timeout_seconds"), build_defaults.timeout_seconds),
        memory=r.value(b, ("build", "memory"), str, build_defaults.memory),
        pids_limit=r.positive(b, ("build", "pids_limit"), build_defaults.pids_limit),
        jobs=r.positive(b, ("build", "jobs"), 1) if b.get("jobs") is not None else None,
        manylinux=r.value(b, ("build", "manylinux"), bool, False),
        in_memory=r.value(b, ("build", "in_memory"), bool, True),
    )


def _carry(r: YamlReader, top: dict[str, Any], project_dir: Path) -> CarrySettings:
    c = r.mapping(top.get("carry"), ("carry",), {"allow_list", "deny_list"})
    lists: dict[str, Path | None] = {}
    for name in ("allow_list", "deny_list"):
        raw = r.value(c, ("carry", name), str, None)
        lists[name] = _resolve_path(raw, project_dir) if raw is not None else None
        if lists[name] is not None and not lists[name].is_file():
            raise r.fail(("carry", name), f"{lists[name]}: no such file")
    return CarrySettings(**lists)


def _serve(r: YamlReader, top: dict[str, Any], project_dir: Path) -> ServeSettings:
    s = r.mapping(top.get("serve"), ("serve",), {"tokens_file", "fallback"})
    # Not checked for existence: `tokens add` makes the file; serve reports it missing.
    tokens_file = r.value(s, ("serve", "tokens_file"), str, None)
    if tokens_file is not None and not tokens_file.strip():
        raise r.fail(("serve", "tokens_file"), "expected a file path or null, got an empty string")
    fallback = r.value(s, ("serve", "fallback"), (str, bool), "off")
    fallback = "off" if fallback is False else fallback  # YAML 1.1 reads a bare off as false
    if fallback not in FALLBACKS:
        raise r.fail(("serve", "fallback"), f"expected one of {', '.join(FALLBACKS)}, got {fallback!r}")
    return ServeSettings(tokens_file=_resolve_path(tokens_file, project_dir) if tokens_file else None,
                         fallback=fallback)


def read_update_policy(r: YamlReader, data: dict[str, Any], key: tuple[str, ...]) -> dict[str, Any]:
    """The update policy keys given in data (a mapping already checked for unknown keys), parsed
    and validated; keys not given are left out, so a package's override can fall back to the
    global value of each one."""
    found: dict[str, Any] = {}
    if "track" in data:
        track = data["track"]
        if track not in TRACK_MODES and (not isinstance(track, int) or isinstance(track, bool)
                                         or track <= 0):
            raise r.fail(key + ("track",), f"must be newer, all or a positive number (the N newest "
                                           f"releases), got {track!r}")
        found["track"] = track
    if "specifier" in data:
        text = data["specifier"]
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise r.fail(key + ("specifier",), f"expected str, got {text!r}")
        try:
            found["specifier"] = SpecifierSet(text)
        except InvalidSpecifier:
            raise r.fail(key + ("specifier",), f"{text!r} is not a PEP 440 version specifier "
                                               f"(e.g. \">=2.1,<2.4\")") from None
    if "prereleases" in data:
        found["prereleases"] = r.value(data, key + ("prereleases",), bool, False)
    if "min_release_age" in data:
        try:
            found["min_release_age"] = parse_duration(data["min_release_age"])
        except ValueError as exc:
            raise r.fail(key + ("min_release_age",), str(exc)) from None
    return found


def describe_specifier(specifier: SpecifierSet) -> str:
    """The specifier with lower bounds first (">=2.1,<2.4"; str() sorts it as "<2.4,>=2.1")."""
    def order(spec) -> tuple:
        try:
            return (0, Version(spec.version.removesuffix(".*")), spec.operator)
        except InvalidVersion:
            return (1, spec.version, spec.operator)
    return ",".join(str(s) for s in sorted(specifier, key=order))

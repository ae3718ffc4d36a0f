"""Per-package plugins: code for packages that settings cannot describe.

A plugin is a module named for the package, overrides/<canonical-name>.py, or an object
registered in the `mirror_builder.config.plugins` entry-point group under the package's name. It may
define these hooks, each with exactly this signature (checked when loaded: a hook that does not
match is an error, never a silently dropped argument; helpers must start with "_"):

    def prepare_source(context: PrepareContext) -> None
        after patches, before vendoring and the build: change files in context.project
    def build_environment(context: BuildContext) -> dict[str, str]
        more environment variables for the build (on top of overrides' env)
    def check_wheel(context: WheelContext) -> None
        after the build, before publishing: raise to keep a bad wheel out of the index

A build variant (settings.yaml's variants:) may give a package a plugin of its own,
overrides/variants/<variant>/<canonical-name>.py, used instead of overrides/<name>.py when
building that variant. A folder rather than a key in the override file or a name like
torch.cuda.py: a plugin's file name is its package's name ("torch.cuda" would be the project
torch-cuda), and a folder per variant mirrors OUTPUT/variants/<variant>/. Its own origin and
sha256 go into the build record, so the package's build key differs in that variant.

Plugins run on the host, never inside the build: they are trusted code from this repository.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from mirror_builder.errors import SettingsError
from mirror_builder.config.overrides import PackageSettings

ENTRY_POINT_GROUP = "mirror_builder.plugins"
VARIANTS_FOLDER = "variants"  # overrides/variants/<variant>/<name>.py: a variant's own plugins


@dataclass(frozen=True)
class PrepareContext:
    name: str
    version: Version
    tree: Path       # the unpacked, patched source
    project: Path    # the folder with pyproject.toml (tree, or tree/build_dir)
    settings: PackageSettings
    log: logging.Logger


@dataclass(frozen=True)
class BuildContext:
    name: str
    version: Version
    jobs: int
    settings: PackageSettings
    target: dict[str, str]  # the target's marker environment


@dataclass(frozen=True)
class WheelContext:
    name: str
    version: Version
    wheel: Path
    settings: PackageSettings


# hook name -> (parameter name, its type, return type)
HOOKS: dict[str, tuple[str, type, Any]] = {
    "prepare_source": ("context", PrepareContext, None),
    "build_environment": ("context", BuildContext, dict[str, str]),
    "check_wheel": ("context", WheelContext, None),
}


@dataclass(frozen=True)
class Plugin:
    name: NormalizedName
    origin: str
    hooks: dict[str, Callable[..., Any]] = field(default_factory=dict)

    def call(self, hook: str, context: Any) -> Any:
        function = self.hooks.get(hook)
        return None if function is None else function(context)


def load_plugins(overrides_dir: Path, variant: str | None = None) -> dict[NormalizedName, Plugin]:
    """The plugins by package; with variant, that variant's own plugins replace the others."""
    plugins = _plugin_files(overrides_dir, "")
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        name = canonicalize_name(entry_point.name)
        origin = f"entry point {entry_point.name} = {entry_point.value}"
        if name in plugins:
            raise SettingsError(f"{origin}: {name} already has a plugin ({plugins[name].origin})")
        try:
            target = entry_point.load()
        except Exception as exc:
            raise SettingsError(f"{origin}: does not load: {type(exc).__name__}: {exc}") from None
        plugins[name] = Plugin(name, origin, _hooks_of(target, origin))
    if variant is not None:
        label = "".join(c if c.isalnum() else "_" for c in variant)  # a module name's part
        plugins.update(_plugin_files(overrides_dir / VARIANTS_FOLDER / variant, f"{label}_"))
    return plugins


def variant_plugin_names(overrides_dir: Path, variants: tuple[str, ...]) -> set[NormalizedName]:
    """The packages that have a plugin of their own in one of these variants (not loaded)."""
    return {canonicalize_name(path.stem.replace("_", "-")) for variant in variants
            for path in (overrides_dir / VARIANTS_FOLDER / variant).glob("*.py")
            if not path.name.startswith("_")}


def _plugin_files(folder: Path, label: str) -> dict[NormalizedName, Plugin]:
    """The plugins in folder's *.py files, by package name (the file's stem)."""
    plugins: dict[NormalizedName, Plugin] = {}
    for path in sorted(folder.glob("*.py")) if folder.is_dir() else ():
        if path.name.startswith("_"):
            continue
        name = canonicalize_name(path.stem.replace("_", "-"))
        spec = importlib.util.spec_from_file_location(
            f"mirror_builder_plugin_{label}{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # a plugin's own import error, whatever it is
            raise SettingsError(f"{path}: the plugin does not load: {type(exc).__name__}: {exc}") from None
        plugins[name] = Plugin(name, str(path), _hooks_of(module, str(path)))
    return plugins


def _hooks_of(target: Any, origin: str) -> dict[str, Callable[..., Any]]:
    hooks = {}
    for attribute in dir(target):
        if attribute.startswith("_"):
            continue
        value = getattr(target, attribute)
        if not inspect.isfunction(value) or (inspect.ismodule(target) and
                                              value.__module__ != target.__name__):
            continue  # imported names and non-functions are not hooks
        if attribute not in HOOKS:
            raise SettingsError(f"{origin}: unknown hook {attribute!r} (known: {', '.join(HOOKS)}; "
                                f"name helpers with a leading underscore)")
        _check_signature(value, attribute, origin)
        hooks[attribute] = value
    return hooks


def _check_signature(function: Callable[..., Any], hook: str, origin: str) -> None:
    parameter, kind, returns = HOOKS[hook]
    expected = f"def {hook}({parameter}: {kind.__name__}) -> {_name(returns)}"
    signature = inspect.signature(function)
    params = list(signature.parameters.values())
    ok = (len(params) == 1 and params[0].name == parameter
          and params[0].kind in (params[0].POSITIONAL_OR_KEYWORD, params[0].POSITIONAL_ONLY)
          and _name(params[0].annotation) == kind.__name__
          and _name(signature.return_annotation) == _name(returns))
    if not ok:
        raise SettingsError(f"{origin}: hook {hook} must be `{expected}`, "
                            f"not `def {hook}{signature}`")


def _name(annotation: Any) -> str:
    if annotation is None or annotation is type(None):
        return "None"
    if annotation is inspect.Signature.empty:
        return "(missing)"
    if isinstance(annotation, str):  # from __future__ import annotations
        return annotation.replace("typing.", "").replace(" ", "")
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace(" ", "")

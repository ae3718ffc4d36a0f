"""Add Debian packages to a package's overrides/<name>.yaml, keeping everything else in the file
as written (comments and order too), and loading the result back to validate it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from packaging.utils import canonicalize_name

from mirror_builder.config.overrides import load_package_settings
from mirror_builder.errors import SettingsError
from mirror_builder.files import atomic_write_text

KEY = "system_packages"


@dataclass(frozen=True)
class Added:
    path: Path
    added: tuple[str, ...]  # the packages that were not there yet ((): the file is unchanged)
    created: bool  # the file did not exist


def add_system_packages(overrides_dir: Path, name: str, packages: Sequence[str]) -> Added:
    """Add packages to the system_packages of overrides/<canonical name>.yaml (made if missing).
    The file must load before (a broken file is not made worse) and after; if it does not after,
    it is put back as it was and the SettingsError says why."""
    path = overrides_dir / f"{canonicalize_name(name)}.yaml"
    before = path.read_text(encoding="utf-8") if path.is_file() else None
    current = load_package_settings(overrides_dir, name).system_packages
    new = tuple(p for p in dict.fromkeys(packages) if p not in current)
    if not new:
        return Added(path, (), False)
    overrides_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, with_system_packages(before or "", (*current, *new)))
    try:
        written = load_package_settings(overrides_dir, name).system_packages
        if written != (*current, *new):
            raise SettingsError(f"{path}: system_packages would read {list(written)}, not "
                                f"{list((*current, *new))}")
    except SettingsError:
        if before is None:
            path.unlink(missing_ok=True)
        else:
            atomic_write_text(path, before)
        raise
    return Added(path, new, before is None)


def with_system_packages(text: str, packages: Sequence[str]) -> str:
    """text with its top-level system_packages set to packages: the value replaced where it is
    written (a block list keeps its layout, one item a line), or the key added at the end."""
    flow = f"[{', '.join(packages)}]"
    root = yaml.compose(text) if text.strip() else None
    entry = None
    if isinstance(root, yaml.MappingNode):
        entry = next(((k, v) for k, v in root.value if k.value == KEY), None)
    if entry is None:
        prefix = text if not text or text.endswith("\n") else text + "\n"
        return f"{prefix}{KEY}: {flow}\n"
    key, value = entry
    if isinstance(value, yaml.SequenceNode) and not value.flow_style and value.value:
        return _extend_block_list(text, value, packages[len(value.value):])
    if isinstance(value, yaml.ScalarNode):  # "system_packages:" with nothing (null) after it
        start = key.end_mark.index
        colon = text.index(":", start)
        return f"{text[:colon + 1]} {flow}{text[value.end_mark.index:]}"
    return f"{text[:value.start_mark.index]}{flow}{text[value.end_mark.index:]}"


def _extend_block_list(text: str, node: yaml.SequenceNode, more: Sequence[str]) -> str:
    """New "- item" lines after the line of the last item of a block list (its comment
    stays on it), indented like it."""
    last = node.value[-1]
    line_start = text.rfind("\n", 0, last.start_mark.index) + 1
    dash = text.rfind("-", line_start, last.start_mark.index)
    indent, gap = text[line_start:dash], text[dash + 1:last.start_mark.index]
    added = "".join(f"\n{indent}-{gap}{package}" for package in more)
    end = text.find("\n", last.end_mark.index)
    end = len(text) if end < 0 else end
    return f"{text[:end]}{added}{text[end:]}"

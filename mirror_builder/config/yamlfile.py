"""Reading a YAML settings file: parsed safely, once, with each key's line kept, so that a
settings error names the file, the line and the dotted key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mirror_builder.errors import SettingsError

# Safe loading either way; libyaml's parser when PyYAML was built with it.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class YamlReader:
    """Walks a YAML document, remembering each key's line for error messages."""

    path: Path
    lines: dict[tuple[str, ...], int] = field(default_factory=dict)
    # Mapping nodes by key path, for keys that must be read as written (a version "1.10" is a
    # float 1.1 once YAML has converted it).
    nodes: dict[tuple[str, ...], yaml.MappingNode] = field(default_factory=dict)
    # Where this reader's keys are in the file (see scoped); errors name the whole key path.
    prefix: tuple[str, ...] = ()

    def fail(self, key: tuple[str, ...], problem: str) -> SettingsError:
        line = self.lines.get(key)
        where = f"{self.path}:{line}" if line else str(self.path)
        dotted = ".".join(self.prefix + key) if self.prefix + key else "(top level)"
        return SettingsError(f"{where}: {dotted}: {problem}")

    def scoped(self, key: tuple[str, ...]) -> YamlReader:
        """A reader of the mapping at key, as if it were a document's top level (a variant's
        keys are read as a package's own), whose errors still name the whole key path."""
        def under(table: dict) -> dict:
            return {k[len(key):]: v for k, v in table.items() if k[:len(key)] == key}
        return YamlReader(self.path, under(self.lines), under(self.nodes), self.prefix + key)

    def index_lines(self, node: yaml.Node, key: tuple[str, ...] = ()) -> None:
        if isinstance(node, yaml.MappingNode):
            self.nodes[key] = node
            for k, v in node.value:
                child = key + (str(k.value),)
                self.lines[child] = k.start_mark.line + 1
                self.index_lines(v, child)

    def mapping(self, data: Any, key: tuple[str, ...], allowed: set[str]) -> dict[str, Any]:
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise self.fail(key, f"expected a mapping, got {type(data).__name__}")
        for name in data:
            if name not in allowed:
                raise self.fail(key + (str(name),),
                                f"unknown key (allowed here: {', '.join(sorted(allowed))})")
        return data

    def value(self, data: dict[str, Any], key: tuple[str, ...], kind: type | tuple[type, ...],
              default: Any) -> Any:
        if key[-1] not in data:
            return default
        value = data[key[-1]]
        if value is None and default is None:
            return None
        # bool is an int in Python; a YAML "yes" must not pass as a number.
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self.fail(key, f"expected {names}, got {value!r}")
        return value

    def positive(self, data: dict[str, Any], key: tuple[str, ...], default: int) -> int:
        value = self.value(data, key, int, default)
        if value <= 0:
            raise self.fail(key, f"must be a positive number, got {value}")
        return value

    def not_negative(self, data: dict[str, Any], key: tuple[str, ...], default: int) -> int:
        value = self.value(data, key, int, default)
        if value < 0:
            raise self.fail(key, f"must not be negative, got {value}")
        return value



def read_yaml(source: Path) -> tuple[YamlReader, Any]:
    """Parse a YAML file, keeping each key's line for error messages."""
    text = source.read_text(encoding="utf-8")
    reader = YamlReader(source)
    # Parsed once, by libyaml where PyYAML has it: a run reads settings.yaml and every
    # override as it starts; the pure-Python parser, twice over, took 17 ms for this
    # checkout's ten files, libyaml once takes 0.7 ms.
    try:
        node, data = _parsed(text, YAML_LOADER)
    except yaml.YAMLError as exc:
        if YAML_LOADER is not yaml.SafeLoader:
            # Said in the pure-Python parser's words (libyaml's differ a little), which the
            # messages of every release so far used.
            try:
                _parsed(text, yaml.SafeLoader)
            except yaml.YAMLError as same:
                exc = same
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else str(source)
        raise SettingsError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"
                            f"{_yaml_context(exc)}") from None
    if node is not None:
        reader.index_lines(node)
    return reader, data


def _parsed(text: str, loader_class: type) -> tuple[yaml.Node | None, Any]:
    """The document's node (for the lines) and its data, from one parse."""
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def _yaml_context(exc: yaml.YAMLError) -> str:
    """Where the construct YAML was reading began, when that is another line: an unclosed
    bracket is reported where the parser gave up, often lines after the mistake."""
    context, start, mark = (getattr(exc, name, None) for name in
                            ("context", "context_mark", "problem_mark"))
    if not context or start is None or (mark is not None and start.line == mark.line):
        return ""
    return f" ({context} that starts at line {start.line + 1})"

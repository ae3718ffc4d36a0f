"""The output directory's layout: named once, in mirror_builder/layout.py, as the README says."""

from __future__ import annotations

import ast
import inspect
import itertools
import re
from pathlib import Path

import pytest

import mirror_builder
from mirror_builder.layout import IndexLayout, OutputLayout, RecordsLayout

PACKAGE = Path(mirror_builder.__file__).parent
README = PACKAGE.parent / "README.md"

# What a layout's methods are called with, by parameter name, to spell their paths the way the
# README does.
PLACEHOLDERS = {"project": "<project>", "wheel": "<wheel>", "filename": "<wheel>",
                "name": "<name>", "version": "<version>", "target": "<target>",
                "keyid": "<keyid>"}

# Folders and files directly under an output (or its source archive) that only layout.py names.
FOLDERS = {"simple", "files", "sources", "from-source", "records", "rejected", "logs", "jobs",
           "review", "keys"}
FILES = re.compile(r"(history\.jsonl|signing-key\.pub|find-links\.html|\.mirror-builder\.lock|rebuild-numbers\.|\.index\.lock"
                   r"|\.writing\.json|queue\.json|waiting\.json|build-order|graph[.])")


def _calls(method) -> list:
    choices = []
    for parameter in inspect.signature(method).parameters.values():
        if parameter.name not in PLACEHOLDERS:
            pytest.fail(f"{method.__qualname__}: give its parameter {parameter.name!r} a "
                        f"placeholder in PLACEHOLDERS")
        value = PLACEHOLDERS[parameter.name]
        choices.append([None, value] if parameter.default is None else [value])
    return [method(*args) for args in itertools.product(*choices)]


def named_paths(layout: IndexLayout | RecordsLayout) -> set[Path]:
    """Every path the layout's properties and methods name, sub-layouts followed."""
    found: set[Path] = set()
    for attribute, member in inspect.getmembers(type(layout)):
        if attribute.startswith("_"):
            continue
        if isinstance(member, property):
            results = [getattr(layout, attribute)]
        elif inspect.isfunction(member):
            results = _calls(getattr(layout, attribute))
        else:
            continue  # the root field, the OutputLayout.of constructor
        for result in results:
            if isinstance(result, (IndexLayout, RecordsLayout)):
                found |= named_paths(result)
            else:
                assert isinstance(result, Path), f"{attribute} names no path: {result!r}"
                found.add(result)
    return found


def layout_tree(layout: OutputLayout) -> set[str]:
    """The files the layout names, relative to its root (folders are implied by them)."""
    paths = named_paths(layout)
    files = {p for p in paths if not any(p in q.parents for q in paths)}
    return {p.relative_to(layout.root).as_posix() for p in files}


def readme_tree() -> set[str]:
    """The files of the tree under README's "### Output", each "a, b" line as two entries."""
    text = README.read_text()
    block = text[text.index("### Output"):].split("```")[1]
    entries: list[str] = []
    index: list[str] = []  # the index's own tree, which sources/ and from-source/ repeat
    for line in block.splitlines():
        if not re.match(r"  \S", line):
            continue  # "output/" itself, or a description carried over
        column = re.split(r"\s{2,}", line.strip())[0]
        if column == "sources/...":  # "the tree above again"
            index = list(entries)
            entries += [f"sources/{e}" for e in index]
        elif column == "from-source/...":  # the index's tree again
            entries += [f"from-source/{e}" for e in index]
        elif column == "rejected/records/...":  # "the same" as records/
            entries += [f"rejected/{e}" for e in entries if e.startswith("records/")]
        elif column == "variants/<variant>/...":  # another variant's output: this tree again
            entries.append("variants")
        else:
            first, *more = column.split(", ")
            folder = first.rpartition("/")[0]
            entries += [first] + [f"{folder}/{m}" if folder else m for m in more]
    return set(entries)


def test_the_layout_names_exactly_the_tree_the_readme_documents():
    assert layout_tree(OutputLayout(Path("output"))) == readme_tree()


def test_the_source_archive_is_an_index_laid_out_like_the_wheel_index():
    output = OutputLayout(Path("output"))
    assert isinstance(output.sources, IndexLayout)
    wheels = {p.relative_to(output.root) for p in named_paths(IndexLayout(output.root))}
    sources = {p.relative_to(output.sources.root) for p in named_paths(output.sources)}
    assert sources == wheels
    assert output.sources.root == output.root / "sources"


def test_rejected_records_are_laid_out_like_records():
    output = OutputLayout(Path("output"))
    assert output.rejected_records.record("Foo_Bar", "x.whl") == \
        Path("output/rejected/records/foo-bar/x.whl.build.json")
    assert output.records.record("Foo_Bar", "x.whl") == \
        Path("output/records/foo-bar/x.whl.build.json")


def test_the_plain_build_order_and_graph_are_the_ones_without_a_target():
    output = OutputLayout(Path("output"))
    assert output.build_order() == Path("output/build-order.json")
    assert output.build_order("bookworm-x86_64") == Path("output/build-order.bookworm-x86_64.json")
    assert output.graph() == Path("output/graph.json")
    assert output.graph("bookworm-x86_64") == Path("output/graph.bookworm-x86_64.json")


def test_a_layout_or_a_path_gives_the_same_layout():
    layout = OutputLayout(Path("output"))
    assert OutputLayout.of(layout) is layout
    assert OutputLayout.of("output") == layout


# -- nothing else spells those paths -----------------------------------------------------------
def hand_made_paths(source: str) -> list[int]:
    """Lines that join a layout folder onto a path (root / "records", Path(root, "logs"),
    os.path.join(root, "jobs")) or spell one of the layout's file names in a string."""
    tree = ast.parse(source)
    docstrings = {id(node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}

    def folder(node: ast.AST) -> bool:
        return isinstance(node, ast.Constant) and isinstance(node.value, str) \
            and node.value.strip("/").split("/")[0] in FOLDERS

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            found = folder(node.right) or (isinstance(node.right, ast.JoinedStr)
                                           and folder(node.right.values[0]))
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            joined = node.args if called == "joinpath" else \
                node.args[1:] if called in ("Path", "join") else []
            found = any(folder(a) for a in joined)
        else:
            found = isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docstrings and FILES.match(node.value.lstrip("/")) is not None
        if found:
            lines.append(node.lineno)
    return sorted(set(lines))


def _scanned(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if p != PACKAGE / "layout.py")


def test_no_module_but_layout_spells_a_path_under_the_output():
    spelled = [f"{path.relative_to(PACKAGE.parent)}:{line}"
               for path in _scanned(PACKAGE)
               for line in hand_made_paths(path.read_text())]
    assert spelled == [], "use mirror_builder.layout.OutputLayout for these paths"


@pytest.mark.parametrize("code", [
    'path = output / "records"',
    'path = index.root / "rejected" / "records" / name',
    'path = root / f"logs/{name}.log"',
    'path = Path(root, "jobs")',
    'path = os.path.join(root, "simple", name)',
    'path = root.joinpath("files")',
    'names = [f"build-order.{target}.json", "graph.json"]',
    'names = file_names("build-order", target)',
    'LOCK_NAME = ".mirror-builder.lock"',
    'path = folder / "history.jsonl"',
])
def test_the_scan_finds_a_path_spelled_by_hand(code):
    assert hand_made_paths(code) == [1]


@pytest.mark.parametrize("code", [
    'files = data["files"]',
    'def f():\n    """Writes build-order.json and graph.json."""',
    'url = f"../../files/{name}/{filename}"',
    'path = layout.records.record(name, wheel)',
    'area = ("sources", "simple")',
])
def test_the_scan_leaves_other_strings_alone(code):
    assert hand_made_paths(code) == []

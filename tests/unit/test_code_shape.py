"""The shape the code keeps (issue 14): the package reads as the pipeline, one stage a folder;
no module over 500 lines, no function over 60, no hand-written constructor over 8 parameters;
and layers import downward only, so that the read-only commands never load podman."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mirror_builder"
STAGES = ["config", "resolve", "source", "prepare", "sandbox", "build", "provenance", "index",
          "buildcache",
          "serve", "jobs", "cluster", "engine", "cli"]
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
MAX_CONSTRUCTOR_PARAMETERS = 8


def modules():
    return sorted(PACKAGE.rglob("*.py"))


def functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def test_the_package_is_one_folder_per_pipeline_stage_and_a_few_shared_modules():
    folders = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert folders == sorted(STAGES + ["data"])
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "errors.py", "files.py", "layout.py", "logs.py",
                     "timeline.py"]
    for stage in STAGES:
        assert (PACKAGE / stage / "__init__.py").read_text().startswith('"""'), stage


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_over_500_lines_and_each_says_what_it_is_for(path):
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES
    if path.name != "__main__.py":
        assert ast.get_docstring(ast.parse(text)), f"{path.name} has no docstring"


def test_no_function_is_over_60_lines():
    long = [f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} "
            f"({node.end_lineno - node.lineno + 1} lines)"
            for path in modules() for node in functions(path)
            if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []


def test_no_hand_written_constructor_takes_over_8_parameters():
    """(Dataclasses that mirror a file format, a schema or a settings file are values, not
    constructors that wire objects together; they are not counted.)"""
    wide = [f"{path.relative_to(PACKAGE)}:{node.lineno}"
            for path in modules() for node in functions(path)
            if node.name == "__init__"
            and len(node.args.args) - 1 + len(node.args.kwonlyargs) > MAX_CONSTRUCTOR_PARAMETERS]
    assert wide == []


def imported_by(code: str) -> set[str]:
    """The mirror_builder and podman modules a fresh interpreter has loaded after code."""
    probe = (f"{code}\nimport sys\nprint('\\n'.join(m for m in sys.modules "
             f"if m.startswith(('mirror_builder', 'podman'))))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, cwd=PACKAGE.parent)
    return set(proc.stdout.split())


STARTS_PODMAN = {"podman", "mirror_builder.sandbox.podman", "mirror_builder.sandbox.images",
                 "mirror_builder.prepare.vendoring", "mirror_builder.build.builder",
                 "mirror_builder.build.executor", "mirror_builder.build.smoketest",
                 "mirror_builder.index.publisher", "mirror_builder.engine.pipeline",
                 "mirror_builder.engine.run"}


def test_the_planner_and_the_lint_load_nothing_that_starts_podman_or_publishes():
    loaded = imported_by("import mirror_builder.engine.planner, mirror_builder.config.lint")
    assert "mirror_builder.engine.planner" in loaded
    assert loaded & STARTS_PODMAN == set()


def test_the_check_of_what_is_loaded_would_see_podman():
    assert "mirror_builder.sandbox.podman" in imported_by(
        "import mirror_builder.engine.pipeline")


# Each stage may import the stages before it here, never one after it: the stages form a DAG,
# in this order (the README's table lists them the same way).
LAYERS = ["resolve", "config", "sandbox", "prepare", "build", "provenance", "index", "buildcache",
          "source",
          "serve", "jobs", "cluster", "engine", "cli"]


def test_the_layers_list_every_stage():
    assert sorted(LAYERS) == sorted(STAGES)


def test_layers_import_downward_only():
    """Only `python -m mirror_builder` imports the command line; otherwise a module imports
    its own stage, the stages before it in LAYERS, and the shared top-level modules."""
    wrong = []
    for path in modules():
        parts = path.relative_to(PACKAGE).parts
        stage = parts[0] if len(parts) > 1 else None
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.module
                    and node.module.startswith("mirror_builder.")):
                continue
            target = node.module.split(".")[1]
            if target not in LAYERS or target == stage:
                continue
            allowed = path.name == "__main__.py" if stage is None else \
                LAYERS.index(target) < LAYERS.index(stage)
            if not allowed:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {node.module}")
    assert wrong == []

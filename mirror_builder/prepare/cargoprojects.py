"""Which Cargo projects a build compiles, read from its backend's configuration (vendor only those).

An sdist may carry Cargo.toml files its build never reads: the test cases of a build tool it
bundles (numpy's vendored-meson/meson/test cases/rust/), examples, fuzzers. cargo vendor may
reject those, and vendoring them fetches crates nobody builds. So the manifests to vendor are
the ones the build backend uses, found the way the backend finds them (paths relative to the
project folder, the one that holds pyproject.toml):

- maturin: [tool.maturin] manifest-path; else rust/Cargo.toml in its "Python first" src layout
  (python-source set, or src/<import name>/ present); else the Cargo.toml next to pyproject.toml.
- setuptools-rust: the path of each [[tool.setuptools-rust.ext-modules]] and
  [[tool.setuptools-rust.bins]] (default Cargo.toml). Extensions declared in setup.py
  (RustExtension(...)) cannot be read without running it, so a project that uses
  setuptools-rust (in its build requirements or setup.py) and declares nothing in
  pyproject.toml gets a search of its folder that leaves out folders of tests, examples, docs and
  bundled tools (SEARCH_SKIPS): a setup.py points at its own crate, not at those.
- any other backend: the Cargo.toml at the project's root, if there is one (where every
  Rust-building backend looks by default); a Cargo.toml deeper down is not part of the build.

The vendor_rust override decides instead when given: false vendors nothing, a list of manifests
(relative to the source tree) exactly those, true the backend's manifests or else every Cargo
project the search finds in the tree.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from mirror_builder.errors import SourceError

VENDOR_DIR = "mirror-builder-vendor"
# Never a project's own sources: build output, vendored crates, version control.
SKIP_DIRS = {"target", "vendor", VENDOR_DIR, ".git", "node_modules"}
# Folders a setup.py's Rust extension does not live in: tests, examples and docs, and the
# sources of tools and libraries a project bundles (meson's own test cases carry Cargo.toml
# files; so do bundled C libraries' bindings).
SEARCH_SKIPS = SKIP_DIRS | {"test", "tests", "testing", "test cases", "testdata", "test-data",
                            "test_data", "examples", "example", "docs", "doc", "benches",
                            "benchmarks", "fuzz", "third_party", "third-party", "thirdparty",
                            "3rdparty", "subprojects", "extern", "external"}
_BUNDLED = re.compile(r"^vendored[-_]")
_SETUPTOOLS_RUST = re.compile(r"setuptools[-_]rust")

OverrideChoice = bool | tuple[str, ...] | None


def cargo_manifests(tree: Path) -> list[Path]:
    """The Cargo projects in a folder, outside tests, examples, docs and bundled tools: each
    Cargo.lock's manifest, else the top-most Cargo.toml files (a workspace member is vendored
    through its workspace)."""
    locks, manifests = [], []
    for root, dirs, files in os.walk(tree):
        dirs[:] = sorted(d for d in dirs if d.lower() not in SEARCH_SKIPS and not _BUNDLED.match(d))
        here = Path(root)
        if "Cargo.lock" in files and "Cargo.toml" in files:
            locks.append(here / "Cargo.toml")
        elif "Cargo.toml" in files:
            manifests.append(here / "Cargo.toml")
    if locks:
        return locks
    top = [m for m in manifests
           if not any(other != m and m.parent.is_relative_to(other.parent) for other in manifests)]
    return sorted(top)


def manifests_to_vendor(tree: Path, project: Path | None = None,
                        choice: OverrideChoice = None, label: str = "") -> list[Path]:
    """The manifests whose crates the build needs: the override's choice, else the backend's."""
    if choice is False:
        return []
    if isinstance(choice, tuple):
        return [_named(tree, relative, label) for relative in choice]
    found = backend_manifests(tree if project is None else project)
    if not found and choice is True:
        found = cargo_manifests(tree)
    return found


def backend_manifests(project: Path) -> list[Path]:
    """The manifests the project's build backend compiles (see the module docstring)."""
    pyproject = _read_pyproject(project / "pyproject.toml")
    system, tool = _table(pyproject, "build-system"), _table(pyproject, "tool")
    backend = str(system.get("build-backend", ""))
    requires = _requirement_names(system.get("requires", []))
    declared = _setuptools_rust_manifests(project, tool.get("setuptools-rust"))
    setup_py = _setup_py_uses_setuptools_rust(project)
    if backend.startswith("maturin") or "maturin" in requires:
        candidates = [_maturin_manifest(project, pyproject)]
    elif declared or setup_py or "setuptools-rust" in requires:
        candidates = declared
        if setup_py or not declared:
            # RustExtension(path=...) in setup.py is known only by running it: search instead.
            candidates = candidates + cargo_manifests(project)
    else:
        candidates = [project / "Cargo.toml"]
    return sorted({m for m in candidates if m.is_file()})


def _maturin_manifest(project: Path, pyproject: dict) -> Path:
    maturin = _table(_table(pyproject, "tool"), "maturin")
    if isinstance(maturin.get("manifest-path"), str):
        return project / maturin["manifest-path"]
    rust = project / "rust" / "Cargo.toml"
    name = str(_table(pyproject, "project").get("name", "")).replace("-", "_")
    python_first = maturin.get("python-source") or name and (project / "src" / name).is_dir()
    if rust.is_file() and python_first:
        return rust
    return project / "Cargo.toml"


def _setuptools_rust_manifests(project: Path, config: object) -> list[Path]:
    if not isinstance(config, dict):
        return []
    found = []
    for kind in ("ext-modules", "bins"):
        entries = config.get(kind, [])
        for entry in entries if isinstance(entries, list) else []:
            path = entry.get("path", "Cargo.toml") if isinstance(entry, dict) else None
            if isinstance(path, str):
                found.append(project / path)
    return found


def _setup_py_uses_setuptools_rust(project: Path) -> bool:
    try:
        return bool(_SETUPTOOLS_RUST.search((project / "setup.py").read_text(errors="replace")))
    except OSError:
        return False


def _read_pyproject(path: Path) -> dict:
    # A broken or missing pyproject.toml has no Rust configuration to read; the build says
    # what is wrong with it.
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _table(data: dict, key: str) -> dict:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _requirement_names(requires: object) -> set[str]:
    names = set()
    for text in requires if isinstance(requires, list) else []:
        try:
            names.add(canonicalize_name(Requirement(str(text)).name))
        except InvalidRequirement:
            continue
    return names


def _named(tree: Path, relative: str, label: str) -> Path:
    manifest = tree / relative
    if not manifest.is_file():
        raise SourceError(f"{label + ': ' if label else ''}vendor_rust names {relative}, which "
                          f"the source tree does not have; name Cargo.toml files relative to the "
                          f"unpacked sdist's top folder")
    return manifest

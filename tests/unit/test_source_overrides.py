"""Source overrides in mirror_builder/sources.py: editing [build-system] requires, repacking a
tree as an sdist, an sdist made from a release URL, and prepare_source with build_dir."""

from __future__ import annotations

import hashlib
import os
import tarfile
import textwrap
import tomllib
from pathlib import Path

import pytest
from packaging.version import Version

from mirror_builder.prepare.buildsystem import LEGACY_BACKEND
from mirror_builder.errors import SourceError
from mirror_builder.prepare.sources import edit_build_requires, prepare_source
from mirror_builder.source.overrides import OverrideSource, repack_as_sdist, sdist_from_url

PYPROJECT = textwrap.dedent("""\
    # demo: a project with opinions about formatting
    [build-system]
    # the tools to build with
    requires = [
        "setuptools>=61",  # the backend
        "wheel",
        "Cython<3",
    ]
    build-backend   =   'setuptools.build_meta'   # keep the odd spacing

    [project]
    name = "demo"          # aligned comment
    version = "1.0"
    dependencies = ["wheel>=0.40"]  # not a build requirement: never touched

    [tool.cibuildwheel]
    skip = "pp*"
    """)
ARRAY_START = "requires = [\n"
ARRAY_END = "]\nbuild-backend"


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def outside_requires(text: str) -> tuple[str, str]:
    """The text before the requires array and after it."""
    before, rest = text.split(ARRAY_START, 1)
    return before, rest[rest.index(ARRAY_END):]


def requires_of(project: Path) -> list[str]:
    return tomllib.loads((project / "pyproject.toml").read_text())["build-system"]["requires"]


# -- edit_build_requires --------------------------------------------------------------------------
def test_edit_build_requires_adds_and_removes(tmp_path):
    write_tree(tmp_path, {"pyproject.toml": PYPROJECT})

    changed = edit_build_requires(tmp_path, ("maturin>=1.5",), ("wheel",), package="demo==1.0")

    assert changed is True
    assert requires_of(tmp_path) == ["setuptools>=61", "Cython<3", "maturin>=1.5"]


def test_edit_build_requires_adding_a_listed_name_replaces_its_requirement(tmp_path):
    write_tree(tmp_path, {"pyproject.toml": PYPROJECT})

    edit_build_requires(tmp_path, ("cython>=3.0",), (), package="demo==1.0")

    assert requires_of(tmp_path) == ["setuptools>=61", "wheel", "cython>=3.0"]


def test_edit_build_requires_removes_by_canonical_name(tmp_path):
    write_tree(tmp_path, {"pyproject.toml": PYPROJECT})

    edit_build_requires(tmp_path, (), ("cython", "Wheel"), package="demo==1.0")

    assert requires_of(tmp_path) == ["setuptools>=61"]


def test_edit_build_requires_keeps_the_rest_of_the_file_byte_for_byte(tmp_path):
    write_tree(tmp_path, {"pyproject.toml": PYPROJECT})

    edit_build_requires(tmp_path, ("maturin>=1.5",), ("wheel",), package="demo==1.0")

    text = (tmp_path / "pyproject.toml").read_text()
    assert outside_requires(text) == outside_requires(PYPROJECT)
    assert '"setuptools>=61",  # the backend' in text
    assert tomllib.loads(text)["project"]["dependencies"] == ["wheel>=0.40"]
    assert tomllib.loads(text)["build-system"]["build-backend"] == "setuptools.build_meta"


def test_edit_build_requires_removing_a_name_that_is_not_listed_is_an_error(tmp_path):
    write_tree(tmp_path, {"pyproject.toml": PYPROJECT})

    with pytest.raises(SourceError) as caught:
        edit_build_requires(tmp_path, ("maturin",), ("numpy", "wheel", "Setuptools_SCM"),
                            package="demo==1.0")

    assert str(caught.value) == ("demo==1.0: build_requires.remove names numpy, setuptools-scm, "
                                 "which [build-system] requires does not list")
    assert (tmp_path / "pyproject.toml").read_text() == PYPROJECT


def test_edit_build_requires_without_pyproject_writes_one_with_the_legacy_backend(tmp_path):
    write_tree(tmp_path, {"setup.py": "from setuptools import setup\nsetup()\n"})

    changed = edit_build_requires(tmp_path, ("cffi>=1.15",), (), package="demo==1.0")

    assert changed is True
    data = tomllib.loads((tmp_path / "pyproject.toml").read_text())
    assert data == {"build-system": {"requires": ["setuptools>=40.8.0", "cffi>=1.15"],
                                     "build-backend": LEGACY_BACKEND}}
    assert LEGACY_BACKEND == "setuptools.build_meta:__legacy__"


def test_edit_build_requires_without_build_system_table_adds_one_and_keeps_the_project(tmp_path):
    original = '[project]\nname = "demo"  # comment\nversion = "1.0"\n'
    write_tree(tmp_path, {"pyproject.toml": original})

    edit_build_requires(tmp_path, ("setuptools>=70",), (), package="demo==1.0")

    text = (tmp_path / "pyproject.toml").read_text()
    assert text.startswith(original)
    assert tomllib.loads(text)["build-system"] == {"requires": ["setuptools>=70"],
                                                   "build-backend": LEGACY_BACKEND}


def test_edit_build_requires_with_nothing_to_do_returns_false_and_leaves_the_file(tmp_path):
    write_tree(tmp_path, {"pyproject.toml": PYPROJECT})
    before = os.stat(tmp_path / "pyproject.toml").st_mtime_ns

    assert edit_build_requires(tmp_path, (), (), package="demo==1.0") is False
    assert (tmp_path / "pyproject.toml").read_text() == PYPROJECT
    assert os.stat(tmp_path / "pyproject.toml").st_mtime_ns == before


def test_edit_build_requires_with_nothing_to_do_creates_no_pyproject(tmp_path):
    assert edit_build_requires(tmp_path, (), (), package="demo==1.0") is False
    assert not (tmp_path / "pyproject.toml").exists()


# -- repack_as_sdist ------------------------------------------------------------------------------
def make_tree(root: Path) -> Path:
    return write_tree(root, {
        "pyproject.toml": '[project]\nname = "my-pkg"\n',
        "src/my_pkg/__init__.py": "VALUE = 1\n",
        "src/my_pkg/data/table.csv": "a,b\n1,2\n",
        "README.md": "hello\n",
    })


def test_repack_as_sdist_names_the_archive_and_its_single_top_folder_like_an_sdist(tmp_path):
    tree = make_tree(tmp_path / "project-v2.0")

    archive = repack_as_sdist(tree, "My.Pkg", "2.0", tmp_path / "out")

    assert archive == tmp_path / "out" / "my_pkg-2.0.tar.gz"
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        assert {n.split("/", 1)[0] for n in names} == {"my_pkg-2.0"}
        assert sorted(names) == names  # members in a fixed order
        assert set(names) == {"my_pkg-2.0/README.md", "my_pkg-2.0/pyproject.toml",
                              "my_pkg-2.0/src", "my_pkg-2.0/src/my_pkg",
                              "my_pkg-2.0/src/my_pkg/__init__.py", "my_pkg-2.0/src/my_pkg/data",
                              "my_pkg-2.0/src/my_pkg/data/table.csv"}
        assert tar.extractfile("my_pkg-2.0/src/my_pkg/__init__.py").read() == b"VALUE = 1\n"
    assert not list((tmp_path / "out").glob(".*part"))


def test_repack_as_sdist_members_are_owned_by_root_with_a_fixed_time(tmp_path):
    tree = make_tree(tmp_path / "tree")

    archive = repack_as_sdist(tree, "my-pkg", "2.0", tmp_path / "out")

    with tarfile.open(archive) as tar:
        members = tar.getmembers()
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
    assert {m.mtime for m in members} == {315532800}  # 1980-01-01


def test_repack_as_sdist_is_byte_identical_for_the_same_tree_even_with_new_mtimes(tmp_path):
    tree = make_tree(tmp_path / "tree")
    first = repack_as_sdist(tree, "my-pkg", "2.0", tmp_path / "one").read_bytes()
    for path in [tree, *tree.rglob("*")]:
        os.utime(path, (1_700_000_000, 1_700_000_000))

    second = repack_as_sdist(tree, "my-pkg", "2.0", tmp_path / "two").read_bytes()

    assert hashlib.sha256(second).hexdigest() == hashlib.sha256(first).hexdigest()


def test_repack_as_sdist_of_a_changed_tree_differs(tmp_path):
    tree = make_tree(tmp_path / "tree")
    first = repack_as_sdist(tree, "my-pkg", "2.0", tmp_path / "one").read_bytes()
    (tree / "README.md").write_text("hello again\n")

    assert repack_as_sdist(tree, "my-pkg", "2.0", tmp_path / "two").read_bytes() != first


# -- sdist_from_url -------------------------------------------------------------------------------
def release_tarball(folder: Path, top: str = "project-v2.0") -> Path:
    src = make_tree(folder / "release-src" / top)
    tarball = folder / "release" / f"{top}.tar.gz"
    tarball.parent.mkdir(parents=True)
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(src, arcname=top)
    return tarball


def test_sdist_from_url_repacks_the_release_as_an_sdist_and_records_its_origin(tmp_path):
    tarball = release_tarball(tmp_path)
    sha256 = hashlib.sha256(tarball.read_bytes()).hexdigest()
    url = "https://example.org/downloads/project-v2.0.tar.gz?raw=true"
    calls = []

    def download(url, filename, sha256, dest_dir):
        calls.append((url, filename, sha256, dest_dir))
        return tarball

    made = sdist_from_url(url, sha256, "my-pkg", "2.0", download=download,
                          work_dir=tmp_path / "work", dest_dir=tmp_path / "made")

    assert calls == [(url, "project-v2.0.tar.gz", sha256, tmp_path / "made")]
    assert isinstance(made, OverrideSource)
    assert made.archive == tmp_path / "made" / "my_pkg-2.0.tar.gz"
    assert made.origin == {"kind": "url", "url": url, "sha256": sha256,
                           "filename": "project-v2.0.tar.gz"}
    with tarfile.open(made.archive) as tar:
        names = tar.getnames()
        assert "my_pkg-2.0/pyproject.toml" in names
        assert all(n.startswith("my_pkg-2.0/") for n in names)
        assert not any("project-v2.0" in n for n in names)
        assert tar.extractfile("my_pkg-2.0/README.md").read() == b"hello\n"


def test_sdist_from_url_is_deterministic(tmp_path):
    tarball = release_tarball(tmp_path)

    def download(url, filename, sha256, dest_dir):
        return tarball

    made = [sdist_from_url("https://example.org/p.tar.gz", "a" * 64, "my-pkg", "2.0",
                           download=download, work_dir=tmp_path / f"work{i}",
                           dest_dir=tmp_path / f"made{i}").archive.read_bytes()
            for i in range(2)]

    assert made[0] == made[1]


# -- prepare_source with build_dir ----------------------------------------------------------------
def monorepo_sdist(folder: Path) -> Path:
    src = write_tree(folder / "mono-1.0", {
        "README.md": "a monorepo\n",
        "cpp/CMakeLists.txt": "project(mono)\n",
        "python/pyproject.toml": '[build-system]\nrequires = ["setuptools", "wheel"]\n'
                                 'build-backend = "setuptools.build_meta"\n',
        "python/mono/__init__.py": "",
    })
    sdist = folder / "dist" / "mono-1.0.tar.gz"
    sdist.parent.mkdir(parents=True)
    with tarfile.open(sdist, "w:gz") as tar:
        tar.add(src, arcname="mono-1.0")
    return sdist


def test_prepare_source_with_build_dir_points_the_project_at_the_subfolder(tmp_path):
    sdist = monorepo_sdist(tmp_path)

    source = prepare_source(sdist, "f" * 64, "mono", Version("1.0"), work_dir=tmp_path / "work",
                            patches_dir=tmp_path / "patches", build_dir="python",
                            requires_add=("pybind11>=2.12",), requires_remove=("wheel",))

    assert source.tree == tmp_path / "work" / "mono-1.0" / "mono-1.0"
    assert source.project_dir == "python"
    assert source.project == source.tree / "python"
    assert requires_of(source.project) == ["setuptools", "pybind11>=2.12"]
    assert not (source.tree / "pyproject.toml").exists()


def test_prepare_source_without_build_dir_uses_the_tree(tmp_path):
    sdist = monorepo_sdist(tmp_path)

    source = prepare_source(sdist, "f" * 64, "mono", Version("1.0"), work_dir=tmp_path / "work",
                            patches_dir=tmp_path / "patches")

    assert source.project_dir == ""
    assert source.project == source.tree


def test_prepare_source_with_a_missing_build_dir_is_a_source_error(tmp_path):
    sdist = monorepo_sdist(tmp_path)

    with pytest.raises(SourceError) as caught:
        prepare_source(sdist, "f" * 64, "mono", Version("1.0"), work_dir=tmp_path / "work",
                       patches_dir=tmp_path / "patches", build_dir="bindings/python")

    assert str(caught.value) == ("mono==1.0: build_dir 'bindings/python' is not a folder of the "
                                 "source tree")


def test_prepare_source_with_a_build_dir_that_is_a_file_is_a_source_error(tmp_path):
    sdist = monorepo_sdist(tmp_path)

    with pytest.raises(SourceError, match="build_dir 'README.md' is not a folder"):
        prepare_source(sdist, "f" * 64, "mono", Version("1.0"), work_dir=tmp_path / "work",
                       patches_dir=tmp_path / "patches", build_dir="README.md")


def test_prepare_source_removing_an_unlisted_build_requirement_is_a_source_error(tmp_path):
    sdist = monorepo_sdist(tmp_path)

    with pytest.raises(SourceError, match="mono==1.0: build_requires.remove names numpy"):
        prepare_source(sdist, "f" * 64, "mono", Version("1.0"), work_dir=tmp_path / "work",
                       patches_dir=tmp_path / "patches", build_dir="python",
                       requires_remove=("numpy",))


def test_edit_build_requires_with_an_invalid_upstream_requirement_is_a_source_error(tmp_path):
    write_tree(tmp_path, {"pyproject.toml": '[build-system]\nrequires = ["setuptools", '
                                            '"numpy>=1.0;;"]\n'})

    with pytest.raises(SourceError, match="demo==1.0: .*numpy>=1.0;;"):
        edit_build_requires(tmp_path, ("cython",), (), package="demo==1.0")


def test_a_malformed_upstream_build_requirement_can_be_removed(tmp_path):
    write_tree(tmp_path, {"pyproject.toml": '[build-system]\nrequires = ["setuptools", '
                                            '"numpy>=1.0;;"]\n'})
    assert edit_build_requires(tmp_path, ("numpy>=1.0",), ("numpy",), package="demo==1.0")
    text = (tmp_path / "pyproject.toml").read_text()
    assert '"numpy>=1.0;;"' not in text and '"numpy>=1.0"' in text

"""Rust crate vendoring (mirror_builder/prepare/vendoring.py and cargoprojects.py): which Cargo
projects the build compiles, the cargo config, the record of vendored crates, and the
preparation container's run (with a fake podman)."""

from __future__ import annotations

import textwrap
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mirror_builder.sandbox.imagenames import ImageRef
from mirror_builder.sandbox.podman import Mount, RunSpec
from mirror_builder.errors import SourceError
from mirror_builder.prepare.cargoprojects import cargo_manifests, manifests_to_vendor
from mirror_builder.prepare.vendoring import (
    VENDOR_DIR,
    RustVendorer,
    VendoredCrate,
    already_vendored,
    vendored_crates,
    write_cargo_config,
)

CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"
PROXIES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy")


def put(root: Path, relative: str, text: str = "") -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def lock_file(*packages: dict) -> str:
    lines = ["version = 3", ""]
    for package in packages:
        lines.append("[[package]]")
        lines += [f'{key} = "{value}"' for key, value in package.items()]
        lines.append("")
    return "\n".join(lines)


def crate(name: str, version: str, checksum: str | None = None, source: str = CRATES_IO) -> dict:
    package = {"name": name, "version": version}
    if source:
        package["source"] = source
    if checksum:
        package["checksum"] = checksum
    return package


# -- cargo_manifests ------------------------------------------------------------------------------
def test_cargo_manifests_without_cargo_files_is_empty(tmp_path):
    put(tmp_path, "setup.py", "")
    put(tmp_path, "src/pkg/__init__.py", "")

    assert cargo_manifests(tmp_path) == []


def test_cargo_manifests_a_lock_files_manifest_wins_over_other_manifests(tmp_path):
    put(tmp_path, "Cargo.toml")  # a top manifest without a lock file
    put(tmp_path, "rust/Cargo.toml")
    put(tmp_path, "rust/Cargo.lock")
    put(tmp_path, "other/Cargo.toml")

    assert cargo_manifests(tmp_path) == [tmp_path / "rust" / "Cargo.toml"]


def test_cargo_manifests_lists_each_lock_files_manifest(tmp_path):
    put(tmp_path, "b/Cargo.toml")
    put(tmp_path, "b/Cargo.lock")
    put(tmp_path, "a/Cargo.toml")
    put(tmp_path, "a/Cargo.lock")

    assert cargo_manifests(tmp_path) == [tmp_path / "a" / "Cargo.toml",
                                         tmp_path / "b" / "Cargo.toml"]


def test_cargo_manifests_workspace_members_are_not_listed_separately(tmp_path):
    put(tmp_path, "Cargo.toml", '[workspace]\nmembers = ["crates/*"]\n')
    put(tmp_path, "crates/core/Cargo.toml")
    put(tmp_path, "crates/py/Cargo.toml")

    assert cargo_manifests(tmp_path) == [tmp_path / "Cargo.toml"]


def test_cargo_manifests_top_most_manifests_of_separate_folders_are_all_listed(tmp_path):
    put(tmp_path, "rust-ext/Cargo.toml")
    put(tmp_path, "rust/Cargo.toml")
    put(tmp_path, "rust/member/Cargo.toml")

    assert cargo_manifests(tmp_path) == [tmp_path / "rust" / "Cargo.toml",
                                         tmp_path / "rust-ext" / "Cargo.toml"]


def test_cargo_manifests_workspace_with_lock_lists_only_the_workspace(tmp_path):
    put(tmp_path, "Cargo.toml")
    put(tmp_path, "Cargo.lock")
    put(tmp_path, "crates/core/Cargo.toml")

    assert cargo_manifests(tmp_path) == [tmp_path / "Cargo.toml"]


@pytest.mark.parametrize("skipped", ["target", "vendor", VENDOR_DIR, ".git", "node_modules",
                                     "python/vendor"])
def test_cargo_manifests_skips_build_and_vendor_folders(tmp_path, skipped):
    put(tmp_path, f"{skipped}/some-crate/Cargo.toml")
    put(tmp_path, f"{skipped}/some-crate/Cargo.lock")

    assert cargo_manifests(tmp_path) == []


def test_cargo_manifests_ignores_a_vendored_crate_next_to_the_project(tmp_path):
    put(tmp_path, "Cargo.toml")
    put(tmp_path, "Cargo.lock")
    put(tmp_path, "vendor/libc/Cargo.toml")
    put(tmp_path, "target/debug/build/x/Cargo.toml")

    assert cargo_manifests(tmp_path) == [tmp_path / "Cargo.toml"]


@pytest.mark.parametrize("folder", ["tests", "test", "Tests", "examples", "docs", "benches", "fuzz",
                                    "vendored-meson/meson/test cases/rust/1 basic",
                                    "vendored_tool", "third_party/foo", "subprojects/bar",
                                    "src/test cases/rust/x"])
def test_cargo_manifests_leaves_out_tests_examples_docs_and_bundled_tools(tmp_path, folder):
    put(tmp_path, f"{folder}/Cargo.toml", "not even toml [")
    put(tmp_path, f"{folder}/Cargo.lock")
    put(tmp_path, "src/rust/Cargo.toml")

    assert cargo_manifests(tmp_path) == [tmp_path / "src" / "rust" / "Cargo.toml"]


# -- manifests_to_vendor: what the build backend compiles -----------------------------------------
MATURIN = '[build-system]\nrequires = ["maturin>=1,<2"]\nbuild-backend = "maturin"\n'
SETUPTOOLS = '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
SETUPTOOLS_RUST = ('[build-system]\nrequires = ["setuptools", "setuptools-rust>=1.7"]\n'
                   'build-backend = "setuptools.build_meta"\n')


def stray_manifests(tree: Path) -> None:
    """Cargo.toml files no build compiles: a bundled tool's test cases (numpy's meson) and tests."""
    put(tree, "vendored-meson/meson/test cases/rust/22 cargo subproject/Cargo.toml", "[broken")
    put(tree, "tests/rust/Cargo.toml", '[package]\nname = "t"\n')
    put(tree, "tests/rust/Cargo.lock")


def test_a_maturin_project_vendors_the_cargo_toml_next_to_pyproject_by_default(tmp_path):
    put(tmp_path, "pyproject.toml", MATURIN)
    put(tmp_path, "Cargo.toml")
    put(tmp_path, "python/demo/__init__.py")
    stray_manifests(tmp_path)

    assert manifests_to_vendor(tmp_path) == [tmp_path / "Cargo.toml"]


def test_a_maturin_project_vendors_its_manifest_path_relative_to_the_project(tmp_path):
    """cryptography's layout: a workspace at the top, maturin told to build one member."""
    tree, project = tmp_path, tmp_path / "python"
    put(project, "pyproject.toml",
        MATURIN + '[tool.maturin]\nmanifest-path = "src/rust/Cargo.toml"\n')
    put(project, "Cargo.toml", '[workspace]\nmembers = ["src/rust"]\n')
    put(project, "Cargo.lock")
    put(project, "src/rust/Cargo.toml")
    put(tree, "Cargo.toml")  # outside the project folder the build_dir override names

    assert manifests_to_vendor(tree, project) == [project / "src" / "rust" / "Cargo.toml"]


def test_a_maturin_project_with_the_python_first_src_layout_vendors_rust_cargo_toml(tmp_path):
    put(tmp_path, "pyproject.toml", MATURIN + '[project]\nname = "my-project"\n')
    put(tmp_path, "src/my_project/__init__.py")
    put(tmp_path, "rust/Cargo.toml")

    assert manifests_to_vendor(tmp_path) == [tmp_path / "rust" / "Cargo.toml"]


def test_a_maturin_project_with_python_source_and_rust_folder_vendors_rust_cargo_toml(tmp_path):
    put(tmp_path, "pyproject.toml", MATURIN + '[tool.maturin]\npython-source = "python"\n')
    put(tmp_path, "rust/Cargo.toml")

    assert manifests_to_vendor(tmp_path) == [tmp_path / "rust" / "Cargo.toml"]


def test_setuptools_rust_extensions_and_bins_in_pyproject_are_vendored_by_their_paths(tmp_path):
    put(tmp_path, "pyproject.toml", SETUPTOOLS_RUST + """
        [[tool.setuptools-rust.ext-modules]]
        target = "demo._native"
        path = "native/Cargo.toml"

        [[tool.setuptools-rust.bins]]
        target = "demo-cli"
    """.replace("\n        ", "\n"))
    put(tmp_path, "native/Cargo.toml")
    put(tmp_path, "Cargo.toml")  # the bin's default path
    put(tmp_path, "other/Cargo.toml")  # a crate nothing declares
    stray_manifests(tmp_path)

    assert manifests_to_vendor(tmp_path) == [tmp_path / "Cargo.toml",
                                             tmp_path / "native" / "Cargo.toml"]


def test_a_setup_py_rust_extension_is_found_by_a_search_that_skips_tests_and_bundled_tools(
        tmp_path):
    put(tmp_path, "pyproject.toml", SETUPTOOLS_RUST)
    put(tmp_path, "setup.py", 'from setuptools_rust import RustExtension\n'
                              'setup(rust_extensions=[RustExtension("d._d", '
                              '"src/rust/Cargo.toml")])\n')
    put(tmp_path, "src/rust/Cargo.toml")
    stray_manifests(tmp_path)

    assert manifests_to_vendor(tmp_path) == [tmp_path / "src" / "rust" / "Cargo.toml"]


def test_a_setup_py_only_project_that_imports_setuptools_rust_is_searched_too(tmp_path):
    put(tmp_path, "setup.py", "from setuptools_rust import RustExtension\n")
    put(tmp_path, "rust/Cargo.toml")

    assert manifests_to_vendor(tmp_path) == [tmp_path / "rust" / "Cargo.toml"]


@pytest.mark.parametrize("pyproject", [
    SETUPTOOLS,
    '[build-system]\nrequires = ["meson-python", "Cython>=3"]\nbuild-backend = "mesonpy"\n',
])
def test_stray_manifests_of_tests_and_bundled_tools_are_not_vendored(tmp_path, pyproject):
    """numpy: meson-python, and meson's own test cases carry Cargo.toml files."""
    put(tmp_path, "pyproject.toml", pyproject)
    put(tmp_path, "numpy/__init__.py")
    stray_manifests(tmp_path)

    assert manifests_to_vendor(tmp_path) == []


def test_a_project_with_no_rust_vendors_nothing(tmp_path):
    put(tmp_path, "pyproject.toml", SETUPTOOLS)
    put(tmp_path, "setup.py", "from setuptools import setup\nsetup()\n")

    assert manifests_to_vendor(tmp_path) == []


def test_a_project_without_pyproject_or_setup_py_vendors_nothing(tmp_path):
    put(tmp_path, "PKG-INFO")

    assert manifests_to_vendor(tmp_path) == []


def test_another_backend_with_a_cargo_toml_at_the_project_root_vendors_it(tmp_path):
    put(tmp_path, "pyproject.toml",
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n')
    put(tmp_path, "Cargo.toml")
    stray_manifests(tmp_path)

    assert manifests_to_vendor(tmp_path) == [tmp_path / "Cargo.toml"]


def test_a_maturin_project_without_its_manifest_vendors_nothing_and_lets_the_build_say_so(tmp_path):
    put(tmp_path, "pyproject.toml",
        MATURIN + '[tool.maturin]\nmanifest-path = "missing/Cargo.toml"\n')

    assert manifests_to_vendor(tmp_path) == []


def test_a_broken_pyproject_is_read_as_no_rust_configuration(tmp_path):
    put(tmp_path, "pyproject.toml", "[build-system\n")
    put(tmp_path, "tests/Cargo.toml")

    assert manifests_to_vendor(tmp_path) == []


def test_the_override_list_names_exactly_what_is_vendored(tmp_path):
    put(tmp_path, "pyproject.toml", MATURIN)
    put(tmp_path, "Cargo.toml")
    stray_manifests(tmp_path)

    chosen = manifests_to_vendor(tmp_path, choice=("tests/rust/Cargo.toml",))

    assert chosen == [tmp_path / "tests" / "rust" / "Cargo.toml"]


def test_the_override_list_naming_a_missing_manifest_is_an_error_naming_it(tmp_path):
    put(tmp_path, "Cargo.toml")

    with pytest.raises(SourceError) as caught:
        manifests_to_vendor(tmp_path, choice=("rust/Cargo.toml",), label="demo==1.0")

    assert str(caught.value) == (
        "demo==1.0: vendor_rust names rust/Cargo.toml, which the source tree does not have; name "
        "Cargo.toml files relative to the unpacked sdist's top folder")


def test_the_override_false_vendors_nothing_even_for_maturin(tmp_path):
    put(tmp_path, "pyproject.toml", MATURIN)
    put(tmp_path, "Cargo.toml")

    assert manifests_to_vendor(tmp_path, choice=False) == []


def test_the_override_true_searches_the_tree_when_the_backend_names_nothing(tmp_path):
    put(tmp_path, "pyproject.toml", SETUPTOOLS)
    put(tmp_path, "bindings/Cargo.toml")
    stray_manifests(tmp_path)

    assert manifests_to_vendor(tmp_path) == []
    assert manifests_to_vendor(tmp_path, choice=True) == [tmp_path / "bindings" / "Cargo.toml"]


def test_the_override_true_keeps_the_backends_manifests(tmp_path):
    put(tmp_path, "pyproject.toml", MATURIN)
    put(tmp_path, "Cargo.toml")
    put(tmp_path, "bindings/Cargo.toml")

    assert manifests_to_vendor(tmp_path, choice=True) == [tmp_path / "Cargo.toml"]


def test_the_backend_is_read_from_the_project_folder_not_the_tree_top(tmp_path):
    tree, project = tmp_path, tmp_path / "python"
    put(tree, "pyproject.toml", SETUPTOOLS)  # the repository's, not the built project's
    put(project, "pyproject.toml", MATURIN)
    put(project, "Cargo.toml")

    assert manifests_to_vendor(tree, project) == [project / "Cargo.toml"]


# -- already_vendored -----------------------------------------------------------------------------
def test_already_vendored_when_the_config_replaces_crates_io(tmp_path):
    put(tmp_path, ".cargo/config.toml", """
        [source.crates-io]
        replace-with = "vendored-sources"

        [source.vendored-sources]
        directory = "vendor"
    """)

    assert already_vendored(tmp_path) is True


def test_already_vendored_finds_the_config_one_folder_down_and_legacy_name(tmp_path):
    put(tmp_path, "rust/.cargo/config", '[source.crates-io]\nreplace-with = "v"\n')

    assert already_vendored(tmp_path) is True


def test_not_already_vendored_with_a_config_that_does_not_replace_crates_io(tmp_path):
    put(tmp_path, ".cargo/config.toml", '[build]\nrustflags = ["-C", "opt-level=3"]\n')

    assert already_vendored(tmp_path) is False


def test_not_already_vendored_without_a_config(tmp_path):
    put(tmp_path, "Cargo.toml")

    assert already_vendored(tmp_path) is False


def test_not_already_vendored_with_an_invalid_config(tmp_path):
    put(tmp_path, ".cargo/config.toml", "[source.crates-io\nreplace-with = \n")

    assert already_vendored(tmp_path) is False


def test_not_already_vendored_with_a_config_whose_source_is_not_a_table(tmp_path):
    put(tmp_path, ".cargo/config.toml", 'source = "crates-io"\n')

    assert already_vendored(tmp_path) is False


# -- write_cargo_config ---------------------------------------------------------------------------
def test_write_cargo_config_creates_the_config(tmp_path):
    config = write_cargo_config(tmp_path)

    assert config == tmp_path / ".cargo" / "config.toml"
    assert tomllib.loads(config.read_text()) == {
        "source": {"crates-io": {"replace-with": "mirror-builder-vendored"},
                   "mirror-builder-vendored": {"directory": "mirror-builder-vendor"}},
        "net": {"offline": True},
    }
    assert VENDOR_DIR == "mirror-builder-vendor"


def test_write_cargo_config_keeps_the_projects_settings_and_comments(tmp_path):
    put(tmp_path, ".cargo/config.toml", """
        # project config: keep me
        [build]
        rustflags = ["-C", "target-cpu=x86-64-v2"]  # portable

        [net]
        retry = 5
    """)

    config = write_cargo_config(tmp_path)

    text = config.read_text()
    assert text.startswith("# project config: keep me\n[build]\n"
                           'rustflags = ["-C", "target-cpu=x86-64-v2"]  # portable\n')
    data = tomllib.loads(text)
    assert data["build"] == {"rustflags": ["-C", "target-cpu=x86-64-v2"]}
    assert data["net"] == {"retry": 5, "offline": True}
    assert data["source"]["crates-io"] == {"replace-with": "mirror-builder-vendored"}
    assert data["source"]["mirror-builder-vendored"] == {"directory": "mirror-builder-vendor"}


def test_write_cargo_config_replaces_an_earlier_crates_io_replacement(tmp_path):
    put(tmp_path, ".cargo/config.toml", """
        [source.crates-io]
        replace-with = "mirror"

        [source.mirror]
        registry = "sparse+https://mirror.example/index/"
    """)

    data = tomllib.loads(write_cargo_config(tmp_path).read_text())

    assert data["source"]["crates-io"] == {"replace-with": "mirror-builder-vendored"}
    assert data["source"]["mirror"] == {"registry": "sparse+https://mirror.example/index/"}


def test_write_cargo_config_twice_gives_the_same_file(tmp_path):
    first = write_cargo_config(tmp_path).read_text()

    assert write_cargo_config(tmp_path).read_text() == first


# -- vendored_crates ------------------------------------------------------------------------------
def test_vendored_crates_lists_registry_crates_from_every_lock_sorted_and_merged(tmp_path):
    put(tmp_path, "Cargo.lock", lock_file(
        crate("serde", "1.0.200", "c" * 64),
        crate("mypkg", "0.1.0", source=""),  # the project itself: no source
        crate("libc", "0.2.150", "a" * 64),
        crate("pyo3", "0.21.0", "d" * 64),
    ))
    put(tmp_path, "ext/Cargo.lock", lock_file(
        crate("libc", "0.2.150", "a" * 64),  # the same crate again
        crate("libc", "0.2.99", "b" * 64),   # another version of it
        crate("forked", "1.0.0", source="git+https://github.com/x/forked?rev=abc#abc"),
        crate("local", "0.0.1", source=""),
    ))

    assert vendored_crates(tmp_path) == [
        VendoredCrate("libc", "0.2.150", "a" * 64),
        VendoredCrate("libc", "0.2.99", "b" * 64),
        VendoredCrate("pyo3", "0.21.0", "d" * 64),
        VendoredCrate("serde", "1.0.200", "c" * 64),
    ]


def test_vendored_crates_ignores_lock_files_inside_vendored_or_build_folders(tmp_path):
    put(tmp_path, "Cargo.lock", lock_file(crate("serde", "1.0.200", "c" * 64)))
    put(tmp_path, f"{VENDOR_DIR}/foo-1.0.0/Cargo.lock", lock_file(crate("bar", "1.0.0", "e" * 64)))
    put(tmp_path, "target/x/Cargo.lock", lock_file(crate("baz", "1.0.0", "f" * 64)))

    assert vendored_crates(tmp_path) == [VendoredCrate("serde", "1.0.200", "c" * 64)]


def test_vendored_crates_without_lock_files_is_empty(tmp_path):
    put(tmp_path, "Cargo.toml")

    assert vendored_crates(tmp_path) == []


def test_vendored_crate_without_checksum_has_none(tmp_path):
    put(tmp_path, "Cargo.lock", lock_file(crate("old", "0.1.0")))

    assert vendored_crates(tmp_path) == [VendoredCrate("old", "0.1.0", None)]


# -- RustVendorer.vendor, with a fake podman ------------------------------------------------------
@dataclass
class Result:
    exit_code: int
    timed_out: bool = False
    seconds: float = 0.1


@dataclass
class FakePodman:
    """Records each RunSpec; 'runs' cargo vendor by creating the vendor folder in the mounted
    tree. failures: how many runs fail first (with exit_code and log_lines), then it works;
    None: every run does as exit_code says."""

    exit_code: int = 0
    log_lines: tuple[str, ...] = ()
    runs: list[tuple[RunSpec, Path]] = field(default_factory=list)
    failures: int | None = None

    def run(self, spec: RunSpec, log_path: Path) -> Result:
        self.runs.append((spec, log_path))
        src = next(m.source for m in spec.mounts if m.target == "/src")
        fails = self.exit_code != 0 if self.failures is None else len(self.runs) <= self.failures
        (src / VENDOR_DIR / "serde-1.0.200").mkdir(parents=True)  # a failed run leaves some too
        if fails:
            (src / VENDOR_DIR / "half-written-0.1.0").mkdir()
        with log_path.open("a") as out:
            out.writelines(line + "\n" for line in (self.log_lines if fails else ("Vendoring",)))
        return Result(self.exit_code if fails else 0)


IMAGE = ImageRef(tag="localhost/mirror-builder-prep:abc", id="sha256:abc", base="debian:bookworm",
                 containerfile="Containerfile", containerfile_sha256="0" * 64,
                 target="bookworm-x86_64")


@pytest.fixture
def rust_tree(tmp_path) -> Path:
    tree = tmp_path / "src" / "demo-1.0"
    put(tree, "pyproject.toml", '[build-system]\nrequires = ["maturin"]\n')
    put(tree, "Cargo.toml", '[package]\nname = "demo"\nversion = "1.0.0"\n')
    put(tree, "Cargo.lock", lock_file(crate("demo", "1.0.0", source=""),
                                      crate("serde", "1.0.200", "c" * 64)))
    return tree


@pytest.fixture
def no_proxy_env(monkeypatch):
    for name in PROXIES:
        monkeypatch.delenv(name, raising=False)


def test_vendor_runs_cargo_vendor_locked_with_network_and_the_tree_mounted(
        tmp_path, rust_tree, monkeypatch, no_proxy_env):
    ca = tmp_path / "corporate-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    podman = FakePodman()
    log_path = tmp_path / "logs" / "demo-1.0.log"

    crates = RustVendorer(podman, IMAGE).vendor(rust_tree, "demo==1.0", log_path)

    assert len(podman.runs) == 1
    spec, run_log = podman.runs[0]
    assert run_log == log_path
    assert spec.image == IMAGE.tag
    assert spec.command == ["cargo", "vendor", "--locked", "--versioned-dirs",
                            "--manifest-path", "/src/Cargo.toml", "/src/mirror-builder-vendor"]
    assert spec.network is True
    assert spec.workdir == "/src"
    assert spec.user == "0:0"
    assert spec.mounts == (Mount(rust_tree, "/src", read_only=False),
                           Mount(ca, "/etc/mirror-builder-host-ca.crt", read_only=True))
    assert spec.environment == {
        "CARGO_HOME": "/tmp/cargo-home", "HOME": "/tmp", "CARGO_NET_RETRY": "10",
        "CARGO_HTTP_CAINFO": "/etc/mirror-builder-host-ca.crt",
        "SSL_CERT_FILE": "/etc/mirror-builder-host-ca.crt",
    }
    assert crates == [VendoredCrate("serde", "1.0.200", "c" * 64)]
    config = tomllib.loads((rust_tree / ".cargo" / "config.toml").read_text())
    assert config["source"]["mirror-builder-vendored"] == {"directory": "mirror-builder-vendor"}
    assert config["net"] == {"offline": True}
    assert log_path.read_text().startswith(
        "[mirror-builder] demo==1.0: vendoring crates (cargo vendor --locked --versioned-dirs "
        "--manifest-path /src/Cargo.toml /src/mirror-builder-vendor), network allowed")


def test_vendor_without_a_host_ca_bundle_mounts_only_the_tree(tmp_path, rust_tree, monkeypatch,
                                                               no_proxy_env):
    monkeypatch.setattr("mirror_builder.prepare.vendoring.host_ca_bundle", lambda: None)
    podman = FakePodman()

    RustVendorer(podman, IMAGE).vendor(rust_tree, "demo==1.0", tmp_path / "demo.log")

    spec = podman.runs[0][0]
    assert spec.mounts == (Mount(rust_tree, "/src", read_only=False),)
    assert spec.environment == {"CARGO_HOME": "/tmp/cargo-home", "HOME": "/tmp",
                                "CARGO_NET_RETRY": "10"}


def test_vendor_ignores_an_ssl_cert_file_that_does_not_exist(tmp_path, rust_tree, monkeypatch,
                                                              no_proxy_env):
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    podman = FakePodman()

    RustVendorer(podman, IMAGE).vendor(rust_tree, "demo==1.0", tmp_path / "demo.log")

    sources = [m.source for m in podman.runs[0][0].mounts]
    assert tmp_path / "missing.pem" not in sources


def test_vendor_passes_the_hosts_proxy_settings(tmp_path, rust_tree, monkeypatch, no_proxy_env):
    monkeypatch.setattr("mirror_builder.prepare.vendoring.host_ca_bundle", lambda: None)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("no_proxy", "localhost")
    podman = FakePodman()

    RustVendorer(podman, IMAGE).vendor(rust_tree, "demo==1.0", tmp_path / "demo.log")

    environment = podman.runs[0][0].environment
    assert environment["HTTPS_PROXY"] == "http://proxy.example:3128"
    assert environment["no_proxy"] == "localhost"
    assert "HTTP_PROXY" not in environment


def test_vendor_of_several_projects_syncs_the_others_and_without_locks_is_not_locked(
        tmp_path, no_proxy_env, monkeypatch):
    monkeypatch.setattr("mirror_builder.prepare.vendoring.host_ca_bundle", lambda: None)
    tree = tmp_path / "tree"
    put(tree, "a/Cargo.toml")
    put(tree, "b/Cargo.toml")
    podman = FakePodman()

    RustVendorer(podman, IMAGE).vendor(tree, "demo==1.0", tmp_path / "demo.log",
                                       [tree / "a" / "Cargo.toml", tree / "b" / "Cargo.toml"])

    assert podman.runs[0][0].command == [
        "cargo", "vendor", "--versioned-dirs", "--manifest-path", "/src/a/Cargo.toml",
        "--sync", "/src/b/Cargo.toml", "/src/mirror-builder-vendor"]


def test_vendor_of_a_workspace_member_is_locked_by_the_workspace_lock_and_records_only_it(
        tmp_path, no_proxy_env, monkeypatch):
    monkeypatch.setattr("mirror_builder.prepare.vendoring.host_ca_bundle", lambda: None)
    tree = tmp_path / "tree"
    put(tree, "Cargo.toml", '[workspace]\nmembers = ["crates/py"]\n')
    put(tree, "Cargo.lock", lock_file(crate("pyo3", "0.21.0", "d" * 64)))
    put(tree, "crates/py/Cargo.toml")
    put(tree, "tests/rust/Cargo.lock", lock_file(crate("stray", "1.0.0", "e" * 64)))
    podman = FakePodman()

    crates = RustVendorer(podman, IMAGE).vendor(tree, "demo==1.0", tmp_path / "demo.log",
                                                [tree / "crates" / "py" / "Cargo.toml"])

    assert podman.runs[0][0].command == [
        "cargo", "vendor", "--locked", "--versioned-dirs", "--manifest-path",
        "/src/crates/py/Cargo.toml", "/src/mirror-builder-vendor"]
    assert crates == [VendoredCrate("pyo3", "0.21.0", "d" * 64)]


def test_vendor_of_a_tree_whose_build_compiles_no_rust_runs_nothing(tmp_path):
    tree = tmp_path / "tree"
    put(tree, "pyproject.toml", '[build-system]\nrequires = ["meson-python"]\n'
                                'build-backend = "mesonpy"\n')
    put(tree, "vendored-meson/meson/test cases/rust/x/Cargo.toml", "[broken")
    podman = FakePodman()

    assert RustVendorer(podman, IMAGE).vendor(tree, "demo==1.0", tmp_path / "demo.log") == []
    assert podman.runs == []


def test_vendor_of_a_tree_without_cargo_files_runs_nothing(tmp_path):
    tree = tmp_path / "tree"
    put(tree, "setup.py")
    podman = FakePodman()

    assert RustVendorer(podman, IMAGE).vendor(tree, "demo==1.0", tmp_path / "demo.log") == []
    assert podman.runs == []
    assert not (tree / ".cargo").exists()


def test_vendor_failure_raises_source_error_naming_the_package_and_log(tmp_path, rust_tree,
                                                                      no_proxy_env):
    podman = FakePodman(exit_code=101, log_lines=(
        "    Updating crates.io index",
        "error: failed to sync",
        "",
        "Caused by: the lock file needs to be updated but --locked was passed",
    ))
    log_path = tmp_path / "logs" / "demo-1.0.log"

    with pytest.raises(SourceError) as caught:
        RustVendorer(podman, IMAGE).vendor(rust_tree, "demo==1.0", log_path)

    assert str(caught.value) == (
        "demo==1.0: cargo vendor failed (error: failed to sync | Caused by: the lock file needs "
        f"to be updated but --locked was passed); log: {log_path}")
    assert not (rust_tree / ".cargo").exists()  # no config pointing at crates that are not there


STALLED_REGISTRY = (
    "    Updating crates.io index",
    "error: failed to sync",
    "Caused by:",
    "  curl failed",
    "Caused by:",
    "  [28] Timeout was reached (Operation too slow. Less than 10 bytes/sec transferred the "
    "last 30 seconds)",
)


def test_a_registry_that_stalls_is_tried_again_from_a_clean_vendor_folder(
        tmp_path, rust_tree, no_proxy_env):
    podman = FakePodman(exit_code=101, log_lines=STALLED_REGISTRY, failures=2)
    log_path = tmp_path / "logs" / "demo-1.0.log"

    crates = RustVendorer(podman, IMAGE).vendor(rust_tree, "demo==1.0", log_path)

    assert len(podman.runs) == 3
    assert crates == [VendoredCrate("serde", "1.0.200", "c" * 64)]
    assert not (rust_tree / VENDOR_DIR / "half-written-0.1.0").exists()
    assert "(attempt 3 of 3)" in log_path.read_text()


def test_a_registry_that_keeps_stalling_fails_after_three_attempts(tmp_path, rust_tree,
                                                                   no_proxy_env):
    podman = FakePodman(exit_code=101, log_lines=STALLED_REGISTRY)
    log_path = tmp_path / "logs" / "demo-1.0.log"

    with pytest.raises(SourceError, match="cargo vendor failed .*Timeout was reached"):
        RustVendorer(podman, IMAGE).vendor(rust_tree, "demo==1.0", log_path)

    assert len(podman.runs) == 3
    assert not (rust_tree / ".cargo").exists()


def test_a_failure_that_is_not_the_network_is_not_tried_again(tmp_path, rust_tree,
                                                               no_proxy_env):
    podman = FakePodman(exit_code=101, log_lines=(
        "error: failed to sync", "Caused by: the lock file needs to be updated but --locked "
        "was passed"), failures=1)

    with pytest.raises(SourceError, match="--locked was passed"):
        RustVendorer(podman, IMAGE).vendor(rust_tree, "demo==1.0", tmp_path / "demo.log")

    assert len(podman.runs) == 1

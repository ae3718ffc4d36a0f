"""End-to-end: an sdist that carries a Cargo.toml its build never compiles (a bundled tool's
test case, as numpy's vendored meson does) builds without vendoring anything."""

import json
import tarfile

import pytest

from conftest import error_lines, make_sdist, run_mirror_builder, write_settings

pytestmark = pytest.mark.e2e

STRAY = "strayrust-1.0/vendored-tool/test cases/rust/x/Cargo.toml"


def test_a_pure_python_sdist_with_a_stray_cargo_toml_builds_and_vendors_nothing(tmp_path,
                                                                               fixtures_dir):
    sdist = make_sdist(fixtures_dir / "strayrust", tmp_path / "dist", "strayrust", "1.0")
    with tarfile.open(sdist) as tar:
        assert STRAY in tar.getnames()  # the manifest cargo vendor would reject is there
    out = tmp_path / "out"

    run_mirror_builder("bootstrap", str(sdist), "-o", str(out), cwd=tmp_path)

    (wheel,) = (out / "files" / "strayrust").glob("*.whl")
    assert wheel.name == "strayrust-1.0-py3-none-any.whl"
    records = out / "records" / "strayrust"
    record = json.loads((records / f"{wheel.name}.build.json").read_text())
    assert record["source"]["origin"] == {"kind": "sdist"}  # no vendored_crates
    assert "vendoring crates" not in (records / f"{wheel.name}.log").read_text()


def test_naming_that_stray_cargo_toml_in_vendor_rust_vendors_it_and_cargo_rejects_it(tmp_path,
                                                                                  fixtures_dir):
    """What every build of such an sdist did before only the built Cargo projects were vendored."""
    sdist = make_sdist(fixtures_dir / "strayrust", tmp_path / "dist", "strayrust", "1.0")
    overrides = tmp_path / "overrides"
    overrides.mkdir()
    (overrides / "strayrust.yaml").write_text(
        'vendor_rust: ["vendored-tool/test cases/rust/x/Cargo.toml"]\n')
    settings = write_settings(tmp_path / "conf", overrides_dir=str(overrides))

    proc = run_mirror_builder("bootstrap", str(sdist), "-o", str(tmp_path / "out"), cwd=tmp_path,
                              settings=settings, check=False)

    assert proc.returncode != 0
    (error,) = error_lines(proc.stderr)
    assert "strayrust==1.0: cargo vendor failed" in error

"""End-to-end: a Rust package whose crate is fetched while preparing the source (cargo vendor,
in the one preparation container with network) and built in a container with no network."""

import json
import subprocess

import pytest

from conftest import clean_environment, fresh_venv, make_sdist, run_mirror_builder, wheel_sbom

pytestmark = pytest.mark.e2e


def test_a_rust_package_builds_offline_from_vendored_crates_and_records_them(tmp_path, fixtures_dir):
    sdist = make_sdist(fixtures_dir / "rustprobe", tmp_path / "dist", "rustprobe", "1.0")
    out = tmp_path / "out"
    run_mirror_builder("bootstrap", str(sdist), "-o", str(out), cwd=tmp_path)

    (wheel,) = (out / "files" / "rustprobe").glob("*.whl")
    assert wheel.name == "rustprobe-1.0-cp311-cp311-linux_x86_64.whl"
    record = json.loads((out / "records" / "rustprobe" / f"{wheel.name}.build.json").read_text())
    assert record["sandbox"]["network"] == "none"
    assert record["source"]["origin"]["vendored_crates"] == [{
        "name": "itoa", "version": "1.0.15",
        "checksum": "4a5f13b858c8d314ee3e8f639011f7ccefe71f97f96e50151fb991f267928e2c"}]
    crates = [c for c in wheel_sbom(wheel)["components"] if c["purl"].startswith("pkg:cargo/")]
    assert [(c["purl"], c["hashes"][0]["content"]) for c in crates] == [
        ("pkg:cargo/itoa@1.0.15", record["source"]["origin"]["vendored_crates"][0]["checksum"])]
    log = (out / "records" / "rustprobe" / f"{wheel.name}.log").read_text()
    vendoring, building = log.index("vendoring crates"), log.index("network none")
    assert vendoring < building  # fetched while preparing, then built offline
    assert "Compiling itoa v1.0.15" in log[building:]
    # setuptools-rust and everything under it were built by us too.
    order = [e["name"] for e in json.loads((out / "build-order.json").read_text())]
    assert {"setuptools", "setuptools-rust", "semantic-version", "rustprobe"} <= set(order)

    venv = fresh_venv(tmp_path / "venv")
    subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--index-url",
                    (out / "simple").as_uri(), "--only-binary", ":all:", "rustprobe"],
                   check=True, env=clean_environment(), capture_output=True)
    ran = subprocess.run([str(venv / "bin" / "rustprobe")], capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "rustprobe says 42"

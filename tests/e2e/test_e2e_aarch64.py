"""End-to-end under emulation (marked slow: the aarch64 image and builds run under qemu): a C
extension for x86_64 and aarch64 side by side in one index."""

import json
import re
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO, clean_environment, run_mirror_builder

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CONF = str(REPO / "mirror_builder" / "data" / "containers.conf")
ELF_MACHINE = {b"\x3e\x00": "x86_64", b"\xb7\x00": "aarch64"}  # e_machine at offset 18


def elf_machine(data: bytes) -> str:
    assert data[:4] == b"\x7fELF"
    return ELF_MACHINE.get(data[18:20], data[18:20].hex())


def test_markupsafe_for_x86_64_and_aarch64(tmp_path):
    out = tmp_path / "out"
    run_mirror_builder("bootstrap", "markupsafe==3.0.2", "--target", "bookworm-x86_64",
                       "--target", "bookworm-aarch64", "-o", str(out), cwd=tmp_path)
    wheels = {p.name: p for p in (out / "files" / "markupsafe").glob("*.whl")}
    assert sorted(wheels) == ["markupsafe-3.0.2-cp311-cp311-linux_aarch64.whl",
                              "markupsafe-3.0.2-cp311-cp311-linux_x86_64.whl"]
    for name, path in wheels.items():
        with zipfile.ZipFile(path) as zf:
            (so,) = [n for n in zf.namelist() if n.endswith(".so")]
            assert elf_machine(zf.read(so)) == ("aarch64" if "aarch64" in name else "x86_64")
    # setuptools, pure Python, was built once for both.
    assert len(list((out / "files" / "setuptools").glob("*.whl"))) == 1

    for platform, expected in (("linux_aarch64", "linux_aarch64"), ("linux_x86_64", "linux_x86_64")):
        dl = tmp_path / f"dl-{platform}"
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                        "--platform", platform, "--python-version", "3.11", "--no-cache-dir",
                        "--index-url", (out / "simple").as_uri(), "-d", str(dl), "markupsafe"],
                       check=True, env=clean_environment(), capture_output=True)
        assert [p.name for p in dl.iterdir()] == [f"markupsafe-3.0.2-cp311-cp311-{expected}.whl"]

    images = run_mirror_builder("images", "--target", "bookworm-aarch64", cwd=tmp_path).stderr
    tag = re.search(r"(localhost/mirror-builder-bookworm-aarch64:\w+)", " ".join(images.split())).group(1)
    # uv, not the pip 23.0.1 that bookworm's venv seeds: that pip compares a PEP 658 metadata
    # file's Name (MarkupSafe) with the project name without normalizing, and refuses it.
    script = ("uv venv -q --python /usr/bin/python3 /tmp/v && UV_OFFLINE=1 uv pip install -q "
              "--no-cache --python /tmp/v/bin/python --index-url file:///index/simple "
              "--only-binary :all: markupsafe && /tmp/v/bin/python -c "
              "'import platform, markupsafe._speedups; print(platform.machine())'")
    ran = subprocess.run(["podman", "run", "--rm", "--arch", "arm64", "--network", "none",
                          "-v", f"{out}:/index:ro", tag, "sh", "-c", script],
                         capture_output=True, text=True, env=clean_environment(CONTAINERS_CONF=CONF))
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "aarch64"

    seconds = {json.loads(p.read_text())["target"]["name"]: json.loads(p.read_text())["seconds"]
               for p in (out / "records" / "markupsafe").glob("*.build.json")}
    print(f"\nmarkupsafe build: native {seconds['bookworm-x86_64']:.1f} s, "
          f"emulated aarch64 {seconds['bookworm-aarch64']:.1f} s")

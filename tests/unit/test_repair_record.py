"""What the build record says about an auditwheel repair: the libraries it grafted into the wheel
(repair.bundled), read from the wheels themselves, and what `inspect` shows of it."""

import io
import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from mirror_builder.build.builder import Builder
from mirror_builder.build.grafted import grafted_libraries
from mirror_builder.build.request import RepairRequest
from mirror_builder.cli.views import _details
from mirror_builder.errors import BuildError
from mirror_builder.sandbox.podman import RunResult
from test_provenance import make_record

EXTENSION = "demo/_core.cpython-311-x86_64-linux-gnu.so"


def make_wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def platform_wheel(folder: Path) -> Path:
    return make_wheel(folder / "demo-1.0-cp311-cp311-linux_x86_64.whl", {
        EXTENSION: b"ELF linked to libzmq.so.5", "demo/__init__.py": b"",
        "demo-1.0.dist-info/WHEEL": b"Tag: cp311-cp311-linux_x86_64\n",
        "demo-1.0.dist-info/RECORD": b""})


REPAIRED = {EXTENSION: b"ELF patched: RPATH $ORIGIN/../demo.libs", "demo/__init__.py": b"",
            "demo.libs/libzmq-a1b2c3d4.so.5.2.4": b"ELF", "demo.libs/libsodium-0f9e8d7c.so.23": b"ELF",
            "demo-1.0.dist-info/WHEEL": b"Tag: cp311-cp311-manylinux_2_36_x86_64\n",
            "demo-1.0.dist-info/RECORD": b"new", "demo-1.0.dist-info/sboms/auditwheel.cdx.json": b"{}"}


def test_the_libraries_a_repair_added_are_its_bundled_ones_sorted_by_file_name(tmp_path):
    repaired = make_wheel(tmp_path / "demo-1.0-cp311-cp311-manylinux_2_36_x86_64.whl", REPAIRED)
    assert grafted_libraries(platform_wheel(tmp_path), repaired) == \
        ["libsodium-0f9e8d7c.so.23", "libzmq-a1b2c3d4.so.5.2.4"]


def test_a_repair_that_only_retagged_the_wheel_bundled_nothing(tmp_path):
    original = platform_wheel(tmp_path)
    repaired = make_wheel(tmp_path / "demo-1.0-cp311-cp311-manylinux_2_36_x86_64.whl", {
        EXTENSION: b"ELF", "demo/__init__.py": b"",
        "demo-1.0.dist-info/WHEEL": b"Tag: cp311-cp311-manylinux_2_36_x86_64\n",
        "demo-1.0.dist-info/RECORD": b"new"})
    assert grafted_libraries(original, repaired) == []


class RepairingPodman:
    """Runs the repair container as auditwheel would have: the repaired wheel (made from files)
    in /out/dist, and the driver's result.json."""

    def __init__(self, files: dict[str, bytes] | bytes) -> None:
        self.files = files

    def run(self, spec, log_path):
        out = next(m.source for m in spec.mounts if m.target == "/out")
        name = "demo-1.0-cp311-cp311-manylinux_2_36_x86_64.whl"
        (out / "dist").mkdir()
        if isinstance(self.files, bytes):
            (out / "dist" / name).write_bytes(self.files)
        else:
            make_wheel(out / "dist" / name, self.files)
        (out / "result.json").write_text(json.dumps({
            "status": "repaired", "wheel": name, "tool": "auditwheel 6.4.0",
            "command": ["auditwheel", "repair", "demo-1.0-cp311-cp311-linux_x86_64.whl"]}))
        return RunResult(exit_code=0, timed_out=False, seconds=1.0)


def repair(tmp_path: Path, files) -> dict:
    runtime = SimpleNamespace(image=SimpleNamespace(tag="localhost/image:tag"), limits=SimpleNamespace(
        timeout_seconds=60, memory="1g", pids_limit=64))
    builder = Builder(RepairingPodman(files), tmp_path / "driver", tmp_path / "work")
    result = builder.repair(RepairRequest(platform_wheel(tmp_path), (), runtime,
                                          tmp_path / "demo-1.0.log", "demo==1.0"))
    return dict(result.record)


def test_the_repair_record_lists_the_libraries_auditwheel_bundled(tmp_path):
    record = repair(tmp_path, REPAIRED)
    assert record == {"tool": "auditwheel 6.4.0",
                      "command": ["auditwheel", "repair", "demo-1.0-cp311-cp311-linux_x86_64.whl"],
                      "from": "demo-1.0-cp311-cp311-linux_x86_64.whl",
                      "to": "demo-1.0-cp311-cp311-manylinux_2_36_x86_64.whl",
                      "bundled": ["libsodium-0f9e8d7c.so.23", "libzmq-a1b2c3d4.so.5.2.4"]}


def test_a_repaired_wheel_that_is_not_a_zip_archive_fails_the_repair_naming_it(tmp_path):
    with pytest.raises(BuildError, match="cannot be read as a zip archive") as caught:
        repair(tmp_path, b"not a zip")
    assert "demo==1.0" in str(caught.value)


def shown(record: dict) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(_details(record))
    return console.export_text()


@pytest.fixture
def record() -> dict:
    """A published record as inspect reads it (tests/unit/test_provenance.py's, through JSON)."""
    record = json.loads(json.dumps(make_record().to_dict()))
    record["target"]["platform_python_implementation"] = "CPython"
    return record


def test_inspect_shows_the_repair_and_the_libraries_it_bundled(record):
    record["repair"] = {"tool": "auditwheel 6.4.0", "from": "demo-1.0-linux_x86_64.whl",
                        "to": "demo-1.0-manylinux_2_36_x86_64.whl",
                        "bundled": ["libsodium-0f9e8d7c.so.23", "libzmq-a1b2c3d4.so.5.2.4"]}
    text = shown(record)
    assert "auditwheel 6.4.0: demo-1.0-linux_x86_64.whl -> demo-1.0-manylinux_2_36_x86_64.whl" in text
    assert "bundled libsodium-0f9e8d7c.so.23, libzmq-a1b2c3d4.so.5.2.4" in text


def test_inspect_of_a_record_made_before_bundled_was_recorded_claims_nothing_about_it(record):
    record["repair"] = {"tool": "auditwheel 6.4.0", "from": "a.whl", "to": "b.whl"}
    text = shown(record)
    assert "auditwheel 6.4.0: a.whl -> b.whl" in text and "bundled" not in text


def test_inspect_of_an_unrepaired_wheel_shows_no_repair(record):
    assert record["repair"] is None and "auditwheel" not in shown(record)

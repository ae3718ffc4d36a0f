"""End-to-end: wheels really built by podman, then verified, edited and forged. Only a file whose
sha256 matches the record beside the index is verified; a record inside a wheel is a claim."""

import base64
import csv
import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from conftest import STEVEDORE, run_mirror_builder

pytestmark = pytest.mark.e2e

EMBEDDED = "mirror_builder/build-record.json"


def sha256_hex(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def published_wheel(output: Path) -> Path:
    (wheel,) = (output / "files" / "stevedore").glob(f"stevedore-{STEVEDORE}-*.whl")
    return wheel


def rewrite(wheel: Path, dest: Path, changes: dict[str, bytes], *, fix_record: bool) -> Path:
    """A copy of wheel with members changed; with fix_record, RECORD rewritten to match (as a
    forger would), otherwise left as the build wrote it."""
    with zipfile.ZipFile(wheel) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members.update(changes)
    if fix_record:
        record = next(n for n in members if n.endswith(".dist-info/RECORD"))
        rows = io.StringIO()
        writer = csv.writer(rows, lineterminator="\n")
        for name, data in members.items():
            if name != record:
                digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
                writer.writerow([name, f"sha256={digest.decode()}", len(data)])
        writer.writerow([record, "", ""])
        members[record] = rows.getvalue().encode()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return dest


def test_a_genuine_wheel_copied_anywhere_verifies_against_the_record_beside_the_index(
        stevedore_output, tmp_path):
    copy = tmp_path / "downloads" / published_wheel(stevedore_output).name
    copy.parent.mkdir()
    shutil.copy(published_wheel(stevedore_output), copy)
    proc = run_mirror_builder("verify-wheel", str(copy), "-o", str(stevedore_output), cwd=tmp_path)
    assert proc.stdout.startswith(f"verified: {copy}: sha256 matches the record beside the index")
    shown = run_mirror_builder("inspect", str(copy), "-o", str(stevedore_output), cwd=tmp_path)
    assert shown.stdout.splitlines()[0].startswith("verified: sha256 matches the record beside")
    document = json.loads(run_mirror_builder("inspect", str(copy), "--json", "-o",
                                             str(stevedore_output), cwd=tmp_path).stdout)
    assert document["verification"]["status"] == "verified"
    assert document["records"][0]["wheel_sha256"] == sha256_hex(copy)


def test_an_edited_module_fails_with_exit_1_and_names_the_file(stevedore_output, tmp_path):
    genuine = published_wheel(stevedore_output)
    with zipfile.ZipFile(genuine) as archive:
        module = archive.read("stevedore/__init__.py")
    edited = rewrite(genuine, tmp_path / "edited" / genuine.name,
                     {"stevedore/__init__.py": module + b"\nimport os; os.system('id')\n"},
                     fix_record=False)
    for command in ("verify-wheel", "inspect"):
        proc = run_mirror_builder(command, str(edited), "-o", str(stevedore_output), cwd=tmp_path,
                                  check=False)
        assert proc.returncode == 1
        assert "NOT VERIFIED: " in proc.stdout
        assert "stevedore/__init__.py does not match its RECORD entry" in proc.stdout
        assert "built from" not in proc.stdout


def test_a_wheel_carrying_a_copied_build_record_fails_and_shows_its_own_sha256(
        stevedore_output, tmp_path):
    """The forger's wheel keeps the genuine record and a RECORD rewritten to match its own
    files: consistent in itself, and only the sha256 beside the index gives it away."""
    genuine = published_wheel(stevedore_output)
    forged = rewrite(genuine, tmp_path / "forged" / genuine.name,
                     {"stevedore/payload.py": b"import os; os.system('id')\n"}, fix_record=True)
    with zipfile.ZipFile(forged) as archive:
        assert any(n.endswith(EMBEDDED) for n in archive.namelist())
    proc = run_mirror_builder("inspect", str(forged), "-o", str(stevedore_output), cwd=tmp_path,
                              check=False)
    assert proc.returncode == 1
    flat = " ".join(proc.stdout.split())
    assert flat.startswith("NOT VERIFIED: its sha256 differs from the one in the record beside "
                           "the index")
    assert f"sha256 {sha256_hex(forged)}" in proc.stdout
    assert sha256_hex(genuine) not in proc.stdout
    verified = run_mirror_builder("verify-wheel", str(genuine), str(forged), "-o",
                                  str(stevedore_output), cwd=tmp_path, check=False)
    assert verified.returncode == 1


def test_a_build_record_copied_into_another_real_wheel_fails(stevedore_output, tmp_path):
    genuine = published_wheel(stevedore_output)
    other = next(w for w in sorted((stevedore_output / "files").glob("*/*.whl"))
                 if not w.name.startswith("stevedore-"))
    with zipfile.ZipFile(genuine) as archive:
        record = next(archive.read(n) for n in archive.namelist() if n.endswith(EMBEDDED))
    with zipfile.ZipFile(other) as archive:
        dist_info = next(n.split("/")[0] for n in archive.namelist()
                         if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
    forged = rewrite(other, tmp_path / "forged" / other.name,
                     {f"{dist_info}/{EMBEDDED}": record}, fix_record=True)
    proc = run_mirror_builder("verify-wheel", "--json", str(forged), "-o", str(stevedore_output),
                              cwd=tmp_path, check=False)
    assert proc.returncode == 1
    (verdict,) = json.loads(proc.stdout)["wheels"]
    reasons = {c["name"]: c["reason"] for c in verdict["checks"] if c["status"] == "failed"}
    assert f"the record inside it describes {genuine.name}" in reasons["embedded record"]
    assert "sha256" in reasons

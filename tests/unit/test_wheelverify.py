"""verify_wheel: a wheel is verified only when it is consistent in itself, its embedded record
names it, and its sha256 matches the record kept beside the index."""

from __future__ import annotations

import json
import os
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from forged_wheels import (embedded_member, plain_wheel, publish, read_members, record_hash,
                           sha256_hex, write_wheel)
from mirror_builder.provenance.store import RecordStore
from mirror_builder.provenance.verify import VERIFICATION_SCHEMA, verify_wheel


@pytest.fixture
def output(tmp_path) -> Path:
    return tmp_path / "out"


@pytest.fixture
def genuine(output, tmp_path) -> Path:
    return publish(output, tmp_path / "work")


def verdict_of(wheel: Path, output: Path):
    return verify_wheel(wheel, RecordStore(output))


def failed(verdict) -> dict[str, str]:
    return {c.name: c.reason for c in verdict.checks if c.status == "failed"}


def forged_copy(genuine: Path, folder: Path, changes: dict[str, bytes | None], *,
                rewrite_record: bool, filename: str | None = None) -> Path:
    """The genuine wheel with members replaced (None: removed), written under folder."""
    members = read_members(genuine)
    for member, data in changes.items():
        if data is None:
            members.pop(member)
        else:
            members[member] = data
    folder.mkdir(parents=True, exist_ok=True)
    return write_wheel(folder / (filename or genuine.name), members, rewrite_record=rewrite_record)


def test_a_published_wheel_is_verified_by_every_check(genuine, output):
    verdict = verdict_of(genuine, output)
    assert verdict.status == "verified"
    assert {c.name: c.status for c in verdict.checks} == dict.fromkeys(
        ["file", "file name", "archive", "metadata", "RECORD", "embedded record", "sha256",
         "records agree"], "passed")
    assert verdict.sha256 == sha256_hex(genuine)
    assert verdict.record["wheel_sha256"] == verdict.sha256  # the record beside the index


def test_a_rebuild_with_a_build_tag_is_verified(output, tmp_path):
    wheel = publish(output, tmp_path / "work", number=2)
    assert wheel.name == "demo-1.0-2-py3-none-any.whl"
    assert verdict_of(wheel, output).status == "verified"


def test_an_edited_module_fails_record_and_hash_and_names_the_file(genuine, output, tmp_path):
    forged = forged_copy(genuine, tmp_path / "forged", {"demo/__init__.py": b"evil()\n"},
                         rewrite_record=False)
    verdict = verdict_of(forged, output)
    assert verdict.status == "failed"
    reasons = failed(verdict)
    assert set(reasons) == {"RECORD", "sha256"}
    assert reasons["RECORD"] == "demo/__init__.py does not match its RECORD entry"
    assert verdict.record is None  # nothing describes this file


def test_an_edited_module_with_a_rewritten_record_is_caught_only_by_the_index_record(
        genuine, output, tmp_path):
    forged = forged_copy(genuine, tmp_path / "forged", {"demo/__init__.py": b"evil()\n"},
                         rewrite_record=True)
    assert set(failed(verdict_of(forged, output))) == {"sha256"}
    # With no record beside an index, the forgery is consistent: only a claim, never "verified".
    alone = verdict_of(forged, tmp_path / "no-index")
    assert alone.status == "unverified"
    assert alone.check("sha256").status == "skipped"


def test_a_record_copied_into_a_wheel_of_another_project_is_named_as_someone_elses(
        genuine, output, tmp_path):
    other = plain_wheel(tmp_path / "other", "evil", "1.0")
    members = read_members(other)
    members["evil-1.0.dist-info/mirror_builder/build-record.json"] = read_members(genuine)[
        embedded_member(genuine)]
    forged = write_wheel(other, members)
    reasons = failed(verdict_of(forged, output))
    assert reasons["embedded record"] == (
        "the record inside it describes demo-1.0-py3-none-any.whl; "
        "the record inside it is for the project demo")


def test_a_record_of_another_version_is_refused(output, tmp_path):
    newer = publish(output, tmp_path / "work-1.1", version="1.1")
    older = plain_wheel(tmp_path / "older", "demo", "1.0")
    members = read_members(older)
    members["demo-1.0.dist-info/mirror_builder/build-record.json"] = read_members(newer)[
        embedded_member(newer)]
    reasons = failed(verdict_of(write_wheel(older, members), output))
    assert "the record inside it is for version 1.1, not 1.0" in reasons["embedded record"]


def test_a_member_removed_from_record_is_an_unlisted_member(genuine, output, tmp_path):
    members = read_members(genuine)
    record = members["demo-1.0.dist-info/RECORD"].decode().splitlines()
    members["demo-1.0.dist-info/RECORD"] = "\n".join(
        r for r in record if not r.startswith("demo/__init__.py,")).encode() + b"\n"
    (tmp_path / "forged").mkdir()
    forged = write_wheel(tmp_path / "forged" / genuine.name, members, rewrite_record=False)
    reasons = failed(verdict_of(forged, output))
    assert reasons["RECORD"] == "demo/__init__.py is not listed in RECORD"


def test_an_extra_file_not_in_record_is_refused(genuine, output, tmp_path):
    forged = forged_copy(genuine, tmp_path / "forged", {"demo/backdoor.py": b"evil()\n"},
                         rewrite_record=False)
    reasons = failed(verdict_of(forged, output))
    assert reasons["RECORD"] == "demo/backdoor.py is not listed in RECORD"


def test_a_file_record_lists_twice_is_refused(genuine, output, tmp_path):
    members = read_members(genuine)
    line = f"demo/__init__.py,{record_hash(b'x')},1\n".encode()
    members["demo-1.0.dist-info/RECORD"] = line + members["demo-1.0.dist-info/RECORD"]
    (tmp_path / "forged").mkdir()
    forged = write_wheel(tmp_path / "forged" / genuine.name, members, rewrite_record=False)
    reasons = failed(verdict_of(forged, output))
    assert "RECORD lists demo/__init__.py more than once" in reasons["RECORD"]


def test_signatures_of_record_need_no_entry(output, tmp_path):
    wheel = plain_wheel(tmp_path / "up")
    members = read_members(wheel) | {"demo-1.0.dist-info/RECORD.jws": b"signature"}
    signed = write_wheel(wheel, members, rewrite_record=False)
    assert "RECORD" not in failed(verdict_of(signed, output))


def test_a_member_outside_the_install_tree_or_a_link_is_refused(genuine, output, tmp_path):
    forged = forged_copy(genuine, tmp_path / "forged", {}, rewrite_record=True)
    with zipfile.ZipFile(forged, "a") as archive:
        archive.writestr("../../etc/cron.d/evil", b"x")
        link = zipfile.ZipInfo("demo/passwd")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    reason = failed(verdict_of(forged, output))["archive"]
    assert "archive member '../../etc/cron.d/evil' points outside the install tree" in reason
    assert "archive member demo/passwd is a symbolic link" in reason


def test_a_file_that_is_not_a_zip_fails_with_its_own_sha256(output, tmp_path):
    bogus = tmp_path / "demo-1.0-py3-none-any.whl"
    bogus.write_bytes(b"not a zip\n")
    verdict = verdict_of(bogus, output)
    assert failed(verdict)["archive"].startswith("not a readable zip archive")
    assert verdict.sha256 == sha256_hex(bogus)


def test_a_link_instead_of_a_file_is_refused(genuine, output, tmp_path):
    link = tmp_path / genuine.name
    os.symlink(genuine, link)
    assert failed(verdict_of(link, output)) == {"file": "not a regular file"}


def test_a_renamed_genuine_wheel_is_not_the_wheel_its_record_describes(genuine, output, tmp_path):
    renamed = tmp_path / "demo-1.0-1-py3-none-any.whl"
    shutil.copy(genuine, renamed)
    verdict = verdict_of(renamed, output)
    assert "the record inside it describes demo-1.0-py3-none-any.whl" in failed(verdict)[
        "embedded record"]


def test_records_that_disagree_beyond_the_outside_only_fields_fail(genuine, output):
    path = RecordStore(output).record_path("demo", genuine.name)
    beside = json.loads(path.read_text())
    beside["source"]["url"] = "https://elsewhere.example/demo-1.0.tar.gz"
    path.write_text(json.dumps(beside))
    verdict = verdict_of(genuine, output)
    assert failed(verdict) == {"records agree": "the record inside it and the one beside the "
                                                "index differ in source"}


def test_an_unreadable_record_beside_the_index_is_a_failure_not_a_pass(genuine, output):
    RecordStore(output).record_path("demo", genuine.name).write_text("{not json")
    reason = failed(verdict_of(genuine, output))["sha256"]
    assert "is unreadable" in reason


@pytest.mark.parametrize("built_from_source, status", [(False, "verified"), (True, "failed")])
def test_a_wheel_without_a_record_is_verified_only_as_a_pre_built_upstream_wheel(
        output, tmp_path, built_from_source, status):
    upstream = plain_wheel(tmp_path / "up")
    store = RecordStore(output)
    store.folder("demo").mkdir(parents=True)
    store.record_path("demo", upstream.name).write_text(json.dumps({
        "name": "demo", "version": "1.0", "wheel": upstream.name,
        "built_from_source": built_from_source, "wheel_sha256": sha256_hex(upstream)}))
    verdict = verdict_of(upstream, output)
    assert verdict.status == status
    assert verdict.check("records agree").status == "skipped"


def test_a_wheel_nothing_describes_says_so(output, tmp_path):
    verdict = verdict_of(plain_wheel(tmp_path / "up"), output)
    assert verdict.describes_nothing
    assert verdict.status == "failed"
    assert failed(verdict)["embedded record"].startswith("it carries no build record")


def test_the_verdict_document_is_versioned_and_gives_both_hashes(genuine, output, tmp_path):
    forged = forged_copy(genuine, tmp_path / "forged", {"demo/__init__.py": b"evil()\n"},
                         rewrite_record=True)
    document = verdict_of(forged, output).to_dict()
    assert document["schema"] == VERIFICATION_SCHEMA
    assert document["sha256"] == sha256_hex(forged)
    assert document["index_record_sha256"] == sha256_hex(genuine)
    assert [c["name"] for c in document["checks"] if c["status"] == "failed"] == ["sha256"]


def test_the_sha256_is_compared_even_when_the_archive_cannot_be_read(genuine, output, tmp_path):
    broken = tmp_path / "broken" / genuine.name
    broken.parent.mkdir()
    broken.write_bytes(genuine.read_bytes()[:-40])  # cut into the central directory
    reasons = failed(verdict_of(broken, output))
    assert reasons["archive"].startswith("not a readable zip archive")
    assert reasons["sha256"].startswith("its sha256 differs")

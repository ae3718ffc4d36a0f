"""End-to-end: a real bootstrap signs every statement it writes with the key from settings,
publishes the public key at the output's root, and inspect --verify (and securesystemslib, a
verifier we did not write) accept the signatures; another key or a changed statement fails."""

import base64
import json
import shutil

import pytest
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from conftest import STEVEDORE, run_mirror_builder
from mirror_builder.layout import OutputLayout
from mirror_builder.provenance.signing import generate_key, key_id, load_public

pytestmark = pytest.mark.e2e


def envelopes(out):
    return {p.name: json.loads(p.read_text()) for p in sorted(out.glob("records/*/*.intoto.json"))}


def test_every_statement_is_signed_and_another_tool_verifies_it(stevedore_output):
    output = OutputLayout(stevedore_output)
    public = load_public(output.public_key)
    trusted = SSlibKey.from_crypto(public, keyid=key_id(public))
    found = envelopes(stevedore_output)
    assert len(found) >= 3
    for name, envelope in found.items():
        assert envelope["payloadType"] == "application/vnd.in-toto+json", name
        Envelope.from_dict(envelope).verify([trusted], 1)
        statement = json.loads(base64.b64decode(envelope["payload"]))
        wheel = statement["subject"][0]["name"]
        assert name == f"{wheel}.intoto.json"
    assert output.key_by_id(key_id(public)).read_bytes() == output.public_key.read_bytes()


def test_inspect_verify_accepts_our_signatures_and_refuses_a_changed_one(stevedore_output,
                                                                       tmp_path):
    ok = run_mirror_builder("inspect", f"stevedore=={STEVEDORE}", "--verify", "-o",
                            str(stevedore_output), cwd=tmp_path)
    assert "signature holds" in " ".join(ok.stderr.split())

    copy = tmp_path / "copy"
    shutil.copytree(stevedore_output, copy)
    (path,) = copy.glob("records/stevedore/*.intoto.json")
    envelope = json.loads(path.read_text())
    payload = bytearray(base64.b64decode(envelope["payload"]))
    payload[payload.index(b'"stevedore"') + 1] ^= 0x20  # one byte: "Stevedore"
    envelope["payload"] = base64.b64encode(bytes(payload)).decode()
    path.write_text(json.dumps(envelope))
    bad = run_mirror_builder("inspect", f"stevedore=={STEVEDORE}", "--verify", "-o", str(copy),
                             cwd=tmp_path, check=False)
    assert bad.returncode == 1
    assert "signature does not hold" in " ".join(bad.stderr.split())
    with pytest.raises(VerificationError):
        public = load_public(OutputLayout(copy).public_key)
        Envelope.from_dict(envelope).verify([SSlibKey.from_crypto(public, keyid=key_id(public))],
                                            1)

    _, stranger = generate_key(tmp_path / "stranger.key")
    other = run_mirror_builder("inspect", f"stevedore=={STEVEDORE}", "--verify", "--key",
                               str(stranger), "-o", str(stevedore_output), cwd=tmp_path,
                               check=False)
    assert other.returncode == 1 and "no signature by key" in " ".join(other.stderr.split())


def test_a_missing_signing_key_stops_a_run_naming_the_command_that_makes_one(tmp_path):
    from conftest import write_settings

    settings = write_settings(tmp_path / "conf", signing=f"{{key: {tmp_path / 'absent.key'}}}")
    proc = run_mirror_builder("bootstrap", "six==1.17.0", "-o", "out", cwd=tmp_path,
                              settings=settings, check=False)
    assert proc.returncode == 1
    assert "absent.key does not exist; make one with mirror-builder keys generate" in \
        " ".join(proc.stderr.split())
    assert not (tmp_path / "out" / "files").exists()


def test_each_wheels_project_page_points_at_its_signed_statement(stevedore_output):
    output = OutputLayout(stevedore_output)
    public = load_public(output.public_key)
    trusted = SSlibKey.from_crypto(public, keyid=key_id(public))
    for page in output.simple.glob("*/index.json"):
        for entry in json.loads(page.read_text())["files"]:
            statement_file = (page.parent / entry["provenance"]).resolve()
            envelope = json.loads(statement_file.read_text())
            Envelope.from_dict(envelope).verify([trusted], 1)
            statement = json.loads(base64.b64decode(envelope["payload"]))
            assert statement["subject"] == [{"name": entry["filename"],
                                             "digest": {"sha256": entry["hashes"]["sha256"]}}]
            assert f'data-provenance="{entry["provenance"]}"' in \
                (page.parent / "index.html").read_text()


def test_serve_offers_each_statement_and_the_key_at_the_urls_the_pages_name(stevedore_output,
                                                                           served):
    import urllib.parse
    import urllib.request

    base, _ = served(stevedore_output)
    page = json.loads(urllib.request.urlopen(urllib.request.Request(
        f"{base}/simple/stevedore/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}),
        timeout=10).read())
    entry = page["files"][0]
    url = urllib.parse.urljoin(f"{base}/simple/stevedore/", entry["provenance"])
    envelope = json.loads(urllib.request.urlopen(url, timeout=10).read())
    key = urllib.request.urlopen(f"{base}/signing-key.pub", timeout=10).read()
    assert key == OutputLayout(stevedore_output).public_key.read_bytes()
    public = load_public(OutputLayout(stevedore_output).public_key)
    Envelope.from_dict(envelope).verify([SSlibKey.from_crypto(public, keyid=key_id(public))], 1)

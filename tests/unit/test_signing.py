"""Signed provenance: a key made once (0600, never shown), every statement written in a DSSE
envelope that our verifier and a verifier we did not write (securesystemslib) accept, and that
both refuse after a one-byte change."""

import base64
import json
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from mirror_builder.layout import OutputLayout
from mirror_builder.provenance.signing import (SigningError, check_signed_statement,
                                               generate_key, load_public, load_signer,
                                               open_envelope, publish_key)
from mirror_builder.provenance.store import RecordStore

STATEMENT = {"_type": "https://in-toto.io/Statement/v1",
             "subject": [{"name": "demo-1.0-py3-none-any.whl", "digest": {"sha256": "a" * 64}}],
             "predicateType": "https://slsa.dev/provenance/v1", "predicate": {"x": 1}}


@pytest.fixture
def signer(tmp_path):
    key, _ = generate_key(tmp_path / "keys" / "signing.key")
    return load_signer(key)


def test_a_key_is_made_private_with_its_public_key_beside_it_and_kept(tmp_path):
    key, public = generate_key(tmp_path / "signing.key")
    assert key.stat().st_mode & 0o777 == 0o600
    assert public.name == "signing.key.pub" and b"PUBLIC KEY" in public.read_bytes()
    with pytest.raises(SigningError, match="exists; keep it"):
        generate_key(key)
    before = key.read_bytes()
    generate_key(key, force=True)
    assert key.read_bytes() != before


def test_a_missing_open_or_wrong_key_is_a_clear_error(tmp_path):
    with pytest.raises(SigningError, match="does not exist; make one with mirror-builder keys generate"):
        load_signer(tmp_path / "none.key")
    key, _ = generate_key(tmp_path / "open.key")
    key.chmod(0o644)
    with pytest.raises(SigningError, match="can be read by other users"):
        load_signer(key)
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a key")
    garbage.chmod(0o600)
    with pytest.raises(SigningError, match="not an unencrypted PEM private key"):
        load_signer(garbage)
    other = tmp_path / "ec.key"
    other.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    other.chmod(0o600)
    with pytest.raises(SigningError, match="not an Ed25519 key"):
        load_signer(other)


def test_the_private_key_never_shows_in_a_signers_repr(signer):
    pem = signer.source.read_text()
    body = "".join(pem.splitlines()[1:-1])
    assert body not in repr(signer) and "PRIVATE" not in repr(signer)


def test_our_verifier_opens_a_signed_statement_and_refuses_one_changed_byte(signer):
    envelope = signer.envelope(STATEMENT)
    assert open_envelope(envelope, signer.public) == STATEMENT
    payload = bytearray(base64.b64decode(envelope["payload"]))
    payload[payload.index(b"demo")] ^= 1
    forged = dict(envelope, payload=base64.b64encode(bytes(payload)).decode())
    with pytest.raises(SigningError, match="does not match the statement"):
        open_envelope(forged, signer.public)
    with pytest.raises(SigningError, match="not a DSSE envelope"):
        open_envelope(dict(envelope, payloadType="text/plain"), signer.public)


def test_another_keys_signature_is_not_ours(signer, tmp_path):
    other = load_signer(generate_key(tmp_path / "other.key")[0])
    with pytest.raises(SigningError, match="no signature by key"):
        open_envelope(other.envelope(STATEMENT), signer.public)


def third_party_key(signer) -> SSlibKey:
    """The public key as securesystemslib holds it, under the key id our signatures name."""
    return SSlibKey.from_crypto(load_public(signer.source.with_name("signing.key.pub")),
                                keyid=signer.keyid)


def test_securesystemslib_accepts_our_signature_and_refuses_one_changed_byte(signer):
    envelope = signer.envelope(STATEMENT)
    accepted = Envelope.from_dict(json.loads(json.dumps(envelope))).verify(
        [third_party_key(signer)], 1)
    assert list(accepted) == [signer.keyid]
    payload = bytearray(base64.b64decode(envelope["payload"]))
    payload[-3] ^= 1
    forged = dict(envelope, payload=base64.b64encode(bytes(payload)).decode())
    with pytest.raises(VerificationError):
        Envelope.from_dict(forged).verify([third_party_key(signer)], 1)


def test_a_record_store_writes_each_statement_signed_and_its_key_is_found_by_id(signer, tmp_path):
    from forged_wheels import build_record

    output = OutputLayout(tmp_path / "out")
    publish_key(output, signer)
    assert output.public_key.read_bytes() == output.key_by_id(signer.keyid).read_bytes()
    record = build_record("demo", "1.0", "demo-1.0-py3-none-any.whl").to_dict(
        wheel_sha256="b" * 64)
    log = tmp_path / "build.log"
    log.write_text("built\n")
    store = RecordStore(output, signer)
    store.write(record, log)
    statement, envelope = store.statement("demo", record["wheel"])
    assert envelope is not None and statement["subject"][0]["digest"]["sha256"] == "b" * 64
    path = store.slsa_path("demo", record["wheel"])
    assert check_signed_statement(path, record["wheel"], "b" * 64, None, output) == signer.keyid
    with pytest.raises(SigningError, match="not demo-1.0-py3-none-any.whl with sha256 cccc"):
        check_signed_statement(path, record["wheel"], "c" * 64, None, output)
    os.remove(output.key_by_id(signer.keyid))
    with pytest.raises(SigningError, match="signed by a key that is not among the output's keys"):
        check_signed_statement(path, record["wheel"], "b" * 64, None, output)
    RecordStore(output).write(record, log)  # a run without a key
    with pytest.raises(SigningError, match="written unsigned"):
        check_signed_statement(path, record["wheel"], "b" * 64, signer.public, output)

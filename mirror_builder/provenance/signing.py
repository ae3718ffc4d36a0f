"""Signed statements: every in-toto statement we write goes out in a DSSE envelope signed with
the index's Ed25519 key, and anyone with the public key (published at the index's root) can
check it, with our tools or with any DSSE verifier (securesystemslib, in-toto, cosign).

    envelope = {"payloadType": "application/vnd.in-toto+json",
                "payload": base64(statement),
                "signatures": [{"keyid": sha256(public key, DER), "sig": base64(signature)}]}

The signature is over DSSE's pre-authentication encoding (PAE) of the type and the payload, so
neither can be swapped for another.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (Ed25519PrivateKey,
                                                               Ed25519PublicKey)

from mirror_builder.errors import MirrorBuilderError
from mirror_builder.files import atomic_write_text
from mirror_builder.layout import OutputLayout

IN_TOTO_TYPE = "application/vnd.in-toto+json"


class SigningError(MirrorBuilderError):
    """A key cannot be made, read or used, or a signature does not hold."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1's pre-authentication encoding."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def key_id(public: Ed25519PublicKey) -> str:
    der = public.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class Signer:
    """Signs with the private key it was loaded from; never writes or logs it."""

    private: Ed25519PrivateKey
    source: Path

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def keyid(self) -> str:
        return key_id(self.public)

    def envelope(self, statement: dict[str, Any]) -> dict[str, Any]:
        payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
        signature = self.private.sign(pae(IN_TOTO_TYPE, payload))
        return {"payloadType": IN_TOTO_TYPE,
                "payload": base64.b64encode(payload).decode(),
                "signatures": [{"keyid": self.keyid,
                                "sig": base64.b64encode(signature).decode()}]}

    def __repr__(self) -> str:  # a key in a traceback or a log is a leaked key
        return f"Signer(key {self.source}, keyid {self.keyid[:16]}...)"


def publish_key(output: OutputLayout, signer: Signer) -> None:
    """Put the signer's public key at the output's root (signing-key.pub) and in keys/ by its
    id, where clients and inspect --verify find it."""
    pem = public_pem(signer.public).decode()
    for path in (output.key_by_id(signer.keyid), output.public_key):
        if not path.is_file() or path.read_text() != pem:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, pem)


def generate_key(path: Path, force: bool = False) -> tuple[Path, Path]:
    """A new Ed25519 key at path (PEM, 0600) and its public key at path.pub; an existing key is
    kept unless force."""
    public_path = path.with_name(path.name + ".pub")
    if path.exists() and not force:
        raise SigningError(f"{path} exists; keep it (statements already signed with it verify "
                           f"only with it) or give --force to replace it")
    private = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)
    public_path.write_bytes(public_pem(private.public_key()))
    return path, public_path


def load_signer(path: Path) -> Signer:
    """The signer of the key file at path; a clear error if it is missing, unreadable, open to
    other users or not an Ed25519 private key."""
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except FileNotFoundError:
        raise SigningError(f"signing key {path} does not exist; make one with "
                           f"mirror-builder keys generate") from None
    except OSError as exc:
        raise SigningError(f"signing key {path} cannot be read: {exc.strerror}") from None
    if mode & 0o077:
        raise SigningError(f"signing key {path} can be read by other users (mode "
                           f"{mode & 0o777:o}); chmod 600 it")
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise SigningError(f"signing key {path} is not an unencrypted PEM private key") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise SigningError(f"signing key {path} is not an Ed25519 key")
    return Signer(private, path)


def load_public(path: Path) -> Ed25519PublicKey:
    try:
        public = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise SigningError(f"public key {path} cannot be read: {exc.strerror}") from None
    except ValueError:
        raise SigningError(f"{path} is not a PEM public key") from None
    if not isinstance(public, Ed25519PublicKey):
        raise SigningError(f"public key {path} is not an Ed25519 key")
    return public


def open_envelope(envelope: object, public: Ed25519PublicKey) -> dict[str, Any]:
    """The statement in a DSSE envelope, if a signature in it is public's over exactly this
    payload type and payload; a SigningError otherwise."""
    if not isinstance(envelope, dict) or envelope.get("payloadType") != IN_TOTO_TYPE:
        raise SigningError("not a DSSE envelope of an in-toto statement")
    try:
        payload = base64.b64decode(envelope["payload"], validate=True)
        signatures = [(s["keyid"], base64.b64decode(s["sig"], validate=True))
                      for s in envelope["signatures"]]
    except (KeyError, TypeError, ValueError):
        raise SigningError("the envelope is malformed") from None
    wanted = key_id(public)
    for keyid, signature in signatures:
        if keyid != wanted:
            continue
        try:
            public.verify(signature, pae(IN_TOTO_TYPE, payload))
        except InvalidSignature:
            raise SigningError("the signature does not match the statement: it was changed "
                               "after signing, or signed by another key") from None
        return json.loads(payload)
    raise SigningError(f"no signature by key {wanted[:16]}... in the envelope")


def check_signed_statement(path: Path, wheel: str, sha256: str,
                           public: Ed25519PublicKey | None, output: OutputLayout) -> str:
    """Check the statement at path: signed by public (or, without one, by the key its
    signature names among the output's keys/), about exactly this wheel and sha256. Its key
    id on success; a SigningError saying what is wrong otherwise."""
    try:
        envelope = json.loads(path.read_text())
    except (OSError, ValueError):
        raise SigningError(f"{path.name}: missing or not JSON") from None
    if isinstance(envelope, dict) and "payloadType" not in envelope:
        raise SigningError(f"{path.name}: written unsigned (no signing: key in the settings "
                           f"of the run that built it)")
    if public is None:
        keyids = [s.get("keyid") for s in envelope.get("signatures", [])
                  if isinstance(s, dict) and isinstance(s.get("keyid"), str)]
        known = [output.key_by_id(k) for k in keyids
                 if len(k) == 64 and set(k) <= set("0123456789abcdef")
                 and output.key_by_id(k).is_file()]
        if not known:
            raise SigningError(f"{path.name}: signed by a key that is not among the output's "
                               f"keys ({output.key_by_id('<keyid>').parent})")
        public = load_public(known[0])
    statement = open_envelope(envelope, public)
    subjects = [(s.get("name"), (s.get("digest") or {}).get("sha256"))
                for s in statement.get("subject", []) if isinstance(s, dict)]
    if subjects != [(wheel, sha256)]:
        raise SigningError(f"{path.name}: the signed statement is about {subjects}, not "
                           f"{wheel} with sha256 {sha256[:16]}...")
    return key_id(public)

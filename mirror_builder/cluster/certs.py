"""The build cluster's certificates: one CA, and a certificate for each member (the scheduler,
the coordinator, each worker), so that every connection in the cluster is mutual TLS.

A Dask worker runs what its scheduler sends: only members holding a certificate of this CA may
talk to it. Every member both listens and dials (workers serve each other and the scheduler,
and connect out), so member certificates allow server and client use. Keys are written 0600;
the CA's key belongs on the machine that makes certificates, not on the workers.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mirror_builder.errors import UsageError

CA_NAME = "ca"
CA_DAYS = 3650
MEMBER_DAYS = 825  # the longest validity clients still accept for a server certificate
DEFAULT_HOSTS = ("127.0.0.1", "localhost")
_MEMBER = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


@dataclass(frozen=True)
class IssuedFiles:
    """Where a certificate and its key were written."""

    certificate: Path
    key: Path


def make_ca(folder: Path, *, force: bool = False) -> IssuedFiles:
    """A new CA in folder (ca.pem, ca.key). An existing one is kept unless force: replacing it
    would make every member certificate issued so far worthless."""
    files = _files(folder, CA_NAME)
    if files.certificate.exists() and not force:
        raise UsageError(f"{files.certificate} exists: the cluster already has a CA (--force "
                         f"replaces it, and every member certificate must then be made again)")
    key = ec.generate_private_key(ec.SECP256R1())
    name = _subject("mirror-builder cluster CA")
    now = _now()
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256()))
    _write(files, key, certificate)
    return files


def make_member(folder: Path, member: str, hosts: tuple[str, ...] = DEFAULT_HOSTS, *,
                force: bool = False) -> IssuedFiles:
    """A certificate for member (a name like scheduler, coordinator, worker-1), signed by the
    CA in folder, valid for hosts (IP addresses or DNS names)."""
    if not _MEMBER.match(member) or member == CA_NAME:
        raise UsageError(f"{member!r} is not a member name (lower-case letters, digits, . _ -; "
                         f"not {CA_NAME!r})")
    ca = _files(folder, CA_NAME)
    if not ca.certificate.is_file() or not ca.key.is_file():
        raise UsageError(f"{folder} has no CA ({ca.certificate.name} and {ca.key.name}); make "
                         f"one first: mirror-builder cluster certs {folder}")
    files = _files(folder, member)
    if files.certificate.exists() and not force:
        raise UsageError(f"{files.certificate} exists (--force makes a new one)")
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    ca_certificate = x509.load_pem_x509_certificate(ca.certificate.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    certificate = (
        x509.CertificateBuilder().subject_name(_subject(member))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(min(now + datetime.timedelta(days=MEMBER_DAYS),
                             ca_certificate.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([_alt_name(h) for h in hosts]),
                       critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca_certificate.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256()))
    _write(files, key, certificate)
    return files


def _files(folder: Path, name: str) -> IssuedFiles:
    return IssuedFiles(folder / f"{name}.pem", folder / f"{name}.key")


def _subject(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _alt_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9*]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?", host):
            raise UsageError(f"{host!r} is neither an IP address nor a host name") from None
        return x509.DNSName(host)


def _write(files: IssuedFiles, key: ec.EllipticCurvePrivateKey,
           certificate: x509.Certificate) -> None:
    """The key first, created 0600 (never readable by others, not even for a moment), then the
    certificate; each replaced whole."""
    files.key.parent.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    for path, data, mode in ((files.key, key_bytes, 0o600),
                             (files.certificate,
                              certificate.public_bytes(serialization.Encoding.PEM), 0o644)):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)

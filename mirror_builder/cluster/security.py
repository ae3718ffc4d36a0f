"""TLS contexts for the members of a build cluster: mutual TLS with the cluster's own CA."""

from __future__ import annotations

import ssl
from pathlib import Path

from mirror_builder.errors import UsageError


def member_files(folder: Path, member: str) -> tuple[Path, Path, Path]:
    """The CA certificate, and the member's certificate and key, in folder (cluster certs)."""
    files = (folder / "ca.pem", folder / f"{member}.pem", folder / f"{member}.key")
    for path in files:
        if not path.is_file():
            raise UsageError(f"{path}: missing; make the cluster's certificates with "
                             f"mirror-builder cluster certs {folder} --member {member}")
    return files


def server_context(folder: Path, member: str) -> ssl.SSLContext:
    """Listens as member; only peers with a certificate of the cluster's CA get in."""
    ca, certificate, key = member_files(folder, member)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certificate, key)
    context.load_verify_locations(ca)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_files(folder: Path, member: str) -> tuple[str, tuple[str, str]]:
    """For requests: verify= (the cluster's CA, not the system's) and cert= (the member's)."""
    ca, certificate, key = member_files(folder, member)
    return str(ca), (str(certificate), str(key))

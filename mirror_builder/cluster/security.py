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


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")

# The scheduler's own settings when mirror-builder starts it (cluster scheduler): its HTTP
# server answers /health only (Dask's dashboard and /info pages need no credentials), and a
# build that kills its worker is tried on at most allowed-failures + 1 workers.
HARDENED_SCHEDULER = {
    "distributed.scheduler.http.routes": ["distributed.http.health"],
    "distributed.worker.http.routes": ["distributed.http.health"],
    "distributed.scheduler.allowed-failures": 2,
    "distributed.scheduler.worker-ttl": "60s",
    # A build whose target has no worker left fails after this, instead of waiting forever.
    "distributed.scheduler.no-workers-timeout": "120s",
}
HARDENED_WORKER = {"distributed.worker.http.routes": ["distributed.http.health"]}


def check_address(address: str, insecure: bool = False) -> str:
    """The scheduler's address, if the cluster's traffic is mutual TLS. A tcp:// address is
    refused: a Dask worker runs whatever its scheduler sends, so anyone who can reach a
    plain-TCP scheduler can run code on every build host. --insecure allows tcp:// to a loopback
    address only, for tests."""
    scheme, sep, rest = address.partition("://")
    if not sep or not rest:
        raise UsageError(f"{address!r} is not a scheduler address (tls://host:port)")
    if scheme == "tls":
        return address
    if scheme != "tcp":
        raise UsageError(f"{address}: the scheduler's address must be tls://host:port")
    host = rest.rpartition(":")[0] or rest
    if not insecure:
        raise UsageError(f"{address}: refusing a plain-TCP scheduler (a Dask worker runs what "
                         f"its scheduler sends; use tls:// with the cluster's certificates, or "
                         f"--insecure for a loopback test)")
    if host not in LOOPBACK_HOSTS:
        raise UsageError(f"{address}: --insecure allows tcp:// to a loopback address only")
    return address


def dask_security(folder: Path | None, member: str, roles: tuple[str, ...]):
    """Dask's Security for member, acting in roles (client, worker, scheduler), every
    connection encrypted and authenticated both ways; plain TCP (insecure tests) when folder is
    None."""
    from distributed.security import Security

    if folder is None:
        return Security(require_encryption=False)
    ca, certificate, key = member_files(folder, member)
    files = {}
    for role in roles:
        files[f"tls_{role}_cert"], files[f"tls_{role}_key"] = str(certificate), str(key)
    return Security(tls_ca_file=str(ca), require_encryption=True, **files)

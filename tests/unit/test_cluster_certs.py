"""The build cluster's certificates (mirror-builder cluster certs): a CA and member
certificates with which every connection is mutual TLS. Proved with real TLS handshakes on
127.0.0.1: a member is let in; no certificate, or one from another CA, is not."""

import socket
import ssl
import stat
import threading

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from mirror_builder.cli.app import main
from mirror_builder.cluster.certs import make_ca, make_member
from mirror_builder.errors import UsageError


@pytest.fixture
def cluster(tmp_path):
    folder = tmp_path / "certs"
    make_ca(folder)
    for member in ("scheduler", "worker"):
        make_member(folder, member)
    return folder


def load(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_member_certificates_are_signed_by_the_ca_for_server_and_client_use(cluster):
    ca = load(cluster / "ca.pem")
    worker = load(cluster / "worker.pem")
    worker.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not worker.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usages = worker.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    names = worker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1"}
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert worker.not_valid_after_utc <= ca.not_valid_after_utc


def test_keys_are_readable_by_their_owner_only(cluster):
    for key in cluster.glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


def test_an_existing_ca_or_member_is_not_replaced_unless_forced(cluster):
    before = (cluster / "ca.pem").read_bytes()
    with pytest.raises(UsageError, match="already has a CA"):
        make_ca(cluster)
    with pytest.raises(UsageError, match="worker.pem exists"):
        make_member(cluster, "worker")
    make_member(cluster, "worker", force=True)
    load(cluster / "worker.pem").verify_directly_issued_by(load(cluster / "ca.pem"))
    assert (cluster / "ca.pem").read_bytes() == before


@pytest.mark.parametrize(("member", "hosts", "problem"), [
    ("../evil", ("127.0.0.1",), "is not a member name"),
    ("ca", ("127.0.0.1",), "is not a member name"),
    ("worker-2", ("bad host!",), "neither an IP address nor a host name"),
])
def test_bad_member_names_and_hosts_are_refused(cluster, member, hosts, problem):
    with pytest.raises(UsageError, match=problem):
        make_member(cluster, member, hosts)
    assert not list(cluster.parent.glob("evil*"))


def test_a_member_needs_the_ca_first(tmp_path):
    with pytest.raises(UsageError, match="has no CA"):
        make_member(tmp_path, "worker")


# -- real handshakes on loopback -------------------------------------------------------------

def serve_once(cluster, results):
    """A TLS server (the scheduler's certificate) that requires a client certificate of the
    cluster's CA; accepts up to three connections, recording each handshake's outcome."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cluster / "scheduler.pem", cluster / "scheduler.key")
    context.load_verify_locations(cluster / "ca.pem")
    context.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def run():
        for _ in range(3):
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(connection, server_side=True) as tls:
                    results.append(tls.getpeercert()["subject"])
                    tls.sendall(b"ok")
            except ssl.SSLError:
                results.append("refused")
            except OSError as exc:
                results.append(f"broken: {exc}")
        listener.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


def connect(port, ca, certificate=None):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca)
    if certificate:
        context.load_cert_chain(certificate, certificate.with_suffix(".key"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return tls.recv(2)


def test_a_member_is_let_in_and_no_certificate_or_another_cas_is_not(cluster, tmp_path):
    rogue = tmp_path / "rogue"
    make_ca(rogue)
    make_member(rogue, "worker")
    results = []
    port, server = serve_once(cluster, results)

    assert connect(port, cluster / "ca.pem", cluster / "worker.pem") == b"ok"
    with pytest.raises((ssl.SSLError, ConnectionError)):
        connect(port, cluster / "ca.pem")  # no client certificate
    with pytest.raises((ssl.SSLError, ConnectionError)):
        connect(port, cluster / "ca.pem", rogue / "worker.pem")  # another CA's

    server.join(10)
    assert results == [((("commonName", "worker"),),), "refused", "refused"]


# -- the command -----------------------------------------------------------------------------

def test_cluster_certs_makes_a_ca_and_the_default_members_and_refuses_to_overwrite(
        tmp_path, capsys):
    folder = tmp_path / "certs"
    assert main(["cluster", "certs", str(folder), "--host", "10.0.0.5"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == [
        "ca.key", "ca.pem", "coordinator.key", "coordinator.pem", "scheduler.key",
        "scheduler.pem", "worker.key", "worker.pem"]
    names = load(folder / "worker.pem").extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]

    assert main(["cluster", "certs", str(folder), "--member", "worker-2"]) == 0
    load(folder / "worker-2.pem").verify_directly_issued_by(load(folder / "ca.pem"))
    capsys.readouterr()
    assert main(["cluster", "certs", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "scheduler.pem exists" in err and "Traceback" not in err

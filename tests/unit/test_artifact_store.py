"""The artifact store workers and the coordinator move files through (cluster/artifacts.py):
the build cache's blobs by sha256 over mutual TLS on 127.0.0.1. A member fetches and pushes;
everything else is refused: other paths, bad digests, bytes that are not their digest, bodies
over the bound, and peers without a member certificate. Request counts are small and bounded."""

import hashlib
import socket
import ssl

import pytest
import requests

from mirror_builder.buildcache.store import BuildCache
from mirror_builder.cluster.artifacts import ArtifactClient, ArtifactError, ArtifactServer
from mirror_builder.cluster.certs import make_ca, make_member
from mirror_builder.cluster.security import client_files, server_context

DATA = b"a wheel's bytes" * 1000
DIGEST = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def certs(tmp_path):
    folder = tmp_path / "certs"
    make_ca(folder)
    for member in ("coordinator", "worker"):
        make_member(folder, member)
    return folder


@pytest.fixture
def store(tmp_path, certs):
    cache = BuildCache(tmp_path / "builds")
    with ArtifactServer(cache, server_context(certs, "coordinator"), max_bytes=64 * 1024) as server:
        yield server


def member(store, certs, name="worker"):
    return ArtifactClient(store.url, *client_files(certs, name))


def raw(store, certs, method, path, **kwargs):
    """A request as anyone holding a member certificate could send it."""
    session = requests.Session()
    session.trust_env = False
    ca, certificate = client_files(certs, "worker")
    return session.request(method, store.url.rstrip("/") + path, verify=ca, cert=certificate,
                           timeout=10, **kwargs)


def test_a_member_pushes_a_file_and_another_fetches_it_by_digest(store, certs, tmp_path):
    source = tmp_path / "demo-1.0-py3-none-any.whl"
    source.write_bytes(DATA)
    assert member(store, certs).push(source) == DIGEST
    assert store.cache.blob(DIGEST).read_bytes() == DATA
    fetched = member(store, certs, "coordinator").fetch(DIGEST, tmp_path / "got" / "x.whl")
    assert fetched.read_bytes() == DATA
    assert member(store, certs).push(source) == DIGEST  # already there: fine


def test_a_missing_blob_is_an_error_naming_the_store(store, certs, tmp_path):
    with pytest.raises(ArtifactError, match="answered HTTP 404"):
        member(store, certs).fetch("0" * 64, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_bytes_that_are_not_their_digest_are_not_stored(store, certs):
    answer = raw(store, certs, "PUT", f"/blobs/sha256/{'1' * 64}", data=DATA)
    assert answer.status_code == 400
    assert not store.cache.blob("1" * 64).exists()
    assert not list(store.cache.blobs.rglob("*.part"))


def test_a_body_over_the_bound_is_refused_declared_or_not(store, certs):
    big = b"x" * (64 * 1024 + 1)
    digest = hashlib.sha256(big).hexdigest()
    assert raw(store, certs, "PUT", f"/blobs/sha256/{digest}", data=big).status_code == 413
    chunked = raw(store, certs, "PUT", f"/blobs/sha256/{digest}",
                  data=(big[i:i + 4096] for i in range(0, len(big), 4096)))
    assert chunked.status_code == 413
    assert not store.cache.blob(digest).exists()
    assert not list(store.cache.blobs.rglob("*.part"))


@pytest.mark.parametrize("path", [
    "/blobs/sha256/../../entries", "/blobs/sha256/%2e%2e%2f%2e%2e%2fentries",
    "/blobs/sha256/ABCDEF", f"/blobs/sha256/{'g' * 64}", "/entries/demo/index.json",
    "/", "/blobs/sha256/",
])
def test_nothing_but_blobs_by_digest_is_served(store, certs, path):
    (store.cache.root / "entries").mkdir(parents=True, exist_ok=True)
    assert raw(store, certs, "GET", path).status_code in (400, 404)


def test_other_methods_are_refused(store, certs):
    store.cache.blobs.mkdir(parents=True, exist_ok=True)
    assert raw(store, certs, "DELETE", f"/blobs/sha256/{DIGEST}").status_code == 405
    assert raw(store, certs, "POST", f"/blobs/sha256/{DIGEST}", data=DATA).status_code == 405


def test_peers_without_a_member_certificate_are_refused_at_the_handshake(store, certs, tmp_path):
    rogue = tmp_path / "rogue"
    make_ca(rogue)
    make_member(rogue, "worker")
    url = f"{store.url}blobs/sha256/{DIGEST}"
    session = requests.Session()
    session.trust_env = False
    # (TLS 1.3 checks a client's certificate after the handshake: the server then hangs up.)
    with pytest.raises(requests.exceptions.ConnectionError):
        session.get(url, verify=str(certs / "ca.pem"), timeout=10)  # no certificate
    with pytest.raises(requests.exceptions.ConnectionError):
        session.get(url, verify=str(certs / "ca.pem"), timeout=10,
                    cert=(str(rogue / "worker.pem"), str(rogue / "worker.key")))
    with pytest.raises(requests.exceptions.ConnectionError):
        session.get(url.replace("https://", "http://"), timeout=10)  # plain HTTP
    # A member does not trust a server with another CA's certificate either.
    with socket.create_connection(("127.0.0.1", store.port), timeout=10) as sock:
        context = ssl.create_default_context(cafile=str(rogue / "ca.pem"))
        with pytest.raises(ssl.SSLCertVerificationError):
            context.wrap_socket(sock, server_hostname="127.0.0.1")

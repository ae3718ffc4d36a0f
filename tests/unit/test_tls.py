"""Every connection to an index shares one TLS context holding the CA bundle requests would use,
read once; it verifies exactly as before: a certificate the bundle does not vouch for, or one
for another host, is refused. Checked against a real HTTPS server on loopback."""

import http.server
import ssl
import subprocess
import threading

import pytest
import requests

from mirror_builder.resolve.tls import PreloadedTLSAdapter


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """An HTTPS server on 127.0.0.1 with a self-signed certificate for localhost only."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield {"port": httpd.server_address[1], "cert": str(cert)}
    httpd.shutdown()


def session(cafile=None):
    s = requests.Session()
    s.trust_env = False
    s.mount("https://", PreloadedTLSAdapter(cafile=cafile))
    return s


def test_a_server_the_bundle_vouches_for_is_reached_without_naming_the_bundle_per_connection(
        server, monkeypatch):
    s = session(server["cert"])  # reads the bundle, once
    s.verify = server["cert"]  # as REQUESTS_CA_BUNDLE makes it
    loaded = []
    original = ssl.SSLContext.load_verify_locations
    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations",
                        lambda self, *a, **k: loaded.append(a) or original(self, *a, **k))
    adapter = s.get_adapter("https://localhost/")
    for _ in range(3):
        assert s.get(f"https://localhost:{server['port']}/", timeout=10).text == "ok"
        adapter.poolmanager.clear()  # a new connection each time
    assert loaded == []  # not again for any connection


def test_a_certificate_the_bundle_does_not_vouch_for_is_refused(server):
    with pytest.raises(requests.exceptions.SSLError):
        session().get(f"https://localhost:{server['port']}/", timeout=10)


def test_a_certificate_for_another_host_is_refused(server):
    with pytest.raises(requests.exceptions.SSLError):
        s = session(server["cert"])
        s.verify = server["cert"]
        s.get(f"https://127.0.0.1:{server['port']}/", timeout=10)


def test_a_request_that_names_another_bundle_is_verified_with_that_one(server):
    s = session()  # the default bundle preloaded, which does not know the server
    assert s.get(f"https://localhost:{server['port']}/", verify=server["cert"],
                 timeout=10).text == "ok"

"""`mirror-builder serve` and `tokens` as a user runs them: bad input is one `error:` line and
exit status 2 before the banner, with nothing written; with TLS and tokens it serves HTTPS to
token holders only."""

import base64
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import pytest

from conftest import REPO, clean_environment, error_lines, make_certificate
from mirror_builder.serve.tokens import add_token
from server_harness import WHEEL, demo_index


def mirror_builder(*args: str, cwd: Path, settings: Path = REPO / "settings.yaml"
                   ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mirror_builder", "--settings", str(settings),
                           *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env=clean_environment())


@pytest.fixture
def site(tmp_path):
    return demo_index(tmp_path / "site")


@pytest.fixture
def tls_files(tmp_path):
    made = make_certificate(tmp_path / "tls")
    return made.cert, made.key, made.ca


def assert_refused(proc, *fragments, access_log: Path | None = None):
    """Exit 2, one error line naming the problem, no banner, nothing written."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    (line,) = error_lines(proc.stderr)
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    if access_log is not None:
        assert not access_log.exists()


def test_a_port_in_use_is_refused_before_the_banner(site, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        log = tmp_path / "access.log"
        proc = mirror_builder("serve", "-o", str(site), "--port", str(port), "--access-log",
                              str(log), cwd=tmp_path)
    assert_refused(proc, f"port {port}", "in use", access_log=log)


@pytest.mark.parametrize("port, problem", [("70000", "out of range"), ("-1", "out of range"),
                                           ("http", "not a port number")])
def test_a_port_out_of_range_is_a_usage_error(site, tmp_path, port, problem):
    proc = mirror_builder("serve", "-o", str(site), "--port", port, cwd=tmp_path)
    assert proc.returncode == 2 and problem in proc.stderr and proc.stdout == ""


def test_an_access_log_in_a_missing_folder_is_refused(site, tmp_path):
    log = tmp_path / "no" / "such" / "access.log"
    proc = mirror_builder("serve", "-o", str(site), "--port", "0", "--access-log", str(log),
                          cwd=tmp_path)
    assert_refused(proc, "--access-log", "no such folder")
    assert not (tmp_path / "no").exists()


def test_a_host_that_does_not_resolve_is_refused(site, tmp_path):
    proc = mirror_builder("serve", "-o", str(site), "--host", "no-such-host.invalid", "--port", "0",
                          cwd=tmp_path)
    assert_refused(proc, "--host no-such-host.invalid", "cannot resolve")


def test_a_certificate_without_its_key_and_a_key_without_its_certificate_are_refused(
        site, tmp_path, tls_files):
    cert, key, _ = tls_files
    for option, path in (("--certfile", cert), ("--keyfile", key)):
        proc = mirror_builder("serve", "-o", str(site), "--port", "0", option, str(path),
                              cwd=tmp_path)
        assert_refused(proc, "--certfile and --keyfile go together")


def test_an_unreadable_or_wrong_certificate_is_refused(site, tmp_path, tls_files):
    cert, key, _ = tls_files
    other_key = make_certificate(tmp_path / "other").key
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    cases = [((tmp_path / "missing.pem", key), "missing.pem: cannot read it"),
             ((cert, tmp_path / "missing-key.pem"), "missing-key.pem: cannot read it"),
             ((garbage, key), "not a PEM certificate and its matching private key"),
             ((cert, other_key), "not a PEM certificate and its matching private key")]
    for (certfile, keyfile), problem in cases:
        proc = mirror_builder("serve", "-o", str(site), "--port", "0", "--certfile", str(certfile),
                              "--keyfile", str(keyfile), cwd=tmp_path)
        assert_refused(proc, problem)


def test_a_missing_malformed_or_empty_tokens_file_is_refused_naming_file_and_line(site, tmp_path):
    tokens = tmp_path / "tokens"
    proc = mirror_builder("serve", "-o", str(site), "--port", "0", "--tokens", str(tokens),
                          cwd=tmp_path)
    assert_refused(proc, f"{tokens}: no such tokens file")
    add_token(tokens, "ci")
    tokens.write_text(tokens.read_text() + "ci-2 $2b$05$nocolon\n")
    before = tokens.read_bytes()
    proc = mirror_builder("serve", "-o", str(site), "--port", "0", "--tokens", str(tokens),
                          cwd=tmp_path)
    assert_refused(proc, f"{tokens}:5:", "expected NAME:HASH")
    assert tokens.read_bytes() == before
    tokens.write_text("# no tokens yet\n")
    proc = mirror_builder("serve", "-o", str(site), "--port", "0", "--tokens", str(tokens),
                          cwd=tmp_path)
    assert_refused(proc, "holds no tokens", "tokens add")


def test_the_tokens_file_can_come_from_the_settings(site, tmp_path):
    settings = tmp_path / "settings.yaml"
    settings.write_text("serve:\n  tokens_file: private/tokens\n")
    proc = mirror_builder("serve", "-o", str(site), "--port", "0", cwd=tmp_path, settings=settings)
    assert_refused(proc, f"{tmp_path / 'private' / 'tokens'}: no such tokens file")
    settings.write_text("serve:\n  tokens: private/tokens\n")
    proc = mirror_builder("serve", "-o", str(site), cwd=tmp_path, settings=settings)
    assert proc.returncode == 1 and f"{settings}:2: serve.tokens: unknown key" in proc.stderr


def test_the_tokens_commands_add_list_and_revoke(tmp_path):
    tokens = tmp_path / "tokens"
    added = mirror_builder("tokens", "add", "ci", "--file", str(tokens), cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    assert len(token) == 43 and token not in added.stderr and token not in tokens.read_text()
    assert "https://ci:TOKEN@HOST/simple/" in added.stderr and "netrc" in added.stderr
    listed = mirror_builder("tokens", "list", "--file", str(tokens), cwd=tmp_path)
    assert listed.stdout.split("\t")[0] == "ci"
    again = mirror_builder("tokens", "add", "ci", "--file", str(tokens), cwd=tmp_path)
    assert again.returncode == 2 and "already has a token named 'ci'" in again.stderr
    revoked = mirror_builder("tokens", "revoke", "ci", "--file", str(tokens), cwd=tmp_path)
    assert revoked.returncode == 0
    assert mirror_builder("tokens", "list", "--file", str(tokens), cwd=tmp_path).stdout == ""
    nowhere = mirror_builder("tokens", "list", cwd=tmp_path)
    assert nowhere.returncode == 2 and "--file" in error_lines(nowhere.stderr)[0]


class Serving:
    """`mirror-builder serve` running; its banner read up to the usage text."""

    def __init__(self, *args: str, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mirror_builder", "--settings", str(REPO / "settings.yaml"),
             "serve", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=clean_environment())
        self.banner = ""
        deadline = time.monotonic() + 30
        while "pip install" not in self.banner:
            line = self.proc.stdout.readline()
            if not line or time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"serve did not start: {self.banner}{self.proc.stderr.read()}")
            self.banner += line
        self.url = self.banner.split(" at ", 1)[1].split()[0].rstrip("/")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def handshake(port: int, ca: Path, version: ssl.TLSVersion) -> str:
    """Connect with exactly this TLS version (the client allowing old ones); the version made."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is, that is the point
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(str(ca))
        context.set_ciphers("ALL:@SECLEVEL=0")
        context.minimum_version = context.maximum_version = version
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock, \
            context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
        return tls.version()


def test_https_with_tokens_serves_token_holders_only(site, tmp_path, tls_files):
    cert, key, ca = tls_files
    tokens = tmp_path / "tokens"
    token = add_token(tokens, "ci")
    log = tmp_path / "access.log"
    server = Serving("-o", str(site), "--port", "0", "--tokens", str(tokens), "--certfile",
                     str(cert), "--keyfile", str(key), "--access-log", str(log), cwd=tmp_path)
    try:
        assert server.url.startswith("https://127.0.0.1:")
        assert f"--index-url https://NAME:TOKEN@{server.url[8:]}/simple/" in server.banner
        assert "http://" not in server.banner and "machine 127.0.0.1 login NAME" in server.banner
        context = ssl.create_default_context(cafile=str(ca))

        def get(path, auth=None):
            request = urllib.request.Request(server.url + path)
            if auth:
                request.add_header("Authorization", "Basic " + base64.b64encode(auth).decode())
            try:
                with urllib.request.urlopen(request, context=context, timeout=10) as response:
                    return response.status, response.read()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read()

        assert get(f"/files/demo/{WHEEL}", f"ci:{token}".encode())[0] == 200
        assert get(f"/files/demo/{WHEEL}")[0] == 401
        assert get("/simple/missing/", b"ci:wrong")[0] == 401
        port = int(server.url.rsplit(":", 1)[1])
        assert handshake(port, ca, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
        with pytest.raises((ssl.SSLError, ConnectionError)):
            handshake(port, ca, ssl.TLSVersion.TLSv1_1)
    finally:
        server.stop()
    statuses = [line.split('"')[2].split()[0] for line in log.read_text().splitlines()]
    assert statuses == ["200", "401", "401"]


def test_port_0_serves_on_a_free_port_named_in_the_banner(site, tmp_path):
    server = Serving("-o", str(site), "--port", "0", cwd=tmp_path)
    try:
        assert server.url.startswith("http://127.0.0.1:") and not server.url.endswith(":0")
        with urllib.request.urlopen(server.url + "/simple/demo/", timeout=10) as response:
            assert response.status == 200
    finally:
        server.stop()

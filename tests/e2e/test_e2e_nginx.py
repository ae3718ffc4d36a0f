"""End-to-end: the production recipe. A real Debian nginx, on loopback, serves a really built
index from the configuration `mirror-builder nginx-config` prints, with TLS and the tokens file
`mirror-builder tokens` keeps; real pip and uv install through it in fresh virtual environments."""

import base64
import json
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import uv

from conftest import (STEVEDORE, free_port, fresh_venv, make_certificate, run_mirror_builder,
                      tls_client_environment)

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("nginx") is None,
                                 reason="nginx is installed by ./setup.sh")]

JSON_TYPE = "application/vnd.pypi.simple.v1+json"


class Nginx:
    """nginx run by the test: its own prefix, pid and logs; the site is mirror-builder's."""

    def __init__(self, folder: Path, site: str) -> None:
        self.folder = folder
        (folder / "site.conf").write_text(site)
        # Workers run as root only because the test's folders are root's alone (mode 0700);
        # the README's recipe runs them as www-data, which must be able to read the output.
        (folder / "nginx.conf").write_text(f"""\
worker_processes 1;
user root;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {folder}/site.conf;
}}
""")
        self.command = ["nginx", "-c", str(folder / "nginx.conf"), "-p", str(folder)]

    def __enter__(self) -> "Nginx":
        subprocess.run([*self.command, "-t"], check=True, capture_output=True)
        subprocess.run(self.command, check=True, capture_output=True)
        return self

    def __exit__(self, *exc_info) -> None:
        subprocess.run([*self.command, "-s", "quit"], capture_output=True)
        deadline = time.monotonic() + 10
        while (self.folder / "nginx.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def statuses(self) -> list[int]:
        """The status of every request so far, from nginx's own (combined) access log."""
        log = self.folder / "access.log"
        return [int(line.split('" ')[1].split()[0])
                for line in (log.read_text().splitlines() if log.exists() else [])]


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}")


@pytest.fixture(scope="module")
def site(stevedore_output, tmp_path_factory):
    """The stevedore index behind nginx with TLS and one token; plus a planted link."""
    folder = tmp_path_factory.mktemp("nginx")
    output = folder / "output"
    shutil.copytree(stevedore_output, output, symlinks=True)
    # A link planted in the index must not be followed (serve the target's content).
    (output / "simple" / "evil").mkdir()
    (output / "simple" / "evil" / "index.html").symlink_to("/etc/passwd")
    tokens = folder / "tokens"
    added = run_mirror_builder("tokens", "add", "ci", "--file", str(tokens), cwd=folder)
    token = added.stdout.strip().splitlines()[0]
    tls = make_certificate(folder / "tls")
    port = free_port()
    config = run_mirror_builder("nginx-config", "-o", str(output), "--listen",
                                f"127.0.0.1:{port}", "--tokens", str(tokens), "--certfile",
                                str(tls.cert), "--keyfile", str(tls.key), cwd=folder).stdout
    (folder / "nginx").mkdir()
    with Nginx(folder / "nginx", config) as nginx:
        wait_for_port(port)
        yield {"base": f"https://127.0.0.1:{port}", "token": token, "ca": tls.ca,
               "nginx": nginx, "output": output, "folder": folder}


def fetch(site, path: str, *, user: str | None = "ci", token: str | None = None,
          headers: dict | None = None):
    context = ssl.create_default_context(cafile=str(site["ca"]))
    request = urllib.request.Request(site["base"] + path, headers=headers or {})
    if user is not None:
        credentials = f"{user}:{token or site['token']}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(credentials).decode())
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_pip_installs_through_nginx_with_tls_and_a_token(site, tmp_path):
    venv = fresh_venv(tmp_path / "venv")
    url = site["base"].replace("https://", f"https://ci:{site['token']}@") + "/simple/"
    report = tmp_path / "report.json"
    proc = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--cert",
                           str(site["ca"]), "--index-url", url, "--only-binary", ":all:",
                           "--report", str(report), f"stevedore=={STEVEDORE}"],
                          capture_output=True, text=True, env=tls_client_environment())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    installed = {i["metadata"]["name"]: i["download_info"]["url"]
                 for i in json.loads(report.read_text())["install"]}
    assert set(installed) == {"stevedore"}
    assert installed["stevedore"].startswith(site["base"] + "/files/stevedore/")
    subprocess.run([str(venv / "bin" / "python"), "-c", "import stevedore"], check=True)


def test_uv_installs_through_nginx_with_tls_and_a_token(site, tmp_path):
    venv = fresh_venv(tmp_path / "venv")
    url = site["base"].replace("https://", f"https://ci:{site['token']}@") + "/simple/"
    proc = subprocess.run([uv.find_uv_bin(), "pip", "install", "--no-cache", "--python",
                           str(venv / "bin" / "python"), "--index-url", url, "--only-binary",
                           ":all:", f"stevedore=={STEVEDORE}"],
                          capture_output=True, text=True,
                          env=tls_client_environment(SSL_CERT_FILE=str(site["ca"])))
    assert proc.returncode == 0, proc.stderr
    assert "+ stevedore==" in proc.stderr
    subprocess.run([str(venv / "bin" / "python"), "-c", "import stevedore"], check=True)


def test_pip_without_a_token_is_refused_with_401(site, tmp_path):
    venv = fresh_venv(tmp_path / "venv")
    seen = len(site["nginx"].statuses())
    proc = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--cert",
                           str(site["ca"]), "--no-input", "--index-url", site["base"] + "/simple/",
                           "--only-binary", ":all:", "--retries", "0", "stevedore"],
                          capture_output=True, text=True, env=tls_client_environment())
    assert proc.returncode != 0
    assert "No matching distribution found for stevedore" in proc.stderr
    answered = site["nginx"].statuses()[seen:]
    assert answered and set(answered) == {401}


@pytest.mark.parametrize("path", ["/", "/simple/", "/simple/stevedore/", "/simple/no-such/",
                                  f"/files/stevedore/stevedore-{STEVEDORE}-py3-none-any.whl",
                                  "/records/", "/simple/evil/"])
@pytest.mark.parametrize("user, token", [(None, None), ("ci", "wrong"), ("nobody", None)])
def test_without_a_valid_token_every_path_gets_the_same_401(site, path, user, token):
    status, headers, _ = fetch(site, path, user=user, token=token)
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="mirror-builder"'


def test_a_revoked_token_is_refused_at_once(site):
    folder, tokens = site["folder"], site["folder"] / "tokens"
    extra = run_mirror_builder("tokens", "add", "temp", "--file", str(tokens), cwd=folder)
    token = extra.stdout.strip().splitlines()[0]
    assert fetch(site, "/simple/", user="temp", token=token)[0] == 200
    run_mirror_builder("tokens", "revoke", "temp", "--file", str(tokens), cwd=folder)
    assert fetch(site, "/simple/", user="temp", token=token)[0] == 401
    assert fetch(site, "/simple/")[0] == 200


def test_pages_are_negotiated_as_pep_691_says(site):
    status, headers, body = fetch(site, "/simple/stevedore/", headers={
        "Accept": f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"})
    assert status == 200 and headers["Content-Type"] == JSON_TYPE
    assert headers["Vary"] == "Accept"
    assert json.loads(body)["name"] == "stevedore"
    status, headers, body = fetch(site, "/simple/stevedore/", headers={"Accept": "text/html"})
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"stevedore-" in body
    status, headers, _ = fetch(site, f"/simple/stevedore/?format={JSON_TYPE}")
    assert headers["Content-Type"] == JSON_TYPE
    status, headers, body = fetch(site, "/simple/", headers={"Accept": JSON_TYPE})
    assert "stevedore" in [p["name"] for p in json.loads(body)["projects"]]


def test_metadata_files_and_ranges_are_served_as_pep_658_and_rfc_9110_say(site):
    wheel = next((site["output"] / "files" / "stevedore").glob("*.whl"))
    status, headers, body = fetch(site, f"/files/stevedore/{wheel.name}.metadata")
    assert status == 200 and headers["Content-Type"] == "text/plain; charset=utf-8"
    assert body == (wheel.parent / f"{wheel.name}.metadata").read_bytes()
    status, headers, body = fetch(site, f"/files/stevedore/{wheel.name}",
                                  headers={"Range": "bytes=0-9"})
    assert status == 206 and body == wheel.read_bytes()[:10]
    assert headers["Content-Range"] == f"bytes 0-9/{wheel.stat().st_size}"


@pytest.mark.parametrize("path", [
    "/records/stevedore/", "/jobs/history.jsonl", "/.mirror-builder.lock", "/build-order.json",
    "/simple/evil/", "/simple/evil/index.html", "/simple/%2e%2e/records/",
    "/files/..%2frecords/stevedore/", "/files/stevedore/%2e%2e%2f%2e%2e%2fjobs%2fhistory.jsonl",
    "/simple/..%5c..%5cetc/passwd", "/simple/%00/", "/simple/" + "a" * 300 + "/",
])
def test_nothing_but_the_index_is_served_and_no_link_is_followed(site, path):
    status, _, body = fetch(site, path)
    assert status in (400, 403, 404)
    assert b"root:" not in body


def test_the_shipped_recipe_refuses_paths_nginx_would_read_as_syntax(site, tmp_path):
    evil = tmp_path / "to;kens"
    evil.write_text("")
    proc = run_mirror_builder("nginx-config", "-o", str(site["output"]), "--tokens", str(evil),
                              cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "nginx needs an absolute path" in proc.stderr
    assert proc.stdout == ""


def test_each_wheels_signed_statement_and_the_keys_are_served_through_nginx(site):
    status, _, body = fetch(site, "/simple/stevedore/", headers={"Accept": JSON_TYPE})
    entry = json.loads(body)["files"][0]
    statement_url = "/files/stevedore/" + entry["provenance"].rsplit("/", 1)[1]
    status, headers, body = fetch(site, statement_url)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["payloadType"] == "application/vnd.in-toto+json"
    status, headers, body = fetch(site, "/signing-key.pub")
    assert status == 200 and body == (site["output"] / "signing-key.pub").read_bytes()
    (key,) = (site["output"] / "keys").glob("*.pub")
    assert fetch(site, f"/keys/{key.name}")[2] == key.read_bytes()
    assert fetch(site, "/signing-key.pub", user=None)[0] == 401


def test_the_find_links_page_and_the_from_source_view_are_served_through_nginx(site):
    from mirror_builder.index.views import sync_from_source
    from mirror_builder.index.wheelindex import WheelIndex

    status, headers, body = fetch(site, "/find-links.html")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert body == (site["output"] / "find-links.html").read_bytes()
    assert fetch(site, "/find-links.html", user=None)[0] == 401
    sync_from_source(WheelIndex(site["output"]), lambda project, wheel: project == "stevedore")
    status, _, body = fetch(site, "/from-source/simple/stevedore/", headers={"Accept": JSON_TYPE})
    (entry,) = json.loads(body)["files"]
    status, _, wheel = fetch(site, "/from-source/files/stevedore/" + entry["filename"])
    assert status == 200 and wheel == \
        (site["output"] / "files" / "stevedore" / entry["filename"]).read_bytes()
    assert fetch(site, "/from-source/simple/pbr/")[0] == 404

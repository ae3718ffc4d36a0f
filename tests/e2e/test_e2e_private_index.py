"""End-to-end: a private index. The real `mirror-builder serve` with TLS and a read token, over an
index built with real podman; real pip and uv in fresh venvs install through it with the token in
the URL or in a netrc file, and without it pip fails and the server logs 401s."""

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import uv

from conftest import (REPO, STEVEDORE, clean_environment, fresh_venv, make_certificate,
                      tls_client_environment)
from mirror_builder.serve.tokens import add_token

pytestmark = pytest.mark.e2e


@dataclass
class PrivateIndex:
    url: str          # https://127.0.0.1:PORT, no credentials
    host: str         # 127.0.0.1:PORT
    name: str
    token: str
    ca: Path          # the self-signed certificate clients trust
    access_log: Path
    no_netrc: Path    # an empty netrc, so no ~/.netrc of the machine lends credentials

    def index_url(self, credentials: bool = True) -> str:
        return f"https://{self.name}:{self.token}@{self.host}/simple/" if credentials \
            else f"{self.url}/simple/"


@pytest.fixture(scope="module")
def private_index(stevedore_output, tmp_path_factory):
    work = tmp_path_factory.mktemp("private")
    tls = make_certificate(work / "tls")
    tokens = work / "tokens"
    token = add_token(tokens, "ci")
    access_log = work / "access.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mirror_builder", "--settings", str(REPO / "settings.yaml"),
         "serve", "-o", str(stevedore_output), "--port", "0", "--tokens", str(tokens),
         "--certfile", str(tls.cert), "--keyfile", str(tls.key), "--access-log", str(access_log)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_environment())
    banner, deadline = "", time.monotonic() + 30
    while "pip install" not in banner:
        line = proc.stdout.readline()
        if not line or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"serve did not start: {banner}{proc.stderr.read()}")
        banner += line
    url = banner.split(" at ", 1)[1].split()[0].rstrip("/")
    assert url.startswith("https://127.0.0.1:")
    no_netrc = work / "empty-netrc"
    no_netrc.write_text("")
    yield PrivateIndex(url=url, host=url.removeprefix("https://"), name="ci", token=token,
                       ca=tls.ca, access_log=access_log, no_netrc=no_netrc)
    proc.terminate()
    proc.wait(timeout=10)


def pip(venv: Path, index_url: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--no-input",
                           "--disable-pip-version-check", "--index-url", index_url,
                           "--only-binary", ":all:", *args, f"stevedore=={STEVEDORE}"],
                          env=tls_client_environment(**env), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)


def uv_pip(venv: Path, index_url: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([uv.find_uv_bin(), "pip", "install", "--no-cache", "--python",
                           str(venv / "bin" / "python"), "--index-url", index_url,
                           "--only-binary", ":all:", f"stevedore=={STEVEDORE}"],
                          env=tls_client_environment(**env), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)


def ours(venv: Path) -> None:
    """stevedore imports, and the wheel is the one we built (it carries our build record)."""
    subprocess.run([str(venv / "bin" / "python"), "-c", "import stevedore.extension"], check=True)
    (dist_info,) = venv.glob("lib/python3*/site-packages/stevedore-*.dist-info")
    assert (dist_info / "mirror_builder" / "build-record.json").is_file()


def test_pip_installs_over_https_with_the_token_in_the_url(private_index, tmp_path):
    venv = fresh_venv(tmp_path / "venv")
    report = tmp_path / "report.json"
    proc = pip(venv, private_index.index_url(), "--cert", str(private_index.ca), "--report",
               str(report), env={"NETRC": str(private_index.no_netrc)})
    assert proc.returncode == 0, proc.stderr
    for item in json.loads(report.read_text())["install"]:
        assert item["download_info"]["url"].startswith(f"{private_index.url}/files/")
    ours(venv)


def test_uv_installs_over_https_with_the_token_in_the_url(private_index, tmp_path):
    venv = fresh_venv(tmp_path / "venv")
    proc = uv_pip(venv, private_index.index_url(), env={"SSL_CERT_FILE": str(private_index.ca),
                                                        "NETRC": str(private_index.no_netrc)})
    assert proc.returncode == 0, proc.stderr
    assert f"+ stevedore=={STEVEDORE}" in proc.stderr
    ours(venv)


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_the_token_can_come_from_a_netrc_file_instead_of_the_url(private_index, tmp_path,
                                                                 installer):
    netrc = tmp_path / "netrc"
    host = private_index.host.split(":")[0]
    netrc.write_text(f"machine {host} login {private_index.name} "
                     f"password {private_index.token}\n")
    netrc.chmod(0o600)
    venv = fresh_venv(tmp_path / "venv")
    env = {"NETRC": str(netrc), "SSL_CERT_FILE": str(private_index.ca)}
    url = private_index.index_url(credentials=False)
    proc = pip(venv, url, "--cert", str(private_index.ca), env=env) if installer == "pip" \
        else uv_pip(venv, url, env=env)
    assert proc.returncode == 0, proc.stderr
    ours(venv)


def test_without_the_token_pip_fails_and_the_server_logs_401(private_index, tmp_path):
    venv = fresh_venv(tmp_path / "venv")
    logged_before = len(private_index.access_log.read_text().splitlines())
    env = {"NETRC": str(private_index.no_netrc)}
    without = pip(venv, private_index.index_url(credentials=False), "--cert",
                  str(private_index.ca), env=env)
    wrong = pip(venv, f"https://ci:not-the-token@{private_index.host}/simple/", "--cert",
                str(private_index.ca), env=env)
    assert without.returncode != 0 and wrong.returncode != 0
    assert "No matching distribution found for stevedore" in without.stderr + wrong.stderr
    new_lines = private_index.access_log.read_text().splitlines()[logged_before:]
    # Both asked for the project page and got 401; nobody was admitted under any name.
    assert len([line for line in new_lines if '"GET /simple/stevedore/ HTTP/1.1" 401 ' in line]) >= 2
    assert all('" 401 ' in line and line.split()[1] == "-" for line in new_lines), new_lines
    assert not list(venv.glob("lib/python3*/site-packages/stevedore*"))

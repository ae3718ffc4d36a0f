"""End-to-end: the index after a real bootstrap, consumed by real pip and uv in fresh virtual
environments, from the file:// tree and from `mirror-builder serve`."""

import json
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
import uv

from conftest import STEVEDORE, clean_environment, fresh_venv, run_mirror_builder
from mirror_builder.index.wheelindex import WheelIndex, verify
from mirror_builder.resolve.pages import parse_project_page

pytestmark = pytest.mark.e2e


def pip_install(venv: Path, index_url: str, *args: str) -> dict:
    report = venv / "report.json"
    subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--report", str(report),
                    "--index-url", index_url, "--only-binary", ":all:", *args],
                   check=True, env=clean_environment(), capture_output=True, text=True)
    return json.loads(report.read_text())


def uv_install(venv: Path, index_url: str, *args: str) -> str:
    proc = subprocess.run([uv.find_uv_bin(), "pip", "install", "--no-cache", "--python",
                           str(venv / "bin" / "python"), "--index-url", index_url,
                           "--only-binary", ":all:", *args],
                          check=True, env=clean_environment(), capture_output=True, text=True)
    return proc.stderr


def imports(venv: Path, module: str) -> None:
    subprocess.run([str(venv / "bin" / "python"), "-c", f"import {module}"], check=True)


def test_the_index_is_valid_pages_hashes_sizes_and_metadata(stevedore_output):
    index = WheelIndex(stevedore_output)
    assert verify(index) == []
    assert verify(index.sources) == []
    wheels = {p.name for p in index.files_dir.glob("*/*.whl")}
    sdists = {p.name for p in index.sources.files_dir.glob("*/*")}
    assert {w.split("-")[0] for w in wheels} == {s.split("-")[0] for s in sdists}
    assert not any(name.endswith((".tar.gz", ".zip")) for name in
                   (p.name for p in index.files_dir.rglob("*")))  # wheels only


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_installs_from_the_file_index_using_only_our_wheels(stevedore_output, tmp_path, installer):
    venv = fresh_venv(tmp_path / "venv")
    index_url = (stevedore_output / "simple").as_uri()
    if installer == "pip":
        report = pip_install(venv, index_url, f"stevedore=={STEVEDORE}")
        for item in report["install"]:
            assert item["download_info"]["url"].startswith((stevedore_output / "files").as_uri())
    else:
        output = uv_install(venv, index_url, f"stevedore=={STEVEDORE}")
        assert f"+ stevedore=={STEVEDORE}" in output
        (dist_info,) = venv.glob("lib/python3*/site-packages/stevedore-*.dist-info")
        assert (dist_info / "mirror_builder" / "build-record.json").is_file()  # ours, not PyPI's
    imports(venv, "stevedore.extension")


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_installs_from_the_served_index_using_only_our_wheels(stevedore_output, tmp_path, served,
                                                              installer):
    base, access_log = served(stevedore_output)
    venv = fresh_venv(tmp_path / "venv")
    if installer == "pip":
        report = pip_install(venv, f"{base}/simple/", f"stevedore=={STEVEDORE}")
        for item in report["install"]:
            assert item["download_info"]["url"].startswith(f"{base}/files/")
    else:
        uv_install(venv, f"{base}/simple/", f"stevedore=={STEVEDORE}")
    imports(venv, "stevedore.extension")
    requested = access_log.read_text()
    assert f"GET /files/stevedore/stevedore-{STEVEDORE}-py3-none-any.whl" in requested


def test_a_dry_run_resolution_reads_metadata_files_and_downloads_no_wheel(stevedore_output, tmp_path,
                                                                          served):
    base, access_log = served(stevedore_output)
    # pip 23.2 (what Python 3.11's venv seeds) still downloads the wheel; current pip does not.
    venv = fresh_venv(tmp_path / "venv", current_pip=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir",
                    "--disable-pip-version-check", "--dry-run", "--report",
                    str(tmp_path / "report.json"), "--index-url", f"{base}/simple/",
                    "--only-binary", ":all:", "stevedore"],
                   check=True, env=clean_environment(), capture_output=True)
    report = json.loads((tmp_path / "report.json").read_text())
    assert [i["metadata"]["name"] for i in report["install"]] == ["stevedore"]
    requests = [r for r in re.findall(r'"GET (\S+) HTTP', access_log.read_text()) if r != "/"]
    assert requests == ["/simple/stevedore/",
                        f"/files/stevedore/stevedore-{STEVEDORE}-py3-none-any.whl.metadata"]


def test_the_served_pages_follow_the_accept_header(stevedore_output, served):
    base, _ = served(stevedore_output)

    def get(path, accept):
        request = urllib.request.Request(base + path, headers={"Accept": accept})
        with urllib.request.urlopen(request) as response:
            return response.headers["Content-Type"], response.read().decode()

    json_type = "application/vnd.pypi.simple.v1+json"
    content_type, body = get("/simple/stevedore/", f"{json_type}, text/html;q=0.1")
    assert content_type == json_type
    from_json = parse_project_page(body, content_type, f"{base}/simple/stevedore/")
    content_type, body = get("/simple/stevedore/", f"{json_type};q=0.2, text/html")
    assert content_type.startswith("text/html")
    from_html = parse_project_page(body, content_type, f"{base}/simple/stevedore/")
    assert [f.url for f in from_json] == [f.url for f in from_html]
    for file in from_json:
        with urllib.request.urlopen(file.url) as response:
            import hashlib
            assert hashlib.sha256(response.read()).hexdigest() == file.sha256


def test_a_yanked_version_is_skipped_unless_pinned(stevedore_output, tmp_path):
    output = tmp_path / "out"
    shutil.copytree(stevedore_output, output)
    run_mirror_builder("yank", "pbr==7.1.3", "--reason", "bad build", "-o", str(output), cwd=tmp_path)
    page = (output / "simple" / "pbr" / "index.html").read_text()
    assert 'data-yanked="bad build"' in page
    venv = fresh_venv(tmp_path / "venv")
    unpinned = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir",
                               "--index-url", (output / "simple").as_uri(), "--only-binary",
                               ":all:", "pbr"], env=clean_environment(), capture_output=True,
                              text=True)
    assert unpinned.returncode != 0
    pinned = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir",
                             "--index-url", (output / "simple").as_uri(), "--only-binary", ":all:",
                             "pbr==7.1.3"], env=clean_environment(), capture_output=True, text=True)
    assert pinned.returncode == 0
    assert "bad build" in pinned.stderr  # pip warns with the reason

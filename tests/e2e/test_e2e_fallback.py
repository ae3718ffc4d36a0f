"""End-to-end: serve's fallback for projects the index does not carry, with real pip and uv
against real PyPI. stevedore (which we carry, and PyPI has too) always comes from us; idna (which we do not) is
not found with the fallback off, comes from PyPI's own page with redirect, and from our
wheels-only copy of PyPI's page (its wheel, never its sdist) with wheels-only."""

import json
import re
import subprocess

import pytest
import uv

from conftest import STEVEDORE, clean_environment, fresh_venv

pytestmark = pytest.mark.e2e

IDNA = "3.10"  # has a wheel and an sdist on PyPI


def pip_report(venv, base, tmp_path, *requirements, check=True):
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--disable-pip-version-check",
         "--index-url", f"{base}/simple/", "--only-binary", ":all:", "--report", str(report),
         *requirements], env=clean_environment(), capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stderr
        return {i["metadata"]["name"].lower(): i["download_info"]["url"]
                for i in json.loads(report.read_text())["install"]}
    return proc


def test_with_the_fallback_off_a_project_we_do_not_carry_is_not_found(stevedore_output, served,
                                                                        tmp_path):
    base, _ = served(stevedore_output)
    venv = fresh_venv(tmp_path / "venv")
    proc = pip_report(venv, base, tmp_path, f"idna=={IDNA}", check=False)
    assert proc.returncode != 0 and "No matching distribution found for idna" in proc.stderr


@pytest.mark.parametrize("mode", ["redirect", "wheels-only"])
def test_pip_and_uv_install_ours_from_us_and_the_rest_as_upstream_wheels(mode, stevedore_output,
                                                                         served, tmp_path):
    base, access_log = served(stevedore_output, "--fallback", mode)
    venv = fresh_venv(tmp_path / "venv")
    urls = pip_report(venv, base, tmp_path, f"stevedore=={STEVEDORE}", f"idna=={IDNA}")
    assert urls["stevedore"].startswith(f"{base}/files/stevedore/")  # carried: never upstream
    assert urls["idna"].startswith("https://files.pythonhosted.org/")
    assert urls["idna"].endswith("-py3-none-any.whl")
    log = access_log.read_text()
    # redirect: 307 to PyPI's page; wheels-only: our 200 copy of it, without the sdist.
    assert re.search(r'"GET /simple/idna/ HTTP/1.1" ' + ("307" if mode == "redirect" else "200"),
                     log)
    if mode == "wheels-only":
        page = subprocess.run(["curl", "-s", "-H", "Accept: application/vnd.pypi.simple.v1+json",
                               f"{base}/simple/idna/"], capture_output=True, text=True).stdout
        page = json.loads(page)
        assert page["_mirror-builder"]["built_from_source"] is False
        assert page["files"] and all(f["filename"].endswith(".whl") for f in page["files"])

    uv_venv = fresh_venv(tmp_path / "uv-venv")
    proc = subprocess.run([uv.find_uv_bin(), "pip", "install", "--no-cache", "--python",
                           str(uv_venv / "bin" / "python"), "--index-url", f"{base}/simple/",
                           f"stevedore=={STEVEDORE}", f"idna=={IDNA}"],
                          env=clean_environment(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    subprocess.run([str(uv_venv / "bin" / "python"), "-c", "import stevedore, idna"], check=True)
    (record,) = uv_venv.glob("lib/python3*/site-packages/stevedore-*.dist-info")
    assert (record / "mirror_builder" / "build-record.json").is_file()  # ours

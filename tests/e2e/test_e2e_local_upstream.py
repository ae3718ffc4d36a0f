"""End-to-end: mirror-builder bootstraps from a LocalUpstream (tests/conftest.py) instead of
PyPI, over HTTP, with real podman. Proves the helper the update, review and yank tests stand on:
its pages and files are what mirror-builder resolves and downloads, and its request log shows it."""

import hashlib
import json
import time

import pytest

from conftest import run_mirror_builder

pytestmark = pytest.mark.e2e

SIX = "1.17.0"
# What the resolver picks for six's build-system requirement (setuptools) on PyPI when this was
# written; the local upstream must hold every sdist the build needs, and this is the only one.
SETUPTOOLS = "84.2.1"


def test_bootstrap_resolves_and_downloads_everything_from_the_local_upstream(local_upstream, tmp_path):
    local_upstream.add_from_pypi("six", SIX)
    local_upstream.add_from_pypi("setuptools", SETUPTOOLS)
    settings = local_upstream.settings(tmp_path / "conf")

    started = time.monotonic()
    run_mirror_builder("bootstrap", f"six=={SIX}", "-o", "out", cwd=tmp_path, settings=settings)
    seconds = time.monotonic() - started
    print(f"bootstrap with a fresh cache_dir against the local upstream: {seconds:.1f} s")

    out = tmp_path / "out"
    (six,) = (out / "files" / "six").glob(f"six-{SIX}-*.whl")
    (setuptools,) = (out / "files" / "setuptools").glob(f"setuptools-{SETUPTOOLS}-*.whl")
    for project, wheel in (("six", six), ("setuptools", setuptools)):
        record = json.loads((out / "records" / project / f"{wheel.name}.build.json").read_text())
        (served,) = local_upstream.files(project)
        assert record["source"]["url"] == f"{local_upstream.url}/files/{served['filename']}"
        assert record["source"]["sha256"] == served["hashes"]["sha256"]
        archived = out / "sources" / "files" / project / served["filename"]
        assert hashlib.sha256(archived.read_bytes()).hexdigest() == served["hashes"]["sha256"]

    # Each project page was served in full, and each sdist downloaded once; nothing else was
    # asked for (no other project, no metadata file this index does not advertise).
    for project in ("six", "setuptools"):
        assert local_upstream.count(status=200, path_prefix=f"/simple/{project}/") >= 1
        (served,) = local_upstream.files(project)
        assert local_upstream.count(status=200, path_prefix=f"/files/{served['filename']}") == 1
    assert {path for _, path, _ in local_upstream.log} == {
        "/simple/six/", "/simple/setuptools/", f"/files/six-{SIX}.tar.gz",
        f"/files/setuptools-{SETUPTOOLS}.tar.gz"}
    assert local_upstream.count(status=404) == 0

    # Asked again (--refresh), the unchanged pages cost a 304 each (ETag / Last-Modified sent
    # back), and nothing is downloaded again.
    local_upstream.clear_log()
    run_mirror_builder("bootstrap", f"six=={SIX}", "--refresh", "-o", "out", cwd=tmp_path,
                       settings=settings)
    assert local_upstream.count(status=304, path_prefix="/simple/six/") >= 1
    assert local_upstream.count(status=200) == 0
    assert local_upstream.count(path_prefix="/files/") == 0

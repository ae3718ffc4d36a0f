"""End-to-end: `mirror-builder bootstrap` against a local index that misbehaves (issue 8).

The real CLI, run as a user would, with settings whose upstream is a ScriptedIndex on 127.0.0.1
and whose cache is the test's own. Each case fails while resolving, before any build: the point
is what the user is told (one error line naming the file or URL) and what is left on disk
(nothing half-downloaded, nothing published).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from conftest import (FIXTURES, Reply, error_lines, make_sdist, run_mirror_builder,
                      with_upstream, write_settings)

pytestmark = pytest.mark.e2e

PEP691_JSON = "application/vnd.pypi.simple.v1+json"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One cache for the module: the image's measurements are made once, not per test."""
    return tmp_path_factory.mktemp("cache")


def settings_for(index, folder: Path, cache_dir: Path, retries: int = 2) -> Path:
    settings = write_settings(folder / "conf", cache_dir=str(cache_dir))
    return with_upstream(settings, index_url=f"{index.url}/simple/", json_api_url=None,
                         cache_ttl_seconds=0, timeout_seconds=2, retries=retries)


def project_page(*files: dict) -> Reply:
    return Reply(json.dumps({"meta": {"api-version": "1.1"}, "name": "sixlike",
                             "files": list(files)}).encode(), content_type=PEP691_JSON)


def leftovers(*folders: Path) -> list[Path]:
    """Half-downloaded files, sdists and wheels anywhere under folders."""
    return sorted(p for folder in folders for pattern in ("*.part", "*.tar.gz", "*.whl")
                  for p in folder.rglob(pattern))


def test_an_sdist_whose_sha256_differs_from_the_index_is_refused_and_nothing_is_kept(
        scripted_index, tmp_path, cache_dir):
    sdist = make_sdist(FIXTURES / "pinsix", tmp_path / "dist", "sixlike", "1.0")
    actual = hashlib.sha256(sdist.read_bytes()).hexdigest()
    claimed = hashlib.sha256(b"what the index says").hexdigest()
    scripted_index.script("/files/sixlike-1.0.tar.gz", Reply(sdist.read_bytes(),
                                                              content_type="application/gzip"))
    scripted_index.script("/simple/sixlike/", project_page(
        {"filename": "sixlike-1.0.tar.gz", "url": "/files/sixlike-1.0.tar.gz",
         "hashes": {"sha256": claimed}}))
    out = tmp_path / "out"

    proc = run_mirror_builder("bootstrap", "sixlike==1.0", "-o", str(out), cwd=tmp_path,
                              check=False, settings=settings_for(scripted_index, tmp_path, cache_dir))

    assert proc.returncode == 1, proc.stderr
    (line,) = error_lines(proc.stderr)
    assert line.startswith("error: sixlike==1.0: sixlike-1.0.tar.gz: sha256 mismatch: "), line
    assert f"the index says {claimed}, the download is {actual}" in line
    assert "downloaded twice" in line and "nothing was kept" in line
    assert scripted_index.hits["/files/sixlike-1.0.tar.gz"] == 2
    assert leftovers(out, cache_dir) == []


def test_an_index_that_always_answers_503_is_an_error_naming_the_url_after_every_attempt(
        scripted_index, tmp_path, cache_dir):
    url = scripted_index.script("/simple/sixlike/", Reply(b"busy", status=503))
    settings = settings_for(scripted_index, tmp_path, cache_dir, retries=1)
    started = time.monotonic()

    proc = run_mirror_builder("bootstrap", "sixlike==1.0", "-o", str(tmp_path / "out"),
                              cwd=tmp_path, check=False, settings=settings)

    assert proc.returncode == 1, proc.stderr
    assert error_lines(proc.stderr) == [
        f"error: cannot reach {url} after 2 attempts: HTTP 503 Service Unavailable"]
    assert scripted_index.hits["/simple/sixlike/"] == 2
    assert time.monotonic() - started < 60


def test_an_index_that_answers_garbage_json_is_an_error_naming_the_url(
        scripted_index, tmp_path, cache_dir):
    url = scripted_index.script("/simple/sixlike/",
                                Reply(b'{"meta": {"api-version": "1.1"}, "files": [{"filen',
                                      content_type=PEP691_JSON))

    proc = run_mirror_builder("bootstrap", "sixlike==1.0", "-o", str(tmp_path / "out"),
                              cwd=tmp_path, check=False,
                              settings=settings_for(scripted_index, tmp_path, cache_dir))

    assert proc.returncode == 1, proc.stderr
    (line,) = error_lines(proc.stderr)
    assert line.startswith(f"error: {url}: not a valid PEP 691 project page: not JSON"), line
    assert scripted_index.hits["/simple/sixlike/"] == 1  # garbage is not a transient failure

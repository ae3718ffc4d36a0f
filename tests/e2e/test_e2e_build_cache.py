"""End-to-end, real podman and PyPI: the machine's build cache (CACHE_DIR/builds) gives a fresh
output every wheel another output built, after the same smoke test; the fresh output installs
from its own index alone; a corrupt cache entry is built again, never published."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import (STEVEDORE, clean_environment, free_port, fresh_venv, run_mirror_builder,
                      write_settings)

pytestmark = pytest.mark.e2e

PYYAML = "6.0.4"


def records(out: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text())
            for p in (out / "records").glob("*/*.build.json")}


def install_and_run(tmp_path: Path, out: Path, requirement: str, code: str) -> str:
    venv = fresh_venv(tmp_path / f"venv-{out.name}")
    subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--index-url",
                    (out / "simple").as_uri(), "--only-binary", ":all:", requirement],
                   check=True, env=clean_environment(), capture_output=True)
    return subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=tmp_path, check=True,
                          env=clean_environment(), capture_output=True, text=True).stdout


def bootstrap(requirement: str, out: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    return run_mirror_builder("bootstrap", requirement, "-o", str(out), cwd=tmp_path)


def test_a_fresh_output_takes_every_wheel_from_the_cache(stevedore_output, tmp_path):
    out = tmp_path / "b"
    proc = bootstrap(f"stevedore=={STEVEDORE}", out, tmp_path)

    mine, theirs = records(out), records(stevedore_output)
    assert set(mine) == set(theirs) >= {"stevedore", "pbr", "setuptools"}
    cached = json.loads(run_mirror_builder("cache", "list", *mine, "--json", cwd=tmp_path).stdout)
    for name, record in mine.items():
        # The cache's first build of these inputs (the session's own build, or an earlier one
        # of the same build tools: then stevedore's build environment, and key, follow them).
        assert record["from_cache"]["build_key"] == record["build_key"], name
        (wheel,) = (out / "files" / name).glob("*.whl")
        assert hashlib.sha256(wheel.read_bytes()).hexdigest() == record["wheel_sha256"]
        assert any((e["name"], e["build_key"], e["wheel_sha256"]) ==
                   (name, record["build_key"], record["wheel_sha256"]) for e in cached), name
    assert "reused from the cache" in " ".join(proc.stdout.split() + proc.stderr.split())
    assert "0 built" in proc.stdout + proc.stderr
    assert install_and_run(tmp_path, out, f"stevedore=={STEVEDORE}",
                           "import stevedore; print(stevedore.__name__)").strip() == "stevedore"


def test_a_corrupt_cache_entry_is_built_again_not_published(stevedore_output, tmp_path):
    entries = json.loads(run_mirror_builder("cache", "list", "stevedore", "--json",
                                            cwd=tmp_path).stdout)
    for entry in [e for e in entries if e["version"] == STEVEDORE]:
        blob = _blob(entry["wheel_sha256"])
        blob.write_bytes(blob.read_bytes()[:1000])  # truncated
    assert run_mirror_builder("cache", "verify", cwd=tmp_path, check=False).returncode == 1

    out = tmp_path / "c"
    bootstrap(f"stevedore=={STEVEDORE}", out, tmp_path)

    mine = records(out)
    assert "from_cache" not in mine["stevedore"]  # built here
    assert "from_cache" in mine["pbr"]
    (wheel,) = (out / "files" / "stevedore").glob("*.whl")
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() == mine["stevedore"]["wheel_sha256"]
    # Its entry is whole again, with the new build; the others are removed when asked.
    entries = json.loads(run_mirror_builder("cache", "list", "stevedore", "--json",
                                            cwd=tmp_path).stdout)
    assert {(e["build_key"], e["wheel_sha256"]) for e in entries} >= {
        (mine["stevedore"]["build_key"], mine["stevedore"]["wheel_sha256"])}
    run_mirror_builder("cache", "verify", "--remove-bad", cwd=tmp_path)
    assert run_mirror_builder("cache", "verify", cwd=tmp_path).returncode == 0


@pytest.mark.slow
def test_pyyaml_into_a_second_output_builds_nothing_the_first_built(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    bootstrap(f"pyyaml=={PYYAML}", first, tmp_path)
    bootstrap(f"pyyaml=={PYYAML}", second, tmp_path)

    mine = records(second)
    assert {"pyyaml", "cython", "setuptools"} <= set(mine)
    assert all("from_cache" in r for r in mine.values()), \
        [n for n, r in mine.items() if "from_cache" not in r]
    assert install_and_run(tmp_path, second, f"pyyaml=={PYYAML}",
                           "import yaml; print(yaml.CLoader.__name__)").strip() == "CLoader"


def _cache_root() -> Path:
    return Path.home() / ".cache" / "mirror-builder" / "builds"


def _blob(sha256: str) -> Path:
    return _cache_root() / "blobs" / "sha256" / sha256[:2] / sha256


def test_two_bootstraps_at_once_into_two_outputs_build_each_version_once(tmp_path):
    # A build cache of their own, empty, so that both need setuptools and six built.
    settings = write_settings(tmp_path / "conf", cache_dir=str(tmp_path / "cache"))
    run_mirror_builder("images", cwd=tmp_path, settings=settings)  # made already: quick
    runs = [subprocess.Popen(
        [sys.executable, "-m", "mirror_builder", "--settings", str(settings), "bootstrap",
         "six==1.17.0", "-o", str(tmp_path / name)], cwd=tmp_path, env=clean_environment(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for name in ("a", "b")]
    for run in runs:
        output, _ = run.communicate(timeout=900)
        assert run.returncode == 0, output

    a, b = records(tmp_path / "a"), records(tmp_path / "b")
    assert set(a) == set(b) >= {"six", "setuptools"}
    for name in a:
        # Built by one run, taken from the cache by the other: the same wheel, built once.
        built_here = ["from_cache" not in a[name], "from_cache" not in b[name]]
        assert sorted(built_here) == [False, True], name
        assert a[name]["wheel_sha256"] == b[name]["wheel_sha256"], name


def test_another_machines_cache_over_http_gives_a_fresh_machine_every_wheel(tmp_path):
    # "Machine" one builds six into its own cache; its CACHE_DIR/builds is served by a plain
    # static file server on loopback; "machine" two, with an empty cache, names it as a source.
    first = write_settings(tmp_path / "one", cache_dir=str(tmp_path / "cache-one"))
    run_mirror_builder("images", cwd=tmp_path, settings=first)
    bootstrap_with(first, "six==1.17.0", tmp_path / "a", tmp_path)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port), "--directory",
         str(tmp_path / "cache-one" / "builds")], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for(url)
        second = write_settings(tmp_path / "two", cache_dir=str(tmp_path / "cache-two"),
                                build_cache=f"{{sources: ['{url}']}}")
        run_mirror_builder("images", cwd=tmp_path, settings=second)
        bootstrap_with(second, "six==1.17.0", tmp_path / "b", tmp_path)
    finally:
        server.terminate()
        server.wait(10)

    mine, theirs = records(tmp_path / "b"), records(tmp_path / "a")
    assert set(mine) == set(theirs) >= {"six", "setuptools"}
    for name, record in mine.items():
        assert record["from_cache"]["output"] == f"{tmp_path / 'a'} (from {url})", name
        assert record["wheel_sha256"] == theirs[name]["wheel_sha256"], name
    assert run_mirror_builder("cache", "verify", cwd=tmp_path, settings=second).returncode == 0
    assert install_and_run(tmp_path, tmp_path / "b", "six==1.17.0",
                           "import six; print(six.__version__)").strip() == "1.17.0"


def bootstrap_with(settings: Path, requirement: str, out: Path, cwd: Path) -> None:
    run_mirror_builder("bootstrap", requirement, "-o", str(out), cwd=cwd, settings=settings)


def wait_for(url: str) -> None:
    import time
    import urllib.request

    for _ in range(50):
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")

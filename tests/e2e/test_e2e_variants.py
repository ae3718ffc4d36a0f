"""End-to-end, with real podman, a real local upstream, a real `serve` and nginx: two build
variants into one output. The package whose env differs per variant is built in each and published in two
indexes (OUTPUT/simple/ and OUTPUT/variants/cuda/simple/), pip installs each variant's own bytes
from each, and the dependency that builds the same in both is built once and shared."""

import hashlib
import json
import shutil
import subprocess

import pytest

from conftest import (FIXTURES, clean_environment, free_port, fresh_venv, make_sdist,
                      run_mirror_builder)
from test_e2e_nginx import Nginx, wait_for_port

pytestmark = pytest.mark.e2e

SETUPTOOLS = "84.2.1"  # the only setuptools the local upstream holds (see test_e2e_local_upstream)
WHEEL = "{}-1.0-py3-none-any.whl"


def install_and_run(venv_dir, index_url, requirement, code) -> str:
    venv = fresh_venv(venv_dir)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--index-url",
                    index_url, "--only-binary", ":all:", requirement],
                   check=True, env=clean_environment(), capture_output=True)
    return subprocess.run([str(venv / "bin" / "python"), "-c", code], check=True,
                          capture_output=True, text=True).stdout.strip()


def record(output, name):
    return json.loads((output / "records" / name / f"{WHEEL.format(name)}.build.json").read_text())


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_variants_publish_two_indexes_and_share_what_builds_the_same(local_upstream, tmp_path,
                                                                         served):
    local_upstream.add_from_pypi("setuptools", SETUPTOOLS)
    for name in ("variantprobe", "sharedep"):
        local_upstream.add(make_sdist(FIXTURES / name, tmp_path / "sdists", name, "1.0"))
    # The repository's settings declare the variants cpu (the default) and cuda.
    settings = local_upstream.settings(tmp_path / "conf")
    (tmp_path / "conf" / "overrides").mkdir()
    (tmp_path / "conf" / "overrides" / "variantprobe.yaml").write_text(
        "variants:\n  cpu:\n    env: {VARIANT_PROBE: cpu}\n"
        "  cuda:\n    env: {VARIANT_PROBE: cuda}\n")

    run_mirror_builder("bootstrap", "variantprobe", "--variant", "cpu", "-o", "out",
                       cwd=tmp_path, settings=settings)
    second = run_mirror_builder("bootstrap", "variantprobe", "--variant", "cuda", "-o", "out",
                                cwd=tmp_path, settings=settings)

    out = tmp_path / "out"
    outputs = {"cpu": out, "cuda": out / "variants" / "cuda"}
    # Each variant's own build of variantprobe, its record naming the variant.
    probes = {v: o / "files" / "variantprobe" / WHEEL.format("variantprobe")
              for v, o in outputs.items()}
    assert sha256(probes["cpu"]) != sha256(probes["cuda"])
    assert {v: record(o, "variantprobe")["variant"] for v, o in outputs.items()} == \
        {"cpu": "cpu", "cuda": "cuda"}
    assert record(out, "variantprobe")["build_key"] != \
        record(outputs["cuda"], "variantprobe")["build_key"]
    # plan says which is which (it reads the image's markers the bootstraps recorded; the
    # fixture's sdist has no PKG-INFO, so plan does not know variantprobe needs sharedep).
    plan = run_mirror_builder("plan", "variantprobe", "--variant", "cuda", "--json", cwd=tmp_path,
                              settings=settings)
    planned = {p["name"]: (p["per_variant"], p["variant_overrides"])
               for p in json.loads(plan.stdout)}
    assert planned["variantprobe"] == (True, {"env": {"VARIANT_PROBE": "cuda"}})
    assert planned["setuptools"] == (False, {})

    # Two indexes, served side by side; pip installs each variant's bytes from its own.
    base, _ = served(out)
    code = "import sharedep, variantprobe._built_for as b; print(b.VARIANT, sharedep.SHARED)"
    assert install_and_run(tmp_path / "venv-cpu", f"{base}/simple/", "variantprobe", code) == \
        "cpu True"
    assert install_and_run(tmp_path / "venv-cuda", f"{base}/variants/cuda/simple/",
                           "variantprobe", code) == "cuda True"
    if shutil.which("nginx"):  # and as nginx serves them, from the site nginx-config writes
        port = free_port()
        site = run_mirror_builder("nginx-config", "-o", str(out), "--listen",
                                  f"127.0.0.1:{port}", cwd=tmp_path).stdout
        (tmp_path / "nginx").mkdir()
        with Nginx(tmp_path / "nginx", site):
            wait_for_port(port)
            assert install_and_run(tmp_path / "venv-nginx",
                                   f"http://127.0.0.1:{port}/variants/cuda/simple/",
                                   "variantprobe", code) == "cuda True"

    # The dependency with no variant settings has one build key, one wheel in both indexes,
    # built once: under cpu, which its record keeps saying wherever it is published.
    shared = {v: o / "files" / "sharedep" / WHEEL.format("sharedep") for v, o in outputs.items()}
    assert sha256(shared["cpu"]) == sha256(shared["cuda"])
    assert record(outputs["cuda"], "sharedep")["build_key"] == record(out, "sharedep")["build_key"]
    # (Shared through the machine-wide build cache: without it, the cuda run builds it again.)
    order = {e["name"]: e["status"] for e in
             json.loads((outputs["cuda"] / "build-order.json").read_text())}
    assert order["variantprobe"] == "built"
    assert order["sharedep"] != "built", second.stderr
    assert f"built {WHEEL.format('sharedep')}" not in " ".join(second.stderr.split())
    assert record(outputs["cuda"], "sharedep")["variant"] == "cpu"

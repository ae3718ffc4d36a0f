"""End-to-end against the real PyPI: plan builds nothing and gives the order; pre_built takes
the upstream wheel and says plainly that it was not built from source."""

import hashlib
import json

import pytest
import requests

from conftest import run_mirror_builder, write_settings

pytestmark = pytest.mark.e2e


def test_plan_gives_the_bottom_up_order_without_building(tmp_path):
    # plan starts no podman: it reads the markers measured when the target's image was made.
    run_mirror_builder("images", cwd=tmp_path)
    proc = run_mirror_builder("plan", "stevedore==5.10.0", "--json", cwd=tmp_path)
    plan = json.loads(proc.stdout)
    assert [p["name"] for p in plan] == ["setuptools", "pbr", "stevedore"]
    stevedore = plan[-1]
    assert any(r.startswith("pbr") for r in stevedore["build_requires"])
    assert not (tmp_path / "output").exists()


def test_pre_built_takes_the_upstream_wheel_and_says_so(tmp_path):
    overrides = tmp_path / "overrides"
    overrides.mkdir()
    (overrides / "six.yaml").write_text("pre_built: true\n")
    settings = write_settings(tmp_path / "conf", overrides_dir=str(overrides))
    out = tmp_path / "out"
    proc = run_mirror_builder("bootstrap", "six==1.17.0", "-o", str(out), cwd=tmp_path,
                              settings=settings)
    assert "pre-built (not from source)" in proc.stderr
    (wheel,) = (out / "files" / "six").glob("*.whl")
    page = requests.get("https://pypi.org/simple/six/", timeout=60).text
    assert f"{wheel.name}#sha256={hashlib.sha256(wheel.read_bytes()).hexdigest()}" in page
    record = json.loads((out / "records" / "six" / f"{wheel.name}.build.json").read_text())
    assert record["built_from_source"] is False
    shown = run_mirror_builder("inspect", "six==1.17.0", "-o", str(out), cwd=tmp_path,
                               settings=settings).stdout
    assert "NOT built from source" in " ".join(shown.split())

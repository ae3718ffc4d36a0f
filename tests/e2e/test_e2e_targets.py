"""End-to-end: one tree for two build targets (Python 3.11 on bookworm, Python 3.13 on trixie):
the C extension is built for each Python, pure-Python wheels once for both, and the 3.13 wheels
install into that Python from our index."""

import json
import re
import subprocess

import pytest

from conftest import REPO, clean_environment, run_mirror_builder

pytestmark = pytest.mark.e2e

CONF = str(REPO / "mirror_builder" / "data" / "containers.conf")


def test_two_pythons_share_pure_wheels_and_each_gets_its_own_extension(tmp_path):
    out = tmp_path / "out"
    run_mirror_builder("bootstrap", "jinja2==3.1.6", "--target", "bookworm-x86_64",
                       "--target", "trixie-x86_64", "-o", str(out), cwd=tmp_path)

    markupsafe = sorted(p.name for p in (out / "files" / "markupsafe").glob("*.whl"))
    assert markupsafe == ["markupsafe-3.0.4-cp311-cp311-linux_x86_64.whl",
                          "markupsafe-3.0.4-cp313-cp313-linux_x86_64.whl"]
    assert [p.name for p in (out / "files" / "jinja2").glob("*.whl")] == ["jinja2-3.1.6-py3-none-any.whl"]
    record = json.loads((out / "records" / "jinja2" / "jinja2-3.1.6-py3-none-any.whl.build.json").read_text())
    assert record["target"]["name"] == "bookworm-x86_64"  # where the shared wheel was built
    cp313 = json.loads((out / "records" / "markupsafe" /
                        "markupsafe-3.0.4-cp313-cp313-linux_x86_64.whl.build.json").read_text())
    assert cp313["target"]["python_version"] == "3.13"
    trixie_order = {e["name"]: e["status"] for e in
                    json.loads((out / "build-order.trixie-x86_64.json").read_text())}
    # The extension is trixie's own: built for it now, or by an earlier run for trixie and
    # taken from the machine's build cache (its record says trixie either way).
    assert trixie_order["jinja2"] == "reused" and trixie_order["markupsafe"] in ("built", "cached")
    assert cp313["target"]["name"] == "trixie-x86_64"

    # Install into trixie's Python 3.13, in a container without network, from our index alone.
    images = run_mirror_builder("images", "--target", "trixie-x86_64", cwd=tmp_path).stderr
    tag = re.search(r"(localhost/mirror-builder-trixie-x86_64:\w+)", " ".join(images.split())).group(1)
    script = ("python3 -m venv /tmp/v && /tmp/v/bin/pip install -q --no-cache-dir "
              "--index-url file:///index/simple --only-binary :all: jinja2 && /tmp/v/bin/python -c "
              "'import sys, jinja2, markupsafe._speedups; print(sys.version_info[:2], jinja2.__version__)'")
    ran = subprocess.run(["podman", "run", "--rm", "--network", "none", "-v", f"{out}:/index:ro",
                          tag, "sh", "-c", script], capture_output=True, text=True,
                         env=clean_environment(CONTAINERS_CONF=CONF))
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "(3, 13) 3.1.6"

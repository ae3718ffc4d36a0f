"""End-to-end against the real upstream: `plan torch` lists torch's whole install closure and
build dependencies, though PyPI has no sdist of torch and the index here serves neither PEP 658
metadata files nor a JSON API for it. Its METADATA is read from the upstream wheel (some 750 MB)
with HTTP range requests, for a few blocks of it."""

import json
import re

import pytest

from conftest import REPO, run_mirror_builder, write_settings

pytestmark = pytest.mark.e2e

# What torch installs, whatever the version (its PyPI wheels' Requires-Dist, less the CUDA
# runtime wheels a build from source does not require), and what those install.
TORCH_CLOSURE = {"filelock", "typing-extensions", "sympy", "mpmath", "networkx", "jinja2",
                 "markupsafe", "fsspec"}


def test_plan_torch_reads_its_requirements_from_a_few_kilobytes_of_the_upstream_wheel(tmp_path):
    # A cache of its own: every metadata answer is fetched, and counted, now.
    settings = write_settings(tmp_path / "conf", cache_dir=str(tmp_path / "cache"),
                              overrides_dir=str(REPO / "overrides"),
                              patches_dir=str(REPO / "patches"))
    run_mirror_builder("images", cwd=tmp_path, settings=settings)  # made already: quick
    proc = run_mirror_builder("-v", "plan", "torch", "--json", cwd=tmp_path, settings=settings,
                              env={"COLUMNS": "400"})  # log lines unwrapped
    plan = json.loads(proc.stdout)
    names = [p["name"] for p in plan]

    torch = next(p for p in plan if p["name"] == "torch")
    assert "install requirements read from the upstream wheel torch-" in torch["note"]
    assert TORCH_CLOSURE <= set(names), TORCH_CLOSURE - set(names)
    assert not [n for n in names if n.startswith("nvidia-") or n == "triton"]
    # Bottom-up: each of torch's build requirements is planned before torch.
    for requirement in ("numpy", "pyyaml", "setuptools", "typing-extensions"):
        assert names.index(requirement) < names.index("torch"), requirement

    # The wheel read for torch's METADATA, and what reading it cost.
    (read,) = re.findall(r"(torch-[^ ]+\.whl): METADATA read with (\d+) range requests, "
                         r"(\d+) of (\d+) bytes", proc.stderr)
    wheel, requests, fetched, size = read[0], int(read[1]), int(read[2]), int(read[3])
    assert wheel in torch["note"] and "x86_64" in wheel
    assert size > 100_000_000
    assert fetched <= 1_000_000, f"{fetched} bytes of {wheel} for its METADATA"
    assert requests <= 3

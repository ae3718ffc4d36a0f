"""The long proof (marked slow; `./run-tests --slow`): the whole langchain-core tree, Rust
extensions and their build tools included, built from source in network-less containers."""

import json
import subprocess

import pytest

from conftest import clean_environment, fresh_venv, run_mirror_builder

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# The newest langchain-core whose requirements all exist on the registry reachable here.
LANGCHAIN_CORE = "1.0.7"
RUST_PACKAGES = {"pydantic-core", "maturin"}


def test_the_langchain_core_tree_builds_from_source_and_installs(tmp_path):
    out = tmp_path / "out"
    run_mirror_builder("bootstrap", f"langchain-core=={LANGCHAIN_CORE}", "-o", str(out), cwd=tmp_path)

    records = [json.loads(p.read_text()) for p in (out / "records").glob("*/*.build.json")]
    wheels = list((out / "files").glob("*/*.whl"))
    assert len(records) == len(wheels) > 40
    for record in records:
        assert record["built_from_source"], record["wheel"]
        assert record["sandbox"]["network"] == "none"
    names = {r["name"] for r in records}
    assert RUST_PACKAGES <= names
    rust = [r for r in records if r["source"]["origin"].get("vendored_crates")]
    assert {r["name"] for r in rust} >= {"pydantic-core", "maturin"}
    assert any(w.name.startswith("pydantic_core-") and "linux_x86_64" in w.name for w in wheels)

    venv = fresh_venv(tmp_path / "venv")
    subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--index-url",
                    (out / "simple").as_uri(), "--only-binary", ":all:",
                    f"langchain-core=={LANGCHAIN_CORE}"],
                   check=True, env=clean_environment(), capture_output=True)
    subprocess.run([str(venv / "bin" / "python"), "-c",
                    "from langchain_core.messages import HumanMessage; "
                    "assert HumanMessage(content='hi').content == 'hi'"], check=True)

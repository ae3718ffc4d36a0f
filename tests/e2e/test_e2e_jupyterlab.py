"""The long proof of a real build cycle (marked slow; `./run-tests --slow`): jupyterlab's whole
tree built from source, jupyterlab-pygments (which build-requires jupyterlab, which installs it)
built in stages by the shipped override, and jupyterlab installed from our index and run."""

import json
import subprocess

import pytest

from conftest import clean_environment, fresh_venv, run_mirror_builder

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

JUPYTERLAB = "4.6.6"


def test_jupyterlab_builds_with_its_build_cycle_broken_in_stages_and_runs(tmp_path):
    out = tmp_path / "out"
    run_mirror_builder("bootstrap", f"jupyterlab=={JUPYTERLAB}", "-o", str(out), cwd=tmp_path)

    records = [json.loads(p.read_text()) for p in (out / "records").glob("*/*.build.json")]
    assert len(records) == len(list((out / "files").glob("*/*.whl"))) > 80
    for record in records:
        assert record["built_from_source"], record["wheel"]
        assert record["sandbox"]["network"] == "none"

    # The index holds the full build of jupyterlab-pygments only, built with jupyterlab; its
    # record names the stage-1 build that served the cycle.
    (pygments,) = (out / "files" / "jupyterlab-pygments").glob("*.whl")
    assert pygments.name == "jupyterlab_pygments-0.3.0-1-py3-none-any.whl"
    record = json.loads((out / "records" / "jupyterlab-pygments" /
                         f"{pygments.name}.build.json").read_text())
    assert record["bootstrap_stage"]["stage"] == "full"
    assert record["bootstrap_stage"]["removed"] == ["jupyterlab"]
    assert any(line.startswith("jupyterlab==") for line in record["build_env"]["freeze"])
    stage_one = record["bootstrap_stage"]["stage1"]
    assert not any(line.startswith("jupyterlab==") for line in stage_one["build_env"]["freeze"])
    assert (out / stage_one["log"]).is_file()

    venv = fresh_venv(tmp_path / "venv")
    subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--index-url",
                    (out / "simple").as_uri(), "--only-binary", ":all:",
                    f"jupyterlab=={JUPYTERLAB}"],
                   check=True, env=clean_environment(), capture_output=True)
    version = subprocess.run([str(venv / "bin" / "jupyter"), "lab", "--version"], check=True,
                             capture_output=True, text=True, env=clean_environment())
    assert version.stdout.strip() == JUPYTERLAB
    subprocess.run([str(venv / "bin" / "python"), "-c",
                    "import jupyter_server, zmq; from jupyterlab_pygments import JupyterStyle; "
                    "from pygments.formatters import HtmlFormatter; "
                    "assert 'var(--jp-' in HtmlFormatter(style=JupyterStyle).get_style_defs(); "
                    "assert zmq.zmq_version_info() >= (4,)"], check=True, env=clean_environment())

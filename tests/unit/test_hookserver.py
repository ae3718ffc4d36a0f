"""The in-container hook server: PEP 517 hooks through pyproject-hooks, each in a process of its
own, forked from one that imported the backend once."""

import os
import subprocess
import sys

import pyproject_hooks
import pytest

from mirror_builder.sandbox.hookserver import HookRunner
from mirror_builder.sandbox import HOOKSERVER

BACKEND = '''
import os
with open(os.environ["IMPORTS_LOG"], "a") as log:
    log.write(f"imported in {os.getpid()}\\n")
STATE = []

def get_requires_for_build_wheel(config_settings=None):
    STATE.append("changed by the first hook")
    os.environ["LEAKED"] = "yes"
    return [f"pid={os.getpid()}", f"cwd={os.path.basename(os.getcwd())}"]

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    if STATE or os.environ.get("LEAKED"):
        raise RuntimeError("the first hook's state reached the second")
    name = "demo-1.0-py3-none-any.whl"
    open(os.path.join(wheel_directory, name), "wb").close()
    return name
'''


@pytest.fixture
def project(tmp_path):
    tree = tmp_path / "project"
    (tree / "backend").mkdir(parents=True)
    (tree / "backend" / "demo_backend.py").write_text(BACKEND)
    return tree


def hooks(project, tmp_path, backend="demo_backend"):
    runner = HookRunner({**os.environ, "IMPORTS_LOG": str(tmp_path / "imports.log")},
                        server=str(HOOKSERVER))
    caller = pyproject_hooks.BuildBackendHookCaller(
        str(project), backend, backend_path=["backend"], runner=runner,
        python_executable=sys.executable)
    return caller, runner


def test_each_hook_runs_in_its_own_process_and_the_backend_is_imported_once(project, tmp_path):
    caller, runner = hooks(project, tmp_path)
    try:
        requires = caller.get_requires_for_build_wheel()
        wheel = caller.build_wheel(str(tmp_path))
    finally:
        runner.close()
    assert wheel == "demo-1.0-py3-none-any.whl" and (tmp_path / wheel).exists()
    assert requires[1] == "cwd=project"
    hook_pid = int(requires[0].split("=")[1])
    (imported,) = (tmp_path / "imports.log").read_text().splitlines()
    assert hook_pid != int(imported.split()[-1]) != os.getpid()


def test_a_backend_that_cannot_be_imported_is_reported_as_pyproject_hooks_reports_it(project,
                                                                                       tmp_path):
    caller, runner = hooks(project, tmp_path, backend="no_such_backend")
    try:
        with pytest.raises(pyproject_hooks.BackendUnavailable):
            caller.get_requires_for_build_wheel()
    finally:
        runner.close()


def test_a_hook_that_fails_is_a_failed_command_with_its_traceback_in_the_log(project, tmp_path,
                                                                             capfd):
    (project / "backend" / "demo_backend.py").write_text(
        BACKEND + "\ndef get_requires_for_build_wheel(config_settings=None):\n"
                  "    raise ValueError('the backend broke')\n")
    caller, runner = hooks(project, tmp_path)
    try:
        with pytest.raises(subprocess.CalledProcessError):
            caller.get_requires_for_build_wheel()
        # The server outlives a failed hook: the next one still runs.
        assert caller.build_wheel(str(tmp_path)) == "demo-1.0-py3-none-any.whl"
    finally:
        runner.close()
    assert "ValueError: the backend broke" in capfd.readouterr().err


def test_the_backends_exit_handlers_run_when_the_server_ends_and_before_close_returns(
        project, tmp_path):
    (project / "backend" / "demo_backend.py").write_text(
        BACKEND + "\nimport atexit\n"
                  "atexit.register(lambda: open(os.environ['IMPORTS_LOG'], 'a').write('exit ran\\n'))\n")
    caller, runner = hooks(project, tmp_path)
    caller.get_requires_for_build_wheel()

    runner.close()

    assert (tmp_path / "imports.log").read_text().splitlines()[-1] == "exit ran"

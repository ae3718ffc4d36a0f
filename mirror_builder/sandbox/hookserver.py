"""Runs INSIDE a build container, in the build environment's python (copied in as
/mb/lib/mb_hookserver.py): PEP 517 hooks, each in a process of its own, without paying for the
backend's import twice.

PEP 517 asks frontends to call each hook in a fresh process, so that a backend may change
process-wide state (the working directory, environment variables, sys.modules) in one hook
without it leaking into the next. This server imports pyproject-hooks' own _in_process script
and the backend once, then forks a child per hook, which runs that script's main() exactly as
`python _in_process.py HOOK CONTROL_DIR` would: every hook starts from the state right after
the backend's import, and nothing a hook does reaches the next one. What it saves is the
interpreter's start and the backend's import for the second hook (about 0.3 s for setuptools).

    python mb_hookserver.py IN_PROCESS_SCRIPT REQUEST_FD REPLY_FD

The driver's side is HookRunner, the runner it gives pyproject-hooks' BuildBackendHookCaller.

A request is one JSON line [hook_name, control_dir]; the reply is the hook process's exit
status as one line. stdin stays the build's own (/dev/null in the container).
"""

import importlib.util
import json
import os
import subprocess
import sys
import traceback


def load_in_process(path):
    """pyproject-hooks' _in_process script as a module, loaded from its file (its folder is not
    put on sys.path, as running it would not leave it there either)."""
    spec = importlib.util.spec_from_file_location("_pyproject_hooks_in_process", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_hook(module, script, hook_name, control_dir):
    """In the forked child: the script's main() for one hook; never returns."""
    code = 0
    try:
        sys.argv = [script, hook_name, control_dir]
        module.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # what the script itself would have died of
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def serve(script, requests, replies):
    module = load_in_process(script)
    try:
        module._build_backend()  # imported once; a failure is the first hook's to report
    except BaseException:  # noqa: BLE001 - said by the hook, with pyproject-hooks' message
        pass
    for line in requests:
        hook_name, control_dir = json.loads(line)
        pid = os.fork()
        if pid == 0:
            requests.close()
            replies.close()
            run_hook(module, script, hook_name, control_dir)
        _, status = os.waitpid(pid, 0)
        replies.write(f"{os.waitstatus_to_exitcode(status)}\n")
        replies.flush()


class HookRunner:
    """pyproject-hooks' subprocess runner, its hooks run by one mb_hookserver (see there): a
    forked process per hook from a process that imported the backend once."""

    def __init__(self, base_env, server="/mb/lib/mb_hookserver.py"):
        self.base_env = base_env
        self.server_path = server
        self.server = None
        self.key = None

    def __call__(self, cmd, cwd=None, extra_environ=None):
        env = dict(self.base_env)
        env.update(extra_environ or {})
        python, script, hook_name, control_dir = cmd
        key = (python, script, cwd, tuple(sorted(env.items())))
        if self.server is None:
            self._start(key, python, script, cwd, env)
        if key != self.key:  # never so today: one backend, one folder, one environment
            subprocess.run(cmd, cwd=cwd, env=env, check=True)
            return
        process, requests, replies = self.server
        requests.write(json.dumps([hook_name, control_dir]) + "\n")
        requests.flush()
        status = replies.readline()
        if not status.strip().lstrip("-").isdigit():
            raise subprocess.CalledProcessError(process.poll() or 1, cmd)
        if int(status) != 0:
            raise subprocess.CalledProcessError(int(status), cmd)

    def _start(self, key, python, script, cwd, env):
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        process = subprocess.Popen(
            [python, self.server_path, script, str(request_read), str(reply_write)],
            cwd=cwd, env=env, stdin=subprocess.DEVNULL, pass_fds=(request_read, reply_write))
        os.close(request_read)
        os.close(reply_write)
        self.server = (process, os.fdopen(request_write, "w"), os.fdopen(reply_read, "r"))
        self.key = key

    def close(self):
        if self.server is not None:
            process, requests, replies = self.server
            requests.close()
            replies.close()
            process.wait()
            self.server = None


def exit_now():
    """Exit as the interpreter would, running the exit handlers the backend's import registered,
    but without tearing down every module it imported one by one: that took 15-50 ms, which the
    build's hand-over waited for."""
    import atexit

    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    # Not the backend's to import: this file's own folder (/mb/lib).
    sys.path.pop(0)
    serve(sys.argv[1], os.fdopen(int(sys.argv[2]), "r"), os.fdopen(int(sys.argv[3]), "w"))
    exit_now()

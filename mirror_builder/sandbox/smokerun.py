"""Runs INSIDE a container, beside the driver (copied in as /mb/lib/mb_smoke.py; stdlib and
/mb/lib only, never imported on the host): smoke tests. A wheel is installed with its install
closure, offline, into a fresh venv, and its top-level modules are imported.

Two ways in: a smoke-test container (many wheels, their closures from our index and the wheels
staged in the run, side by side), and a build container once its build is done (the wheel just
built, its closure from the wheels mounted at /closure).
"""

import json
import os
import shutil
import subprocess
import time

WORK = "/tmp/mb-work"
SMOKE_HOME = "/tmp/mb-smoke"  # the in-build test's own home, cache and working folder
# A tmpfs the host mounts in build containers (build/jobspec.py): where it is, the in-build
# test's home and venv are made in it instead (files made on the disk behind /tmp cost 2-3x).
IN_MEMORY = "/tmp/mb-test"
BUILT = "built"  # the in-build test's number, in its venv's name
# Where the in-build test makes its venv (in memory, else on disk): the image's uv seed knows
# these paths (containerfiles/*/Containerfile), as it does WORK/smoke-N.
IN_BUILD_VENVS = (f"{IN_MEMORY}/smoke/smoke-{BUILT}", f"{SMOKE_HOME}/smoke-{BUILT}")


# A module that imports another project the wheel does not declare (an optional dependency:
# soupsieve imports bs4, matplotlib-inline imports matplotlib) is not a broken build: reported
# as UNDECLARED, not as a failure. Missing modules of the wheel's own packages are failures.
# The probe ends once its results are out, without the interpreter's teardown of every module
# imported (25-50 ms for flask's closure): the imports are what is tested.
IMPORT_PROBE = """
import importlib, json, os, sys, traceback
own = {name.split(".")[0] for name in sys.argv[1:]}
results = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        results[name] = None
    except ModuleNotFoundError as exc:
        # A package may re-raise with a message of its own ("X must be installed"): the
        # missing module is then named by the error it came from.
        cause = exc.__cause__ or exc.__context__
        missing = exc.name or (cause.name if isinstance(cause, ModuleNotFoundError) else "") or ""
        if missing and missing.split(".")[0] not in own:
            results[name] = "UNDECLARED " + missing
        else:
            results[name] = traceback.format_exc(limit=3).strip().splitlines()[-1]
    except BaseException:
        results[name] = traceback.format_exc(limit=3).strip().splitlines()[-1]
print("MB-IMPORTS " + json.dumps(results), flush=True)
sys.stderr.flush()
os._exit(0)
"""
UNDECLARED = "UNDECLARED "


def undeclared_imports(imports):
    """The import results with UNDECLARED ones made readable, and the real failures."""
    readable, broken = {}, {}
    for name, why in imports.items():
        if why and why.startswith(UNDECLARED):
            readable[name] = (f"not fully tested: it imports {why[len(UNDECLARED):]}, which the "
                              f"wheel does not declare as a requirement")
        else:
            readable[name] = why
            if why:
                broken[name] = why
    return readable, broken


def smoke_tests(job):
    """Smoke mode: for each candidate wheel, a fresh venv with the wheel and its whole install
    closure, from our index (read-only at /index) and the staged wheels only, then import its
    top-level modules. No network: what does not come from those cannot be installed. The
    tests are independent of each other and run side by side, job["jobs"] at a time."""
    from concurrent.futures import ThreadPoolExecutor

    from mb_uvenv import uv_environment  # /mb/lib

    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp/mb-home", "LANG": "C.UTF-8",
           "TMPDIR": "/tmp"}
    # One cache for the container's tests (on its throw-away /tmp): closures overlap, and a
    # wheel unpacked for one test is hardlinked into the next test's venv.
    uv_env = uv_environment(env, "/tmp/uv-cache")
    os.makedirs(env["HOME"], exist_ok=True)
    os.makedirs(WORK, exist_ok=True)
    tests = list(enumerate(job["tests"]))
    sources = ["--index-url", job["index_url"], "--find-links", job["staging"]]
    with ThreadPoolExecutor(max_workers=max(1, int(job.get("jobs") or 1))) as pool:
        done = list(pool.map(lambda item: smoke_one(
            sources, item[0], os.path.join(job["staging"], item[1]["wheel"]),
            item[1]["imports"], env, uv_env), tests))
    results = {}
    for (_, test), (result, output) in zip(tests, done):
        print(output, end="", flush=True)  # each test's output whole, in the tests' order
        results[test["wheel"]] = result
    return results


def smoke_one(sources, number, wheel, imports, env, uv_env, cwd="/tmp", keep=False,
              parent=WORK):
    """One wheel's smoke test: its result and its output. sources: where uv takes the wheel's
    install closure from. keep: leave its venv (the container ends right after). parent: the
    folder its venv is made in."""
    started = time.monotonic()
    result = {"status": "failed", "imports": {}, "freeze": []}
    output = [f"[mirror-builder] smoke test {os.path.basename(wheel)}\n"]
    env_dir = os.path.join(parent, f"smoke-{number}")
    python = os.path.join(env_dir, "bin", "python")

    def step(command, run_env, **kwargs):
        output.append("[mirror-builder] $ " + " ".join(command) + "\n")
        done = subprocess.run(command, env=run_env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, **kwargs)
        output.append(done.stdout)
        return done

    from mb_venvs import freeze, make_venv  # /mb/lib

    try:
        try:
            make_venv(env_dir)
        except (OSError, RuntimeError) as exc:  # its folder taken (by an earlier test's import)
            result["error"] = f"its venv could not be made: {type(exc).__name__}: {exc}"
            return result, "".join(output)
        install = step(["uv", "pip", "install", "--python", python, *sources, wheel], uv_env)
        if install.returncode != 0:
            lines = [l.strip() for l in install.stdout.splitlines() if l.strip()]
            result["error"] = "cannot install it from our index: " + " ".join(lines[-4:])
            return result, "".join(output)
        result["freeze"] = freeze(env_dir).splitlines()
        # No .pyc written: the venv is thrown away after this one import (20-30 ms less).
        probe = step([python, "-c", IMPORT_PROBE, *imports],
                     dict(env, PYTHONDONTWRITEBYTECODE="1"), cwd=cwd)
        line = next((l for l in probe.stdout.splitlines() if l.startswith("MB-IMPORTS ")), None)
        if line is None:
            result["error"] = f"the import check itself failed (status {probe.returncode})"
            return result, "".join(output)
        result["imports"], broken = undeclared_imports(json.loads(line[len("MB-IMPORTS "):]))
        if broken:
            result["error"] = "; ".join(f"import {name} failed: {why}" for name, why in broken.items())
            return result, "".join(output)
        result["status"] = "passed"
    except subprocess.CalledProcessError as exc:
        result["error"] = f"{exc.cmd[0]} failed with status {exc.returncode}"
    finally:
        result["seconds"] = round(time.monotonic() - started, 3)
        if not keep:
            shutil.rmtree(env_dir, ignore_errors=True)
    return result, "".join(output)


# The hand-over (build/handover.py): the driver's marker in /out, the host's answer in /job.
HANDED_OVER = "handed-over"
TAKEN = "/job/taken"
SMOKE_RESULT = "smoke.json"
WAIT_FOR_HOST = 600  # seconds; then the test runs anyway (the host may be gone)
WAIT_FOR_CLOSURE = 7 * 24 * 3600  # the container's timeout ends it first
SKIP = "skip"  # TAKEN's text: end without the test


def test_after_hand_over(job, result, result_path, write_json):
    """Build mode, after a build with job["smoke"]: stop what the build left running, write the
    result and the hand-over marker, wait for the host to take the wheel (the builds that need
    it start meanwhile), then smoke-test it into /out/smoke.json."""
    stop_leftovers()
    write_json(result_path, result)
    # The host takes a SMOKE_RESULT file as the test's end (its build slot is let go): not one
    # the build left.
    left = os.path.join(job["out"], SMOKE_RESULT)
    if os.path.isfile(left) and not os.path.islink(left):
        os.unlink(left)
    write_json(os.path.join(job["out"], HANDED_OVER), {})
    # A container that waits for its closure waits as long as the run builds it (its
    # container's timeout still holds), asleep until the host's answer is there.
    from mb_filewait import wait_for_file  # /mb/lib

    wait_for_file(TAKEN, time.monotonic() + (WAIT_FOR_CLOSURE if job["smoke"].get("wait")
                                             else WAIT_FOR_HOST))
    if _told_to_skip():
        tested = {"status": "skipped", "imports": {}, "freeze": [], "imported": [],
                  "error": "the run did not build its install closure"}
    else:
        tested = smoke_built(job, result)
    write_json(os.path.join(job["out"], SMOKE_RESULT), tested)
    return 0


def _told_to_skip():
    try:
        with open(TAKEN) as answer:
            return answer.read() == SKIP
    except OSError:
        return False


def smoke_built(job, result):
    """The smoke test of the wheel just built (job["smoke"]), its install closure from
    /closure alone (read-only), in a fresh venv, home and uv cache. The host takes a pass from
    here; anything else is tested again in a container of its own."""
    plan = job["smoke"]
    wheel = os.path.join(job["out"], "dist", result["wheel"])
    try:
        imports = plan.get("imports")
        if imports is None:
            from mb_toplevel import top_level_modules  # /mb/lib

            imports = list(top_level_modules(wheel))
        from mb_uvenv import uv_environment  # /mb/lib

        # Made here, after the build: anything the build left at these paths fails the test
        # (tested again in a container of its own) rather than being used.
        home = os.path.join(IN_MEMORY, "smoke") if os.path.ismount(IN_MEMORY) else SMOKE_HOME
        os.mkdir(home, 0o700)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": f"{home}/home",
               "LANG": "C.UTF-8", "TMPDIR": "/tmp"}
        uv_env = uv_environment(env, f"{home}/uv-cache")
        cwd = f"{home}/cwd"  # empty: nothing the build left in /tmp shadows a module
        for folder in (env["HOME"], cwd):
            os.makedirs(folder)
        # No folder when the wheel needs nothing: podman mounts only the closure's files.
        closure = plan["closure_dir"]
        sources = ["--no-index", *(["--find-links", closure] if os.path.isdir(closure) else [])]
        tested, output = smoke_one(sources, BUILT, wheel, imports, env, uv_env, cwd=cwd,
                                   keep=True, parent=home)
        print(output, end="", flush=True)
        tested["imported"] = imports
    except Exception as exc:
        tested = {"status": "failed", "imports": {}, "freeze": [],
                  "error": f"the smoke test could not run: {type(exc).__name__}: {exc}"}
    return tested


def stop_leftovers():
    """Kill whatever the build left running (a daemon a build script started), again until none
    is left (one may fork while the first are killed), so that nothing of the build's own is at
    work while the host takes the wheel or while it is tested."""
    import signal

    for _ in range(100):
        _reap()
        others = [int(e) for e in os.listdir("/proc") if e.isdigit() and int(e) not in
                  (os.getpid(), 1) and _alive(int(e))]
        if not others:
            return
        for pid in others:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.001)


def _alive(pid):
    """Not gone, nor a zombie (a killed orphan of the driver's, not reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _reap():
    """Collect the driver's ended children (as PID 1, orphans become its own)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return

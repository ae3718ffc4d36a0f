"""Runs INSIDE a build container (python3 of the image, stdlib + the libraries mounted at /mb/lib).

One run does what a build needs with the least container starts:
  1. copy the read-only source to a scratch tree,
  2. create an empty venv and install exactly the given wheels (ours) with uv, offline,
  3. record its freeze (what `uv pip freeze` prints, read from its .dist-info folders),
  4. ask the backend for get_requires_for_build_wheel (pyproject-hooks, in the venv),
  5. if those are all satisfied, build the wheel into /out/dist; otherwise report what is
     missing and stop, so the host can bootstrap it and call again;
  6. if the job asks (its install closure is mounted at /closure), hand the wheel over to the
     host and then smoke-test it (/mb/lib/mb_smoke.py), which spares it a container of its own.
The result is written to /out/result.json; the log is this process's output. The other modes
repair a wheel (auditwheel) and run smoke tests on their own. Started with --wait (a container
started before its build, build/warm.py), it waits for /job/job.json, which then names where the
source, wheels and closure are (under /job instead of their own mounts).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import traceback

STARTED = time.monotonic()  # the interpreter's start and these imports are the driver's too
sys.path.insert(0, "/mb/lib")

from pyproject_hooks import BuildBackendHookCaller  # noqa: E402

# packaging's requirements and importlib.metadata are imported only for a backend that asks for
# more requirements (few do): with them, the driver took 55 ms of CPU to start, without 28.

WORK = "/tmp/mb-work"
UV_CACHE = "/tmp/mb-uv-cache"  # on the run's scratch /tmp, gone with it


def say(message):
    print(f"[mirror-builder] {message}", flush=True)


def pin_of(wheel_path):
    """name==version of one of our wheels (the host named it: its name and version hold no
    "-", as the wheel spec says)."""
    name, version = os.path.basename(wheel_path).split("-")[:2]
    return f"{name}=={version}"


def run(command, env):
    say("$ " + " ".join(command))
    return subprocess.run(command, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout


def installed(site_packages):
    import importlib.metadata

    from packaging.utils import canonicalize_name

    dists = {}
    for dist in importlib.metadata.distributions(path=[site_packages]):
        dists[canonicalize_name(dist.metadata["Name"])] = dist
    return dists


def satisfied(requirement, dists, seen=None):
    """Is the requirement (and the extras it asks for) met by the installed distributions?"""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen = seen if seen is not None else set()
    if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
        return True
    dist = dists.get(canonicalize_name(requirement.name))
    if dist is None or not requirement.specifier.contains(dist.version, prereleases=True):
        return False
    for extra in requirement.extras:
        key = (canonicalize_name(requirement.name), extra)
        if key in seen:
            continue
        seen.add(key)
        for text in dist.requires or []:
            dep = Requirement(text)
            if dep.marker is not None and dep.marker.evaluate({"extra": extra}) and \
                    not dep.marker.evaluate({"extra": ""}):
                dep.marker = None
                if not satisfied(dep, dists, seen):
                    return False
    return True


def write_json(path, data):
    """Replace path with data. The build ran as this same user and may have left something at
    path (a symbolic link, a directory); what the host reads is only ever what we write here."""
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)
    with open(path, "x") as handle:
        json.dump(data, handle, indent=2)


def repair(job):
    """Repair mode: auditwheel (installed from our wheels) gives a platform wheel a manylinux
    tag, grafting in the system libraries it links to."""
    result = {"status": "failed"}
    try:
        env_dir = os.path.join(WORK, "repair-env")
        python = os.path.join(env_dir, "bin", "python")
        env = {"PATH": f"{env_dir}/bin:/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp/mb-home",
               "LANG": "C.UTF-8", "TMPDIR": "/tmp"}
        from mb_uvenv import uv_environment  # /mb/lib
        from mb_venvs import make_venv  # /mb/lib

        uv_env = uv_environment(env, UV_CACHE)
        make_venv(env_dir)
        pins = [pin_of(p) for p in job["wheels"]]
        run(["uv", "pip", "install", "--python", python, "--no-index", "--find-links",
             job["wheels_dir"], *pins], uv_env)
        version = run([python, "-m", "auditwheel", "--version"], env).split(" installed")[0].strip()
        dist = os.path.join(job["out"], "dist")
        os.makedirs(dist, exist_ok=True)
        command = [python, "-m", "auditwheel", "repair", "--wheel-dir", dist, job["wheel"]]
        say("$ " + " ".join(command))
        subprocess.run(command, env=env, check=True)
        (repaired,) = os.listdir(dist)
        result = {"status": "repaired", "wheel": repaired, "tool": version,
                  "command": ["auditwheel", "repair", os.path.basename(job["wheel"])]}
    except subprocess.CalledProcessError as exc:
        result["error"] = f"auditwheel failed with status {exc.returncode}"
    except Exception as exc:
        traceback.print_exc()
        result["error"] = f"repair failed: {type(exc).__name__}: {exc}"
    write_json(os.path.join(job["out"], "result.json"), result)
    return 0 if result["status"] == "repaired" else 1


def user_namespace():
    """This container's user namespace, read before any package code runs: the host checks it
    against what podman says and puts it in the build record."""
    maps = {}
    for kind in ("uid_map", "gid_map"):
        with open(f"/proc/self/{kind}") as handle:
            maps[kind] = "\n".join(" ".join(line.split()) for line in handle if line.strip())
    return maps


# A container started before its job (build/warm.py) waits this long for it at most (one whose
# mirror-builder was killed is removed by the next); the host stops using one well before.
WAIT_FOR_JOB = 900


def main():
    os.umask(0o022)  # files the build writes get the same modes whatever the caller's umask
    started = STARTED
    if sys.argv[1] == "--wait":  # started before its job: it starts once the host writes it
        from mb_filewait import wait_for_file  # /mb/lib

        if not wait_for_file(sys.argv[2], time.monotonic() + WAIT_FOR_JOB):
            return 0
        started = time.monotonic()
    job = json.load(open(sys.argv[-1]))
    if job.get("mode") == "repair":
        return repair(job)
    if job.get("mode") == "smoke":
        from mb_smoke import smoke_tests  # /mb/lib

        results = smoke_tests(job)
        write_json(os.path.join(job["out"], "result.json"), {"status": "done", "results": results})
        return 0
    return build(job, started)


def build(job, started=STARTED):
    """Build mode: the steps of this module's docstring; result.json says how far they got."""
    result = {"status": "failed", "stage": "setup", "timings": {}, "user_namespace": user_namespace()}
    result_path = os.path.join(job["out"], "result.json")
    try:
        build_steps(job, result)
        result["timings"]["driver"] = time.monotonic() - started
        result["timings"]["cpu"] = cpu_seconds()
        if result["status"] == "built" and job.get("smoke"):
            from mb_smoke import test_after_hand_over  # /mb/lib

            return test_after_hand_over(job, result, result_path, write_json)
        write_json(result_path, result)
        return 0
    except subprocess.CalledProcessError as exc:
        result["error"] = f"{result['stage']} failed: command exited with status {exc.returncode}"
    except Exception as exc:  # the backend's own exceptions arrive here, whatever they are
        traceback.print_exc()
        result["error"] = f"{result['stage']} failed: {type(exc).__name__}: {exc}"
    from mb_limits import limits_hit, why_retry_on_disk  # /mb/lib

    hit = limits_hit()
    retry = why_retry_on_disk()
    if retry:
        result["retry_on_disk"] = retry
        hit.append(retry)
    if hit:
        result["limits_hit"] = hit
        result["error"] += " (" + "; ".join(hit) + ")"
    say(result["error"])
    write_json(result_path, result)
    return 1


def _mib(path):
    stats = os.statvfs(path)
    return stats.f_blocks * stats.f_frsize >> 20


def cpu_seconds():
    """CPU time of the driver and every process of the build it waited for."""
    import resource

    return sum(getattr(resource.getrusage(who), field) for who in
               (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for field in ("ru_utime", "ru_stime"))


def build_steps(job, result):
    """Run the build, filling in result; result["stage"] names the step under way."""
    timings = result["timings"]
    started = time.monotonic()
    work = job.get("work") or WORK
    if os.path.ismount(work):
        say(f"building in memory: {work} is a tmpfs of {_mib(work)} MiB")
    src = copy_source(job["source"], work)
    env_dir = os.path.join(work, "env")
    python = os.path.join(env_dir, "bin", "python")
    base_env = build_environ(job, env_dir, work)
    os.makedirs(base_env["HOME"], exist_ok=True)
    timings["copy_source"] = time.monotonic() - started

    result["stage"] = "environment"
    step = time.monotonic()
    result["freeze"] = install_wheels(job, env_dir, python, base_env)
    timings["environment"] = time.monotonic() - step
    result["environment"] = base_env
    from mb_hookserver import HookRunner  # /mb/lib
    from mb_venvs import site_packages  # /mb/lib

    runner = HookRunner(base_env)
    try:
        run_hooks(job, result, backend_hooks(job, src, python, base_env, runner),
                  site_packages(env_dir))
    finally:
        runner.close()


def run_hooks(job, result, hooks, site_packages):
    """get_requires_for_build_wheel, and build_wheel if what it asks for is installed."""
    timings = result["timings"]
    config_settings = job.get("config_settings") or None

    result["stage"] = "get_requires_for_build_wheel"
    step = time.monotonic()
    say(f"get_requires_for_build_wheel ({job['backend']})")
    requires = list(hooks.get_requires_for_build_wheel(config_settings))
    timings["get_requires"] = time.monotonic() - step
    result["requires"] = requires
    say(f"backend requires: {requires or 'nothing more'}")
    missing = []
    if requires:
        from packaging.requirements import Requirement

        dists = installed(site_packages)
        missing = [r for r in requires if not satisfied(Requirement(r), dists)]
    if missing:
        result.update(status="needs", missing=missing)
        say(f"not yet in the build environment: {missing}")
        return

    result["stage"] = "build_wheel"
    step = time.monotonic()
    dist_dir = os.path.join(job["out"], "dist")
    os.makedirs(dist_dir, exist_ok=True)
    say(f"build_wheel ({job['backend']})")
    wheel = hooks.build_wheel(dist_dir, config_settings)
    timings["build_wheel"] = time.monotonic() - step
    result.update(status="built", wheel=wheel)
    say(f"built {wheel}")
    read_linked(dist_dir, wheel, result)


def read_linked(dist_dir, wheel, result):
    """For the SBOM: the Debian packages the wheel links to (sandbox/linked.py). Only for a
    plain wheel file in dist_dir; whatever else the backend named is the host's to refuse, with
    its own message, and a wheel that cannot be read here is said in the log, not a failure."""
    path = os.path.join(dist_dir, wheel)
    if os.path.basename(wheel) != wheel or os.path.islink(path) or not os.path.isfile(path):
        return
    from mb_linked import linked_packages  # /mb/lib

    try:
        result["linked"] = linked_packages(path)
    except Exception as exc:  # the backend's wheel may be anything; the host checks it
        say(f"could not read the libraries {wheel} links to: {type(exc).__name__}: {exc}")


def copy_source(source, work=WORK):
    """A fresh writable copy of the read-only source tree; returns its path."""
    if os.path.isdir(work) and not os.path.islink(work):
        for name in os.listdir(work):  # a file system mounted there (the environment's) stays
            path = os.path.join(work, name)
            if os.path.ismount(path):
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
    else:
        os.makedirs(work)
    src = os.path.join(work, "src")
    # GNU cp: shutil.copytree's per-file Python took 70 ms (up to 180 ms) of setuptools' ~1000
    # files on the build's critical path. Links stay links, modes and times are kept.
    subprocess.run(["cp", "-R", "--no-dereference", "--preserve=mode,timestamps", source, src],
                   check=True, stdout=subprocess.DEVNULL)
    return src


def build_environ(job, env_dir, work=WORK):
    """The environment variables of every process of the build."""
    base_env = {
        "PATH": f"{env_dir}/bin:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp/mb-home",
        "LANG": "C.UTF-8",
        "TMPDIR": "/tmp",
        "VIRTUAL_ENV": env_dir,
        "SOURCE_DATE_EPOCH": str(job["source_date_epoch"]),
        "MAKEFLAGS": f"-j{job['jobs']}",
        "CMAKE_BUILD_PARALLEL_LEVEL": str(job["jobs"]),
        # There is no network; say so to cargo, so it fails fast and clearly if a crate
        # was not vendored while the source was prepared.
        "CARGO_NET_OFFLINE": "true",
        "CARGO_HOME": "/tmp/mb-home/.cargo",
        # Reproducible by default: nothing the build could pick up from when, where or how
        # it runs varies (the tree is always built at WORK/src, the clock is SOURCE_DATE_EPOCH,
        # the umask is set in main()).
        "PYTHONHASHSEED": "0",
        "TZ": "UTC",
        "LC_ALL": "C.UTF-8",
    }
    base_env.update(job.get("environment", {}))
    if work != WORK:
        remap = remap_compilers(work)
        base_env["PATH"] = f"{env_dir}/bin:{remap}:/usr/local/bin:/usr/bin:/bin"
        base_env["RUSTC_WRAPPER"] = os.path.join(remap, "rustc-remap")
    if job.get("reverse_environment"):
        base_env = dict(reversed(list(base_env.items())))
    return base_env


# The C, C++ and Fortran compilers of the image, by the names builds call them.
COMPILER = re.compile(r"^([\w.]+-)*(gcc|g\+\+|cc|c\+\+|clang|clang\+\+|gfortran)(-[\d.]+)?$")


def remap_compilers(work):
    """A verifying build runs in another folder than WORK: wrappers that map that folder back
    to WORK in what the compilers write (debug info, __FILE__, Rust's panic locations), so
    that only paths leaking in some other way make its wheel differ. Returns their folder."""
    folder = os.path.join(work, "remap-bin")
    os.makedirs(folder, exist_ok=True)
    mapping = f"{work}={WORK}"
    for name in sorted(os.listdir("/usr/bin")):
        if COMPILER.match(name):
            _script(os.path.join(folder, name),
                    f'exec /usr/bin/{name} -ffile-prefix-map={mapping} "$@"\n')
    _script(os.path.join(folder, "rustc-remap"),
            f'rustc="$1"; shift\nexec "$rustc" --remap-path-prefix={mapping} "$@"\n')
    return folder


def _script(path, body):
    with open(path, "w") as handle:
        handle.write("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)


def install_wheels(job, env_dir, python, base_env):
    """Create the venv with exactly the job's wheels in it; returns its freeze (what
    `uv pip freeze` prints)."""
    # Hardlinks from uv's cache on the container's throw-away /tmp (same file system) instead
    # of copies: the files outlive the cache, and installing setuptools takes 0.34 s instead of
    # 0.59 s. A cache rather than none: uv asks the interpreter about itself once, not in every
    # command (the freeze took 65 ms, now 8); the image's seed spares even that.
    from mb_uvenv import uv_environment  # /mb/lib

    # An environment made in memory (the host mounted a tmpfs at env_dir, or at the work folder
    # it is in) has uv's cache in it too, for the hardlinks, until it is made.
    in_memory = os.path.ismount(env_dir) or os.path.ismount(os.path.dirname(env_dir))
    cache = os.path.join(env_dir, ".mb-uv-cache") if in_memory else UV_CACHE
    uv_env = uv_environment(base_env, cache)
    from mb_venvs import freeze, make_venv  # /mb/lib

    say(f"making an empty venv at {env_dir}{' (in memory)' if in_memory else ''}")
    make_venv(env_dir)
    if job["wheels"]:
        # Pins from a find-links directory holding exactly these files (not the file paths
        # themselves), so the environment and its freeze look like an ordinary install.
        run(["uv", "pip", "install", "--python", python, "--no-index", "--find-links",
             job["wheels_dir"], *map(pin_of, job["wheels"])], uv_env)
    if in_memory:
        shutil.rmtree(cache)
    return freeze(env_dir)


def backend_hooks(job, src, python, base_env, runner):
    """The PEP 517 hooks of the project's backend, run in the venv with base_env by runner
    (a HookRunner)."""
    project = os.path.join(src, job.get("project_dir") or "")
    return BuildBackendHookCaller(project, job["backend"], backend_path=job["backend_path"] or None,
                                  runner=runner, python_executable=python)


if __name__ == "__main__":
    sys.exit(main())

"""Runs INSIDE a container (copied in as /mb/lib/mb_venvs.py; stdlib only, never imported on the
host): an empty venv for the image's python, and the freeze of a venv, both without a process.

`uv venv` and `uv pip freeze` cost a process each (10-18 and 8-10 ms), twice a build (its
environment and its smoke test); what they do for a venv of the driver's own python is a few
files (PEP 405) and a listing of its .dist-info folders.
"""

import json
import os
import re
import sys

DIST_INFO = ".dist-info"
PYTHON = "/usr/bin/python3"  # the image's python: the driver's own, and every venv's base

# A version as `str(packaging.version.Version(...))` leaves it (every wheel's own dist-info name
# in practice); any other is normalized by packaging, which takes 10 ms to import.
_CANONICAL = re.compile(r"(0|[1-9]\d*)(\.(0|[1-9]\d*))*((a|b|rc)(0|[1-9]\d*))?"
                        r"(\.post(0|[1-9]\d*))?(\.dev(0|[1-9]\d*))?")


def site_packages(env_dir):
    return os.path.join(env_dir, "lib", "python%d.%d" % sys.version_info[:2], "site-packages")


def make_venv(env_dir):
    """An empty venv at env_dir (made, or an empty folder such as a tmpfs's mount point) for
    the image's python, laid out as `python -m venv --without-pip` lays one out, without the
    activation scripts. The driver runs on that python, so its version is this one's."""
    if os.path.realpath(sys.executable) != os.path.realpath(PYTHON):
        raise RuntimeError(f"the driver runs on {sys.executable}, not the image's {PYTHON}")
    major, minor, micro = sys.version_info[:3]
    os.makedirs(site_packages(env_dir))
    os.symlink("lib", os.path.join(env_dir, "lib64"))
    bin_dir = os.path.join(env_dir, "bin")
    os.mkdir(bin_dir)
    os.symlink(PYTHON, os.path.join(bin_dir, "python"))
    for alias in ("python3", f"python{major}.{minor}"):
        os.symlink("python", os.path.join(bin_dir, alias))
    with open(os.path.join(env_dir, "pyvenv.cfg"), "x") as cfg:
        cfg.write(f"home = {os.path.dirname(PYTHON)}\ninclude-system-site-packages = false\n"
                  f"version = {major}.{minor}.{micro}\nexecutable = {os.path.realpath(PYTHON)}\n")


def freeze(env_dir):
    """What `uv pip freeze` prints for the venv at env_dir (uv installs it from wheels): a line
    a .dist-info folder, by normalized name, `name==version` from the folder's name, or what
    its direct_url.json (PEP 610) says it came from."""
    site = site_packages(env_dir)
    lines = []
    for entry in os.listdir(site):
        name, dash, version = entry[:-len(DIST_INFO)].partition("-")
        if not (entry.endswith(DIST_INFO) and dash):
            continue
        name = re.sub(r"[-_.]+", "-", name).lower()
        lines.append((name, version, _origin(os.path.join(site, entry), name, version)))
    return "".join(line + "\n" for _, _, line in sorted(lines))


def _origin(dist_info, name, version):
    try:
        with open(os.path.join(dist_info, "direct_url.json")) as handle:
            direct = json.load(handle)
    except FileNotFoundError:
        return f"{name}=={_normalized(version)}"
    url = direct["url"]
    if direct.get("dir_info", {}).get("editable"):
        return f"-e {url}"
    vcs = direct.get("vcs_info")
    if vcs:
        return f"{name} @ {vcs['vcs']}+{url}@{vcs['commit_id']}"
    return f"{name} @ {url}"


def _normalized(version):
    if _CANONICAL.fullmatch(version):
        return version
    from packaging.version import Version  # /mb/lib

    return str(Version(version))

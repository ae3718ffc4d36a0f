"""The podman service's own process: the OCI runtime it runs containers with, whether it
listens yet, and its end, which follows mirror-builder's however that comes."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

# The service's socket lives in a short temp folder (a unix socket's path is ~100 bytes at
# most), named for the mirror-builder that made it.
SOCKET_DIR_PREFIX = "mb-podman-"


def oci_runtime(cgroup_root: Path = Path("/sys/fs/cgroup")) -> str:
    """crun where it works, else runc. crun starts a container about 40 ms sooner, but refuses
    a hybrid cgroup layout whose cgroup2 hierarchy holds a controller ("cgroups in hybrid mode
    not supported"); ./setup.sh moves such controllers to v1 hierarchies of their own where it
    can (on this kind of machine, hugetlb), and after a reboot undoes that, runc it is again."""
    if shutil.which("crun") is None:
        return "runc"
    try:
        if (cgroup_root / "cgroup.controllers").exists():
            return "crun"  # cgroup2 only: crun's home ground
        unified = cgroup_root / "unified" / "cgroup.controllers"
        if unified.exists() and unified.read_text().split():
            return "runc"
    except OSError:
        return "runc"
    return "crun"


def accepts(socket_path: Path) -> bool:
    """Whether a server accepts connections on the unix socket."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(socket_path))
        except OSError:
            return False
    return True


def reap(process: subprocess.Popen, grace_seconds: float = 10) -> None:
    """Wait for a service that was asked to end; kill one that has not after grace_seconds."""
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def die_with_parent() -> None:
    """In the podman service's process: get SIGTERM when mirror-builder dies, however it dies,
    so no service is left behind (Linux's PR_SET_PDEATHSIG)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


def socket_dir() -> str:
    """A new folder for a service's socket; first, those of mirror-builders that are gone (a
    run that was killed could not remove its own)."""
    temp = Path(tempfile.gettempdir())
    for left in temp.glob(f"{SOCKET_DIR_PREFIX}*-*"):
        owner = left.name[len(SOCKET_DIR_PREFIX):].split("-", 1)[0]
        if owner.isdigit() and not alive(int(owner)):
            shutil.rmtree(left, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{SOCKET_DIR_PREFIX}{os.getpid()}-", dir=temp)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

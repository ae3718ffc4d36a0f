"""What the host and the in-container driver exchange: the job's folders, the driver's result
(read without trusting it), and the driver itself, assembled for mounting."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import packaging
import pyproject_hooks

from mirror_builder.files import remove_tree
from mirror_builder.sandbox import (DRIVER, FILEWAIT, HOOKSERVER, LIMITS, LINKED, SMOKERUN,
                                    TOPLEVEL, UVENV, VENVS)

BUILDER_UID = 1000  # the image's unprivileged "builder" user (in the run's user namespace)
# How every container run starts the driver (mounted at /mb) on its job (mounted at /job).
DRIVER_COMMAND = ("python3", "/mb/mb_driver.py", "/job/job.json")
# A container started before its job (build/warm.py): the driver waits for job.json to appear.
WAITING_DRIVER_COMMAND = ("python3", "/mb/mb_driver.py", "--wait", "/job/job.json")


@dataclass(frozen=True)
class JobFolders:
    """A driver run's three folders: /out for its result, /job with job.json, and a fresh scratch
    folder for its /tmp: on disk (a large build needs gigabytes), and with the read-only root,
    the only other place it can write."""

    out: Path
    job: Path
    scratch: Path

    @classmethod
    def create(cls, work_dir: Path, job: dict | None, prefix: str = "") -> "JobFolders":
        """The folders, with job.json in job (None: written later, by write_job)."""
        work_dir.mkdir(parents=True, exist_ok=True)
        folders = cls(*(Path(tempfile.mkdtemp(prefix=f"{prefix}{kind}-", dir=work_dir))
                        for kind in ("out", "job", "scratch")))
        # out and scratch are mounted writable, so podman gives them to the container's user
        # (its ids in the run's user namespace; see Mount). job is read-only: mkdtemp makes
        # 0700 directories, and the driver runs as an unprivileged user.
        os.chmod(folders.job, 0o755)
        if job is not None:
            folders.write_job(job)
        return folders

    def write_job(self, job: dict) -> None:
        """job.json, written whole and then named (a waiting driver starts as it appears)."""
        partial = self.job / ".job.json"
        partial.write_text(json.dumps(job, indent=2))
        os.chmod(partial, 0o644)
        partial.rename(self.job / "job.json")

    def remove(self) -> None:
        """Removed by rm in a process of its own (files.remove_tree): a build environment is
        thousands of files, and shutil.rmtree took this process's interpreter lock for each (on
        flask's tree, 1.4 s of it at the start of the run, while resolving and starting builds
        waited)."""
        remove_tree(self.out, self.job, self.scratch)


_RESULT_LIMIT = 16 << 20


def read_result(out_dir: Path, name: str = "result.json") -> tuple[dict, str | None]:
    """The driver's result.json (or another of its reports), read without trusting it: the build
    ran in the same container as the driver and could have replaced the file with a link to
    somewhere on the host."""
    path = out_dir / name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return {}, None
    except OSError as exc:
        return {}, f"the build left an unreadable result ({exc.strerror})"
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return {}, "the build left a result that is not a plain file"
        data = handle.read(_RESULT_LIMIT + 1)
    try:
        result = json.loads(data) if len(data) <= _RESULT_LIMIT else None
    except ValueError:
        result = None
    if not isinstance(result, dict):
        return {}, "the build left a result that is not a JSON object"
    return result, None


def assemble_driver(path: Path) -> Path:
    """The driver script and the pure-Python libraries it needs, to mount read-only at /mb."""
    if path.exists():
        shutil.rmtree(path)
    lib = path / "lib"
    lib.mkdir(parents=True)
    shutil.copy2(DRIVER, path / "mb_driver.py")
    shutil.copy2(LINKED, lib / "mb_linked.py")
    shutil.copy2(HOOKSERVER, lib / "mb_hookserver.py")
    shutil.copy2(LIMITS, lib / "mb_limits.py")
    shutil.copy2(TOPLEVEL, lib / "mb_toplevel.py")
    shutil.copy2(SMOKERUN, lib / "mb_smoke.py")
    shutil.copy2(UVENV, lib / "mb_uvenv.py")
    shutil.copy2(VENVS, lib / "mb_venvs.py")
    shutil.copy2(FILEWAIT, lib / "mb_filewait.py")
    for module in (packaging, pyproject_hooks):
        source = Path(module.__file__).parent
        shutil.copytree(source, lib / source.name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chmod(os.path.join(root, name), 0o755 if name in dirs else 0o644)
    os.chmod(path, 0o755)
    # Bytecode for the image's python, when it is this one's version (a bookworm image and a
    # host of Debian 12): each container would otherwise compile packaging and the rest again
    # (20-40 ms a start), since /mb is read-only there. In a process of its own, while the run
    # starts; a container that starts first compiles for itself as before (a .pyc is written
    # whole, then named).
    threading.Thread(target=subprocess.run, name="compile the driver's libraries", daemon=True,
                     args=([sys.executable, "-m", "compileall", "-q", str(lib)],),
                     kwargs={"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}).start()
    return path

"""The newest fromager, run in a Debian trixie container, as it would run on a trixie host.

    .venv/bin/python benchmarks/fromager_container.py [--image IMAGE] [TREE ...]

Why a container: fromager >= 0.78 needs Python >= 3.12, and this machine (bookworm) has 3.11.
The local image localhost/mirror-builder-trixie-x86_64:<tag> (Python 3.13, build-essential,
rustc/cargo) stands in for a trixie host; nothing is installed into it at run time.

fromager is pip-installed once, inside the container, into benchmarks/.fromager-trixie/venv,
which is always mounted at /opt/fromager (so the venv's paths are container paths). Each run
gets a fresh container with the default podman network, the host's CA bundle (this machine
reaches PyPI through a TLS-inspecting egress proxy), and the caller's empty `work` folder at
/build as its cwd; caches are cold (new container, uv and pip caches inside `work`). No
PIP_*/UV_* variable of the host goes in. fromager itself only knows https://pypi.org/simple,
which is also the index the host uses (no mirror is configured here).

Used by bootstrap_vs_fromager.py; as a script it is a smoke check printing the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FROMAGER_HOME = HERE / ".fromager-trixie"  # host side; holds venv/
MOUNT = "/opt/fromager"  # where FROMAGER_HOME always is inside the container
WORK_MOUNT = "/build"
IMAGE_REPOSITORY = "localhost/mirror-builder-trixie-x86_64"
CONTAINERS_CONF = HERE.parent / "mirror_builder" / "data" / "containers.conf"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
TREES = ["stevedore==5.10.0", "flask==3.1.1", "markupsafe==3.0.2"]
PATH = f"{MOUNT}/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class FromagerRun:
    inner_wall: float  # seconds around fromager itself, measured inside the container
    podman_wall: float  # seconds of the whole `podman run`, measured on the host
    cpu: float  # the whole machine's CPU seconds over the podman run
    code: int


def machine_cpu_seconds() -> float:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system = (int(x) for x in fields[:3])
    return (user + nice + system) / os.sysconf("SC_CLK_TCK")


def podman(*args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env["CONTAINERS_CONF"] = str(CONTAINERS_CONF)
    return subprocess.run(["podman", *args], env=env, text=True,
                          stdout=subprocess.PIPE if capture else None)


def newest_trixie_image(built: bool = False) -> str:
    """The most recently created local localhost/mirror-builder-trixie-x86_64:<tag>."""
    listing = podman("images", "--format", "json", capture=True)
    if listing.returncode != 0:
        raise RuntimeError("podman images failed")
    found = [(image["Created"], name) for image in json.loads(listing.stdout)
             for name in image.get("Names") or [] if name.rsplit(":", 1)[0] == IMAGE_REPOSITORY]
    if not found:
        if built:
            raise RuntimeError(f"no local image {IMAGE_REPOSITORY}:<tag> after building it")
        # A fresh machine has only the default target's image: make the trixie one as a user
        # would (`mirror-builder images`), then look again.
        subprocess.run([sys.executable, "-m", "mirror_builder", "--settings",
                        str(REPO / "settings.yaml"), "images", "--target", "trixie-x86_64"],
                       check=True)
        return newest_trixie_image(built=True)
    return max(found)[1]


def run_args(image: str, script: str, *args: str, work: Path | None = None,
             venv_writable: bool = False) -> list[str]:
    """`podman run` arguments: the venv mount, the CA bundle, `work` at /build if given."""
    options = ["run", "--rm", "-v", f"{FROMAGER_HOME}:{MOUNT}:{'rw' if venv_writable else 'ro'}",
               "-e", f"PATH={PATH}"]
    if Path(CA_BUNDLE).is_file():
        options += ["-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro", "-e", f"SSL_CERT_FILE={CA_BUNDLE}",
                    "-e", f"REQUESTS_CA_BUNDLE={CA_BUNDLE}"]
    if work is not None:
        options += ["-v", f"{work}:{WORK_MOUNT}:rw", "-w", WORK_MOUNT,
                    "-e", f"UV_CACHE_DIR={WORK_MOUNT}/uv-cache",
                    "-e", f"PIP_CACHE_DIR={WORK_MOUNT}/pip-cache"]
    return [*options, image, "sh", "-c", script, "sh", *args]


def ensure_fromager(image: str) -> None:
    """Install the newest fromager from PyPI into the persistent venv, once."""
    if (FROMAGER_HOME / "venv" / "bin" / "fromager").exists():
        return
    FROMAGER_HOME.mkdir(parents=True, exist_ok=True)
    script = (f"python3 -m venv {MOUNT}/venv && {MOUNT}/venv/bin/pip install --quiet "
              "--no-cache-dir --disable-pip-version-check fromager")
    if podman(*run_args(image, script, venv_writable=True)).returncode != 0:
        shutil.rmtree(FROMAGER_HOME / "venv", ignore_errors=True)
        raise RuntimeError("installing fromager in the trixie container failed")


def fromager_version() -> str:
    """The installed fromager's version (read from the venv's metadata, no container)."""
    paths = [str(p) for p in (FROMAGER_HOME / "venv" / "lib").glob("python3*/site-packages")]
    for distribution in metadata.distributions(path=paths):
        if distribution.metadata["Name"] == "fromager":
            return distribution.version
    raise RuntimeError("fromager is not installed; call ensure_fromager(image)")


def fromager_wheels(work: Path) -> int:
    """How many wheels fromager built in `work` (fromager's -w wheels: wheels/downloads)."""
    return len(list((work / "wheels" / "downloads").glob("*.whl")))


def container_start_seconds(image: str) -> float:
    """Wall seconds of `podman run` of `true` with a run's mounts: what a host run would not pay."""
    with tempfile.TemporaryDirectory(prefix="fromager-start-") as tmp:
        wall = time.perf_counter()
        podman(*run_args(image, "true", work=Path(tmp)))
        return time.perf_counter() - wall


def run_fromager_detailed(tree: str, work: Path, image: str) -> FromagerRun:
    """Bootstrap `tree` with fromager in `work` (fresh, empty); the log is work/fromager.log."""
    ensure_fromager(image)
    script = ('t0=$(date +%s.%N); fromager -o sdists -w wheels -t work bootstrap "$1" '
              '>fromager.log 2>&1; rc=$?; echo "$t0 $(date +%s.%N)"; exit $rc')
    cpu, wall = machine_cpu_seconds(), time.perf_counter()
    done = podman(*run_args(image, script, tree, work=work.resolve()), capture=True)
    podman_wall, cpu = time.perf_counter() - wall, machine_cpu_seconds() - cpu
    try:
        start, end = (float(x) for x in done.stdout.split()[-2:])
        inner = end - start
    except ValueError:  # the container did not get as far as fromager
        inner = podman_wall
    return FromagerRun(inner, podman_wall, cpu, done.returncode)


def run_fromager_in_container(tree: str, work: Path, image: str) -> tuple[float, float, int]:
    """(fromager's own wall seconds, the machine's CPU seconds, exit code), as run_fromager."""
    run = run_fromager_detailed(tree, work, image)
    return run.inner_wall, run.cpu, run.code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", help="trixie image (default: the newest local one)")
    parser.add_argument("trees", nargs="*", default=TREES)
    args = parser.parse_args()
    image = args.image or newest_trixie_image()
    ensure_fromager(image)
    print(f"image {image}; fromager {fromager_version()}; "
          f"container start {container_start_seconds(image):.2f} s", flush=True)
    print(f"{'tree':22} {'inner':>8} {'podman':>8} {'CPU':>8} {'wheels':>6} {'exit':>4}")
    for tree in args.trees:
        work = Path(tempfile.mkdtemp(prefix="fromager-"))
        run = run_fromager_detailed(tree, work, image)
        print(f"{tree:22} {run.inner_wall:>7.1f}s {run.podman_wall:>7.1f}s {run.cpu:>7.1f}s "
              f"{fromager_wheels(work):>6} {run.code:>4}", flush=True)
        if run.code == 0:
            shutil.rmtree(work)
        else:
            print(f"   failed; kept {work} (see fromager.log there)")


if __name__ == "__main__":
    main()

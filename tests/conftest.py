import hashlib
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def clean_environment(**extra: str) -> dict[str, str]:
    """The environment without pip/uv settings that could pull files from anywhere but our index."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))} | extra


def write_settings(folder: Path, **keys: str) -> Path:
    """A settings file like the repository's, with some top-level keys changed."""
    folder.mkdir(parents=True, exist_ok=True)
    text = (REPO / "settings.yaml").read_text().replace(
        "containerfile: containerfiles/", f"containerfile: {REPO}/containerfiles/")
    lines = [line for line in text.splitlines() if line.split(":")[0] not in keys]
    lines += [f"{key}: {value}" for key, value in keys.items()]
    path = folder / "settings.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_mirror_builder(*args: str, cwd: Path, check: bool = True,
                       settings: Path | None = None) -> subprocess.CompletedProcess:
    """Run the CLI as a user would, from a working directory of the test's own."""
    proc = subprocess.run([sys.executable, "-m", "mirror_builder", "--settings",
                           str(settings or REPO / "settings.yaml"), *args],
                          cwd=cwd, capture_output=True, text=True, env=clean_environment())
    if check and proc.returncode != 0:
        raise AssertionError(f"mirror-builder {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def make_sdist(source_dir: Path, dest_dir: Path, name: str, version: str) -> Path:
    """Pack a fixture's source folder as NAME-VERSION.tar.gz, the way an sdist is laid out."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    archive = dest_dir / f"{name}-{version}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source_dir, arcname=f"{name}-{version}")
    return archive


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under root with its sha256, to show that nothing changed."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def fresh_venv(folder: Path, current_pip: bool = False) -> Path:
    """A new virtual environment; with current_pip, its pip is upgraded (from PyPI) first."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    if current_pip:
        subprocess.run([str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        "--upgrade", "pip"], check=True, env=clean_environment())
    return folder


STEVEDORE = "5.10.0"


@pytest.fixture(scope="session")
def stevedore_output(tmp_path_factory) -> Path:
    """stevedore bootstrapped from PyPI with real podman, once for the whole session."""
    work = tmp_path_factory.mktemp("stevedore")
    run_mirror_builder("bootstrap", f"stevedore=={STEVEDORE}", "--output", "out", cwd=work)
    return work / "out"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(tmp_path):
    """Start `mirror-builder serve` on a free port for an output directory; yields its base URL
    and the path of its request log."""
    import time
    import urllib.request

    processes = []

    def start(output: Path):
        port = free_port()
        access_log = tmp_path / f"access-{port}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "mirror_builder", "--settings", str(REPO / "settings.yaml"),
             "serve", "-o", str(output), "--port", str(port), "--access-log", str(access_log)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=clean_environment())
        processes.append(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"serve did not start: {proc.stdout.read()}")
                time.sleep(0.1)
        return base, access_log

    yield start
    for proc in processes:
        proc.terminate()
        proc.wait(timeout=10)

import hashlib
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def clean_environment() -> dict[str, str]:
    """The environment without pip/uv settings that could pull files from anywhere but our index."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}


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


def fresh_venv(folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    return folder

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


def run_mirror_builder(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run the CLI as a user would, from a working directory of the test's own."""
    proc = subprocess.run([sys.executable, "-m", "mirror_builder", "--settings",
                           str(REPO / "settings.yaml"), *args],
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

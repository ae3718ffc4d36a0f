"""End-to-end: every installer the README documents installs from a served index, with the very
configuration the README shows (read from it here): pip and uv by index and by the flat
find-links page, Poetry and PDM by lock and install. Poetry and PDM read metadata only while
they lock: the access log has no wheel request until install."""

import re
import subprocess
from pathlib import Path

import pytest
import uv

from conftest import REPO, STEVEDORE, clean_environment, fresh_venv

pytestmark = pytest.mark.e2e

README_URL = "http://127.0.0.1:8080"
# Known-good versions, so that a new release of a tool does not fail our tests; the README says
# which it was tested with.
TOOLS = {"poetry": ["poetry==2.5.1"], "pdm": ["pdm==2.29.4", "hishel[httpx2]>=1.4,<2"]}


def readme_block(installer: str) -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(rf"<!-- installer: {installer} -->\n```[a-z]*\n(.*?)```", text, re.DOTALL)
    assert match, f"README has no block for {installer}"
    return match.group(1)


@pytest.fixture(scope="module")
def tool(tmp_path_factory):
    """Install a tool (poetry or pdm) into a venv of its own, once per module."""
    made = {}

    def install(name: str) -> Path:
        if name not in made:
            venv = fresh_venv(tmp_path_factory.mktemp(name) / "venv")
            subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", *TOOLS[name]],
                           check=True, env=clean_environment(), capture_output=True)
            made[name] = venv / "bin" / name
        return made[name]

    return install


@pytest.fixture
def index(stevedore_output, served):
    base, access_log = served(stevedore_output)
    return base, access_log, stevedore_output


def isolated(home: Path) -> dict[str, str]:
    """No user configuration or cache: each tool starts fresh, as on a new machine."""
    home.mkdir(parents=True, exist_ok=True)
    return clean_environment(HOME=str(home), XDG_CACHE_HOME=str(home / "cache"),
                             XDG_CONFIG_HOME=str(home / "config"),
                             POETRY_VIRTUALENVS_IN_PROJECT="true")


def wheel_requests(access_log: Path) -> list[str]:
    return re.findall(r'"GET (\S+\.whl) HTTP', access_log.read_text())


def our_hashes(output: Path) -> dict[str, str]:
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in output.glob("files/*/*.whl")}


def run(command: list, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, f"{command}: {proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.parametrize("installer, lock_file", [("poetry", "poetry.lock"), ("pdm", "pdm.lock")])
def test_it_locks_from_metadata_alone_then_installs_our_wheels(installer, lock_file, tool,
                                                               index, tmp_path):
    base, access_log, output = index
    executable = tool(installer)
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(readme_block(installer).replace(README_URL, base))
    env = isolated(tmp_path / "home")

    run([executable, "lock"], project, env)
    lock = (project / lock_file).read_text()
    assert wheel_requests(access_log) == []  # resolution read pages and .metadata only
    assert "/files/stevedore/" in access_log.read_text() and ".whl.metadata" in \
        access_log.read_text()
    hashes = our_hashes(output)
    stevedore = next(name for name in hashes if name.startswith(f"stevedore-{STEVEDORE}-"))
    assert hashes[stevedore] in lock  # locked to our file, by its sha256
    assert "files.pythonhosted.org" not in lock and "pypi.org" not in lock

    run([executable, "install"], project, env)
    fetched = {Path(p).name for p in wheel_requests(access_log)}
    assert stevedore in fetched and fetched <= hashes.keys()
    run([project / ".venv" / "bin" / "python", "-c", "import stevedore"], project, env)


def test_pip_and_uv_install_by_index_and_by_the_find_links_page(index, tmp_path):
    base, access_log, output = index
    commands = [line.replace(README_URL, base).split()
                for line in readme_block("pip").strip().splitlines()]
    assert [c[:2] for c in commands] == [["pip", "install"], ["uv", "pip"], ["pip", "install"]]
    for number, command in enumerate(commands):
        venv = fresh_venv(tmp_path / f"venv{number}", current_pip=True)
        env = isolated(tmp_path / f"home{number}")
        if command[0] == "uv":
            command = [uv.find_uv_bin(), *command[1:3], "--no-cache", "--python",
                       str(venv / "bin" / "python"), *command[3:]]
        else:
            command = [str(venv / "bin" / "pip"), *command[1:], "--no-cache-dir"]
        run(command, tmp_path, env)
        run([venv / "bin" / "python", "-c", "import stevedore"], tmp_path, env)
    assert '"GET /find-links.html HTTP' in access_log.read_text()

"""A writer killed at any moment (SIGKILL: no cleanup runs) never leaves a page that lists a
missing or torn file, and the next writer finishes what it left half done."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mirror_builder.index.wheelindex import WheelIndex, verify
from mirror_builder.index.outputlock import hold_output
from mirror_builder.resolve.pages import parse_project_page
from test_index import make_wheel

REPO = Path(__file__).resolve().parents[2]
ADD_ALL = """
import sys
from pathlib import Path
from mirror_builder.index.wheelindex import WheelIndex
index = WheelIndex(Path(sys.argv[1]))
print("ready", flush=True)
for wheel in sorted(Path(sys.argv[2]).iterdir()):
    index.add(wheel)
"""


def client_view_problems(root: Path) -> list[str]:
    """What a client reading the index right now could trip over: a page that does not parse,
    or that lists a file that is missing or does not match its hash."""
    import hashlib

    problems = []
    simple = root / "simple"
    for page in sorted(simple.glob("*/index.*")):
        content_type = "application/vnd.pypi.simple.v1+json" if page.suffix == ".json" else "text/html"
        try:
            files = parse_project_page(page.read_text(), content_type, page.parent.as_uri() + "/")
        except Exception as exc:  # noqa: BLE001 - any failure to parse is the finding
            problems.append(f"{page}: {exc}")
            continue
        for file in files:
            path = Path(file.url.removeprefix("file://"))
            if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != file.sha256:
                problems.append(f"{page} lists {file.filename}, which is missing or torn")
    return problems


@pytest.fixture
def wheels(tmp_path) -> Path:
    folder = tmp_path / "built"
    for number in range(60):
        make_wheel(folder, f"pkg{number % 12}-1.{number}-py3-none-any.whl",
                   payload="X = 1\n" * (number * 400))
    return folder


def add_and_kill_after(root: Path, wheels: Path, delay: float) -> None:
    proc = subprocess.Popen([sys.executable, "-c", ADD_ALL, str(root), str(wheels)],
                            stdout=subprocess.PIPE, text=True, cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.03, 0.06, 0.1, 0.15, 0.2])
def test_a_writer_killed_while_adding_leaves_nothing_a_client_can_trip_over(tmp_path, wheels, delay):
    root = tmp_path / "out"
    add_and_kill_after(root, wheels, delay)

    assert client_view_problems(root) == []

    # The next writer finishes the pages, sweeps the temporary files and can add the rest,
    # including a wheel that was renamed into place but never listed.
    with hold_output(root, "test"):
        index = WheelIndex(root)
        with index.locked():
            pass
        if index.projects():  # (a kill before the first page leaves no index to check yet)
            assert verify(index) == []
        for wheel in sorted(wheels.iterdir()):
            name = wheel.name.split("-")[0]
            if not index.is_listed(name, wheel.name):
                index.add(wheel)
    assert verify(WheelIndex(root)) == []
    assert not [p for p in root.rglob(".*") if p.suffix in (".part", ".tmp")]
    assert sum(len(WheelIndex(root).entries(f"pkg{n}")) for n in range(12)) == 60


def test_a_regeneration_killed_midway_is_finished_by_the_next_writer(tmp_path, wheels):
    root = tmp_path / "out"
    index = WheelIndex(root)
    for wheel in sorted(wheels.iterdir()):
        index.add(wheel)
    regenerate = ("import sys; from pathlib import Path; from mirror_builder.index.wheelindex import WheelIndex;"
                  "index = WheelIndex(Path(sys.argv[1])); print('ready', flush=True);"
                  "index.regenerate(workers=1)")
    for attempt in range(100):  # until a kill lands while the pages are being written
        for page in (root / "simple").glob("*/index.*"):
            page.unlink()  # so the regeneration has every page to write
        proc = subprocess.Popen([sys.executable, "-c", regenerate, str(root)], stdout=subprocess.PIPE,
                                text=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.002 * attempt)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if (root / ".writing.json").exists() and list((root / "simple").glob("*/index.json")):
            break
        with WheelIndex(root).locked():
            pass
    else:
        pytest.fail("no kill landed during the regeneration")

    assert client_view_problems(root) == []
    with WheelIndex(root).locked():
        pass
    assert verify(WheelIndex(root)) == []
    assert not (root / ".writing.json").exists()

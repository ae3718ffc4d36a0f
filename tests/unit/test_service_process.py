"""The podman service's end: asked for when a run ends, but not waited for (its shutdown is no
part of the run), and never left behind, nor the folder of its socket."""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mirror_builder.sandbox.podman import PodmanService
from mirror_builder.sandbox.serviceprocess import reap, socket_dir

# A stand-in for `podman system service` whose shutdown takes a while once asked.
SLOW_TO_END = ("import signal, sys, time\n"
               "signal.signal(signal.SIGTERM, lambda *_: (time.sleep({}), sys.exit(0)))\n"
               "print('ready', flush=True)\n"
               "time.sleep(60)\n")


def slow_service(seconds: float) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", SLOW_TO_END.format(seconds)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "ready\n"  # its handler is in place
    return process


def test_a_run_ends_without_waiting_for_its_service_to_finish_ending(tmp_path):
    service = PodmanService(tmp_path)
    service._process = process = slow_service(2)
    started = time.monotonic()
    service.__exit__(None, None, None)
    assert time.monotonic() - started < 1
    assert process.poll() is None  # still ending
    assert process.wait(timeout=10) == 0  # and it ends of its own accord


def test_a_service_that_does_not_end_when_asked_is_killed_after_the_grace_period():
    process = slow_service(30)
    process.terminate()
    reap(process, grace_seconds=0.3)
    assert process.returncode == -9


def test_a_socket_folder_left_by_a_mirror_builder_that_is_gone_is_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    left = tmp_path / f"mb-podman-{gone.pid}-abc123"
    left.mkdir()
    (left / "podman.sock").touch()
    mine = tmp_path / f"mb-podman-{os.getpid()}-def456"
    mine.mkdir()
    someone_elses = tmp_path / "mb-podman-notapid"
    someone_elses.mkdir()

    made = Path(socket_dir())

    assert not left.exists()
    assert mine.exists() and someone_elses.exists()
    assert made.parent == tmp_path and made.name.startswith(f"mb-podman-{os.getpid()}-")

"""End-to-end: a container waiting for the host's answer in its read-only /job folder is woken
by inotify when the host names the answer into it (sandbox/filewait.py), through the bind mount
and the container's own user namespace, in the real image; it does not poll."""

import json
import subprocess
import threading
import time

import pytest

from mirror_builder.sandbox import FILEWAIT

SUBID_START = 2147483647  # ./setup.sh's range for "containers" in /etc/subuid

pytestmark = pytest.mark.e2e

WAITER = """
import json, os, sys, time
sys.path.insert(0, "/lib")
import mb_filewait
looks = []
real = os.path.exists
os.path.exists = lambda path: looks.append(path) or real(path)
fd = mb_filewait._inotify_on("/job")
inotify = fd is not None
if inotify:
    os.close(fd)
print("MB-READY", flush=True)
found = mb_filewait.wait_for_file("/job/taken", time.monotonic() + 60)
print(json.dumps({"found": found, "inotify": inotify, "looks": len(looks)}), flush=True)
"""


@pytest.fixture(scope="module")
def image(stevedore_output) -> str:
    (record, *_) = sorted((stevedore_output / "records").rglob("*.build.json"))
    return json.loads(record.read_text())["image"]["tag"]


def test_the_hosts_answer_wakes_the_waiting_container(image, tmp_path):
    job = tmp_path / "job"
    job.mkdir(mode=0o755)
    # A user namespace of its own, as a build's (a block below the ones runs lease first).
    ids = f"0:{SUBID_START}:65536"
    command = ["podman", "run", "--rm", "--network", "none", "--uidmap", ids, "--gidmap", ids,
               "--user", "1000",
               "--read-only", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096",
               "-v", f"{job}:/job:ro", "-v", f"{FILEWAIT}:/lib/mb_filewait.py:ro", image,
               "python3", "-c", WAITER]
    waiter = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert waiter.stdout.readline().strip() == "MB-READY"

        def answer():
            time.sleep(3)  # long enough that polling would have looked many times
            (job / ".taken").write_text("")
            (job / ".taken").rename(job / "taken")

        threading.Thread(target=answer).start()
        out, err = waiter.communicate(timeout=60)
    finally:
        waiter.kill()

    reported = json.loads(out.strip().splitlines()[-1])
    assert reported["found"] and reported["inotify"], err
    # The first look, one when ".taken" was written, one when it was named, and at most three
    # looks after a quiet second each: polling every 2-20 ms would have looked 300 times.
    assert reported["looks"] <= 6

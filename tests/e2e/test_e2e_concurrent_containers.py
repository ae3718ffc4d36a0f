"""End-to-end: many short containers at once, with the real podman, as a run with waiting
containers and smoke tests makes them, each waited for on a pidfd of its first process. Podman 4.3's --userns=auto deadlocked under this load
(every podman call hung for good within a hundred runs, six at a time); each run's ids are now a
block leased by sandbox.idleases, and two containers alive at once never share one."""

import json
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import pytest

from mirror_builder.sandbox.exitwatch import wait_for_exit
from mirror_builder.sandbox.podman import PodmanService, RunSpec
from mirror_builder.sandbox.userns import SUBGID_FILE, SUBUID_FILE, subordinate_ids

pytestmark = pytest.mark.e2e

AT_ONCE, RUNS = 6, 120
NO_PROGRESS_SECONDS = 60

REPORT = ("import json, time; start = time.time(); time.sleep({sleep}); "
          "print(json.dumps({{'start': start, 'end': time.time(), "
          "'uid_map': open('/proc/self/uid_map').read().split(), "
          "'gid_map': open('/proc/self/gid_map').read().split()}}))")


@pytest.fixture(scope="module")
def image(stevedore_output) -> str:
    (record, *_) = sorted((stevedore_output / "records").rglob("*.build.json"))
    return json.loads(record.read_text())["image"]["tag"]


@pytest.fixture(scope="module")
def many_runs(image, tmp_path_factory) -> list[dict]:
    work = tmp_path_factory.mktemp("concurrent")
    began = time.time()
    with PodmanService(work / "state") as podman:
        def run(number: int) -> dict:
            log = work / f"run-{number}.log"
            spec = RunSpec(image=image, command=["python3", "-c", REPORT.format(
                sleep=0.05 + 0.03 * (number % 5))], timeout_seconds=120)
            result = podman.run(spec, log)
            assert result.exit_code == 0, log.read_text()
            return json.loads(log.read_text().strip().splitlines()[-1])

        with ThreadPoolExecutor(AT_ONCE) as pool:
            pending = {pool.submit(run, n) for n in range(RUNS)}
            while pending:
                done, pending = wait(pending, NO_PROGRESS_SECONDS, return_when=FIRST_COMPLETED)
                if not done:
                    _unwedge(began, podman)
                    pytest.fail(f"podman hung: no run ended in {NO_PROGRESS_SECONDS} s "
                                f"({RUNS - len(pending)} of {RUNS} done)")
                for future in done:
                    future.result()
    return [json.loads((work / f"run-{n}.log").read_text().strip().splitlines()[-1])
            for n in range(RUNS)]


def _unwedge(since: float, podman: PodmanService) -> None:
    """After a hang: end the podman processes this test started, so the tests after it run."""
    ticks, boot = os.sysconf("SC_CLK_TCK"), time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if b"cleanup" in command and boot + int(stat[19]) / ticks >= since:
            os.kill(int(pid), signal.SIGKILL)
    if podman._process is not None:
        podman._process.kill()


def test_many_short_containers_at_once_all_end(many_runs):
    assert len(many_runs) == RUNS


def test_containers_alive_at_once_never_share_ids(many_runs):
    overlapping = 0
    for i, one in enumerate(many_runs):
        for other in many_runs[i + 1:]:
            if one["start"] < other["end"] and other["start"] < one["end"]:
                overlapping += 1
                assert one["uid_map"] != other["uid_map"]
                assert one["gid_map"] != other["gid_map"]
    assert overlapping >= RUNS // 2  # six at a time: runs overlap others


def test_every_containers_ids_are_a_whole_block_of_the_subordinate_range(many_runs):
    uid_ranges, gid_ranges = subordinate_ids(SUBUID_FILE), subordinate_ids(SUBGID_FILE)
    for run in many_runs:
        for (inside, outside, count), ranges in ((map(int, run["uid_map"]), uid_ranges),
                                                 (map(int, run["gid_map"]), gid_ranges)):
            assert inside == 0 and count == 65536
            assert any(outside in r and outside + count - 1 in r for r in ranges)


def test_a_real_containers_end_is_seen_on_its_first_process(image):
    """The pidfd wait (sandbox/exitwatch.py) takes podman's pid for a container's first process
    and knows it by the container's id in its cgroups: true of the real podman, or every wait
    would fall back to podman polling every 10 ms."""
    command = ["podman", "run", "-d", "--rm", "--network", "none", "--ulimit",
               "nofile=4096:4096", "--ulimit", "nproc=4096:4096", image, "sleep", "30"]
    container = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    try:
        pid = int(subprocess.run(["podman", "inspect", "-f", "{{.State.Pid}}", container],
                                 capture_output=True, text=True, check=True).stdout)
        seen = []
        waiter = threading.Thread(target=lambda: seen.append(wait_for_exit(pid, container)))
        waiter.start()
        time.sleep(0.5)
        assert waiter.is_alive()  # it runs: the wait is on

        subprocess.run(["podman", "kill", container], capture_output=True, check=True)
        waiter.join(10)

        assert seen == [True]
    finally:
        subprocess.run(["podman", "rm", "-f", container], capture_output=True)

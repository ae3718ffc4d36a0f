"""A container's end is waited for on a pidfd of its first process (sandbox/exitwatch.py), not by
podman polling its state every 10 ms; anything that cannot be watched so is left to podman."""

import subprocess
import threading
import time

from mirror_builder.sandbox import exitwatch


def test_the_wait_ends_when_the_process_ends(monkeypatch):
    monkeypatch.setattr(exitwatch, "_in_container", lambda pid, container_id: True)
    process = subprocess.Popen(["sleep", "0.3"])
    started = time.monotonic()

    assert exitwatch.wait_for_exit(process.pid, "c0ffee") is True

    assert time.monotonic() - started >= 0.25
    process.wait()


def test_a_process_that_is_not_the_containers_is_not_waited_for():
    process = subprocess.Popen(["sleep", "30"])
    try:
        done = []
        waiter = threading.Thread(target=lambda: done.append(
            exitwatch.wait_for_exit(process.pid, "c0ffee" * 10)))
        waiter.start()
        waiter.join(5)

        assert done == [False]  # at once, not after 30 s: its cgroups are not the container's
    finally:
        process.kill()
        process.wait()


def test_a_pid_that_is_gone_or_missing_is_left_to_podman():
    ended = subprocess.Popen(["true"])
    ended.wait()

    assert exitwatch.wait_for_exit(ended.pid, "c0ffee") is False
    assert exitwatch.wait_for_exit(0, "c0ffee") is False
    assert exitwatch.wait_for_exit(None, "c0ffee") is False


def test_the_containers_cgroups_are_known_by_its_id(tmp_path, monkeypatch):
    cgroup = ("10:hugetlb:/libpod_parent/libpod-46ffd60b7cf8\n"
              "9:name=systemd:/libpod_parent/libpod-46ffd60b7cf8\n")
    real_open = open
    monkeypatch.setattr("builtins.open", lambda path, *a, **k: real_open(tmp_path / "cg", *a, **k)
                        if path == "/proc/4242/cgroup" else real_open(path, *a, **k))
    (tmp_path / "cg").write_text(cgroup)

    assert exitwatch._in_container(4242, "46ffd60b7cf8")
    assert not exitwatch._in_container(4242, "0123456789ab")
    assert not exitwatch._in_container(4242, "")

"""A container waiting for the host's answer (/job/taken) sleeps until the host puts it there
(sandbox/filewait.py: inotify), and polls as before where inotify cannot be had."""

import os
import threading
import time

import pytest

from mirror_builder.sandbox import filewait


def put_later(path, seconds):
    """Write path whole, then name it, as the host does, after seconds."""
    def put():
        time.sleep(seconds)
        partial = path.parent / f".{path.name}"
        partial.write_text("")
        partial.rename(path)

    thread = threading.Thread(target=put)
    thread.start()
    return thread


@pytest.fixture(params=["inotify", "polling"])
def way(request, monkeypatch):
    if request.param == "polling":
        monkeypatch.setattr(filewait, "_inotify_on", lambda folder: None)
    return request.param


def test_the_wait_ends_when_the_file_is_named_into_the_folder(tmp_path, way):
    answer = tmp_path / "taken"
    writer = put_later(answer, 0.2)
    started = time.monotonic()

    assert filewait.wait_for_file(str(answer), time.monotonic() + 10)

    assert 0.15 < time.monotonic() - started < 2
    writer.join()


def test_a_file_already_there_ends_the_wait_at_once(tmp_path, way):
    (tmp_path / "taken").write_text("skip")

    assert filewait.wait_for_file(str(tmp_path / "taken"), time.monotonic() + 10)


def test_the_wait_gives_up_at_its_deadline(tmp_path, way):
    started = time.monotonic()

    assert not filewait.wait_for_file(str(tmp_path / "taken"), time.monotonic() + 0.3)

    assert 0.25 < time.monotonic() - started < 2


def test_other_names_in_the_folder_do_not_end_the_wait(tmp_path, way):
    other = put_later(tmp_path / "something-else", 0.05)

    assert not filewait.wait_for_file(str(tmp_path / "taken"), time.monotonic() + 0.4)
    other.join()


def test_inotify_sleeps_instead_of_polling(tmp_path, monkeypatch):
    """Over half a second of waiting, the inotify way looks at the folder a handful of times;
    the old way looked 250 times (every 2 ms)."""
    probe = filewait._inotify_on(str(tmp_path))
    if probe is None:
        pytest.skip("no inotify here")
    os.close(probe)
    looks = []
    real_exists = os.path.exists
    monkeypatch.setattr(filewait.os.path, "exists",
                        lambda path: looks.append(path) or real_exists(path))

    filewait.wait_for_file(str(tmp_path / "taken"), time.monotonic() + 0.5)

    assert len(looks) <= 3

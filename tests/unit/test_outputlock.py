"""One writer per output directory: the second refuses, naming the first, or waits for it."""

import os
import threading
import time

import pytest

from mirror_builder.index.outputlock import OutputBusy, hold_output


def test_a_second_writer_is_refused_with_who_holds_the_output(tmp_path):
    with hold_output(tmp_path, "bootstrap flask"):
        with pytest.raises(OutputBusy) as caught:
            with hold_output(tmp_path, "rebuild six==1.17.0"):
                pass
    message = str(caught.value)
    assert f"{tmp_path} is in use by another mirror-builder" in message
    assert f"pid {os.getpid()}, `mirror-builder bootstrap flask`" in message
    assert "--wait" in message


def test_the_output_is_free_again_once_its_writer_is_done(tmp_path):
    with hold_output(tmp_path, "bootstrap flask"):
        pass
    with hold_output(tmp_path, "bootstrap six"):
        pass


def test_a_waiting_writer_goes_on_when_the_first_is_done(tmp_path):
    order = []
    first_holds = threading.Event()

    def first():
        with hold_output(tmp_path, "bootstrap flask"):
            first_holds.set()
            time.sleep(0.3)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    first_holds.wait()
    waited_for = []
    with hold_output(tmp_path, "bootstrap six", wait=True, on_wait=waited_for.append):
        order.append("second in")
    thread.join()
    assert order == ["first done", "second in"]
    assert "`mirror-builder bootstrap flask`" in waited_for[0]


def test_the_output_directory_is_made_if_missing(tmp_path):
    with hold_output(tmp_path / "new" / "out", "bootstrap six"):
        assert (tmp_path / "new" / "out").is_dir()

"""A build container whose closure is not all built waits for it after the hand-over
(engine/smokeplan.py's ClosureWait): it gets the closure of the built wheel's real
Requires-Dist once the run has built it, and a slot for the test; nothing when the run has
nothing left at work that could build it, or once its deadline passes."""

import threading
import time
from concurrent.futures import Future
from contextlib import contextmanager

from packaging.version import Version

from mirror_builder.engine.smokeplan import ClosureWait, WaitingContainers
from test_bootstrap import TARGET
from test_smoke_in_build import built, done, names

TOP = ("flask", Version("3.1.1"))


class Run:
    """The run as a ClosureWait sees it: its wheels, whether it works on, its slots."""

    def __init__(self, *wheels, busy=True):
        self.wheels = done(*wheels)
        self.busy = busy
        self.slots_taken = []
        self.slots_freed = []
        self.slot_sizes = []  # how many wheels each test installs
        self.tests = []

    def add(self, wheel):
        self.wheels = {**self.wheels, **done(wheel)}

    @contextmanager
    def slot(self, wheels):
        self.slot_sizes.append(wheels)
        self.slots_taken.append(time.monotonic())
        try:
            yield
        finally:
            self.slots_freed.append(time.monotonic())

    def wait(self, deadline=60.0):
        return ClosureWait(TOP, lambda: dict(self.wheels), TARGET.applies,
                           lambda: len(self.wheels), lambda: self.busy, self.slot,
                           time.monotonic() + deadline, on_test=self.tests.append,
                           poll_seconds=0.005)


def test_it_waits_for_the_built_wheels_real_requirements_and_then_takes_a_slot():
    run = Run(built("flask", "3.1.1", ["werkzeug>=3", "click"]), built("click", "8.1.0"))
    answer = {}
    waiting = threading.Thread(target=lambda: answer.setdefault("got", run.wait()()))
    waiting.start()
    time.sleep(0.05)
    assert waiting.is_alive() and not run.slots_taken  # werkzeug is still being built

    run.add(built("werkzeug", "3.1.9", ["markupsafe>=2.1"]))
    time.sleep(0.05)
    assert waiting.is_alive()  # and werkzeug's own requirement too
    run.add(built("markupsafe", "3.0.4"))
    waiting.join(5)

    closure, release = answer["got"]
    assert names(closure) == ["click", "markupsafe", "werkzeug"]
    assert len(run.slots_taken) == 1 and not run.slots_freed
    assert run.slot_sizes == [4]  # the slot is asked for a test of flask and its three
    release()
    assert len(run.slots_freed) == 1 and len(run.tests) == 1


def test_it_gives_up_when_the_run_has_nothing_left_at_work():
    run = Run(built("flask", "3.1.1", ["werkzeug"]), busy=False)

    assert run.wait()() is None and not run.slots_taken


def test_it_gives_up_when_its_own_wheel_was_rejected():
    run = Run(built("flask", "3.1.1", [], status="rejected"), busy=False)

    assert run.wait()() is None


def test_it_gives_up_at_its_deadline_even_while_the_run_works_on():
    run = Run(built("flask", "3.1.1", ["werkzeug"]))
    started = time.monotonic()

    assert run.wait(deadline=0.1)() is None
    assert time.monotonic() - started < 2


def test_a_wheel_the_run_adds_as_its_last_task_ends_is_seen():
    run = Run(built("flask", "3.1.1", ["werkzeug"]), busy=True)

    def last_task_ends():
        time.sleep(0.05)
        run.add(built("werkzeug", "3.1.9"))
        run.busy = False

    threading.Thread(target=last_task_ends).start()
    closure, release = run.wait()()
    release()
    assert names(closure) == ["werkzeug"]


def test_at_most_so_many_containers_wait_at_once_each_until_its_container_ends():
    waiting = WaitingContainers(most=2)
    ends = Future()

    assert waiting.admit() and waiting.admit() and not waiting.admit()
    waiting.ended(ends)  # still waits: its container runs
    assert not waiting.admit()
    ends.set_result(None)
    assert waiting.admit()
    waiting.ended(None)  # never handed over: no longer waits at once
    assert waiting.admit()


class AnnouncingRun(Run):
    """A run that announces each wheel it adds (engine/run.py's wait_for_change), so that a
    waiting container sleeps instead of looking every few milliseconds."""

    def __init__(self, *wheels, busy=True):
        super().__init__(*wheels, busy=busy)
        self.changed = threading.Condition()
        self.looks = 0

    def add(self, wheel):
        super().add(wheel)
        with self.changed:
            self.changed.notify_all()

    def wait_for_change(self, generation, timeout):
        with self.changed:
            self.changed.wait_for(lambda: len(self.wheels) != generation, timeout)

    def wait(self, deadline=60.0):
        def generation():
            self.looks += 1
            return len(self.wheels)

        return ClosureWait(TOP, lambda: dict(self.wheels), TARGET.applies, generation,
                           lambda: self.busy, self.slot, time.monotonic() + deadline,
                           on_test=self.tests.append, changed=self.wait_for_change)


def test_a_waiting_container_sleeps_until_the_run_announces_a_wheel():
    run = AnnouncingRun(built("flask", "3.1.1", ["werkzeug>=3"]))
    answer = {}
    waiting = threading.Thread(target=lambda: answer.setdefault("got", run.wait()()))
    waiting.start()
    time.sleep(0.3)
    assert waiting.is_alive() and run.looks <= 2  # polling every 5 ms would have looked 60 times

    run.add(built("werkzeug", "3.1.9"))
    waiting.join(5)

    closure, release = answer["got"]
    assert names(closure) == ["werkzeug"]
    release()


def test_a_waiting_container_still_sees_its_deadline_without_any_announcement():
    run = AnnouncingRun(built("flask", "3.1.1", ["werkzeug>=3"]))
    started = time.monotonic()

    assert run.wait(deadline=0.3)() is None

    assert time.monotonic() - started < 2

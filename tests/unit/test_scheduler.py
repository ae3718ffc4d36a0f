"""Concurrent, dynamic scheduling: builds overlap up to the job limit, a package waits only for
its own build environment, cycles are refused, and --keep-going keeps unrelated work going."""

import threading
import time

import pytest
from packaging.requirements import Requirement

from mirror_builder.engine.context import Options
from mirror_builder.engine.model import BootstrapFailed
from mirror_builder.engine.scheduler import BuildSlots, CycleError, WaitGraph
from test_bootstrap import FakeBuilder, Package, bootstrap  # noqa: F401  (the fixture)


class TimedBuilder(FakeBuilder):
    """Takes `seconds` per build and remembers when each ran."""

    def __init__(self, work_dir, seconds: float = 0.3) -> None:
        super().__init__(work_dir)
        self.seconds = seconds
        self.spans: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def build(self, request):
        started = time.monotonic()
        time.sleep(self.seconds)
        outcome = super().build(request)
        with self._lock:
            self.spans[request.source.name] = (started, time.monotonic())
        return outcome

    def overlapped(self, a: str, b: str) -> bool:
        (a0, a1), (b0, b1) = self.spans[a], self.spans[b]
        return a0 < b1 and b0 < a1


def run(bootstrap, packages, *requirements, jobs, builder=None, keep_going=False):
    pipeline, _ = bootstrap.make(packages, builder=builder or TimedBuilder(bootstrap.work),
                                 options=Options(jobs=jobs, keep_going=keep_going))
    return pipeline, pipeline.run([Requirement(r) for r in requirements])


INDEPENDENT = {"left": {"1.0": Package()}, "right": {"1.0": Package()}}


def test_independent_builds_run_at_the_same_time_up_to_the_job_limit(bootstrap):
    builder = TimedBuilder(bootstrap.work)
    run(bootstrap, INDEPENDENT, "left", "right", jobs=2, builder=builder)
    assert builder.overlapped("left", "right")


def test_with_one_job_builds_run_one_after_another(bootstrap):
    builder = TimedBuilder(bootstrap.work)
    run(bootstrap, INDEPENDENT, "left", "right", jobs=1, builder=builder)
    assert not builder.overlapped("left", "right")


def test_a_package_waits_only_for_its_own_build_environment(bootstrap):
    # slow-tool takes long; "quick" does not need it and must not wait for it (no rounds).
    class Builder(TimedBuilder):
        def build(self, request):
            self.seconds = 0.6 if request.source.name == "slow-tool" else 0.05
            return super().build(request)

    builder = Builder(bootstrap.work)
    packages = {"app": {"1.0": Package(build_requires=["slow-tool"])},
                "slow-tool": {"1.0": Package()}, "quick": {"1.0": Package()}}
    run(bootstrap, packages, "app", "quick", jobs=2, builder=builder)
    assert builder.spans["quick"][1] < builder.spans["slow-tool"][1]
    assert builder.spans["app"][0] >= builder.spans["slow-tool"][1]


def test_a_package_asking_for_more_cpus_takes_more_of_the_budget():
    slots = BuildSlots(jobs=2)
    events = []

    def build(label, cpus):
        with slots.slot(label, cpus):
            events.append(("start", label))
            time.sleep(0.2)
            events.append(("end", label))

    threads = [threading.Thread(target=build, args=("big", 2))]
    threads[0].start()
    time.sleep(0.05)
    threads.append(threading.Thread(target=build, args=("small", 1)))
    threads[1].start()
    for thread in threads:
        thread.join()
    assert events == [("start", "big"), ("end", "big"), ("start", "small"), ("end", "small")]


def test_a_free_slot_goes_to_the_build_that_most_tasks_wait_for_then_to_the_first_come():
    slots = BuildSlots(jobs=1)
    started = []
    waiting_for = {"leaf": 0, "also-a-leaf": 0, "setuptools": 3}

    def build(label):
        with slots.slot(label, priority=lambda: (waiting_for[label],)):
            started.append(label)

    with slots.slot("the build under way"):
        threads = []
        for label in ("leaf", "also-a-leaf", "setuptools"):
            threads.append(threading.Thread(target=build, args=(label,)))
            threads[-1].start()
            time.sleep(0.05)  # they arrive in this order
    for thread in threads:
        thread.join()
    assert started == ["setuptools", "leaf", "also-a-leaf"]


def test_a_free_slot_is_taken_even_when_priorities_move_while_the_waiters_compare():
    """A priority is asked once per change: were each waiter to ask as it looks, two whose
    priorities moved in between could each see the other first and leave the slot idle."""
    slots = BuildSlots(jobs=1)
    started = []

    def seen_from(label):
        # The worst case: seen from its own thread a build looks less urgent than the other.
        return lambda: (0,) if threading.current_thread().name == label else (1,)

    def build(label):
        with slots.slot(label, priority=seen_from(label)):
            started.append(label)

    with slots.slot("the build under way"):
        threads = [threading.Thread(target=build, args=(label,), name=label, daemon=True)
                   for label in ("jinja2", "werkzeug")]
        for thread in threads:
            thread.start()
        time.sleep(0.05)
    for thread in threads:
        thread.join(timeout=5)
    assert sorted(started) == ["jinja2", "werkzeug"]


def test_of_smoke_tests_waiting_for_a_slot_the_one_installing_most_wheels_goes_first():
    """The run's end waits for every test: the longest starts first. A build otherwise level
    with them still goes before them."""
    from mirror_builder.engine.smokeplan import smoke_test_priority

    slots = BuildSlots(jobs=1)
    started = []
    priorities = {"jinja2 (smoke test)": smoke_test_priority(2),
                  "flask (smoke test)": smoke_test_priority(7),
                  "a compiled build nobody waits for": (0, True, True, True, True)}

    def take(label):
        with slots.slot(label, priority=lambda: priorities[label]):
            started.append(label)

    with slots.slot("the build under way"):
        threads = []
        for label in priorities:
            threads.append(threading.Thread(target=take, args=(label,)))
            threads[-1].start()
            time.sleep(0.05)
    for thread in threads:
        thread.join()
    assert started == ["a compiled build nobody waits for", "flask (smoke test)",
                       "jinja2 (smoke test)"]


def test_the_wait_graph_counts_every_task_waiting_for_one_directly_or_through_others():
    graph = WaitGraph()
    with graph.waiting("markupsafe", "setuptools"), graph.waiting("jinja2", "markupsafe"), \
            graph.waiting("flask", "flit-core"):
        assert graph.waiters("setuptools") == 2
        assert graph.waiters("flit-core") == 1
        assert graph.waiters("flask") == 0


def test_a_wait_that_closes_a_cycle_is_refused_with_the_cycle():
    graph = WaitGraph()
    with graph.waiting("a", "b"), graph.waiting("b", "c"):
        with pytest.raises(CycleError) as raised:
            with graph.waiting("c", "a"):
                pass
    assert raised.value.cycle == ["c", "a", "b", "c"]
    with graph.waiting("c", "a"):  # once the other waits are over, the same wait is fine
        pass


def test_keep_going_builds_what_does_not_need_the_failure_and_lists_it(bootstrap):
    packages = {"app": {"1.0": Package(build_requires=["broken"])}, "broken": {"1.0": Package(fails=True)},
                "fine": {"1.0": Package()}}
    with pytest.raises(BootstrapFailed) as raised:
        run(bootstrap, packages, "app", "fine", jobs=2, keep_going=True)
    (failure,) = raised.value.failures
    assert failure.pin == "broken==1.0"
    assert failure.chain == ("app==1.0",)
    assert failure.log_path and failure.log_path.endswith("broken-1.0.log")
    assert sorted(p.name for p in (bootstrap.output / "files").glob("*/*.whl")) == [
        "fine-1.0-py3-none-any.whl"]


def test_without_keep_going_the_first_failure_stops_the_run(bootstrap):
    packages = {"broken": {"1.0": Package(fails=True)}}
    with pytest.raises(Exception, match="broken==1.0: the compiler said no"):
        run(bootstrap, packages, "broken", jobs=2)


def test_a_stand_in_serves_only_the_waiters_inside_a_cycle():
    """a waits for b, b waits for a: with a stand-in for a provided, b takes it and a gets b;
    an outside waiter gets a's own result."""
    from mirror_builder.engine.scheduler import Tasks, current_task

    tasks = Tasks()
    got: dict[str, object] = {}
    a_waits = threading.Event()

    def waiting_for(key, work):
        # As the engine does: whichever wait closes the cycle starts a's stage 1 and provides
        # it, then waits again.
        try:
            return tasks.wait(key, tasks.start(key, work))
        except CycleError:
            tasks.start("a-stage-1", lambda: "a stage 1")
            tasks.provide("a", "a-stage-1")
            return tasks.wait(key, tasks.start(key, work))

    def a():
        a_waits.set()
        return ("a built with", waiting_for("b", b))

    def b():
        return ("b built with", waiting_for("a", a))

    def outsider():
        current_task.set("outsider")
        a_waits.wait(5)
        got["outsider"] = tasks.wait("a", tasks.start("a", a))

    watcher = threading.Thread(target=outsider)
    watcher.start()
    result = tasks.start("a", a).result(timeout=5)
    watcher.join(5)
    assert result == ("a built with", ("b built with", "a stage 1"))
    assert got["outsider"] == result


def test_without_a_stand_in_the_cycle_is_refused_again():
    graph = WaitGraph()
    with graph.waiting("a", "b"):
        with pytest.raises(CycleError):
            with graph.waiting("b", "a", breakable=lambda key: False):
                pass
        with graph.waiting("b", "a", breakable=lambda key: key == "a"):
            assert graph.reaches("b", "a") and graph.reaches("a", "b")

"""Run package work concurrently: a dynamic DAG, not rounds.

Every package version is one task on its own thread: it fetches, prepares and resolves at once
(so the network is never what builds wait on), waits only for the tasks of its own build
environment, and then takes build slots (CPUs and memory) for its container. A package is built
the moment its build dependencies are in the index. Tasks wait for each other through futures;
a build-dependency cycle would be a deadlock, so every wait is recorded in a wait-for graph and
a wait that closes a cycle is refused with the cycle named.

A cycle can be broken in stages: a task may be given a provisional result (a stage-1 build),
which only the waiters inside a cycle through it take; everyone else waits for the real one.
"""

from __future__ import annotations

import contextvars
import itertools
import math
import os
import threading
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass

from mirror_builder.config.sizes import machine_memory

# The task the current thread works for (None on the main thread).
current_task: contextvars.ContextVar[Hashable | None] = contextvars.ContextVar("current_task",
                                                                              default=None)


def default_jobs(memory_per_build: int) -> int:
    """What the machine allows: its cores, but no more builds than its memory can hold."""
    cores = os.cpu_count() or 1
    return max(1, min(cores, machine_memory() // max(memory_per_build, 1)))



@dataclass
class Hold:
    """A slot's hold: set until to a Future to keep the slot past its block, until it is done
    (a build container that handed its wheel over still runs its smoke test)."""

    until: Future | None = None


class BuildSlots:
    """Concurrent container builds within a CPU and memory budget: `jobs` builds at once, and a
    package that asks for more CPUs (overrides' cpus) or memory takes more of the budget."""

    def __init__(self, jobs: int, memory: int | None = None) -> None:
        self.jobs = jobs
        self.memory = memory or machine_memory()
        self._free_jobs = jobs
        self._free_memory = self.memory
        self._condition = threading.Condition()
        self.running: dict[str, str] = {}
        # Waiting for a slot: arrival number -> (jobs, memory, priority)
        self._waiting: dict[int, tuple[int, int, Callable[[], tuple]]] = {}
        self._arrivals = itertools.count()
        # Each waiter's priority(), asked once since the last change: every waiter that looks
        # compares the same figures, so exactly one of those that fit sees nobody before it.
        # (Asked by each as it looked, a priority that moved in between, a build's closure
        # built or a task's wait begun, could let each see the other first: a free slot left
        # idle until the next release, once for most of a second.)
        self._ranked: dict[int, tuple] = {}

    @contextmanager
    def slot(self, label: str, cpus: float | None = None, memory: int = 0,
             priority: Callable[[], tuple] = lambda: (0,)) -> Iterator[Hold]:
        """Hold a share of the budget for the block. Of the builds waiting that fit, the one
        with the highest priority() (a tuple) goes first (then the first to come): a build that others
        wait for goes before one nobody needs yet, so the critical path is not left waiting."""
        need_jobs = min(self.jobs, max(1, math.ceil(cpus or 1)))
        need_memory = min(self.memory, memory)
        with self._condition:
            me = next(self._arrivals)
            self._waiting[me] = (need_jobs, need_memory, priority)
            self._changed()
            taken = False
            try:
                while not self._fits(need_jobs, need_memory) or self._anyone_before(me):
                    self._condition.wait()
                taken = True
            finally:
                del self._waiting[me]
                if not taken:  # interrupted: those who let it go first look again
                    self._changed()
            self._free_jobs -= need_jobs
            self._free_memory -= need_memory
            self.running[label] = "building"
        hold = Hold()

        def release(*_) -> None:
            with self._condition:
                self._free_jobs += need_jobs
                self._free_memory += need_memory
                self.running.pop(label, None)
                self._changed()

        try:
            yield hold
        finally:
            if hold.until is None:
                release()
            else:  # the block left work running that the slot still pays for
                hold.until.add_done_callback(release)


    def _fits(self, jobs: int, memory: int) -> bool:
        return self._free_jobs >= jobs and self._free_memory >= memory

    def _changed(self) -> None:
        """What the choice rests on changed (a slot freed, a waiter came or went): priorities
        are asked afresh, and every waiter looks again."""
        self._ranked.clear()
        self._condition.notify_all()

    def _priority(self, waiter: int) -> tuple:
        if waiter not in self._ranked:
            self._ranked[waiter] = self._waiting[waiter][2]()
        return self._ranked[waiter]

    def _anyone_before(self, me: int) -> bool:
        """Whether another waiting build that fits now goes before me."""
        mine = self._priority(me)
        for other, (jobs, memory, _) in self._waiting.items():
            if other != me and self._fits(jobs, memory):
                theirs = self._priority(other)
                if theirs > mine or (theirs == mine and other < me):
                    return True
        return False


class CycleError(Exception):
    def __init__(self, cycle: list[Hashable]) -> None:
        self.cycle = cycle
        super().__init__(" -> ".join(map(str, cycle)))


class WaitGraph:
    """Which task waits for which; a wait that would close a cycle is refused."""

    def __init__(self) -> None:
        self._edges: dict[Hashable, set[Hashable]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def waiting(self, waiter: Hashable | None, target: Hashable,
                breakable: Callable[[Hashable], bool] = lambda key: False) -> Iterator[None]:
        """Record that waiter waits for target. A wait that closes a cycle is refused, unless a
        task on the cycle is breakable (has a provisional result its own waiter will take)."""
        if waiter is None:
            yield
            return
        with self._lock:
            path = self._path(target, waiter)
            if path is not None and not any(breakable(key) for key in path):
                raise CycleError([waiter, *path])
            self._edges.setdefault(waiter, set()).add(target)
        try:
            yield
        finally:
            with self._lock:
                self._edges.get(waiter, set()).discard(target)

    def waiters(self, goal: Hashable) -> int:
        """How many tasks wait for goal, directly or through others."""
        with self._lock:
            found: set[Hashable] = set()
            todo = [goal]
            while todo:
                node = todo.pop()
                for waiter, targets in self._edges.items():
                    if node in targets and waiter not in found and waiter != goal:
                        found.add(waiter)
                        todo.append(waiter)
            return len(found)

    def reaches(self, start: Hashable, goal: Hashable) -> bool:
        """Whether start waits, directly or through others, for goal (or is goal)."""
        with self._lock:
            return self._path(start, goal) is not None

    def _path(self, start: Hashable, goal: Hashable) -> list[Hashable] | None:
        """A path start -> ... -> goal through the edges, if there is one."""
        stack, seen = [(start, [start])], {start}
        while stack:
            node, path = stack.pop()
            if node == goal:
                return path
            for following in self._edges.get(node, ()):
                if following not in seen:
                    seen.add(following)
                    stack.append((following, path + [following]))
        return None


class Tasks:
    """One future per key, computed once on its own thread; waits go through the WaitGraph."""

    def __init__(self) -> None:
        self.graph = WaitGraph()
        self._futures: dict[Hashable, Future] = {}
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        # key -> (the stand-in's task key, its future), for waiters on a cycle through key
        self._provisional: dict[Hashable, tuple[Hashable, Future]] = {}
        self._changed = threading.Condition()

    def start(self, key: Hashable, work: Callable[[], object]) -> Future:
        with self._lock:
            future = self._futures.get(key)
            if future is not None:
                return future
            future = Future()
            self._futures[key] = future
        context = contextvars.copy_context()

        def run() -> None:
            current_task.set(key)
            try:
                if self.stopping.is_set():
                    raise KeyboardInterrupt
                future.set_result(work())
            except BaseException as exc:  # handed to every waiter
                future.set_exception(exc)

        threading.Thread(target=context.run, args=(run,), name=f"task {key}", daemon=True).start()
        return future

    def started(self) -> list[tuple[Hashable, Future]]:
        """Every task started so far, with its future."""
        with self._lock:
            return list(self._futures.items())

    def provide(self, key: Hashable, stand_in_key: Hashable) -> None:
        """Let the waiters on a cycle through key take the result of the task stand_in_key
        (started already) instead of key's own: how a cycle is broken in stages. Waiters
        outside the cycle still get key's own."""
        with self._lock:
            stand_in = self._futures[stand_in_key]
        with self._changed:
            self._provisional[key] = (stand_in_key, stand_in)
            self._changed.notify_all()

    def provided(self, key: Hashable) -> bool:
        with self._changed:
            return key in self._provisional

    def wait(self, key: Hashable, future: Future):
        waiter = current_task.get()
        future.add_done_callback(self._notify)
        with self.graph.waiting(waiter, key, breakable=self.provided):
            self._notify()  # a new wait may put an earlier waiter on a breakable cycle
            stand_in = self._until_done_or_stand_in(waiter, key, future)
        if stand_in is None:
            return future.result()
        stand_in_key, stand_in_future = stand_in
        with self.graph.waiting(waiter, stand_in_key):
            return stand_in_future.result()

    def _until_done_or_stand_in(self, waiter: Hashable | None, key: Hashable,
                                future: Future) -> tuple[Hashable, Future] | None:
        with self._changed:
            while not future.done():
                stand_in = self._provisional.get(key)
                # Inside the cycle: key waits, through others, for this very waiter.
                if stand_in is not None and waiter is not None and \
                        self.graph.reaches(key, waiter):
                    return stand_in
                self._changed.wait()
        return None

    def _notify(self, *_) -> None:
        with self._changed:
            self._changed.notify_all()

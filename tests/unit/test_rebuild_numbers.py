"""Rebuild numbers (mirror_builder/rebuilds.py): handed out under a lock, persisted, never repeated."""

from __future__ import annotations

import json
import multiprocessing
import queue
from pathlib import Path

import pytest
from packaging.version import Version

from mirror_builder.provenance.rebuilds import RebuildCounter

V1 = Version("1.0")


def test_first_reserve_is_one(tmp_path):
    assert RebuildCounter(tmp_path).reserve("demo", V1, 0) == 1


def test_first_reserve_is_at_least_one_even_when_at_least_is_lower(tmp_path):
    assert RebuildCounter(tmp_path).reserve("demo", V1, -3) == 1


def test_numbers_increase_by_one_per_reserve(tmp_path):
    counter = RebuildCounter(tmp_path)

    assert [counter.reserve("demo", V1, 0) for _ in range(5)] == [1, 2, 3, 4, 5]


def test_at_least_raises_the_number_and_later_numbers_continue_from_it(tmp_path):
    counter = RebuildCounter(tmp_path)

    assert counter.reserve("demo", V1, 0) == 1
    assert counter.reserve("demo", V1, 5) == 5
    assert counter.reserve("demo", V1, 0) == 6
    # An at_least below what was handed out never lowers or repeats a number.
    assert counter.reserve("demo", V1, 2) == 7


def test_first_reserve_honours_at_least(tmp_path):
    assert RebuildCounter(tmp_path).reserve("demo", V1, 4) == 4


def test_numbers_are_per_canonical_name_and_version(tmp_path):
    counter = RebuildCounter(tmp_path)

    assert counter.reserve("Foo_Bar", V1, 0) == 1
    assert counter.reserve("foo-bar", V1, 0) == 2
    assert counter.reserve("FOO.bar", V1, 0) == 3
    assert counter.reserve("foo-bar", Version("2.0"), 0) == 1
    assert counter.reserve("other", V1, 0) == 1
    assert counter.reserve("foo_bar", V1, 0) == 4


def test_numbers_are_persisted_for_a_new_counter(tmp_path):
    RebuildCounter(tmp_path).reserve("Foo_Bar", V1, 0)
    RebuildCounter(tmp_path).reserve("foo-bar", V1, 3)

    assert RebuildCounter(tmp_path).reserve("foo-bar", V1, 0) == 4
    assert json.loads((tmp_path / "rebuild-numbers.json").read_text()) == {"foo-bar": {"1.0": 4}}


def test_the_output_directory_is_created_when_missing(tmp_path):
    out = tmp_path / "not" / "yet" / "there"

    assert RebuildCounter(out).reserve("demo", V1, 0) == 1
    assert (out / "rebuild-numbers.json").is_file()


def test_equal_versions_spelled_differently_share_a_counter(tmp_path):
    counter = RebuildCounter(tmp_path)

    assert counter.reserve("demo", Version("1.0"), 0) == 1
    assert counter.reserve("demo", Version("1.0.0"), 0) == 2


def _reserve_many(root: str, start, results, count: int) -> None:
    counter = RebuildCounter(Path(root))
    start.wait(timeout=30)
    for _ in range(count):
        results.put(counter.reserve("Foo_Bar", V1, 0))


def test_concurrent_reserves_from_several_processes_never_repeat(tmp_path):
    context = multiprocessing.get_context("fork")
    processes_count, per_process = 4, 10
    start = context.Barrier(processes_count)
    results = context.Queue()
    processes = [context.Process(target=_reserve_many, args=(str(tmp_path), start, results,
                                                             per_process))
                 for _ in range(processes_count)]
    for process in processes:
        process.start()
    numbers = []
    try:
        for _ in range(processes_count * per_process):
            numbers.append(results.get(timeout=30))
    except queue.Empty:
        pytest.fail(f"only {len(numbers)} numbers came back")
    finally:
        for process in processes:
            process.join(timeout=30)

    assert [p.exitcode for p in processes] == [0] * processes_count
    assert sorted(numbers) == list(range(1, processes_count * per_process + 1))
    assert RebuildCounter(tmp_path).reserve("foo-bar", V1, 0) == processes_count * per_process + 1

"""Build jobs and their audit log: every job that ended is one line in OUTPUT/jobs/history.jsonl,
appended durably, never rewritten, readable after a crash, and shown by `mirror-builder history`."""

import json
import logging
import multiprocessing
import queue
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mirror_builder.cli.app import main
from mirror_builder.errors import MirrorBuilderError
from mirror_builder.jobs.log import RESULTS, TRIGGERS, Job, JobLog, JobResult

REPO = Path(__file__).resolve().parents[2]


class Clock:
    """A clock that moves on by `step` each time it is read."""

    def __init__(self, start="2025-03-01T12:00:00+00:00", step=timedelta(seconds=30)):
        self.now = datetime.fromisoformat(start)
        self.step = step

    def __call__(self):
        now = self.now
        self.now += self.step
        return now


def built(package="six", version="1.17.0", trigger="upstream-release", *, clock=None,
          rebuild_number=0, detail=None, **finish):
    clock = clock or Clock()
    job = Job.start(trigger, package, version, "debian12-py311",
                    detail or f"new upstream release {version}", clock=clock)
    wheel = f"{package.replace('-', '_')}-{version}-{rebuild_number}-py3-none-any.whl"
    finish.setdefault("result", "built")
    if finish["result"] == "built":
        finish.setdefault("wheel", wheel)
    return job.finish(rebuild_number=rebuild_number, log_path=f"records/{package}/{wheel}.log",
                      clock=clock, **finish)


def history(out, *args):
    return main(["--settings", str(REPO / "settings.yaml"), "history", "-o", str(out), *args])


# --- Jobs -----------------------------------------------------------------------------------

def test_a_job_gets_a_sortable_unique_id_and_its_start_time_from_the_clock():
    clock = Clock("2025-03-01T12:00:00+00:00")
    first = Job.start("approved", "Demo_App", "2.0", "debian12-py311",
                      "approved by root: needed by demo-app==2.0", clock=clock)
    second = Job.start("approved", "demo-app", "2.0", "debian12-py311", "again", clock=clock)

    assert first.id.startswith("20250301T120000Z-") and len(first.id) == len("20250301T120000Z-") + 8
    assert first.started_at == "2025-03-01T12:00:00.000+00:00"
    assert first.package == "demo-app"  # canonical name
    assert first.id < second.id


def test_a_job_names_one_of_the_four_triggers():
    assert TRIGGERS == ("upstream-release", "approved", "rebuild", "config-change")
    for trigger in TRIGGERS:
        Job.start(trigger, "six", "1.17.0", "debian12-py311", "why")
    with pytest.raises(ValueError) as caught:
        Job.start("cron", "six", "1.17.0", "debian12-py311", "why")
    assert "'cron'" in str(caught.value)
    assert all(trigger in str(caught.value) for trigger in TRIGGERS)


def test_a_result_is_one_of_the_known_results_and_counts_seconds_from_the_start():
    clock = Clock(step=timedelta(seconds=12.5))
    job = Job.start("rebuild", "six", "1.17.0", "debian12-py311", "bootstrap six==1.17.0",
                    clock=clock)
    assert job.finish("smoke-failed", message="import six failed", clock=clock).seconds == 12.5
    with pytest.raises(ValueError, match="waiting-review"):
        job.finish("exploded", clock=clock)
    assert set(RESULTS) == {"built", "failed", "smoke-failed", "waiting-review", "denied"}


# --- The log --------------------------------------------------------------------------------

def test_a_result_appended_reads_back_with_every_field(tmp_path):
    job_log = JobLog(tmp_path)
    waiting = built("demo-app", "2.0", "approved", result="waiting-review", rebuild_number=None,
                    message="needs review of its dependencies", waiting_for=("Left_Pad", "six"))
    done = built("six", "1.17.0", "config-change", detail="patch added: patches/six/fix.patch",
                 rebuild_number=3)

    job_log.append(waiting)
    job_log.append(done)

    assert job_log.path == tmp_path / "jobs" / "history.jsonl"
    assert job_log.read() == [waiting, done]
    assert waiting.waiting_for == ("left-pad", "six")
    line = json.loads(job_log.path.read_text().splitlines()[1])
    assert line == {
        "schema": 1, "id": done.job.id, "trigger": "config-change", "package": "six",
        "version": "1.17.0", "target": "debian12-py311",
        "detail": "patch added: patches/six/fix.patch", "started_at": "2025-03-01T12:00:00.000+00:00",
        "result": "built", "ended_at": "2025-03-01T12:00:30.000+00:00", "seconds": 30.0,
        "rebuild_number": 3, "wheel": "six-1.17.0-3-py3-none-any.whl",
        "log_path": "records/six/six-1.17.0-3-py3-none-any.whl.log", "message": "",
        "waiting_for": []}
    assert JobResult.from_dict(line) == done


def test_reading_one_package_takes_any_spelling_of_its_name(tmp_path):
    job_log = JobLog(tmp_path)
    for package in ("zope.interface", "six", "Zope_Interface"):
        job_log.append(built(package, "7.2"))

    for spelling in ("zope-interface", "Zope.Interface", "ZOPE_interface"):
        assert [r.job.package for r in job_log.read(spelling)] == ["zope-interface"] * 2
    assert [r.job.package for r in job_log.read("six")] == ["six"]
    assert job_log.read("nothing-here") == []
    assert JobLog(tmp_path / "elsewhere").read() == []


def test_the_job_that_made_a_wheel_is_found_from_its_file_name(tmp_path):
    job_log = JobLog(tmp_path)
    clock = Clock()
    first = built("six", "1.17.0", clock=clock)
    failed_again = built("six", "1.17.0", "rebuild", clock=clock, result="failed",
                         message="gcc: exit status 1")
    rebuilt = built("six", "1.17.0", "rebuild", clock=clock, rebuild_number=1)
    for result in (first, failed_again, rebuilt):
        job_log.append(result)

    assert job_log.find_by_wheel("six-1.17.0-0-py3-none-any.whl") == first
    assert job_log.find_by_wheel("/srv/output/files/six-1.17.0-1-py3-none-any.whl") == rebuilt
    assert job_log.find_by_wheel("six-1.16.0-0-py3-none-any.whl") is None
    assert job_log.find(failed_again.job.id) == failed_again
    assert job_log.find("20990101T000000Z-00000000") is None


def test_a_torn_last_line_is_skipped_and_the_next_record_starts_on_a_line_of_its_own(
        tmp_path, caplog):
    job_log = JobLog(tmp_path)
    before = built("six", "1.17.0")
    job_log.append(before)
    torn = json.dumps(built("idna", "3.10").to_dict())[:57]  # a crash in the middle of a write
    with job_log.path.open("a") as handle:
        handle.write(torn)

    with caplog.at_level(logging.WARNING, logger="mirror_builder"):
        assert job_log.read() == [before]
    assert f"{job_log.path}:2: skipping the last line" in caplog.text

    after = built("certifi", "2025.1.31")
    job_log.append(after)

    assert job_log.read() == [before, after]
    lines = job_log.path.read_text().split("\n")
    assert lines[1].startswith(torn) and json.loads(lines[2]) == after.to_dict()


def test_a_last_line_that_lost_only_its_newline_still_counts(tmp_path):
    job_log = JobLog(tmp_path)
    whole = built("six", "1.17.0")
    job_log.path.parent.mkdir()
    job_log.path.write_text(json.dumps(whole.to_dict()))  # no "\n": cut off just before it

    assert job_log.read() == [whole]
    after = built("idna", "3.10")
    job_log.append(after)
    assert job_log.read() == [whole, after]


def test_a_damaged_line_in_the_middle_is_an_error_naming_the_file_and_line(tmp_path):
    job_log = JobLog(tmp_path)
    job_log.append(built("six", "1.17.0"))
    with job_log.path.open("a") as handle:
        handle.write('{"schema": 1, "id": "edited by hand"\n')
    job_log.append(built("idna", "3.10"))

    with pytest.raises(MirrorBuilderError, match=f"{job_log.path}:2: not a valid job record"):
        job_log.read()


def test_a_record_of_another_schema_is_an_error(tmp_path):
    job_log = JobLog(tmp_path)
    job_log.append(built("six", "1.17.0"))
    with job_log.path.open("a") as handle:
        handle.write(json.dumps(built("idna", "3.10").to_dict() | {"schema": 2}) + "\n")

    with pytest.raises(MirrorBuilderError, match=r"history.jsonl:2: .*schema 2"):
        job_log.read()


def test_the_log_is_only_ever_appended_to(tmp_path):
    job_log = JobLog(tmp_path)
    for package in ("six", "idna"):
        job_log.append(built(package, "1.0"))
    earlier = job_log.path.read_bytes()

    for package in ("certifi", "urllib3", "six"):
        job_log.append(built(package, "2.0", result="failed", message="it broke"))

    now = job_log.path.read_bytes()
    assert now.startswith(earlier) and len(now.splitlines()) == 5


def _append_many(root: str, worker: int, start, count: int, done) -> None:
    job_log = JobLog(Path(root))
    start.wait(timeout=30)
    for number in range(count):
        # Longer than a pipe buffer, so interleaved writes would show.
        job_log.append(built(f"pkg-{worker}", f"1.{number}", result="failed",
                             message=f"{worker}/{number} " + "x" * 6000))
    done.put(worker)


def test_appends_from_several_processes_at_once_all_arrive_whole(tmp_path):
    context = multiprocessing.get_context("fork")
    processes_count, per_process = 4, 50
    start = context.Barrier(processes_count)
    done = context.Queue()
    processes = [context.Process(target=_append_many,
                                 args=(str(tmp_path), worker, start, per_process, done))
                 for worker in range(processes_count)]
    for process in processes:
        process.start()
    try:
        finished = sorted(done.get(timeout=60) for _ in processes)
    except queue.Empty:
        pytest.fail("a writer did not finish")
    finally:
        for process in processes:
            process.join(timeout=30)

    assert finished == list(range(processes_count))
    assert [p.exitcode for p in processes] == [0] * processes_count
    lines = JobLog(tmp_path).path.read_text().split("\n")
    assert lines[-1] == "" and len(lines) == processes_count * per_process + 1
    seen = {json.loads(line)["message"].split(" ")[0] for line in lines[:-1]}
    assert seen == {f"{w}/{n}" for w in range(processes_count) for n in range(per_process)}
    assert len(JobLog(tmp_path).read()) == processes_count * per_process


# --- mirror-builder history ------------------------------------------------------------------

def test_history_with_no_jobs_yet_says_so(tmp_path, capsys):
    assert history(tmp_path, "--json") == 0
    shown = capsys.readouterr()
    assert json.loads(shown.out) == []
    assert f"no jobs recorded in {tmp_path} yet" in " ".join(shown.err.split())


def test_history_of_one_package_lists_its_jobs_newest_first(tmp_path, capsys):
    job_log = JobLog(tmp_path)
    clock = Clock()
    first = built("zope.interface", "7.2", clock=clock)
    job_log.append(built("six", "1.17.0", clock=clock))
    failed = built("Zope_Interface", "7.2", "rebuild", clock=clock, result="failed",
                   message="gcc: exit status 1")
    job_log.append(failed)
    job_log.append(first)  # appended late: it is still the oldest by when it ended

    assert history(tmp_path, "Zope.Interface", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert [job["id"] for job in shown] == [failed.job.id, first.job.id]
    assert shown[0] == failed.to_dict()

    assert history(tmp_path, "zope-interface", "--json", "--limit", "1") == 0
    assert [job["id"] for job in json.loads(capsys.readouterr().out)] == [failed.job.id]


def test_history_table_names_each_package_and_its_result(tmp_path, capsys):
    job_log = JobLog(tmp_path)
    clock = Clock()
    job_log.append(built("six", "1.17.0", clock=clock))
    job_log.append(built("idna", "3.10", clock=clock, result="failed",
                         message="[Errno 28] No space left on device"))

    assert history(tmp_path) == 0
    out = capsys.readouterr().out
    assert "six==1.17.0" in out and "built" in out
    assert "idna==3.10" in out and "failed" in out and "[Errno 28]" in out
    assert out.index("idna==3.10") < out.index("six==1.17.0")

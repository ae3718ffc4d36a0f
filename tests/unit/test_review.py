"""The review queue: a package we do not carry waits in OUTPUT/review/queue.json until a person
approves or rejects it; the jobs that stopped for it wait in OUTPUT/review/waiting.json."""

import json
import re
from datetime import datetime

import pytest

from mirror_builder.errors import MirrorBuilderError
from mirror_builder.jobs.review import Request, ReviewQueue, WaitingJob


@pytest.fixture
def queue(tmp_path):
    return ReviewQueue(tmp_path / "out")


def six_for_app(job="20250301T120000Z-0badcafe", **changes):
    return Request(**{"by": "app==2.0", "requirement": "six>=1", "chain": ("app==2.0",),
                      "job": job} | changes)


def waiting_job(job_id="20250301T120000Z-0badcafe", version="2.0", target="debian12-py311"):
    return WaitingJob(job_id=job_id, trigger="upstream-release",
                      detail=f"new upstream release {version}", package="app", version=version,
                      target=target, waiting_for=("six",))


def unreadable(path):
    """The start of the error about a file that cannot be read back."""
    return f"^{re.escape(str(path))}: unreadable: "


def left_in(folder):
    return sorted(p.name for p in folder.iterdir())


# -- asking ---------------------------------------------------------------------------------------
def test_asking_queues_the_package_as_pending_with_who_needs_it_and_why(queue):
    entry = queue.ask("Six", six_for_app())

    assert (entry.name, entry.state, entry.decided_by, entry.decided_at) == (
        "six", "pending", None, None)
    (request,) = entry.requests
    assert (request.by, request.requirement, request.chain, request.job) == (
        "app==2.0", "six>=1", ("app==2.0",), "20250301T120000Z-0badcafe")
    assert datetime.fromisoformat(request.at).tzinfo is not None  # stamped, in UTC
    assert entry.first_seen == request.at
    assert ReviewQueue(queue.folder.parent).get("six") == entry  # kept on disk, reads back equal
    assert not queue.is_approved("six") and not queue.is_rejected("six")


def test_asking_again_for_the_same_reason_adds_nothing(queue):
    first = queue.ask("six", six_for_app())
    again = queue.ask("SIX", six_for_app(job="20250302T120000Z-00000001"))
    assert again == first
    assert len(queue.entries()) == 1


def test_another_reason_for_the_same_package_is_added_to_its_entry(queue):
    queue.ask("six", six_for_app())
    entry = queue.ask("six", six_for_app(by="lib==1.0", requirement="six", chain=("lib==1.0",)))
    assert [(r.by, r.requirement) for r in entry.requests] == [("app==2.0", "six>=1"),
                                                               ("lib==1.0", "six")]


def test_entries_are_listed_in_the_order_they_were_first_asked_for(queue):
    queue.ask("zope-interface", six_for_app(at="2025-03-01T10:00:00+00:00"))
    queue.ask("attrs", six_for_app(at="2025-03-02T10:00:00+00:00"))
    queue.ask("six", six_for_app(at="2025-02-01T10:00:00+00:00"))
    assert [e.name for e in queue.entries()] == ["six", "zope-interface", "attrs"]


# -- deciding -------------------------------------------------------------------------------------
@pytest.mark.parametrize("state", ["approved", "rejected"])
def test_a_decision_records_who_decided_when_and_why(queue, state):
    queue.ask("six", six_for_app())
    entry = queue.decide("Six", state, "alice", note="reviewed the sdist")

    assert (entry.name, entry.state, entry.decided_by, entry.note) == (
        "six", state, "alice", "reviewed the sdist")
    assert datetime.fromisoformat(entry.decided_at).tzinfo is not None
    assert entry.requests == (six_for_app(at=entry.first_seen),)  # who asked is kept
    reopened = ReviewQueue(queue.folder.parent)
    assert reopened.get("six") == entry
    assert reopened.is_approved("six") == (state == "approved")
    assert reopened.is_rejected("six") == (state == "rejected")


def test_a_package_can_be_decided_before_anything_asked_for_it(queue):
    entry = queue.decide("six", "rejected", "alice")
    assert (entry.state, entry.requests, entry.note) == ("rejected", (), "")
    assert queue.is_rejected("six")


def test_asking_again_does_not_reopen_a_decided_package(queue):
    queue.ask("six", six_for_app())
    queue.decide("six", "rejected", "alice", note="unmaintained")
    entry = queue.ask("six", six_for_app(by="lib==1.0", requirement="six"))
    assert (entry.state, entry.decided_by, entry.note) == ("rejected", "alice", "unmaintained")
    assert len(entry.requests) == 2


def test_nothing_asked_nothing_decided(queue):
    assert queue.entries() == [] and queue.waiting() == []
    assert queue.get("six") is None
    assert not queue.is_approved("six") and not queue.is_rejected("six")
    assert not queue.folder.exists()  # reading writes nothing


# -- waiting jobs ---------------------------------------------------------------------------------
def test_a_waiting_job_reads_back_equal(queue):
    job = waiting_job()
    queue.wait(job)
    (back,) = ReviewQueue(queue.folder.parent).waiting()
    assert back == job
    assert back.waiting_for == ("six",)  # a tuple again, not JSON's list
    assert back.pin == "app==2.0"


def test_waiting_again_for_the_same_version_and_target_replaces_the_earlier_job(queue):
    queue.wait(waiting_job("job-1"))
    queue.wait(waiting_job("job-2", version="2.1"))
    queue.wait(waiting_job("job-3", target="debian13-py313"))
    queue.wait(waiting_job("job-4"))
    assert sorted(j.job_id for j in queue.waiting()) == ["job-2", "job-3", "job-4"]


def test_a_job_done_waiting_leaves_the_others(queue):
    queue.wait(waiting_job("job-1"))
    queue.wait(waiting_job("job-2", version="2.1"))
    queue.done_waiting(waiting_job("job-1"))
    assert [j.job_id for j in queue.waiting()] == ["job-2"]


# -- the files ------------------------------------------------------------------------------------
def test_every_write_leaves_only_the_two_files(queue):
    queue.ask("six", six_for_app())
    queue.decide("six", "approved", "alice")
    queue.wait(waiting_job())
    queue.done_waiting(waiting_job())
    assert left_in(queue.folder) == ["queue.json", "waiting.json"]
    assert json.loads(queue.queue_path.read_text())["packages"][0]["name"] == "six"
    assert json.loads(queue.waiting_path.read_text()) == []


def test_a_write_that_fails_leaves_the_old_file_whole_and_no_temporary_file(queue, monkeypatch):
    import mirror_builder.files

    queue.ask("six", six_for_app())
    queue.wait(waiting_job())
    before = {p: p.read_bytes() for p in (queue.queue_path, queue.waiting_path)}

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mirror_builder.files.os, "replace", disk_full)
    with pytest.raises(OSError):
        queue.decide("six", "approved", "alice")
    with pytest.raises(OSError):
        queue.wait(waiting_job("job-2", version="2.1"))
    monkeypatch.undo()

    assert {p: p.read_bytes() for p in before} == before
    assert left_in(queue.folder) == ["queue.json", "waiting.json"]
    assert queue.get("six").state == "pending"


@pytest.mark.parametrize("text", [
    "{not json",
    "[]",
    '{"packages": [{"name": "six"}]}',
    '{"packages": [{"name": "six", "state": "pending", "first_seen": "x",'
    ' "requests": [{"who": 1}]}]}',
    "\xff\xfe",
], ids=["not-json", "not-an-object", "no-state", "bad-request", "not-utf8"])
def test_a_damaged_queue_file_is_an_error_naming_it(queue, text):
    queue.folder.mkdir(parents=True)
    queue.queue_path.write_bytes(text.encode("latin-1"))
    for read in (queue.entries, lambda: queue.get("six"), lambda: queue.is_approved("six"),
                 lambda: queue.ask("six", six_for_app())):
        with pytest.raises(MirrorBuilderError, match=unreadable(queue.queue_path)):
            read()
    assert queue.queue_path.read_bytes() == text.encode("latin-1")  # not overwritten


@pytest.mark.parametrize("text", [
    "{not json", '{"job_id": "x"}', '[{"job_id": "x"}]', "[1]",
], ids=["not-json", "not-a-list", "missing-fields", "not-an-object"])
def test_a_damaged_waiting_file_is_an_error_naming_it(queue, text):
    queue.folder.mkdir(parents=True)
    queue.waiting_path.write_text(text)
    for read in (queue.waiting, lambda: queue.wait(waiting_job())):
        with pytest.raises(MirrorBuilderError, match=unreadable(queue.waiting_path)):
            read()
    assert queue.waiting_path.read_text() == text


def test_an_unknown_state_in_the_queue_file_is_an_error_naming_it(queue):
    queue.ask("six", six_for_app())
    document = json.loads(queue.queue_path.read_text())
    document["packages"][0]["state"] = "aproved"
    queue.queue_path.write_text(json.dumps(document))
    with pytest.raises(MirrorBuilderError, match=unreadable(queue.queue_path) + ".*aproved"):
        queue.is_approved("six")

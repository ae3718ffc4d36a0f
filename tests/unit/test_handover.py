"""A build container that tests its own wheel hands the wheel over first: the host has the build's
result and a copy of the wheel while the container still runs the test, and the test's result
comes when the container ends. Played here by a fake podman that does what the driver does."""

import dataclasses
import json
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import pytest

from mirror_builder.build.builder import Builder
from mirror_builder.build.request import (BuildEnvironment, BuildRequest, FileRef, Runtime,
                                          SmokePlan, SourceInputs)
from mirror_builder.config.settings import BuildSettings
from mirror_builder.errors import BuildError
from mirror_builder.prepare.buildsystem import BuildSystem
from mirror_builder.sandbox.imagenames import ImageRef
from mirror_builder.build import handover
from mirror_builder.sandbox import filewait, smokerun
from mirror_builder.sandbox.podman import RunResult
from test_wheelcheck import make_wheel

UID_MAP = "0 100000 65536"
WHEEL = "demo-1.0-py3-none-any.whl"


class DriverPodman:
    """Runs "the container" as the driver would with a smoke plan: result, wheel, hand-over
    marker; then, once the host says taken, its test (after `test_ends` is set)."""

    def __init__(self, tmp_path: Path, after_taken=None, hand_over=True,
                 writes_result=True) -> None:
        self.tmp_path = tmp_path
        self.writes_result = writes_result
        self.after_taken = after_taken or (lambda out: None)
        self.hand_over = hand_over
        self.test_ends = threading.Event()
        self.taken_seen = threading.Event()
        # Set: the container ends as soon as its result is written; cleared: only once set.
        self.container_ends = threading.Event()
        self.container_ends.set()

    def run(self, spec, log_path, on_started=None, started=None):
        mounts = {m.target: m.source for m in spec.mounts}
        out, job = mounts["/out"], mounts["/job"]
        on_started(UID_MAP, UID_MAP, {"create": 0.01, "start": 0.01})
        (out / "dist").mkdir()
        make_wheel(out / "dist")
        (out / "result.json").write_text(json.dumps({
            "status": "built", "wheel": WHEEL, "freeze": "", "timings": {"driver": 0.1},
            "user_namespace": {"uid_map": UID_MAP, "gid_map": UID_MAP}}))
        if not self.hand_over:
            return RunResult(0, False, 0.5, uid_map=UID_MAP, gid_map=UID_MAP)
        (out / "handed-over").write_text("{}")
        deadline = time.monotonic() + 10
        while not (job / "taken").exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        self.taken_seen.set()
        self.after_taken(out)
        self.test_ends.wait(10)
        if self.writes_result:
            (out / "smoke.json").write_text(json.dumps({
                "status": "passed", "imports": {"demo": None}, "freeze": ["demo==1.0"],
                "imported": ["demo"], "error": "", "seconds": 0.2}))
        self.container_ends.wait(10)
        return RunResult(0, False, 1.0, uid_map=UID_MAP, gid_map=UID_MAP)


def request(tmp_path: Path) -> BuildRequest:
    sdist = tmp_path / "demo-1.0.tar.gz"
    sdist.write_bytes(b"")
    return BuildRequest(
        source=SourceInputs("demo", "1.0", FileRef(sdist, "a" * 64), tmp_path),
        build_system=BuildSystem((), "setuptools.build_meta", ()),
        env=BuildEnvironment(()),
        runtime=Runtime(ImageRef("localhost/img:1", "sha256:1", "base", "Containerfile",
                                 "d" * 64, "bookworm-x86_64"), BuildSettings()),
        log_path=tmp_path / "logs" / "demo-1.0.log", smoke=SmokePlan((), None))


def builder(tmp_path: Path, podman: DriverPodman) -> Builder:
    return Builder(podman, tmp_path / "driver", tmp_path / "work")


def test_the_host_has_the_wheel_while_the_container_still_tests_it(tmp_path):
    podman = DriverPodman(tmp_path)
    result = builder(tmp_path, podman).build(request(tmp_path))
    assert result.status == "built" and result.wheel.read_bytes().startswith(b"PK")
    assert isinstance(result.smoke, Future) and not result.smoke.done()
    podman.test_ends.set()
    tested = result.smoke.result(timeout=10)
    assert (tested.status, tested.container, tested.wheel) == ("passed", "build", WHEEL)
    assert result.user_namespace == {"uid_map": UID_MAP, "gid_map": UID_MAP}


def test_the_test_gives_its_slot_back_once_its_result_is_written_before_the_container_ends(
        tmp_path):
    """Podman sees a container go 50-100 ms after its driver has written the result: the build
    slot need not wait for that, but the result (and the log) is read only after it."""
    podman = DriverPodman(tmp_path)
    podman.container_ends.clear()
    result = builder(tmp_path, podman).build(request(tmp_path))
    assert not result.tested.done()

    podman.test_ends.set()
    result.tested.result(timeout=10)

    assert not result.smoke.done()  # the container has not ended yet
    podman.container_ends.set()
    assert result.smoke.result(timeout=10).status == "passed"


def test_a_container_that_ends_without_a_result_is_over_at_its_end(tmp_path):
    podman = DriverPodman(tmp_path, writes_result=False)
    podman.container_ends.clear()
    podman.test_ends.set()
    result = builder(tmp_path, podman).build(request(tmp_path))
    assert podman.taken_seen.wait(10)
    time.sleep(0.05)
    assert not result.tested.done()

    podman.container_ends.set()

    result.tested.result(timeout=10)
    assert result.smoke.result(timeout=10) is None  # tested again in a container of its own


def test_a_result_file_the_build_left_is_gone_before_the_hand_over(tmp_path, monkeypatch):
    """The host takes a result file's appearance as the end of the test: the driver removes
    one the build wrote before it hands the wheel over."""
    monkeypatch.setattr(smokerun, "stop_leftovers", lambda: None)  # it kills every process
    monkeypatch.setitem(sys.modules, "mb_filewait", filewait)  # its name in the container
    monkeypatch.setattr(smokerun, "TAKEN", str(tmp_path / "taken"))
    (tmp_path / "taken").write_text("skip")
    out = tmp_path / "out"
    out.mkdir()
    (out / "smoke.json").write_text('{"status": "passed"}')  # the build's own
    seen = {}

    def write_json(path, data):
        if path.endswith("handed-over"):
            seen["left at the hand-over"] = (out / "smoke.json").exists()
        Path(path).write_text(json.dumps(data))

    smokerun.test_after_hand_over({"out": str(out), "smoke": {}}, {"status": "built"},
                                  str(out / "result.json"), write_json)

    assert seen == {"left at the hand-over": False}
    assert json.loads((out / "smoke.json").read_text())["status"] == "skipped"


def test_what_the_container_does_to_the_wheel_after_the_hand_over_is_not_what_the_host_has(
        tmp_path):
    """The host copied the wheel before it let the driver go on; a test (package code) that
    rewrites the file afterwards changes nothing the host keeps."""
    def tamper(out):
        (out / "dist" / WHEEL).write_bytes(b"rewritten by the package's own import")

    podman = DriverPodman(tmp_path, after_taken=tamper)
    result = builder(tmp_path, podman).build(request(tmp_path))
    assert podman.taken_seen.wait(10)
    podman.test_ends.set()
    result.smoke.result(timeout=10)
    assert result.wheel.read_bytes().startswith(b"PK")


def test_a_wheel_that_fails_its_checks_after_the_hand_over_fails_the_build_and_frees_the_driver(
        tmp_path):
    class Broken(DriverPodman):
        def run(self, spec, log_path, on_started=None, started=None):
            self.test_ends.set()
            return super().run(spec, log_path, on_started)

    podman = Broken(tmp_path)
    bad = dataclasses.replace(request(tmp_path), source=dataclasses.replace(
        request(tmp_path).source, name="other"))
    with pytest.raises(BuildError, match="wheel was rejected"):
        builder(tmp_path, podman).build(bad)
    assert podman.taken_seen.wait(10)  # the driver was let go all the same
    assert not list((tmp_path / "work").glob("tmp*/" + WHEEL))  # no copy left behind


def test_a_container_that_ends_without_handing_over_is_read_as_before(tmp_path):
    podman = DriverPodman(tmp_path, hand_over=False)
    result = builder(tmp_path, podman).build(request(tmp_path))
    assert result.status == "built" and result.smoke is None


# -- a container that waits for its closure --------------------------------------------------
def waiting(tmp_path: Path) -> BuildRequest:
    return dataclasses.replace(request(tmp_path), smoke=SmokePlan((), None, wait=True))


def test_a_waiting_container_gets_its_closure_in_its_job_folder_before_it_is_let_go(tmp_path):
    dep = tmp_path / "dep-1.0-py3-none-any.whl"
    dep.write_bytes(b"PK dep")
    given, seen = threading.Event(), {}

    def closure_later():
        given.wait(10)
        return (FileRef(dep, "b" * 64),), lambda: seen.setdefault("released", time.monotonic())

    def look(out):
        seen["closure"] = sorted(p.name for p in next(out.parent.glob("job-*")).glob("closure/*"))

    podman = DriverPodman(tmp_path, after_taken=look)
    podman.container_ends.clear()
    result = builder(tmp_path, podman).build(waiting(tmp_path), closure_later)

    assert result.status == "built" and not podman.taken_seen.wait(0.2)  # it waits ...
    given.set()
    assert podman.taken_seen.wait(10)  # ... until its closure is there
    podman.test_ends.set()
    result.tested.result(timeout=10)
    assert "released" in seen  # its slot let go once the result is written ...
    assert not result.smoke.done()  # ... while the container still ends
    podman.container_ends.set()
    tested = result.smoke.result(timeout=10)
    assert seen["closure"] == ["dep-1.0-py3-none-any.whl"]  # as the driver was let go
    assert tested.status == "passed"


def answer_to_a_waiting_container(tmp_path, *closure_later) -> str:
    """What the host wrote as TAKEN for a waiting build (given closure_later, if any), as the
    driver read it once let go."""
    answers, answered = {}, threading.Event()

    def read_answer(out):
        answers["taken"] = next(out.parent.glob("job-*")).joinpath("taken").read_text()
        answered.set()

    podman = DriverPodman(tmp_path, after_taken=read_answer)
    result = builder(tmp_path, podman).build(waiting(tmp_path), *closure_later)
    assert answered.wait(10)
    podman.test_ends.set()
    result.smoke.result(timeout=10)
    return answers["taken"]


def test_a_waiting_container_is_told_to_skip_when_the_run_will_not_build_its_closure(tmp_path):
    assert answer_to_a_waiting_container(tmp_path, lambda: None) == "skip"


def test_a_waiting_container_whose_wheel_fails_its_checks_is_told_to_skip_at_once(tmp_path):
    class Broken(DriverPodman):
        def run(self, spec, log_path, on_started=None, started=None):
            self.test_ends.set()
            return super().run(spec, log_path, on_started)

    never = threading.Event()
    podman = Broken(tmp_path)
    bad = dataclasses.replace(waiting(tmp_path), source=dataclasses.replace(
        request(tmp_path).source, name="other"))
    with pytest.raises(BuildError, match="wheel was rejected"):
        builder(tmp_path, podman).build(bad, lambda: (never.wait(10), None)[1])
    assert podman.taken_seen.wait(2)  # not after the closure wait's 10 s


def test_a_waiting_plan_with_nobody_to_give_it_the_closure_skips_its_test(tmp_path):
    assert answer_to_a_waiting_container(tmp_path) == "skip"


def test_the_host_sleeps_on_a_link_the_build_planted_as_the_marker(tmp_path, monkeypatch):
    """The marker must be a regular file the driver wrote: a link named handed-over is not it,
    and the host neither takes it nor spins on it while the container runs on."""
    looks = []
    real = handover._is_file
    monkeypatch.setattr(handover, "_is_file", lambda path: looks.append(path) or real(path))

    class Planting(DriverPodman):
        def run(self, spec, log_path, on_started=None, started=None):
            mounts = {m.target: m.source for m in spec.mounts}
            on_started(UID_MAP, UID_MAP, {"create": 0.01, "start": 0.01})
            (mounts["/out"] / "handed-over").symlink_to("result.json")
            time.sleep(0.5)
            return RunResult(1, False, 0.6, uid_map=UID_MAP, gid_map=UID_MAP)

    with pytest.raises(BuildError):
        builder(tmp_path, Planting(tmp_path)).build(request(tmp_path))

    assert len(looks) < 40  # woken by changes or every 50 ms, not spinning over 0.5 s

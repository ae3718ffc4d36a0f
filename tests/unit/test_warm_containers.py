"""Build containers started before their build (build/warm.py): at most so many wait for each
set of container settings, a build takes one that still waits, and those nobody takes are
removed with the run."""

import os
import threading
import time

from mirror_builder.build import warm as warm_module
from mirror_builder.build.warm import WarmContainers, link_into
from mirror_builder.sandbox.podman import RunSpec


class FakeStarted:
    def __init__(self, spec):
        self.spec = spec
        self.taken_at = None

    def taken(self):
        self.taken_at = time.monotonic()


class FakePodman:
    """Starts containers at once, or after `gate` is set; records what it discarded."""

    def __init__(self, fail=False):
        self.fail = fail
        self.gate = threading.Event()
        self.gate.set()
        self.started = []
        self.discarded = []

    def start(self, spec):
        self.gate.wait(5)
        if self.fail:
            raise OSError("podman is gone")
        started = FakeStarted(spec)
        self.started.append(started)
        return started

    def discard(self, started):
        self.discarded.append(started)


def spec_for(folders):
    return RunSpec(image="img", command=["wait"], mounts=())


def settle(pool):
    deadline = time.monotonic() + 5
    while any(pool._starting.values()) and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_build_takes_the_container_offered_for_its_settings_and_only_once(tmp_path):
    podman = FakePodman()
    pool = WarmContainers(podman, tmp_path, waiting=lambda started: True)
    pool.offer("bookworm", spec_for)
    settle(pool)

    assert pool.take("trixie") is None  # made with other settings
    warm = pool.take("bookworm")
    assert warm is not None and warm.started.taken_at is not None
    assert warm.folders.job.is_dir() and not (warm.folders.job / "job.json").exists()
    assert pool.take("bookworm") is None


def test_no_more_than_most_wait_or_start_at_once(tmp_path):
    podman = FakePodman()
    podman.gate.clear()  # starts take a while
    pool = WarmContainers(podman, tmp_path, most=1, waiting=lambda started: True)
    pool.offer("bookworm", spec_for)
    pool.offer("bookworm", spec_for)  # one is starting already
    podman.gate.set()
    settle(pool)
    pool.offer("bookworm", spec_for)  # one waits already
    settle(pool)

    assert len(podman.started) == 1


def test_one_whose_driver_stopped_waiting_or_that_is_too_old_is_removed_not_taken(
        tmp_path, monkeypatch):
    podman = FakePodman()
    alive = {"answer": False}
    pool = WarmContainers(podman, tmp_path, most=2, waiting=lambda started: alive["answer"])
    pool.offer("bookworm", spec_for)
    settle(pool)
    assert pool.take("bookworm") is None and len(podman.discarded) == 1

    alive["answer"] = True
    pool.offer("bookworm", spec_for)
    settle(pool)
    monkeypatch.setattr(warm_module, "MAX_AGE_SECONDS", 0.0)
    assert pool.take("bookworm") is None and len(podman.discarded) == 2


def test_those_nobody_took_are_removed_when_the_run_closes_it(tmp_path):
    podman = FakePodman()
    pool = WarmContainers(podman, tmp_path, most=2, waiting=lambda started: True)
    pool.offer("bookworm", spec_for)
    pool.offer("trixie", spec_for)
    settle(pool)
    pool.close()

    assert len(podman.discarded) == 2 and pool.take("bookworm") is None


def test_a_container_that_cannot_be_started_leaves_nothing_and_a_build_starts_its_own(tmp_path):
    podman = FakePodman(fail=True)
    pool = WarmContainers(podman, tmp_path, waiting=lambda started: True)
    pool.offer("bookworm", spec_for)
    settle(pool)

    assert pool.take("bookworm") is None
    assert list(tmp_path.iterdir()) == []  # its folders went too
    podman.fail = False
    pool.offer("bookworm", spec_for)  # and the next offer tries again
    settle(pool)
    assert pool.take("bookworm") is not None


def test_what_a_build_is_given_is_linked_not_copied(tmp_path):
    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "__init__.py").write_text("x = 1\n")
    (tree / "tool").symlink_to("pkg")
    wheel = tmp_path / "dep-1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK wheel")
    job = tmp_path / "job"
    job.mkdir()

    link_into(tree, job / "src")
    link_into(wheel, job / "dep-1.0-py3-none-any.whl")

    assert os.path.samefile(tree / "pkg" / "__init__.py", job / "src" / "pkg" / "__init__.py")
    assert (job / "src" / "tool").is_symlink()
    assert os.path.samefile(wheel, job / "dep-1.0-py3-none-any.whl")


def test_a_container_for_the_next_build_is_started_only_while_more_builds_may_come(tmp_path):
    import dataclasses

    from mirror_builder.build.jobspec import BuildJobs, container_settings
    from test_verify_rebuild import a_request

    class Recording:
        def __init__(self):
            self.offers = []

        def offer(self, key, spec_for):
            self.offers.append((key, spec_for(JobFoldersStandIn(tmp_path))))

    class JobFoldersStandIn:
        def __init__(self, root):
            self.job, self.out, self.scratch = root / "job", root / "out", root / "scratch"

    jobs, warm = BuildJobs(tmp_path / "driver", tmp_path / "work"), Recording()
    request = a_request(tmp_path)
    settings = container_settings(request)
    jobs.offer_warm(warm, dataclasses.replace(request, more_to_come=False), settings)()
    assert warm.offers == []

    jobs.offer_warm(warm, request, settings)()
    ((key, spec),) = warm.offers
    assert spec.command[-2:] == ["--wait", "/job/job.json"]
    assert {m.target for m in spec.mounts} == {"/job", "/mb", "/out", "/tmp"}
    assert dataclasses.replace(request, more_to_come=False).to_dict()["more_to_come"] is False


def test_a_small_build_environment_is_made_in_memory_and_a_large_one_on_disk(
        tmp_path, monkeypatch):
    import dataclasses
    import zipfile

    from mirror_builder.build import jobspec
    from mirror_builder.build.jobspec import BuildJobs, container_settings
    from mirror_builder.build.request import FileRef
    from mirror_builder.sandbox.jobfolders import JobFolders
    from test_verify_rebuild import a_request

    wheel = tmp_path / "dep-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("dep/__init__.py", "x" * 1000)
    request = a_request(tmp_path)
    request = dataclasses.replace(request, env=dataclasses.replace(
        request.env, wheels=(FileRef(wheel, "0" * 64),)))
    jobs = BuildJobs(tmp_path / "driver", tmp_path / "work")

    folders = JobFolders.create(tmp_path / "small", None)
    small = container_settings(request)
    targets = {t.target for t in jobs.spec(request, small, folders, [], ("true",)).tmpfs}
    assert targets == {"/tmp/mb-work/env", "/tmp/mb-test"}  # the environment's, the test's
    assert (folders.scratch / "mb-work" / "env").is_dir()  # there before podman gives it out

    monkeypatch.setattr(jobspec, "ENV_IN_MEMORY_BYTES", 999)
    large = container_settings(request)
    folders = JobFolders.create(tmp_path / "large", None)
    assert {t.target for t in jobs.spec(request, large, folders, [], ("true",)).tmpfs} == \
        {"/tmp/mb-test"}
    assert not (folders.scratch / "mb-work").exists()
    assert large.key != small.key  # their containers are not interchangeable

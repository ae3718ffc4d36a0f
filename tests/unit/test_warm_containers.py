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


def take_in_background(pool, key):
    """pool.take(key) on a thread of its own; the box holds its answer once it is done."""
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("warm", pool.take(key)))
    thread.start()
    return thread, box


def test_a_build_waits_for_the_container_being_started_rather_than_starting_its_own(tmp_path):
    podman = FakePodman()
    podman.gate.clear()  # the offered container is on its way up
    pool = WarmContainers(podman, tmp_path, waiting=lambda started: True)
    pool.offer("bookworm", spec_for)
    thread, box = take_in_background(pool, "bookworm")
    time.sleep(0.05)
    assert thread.is_alive()  # waiting for it, not gone to start one

    podman.gate.set()
    thread.join(5)

    assert box["warm"] is not None and box["warm"].started is podman.started[0]


def test_only_one_build_waits_for_each_container_being_started(tmp_path):
    podman = FakePodman()
    podman.gate.clear()
    pool = WarmContainers(podman, tmp_path, waiting=lambda started: True)
    pool.offer("bookworm", spec_for)
    first, _ = take_in_background(pool, "bookworm")
    time.sleep(0.05)

    assert pool.take("bookworm") is None  # the next build starts its own at once
    assert pool.take("trixie") is None  # and nothing of other settings is waited for
    podman.gate.set()
    first.join(5)


def test_a_build_waiting_for_a_container_that_fails_to_start_starts_its_own(tmp_path):
    podman = FakePodman(fail=True)
    podman.gate.clear()
    pool = WarmContainers(podman, tmp_path, waiting=lambda started: True)
    pool.offer("bookworm", spec_for)
    thread, box = take_in_background(pool, "bookworm")
    time.sleep(0.05)

    podman.gate.set()
    thread.join(5)

    assert not thread.is_alive() and box["warm"] is None


def test_a_start_that_hangs_is_waited_for_only_so_long(tmp_path, monkeypatch):
    monkeypatch.setattr(warm_module, "START_WAIT_SECONDS", 0.1)
    podman = FakePodman()
    podman.gate.clear()
    pool = WarmContainers(podman, tmp_path, waiting=lambda started: True)
    pool.offer("bookworm", spec_for)

    began = time.monotonic()
    assert pool.take("bookworm") is None
    assert time.monotonic() - began < 2
    podman.gate.set()
    settle(pool)


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


def test_a_small_build_is_done_in_memory_a_larger_source_keeps_only_its_environment_there(
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

    def tmpfs_of(settings, name):
        folders = JobFolders.create(tmp_path / name, None)
        mounted = {t.target: t.size for t in jobs.spec(request, settings, folders, [],
                                                       ("true",)).tmpfs}
        return mounted, folders.scratch

    # Small source, small environment: the whole work folder, a quarter of the memory limit
    # (8g here), at most 2 GiB; the environment is made in it.
    small = container_settings(request)
    mounted, scratch = tmpfs_of(small, "small")
    assert request.runtime.limits.memory == "8g"
    assert mounted == {"/tmp/mb-work": "2048m", "/tmp/mb-test": "512m"}
    assert (scratch / "mb-work").is_dir()  # there before podman gives it out

    # A source larger than that: only the environment in memory.
    monkeypatch.setattr(jobspec, "SOURCE_IN_MEMORY_BYTES", 10)
    larger_source = container_settings(request)
    mounted, scratch = tmpfs_of(larger_source, "source")
    assert mounted == {"/tmp/mb-work/env": "512m", "/tmp/mb-test": "512m"}
    assert (scratch / "mb-work" / "env").is_dir()

    # A large environment: nothing of the build in memory; nor when told to build on disk.
    monkeypatch.setattr(jobspec, "ENV_IN_MEMORY_BYTES", 999)
    large = container_settings(request)
    assert tmpfs_of(large, "large")[0] == {"/tmp/mb-test": "512m"}
    assert not (tmpfs_of(large, "large2")[1] / "mb-work").exists()
    monkeypatch.undo()
    assert container_settings(request, on_disk=True).tmpfs == ()
    # Nor with build.in_memory false.
    off = dataclasses.replace(request, runtime=dataclasses.replace(
        request.runtime, limits=dataclasses.replace(request.runtime.limits, in_memory=False)))
    assert container_settings(off).tmpfs == ()
    # Their containers are not interchangeable.
    assert len({small.key, larger_source.key, large.key}) == 3


def test_the_work_folder_in_memory_is_a_share_of_the_memory_limit():
    from mirror_builder.build.jobspec import work_tmpfs_bytes

    assert work_tmpfs_bytes("1g") == 256 << 20
    assert work_tmpfs_bytes("64g") == 2 << 30
    assert work_tmpfs_bytes("") == 2 << 30  # no limit


def test_a_source_and_environment_that_would_fill_half_the_work_folder_stay_on_disk(tmp_path):
    import dataclasses

    from mirror_builder.build.jobspec import container_settings
    from test_verify_rebuild import a_request

    request = a_request(tmp_path)
    (request.source.tree / "data.bin").write_bytes(b"\0" * (300 << 10))
    tight = dataclasses.replace(request, runtime=dataclasses.replace(
        request.runtime, limits=dataclasses.replace(request.runtime.limits, memory="2m")))

    assert [t.target for t in container_settings(request).tmpfs] == ["/tmp/mb-work"]
    assert [t.target for t in container_settings(tight).tmpfs] == ["/tmp/mb-work/env"]

"""`mirror-builder update`, without podman or network: a fake upstream answers the Updater's
checks, and its jobs run through a real Bootstrapper over test_bootstrap's fake index and
builder (opened the way the CLI opens it: once per update, on first use, shared by its jobs)."""

from contextlib import nullcontext
from datetime import datetime, timedelta, timezone

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from mirror_builder.index.wheelindex import WheelIndex
from mirror_builder.jobs.log import JobLog
from mirror_builder.jobs.policy import Decision
from mirror_builder.provenance.store import RecordStore
from mirror_builder.jobs.review import ReviewQueue, WaitingJob
from mirror_builder.config.settings import load_settings
from mirror_builder.engine.updater import SharedBootstrapper, Updater, UpdateReport
from mirror_builder.resolve.pages import DistributionFile
from mirror_builder.resolve.upstream import ProjectCheck
from test_bootstrap import BASE_SETTINGS, TARGET, Package, make_bootstrapper

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=timezone.utc)
LONG_AGO = NOW - timedelta(days=30)  # older than the default cool-down of 3 days


class FakeUpstream:
    """What the Updater asks upstream, over the same {name: {version: Package}} that FakeIndex
    builds from. Each version has one sdist, uploaded at uploaded[(name, version)] (LONG_AGO when
    not given; None: the page does not say), yanked when (name, version) is in yanked (the value
    is upstream's reason, or None). check_project compares with its previous answer, as the real
    one compares with its cache."""

    def __init__(self, packages):
        self.packages = packages
        self.uploaded: dict[tuple[str, str], datetime | None] = {}
        self.yanked: dict[tuple[str, str], str | None] = {}
        self.times: dict[str, dict[Version, datetime]] = {}  # what release_times answers
        self.checked: list[str] = []
        self.release_times_asked: list[str] = []
        self._answered: dict[str, list[DistributionFile]] = {}

    def files(self, name):
        return [DistributionFile(
            f"{name}-{version}.tar.gz", f"https://example.invalid/{name}-{version}.tar.gz", None,
            upload_time=self.uploaded.get((name, version), LONG_AGO),
            yanked=(name, version) in self.yanked, yanked_reason=self.yanked.get((name, version)))
            for version in self.packages.get(name, {})]

    def check_project(self, name):
        self.checked.append(name)
        if name not in self.packages:
            return ProjectCheck(name=name, files=[], changed=True, status="missing", serial=None)
        files = self.files(name)
        previous = self._answered.get(name)
        self._answered[name] = files
        if previous is None:
            return ProjectCheck(name=name, files=files, changed=True, status="new", serial=None)
        changed = files != previous
        return ProjectCheck(name=name, files=files, changed=changed,
                            status="changed" if changed else "unchanged", serial=None)

    def release_times(self, name):
        self.release_times_asked.append(name)
        return self.times.get(name, {})


class Pipelines:
    """Updater's bootstrapper_for, as the CLI makes it (SharedBootstrapper: a pipeline opened on
    first use and shared by the update's jobs), over a real Bootstrapper with the review queue.
    Counts what it was asked: every use (with its JobPolicy) and every pipeline opened (what
    starts podman and measures the image in real life)."""

    def __init__(self, mirror):
        self.mirror = mirror
        self.policies = []
        self.opened = 0
        self.builders = []

    def factory(self):
        def open_pipeline():
            self.opened += 1
            bootstrapper, builder = make_bootstrapper(
                self.mirror.root, self.mirror.packages, review=ReviewQueue(self.mirror.output),
                settings_yaml=self.mirror.settings_yaml)
            self.builders.append(builder)
            return nullcontext(bootstrapper)

        shared = SharedBootstrapper(open_pipeline)

        def bootstrapper_for(policy):
            self.policies.append(policy)
            return shared.for_policy(policy)

        return bootstrapper_for, shared

    def forget(self):
        """Count from now on."""
        self.policies, self.opened, self.builders = [], 0, []

    @property
    def builds(self):
        return [name for builder in self.builders for name, _ in builder.builds]


class Mirror:
    """An output directory kept current by update: bootstrap() fills it as `mirror-builder
    bootstrap` does; each update() is one `mirror-builder update`."""

    def __init__(self, root):
        self.root = root
        self.output = root / "out"
        self.packages: dict[str, dict[str, Package]] = {}
        self.upstream = FakeUpstream(self.packages)
        self.settings_yaml = ""  # added to settings.yaml (carry:, update:)
        self.pipelines = Pipelines(self)
        self.now = NOW
        self.index = WheelIndex(self.output)
        self.queue = ReviewQueue(self.output)
        self.jobs = JobLog(self.output)
        self.overrides = root / "overrides"

    def release(self, name, version, package=None, uploaded=LONG_AGO):
        self.packages.setdefault(name, {})[version] = package or Package()
        self.upstream.uploaded[(name, version)] = uploaded

    def bootstrap(self, *requirements):
        bootstrapper, _ = make_bootstrapper(self.root, self.packages)
        bootstrapper.run([Requirement(r) for r in requirements])
        self.bootstrapped = len(self.jobs.read())

    def updater(self):
        settings = self.root / "settings.yaml"
        settings.write_text(BASE_SETTINGS + self.settings_yaml)  # as the pipelines' bootstrappers
        bootstrapper_for, shared = self.pipelines.factory()
        updater = Updater(settings=load_settings(settings),
                          upstream=self.upstream, index=self.index, target=TARGET.name,
                          bootstrapper_for=bootstrapper_for, now=lambda: self.now)
        updater.close = shared.close
        return updater

    def update(self, names=None, dry_run=False):
        updater = self.updater()
        try:
            return updater.run(names, dry_run=dry_run)
        finally:
            updater.close()

    def resume(self):
        """What `review approve NAME` / `review reject NAME` do once the decision is made."""
        updater, report = self.updater(), UpdateReport()
        try:
            updater.resume_waiting(report)
        finally:
            updater.close()
        return report

    def new_jobs(self):
        """(package, version, trigger, result) of every job since the bootstrap."""
        return [(r.job.package, r.job.version, r.job.trigger, r.result)
                for r in self.jobs.read()[self.bootstrapped:]]


@pytest.fixture
def mirror(tmp_path):
    """A mirror that carries app 1.0 (bootstrapped), which upstream released long ago."""
    mirror = Mirror(tmp_path)
    mirror.release("app", "1.0")
    mirror.bootstrap("app==1.0")
    return mirror


# -- new releases ---------------------------------------------------------------------------------
def test_a_new_release_the_policy_admits_is_built_by_exactly_one_job(mirror):
    mirror.release("app", "2.0")
    report = mirror.update()

    assert report.built == ["app==2.0"]
    assert report.decisions["app"] == [
        Decision(Version("2.0"), True, "new release, newer than 1.0"),
        Decision(Version("1.0"), False, "already carried")]
    assert mirror.pipelines.builds == ["app"]
    assert mirror.new_jobs() == [("app", "2.0", "upstream-release", "built")]
    (job,) = mirror.jobs.read()[mirror.bootstrapped:]
    assert job.job.detail == "new upstream release 2.0 (new release, newer than 1.0)"
    assert mirror.index.is_listed("app", "app-2.0-py3-none-any.whl")
    assert (report.failed, report.waiting, report.yanked, report.rebuilt) == ({}, {}, [], {})


def test_a_release_younger_than_the_cool_down_waits_until_it_is_old_enough(mirror):
    mirror.release("app", "2.0", uploaded=NOW - timedelta(hours=1))
    report = mirror.update()

    assert report.built == []
    assert report.decisions["app"][0] == Decision(
        Version("2.0"), False, "too fresh: released 1 h ago, cool-down 3 d")
    assert mirror.new_jobs() == [] and mirror.pipelines.builds == []

    mirror.now = NOW + timedelta(days=3)  # three days later, by cron
    assert mirror.update().built == ["app==2.0"]


def test_a_release_whose_page_gives_no_upload_time_is_dated_by_release_times(mirror):
    mirror.release("app", "2.0", uploaded=None)
    mirror.upstream.times["app"] = {Version("1.0"): LONG_AGO,
                                    Version("2.0"): NOW - timedelta(days=5)}
    report = mirror.update()
    assert report.built == ["app==2.0"]
    assert mirror.upstream.release_times_asked == ["app"]


def test_a_release_whose_time_nobody_gives_is_held_back_by_the_cool_down(mirror):
    mirror.release("app", "2.0", uploaded=None)
    report = mirror.update()
    assert report.built == []
    assert report.decisions["app"][0].reason.startswith("release time unknown")


def test_every_carried_project_is_checked_once_and_an_unchanged_one_counts_as_unchanged(mirror):
    first = mirror.update()
    assert (first.checked, first.unchanged) == (1, 0)  # first look
    second = mirror.update()
    assert (second.checked, second.unchanged) == (1, 1)
    assert mirror.upstream.checked == ["app", "app"]
    assert mirror.upstream.release_times_asked == []  # the page gave every upload time


def test_a_second_update_with_nothing_new_runs_no_job(mirror):
    mirror.release("app", "2.0")
    mirror.update()
    built = len(mirror.jobs.read())

    report = mirror.update()
    assert (report.built, report.failed, report.waiting, report.rebuilt) == ([], {}, {}, {})
    assert len(mirror.jobs.read()) == built
    assert mirror.pipelines.builds == ["app"]  # the first update's build only


def test_a_second_update_with_nothing_new_never_opens_the_bootstrapper(mirror):
    mirror.release("app", "2.0")
    mirror.update()
    mirror.pipelines.forget()

    mirror.update()
    assert mirror.pipelines.policies == []  # the factory was never called
    assert mirror.pipelines.opened == 0


def test_a_dry_run_decides_but_builds_yanks_and_opens_nothing(mirror):
    mirror.release("app", "2.0")
    mirror.upstream.yanked[("app", "1.0")] = "broken"
    report = mirror.update(dry_run=True)
    assert report.decisions["app"][0] == Decision(Version("2.0"), True,
                                                  "new release, newer than 1.0")
    assert (report.built, report.yanked) == ([], [])
    assert mirror.pipelines.policies == [] and mirror.new_jobs() == []
    assert mirror.index.entries("app")[0]["yanked"] is False


def test_a_new_release_that_fails_to_build_is_a_failed_job(mirror):
    mirror.release("app", "2.0", Package(fails=True))
    report = mirror.update()
    assert report.built == []
    assert "app==2.0: the compiler said no" in report.failed["app==2.0"]
    assert mirror.new_jobs() == [("app", "2.0", "upstream-release", "failed")]


# -- yanks ----------------------------------------------------------------------------------------
def test_a_release_yanked_upstream_is_yanked_in_our_index_with_the_reason_and_kept(mirror):
    mirror.upstream.yanked[("app", "1.0")] = "broken on Python 3.13"
    wheel = mirror.output / "files" / "app" / "app-1.0-py3-none-any.whl"
    before = wheel.read_bytes()

    report = mirror.update()

    assert report.yanked == ["app-1.0-py3-none-any.whl"]
    (entry,) = mirror.index.entries("app")
    assert entry["yanked"] == "yanked upstream: broken on Python 3.13"
    assert wheel.read_bytes() == before  # nothing deleted
    assert RecordStore(mirror.output).for_version("app", Version("1.0"))
    assert mirror.new_jobs() == []
    assert mirror.update().yanked == []  # yanked once


def test_a_release_yanked_upstream_without_a_reason_says_so(mirror):
    mirror.upstream.yanked[("app", "1.0")] = None
    mirror.update()
    assert mirror.index.entries("app")[0]["yanked"] == "yanked upstream: no reason given"


def test_a_yanked_release_we_do_not_carry_is_not_built(mirror):
    mirror.release("app", "2.0")
    mirror.upstream.yanked[("app", "2.0")] = "oops"
    report = mirror.update()
    assert (report.built, report.yanked) == ([], [])
    assert [d.version for d in report.decisions["app"]] == [Version("1.0")]


def test_an_upstream_yank_yanks_and_reports_every_rebuild_of_that_version(mirror):
    from mirror_builder.jobs.triggers import RebuildRequest

    bootstrapper, _ = make_bootstrapper(mirror.root, mirror.packages)
    bootstrapper.rebuild("app", Version("1.0"), RebuildRequest(reason="test"))
    mirror.upstream.yanked[("app", "1.0")] = "broken"

    report = mirror.update()

    assert {e["filename"]: e["yanked"] for e in mirror.index.entries("app")} == {
        "app-1.0-py3-none-any.whl": "yanked upstream: broken",
        "app-1.0-1-py3-none-any.whl": "yanked upstream: broken"}
    assert sorted(report.yanked) == ["app-1.0-1-py3-none-any.whl", "app-1.0-py3-none-any.whl"]


# -- review ---------------------------------------------------------------------------------------
NEW_DEPENDENCY = {
    "install": Package(requires_dist=["six>=1"]),
    "build": Package(build_requires=["six>=1"]),
}


@pytest.fixture(params=sorted(NEW_DEPENDENCY))
def waiting(mirror, request):
    """app 2.0, released upstream, needs six (to install, or to build), which we do not carry:
    the update's job for it waits for review."""
    mirror.release("app", "2.0", NEW_DEPENDENCY[request.param])
    mirror.release("six", "1.17.0")
    mirror.report = mirror.update()
    mirror.built_by_update = mirror.pipelines.builds
    mirror.pipelines.forget()
    return mirror


def test_a_job_that_needs_a_package_we_do_not_carry_waits_for_review(waiting):
    report = waiting.report
    assert waiting.built_by_update == []  # stopped before anything was built
    assert report.waiting == {"app==2.0": ["six"]}
    assert (report.built, report.failed) == ([], {})
    assert waiting.index.entries("six") == [] and len(waiting.index.entries("app")) == 1

    (job,) = waiting.queue.waiting()
    assert job == WaitingJob(job.job_id, "upstream-release",
                             "new upstream release 2.0 (new release, newer than 1.0)",
                             "app", "2.0", TARGET.name, ("six",))

    entry = waiting.queue.get("six")
    assert entry.state == "pending"
    (asked,) = entry.requests
    assert (asked.requirement, asked.chain, asked.job) == ("six>=1", ("app==2.0",), job.job_id)

    (logged,) = [r for r in waiting.jobs.read() if r.result == "waiting-review"]  # once
    assert (logged.job.id, logged.job.package, logged.job.version) == (job.job_id, "app", "2.0")
    assert logged.job.trigger == "upstream-release"
    assert logged.waiting_for == ("six",)
    assert "six" in logged.message
    assert waiting.new_jobs() == [("app", "2.0", "upstream-release", "waiting-review")]


def test_the_review_queue_names_the_package_that_needs_it(waiting):
    (asked,) = waiting.queue.get("six").requests
    assert (asked.by, asked.requirement) == ("app==2.0", "six>=1")


def test_an_update_while_a_job_waits_for_review_does_not_start_it_again(waiting):
    (before,) = waiting.queue.waiting()
    report = waiting.update()

    assert report.waiting == {"app==2.0": ["six"]}
    assert waiting.queue.waiting() == [before]
    waited = [r.job.id for r in waiting.jobs.read() if r.result == "waiting-review"]
    assert waited == [before.job_id]


def test_after_approval_the_waiting_job_runs_again_and_builds(waiting):
    waiting.queue.decide("six", "approved", "alice")
    report = waiting.resume()

    assert report.resumed == ["app==2.0"]
    assert report.built == ["app==2.0"]
    assert waiting.queue.waiting() == []
    assert sorted(waiting.pipelines.builds) == ["app", "six"]
    assert sorted(waiting.new_jobs()[1:]) == [("app", "2.0", "upstream-release", "built"),
                                              ("six", "1.17.0", "approved", "built")]
    app = next(r.job for r in reversed(waiting.jobs.read()) if r.job.package == "app")
    assert app.detail == ("new upstream release 2.0 (new release, newer than 1.0); "
                          "resumed after review")
    assert waiting.index.is_listed("app", "app-2.0-py3-none-any.whl")


def test_a_waiting_job_does_not_resume_before_every_package_it_waits_for_is_approved(waiting):
    report = waiting.resume()
    assert (report.resumed, report.built) == ([], [])
    assert len(waiting.queue.waiting()) == 1
    assert waiting.pipelines.policies == []


def test_after_rejection_the_waiting_job_ends_denied(waiting):
    waiting.queue.decide("six", "rejected", "alice", note="unmaintained")
    report = waiting.resume()

    assert report.failed == {"app==2.0": "needs six, rejected in review"}
    assert (report.resumed, report.built) == ([], [])
    assert waiting.queue.waiting() == []
    assert waiting.new_jobs()[1:] == [("app", "2.0", "upstream-release", "denied")]
    assert waiting.jobs.read()[-1].message == "needs six, rejected in review"
    assert waiting.pipelines.opened == 0  # nothing to build


def test_a_job_whose_dependency_waits_for_review_is_the_job_that_waits(mirror):
    mirror.release("lib", "1.0")
    mirror.bootstrap("lib==1.0")
    mirror.release("app", "2.0", Package(requires_dist=["lib>=2"]))
    mirror.release("lib", "2.0", Package(build_requires=["newtool"]))  # carried: lib 1.0 is
    mirror.release("newtool", "1.0")

    report = mirror.update(["app"])

    assert report.waiting == {"app==2.0": ["newtool"]}
    (waiting_job,) = mirror.queue.waiting()
    assert waiting_job.pin == "app==2.0"
    logged = mirror.jobs.find(waiting_job.job_id)
    assert (logged.job.package, logged.job.version, logged.result) == (
        "app", "2.0", "waiting-review")
    (asked,) = mirror.queue.get("newtool").requests
    assert asked.job == waiting_job.job_id


def test_a_release_refused_by_the_deny_list_is_a_denied_job(mirror):
    deny = mirror.root / "deny.txt"
    deny.write_text("six\n")
    mirror.settings_yaml = f"carry: {{deny_list: {deny}}}\n"
    mirror.release("app", "2.0", Package(requires_dist=["six"]))
    mirror.release("six", "1.17.0")

    report = mirror.update()

    assert report.failed["app==2.0"].startswith(
        f"six==1.17.0: six is on the deny list ({deny}:1), so it cannot be built")
    assert mirror.pipelines.builds == []
    assert mirror.new_jobs() == [("app", "2.0", "upstream-release", "denied")]


# -- what changed in how we build -----------------------------------------------------------------
def test_a_changed_override_rebuilds_the_versions_we_carry_as_a_config_change_job(mirror):
    mirror.overrides.mkdir()
    (mirror.overrides / "app.yaml").write_text("env: {CFLAGS: -O2}\n")

    report = mirror.update()

    assert report.rebuilt == {"app-1.0-1-py3-none-any.whl": "its overrides changed"}
    assert mirror.new_jobs() == [("app", "1.0", "config-change", "built")]
    job = mirror.jobs.read()[-1]
    assert job.job.detail == "its overrides changed since app-1.0-py3-none-any.whl was built"
    assert (job.rebuild_number, job.wheel) == (1, "app-1.0-1-py3-none-any.whl")
    assert mirror.update().rebuilt == {}  # and then nothing has changed any more


def test_a_changed_update_policy_rebuilds_nothing(mirror):
    mirror.overrides.mkdir()
    (mirror.overrides / "app.yaml").write_text("update: {min_release_age: 0}\n")
    report = mirror.update()
    assert (report.rebuilt, report.built) == ({}, [])
    assert mirror.new_jobs() == []


def test_a_new_release_and_a_changed_override_in_one_update(mirror):
    mirror.release("app", "2.0")
    mirror.overrides.mkdir()
    (mirror.overrides / "app.yaml").write_text("env: {CFLAGS: -O2}\n")

    report = mirror.update()

    assert report.built == ["app==2.0"]  # built with the new override already
    assert report.rebuilt == {"app-1.0-1-py3-none-any.whl": "its overrides changed"}
    assert sorted(mirror.new_jobs()) == [("app", "1.0", "config-change", "built"),
                                         ("app", "2.0", "upstream-release", "built")]
    assert mirror.pipelines.opened == 1  # one pipeline for the whole update


def test_a_new_release_takes_the_newest_build_requirement_that_can_be_built(mirror):
    # Since app 1.0 was carried, its backend released a version that cannot be built here.
    mirror.release("tool", "1.0")
    mirror.release("tool", "2.0", Package(build_requires=["python-sbom"]))
    mirror.release("app", "2.0", Package(build_requires=["tool"]))
    mirror.queue.decide("tool", "approved", "a maintainer")
    report = mirror.update(["app"])

    assert report.built == ["app==2.0"]
    assert [w.filename for w in mirror.index.wheels("tool")] == ["tool-1.0-py3-none-any.whl"]
    record = RecordStore(mirror.output).for_version("tool", Version("1.0"))[0]
    assert record["skipped_versions"] == [
        {"version": "2.0", "reason": "build requirement python-sbom is not on the index"}]

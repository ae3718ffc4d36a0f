"""End-to-end, real processes on loopback: a build cluster (`cluster scheduler` and
`mirror-builder worker` processes, mutual TLS with certificates made here), real podman on each
worker, real PyPI. The coordinator is `bootstrap --executor tls://...`; workers share no folder
with it, only what its artifact store serves."""

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cluster_harness import Cluster
from conftest import (FIXTURES, REPO, clean_environment, error_lines, fresh_venv, make_sdist,
                      run_mirror_builder, write_settings)

pytestmark = pytest.mark.e2e

SERVES = {"bookworm-x86_64": "wbook", "trixie-x86_64": "wtrix"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("cluster"))
    # A build whose worker dies is tried on one more worker, then fails.
    cluster.start_scheduler(allowed_failures=1)
    for target, name in SERVES.items():
        cluster.start_worker(name, target, wait=False)
    for worker in cluster.workers.values():
        worker.wait_for("Ctrl-C stops it")
    yield cluster
    cluster.stop()


def on_cluster(cluster: Cluster, *args: str) -> list[str]:
    return [*args, "--executor", cluster.address, "--cluster-certs", str(cluster.certs),
            "-o", "out", "--no-build-cache"]


def records(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("records/*/*.build.json"))]


@pytest.fixture(scope="module")
def jinja2_run(cluster, tmp_path_factory):
    work = tmp_path_factory.mktemp("jinja2")
    proc = run_mirror_builder(*on_cluster(cluster, "bootstrap", "jinja2==3.1.6", "--target",
                                          "bookworm-x86_64", "--target", "trixie-x86_64"),
                              cwd=work)
    return work / "out", proc


def test_each_build_runs_on_the_worker_that_serves_its_target_and_its_record_says_so(jinja2_run):
    out, proc = jinja2_run
    built = records(out)
    assert {r["target"]["name"] for r in built} == set(SERVES)
    for record in built:
        host = record["sandbox"]["host"]
        assert host["executor"] == "dask"
        assert host["name"] == SERVES[record["target"]["name"]], record["wheel"]
        assert host["podman"].startswith("podman version ")
        assert host["kernel"] and host["host"] and host["image_id"]
    markupsafe = {r["target"]["name"]: r["wheel"] for r in built if r["name"] == "markupsafe"}
    assert "cp311" in markupsafe["bookworm-x86_64"] and "cp313" in markupsafe["trixie-x86_64"]
    summary = " ".join((proc.stdout + proc.stderr).split())
    assert "build cluster workers" in summary and "wbook" in summary and "wtrix" in summary


def test_the_log_of_a_remote_build_names_its_worker_and_holds_the_containers_output(jinja2_run):
    out, _ = jinja2_run
    (log,) = out.glob("records/markupsafe/markupsafe-3.0.4-cp313*.log")
    text = log.read_text()
    assert "on worker wtrix" in text
    assert "network none" in text  # the worker's own sandbox line, from its container run


def test_pip_and_uv_install_what_the_cluster_built_and_the_index_checks_out(jinja2_run, tmp_path):
    import uv

    out, _ = jinja2_run
    index = (out / "simple").as_uri() + "/"
    for installer in ("pip", "uv"):
        venv = fresh_venv(tmp_path / installer)
        python = str(venv / "bin" / "python")
        command = ([python, "-m", "pip", "install", "--no-cache-dir"] if installer == "pip" else
                   [uv.find_uv_bin(), "pip", "install", "--no-cache", "--python", python])
        subprocess.run([*command, "--index-url", index, "--only-binary", ":all:", "jinja2"],
                       check=True, env=clean_environment(), capture_output=True)
        subprocess.run([python, "-c", "import jinja2, markupsafe; "
                                      "assert jinja2.Template('{{ x|e }}').render(x='<') == '&lt;'"],
                       check=True)
    check = run_mirror_builder("index", "--check", "-o", str(out), cwd=tmp_path)
    assert "checks out" in " ".join(check.stderr.split())


def test_a_plain_tcp_scheduler_is_refused_and_insecure_allows_only_loopback(tmp_path):
    plain = run_mirror_builder("bootstrap", "six", "--executor", "tcp://127.0.0.1:8786",
                               cwd=tmp_path, check=False)
    assert plain.returncode == 2
    assert "refusing a plain-TCP scheduler" in " ".join(error_lines(plain.stderr))
    remote = run_mirror_builder("bootstrap", "six", "--executor", "tcp://10.1.2.3:8786",
                                "--insecure", cwd=tmp_path, check=False)
    assert remote.returncode == 2
    assert "loopback address only" in " ".join(error_lines(remote.stderr))
    assert not (tmp_path / "output").exists()


def test_no_worker_with_the_coordinators_image_for_a_target_stops_the_run_at_once(cluster,
                                                                                tmp_path):
    """The coordinator's trixie image comes from a Containerfile with one more line: wtrix's
    image is not it, so wtrix is never sent the build, and the run says why right away."""
    containerfile = tmp_path / "Containerfile"
    containerfile.write_text((REPO / "containerfiles/trixie/Containerfile").read_text()
                             + "\n# this coordinator's own variation\n")
    settings = write_settings(tmp_path / "conf")
    settings.write_text(settings.read_text().replace(
        f"{REPO}/containerfiles/trixie/Containerfile", str(containerfile)))
    started = time.monotonic()
    proc = run_mirror_builder(*on_cluster(cluster, "bootstrap", "six==1.17.0", "--target",
                                          "trixie-x86_64"),
                              cwd=tmp_path, settings=settings, check=False)
    errors = " ".join(" ".join(error_lines(proc.stderr)).split())
    assert proc.returncode == 1, proc.stderr
    assert "no worker of the cluster" in errors and "can build for trixie-x86_64" in errors
    assert "wtrix has an image from another Containerfile" in errors
    assert "wbook serves bookworm-x86_64" in errors
    assert time.monotonic() - started < 300  # the image is made from cached layers; no wait
    assert not list((tmp_path / "out").glob("files/*/*.whl"))


def test_the_schedulers_http_server_answers_health_only_and_on_loopback(cluster):
    """Dask's dashboard, /info pages and /metrics need no credentials; ours serves none."""
    import re
    import urllib.error
    import urllib.request

    (base,) = set(re.findall(r"dashboard at: +(http://[0-9.]+:[0-9]+)", cluster.scheduler.output()))
    assert base.startswith("http://127.0.0.1:")
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    assert direct.open(f"{base}/health", timeout=10).status == 200
    for path in ("/info/main/workers.html", "/metrics", "/status", "/json/counts.json"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            direct.open(f"{base}{path}", timeout=10)
        assert refused.value.code == 404, path


# -- faults ----------------------------------------------------------------------------------
def lingering_sdist(work: Path, name: str, seconds: int) -> tuple[Path, str]:
    """A package whose build keeps a marked process alive for seconds, in its container."""
    source = work / "src" / name
    shutil.copytree(FIXTURES / "hostile", source)
    marker = f"mb-cluster-test-{name}-{time.time_ns()}"
    (source / "hostile.json").write_text(json.dumps(
        {"name": name, "version": "1.0", "mode": "linger", "seconds": seconds, "marker": marker}))
    return make_sdist(source, work / "dist", name.replace("-", "_"), "1.0"), marker


def marker_running(marker: str) -> bool:
    return subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0


def start_bootstrap(cluster: Cluster, work: Path, sdist: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mirror_builder", "--settings", str(REPO / "settings.yaml"),
         *on_cluster(cluster, "bootstrap", str(sdist))],
        cwd=work, env=clean_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} in {timeout} s")
        time.sleep(0.1)


def test_a_worker_killed_mid_build_has_its_build_finished_on_another_worker(cluster, tmp_path):
    cluster.start_worker("wbook2", "bookworm-x86_64")
    bookworm = [cluster.workers["wbook"], cluster.workers["wbook2"]]
    sdist, marker = lingering_sdist(tmp_path, "lingerer", seconds=8)
    run = start_bootstrap(cluster, tmp_path, sdist)
    wait_until(lambda: marker_running(marker) or run.poll() is not None, 300,
               "container running the build")
    (victim,) = [w for w in bookworm if w.running_jobs()]
    victim.kill()
    stdout, stderr = run.communicate(timeout=600)
    assert run.returncode == 0, stderr
    out = tmp_path / "out"
    (wheel,) = (out / "files" / "lingerer").glob("*.whl")
    (record,) = records(out)
    survivor = next(w for w in bookworm if w is not victim)
    assert record["sandbox"]["host"]["name"] == survivor.name
    assert record["wheel"] == wheel.name
    check = run_mirror_builder("index", "--check", "-o", str(out), cwd=tmp_path)
    assert "checks out" in " ".join(check.stderr.split())


def test_a_build_that_kills_its_worker_every_time_fails_after_bounded_tries(cluster, tmp_path):
    """Each time the build's container starts, its worker process is killed (the nanny starts
    a new one): with allowed-failures 1 the scheduler gives up after the second death, and the
    run ends with that package's failure instead of hanging."""
    sdist, marker = lingering_sdist(tmp_path, "workerkiller", seconds=120)
    bookworm = [w for name, w in cluster.workers.items()
                if name.startswith("wbook") and w.process.poll() is None]
    seen = {job for w in bookworm for job in w.running_jobs()}
    kills = []

    def killer() -> None:
        while run.poll() is None and len(kills) < 5:
            for worker in bookworm:
                fresh = worker.running_jobs() - seen
                pid = worker.worker_pid()
                if fresh and pid and marker_running(marker):
                    seen.update(fresh)
                    subprocess.run(["kill", "-9", str(pid)])
                    subprocess.run(["pkill", "-9", "-f", marker])
                    kills.append(worker.name)
            time.sleep(0.1)

    run = start_bootstrap(cluster, tmp_path, sdist)
    thread = threading.Thread(target=killer)
    thread.start()
    _, stderr = run.communicate(timeout=600)
    thread.join()
    errors = " ".join(" ".join(error_lines(stderr)).split())
    assert run.returncode == 1
    assert len(kills) == 2, (kills, errors)
    assert "workerkiller==1.0" in errors and "killed its worker on every try" in errors
    assert not list((tmp_path / "out").glob("files/*/*.whl"))


def test_a_killed_coordinator_is_rerun_against_the_same_cluster_and_finishes(cluster, tmp_path):
    sdist, marker = lingering_sdist(tmp_path, "coordinated", seconds=6)
    first = start_bootstrap(cluster, tmp_path, sdist)
    wait_until(lambda: marker_running(marker) or first.poll() is not None, 300,
               "container running the build")
    first.kill()
    first.communicate(timeout=60)
    assert not list((tmp_path / "out").glob("files/*/*.whl"))
    again = start_bootstrap(cluster, tmp_path, sdist)
    _, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr
    (wheel,) = (tmp_path / "out" / "files" / "coordinated").glob("*.whl")
    (record,) = records(tmp_path / "out")
    assert record["wheel"] == wheel.name and record["sandbox"]["host"]["executor"] == "dask"
    check = run_mirror_builder("index", "--check", "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert "checks out" in " ".join(check.stderr.split())


def test_a_target_whose_last_worker_is_gone_fails_its_build_instead_of_waiting(tmp_path):
    """A cluster of its own whose scheduler gives up on a build with no worker left for its
    target after 5 s (cluster scheduler --lost-target-timeout; 120 s by default)."""
    lonely = Cluster(tmp_path / "lonely")
    lonely.folder.mkdir()
    try:
        lonely.start_scheduler(options=("--lost-target-timeout", "5s"))
        only = lonely.start_worker("wonly", "bookworm-x86_64")
        sdist, marker = lingering_sdist(tmp_path, "orphaned", seconds=60)
        run = start_bootstrap(lonely, tmp_path, sdist)
        wait_until(lambda: marker_running(marker) or run.poll() is not None, 300,
                   "container running the build")
        only.kill()
        subprocess.run(["pkill", "-9", "-f", marker])
        started = time.monotonic()
        _, stderr = run.communicate(timeout=300)
        errors = " ".join(" ".join(error_lines(stderr)).split())
    finally:
        lonely.stop()
    assert run.returncode == 1
    assert "orphaned==1.0" in errors
    assert "no worker serving target bookworm-x86_64 is left" in errors
    assert time.monotonic() - started < 120


def test_a_rust_package_is_vendored_and_built_on_a_worker(cluster, tmp_path):
    """cargo vendor (the one step with network) runs on the worker too; the vendored tree
    comes back, and the build runs offline on a worker from it."""
    sdist = make_sdist(FIXTURES / "rustprobe", tmp_path / "dist", "rustprobe", "1.0")
    run_mirror_builder(*on_cluster(cluster, "bootstrap", str(sdist)), cwd=tmp_path)
    out = tmp_path / "out"
    (wheel,) = (out / "files" / "rustprobe").glob("*.whl")
    record = json.loads((out / "records" / "rustprobe" / f"{wheel.name}.build.json").read_text())
    assert record["sandbox"]["host"]["name"].startswith("wbook")
    assert [c["name"] for c in record["source"]["origin"]["vendored_crates"]] == ["itoa"]
    log = (out / "records" / "rustprobe" / f"{wheel.name}.log").read_text()
    assert log.index("vendoring crates") < log.index("network none")
    assert log.count("on worker wbook") >= 2  # vendored there, then built there
    assert "Compiling itoa v1.0.15" in log

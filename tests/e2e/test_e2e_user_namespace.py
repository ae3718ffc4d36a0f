"""End-to-end: a build's processes are, seen from the host, ids of the subordinate range that
./setup.sh gives podman ("containers" in /etc/subuid and /etc/subgid): not uid 1000 (an account
on a typical host) and not root. The build record states the mapping, as the build saw it."""

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import FIXTURES, REPO, clean_environment, make_sdist, write_settings
from mirror_builder.sandbox.userns import SUBGID_FILE, SUBUID_FILE, subordinate_ids

pytestmark = pytest.mark.e2e


def processes_with(marker: str) -> dict[int, dict[str, object]]:
    """Host processes whose command line holds marker: their real, effective, saved and file
    system uids and gids (as /proc/PID/status gives them), and their uid_map."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() not in (entry / "cmdline").read_bytes():
                continue
            status = dict(line.split(":", 1) for line in (entry / "status").read_text().splitlines())
            found[int(entry.name)] = {
                "uids": {int(u) for u in status["Uid"].split()},
                "gids": {int(g) for g in status["Gid"].split()},
                "uid_map": (entry / "uid_map").read_text()}
        except (OSError, ValueError, KeyError):
            continue  # it ended while we looked
    return found


def host_id(id_map: str, inside: int) -> int:
    for line in id_map.splitlines():
        start, outside, count = map(int, line.split())
        if start <= inside < start + count:
            return outside + inside - start
    raise AssertionError(f"{inside} is not mapped by {id_map!r}")


@pytest.fixture(scope="module")
def lingering_build(tmp_path_factory):
    """Bootstrap a package whose build keeps a marked process alive for 4 s, and look at that
    process from the host while it runs."""
    work = tmp_path_factory.mktemp("userns")
    marker = f"mb-userns-probe-{uuid.uuid4().hex}"
    source = work / "src" / "userns-probe"
    shutil.copytree(FIXTURES / "hostile", source)
    (source / "hostile.json").write_text(json.dumps(
        {"name": "userns-probe", "version": "1.0", "mode": "linger", "marker": marker, "seconds": 4}))
    sdist = make_sdist(source, work / "dist", "userns_probe", "1.0")
    settings = write_settings(work / "conf")
    proc = subprocess.Popen([sys.executable, "-m", "mirror_builder", "--settings", str(settings),
                             "bootstrap", str(sdist), "-o", "out"], cwd=work, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_environment())
    seen: dict[int, dict[str, object]] = {}
    logged_while_running = False
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        now = processes_with(marker)
        seen |= now
        if now and not logged_while_running:
            logged_while_running = any("lingering as uid" in log.read_text(errors="replace")
                                       for log in work.rglob("*.log") if log.is_file())
        time.sleep(0.05)
    try:
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, f"{stdout}\n{stderr}"
    (record,) = (work / "out" / "records" / "userns-probe").glob("*.build.json")
    return seen, json.loads(record.read_text()), work / "out", logged_while_running


def test_a_long_builds_output_reaches_its_log_while_it_runs(lingering_build):
    *_, logged_while_running = lingering_build

    assert logged_while_running, "the build's output was not in its log while the build ran"


def test_a_builds_processes_are_ids_of_the_subordinate_range_on_the_host(lingering_build):
    seen, _, _, _ = lingering_build
    (uid_range,) = subordinate_ids(SUBUID_FILE)
    (gid_range,) = subordinate_ids(SUBGID_FILE)

    assert seen, "the build's marked process was never seen from the host"
    for process in seen.values():
        assert process["uids"] and all(uid in uid_range for uid in process["uids"]), process
        assert process["gids"] and all(gid in gid_range for gid in process["gids"]), process
        assert not process["uids"] & {0, 1000} and not process["gids"] & {0, 1000}


def test_the_record_states_the_user_namespace_the_build_ran_in(lingering_build):
    seen, record, _, _ = lingering_build
    namespace = record["sandbox"]["user_namespace"]
    (uid_range,) = subordinate_ids(SUBUID_FILE)

    assert record["sandbox"]["user"] == "builder (uid 1000)"
    for process in seen.values():
        # The builder's uid 1000, through the recorded map, is the uid the host saw.
        assert process["uids"] == {host_id(namespace["uid_map"], 1000)}
        assert " ".join(process["uid_map"].split()) == namespace["uid_map"]
    for line in namespace["uid_map"].splitlines():
        _, outside, count = map(int, line.split())
        assert outside in uid_range and outside + count - 1 in uid_range


def test_what_the_build_wrote_is_the_hosts_once_published(lingering_build):
    _, _, out, _ = lingering_build
    (wheel,) = (out / "files" / "userns-probe").glob("*.whl")

    assert (wheel.stat().st_uid, wheel.stat().st_gid) == (os.getuid(), os.getgid())


def test_inspect_shows_the_host_ids_of_the_build(lingering_build):
    _, record, out, _ = lingering_build
    inside, outside, count = map(int, record["sandbox"]["user_namespace"]["uid_map"].split())

    inspect = subprocess.run([sys.executable, "-m", "mirror_builder", "--settings",
                              str(REPO / "settings.yaml"), "inspect", "userns-probe==1.0",
                              "-o", str(out)], capture_output=True, text=True, check=True,
                             env=clean_environment(COLUMNS="200"))
    (row,) = [line for line in inspect.stdout.splitlines() if "user namespace" in line]
    assert f"uids {inside}-{inside + count - 1} are host {outside}-{outside + count - 1}" in row, row



@pytest.mark.skipif(os.getuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare")
def test_a_machine_without_the_range_gets_one_error_line_that_says_to_run_setup(tmp_path):
    empty = tmp_path / "subuid"
    empty.write_text("alice:100000:65536\n")
    # /etc/subuid is replaced only in a mount namespace of this command's own.
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f'mount --bind "$1" /etc/subuid && exec "$2" -m mirror_builder --settings "$3" images',
         "sh", str(empty), sys.executable, str(REPO / "settings.yaml")],
        capture_output=True, text=True, env=clean_environment(), cwd=tmp_path)

    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "/etc/subuid" in proc.stderr and "./setup.sh" in proc.stderr
    assert "Traceback" not in proc.stderr

"""End-to-end: hostile packages, built with real podman, each try one thing a build must not do.

One bootstrap (with --keep-going) takes all of them plus six, an innocent package: every hostile
build ends in a clear failure naming the package (or, where harmless, in a build that simply could
not do the bad thing), and six is built and indexed as if nothing happened.
"""

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from conftest import make_sdist, run_mirror_builder, write_settings

pytestmark = pytest.mark.e2e

SECRET = "mb-test-secret-7c1d0e5a"
HOSTILE = {  # package -> what its build tries
    "hostile-secret": "secret",
    "hostile-forkbomb": "forkbomb",
    "hostile-memhog": "memhog",
    "hostile-loop": "loop",
    "hostile-symlink-wheel": "symlink-wheel",
    "hostile-name-escape": "name-escape",
    "hostile-wrong-filename": "wrong-filename",
    "hostile-wrong-metadata": "wrong-metadata",
    "hostile-record-escape": "record-escape",
}
OVERRIDES = {
    "hostile-forkbomb": "pids_limit: 64\n",
    "hostile-memhog": "memory: 256m\n",
    "hostile-loop": "timeout: 15\n",
}


def hostile_sdist(work: Path, fixtures_dir: Path, name: str, mode: str) -> Path:
    source = work / "src" / name
    shutil.copytree(fixtures_dir / "hostile", source)
    (source / "hostile.json").write_text(json.dumps({"name": name, "version": "1.0", "mode": mode}))
    return make_sdist(source, work / "dist", name.replace("-", "_"), "1.0")


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    from conftest import FIXTURES

    work = tmp_path_factory.mktemp("hostile")
    overrides = work / "overrides"
    overrides.mkdir()
    for name, text in OVERRIDES.items():
        (overrides / f"{name}.yaml").write_text(text)
    settings = write_settings(work / "conf", overrides_dir=str(overrides))
    sdists = [str(hostile_sdist(work, FIXTURES, name, mode)) for name, mode in HOSTILE.items()]
    proc = run_mirror_builder(
        "bootstrap", *sdists, "six==1.17.0", "--keep-going", "-o", "out", cwd=work,
        settings=settings, check=False,
        env={"MB_TEST_TOKEN": SECRET, "AWS_SECRET_ACCESS_KEY": SECRET, "PYPI_TOKEN": SECRET})
    return work / "out", proc, " ".join(proc.stderr.split())


def failure_of(stderr: str, name: str) -> str:
    """The one-line failure the bootstrap reported for name==1.0."""
    marker = f"failed {name}==1.0: "
    assert marker in stderr, stderr
    return stderr.split(marker, 1)[1].split(" failed ")[0]


def test_every_hostile_build_but_the_harmless_one_fails_and_six_is_built_regardless(hostile_run):
    out, proc, stderr = hostile_run
    assert proc.returncode == 1
    assert f"{len(HOSTILE) - 1} package(s) failed" in stderr
    assert list((out / "files" / "six").glob("six-1.17.0-*.whl"))
    assert list((out / "files" / "hostile-secret").glob("*.whl"))
    indexed = {p.name for p in (out / "files").iterdir()}
    assert not indexed & (set(HOSTILE) - {"hostile-secret"})
    check = run_mirror_builder("index", "--check", "-o", "out", cwd=out.parent)
    assert "Traceback" not in check.stderr


def test_the_hosts_secrets_and_sockets_are_out_of_a_builds_reach(hostile_run):
    out, _, _ = hostile_run
    (wheel,) = (out / "files" / "hostile-secret").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        harvest = archive.read("hostile_secret/harvest.txt").decode()
        everything = b"".join(archive.read(n) for n in archive.namelist())
    assert SECRET.encode() not in everything
    record_dir = out / "records" / "hostile-secret"
    assert SECRET not in (record_dir / f"{wheel.name}.log").read_text()
    assert SECRET not in (record_dir / f"{wheel.name}.build.json").read_text()
    environ = {line.split()[1].split("=", 1)[0] for line in harvest.splitlines()
               if line.startswith("environ ")}
    # The driver's allow-list (with the constants that make builds reproducible), and what
    # pyproject-hooks adds to call the backend: nothing else.
    assert environ <= {"PATH", "HOME", "LANG", "TMPDIR", "VIRTUAL_ENV", "SOURCE_DATE_EPOCH",
                       "PYTHONHASHSEED", "TZ", "LC_ALL",
                       "MAKEFLAGS", "CMAKE_BUILD_PARALLEL_LEVEL", "CARGO_NET_OFFLINE", "CARGO_HOME",
                       "_PYPROJECT_HOOKS_BUILD_BACKEND", "_PYPROJECT_HOOKS_BACKEND_PATH_JSON"}, environ
    for socket in ("/run/podman/podman.sock", "/var/run/docker.sock"):
        assert f"refused {socket}" in harvest
    assert "refused /etc/shadow" in harvest
    assert not [line for line in harvest.splitlines() if line.startswith("listed /run/secrets")]


def test_the_sandbox_settings_are_in_the_provenance(hostile_run):
    out, _, _ = hostile_run
    (record,) = (out / "records" / "hostile-secret").glob("*.build.json")
    sandbox = json.loads(record.read_text())["sandbox"]
    assert sandbox["network"] == "none"
    assert sandbox["capabilities"] == "all dropped" and sandbox["no_new_privileges"] is True
    assert sandbox["user"].startswith("builder (uid 1000)")
    assert sandbox["root_filesystem"].startswith("read-only")
    assert sandbox["memory"] and sandbox["pids_limit"] and sandbox["timeout_seconds"]


def test_a_fork_bomb_is_stopped_by_the_process_limit(hostile_run):
    _, _, stderr = hostile_run
    assert "the process limit (64) refused" in failure_of(stderr, "hostile-forkbomb")


def test_a_memory_hog_is_stopped_by_the_memory_limit(hostile_run):
    _, _, stderr = hostile_run
    assert "the memory limit (256 MiB) killed" in failure_of(stderr, "hostile-memhog")


def test_an_endless_loop_is_stopped_by_the_timeout(hostile_run):
    _, _, stderr = hostile_run
    assert "build timed out after 15 s" in failure_of(stderr, "hostile-loop")


def test_a_wheel_that_is_a_link_to_a_host_file_is_refused(hostile_run):
    out, _, stderr = hostile_run
    assert "is not a regular file" in failure_of(stderr, "hostile-symlink-wheel")
    passwd = Path("/etc/passwd").read_bytes()
    assert not [p for p in out.rglob("*") if p.is_file() and not p.is_symlink()
                and p.suffix == ".whl" and p.read_bytes() == passwd]


def test_a_wheel_name_that_climbs_out_of_the_output_folder_is_refused(hostile_run):
    _, _, stderr = hostile_run
    assert "which is not a file name" in failure_of(stderr, "hostile-name-escape")


def test_a_wheel_of_another_package_is_refused(hostile_run):
    _, _, stderr = hostile_run
    assert "is not a wheel of hostile-wrong-filename 1.0" in failure_of(stderr, "hostile-wrong-filename")


def test_a_wheel_whose_metadata_names_another_version_is_refused(hostile_run):
    _, _, stderr = hostile_run
    assert "METADATA gives version '6.6.6', not 1.0" in failure_of(stderr, "hostile-wrong-metadata")


def test_a_wheel_whose_record_points_outside_the_install_tree_is_refused(hostile_run):
    _, _, stderr = hostile_run
    assert "points outside the install tree" in failure_of(stderr, "hostile-record-escape")
    assert not Path("/tmp/hostile-pwned.py").exists()

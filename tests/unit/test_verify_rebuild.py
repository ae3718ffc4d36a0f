"""`verify`'s parts that need no container: what a verifying build changes, how the driver
applies it, how two wheels' difference is said in a line, and the statement kept."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mirror_builder.build.jobspec import BUILD_HOSTNAME, build_job
from mirror_builder.build.request import (BuildEnvironment, BuildRequest, FileRef, Runtime,
                                          SourceInputs, Variation)
from mirror_builder.config.settings import BuildSettings
from mirror_builder.engine.verifier import image_change
from mirror_builder.prepare.buildsystem import BuildSystem
from mirror_builder.provenance.verification import (REPRODUCED_LEVEL, VSA_TYPE, Verification,
                                                    describe_difference, verification_statement)
from mirror_builder.sandbox import driver
from mirror_builder.sandbox.imagenames import ImageRef


def a_request(tmp_path, variation=None) -> BuildRequest:
    sdist = tmp_path / "demo-1.0.tar.gz"
    sdist.write_bytes(b"sdist")
    return BuildRequest(
        source=SourceInputs("demo", "1.0", FileRef(sdist, "aa"), tmp_path),
        build_system=BuildSystem(requires=("setuptools",), backend="setuptools.build_meta"),
        env=BuildEnvironment(wheels=(), environment={"CFLAGS": "-O2"}, jobs=1),
        runtime=Runtime(ImageRef(tag="img:1", id="1" * 64, base="b", containerfile="c",
                                 containerfile_sha256="d", target="t"),
                        BuildSettings(), "t", cpus=1.0),
        log_path=tmp_path / "log", variation=variation)


def wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_a_verifying_request_travels_with_what_it_varies(tmp_path):
    varied = Variation(work_dir="/tmp/mb-verify-1", hostname="verify-1")
    request = a_request(tmp_path, varied)
    assert BuildRequest.from_dict(request.to_dict()) == request
    assert BuildRequest.from_dict(a_request(tmp_path).to_dict()).variation is None


def test_the_driver_is_told_the_other_build_folder_and_order_only_when_verifying(tmp_path):
    job = build_job(a_request(tmp_path, Variation("/tmp/mb-verify-1", "verify-1")), "/src",
                    "/wheels", "/closure")
    assert (job["work"], job["reverse_environment"]) == ("/tmp/mb-verify-1", True)
    plain = build_job(a_request(tmp_path), "/src", "/wheels", "/closure")
    assert "work" not in plain and "reverse_environment" not in plain
    assert BUILD_HOSTNAME == "mirror-builder"


def test_an_ordinary_build_environment_has_no_wrappers():
    env = driver.build_environ({"source_date_epoch": 1, "jobs": 2}, "/tmp/mb-work/env")
    assert env["PATH"] == "/tmp/mb-work/env/bin:/usr/local/bin:/usr/bin:/bin"
    assert "RUSTC_WRAPPER" not in env
    assert list(env)[0] == "PATH"


def test_a_build_in_another_folder_maps_it_back_in_what_compilers_write(tmp_path):
    work = str(tmp_path / "mb-verify-1")
    job = {"source_date_epoch": 1, "jobs": 1, "reverse_environment": True,
           "environment": {"CFLAGS": "-O2"}}
    env = driver.build_environ(job, f"{work}/env", work)
    remap = f"{work}/remap-bin"
    assert env["PATH"] == f"{work}/env/bin:{remap}:/usr/local/bin:/usr/bin:/bin"
    assert env["RUSTC_WRAPPER"] == f"{remap}/rustc-remap"
    in_order = driver.build_environ(dict(job, reverse_environment=False), f"{work}/env", work)
    assert list(env) == list(reversed(list(in_order))) and list(env)[-1] == "PATH"
    assert env["CFLAGS"] == "-O2"  # the package's flags are left alone
    wrappers = set(os.listdir(remap))
    assert "rustc-remap" in wrappers and "gcc-ar" not in wrappers
    compilers = {n for n in os.listdir("/usr/bin") if driver.COMPILER.match(n)}
    assert compilers and compilers <= wrappers
    name = sorted(compilers)[0]
    text = Path(remap, name).read_text()
    assert f"exec /usr/bin/{name} -ffile-prefix-map={work}=/tmp/mb-work " in text
    assert os.stat(Path(remap, name)).st_mode & 0o111


@pytest.mark.skipif(not Path("/usr/bin/gcc").exists(), reason="needs gcc")
def test_the_wrapped_compiler_writes_the_fixed_path_not_the_real_one(tmp_path):
    work = str(tmp_path / "mb-verify-2")
    env = driver.build_environ({"source_date_epoch": 1, "jobs": 1}, f"{work}/env", work)
    source = Path(work, "src", "where.c")
    source.parent.mkdir(parents=True)
    source.write_text('const char *where = __FILE__;\n')
    subprocess.run(["gcc", "-g", "-c", str(source), "-o", str(tmp_path / "where.o")],
                   env=env, check=True, cwd=source.parent)
    compiled = (tmp_path / "where.o").read_bytes()
    assert b"/tmp/mb-work/src/where.c" in compiled
    assert work.encode() not in compiled


def test_a_difference_is_said_by_the_members_that_differ_not_by_record(tmp_path):
    published = wheel(tmp_path / "a.whl", {"p/x.py": b"1", "p/y.so": b"elf",
                                           "p-1.dist-info/RECORD": b"r1"})
    (tmp_path / "b").mkdir()
    rebuilt = wheel(tmp_path / "b" / "a.whl", {"p/x.py": b"2", "p/y.so": b"elf", "p/z.py": b"",
                                               "p-1.dist-info/RECORD": b"r2"})
    assert describe_difference(published, rebuilt) == \
        "differs: only in the rebuild: p/z.py; content of p/x.py"


def test_the_same_files_in_another_archive_are_said_to_be_that(tmp_path):
    published = wheel(tmp_path / "a.whl", {"p/x.py": b"1", "p/y.py": b"2"})
    (tmp_path / "b").mkdir()
    rebuilt = wheel(tmp_path / "b" / "a.whl", {"p/y.py": b"2", "p/x.py": b"1"})
    assert "the same files, but the archive differs" in describe_difference(published, rebuilt)


RECORD = {"name": "demo", "version": "1.0", "wheel": "demo-1.0-py3-none-any.whl",
          "wheel_sha256": "ab" * 32}


def test_a_reproduced_wheel_gets_a_passing_verification_summary_about_that_file():
    result = Verification("demo", "1.0", RECORD["wheel"], "reproduced", "bit-identical",
                          varied={"hostname": "verify-1"}, rebuilt_sha256="ab" * 32)
    statement = verification_statement(RECORD, result, "cd" * 32)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == VSA_TYPE == "https://slsa.dev/verification_summary/v1"
    assert statement["subject"] == [{"name": RECORD["wheel"], "digest": {"sha256": "ab" * 32}}]
    predicate = statement["predicate"]
    assert predicate["verificationResult"] == "PASSED"
    assert REPRODUCED_LEVEL in predicate["verifiedLevels"]
    assert not any(level.startswith("SLSA_") and level != "SLSA_BUILD_LEVEL_1"
                   for level in predicate["verifiedLevels"])
    assert predicate["inputAttestations"] == [{"uri": f"{RECORD['wheel']}.intoto.json",
                                               "digest": {"sha256": "cd" * 32}}]
    assert predicate["reproduction"]["varied"] == {"hostname": "verify-1"}


def test_a_differing_wheel_gets_a_failing_one_without_the_reproduced_level():
    result = Verification("demo", "1.0", RECORD["wheel"], "differs", "differs: content of x")
    predicate = verification_statement(RECORD, result, None)["predicate"]
    assert predicate["verificationResult"] == "FAILED"
    assert REPRODUCED_LEVEL not in predicate["verifiedLevels"]
    assert predicate["inputAttestations"] == []
    assert predicate["reproduction"]["summary"] == "differs: content of x"


def test_a_rebuilt_image_is_named_by_the_debian_packages_that_changed():
    before = ["libc6=2.36-9+deb12u9", "gcc-12=12.2.0-14", "zlib1g=1:1.2.13"]
    now = ("libc6=2.36-9+deb12u10", "gcc-12=12.2.0-14", "libyaml-0-2=0.2.5-1")
    assert image_change(before, now) == (" (libc6 2.36-9+deb12u9 -> 2.36-9+deb12u10, "
                                         "libyaml-0-2 (none) -> 0.2.5-1, "
                                         "zlib1g 1:1.2.13 -> (removed))")
    assert image_change(before, tuple(before)) == " (the same Debian packages, rebuilt)"


def test_what_a_hostile_backend_names_as_its_wheel_is_left_to_the_hosts_checks(tmp_path,
                                                                             monkeypatch):
    from mirror_builder.sandbox import linked
    monkeypatch.setitem(sys.modules, "mb_linked", linked)
    (tmp_path / "not-a-zip.whl").write_text("hello")
    (tmp_path / "link.whl").symlink_to("/etc/passwd")
    for name in ("../escape.whl", "link.whl", "missing.whl", "not-a-zip.whl"):
        result = {}
        driver.read_linked(str(tmp_path), name, result)  # never raises
        assert "linked" not in result, name

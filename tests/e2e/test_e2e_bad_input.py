"""End-to-end: bad input from users ends in one clear, named failure, and nothing is written.

A project or a version that does not exist, a project or version with no sdist, requirements that
cannot hold together, malformed settings and overrides, and sdists whose archives reach out of
their tree: each stops the real CLI with exit status 1 and a single `error:` line that says what
is wrong and where, before anything is built, and leaves an existing output byte for byte as it
was. The resolution cases ask the real PyPI.
"""

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from conftest import error_lines, run_mirror_builder, tree_digest, write_settings

pytestmark = pytest.mark.e2e

# Every command that writes an output holds this lock file in it, and writes its own pid and
# command line into it; that is not output.
LOCK_FILE = ".mirror-builder.lock"


@pytest.fixture(scope="module")
def existing_output(tmp_path_factory) -> Path:
    """An output holding six 1.17.0, built once, which every failure below must leave as it is."""
    work = tmp_path_factory.mktemp("six")
    run_mirror_builder("bootstrap", "six==1.17.0", "-o", "out", cwd=work)
    return work / "out"


AUDIT_LOG = "jobs/history.jsonl"  # meant to grow: a failed job is recorded there


def contents(output: Path) -> dict[str, str]:
    """Every file of an output with its sha256 (nothing, if there is no output), but the lock
    and the audit log."""
    if not output.exists():
        return {}
    return {name: digest for name, digest in tree_digest(output).items()
            if name not in (LOCK_FILE, AUDIT_LOG)}


def fails_cleanly(*args: str, cwd: Path, output: Path, settings: Path | None = None) -> str:
    """Run mirror-builder ARGS -o OUTPUT, which must fail as bad input should: exit status 1, one
    `error:` line and no traceback, and OUTPUT exactly as it was. Returns the error line."""
    before = contents(output)
    proc = run_mirror_builder(*args, "-o", str(output), cwd=cwd, check=False, settings=settings)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert contents(output) == before
    return " ".join(lines[0].split())


# -- resolution, against the real PyPI -------------------------------------------------------
def test_a_project_that_does_not_exist_is_named(tmp_path, existing_output):
    error = fails_cleanly("bootstrap", "no-such-package-mb-test-xyz", cwd=tmp_path,
                          output=existing_output)

    assert error == ("error: cannot resolve no-such-package-mb-test-xyz: you asked for "
                     "no-such-package-mb-test-xyz. no-such-package-mb-test-xyz does not exist on "
                     "the index; check the name")


def test_a_version_that_does_not_exist_lists_the_newest_versions_there_are(tmp_path,
                                                                          existing_output):
    error = fails_cleanly("bootstrap", "six==99.0", cwd=tmp_path, output=existing_output)

    assert "cannot resolve six: you asked for six==99.0. six has no version 99.0." in error
    assert "six sdists usable on Python 3." in error
    assert "1.15.0, 1.16.0, 1.17.0" in error


def test_a_project_with_only_wheels_says_mirror_builder_builds_from_sdists_and_what_helps(
        tmp_path, existing_output):
    error = fails_cleanly("bootstrap", "tensorflow-io-gcs-filesystem", cwd=tmp_path,
                          output=existing_output)

    assert "cannot resolve tensorflow-io-gcs-filesystem: you asked for " \
           "tensorflow-io-gcs-filesystem." in error
    assert "has no source distribution on the index (wheels only): every version, up to " in error
    assert "exists only as wheels. mirror-builder builds from sdists." in error
    assert "set pre_built: true (take the upstream wheel as it is) or a source (url with " \
           "sha256, or git with tag) in tensorflow-io-gcs-filesystem.yaml in the overrides " \
           "folder" in error


def test_a_version_that_exists_only_as_wheels_says_so(tmp_path, existing_output):
    # nvidia-nvjitlink-cu12 has a single placeholder sdist (0.0.1.dev5); its releases are wheels.
    error = fails_cleanly("bootstrap", "nvidia-nvjitlink-cu12==12.9.86", cwd=tmp_path,
                          output=existing_output)

    assert "you asked for nvidia-nvjitlink-cu12==12.9.86. nvidia-nvjitlink-cu12 12.9.86 exists " \
           "only as wheels on the index. mirror-builder builds from sdists." in error
    assert "pre_built: true" in error and "nvidia-nvjitlink-cu12.yaml" in error


def test_requirements_that_cannot_hold_together_say_who_wants_what(tmp_path, existing_output):
    error = fails_cleanly("bootstrap", "flask==3.1.1", "werkzeug<3", cwd=tmp_path,
                          output=existing_output)

    assert error.startswith("error: cannot resolve werkzeug: ")
    assert "you asked for werkzeug<3" in error
    assert "flask==3.1.1 requires werkzeug>=3.1" in error
    assert "no version of werkzeug satisfies all of them (werkzeug<3 alone would take 2.3.8, " \
           "werkzeug>=3.1" in error


def test_a_build_requirement_with_only_wheels_names_the_package_that_needs_it(tmp_path,
                                                                             existing_output):
    sdist = write_sdist(tmp_path / "dist" / "needswheels-1.0.tar.gz", [
        text_member("needswheels-1.0/pyproject.toml",
                    '[build-system]\nrequires = ["tensorflow-io-gcs-filesystem"]\n'
                    'build-backend = "setuptools.build_meta"\n')])

    error = fails_cleanly("bootstrap", str(sdist), cwd=tmp_path, output=existing_output)

    assert "cannot resolve tensorflow-io-gcs-filesystem: needswheels==1.0 needs " \
           "tensorflow-io-gcs-filesystem to build." in error
    assert "(wheels only)" in error
    assert error.endswith("(required by: needswheels==1.0)")


# -- settings and overrides ------------------------------------------------------------------
def line_of(path: Path, text: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), start=1)
                if text in line)


@pytest.mark.parametrize(("change", "wrong_line", "problem"), [
    (("  pids_limit: 4096", "  pids_limit: lots"), "pids_limit: lots",
     "build.pids_limit: expected int, got 'lots'"),
    (("output_dir: output", "outptu_dir: output"), "outptu_dir",
     "outptu_dir: unknown key (allowed here: allow_prereleases, build, build_cache, cache_dir, "),
    (("  timeout_seconds: 60", "  timeout_seconds: [60"), "retries:",
     "not valid YAML: expected ',' or ']', but got ':' (while parsing a flow sequence that "
     "starts at line {start})"),
], ids=["wrong type", "unknown key", "bad YAML"])
def test_malformed_settings_name_the_file_line_and_key(tmp_path, existing_output, change,
                                                       wrong_line, problem):
    settings = write_settings(tmp_path / "conf")
    settings.write_text(settings.read_text().replace(*change))

    error = fails_cleanly("bootstrap", "six==1.17.0", cwd=tmp_path, output=existing_output,
                          settings=settings)

    expected = problem.format(start=line_of(settings, change[1]))
    assert error.startswith(f"error: {settings}:{line_of(settings, wrong_line)}: {expected}")


@pytest.mark.parametrize(("override", "line", "problem"), [
    ("env:\n  CFLAGS: -O2\npre-built: true\n", 3,
     "pre-built: unknown key (allowed here: bootstrap_stage, build_dir, "),
    ("timeout: soon\n", 1, "timeout: expected int, got 'soon'"),
    ("source:\n  url: https://example.invalid/six-${version}.tar.gz\n  sha256: nothex\n", 3,
     "source.sha256: 'nothex' is not a sha256 (64 hex digits)"),
    ("changelog: [unclosed\n", 2,
     "not valid YAML: expected ',' or ']', but got '<stream end>' (while parsing a flow "
     "sequence that starts at line 1)"),
], ids=["unknown key", "wrong type", "bad nested value", "bad YAML"])
def test_a_malformed_override_names_the_file_line_and_key(tmp_path, existing_output, override,
                                                          line, problem):
    overrides = tmp_path / "overrides"
    overrides.mkdir()
    (overrides / "six.yaml").write_text(override)
    settings = write_settings(tmp_path / "conf", overrides_dir=str(overrides))

    error = fails_cleanly("bootstrap", "six==1.17.0", cwd=tmp_path, output=existing_output,
                          settings=settings)

    assert error.startswith(f"error: {overrides / 'six.yaml'}:{line}: {problem}")


# -- sdists whose archives reach out of their tree -------------------------------------------
def text_member(name: str, text: str) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(text.encode())
    info.mode = 0o644
    return info, text.encode()


def special_member(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    if kind == tarfile.CHRTYPE:
        info.devmajor, info.devminor = 1, 3  # what /dev/null is
    return info, None


def write_sdist(path: Path, extra: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    """An sdist that would build (PKG-INFO, setup.py), with extra members after its good ones."""
    top = path.name.removesuffix(".tar.gz")
    name, version = top.rsplit("-", 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    members = [
        text_member(f"{top}/PKG-INFO",
                    f"Metadata-Version: 2.2\nName: {name}\nVersion: {version}\n"),
        text_member(f"{top}/setup.py", "from setuptools import setup\nsetup()\n"),
    ] + extra
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def climb_to(place: Path) -> str:
    """A relative path from anywhere mirror-builder unpacks to, up and back down to place."""
    return "../" * 40 + str(place).lstrip("/")


def hostile_members(tmp_path: Path) -> dict[str, tuple[list, str, str]]:
    """case: (members, the member named in the error, what is wrong with it)."""
    escape, absolute, outside = (tmp_path / "escape", tmp_path / "abs", tmp_path / "outside")
    return {
        "dot-dot path": ([text_member(f"evil-1.0/{climb_to(escape)}", "pwned")],
                         f"evil-1.0/{climb_to(escape)}", "a '..' path leaves the source tree"),
        "absolute path": ([text_member(str(absolute), "pwned")], str(absolute),
                          "an absolute path"),
        "character device": ([special_member("evil-1.0/null", tarfile.CHRTYPE)], "evil-1.0/null",
                             "a character device; an sdist holds only files, folders and links"),
        "symlink up and out": (
            [special_member("evil-1.0/link", tarfile.SYMTYPE, "../../etc/passwd")],
            "evil-1.0/link", "a symlink to '../../etc/passwd', outside the source tree"),
        "absolute symlink": ([special_member("evil-1.0/link", tarfile.SYMTYPE, "/etc/passwd")],
                             "evil-1.0/link", "a symlink to '/etc/passwd', outside the source tree"),
        "file written through a symlink out": (
            [special_member("evil-1.0/out", tarfile.SYMTYPE, climb_to(outside)),
             text_member("evil-1.0/out/through", "pwned")],
            "evil-1.0/out", f"a symlink to '{climb_to(outside)}', outside the source tree"),
    }


HOSTILE = ["dot-dot path", "absolute path", "character device", "symlink up and out",
           "absolute symlink", "file written through a symlink out"]


@pytest.mark.parametrize("case", HOSTILE)
def test_an_sdist_reaching_out_of_its_tree_is_refused_before_any_build(tmp_path, existing_output,
                                                                       case):
    (tmp_path / "outside").mkdir()
    members, member, problem = hostile_members(tmp_path)[case]
    sdist = write_sdist(tmp_path / "dist" / "evil-1.0.tar.gz", members)
    passwd = hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest()

    # six's output holds no setuptools: building anything would have built it first.
    error = fails_cleanly("bootstrap", str(sdist), cwd=tmp_path, output=existing_output)

    assert error == f"error: evil==1.0: evil-1.0.tar.gz: refusing member {member!r}: {problem}"
    assert not (tmp_path / "escape").exists()
    assert not (tmp_path / "abs").exists()
    assert list((tmp_path / "outside").iterdir()) == []
    assert hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest() == passwd


# -- a new output ----------------------------------------------------------------------------
def test_a_failed_first_bootstrap_leaves_no_output_behind(tmp_path):
    sdist = write_sdist(tmp_path / "dist" / "evil-1.0.tar.gz",
                        [special_member("evil-1.0/link", tarfile.SYMTYPE, "/etc/passwd")])
    output = tmp_path / "out"

    fails_cleanly("bootstrap", "no-such-package-mb-test-xyz", cwd=tmp_path, output=output)
    fails_cleanly("bootstrap", str(sdist), cwd=tmp_path, output=output)

    assert contents(output) == {}
    # ... but the refused sdist's job is in the audit log, with why.
    (job,) = [json.loads(line) for line in (output / AUDIT_LOG).read_text().splitlines()]
    assert (job["package"], job["version"], job["result"]) == ("evil", "1.0", "failed")
    assert "refusing member 'evil-1.0/link'" in job["message"]


def test_a_refused_sdist_stops_only_itself_under_keep_going(tmp_path):
    sdist = write_sdist(tmp_path / "dist" / "evil-1.0.tar.gz",
                        [special_member("evil-1.0/link", tarfile.SYMTYPE, "/etc/passwd")])
    proc = run_mirror_builder("bootstrap", str(sdist), "six==1.17.0", "--keep-going", "-o", "out",
                              cwd=tmp_path, check=False)
    assert proc.returncode == 1
    text = " ".join(proc.stderr.split())
    assert "failed evil==1.0: evil-1.0.tar.gz: refusing member 'evil-1.0/link'" in text
    assert list((tmp_path / "out" / "files" / "six").glob("six-1.17.0-*.whl"))

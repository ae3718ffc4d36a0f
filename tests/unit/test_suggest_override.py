"""A failed build that missed a header, pkg-config module, library or program: its error names
the thing, the Debian packages that have it in the target's release and the override to add;
`mirror-builder overrides suggest NAME` writes that override, keeping what the file holds."""

import os
import subprocess
import sys

import pytest
from packaging.requirements import Requirement

from mirror_builder.build.missing import Missing
from mirror_builder.build.suggest import FailureHints, suggest
from mirror_builder.cli.progress import QuietReporter
from mirror_builder.config.overrideedit import add_system_packages
from mirror_builder.config.overrides import load_package_settings
from mirror_builder.config.settings import load_settings
from mirror_builder.engine.bootstrap import Bootstrapper
from mirror_builder.engine.context import BuildTarget, Services
from mirror_builder.errors import BuildError, SettingsError
from mirror_builder.index.wheelindex import WheelIndex
from mirror_builder.sandbox.imagenames import ImageRef

from conftest import clean_environment, error_lines, write_settings
from debian_mirror import cache_contents_for, local_contents, write_mirror
from test_bootstrap import TARGET, FakeBuilder, FakeIndex, Package

RELEASE = "Debian bookworm (amd64)"
ZMQ_LINE = "src/zmqneed.c:1:10: fatal error: zmq.h: No such file or directory\n"


@pytest.fixture
def index(tmp_path):
    with local_contents(tmp_path / "cache", write_mirror(tmp_path / "mirror")).open() as opened:
        yield opened


def test_the_sentence_names_the_missing_thing_its_package_and_the_override_to_add(index):
    suggestion = suggest([Missing("header", "zmq.h")], index, RELEASE)
    assert suggestion.packages == ("libzmq3-dev",)
    assert suggestion.sentence("overrides/zmqneed.yaml", "zmqneed") == (
        "It is missing the header zmq.h (package libzmq3-dev) in Debian bookworm (amd64): add "
        "system_packages: [libzmq3-dev] to overrides/zmqneed.yaml, or run `mirror-builder "
        "overrides suggest zmqneed`")


def test_several_missing_things_each_with_its_packages_and_one_override_for_all(index):
    suggestion = suggest([Missing("pkg-config", "libxml-2.0"), Missing("program", "xsltproc"),
                          Missing("header", "nothere.h"), Missing("library", "openblas"),
                          Missing("header", "libxml/parser.h")], index, RELEASE)
    assert suggestion.packages == ("libxml2-dev", "xsltproc", "libopenblas-openmp-dev")
    assert suggestion.sentence("o/x.yaml", "x") == (
        "It is missing the pkg-config module libxml-2.0 (package libxml2-dev); the program "
        "xsltproc (package xsltproc); the header nothere.h (in no package); the library "
        "-lopenblas (package libopenblas-openmp-dev or libopenblas-pthread-dev); the header "
        "libxml/parser.h (package libxml2-dev) in Debian bookworm (amd64): add system_packages: "
        "[libxml2-dev, xsltproc, libopenblas-openmp-dev] to o/x.yaml, or run `mirror-builder "
        "overrides suggest x`")


def test_a_package_the_image_has_already_is_not_suggested_again(index):
    suggestion = suggest([Missing("header", "Python.h")], index, RELEASE,
                         installed=("libpython3.11-dev=3.11.2-6", "python3=3.11.2-1"))
    assert suggestion.packages == ()
    assert suggestion.sentence("o/x.yaml", "x") == (
        "It is missing the header Python.h (its package libpython3.11-dev is in the image "
        "already: the build does not look where Debian puts it) in Debian bookworm (amd64)")


def test_a_file_a_build_did_not_find_counts_only_if_debian_has_a_program_of_that_name(index):
    assert suggest([Missing("program", "README.rst", certain=False)], index, RELEASE) is None
    found = suggest([Missing("program", "xsltproc", certain=False)], index, RELEASE)
    assert found.packages == ("xsltproc",)


@pytest.mark.parametrize("name, packages", [
    ("ZLIB", ("zlib1g-dev",)),  # CMake's find module looks for zlib.h
    ("GTest", ("libgtest-dev",)),  # a package's own GTestConfig.cmake
    ("Eigen3", ("libeigen3-dev",)),
    ("Geos", ("libgeos-dev",)),  # no module, no config file: a pkg-config module geos
    ("Nothere", ()),
])
def test_a_cmake_package_is_found_by_what_cmake_looks_for(index, name, packages):
    suggestion = suggest([Missing("cmake", name)], index, RELEASE)
    assert suggestion.found[0].packages == packages


def test_failure_hints_read_the_log_and_say_nothing_when_it_names_nothing(tmp_path):
    contents = local_contents(tmp_path / "cache", write_mirror(tmp_path / "mirror"))
    hints = FailureHints(contents, tmp_path / "overrides")
    log = tmp_path / "zmqneed-1.0.log"
    log.write_text("compiling\n" + ZMQ_LINE + "error: command 'gcc' failed\n")
    hint = hints(log, "zmqneed", ())
    assert hint.startswith("It is missing the header zmq.h (package libzmq3-dev) in Debian "
                           "bookworm (amd64): add system_packages: [libzmq3-dev] to ")
    assert f"{tmp_path}/overrides/zmqneed.yaml" in hint
    log.write_text("error: the compiler ran out of memory\n")
    assert hints(log, "zmqneed", ()) is None


def test_when_debian_cannot_be_asked_the_missing_thing_is_still_named(tmp_path):
    contents = local_contents(tmp_path / "cache", (tmp_path / "no-mirror").as_uri())
    log = tmp_path / "zmqneed-1.0.log"
    log.write_text(ZMQ_LINE)
    hint = FailureHints(contents, tmp_path / "overrides")(log, "zmqneed", ())
    assert hint.startswith("It is missing the header zmq.h (Debian's Contents index of Debian "
                           "bookworm (amd64) could not be read: ")


# -- the engine: a failed build's error gains the sentence ------------------------------------
class MissingHeaderBuilder(FakeBuilder):
    """Builds like FakeBuilder, but a failing build's log says a header was missing."""

    def build(self, request):
        try:
            return super().build(request)
        except BuildError:
            request.log_path.write_text(f"[mirror-builder] note\n{ZMQ_LINE}")
            raise


def test_a_failed_build_s_error_names_the_missing_thing_the_package_and_the_override(tmp_path):
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text("cache_dir: cache\noutput_dir: out\noverrides_dir: overrides\n")
    settings = load_settings(settings_file)
    contents = local_contents(tmp_path / "cache", write_mirror(tmp_path / "mirror"))
    image = ImageRef("localhost/test:1", "sha256:0", "base", "Containerfile", "0", "test",
                     system_packages=("python3=3.11.2-1",))
    services = Services(settings=settings, target=BuildTarget(TARGET, image),
                        finder=FakeIndex(tmp_path, {"zmqneed": {"1.0": Package(fails=True)}}),
                        executor=MissingHeaderBuilder(tmp_path / "work"),
                        index=WheelIndex(tmp_path / "out"), reporter=QuietReporter(),
                        hints=FailureHints(contents, settings.overrides_dir))
    with pytest.raises(BuildError) as raised:
        Bootstrapper(services).run([Requirement("zmqneed")])
    message = str(raised.value)
    assert message.startswith("zmqneed==1.0: the compiler said no. It is missing the header "
                              "zmq.h (package libzmq3-dev) in Debian bookworm (amd64): add "
                              "system_packages: [libzmq3-dev] to ")
    assert message.endswith(f"; log: {tmp_path}/out/logs/zmqneed-1.0.log")
    assert "\n" not in message


# -- writing the override ------------------------------------------------------------------------
def test_the_override_file_is_made_when_there_is_none(tmp_path):
    added = add_system_packages(tmp_path / "overrides", "Zmq_Need", ["libzmq3-dev"])
    assert added.path == tmp_path / "overrides" / "zmq-need.yaml" and added.created
    assert added.path.read_text() == "system_packages: [libzmq3-dev]\n"


def test_packages_are_added_to_an_existing_file_and_everything_in_it_is_kept(tmp_path):
    path = tmp_path / "lxml.yaml"
    path.write_text("# lxml links Debian's libxml2\nenv:\n  WITH_XML2_CONFIG: xml2-config\n"
                    "system_packages:\n  - libxml2-dev   # the parser\n"
                    "changelog: {\"5.2.1\": [rebuilt]}\n")
    added = add_system_packages(tmp_path, "lxml", ["libxml2-dev", "libxslt1-dev", "xsltproc"])
    assert added.added == ("libxslt1-dev", "xsltproc") and not added.created
    assert path.read_text() == (
        "# lxml links Debian's libxml2\nenv:\n  WITH_XML2_CONFIG: xml2-config\n"
        "system_packages:\n  - libxml2-dev   # the parser\n  - libxslt1-dev\n  - xsltproc\n"
        "changelog: {\"5.2.1\": [rebuilt]}\n")
    settings = load_package_settings(tmp_path, "lxml")
    assert settings.system_packages == ("libxml2-dev", "libxslt1-dev", "xsltproc")
    assert settings.env == {"WITH_XML2_CONFIG": "xml2-config"}


def test_a_flow_list_gets_the_new_packages_and_nothing_is_added_twice(tmp_path):
    path = tmp_path / "pyzmq.yaml"
    path.write_text("system_packages: [libzmq3-dev]  # Debian's libzmq\ntimeout: 600\n")
    assert add_system_packages(tmp_path, "pyzmq", ["libzmq3-dev"]).added == ()
    assert path.read_text() == "system_packages: [libzmq3-dev]  # Debian's libzmq\ntimeout: 600\n"
    add_system_packages(tmp_path, "pyzmq", ["libsodium-dev"])
    assert path.read_text() == ("system_packages: [libzmq3-dev, libsodium-dev]  # Debian's "
                                "libzmq\ntimeout: 600\n")


def test_a_broken_override_file_is_refused_and_left_as_it_was(tmp_path):
    path = tmp_path / "foo.yaml"
    path.write_text("system_packages: [libfoo-dev]\nunknown_key: 1\n")
    with pytest.raises(SettingsError, match="unknown_key: unknown key"):
        add_system_packages(tmp_path, "foo", ["libbar-dev"])
    assert path.read_text() == "system_packages: [libfoo-dev]\nunknown_key: 1\n"


def test_a_result_that_would_not_load_is_put_back(tmp_path):
    with pytest.raises(SettingsError, match="'Not_A_Package' is not a Debian package name"):
        add_system_packages(tmp_path, "foo", ["Not_A_Package"])
    assert list(tmp_path.iterdir()) == []


# -- the command ---------------------------------------------------------------------------------
@pytest.fixture
def project(tmp_path):
    """A settings file, its Contents index cached as a real run leaves it, and an output whose
    logs/ holds failed builds."""
    settings_file = write_settings(tmp_path / "conf", cache_dir=str(tmp_path / "cache"),
                                   overrides_dir=str(tmp_path / "overrides"),
                                   output_dir=str(tmp_path / "out"))
    settings = load_settings(settings_file)
    cache_contents_for(settings, settings.default_target(), tmp_path / "mirror")
    (tmp_path / "out" / "logs").mkdir(parents=True)
    return settings_file


def suggest_command(settings_file, *args):
    return subprocess.run([sys.executable, "-m", "mirror_builder", "--settings",
                           str(settings_file), "overrides", "suggest", *args],
                          cwd=settings_file.parent, capture_output=True, text=True,
                          env=clean_environment())


def test_overrides_suggest_writes_the_override_from_the_failed_build_s_log(project, tmp_path):
    logs = tmp_path / "out" / "logs"
    (logs / "xmlneed-1.0.log").write_text("Package 'libxml-2.0', required by 'virtual:world', "
                                          "not found\nsh: 1: xsltproc: not found\n")
    (logs / "xmlneed-0.9.log").write_text(ZMQ_LINE)
    os.utime(logs / "xmlneed-0.9.log", (1, 1))  # older: 1.0 is the newest failed build
    proc = suggest_command(project, "xmlneed")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"{logs}/xmlneed-1.0.log: the pkg-config module libxml-2.0 (package libxml2-dev); the "
        f"program xsltproc (package xsltproc) in Debian bookworm (amd64)",
        f"wrote {tmp_path}/overrides/xmlneed.yaml: system_packages: [libxml2-dev, xsltproc]"]
    assert load_package_settings(tmp_path / "overrides", "xmlneed").system_packages == (
        "libxml2-dev", "xsltproc")
    again = suggest_command(project, "xmlneed==0.9")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == (f"added to {tmp_path}/overrides/xmlneed.yaml: "
                                             f"system_packages: [libzmq3-dev]")
    assert load_package_settings(tmp_path / "overrides", "xmlneed").system_packages == (
        "libxml2-dev", "xsltproc", "libzmq3-dev")
    once_more = suggest_command(project, "xmlneed==0.9")
    assert once_more.stdout.splitlines()[-1] == (
        f"{tmp_path}/overrides/xmlneed.yaml has system_packages [libzmq3-dev] already")


def test_overrides_suggest_without_a_failed_build_or_with_nothing_to_add_says_why(project,
                                                                                   tmp_path):
    proc = suggest_command(project, "nothing")
    assert proc.returncode == 1
    assert error_lines(proc.stderr) == [f"error: no log of a failed build of nothing in "
                                        f"{tmp_path}/out/logs (a failed bootstrap leaves its "
                                        f"log there)"]
    (tmp_path / "out" / "logs" / "oom-1.0.log").write_text("Killed\n")
    proc = suggest_command(project, "oom")
    assert error_lines(proc.stderr) == [f"error: {tmp_path}/out/logs/oom-1.0.log: the log names "
                                        f"no missing header, pkg-config module, library or "
                                        f"program; nothing to suggest"]
    (tmp_path / "out" / "logs" / "odd-1.0.log").write_text(
        "a.c:1:10: fatal error: nothere.h: No such file or directory\n")
    proc = suggest_command(project, "odd")
    assert error_lines(proc.stderr) == [
        f"error: {tmp_path}/out/logs/odd-1.0.log: It is missing the header nothere.h (in no "
        f"package) in Debian bookworm (amd64); there is no package to add"]
    assert not (tmp_path / "overrides").exists()
    assert "Traceback" not in proc.stderr


def test_overrides_suggest_needs_a_name(project):
    proc = suggest_command(project)
    assert proc.returncode == 1
    assert error_lines(proc.stderr) == [
        "error: overrides suggest needs a package NAME (or NAME==VERSION)"]


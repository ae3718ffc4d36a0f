"""The command line's answer to impossible requests: one `error:` line, exit status 2, nothing
written, and no traceback unless --debug asks for one (wherever on the line it is given)."""

import json
import subprocess
import sys

import pytest

from mirror_builder.cli import app as cli, inspecting
from mirror_builder.jobs.log import Job, JobLog

from conftest import REPO, clean_environment, error_lines, tree_digest

SETTINGS = str(REPO / "settings.yaml")


def mirror_builder(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mirror_builder", *args], cwd=cwd,
                          capture_output=True, text=True, env=clean_environment())


@pytest.mark.parametrize("command", [
    ["yank", "six==1.17.0"], ["index"], ["index", "--check"], ["history"], ["review", "list"],
    ["rebuild", "six==1.17.0", "--reason", "x"], ["update"], ["overrides", "suggest", "six"],
])
def test_an_output_option_that_names_a_file_is_refused_and_the_file_is_untouched(tmp_path, command):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine\n")
    proc = mirror_builder("--settings", SETTINGS, *command, "-o", str(a_file), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert error_lines(proc.stderr) == [f"error: {a_file} is a file, not an output directory"]
    assert "Traceback" not in proc.stderr
    assert a_file.read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("command", [["index"], ["yank", "six==1.17.0"], ["history"],
                                     ["review", "list"], ["overrides", "suggest", "six"]])
def test_a_command_that_amends_an_index_does_not_create_one_where_a_typo_points(tmp_path, command):
    missing = tmp_path / "ouptut"
    proc = mirror_builder("--settings", SETTINGS, *command, "-o", str(missing), cwd=tmp_path)
    assert proc.returncode == 2
    assert error_lines(proc.stderr) == [
        f"error: {missing}: no such output directory (bootstrap creates one)"]
    assert not missing.exists()


def test_settings_and_debug_are_accepted_after_the_command_too(tmp_path):
    bad = tmp_path / "settings.yaml"
    bad.write_text("output_dir: [unclosed\n")
    before = mirror_builder("--settings", str(bad), "history", cwd=tmp_path)
    after = mirror_builder("history", "--settings", str(bad), cwd=tmp_path)
    assert before.returncode == after.returncode == 1
    assert error_lines(before.stderr) == error_lines(after.stderr) != []
    assert str(bad) in error_lines(after.stderr)[0]
    traced = mirror_builder("history", "--settings", str(bad), "--debug", cwd=tmp_path)
    assert "Traceback" in traced.stderr
    assert "Traceback" not in after.stderr


def test_a_global_option_before_the_command_is_not_reset_by_the_command(tmp_path):
    args = cli.build_parser().parse_args(["--debug", "--settings", "a.yaml", "history"])
    assert args.debug is True and str(args.settings) == "a.yaml"
    args = cli.build_parser().parse_args(["history", "--settings", "b.yaml"])
    assert args.debug is False and str(args.settings) == "b.yaml"


def test_an_unforeseen_failure_is_one_line_that_points_at_debug(tmp_path, monkeypatch, capsys):
    def broken(args, console):
        raise RuntimeError("something nobody planned for")

    monkeypatch.setattr(inspecting, "_history", broken)
    assert cli.main(["--settings", SETTINGS, "history", "-o", str(tmp_path)]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "error: RuntimeError: something nobody planned for (run again with --debug" in err
    assert "Traceback" not in err


def test_job_logs_are_named_relative_to_the_output_so_a_moved_output_keeps_them(tmp_path, capsys):
    out = tmp_path / "out"
    log_file = out / "records" / "six" / "six-1.17.0-py3-none-any.whl.log"
    log_file.parent.mkdir(parents=True)
    log_file.write_text("the build's log\n")
    job = Job.start("approved", "six", "1.17.0", "bookworm-x86_64", "test")
    JobLog(out).append(job.finish("built", wheel="six-1.17.0-py3-none-any.whl", log_path=log_file))
    moved = tmp_path / "moved"
    out.rename(moved)
    (result,) = JobLog(moved).read()
    assert result.log_path == "records/six/six-1.17.0-py3-none-any.whl.log"
    assert JobLog(moved).log_file(result).read_text() == "the build's log\n"
    assert cli.main(["--settings", SETTINGS, "history", "--json", "-o", str(moved)]) == 0
    (shown,) = json.loads(capsys.readouterr().out)
    assert shown["log_path"] == "records/six/six-1.17.0-py3-none-any.whl.log"


def test_a_log_outside_the_output_keeps_its_absolute_path(tmp_path):
    elsewhere = tmp_path / "work" / "build.log"
    job = Job.start("approved", "six", "1.17.0", "bookworm-x86_64", "test")
    JobLog(tmp_path / "out").append(job.finish("failed", log_path=elsewhere))
    (result,) = JobLog(tmp_path / "out").read()
    assert result.log_path == str(elsewhere)


def test_refusing_bad_input_writes_nothing_into_an_existing_output(tmp_path):
    out = tmp_path / "out"
    (out / "simple").mkdir(parents=True)
    (out / "simple" / "index.html").write_text("<html></html>\n")
    before = tree_digest(out)
    proc = mirror_builder("--settings", SETTINGS, "yank", "not a pin", "-o", str(out), cwd=tmp_path)
    assert proc.returncode == 1
    assert len(error_lines(proc.stderr)) == 1
    assert tree_digest(out) == before

"""Specification of mirror_builder.resolve.inputs: what the user asks to build."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from mirror_builder.errors import MirrorBuilderError
from mirror_builder.resolve.inputs import Request, read_request


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def names(request: Request) -> list[str]:
    return [str(r) for r in request.requirements]


def error_of(*args, **kwargs) -> str:
    with pytest.raises(MirrorBuilderError) as excinfo:
        read_request(*args, **kwargs)
    return str(excinfo.value)


# -- requirements ----------------------------------------------------------------------------
def test_requirements_from_args_keep_their_order_and_specifiers():
    request = read_request(["requests>=2.31", "Flask[async]==3.0.0",
                            'tomli; python_version < "3.11"'], [], [])

    assert names(request) == ["requests>=2.31", "Flask[async]==3.0.0",
                              'tomli; python_version < "3.11"']
    assert request.requirements[1].extras == {"async"}
    assert request.constraints == {}
    assert request.direct == {}


def test_requirements_file_skips_comments_and_blank_lines(tmp_path):
    reqs = write(tmp_path / "requirements.txt", """\
        # the web stack

        requests>=2.31  # pinned for TLS fixes
        flask # inline comment

           # an indented comment
        attrs
        """)

    request = read_request([], [reqs], [])

    assert names(request) == ["requests>=2.31", "flask", "attrs"]


def test_requirements_file_with_windows_line_endings(tmp_path):
    reqs = tmp_path / "requirements.txt"
    reqs.write_bytes(b"requests\r\n# comment\r\nflask\r\n")

    assert names(read_request([], [reqs], [])) == ["requests", "flask"]


def test_args_come_before_requirements_files_in_order_given(tmp_path):
    one = write(tmp_path / "one.txt", "b\n")
    two = write(tmp_path / "two.txt", "c\n")

    assert names(read_request(["a"], [one, two], [])) == ["a", "b", "c"]


def test_nested_requirement_files_are_relative_to_the_including_file(tmp_path, monkeypatch):
    write(tmp_path / "reqs" / "base.txt", "attrs\n-r deeper/extra.txt\n")
    write(tmp_path / "reqs" / "deeper" / "extra.txt", "idna\n")
    write(tmp_path / "reqs" / "top.txt", """\
        requests
        -r base.txt  # shared pins
        --requirement   deeper/extra.txt
        flask
        """)
    monkeypatch.chdir(tmp_path)  # not the folder of the files

    request = read_request([], [Path("reqs/top.txt")], [])

    assert names(request) == ["requests", "attrs", "idna", "idna", "flask"]


def test_missing_requirements_file_is_an_error_naming_it(tmp_path):
    missing = tmp_path / "nope.txt"

    assert error_of([], [missing], []) == f"{missing}: file not found"


def test_missing_nested_requirements_file_is_an_error_naming_it(tmp_path):
    top = write(tmp_path / "top.txt", "a\n-r missing.txt\n")

    assert error_of([], [top], []) == f"{tmp_path / 'missing.txt'}: file not found"


def test_pip_options_in_a_requirements_file_are_refused_with_file_and_line(tmp_path):
    reqs = write(tmp_path / "requirements.txt", "requests\n--index-url https://example.org/\n")

    message = error_of([], [reqs], [])

    assert message.startswith(f"{reqs}:2: options are not supported here")
    assert "--index-url" in message


def test_inline_comment_after_a_tab_is_stripped(tmp_path):
    reqs = write(tmp_path / "requirements.txt", "requests\t# pinned elsewhere\n")

    assert names(read_request([], [reqs], [])) == ["requests"]


def test_requirements_file_including_itself_is_an_error(tmp_path):
    write(tmp_path / "a.txt", "attrs\n-r b.txt\n")
    write(tmp_path / "b.txt", "idna\n-r a.txt\n")

    message = error_of([], [tmp_path / "a.txt"], [])

    assert "a.txt" in message


# -- invalid requirements --------------------------------------------------------------------
def test_invalid_requirement_in_a_file_names_file_and_line(tmp_path):
    reqs = write(tmp_path / "requirements.txt", "# header\nrequests\n\nflask >>= 2\n")

    message = error_of([], [reqs], [])

    assert message.startswith(f"{reqs}:4: not a valid requirement 'flask >>= 2'")


def test_invalid_requirement_in_a_nested_file_names_that_file_and_its_line(tmp_path):
    write(tmp_path / "inner.txt", "ok\nnot a requirement!\n")
    top = write(tmp_path / "top.txt", "a\nb\n-r inner.txt\n")

    message = error_of([], [top], [])

    assert message.startswith(f"{tmp_path / 'inner.txt'}:2: not a valid requirement")


def test_invalid_requirement_on_the_command_line_says_so():
    message = error_of(["requests>=", "flask"], [], [])

    assert message.startswith("the command line: not a valid requirement 'requests>='")


def test_invalid_constraint_names_file_and_line(tmp_path):
    constraints = write(tmp_path / "constraints.txt", "idna<4\n\n=== bad\n")

    message = error_of(["requests"], [], [constraints])

    assert message.startswith(f"{constraints}:3: not a valid requirement")


# -- no requirements -------------------------------------------------------------------------
def test_no_requirements_at_all_is_an_error():
    assert error_of([], [], []).startswith("nothing to build")


def test_only_comments_and_constraints_is_still_nothing_to_build(tmp_path):
    reqs = write(tmp_path / "requirements.txt", "# nothing yet\n\n")
    constraints = write(tmp_path / "constraints.txt", "idna<4\n")

    assert error_of([], [reqs], [constraints]).startswith("nothing to build")


# -- constraints -----------------------------------------------------------------------------
def test_constraints_combine_specifiers_per_canonical_name(tmp_path):
    one = write(tmp_path / "c1.txt", "Foo_Bar>=1.0\nidna<4  # keep\n")
    two = write(tmp_path / "c2.txt", "foo.bar<2,!=1.5\n-r c3.txt\n")
    write(tmp_path / "c3.txt", "FOO-BAR!=1.7\n")

    request = read_request(["requests"], [], [one, two])

    assert request.constraints == {
        "foo-bar": SpecifierSet(">=1.0,<2,!=1.5,!=1.7"),
        "idna": SpecifierSet("<4"),
    }
    assert names(request) == ["requests"]  # constraints are not requirements


# -- local sdists ----------------------------------------------------------------------------
def test_local_sdist_path_becomes_a_pinned_direct_candidate(tmp_path):
    sdist = tmp_path / "dist" / "Foo_Bar-1.2.3.tar.gz"
    sdist.parent.mkdir()
    sdist.write_bytes(b"pretend this is a tarball")

    request = read_request([str(sdist), "requests"], [], [])

    assert names(request) == ["foo-bar==1.2.3", "requests"]
    candidate = request.direct["foo-bar"]
    assert list(request.direct) == ["foo-bar"]
    assert candidate.name == "foo-bar"
    assert candidate.version == Version("1.2.3")
    assert candidate.file.filename == "Foo_Bar-1.2.3.tar.gz"
    assert candidate.file.sha256 == hashlib.sha256(b"pretend this is a tarball").hexdigest()
    assert candidate.file.url == sdist.resolve().as_uri()
    assert candidate.file.is_sdist


def test_local_zip_sdist_in_a_requirements_file(tmp_path):
    sdist = tmp_path / "foo-2.0.zip"
    sdist.write_bytes(b"zip bytes")
    reqs = write(tmp_path / "requirements.txt", f"{sdist}  # local build\n")

    request = read_request([], [reqs], [])

    assert names(request) == ["foo==2.0"]
    assert request.direct["foo"].file.sha256 == hashlib.sha256(b"zip bytes").hexdigest()


def test_relative_local_sdist_path_on_the_command_line_is_relative_to_cwd(tmp_path, monkeypatch):
    (tmp_path / "foo-1.0.tar.gz").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)

    request = read_request(["foo-1.0.tar.gz"], [], [])

    assert request.direct["foo"].file.url == (tmp_path / "foo-1.0.tar.gz").resolve().as_uri()


def test_local_file_that_is_not_an_sdist_name_is_an_error(tmp_path):
    odd = tmp_path / "not_an_sdist.tar.gz"
    odd.write_bytes(b"x")

    message = error_of([str(odd)], [], [])

    assert message.startswith(f"{odd}: not an sdist file name")


def test_a_missing_sdist_path_is_an_error_not_a_requirement_for_a_strange_project(tmp_path):
    with pytest.raises(MirrorBuilderError, match="sdist file .*foo-1.0.tar.gz not found"):
        read_request([str(tmp_path / "foo-1.0.tar.gz")], [], [])

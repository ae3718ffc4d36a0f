"""A built wheel is untrusted input: only a sound wheel of the asked-for version gets through."""

import base64
import hashlib
import os
import stat
import zipfile

import pytest
from packaging.version import Version

from mirror_builder.build.wheelcheck import WheelRejected, check_built_wheel


def record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def make_wheel(folder, *, filename="demo-1.0-py3-none-any.whl", name="demo", version="1.0",
               dist_info="demo-1.0.dist-info", extra=None, record_extra=(), skip_record=(),
               link=None):
    files = {"demo/__init__.py": b"x = 1\n", **(extra or {})}
    files[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    files[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    rows = [record_line(p, d) for p, d in files.items() if p not in skip_record]
    rows += list(record_extra) + [f"{dist_info}/RECORD,,"]
    files[f"{dist_info}/RECORD"] = ("\n".join(rows) + "\n").encode()
    path = folder / filename
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)
        if link:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return path


def rejected(path, name="demo", version="1.0") -> str:
    with pytest.raises(WheelRejected) as caught:
        check_built_wheel(path, name, Version(version))
    return str(caught.value)


def test_a_sound_wheel_passes(tmp_path):
    check_built_wheel(make_wheel(tmp_path), "demo", Version("1.0"))


def test_names_and_versions_compare_in_normal_form(tmp_path):
    wheel = make_wheel(tmp_path, filename="Demo_Pkg-1.0.0-py3-none-any.whl", name="Demo.Pkg",
                       version="1.0.0", dist_info="Demo_Pkg-1.0.0.dist-info")
    check_built_wheel(wheel, "demo-pkg", Version("1.0"))


def test_a_link_instead_of_a_file_is_refused(tmp_path):
    os.symlink("/etc/passwd", tmp_path / "demo-1.0-py3-none-any.whl")
    assert "not a regular file" in rejected(tmp_path / "demo-1.0-py3-none-any.whl")


def test_a_file_that_is_not_a_zip_is_refused(tmp_path):
    (tmp_path / "demo-1.0-py3-none-any.whl").write_bytes(b"garbage")
    assert "not a readable zip archive" in rejected(tmp_path / "demo-1.0-py3-none-any.whl")


def test_a_wheel_named_for_another_project_or_version_is_refused(tmp_path):
    assert "is not a wheel of demo 1.0" in rejected(
        make_wheel(tmp_path, filename="other-1.0-py3-none-any.whl"))
    assert "is not a wheel of demo 2.0" in rejected(make_wheel(tmp_path), version="2.0")


def test_metadata_that_names_another_project_or_version_is_refused(tmp_path):
    assert "METADATA names the project 'other'" in rejected(make_wheel(tmp_path, name="other"))
    assert "METADATA gives version '6.6.6'" in rejected(make_wheel(tmp_path, version="6.6.6"))


def test_a_dist_info_folder_of_another_version_is_refused(tmp_path):
    assert "demo-2.0.dist-info is not demo 1.0" in rejected(
        make_wheel(tmp_path, dist_info="demo-2.0.dist-info"))


@pytest.mark.parametrize("path", ["../../etc/cron.d/evil", "/etc/evil", "demo/../../evil",
                                  "C:/evil", "demo\\..\\evil"])
def test_a_member_outside_the_install_tree_is_refused(tmp_path, path):
    assert "points outside the install tree" in rejected(make_wheel(tmp_path, extra={path: b"x"}))


def test_a_record_entry_outside_the_install_tree_is_refused(tmp_path):
    wheel = make_wheel(tmp_path, record_extra=["../../../usr/bin/evil,,"])
    assert "RECORD entry '../../../usr/bin/evil' points outside" in rejected(wheel)


def test_a_symbolic_link_member_is_refused(tmp_path):
    assert "is a symbolic link" in rejected(make_wheel(tmp_path, link="demo/passwd"))


def test_a_file_missing_from_record_is_refused(tmp_path):
    wheel = make_wheel(tmp_path, extra={"demo/hidden.py": b"x"}, skip_record=("demo/hidden.py",))
    assert "demo/hidden.py is not listed in RECORD" in rejected(wheel)


def test_a_file_that_differs_from_its_record_hash_is_refused(tmp_path):
    wheel = make_wheel(tmp_path, record_extra=[record_line("demo/data.txt", b"what RECORD says")],
                       extra={"demo/data.txt": b"what the archive holds"},
                       skip_record=("demo/data.txt",))
    assert "demo/data.txt does not match its RECORD entry" in rejected(wheel)


def test_a_record_entry_for_a_file_the_archive_lacks_is_refused(tmp_path):
    wheel = make_wheel(tmp_path, record_extra=[record_line("demo/ghost.py", b"x")])
    assert "RECORD lists demo/ghost.py, which the archive does not hold" in rejected(wheel)


def test_an_unknown_data_scheme_is_refused(tmp_path):
    wheel = make_wheel(tmp_path, extra={"demo-1.0.data/root/etc/evil": b"x"})
    assert "unknown install scheme 'root'" in rejected(wheel)


def test_a_member_stored_twice_is_refused(tmp_path):
    wheel = make_wheel(tmp_path)
    with zipfile.ZipFile(wheel, "a") as archive, pytest.warns(UserWarning):
        archive.writestr("demo/__init__.py", b"y = 2\n")
    assert "holds demo/__init__.py more than once" in rejected(wheel)

"""A stamped wheel is a normalized archive: the same files give the same bytes, whenever the
backend wrote them, in whatever order and with whatever times and modes; its content digest
leaves out only the build record it carries (and RECORD), so two builds compare by it."""

import stat
import zipfile

from mirror_builder.provenance.stamp import EMBEDDED_RECORD, content_digest, stamp_wheel

FILES = {"demo/__init__.py": b"X = 1\n", "demo/tool.sh": b"#!/bin/sh\n",
         "demo-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
         "demo-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\n"
                                     b"Tag: py3-none-any\n",
         "demo-1.0.dist-info/RECORD": b""}
EPOCH = 1_700_000_000


def backend_wheel(folder, order, date_time, mode):
    folder.mkdir(parents=True)
    wheel = folder / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in order:
            info = zipfile.ZipInfo(name, date_time=date_time)
            info.external_attr = ((0o775 if name.endswith(".sh") else mode) << 16)
            archive.writestr(info, FILES[name])
    return wheel


def stamped(tmp_path, label, order, date_time, mode, record=b"{}"):
    wheel = backend_wheel(tmp_path / label, order, date_time, mode)
    return stamp_wheel(wheel, tmp_path / f"{label}-out", number=0, numbering="build-tag",
                       embed={EMBEDDED_RECORD: record}, epoch=EPOCH)


def test_the_same_files_give_the_same_bytes_whatever_the_archive_looked_like(tmp_path):
    first = stamped(tmp_path, "a", list(FILES), (2024, 5, 1, 12, 0, 0), 0o664)
    second = stamped(tmp_path, "b", list(reversed(FILES)), (2026, 11, 30, 9, 30, 0), 0o600)
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        infos = archive.infolist()
        names = [i.filename for i in infos]
        assert names.index("demo/tool.sh") < names.index("demo-1.0.dist-info/METADATA")
        assert names[-1] == "demo-1.0.dist-info/RECORD"
        assert {i.date_time for i in infos} == {(2023, 11, 14, 22, 13, 20)}
        modes = {i.filename: i.external_attr >> 16 for i in infos}
        assert modes["demo/tool.sh"] & 0o777 == 0o755 and modes["demo/__init__.py"] & 0o777 == 0o644
        # pip makes an installed file executable only if the archive says it is a regular file
        assert all(stat.S_ISREG(mode) for mode in modes.values())
        assert {i.compress_type for i in infos} == {zipfile.ZIP_DEFLATED}


def test_the_content_digest_leaves_out_only_the_record_a_wheel_carries(tmp_path):
    first = stamped(tmp_path, "a", list(FILES), (2024, 5, 1, 12, 0, 0), 0o644,
                    record=b'{"started_at": "monday"}')
    second = stamped(tmp_path, "b", list(FILES), (2024, 5, 1, 12, 0, 0), 0o644,
                     record=b'{"started_at": "tuesday"}')
    assert first.read_bytes() != second.read_bytes()
    assert content_digest(first) == content_digest(second)
    FILES["demo/__init__.py"] = b"X = 2\n"
    try:
        third = stamped(tmp_path, "c", list(FILES), (2024, 5, 1, 12, 0, 0), 0o644)
    finally:
        FILES["demo/__init__.py"] = b"X = 1\n"
    assert content_digest(third) != content_digest(first)

"""The index's two views: everything at OUTPUT/simple/, and the wheels built from source alone
at OUTPUT/from-source/simple/ (gap-fill runs), each a whole index that serve answers for."""

import json

from mirror_builder.index.views import sync_from_source
from mirror_builder.index.wheelindex import WheelIndex, verify
from mirror_builder.index.wheelindex import SimpleIndex
from mirror_builder.serve.server import JSON_TYPE
from test_index import make_wheel
from test_server import request


def test_only_the_wheels_built_from_source_join_the_view_once(tmp_path):
    index = WheelIndex(tmp_path / "out")
    for name in ("ours-1.0-py3-none-any.whl", "theirs-2.0-py3-none-any.whl"):
        index.add(make_wheel(tmp_path, name), None)
    ours = lambda project, wheel: project == "ours"  # noqa: E731
    assert sync_from_source(index, ours) == 1
    assert sync_from_source(index, ours) == 1  # nothing added twice
    view = SimpleIndex(index.layout.from_source, "wheel")
    assert view.projects() == ["ours"] and verify(view) == []


def test_serve_answers_for_the_view_as_for_the_index(tmp_path):
    index = WheelIndex(tmp_path / "out")
    index.add(make_wheel(tmp_path, "ours-1.0-py3-none-any.whl"), None)
    sync_from_source(index, lambda project, wheel: True)
    status, _, body = request(index.root, "GET", "/from-source/simple/ours/", Accept=JSON_TYPE)
    assert status == 200
    (entry,) = json.loads(body)["files"]
    status, _, wheel = request(index.root, "GET", "/from-source/files/ours/" + entry["filename"])
    assert status == 200 and wheel == index.layout.file("ours", entry["filename"]).read_bytes()
    assert request(index.root, "GET", "/from-source/simple/theirs/")[0] == 404
    assert request(index.root, "GET", "/from-sourcex/simple/")[0] == 404

"""The flat find-links page: every wheel of the index on one page, kept current by every write
of the index (add, yank, regeneration), and read by pip's own --find-links."""

import re
import subprocess
import sys

from packaging.version import Version

from mirror_builder.index.wheelindex import WheelIndex
from test_index import make_wheel, sha256


def links(index: WheelIndex) -> list[str]:
    return re.findall(r'<a href="([^"]+)"', index.layout.find_links.read_text())


def test_each_added_wheel_is_linked_with_its_hash_in_file_name_order(tmp_path):
    index = WheelIndex(tmp_path / "out")
    for name in ("b-2.0-py3-none-any.whl", "a-1.1-py3-none-any.whl", "a-1.0-py3-none-any.whl"):
        index.add(make_wheel(tmp_path, name), None)
    wheel = index.layout.file("a", "a-1.0-py3-none-any.whl")
    assert links(index) == [
        f"files/a/a-1.0-py3-none-any.whl#sha256={sha256(wheel)}",
        f"files/a/a-1.1-py3-none-any.whl#sha256={sha256(index.layout.file('a', 'a-1.1-py3-none-any.whl'))}",
        f"files/b/b-2.0-py3-none-any.whl#sha256={sha256(index.layout.file('b', 'b-2.0-py3-none-any.whl'))}",
    ]


def test_a_yanked_version_leaves_the_page_and_comes_back_when_unyanked(tmp_path):
    index = WheelIndex(tmp_path / "out")
    for name in ("a-1.0-py3-none-any.whl", "a-1.1-py3-none-any.whl"):
        index.add(make_wheel(tmp_path, name), None)
    index.yank("a", Version("1.1"), "broken")
    assert [link.split("#")[0] for link in links(index)] == ["files/a/a-1.0-py3-none-any.whl"]
    index.yank("a", Version("1.1"), None, undo=True)
    assert len(links(index)) == 2


def test_a_regeneration_writes_it_whole_from_the_files(tmp_path):
    index = WheelIndex(tmp_path / "out")
    index.add(make_wheel(tmp_path, "a-1.0-py3-none-any.whl"), None)
    index.layout.find_links.unlink()
    index.add(make_wheel(tmp_path, "b-1.0-py3-none-any.whl"), None)
    assert [link.split("/")[1] for link in links(index)] == ["b"]  # only what it was told
    index.regenerate()
    assert [link.split("/")[1] for link in links(index)] == ["a", "b"]


def test_pip_installs_from_it_with_no_index(tmp_path):
    index = WheelIndex(tmp_path / "out")
    index.add(make_wheel(tmp_path, "a-1.0-py3-none-any.whl"), None)
    target = tmp_path / "target"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-index", "--no-cache-dir", "--target",
         str(target), "--find-links", index.layout.find_links.as_uri(), "a"],
        capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert list(target.glob("a-1.0.dist-info"))


def test_the_server_serves_it_as_html_and_nothing_named_like_it(tmp_path):
    from test_server import request

    index = WheelIndex(tmp_path / "out")
    index.add(make_wheel(tmp_path, "a-1.0-py3-none-any.whl"), None)
    status, headers, body = request(index.root, "GET", "/find-links.html")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert body == index.layout.find_links.read_bytes()
    for path in ("/find-links.htm", "/files/find-links.html", "/variants/x/find-links.html",
                 "/find-links.html/..%2Frecords"):
        assert request(index.root, "GET", path)[0] == 404, path

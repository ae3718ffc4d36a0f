"""The index server answers only with the index's own files: no name it is given, however
escaped, and no link under its root reaches anything else. Attacked on a real server on
127.0.0.1, with each path sent exactly as written."""

import os
from urllib.parse import parse_qs

import pytest

from server_harness import WHEEL, LiveServer, demo_index, server_errors

SECRET = b"SECRET-OUTSIDE-THE-INDEX"


@pytest.fixture
def setup(tmp_path, caplog):
    """An index, and beside it (outside the root) a folder that looks like a project page."""
    root = demo_index(tmp_path / "site")
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("index.html", "index.json", WHEEL, "secret.txt"):
        (outside / name).write_bytes(SECRET)
    server = LiveServer(root)
    yield server, root, outside
    server.close()
    assert server_errors(caplog) == []  # no 500, no traceback


def refused(reply) -> bool:
    """Not served, and not a crash: 400 or 404, nothing of the outside in the body."""
    return reply.status in (400, 404) and SECRET not in reply.body and b"Traceback" not in reply.body


def escaped(path) -> str:
    return str(path).replace("/", "%2F")


ROUTES = ["/simple/{}/", "/simple/{}", "/sources/simple/{}/", "/sources/simple/{}",
          f"/files/{{}}/{WHEEL}", "/files/demo/{}", "/sources/files/{}/demo-1.0.tar.gz",
          "/sources/files/demo/{}"]


@pytest.mark.parametrize("route", ROUTES)
def test_an_absolute_path_in_an_escaped_name_is_not_found(setup, route):
    server, _, outside = setup
    for target in (outside, outside / "secret.txt", outside / WHEEL):
        reply = server.get(route.format(escaped(target)))
        assert refused(reply), (route, reply)


CLIMBS = ["..", "%2e%2e", "%2E%2E", ".%2e", "..%2F..%2F..%2Foutside", "%2e%2e%2f%2e%2e%2foutside",
          "..%5C..%5Coutside", "%5C..%5Coutside", "demo%2F..%2F..%2F..%2Foutside",
          "..%2f..%2f..%2foutside%2fsecret.txt", "%2e%2e%2fsimple"]


@pytest.mark.parametrize("route", ROUTES)
def test_climbing_out_with_dots_and_escaped_separators_gets_nothing(setup, route):
    server, _, _ = setup
    for climb in CLIMBS:
        reply = server.get(route.format(climb))
        assert refused(reply), (route, climb, reply)


@pytest.mark.parametrize("route", ROUTES)
def test_a_nul_byte_or_an_over_long_name_is_a_plain_miss_not_a_crash(setup, route):
    server, _, _ = setup
    for name in ("%00", "demo%00", f"{WHEEL}%00.txt", "a" * 256, "b" * 1000, "%C3%A9" * 130):
        reply = server.get(route.format(name))
        assert refused(reply), (route, name[:20], reply)


def test_the_parent_folder_in_a_plain_path_gets_nothing_outside(setup):
    server, _, _ = setup
    for target in ("/simple/../../outside/index.html", "/files/../../outside/secret.txt",
                   "/files/demo/../../../outside/secret.txt", "/sources/../../outside/index.html"):
        assert refused(server.get(target)), target


@pytest.mark.parametrize("link, target", [
    ("simple/evil/index.html", "outside/index.html"),   # a page that is a link to a file
    ("simple/evil", "outside"),                          # a project folder that is a link
    ("sources/simple/evil/index.html", "outside/index.html"),
    ("sources/simple/evil", "outside"),
    ("files/demo/evil-1.0-py3-none-any.whl", f"outside/{WHEEL}"),
    ("files/evil", "outside"),
    ("sources/files/evil", "outside"),
])
def test_links_under_the_root_are_not_followed(setup, link, target):
    server, root, outside = setup
    path = root / link
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(outside.parent / target, path)
    for request in ("/simple/evil/", "/sources/simple/evil/", "/files/demo/evil-1.0-py3-none-any.whl",
                    f"/files/evil/{WHEEL}", "/files/evil/secret.txt", "/sources/files/evil/secret.txt"):
        for accept in ("text/html", "application/vnd.pypi.simple.v1+json"):
            reply = server.get(request, Accept=accept)
            assert refused(reply), (link, request, reply)


def test_a_link_inside_the_root_is_not_followed_either(setup):
    """No link is followed at all: one to another page of the index is refused too."""
    server, root, _ = setup
    os.symlink(root / "simple" / "demo", root / "simple" / "alias")
    assert server.get("/simple/alias/").status == 404
    assert server.get("/simple/demo/").status == 200


def test_a_gz_or_br_file_beside_a_page_is_never_served_in_its_place(setup):
    """aiohttp's FileResponse would send NAME.gz or NAME.br instead of NAME to a client that
    accepts gzip or brotli: files the index never wrote."""
    server, root, _ = setup
    for suffix in (".gz", ".br"):
        (root / "simple" / "demo" / f"index.html{suffix}").write_bytes(SECRET)
        (root / "files" / "demo" / f"{WHEEL}{suffix}").write_bytes(SECRET)
    for target in ("/simple/demo/", f"/files/demo/{WHEEL}"):
        reply = server.get(target, Accept_Encoding="gzip, br")
        assert reply.status == 200 and SECRET not in reply.body, target
        assert "content-encoding" not in reply.headers


def test_hidden_files_of_the_index_are_not_served(setup):
    server, _, _ = setup
    assert refused(server.get("/files/demo/.index.lock"))
    assert refused(server.get("/files/..%2F.index.lock"))


def test_names_that_are_not_project_names_are_not_redirected(setup):
    server, _, _ = setup
    for name in ("-demo", "demo-", "de mo", "de%20mo", "%2Fdemo", "de%2Fmo", "_", ".demo"):
        assert refused(server.get(f"/simple/{name}/")), name
        assert refused(server.get(f"/simple/{name}")), name


def test_a_valid_name_is_redirected_to_its_normalized_form_keeping_the_query(setup):
    server, _, _ = setup
    reply = server.get("/simple/De_Mo/?format=application%2Fvnd.pypi.simple.v1%2Bjson")
    assert reply.status == 301
    path, _, query = reply.headers["location"].partition("?")
    assert path == "/simple/de-mo/"
    assert parse_qs(query) == {"format": ["application/vnd.pypi.simple.v1+json"]}
    reply = server.get("/sources/simple/Demo?format=text/html")
    assert reply.status == 301
    assert reply.headers["location"] == "/sources/simple/demo/?format=text/html"
    reply = server.get("/simple?format=text/html")
    assert reply.status == 301 and reply.headers["location"] == "/simple/?format=text/html"


def test_the_index_itself_is_still_served(setup):
    server, _, _ = setup
    assert server.get("/simple/").status == 200
    assert b"demo" in server.get("/simple/demo/").body
    assert server.get(f"/files/demo/{WHEEL}").status == 200
    assert server.get(f"/files/demo/{WHEEL}.metadata").body.startswith(b"Metadata-Version")
    assert server.get("/sources/simple/demo/").status == 200
    assert server.get("/sources/files/demo/demo-1.0.tar.gz").status == 200

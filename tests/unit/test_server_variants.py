"""serve and the nginx site publish every build variant side by side: the default variant's index
at /simple/, each other declared variant's at /variants/<name>/simple/ (the path it has on
disk), and nothing else under variants/. Attacked on a real server on 127.0.0.1, each path sent
exactly as written."""

import json
import re
import shutil

import pytest

from mirror_builder.serve.nginx import NginxSite, render_site
from mirror_builder.errors import UsageError
from server_harness import WHEEL, LiveServer, demo_index, server_errors

SECRET = b"SECRET-OUTSIDE-THE-INDEX"
JSON = "application/vnd.pypi.simple.v1+json"


@pytest.fixture
def setup(tmp_path, caplog):
    """An output whose cuda variant holds a different demo wheel, a variant folder that settings
    do not declare (rocm), and outside the root a folder that looks like a variant."""
    root = demo_index(tmp_path / "site")
    cuda = demo_index(tmp_path / "cuda-site")
    (root / "variants").mkdir()
    shutil.move(cuda, root / "variants" / "cuda")
    (root / "variants" / "cuda" / "files" / "demo" / "marker.txt").write_bytes(b"cuda's")
    shutil.copytree(root / "variants" / "cuda", root / "variants" / "rocm")
    outside = tmp_path / "outside"
    (outside / "simple").mkdir(parents=True)
    for name in ("index.html", "index.json"):
        (outside / "simple" / name).write_bytes(SECRET)
    server = LiveServer(root, variants=("cuda",))
    yield server, root
    server.close()
    assert server_errors(caplog) == []


def refused(reply) -> bool:
    return reply.status in (400, 404) and SECRET not in reply.body and b"Traceback" not in reply.body


def test_each_variant_is_served_at_its_own_path_beside_the_default(setup):
    server, root = setup
    for prefix in ("", "/variants/cuda"):
        page = server.get(f"{prefix}/simple/demo/", Accept=JSON)
        assert page.status == 200, prefix
        (link,) = [f["url"] for f in json.loads(page.body)["files"] if f["filename"] == WHEEL]
        wheel = server.get(f"{prefix}/simple/demo/{link}".replace("/simple/demo/../../", "/"))
        disk = root / prefix.strip("/") / "files" / "demo" / WHEEL
        assert wheel.status == 200 and wheel.body == disk.read_bytes(), prefix
        assert server.get(f"{prefix}/sources/simple/demo/").status == 200
        assert server.get(f"{prefix}/simple/").status == 200


def test_a_variant_page_without_its_slash_is_redirected_within_the_variant(setup):
    server, _ = setup
    assert server.get("/variants/cuda/simple").headers["location"] == "/variants/cuda/simple/"
    reply = server.get("/variants/cuda/simple/De_Mo/")
    assert (reply.status, reply.headers["location"]) == (301, "/variants/cuda/simple/de-mo/")
    assert server.get("/variants/cuda/sources/simple/Demo").headers["location"] == \
        "/variants/cuda/sources/simple/demo/"


@pytest.mark.parametrize("path", [
    "/variants/rocm/simple/", "/variants/rocm/simple/demo/", f"/variants/rocm/files/demo/{WHEEL}",
    "/variants/cpu/simple/", "/variants/CUDA/simple/", "/variants/cuda/marker.txt",
    "/variants/cuda/files/demo/marker.txt%2F..", "/variants/simple/", "/variants/",
    "/variants/cuda/records/demo/x.build.json", "/variants/cuda/variants/cuda/simple/",
])
def test_an_undeclared_variant_or_anything_else_under_variants_is_not_found(setup, path):
    server, _ = setup
    reply = server.get(path)
    assert reply.status == 404, (path, reply)
    assert b"cuda's" not in reply.body


@pytest.mark.parametrize("variant", ["..", "%2e%2e", ".%2e", "..%2F..%2Foutside", "%2e%2e%2f%2e%2e",
                                     "cuda%2F..%2F..%2F..%2Foutside", "%2Fetc", "cuda%00", "a" * 300,
                                     "..%5C..%5Coutside", "."])
@pytest.mark.parametrize("route", ["/variants/{}/simple/", "/variants/{}/simple/demo/",
                                   f"/variants/{{}}/files/demo/{WHEEL}",
                                   "/variants/{}/sources/simple/demo/"])
def test_climbing_out_through_the_variant_segment_gets_nothing(setup, route, variant):
    server, _ = setup
    reply = server.get(route.format(variant))
    assert refused(reply) or (reply.status == 200 and SECRET not in reply.body), (route, reply)


def test_dots_in_a_plain_variant_path_reach_nothing_outside(setup):
    server, _ = setup
    for target in ("/variants/../simple/", "/variants/../../outside/simple/",
                   "/variants/cuda/../../../outside/simple/index.html",
                   "/variants/cuda/simple/../../../../outside/simple/"):
        reply = server.get(target)
        # A client or server that resolves the dots first lands on the default index at most.
        assert SECRET not in reply.body and reply.status in (200, 301, 400, 404), target


def test_a_variant_folder_that_is_a_link_is_not_followed(setup, tmp_path):
    server, root = setup
    shutil.rmtree(root / "variants" / "cuda")
    (root / "variants" / "cuda").symlink_to(tmp_path / "outside")
    assert refused(server.get("/variants/cuda/simple/"))


def test_the_landing_page_names_every_variants_index(setup):
    server, _ = setup
    text = server.get("/").body.decode()
    assert "cuda: http://127.0.0.1/variants/cuda/simple/" in text
    assert "rocm" not in text


def test_without_declared_variants_nothing_under_variants_is_served(tmp_path):
    root = demo_index(tmp_path / "site")
    shutil.copytree(root, tmp_path / "copy")
    shutil.move(tmp_path / "copy", root / "variants" / "cuda")
    server = LiveServer(root)
    try:
        assert server.get("/variants/cuda/simple/").status == 404
        assert "variants" not in server.get("/").body.decode()
    finally:
        server.close()


# -- nginx ---------------------------------------------------------------------------------------
@pytest.fixture
def output(tmp_path):
    (tmp_path / "out" / "simple").mkdir(parents=True)
    return tmp_path / "out"


def served_patterns(text: str) -> list[str]:
    return re.findall(r"location ~ (\S+) \{", text)


def test_nginx_serves_the_declared_variants_under_their_prefix_and_nothing_else(output):
    patterns = served_patterns(render_site(NginxSite(root=output, variants=("cuda", "cu12.8"))))
    for path in ("/variants/cuda/simple/six/", f"/variants/cu12.8/files/six/{WHEEL}",
                 "/variants/cuda/sources/simple/", "/simple/six/", f"/files/six/{WHEEL}"):
        assert any(re.search(p, path) for p in patterns), path
    for path in ("/variants/rocm/simple/six/", "/variants/cu1208/simple/", "/variants/simple/",
                 "/variants/cuda/records/six/x.build.json", "/variants/cuda/variants/cuda/simple/",
                 "/variants/../simple/six/x"):
        assert not any(re.search(p, path) for p in patterns), path


def test_nginx_without_variants_serves_no_variant_path(output):
    patterns = served_patterns(render_site(NginxSite(root=output)))
    assert not any(re.search(p, "/variants/cuda/simple/six/") for p in patterns)


@pytest.mark.parametrize("name", ["cu;da", "a b", "$x", "../x", "CUDA", "{x}"])
def test_nginx_refuses_a_variant_name_it_would_read_as_syntax(output, name):
    with pytest.raises(UsageError, match="is not a variant name"):
        render_site(NginxSite(root=output, variants=(name,)))

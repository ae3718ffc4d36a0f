"""Each wheel's signed statement is offered at a stable URL that its project page names (PEP
740's provenance key and data-provenance attribute), and the signing keys at the index's root;
nothing else beside them is served."""

import json
import zipfile

import pytest

from mirror_builder.index.wheelindex import WheelIndex, verify
from mirror_builder.layout import OutputLayout
from mirror_builder.provenance.signing import generate_key, load_signer, publish_key
from mirror_builder.serve.server import JSON_TYPE
from test_server import request


@pytest.fixture
def signed_output(tmp_path):
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
        zf.writestr("demo-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\n")
        zf.writestr("demo-1.0.dist-info/RECORD", "")
    layout = OutputLayout(tmp_path / "out")
    signer = load_signer(generate_key(tmp_path / "signing.key")[0])
    publish_key(layout, signer)
    envelope = signer.envelope({"_type": "https://in-toto.io/Statement/v1", "subject": []})
    layout.provenance("demo", wheel.name).parent.mkdir(parents=True)
    layout.provenance("demo", wheel.name).write_text(json.dumps(envelope))
    WheelIndex(layout.root).add(wheel)
    return layout, signer, envelope


def test_the_project_page_names_each_wheels_provenance_in_both_forms(signed_output):
    layout, _, _ = signed_output
    (entry,) = json.loads(layout.json_page("demo").read_text())["files"]
    assert entry["provenance"] == "../../files/demo/demo-1.0-py3-none-any.whl.provenance"
    assert 'data-provenance="../../files/demo/demo-1.0-py3-none-any.whl.provenance"' in \
        layout.html_page("demo").read_text()
    assert verify(WheelIndex(layout.root)) == []


def test_a_wheel_without_a_statement_has_no_provenance_key(tmp_path):
    wheel = tmp_path / "plain-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("plain-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: plain\nVersion: 1.0\n")
    index = WheelIndex(tmp_path / "out")
    index.add(wheel)
    assert "provenance" not in index.entries("plain")[0]


def test_the_server_serves_the_statement_and_the_keys_and_nothing_beside_them(signed_output):
    layout, signer, envelope = signed_output
    status, headers, body = request(layout.root, "GET", "/simple/demo/", Accept=JSON_TYPE)
    url = json.loads(body)["files"][0]["provenance"].replace("../..", "")
    status, headers, body = request(layout.root, "GET", url)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == envelope
    status, headers, body = request(layout.root, "GET", "/signing-key.pub")
    assert status == 200 and body == layout.public_key.read_bytes()
    status, _, body = request(layout.root, "GET", f"/keys/{signer.keyid}.pub")
    assert status == 200 and body == layout.public_key.read_bytes()
    for path in ("/keys/%2e%2e/%2e%2e/etc/passwd", "/keys/abc.pub", "/keys/../signing.key",
                 f"/keys/{'0' * 64}.pub", "/keys/", "/records/demo/", "/signing.key",
                 "/variants/cuda/signing-key.pub"):
        assert request(layout.root, "GET", path)[0] == 404, path

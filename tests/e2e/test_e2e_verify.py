"""End-to-end: `verify` rebuilds published wheels from their recorded inputs in real containers,
varying the build folder, host name, CPUs and environment order, and compares the bytes.
markupsafe (a C extension) and setuptools come back bit-identical; unrepro, which writes its
host name and build folder into its wheel, is caught, with diffoscope's report of exactly
that; a changed input is named instead of being called a mismatch."""

import base64
import json
import shutil

import pytest
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

from conftest import FIXTURES, make_sdist, run_mirror_builder, wheel_sbom
from mirror_builder.layout import OutputLayout
from mirror_builder.provenance.signing import key_id, load_public

pytestmark = pytest.mark.e2e

MARKUPSAFE = "3.0.2"


@pytest.fixture(scope="module")
def verified(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("verify")
    sdist = make_sdist(FIXTURES / "unrepro", work / "dist", "unrepro", "1.0")
    # Built here, not taken from the machine's build cache (where a wheel may have been built
    # by an earlier mirror-builder, without an SBOM).
    run_mirror_builder("bootstrap", f"markupsafe=={MARKUPSAFE}", str(sdist), "-o", "out",
                       "--no-build-cache", cwd=work)
    proc = run_mirror_builder("verify", "--all", "--json", "-o", "out", cwd=work, check=False)
    results = {r["name"]: r for r in json.loads(proc.stdout)["results"]}
    return {"work": work, "out": work / "out", "proc": proc, "results": results}


def statement(out, name, wheel):
    envelope = json.loads((out / "records" / name / f"{wheel}.verification.json").read_text())
    return envelope, json.loads(base64.b64decode(envelope["payload"]))


def test_a_c_extension_and_a_pure_wheel_rebuild_bit_identical_with_everything_varied(verified):
    results = verified["results"]
    assert {results[n]["status"] for n in ("markupsafe", "setuptools")} == {"reproduced"}
    varied = results["markupsafe"]["varied"]
    assert varied["build_dir"].startswith("/tmp/mb-verify-")
    assert varied["hostname"].startswith("verify-") and varied["environment_order"] == "reversed"
    log = (verified["out"] / "records" / "markupsafe" /
           f"{results['markupsafe']['wheel']}.verify.log").read_text()
    assert varied["build_dir"].removesuffix("/src") in log  # the rebuild really ran there


def test_the_wheel_that_writes_down_where_it_was_built_is_caught_with_diffoscopes_report(verified):
    assert verified["proc"].returncode == 1, verified["proc"].stderr
    unrepro = verified["results"]["unrepro"]
    assert unrepro["status"] == "differs"
    assert unrepro["summary"] == "differs: content of unrepro/_where.py"
    report = (verified["out"] / "records" / "unrepro" /
              f"{unrepro['wheel']}.diffoscope.txt").read_text()
    assert "HOST = 'mirror-builder'" in report  # the build's fixed host name ...
    assert f"HOST = '{unrepro['varied']['hostname']}'" in report  # ... and the rebuild's
    assert "BUILT_IN = '/tmp/mb-work/src'" in report
    assert "differs: content of unrepro/_where.py" in " ".join(verified["proc"].stderr.split())


def test_each_result_is_a_signed_verification_summary_another_tool_accepts(verified):
    out = verified["out"]
    public = load_public(OutputLayout(out).public_key)
    trusted = SSlibKey.from_crypto(public, keyid=key_id(public))
    expected = {"markupsafe": "PASSED", "setuptools": "PASSED", "unrepro": "FAILED"}
    for name, result in expected.items():
        envelope, found = statement(out, name, verified["results"][name]["wheel"])
        Envelope.from_dict(envelope).verify([trusted], 1)
        record = json.loads((out / "records" / name /
                             f"{verified['results'][name]['wheel']}.build.json").read_text())
        assert found["predicateType"] == "https://slsa.dev/verification_summary/v1"
        assert found["subject"][0]["digest"]["sha256"] == record["wheel_sha256"]
        assert found["predicate"]["verificationResult"] == result, name


def test_inspect_shows_the_last_verification_and_checks_its_signature(verified):
    work = verified["work"]
    shown = run_mirror_builder("inspect", f"markupsafe=={MARKUPSAFE}", "-o", "out", cwd=work)
    text = " ".join(shown.stdout.split())
    assert "verified PASSED" in text and "reproduced, bit-identical" in text
    checked = run_mirror_builder("inspect", "--verify", "unrepro==1.0", "-o", "out", cwd=work)
    assert "signature holds: unrepro-1.0-py3-none-any.whl.verification.json" in \
        " ".join(checked.stderr.split())


def test_a_missing_sdist_is_named_as_why_it_cannot_be_exact_and_a_replaced_wheel_differs(
        verified, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(verified["out"], out)
    (out / "sources" / "files" / "markupsafe" / f"markupsafe-{MARKUPSAFE}.tar.gz").unlink()
    proc = run_mirror_builder("verify", f"markupsafe=={MARKUPSAFE}", "-o", "out", "--json",
                              cwd=tmp_path, check=False)
    assert proc.returncode == 3, proc.stderr
    (result,) = json.loads(proc.stdout)["results"]
    assert result["status"] == "unverifiable"
    assert result["summary"].startswith(f"cannot be exact: the archived sdist markupsafe-"
                                        f"{MARKUPSAFE}.tar.gz")
    (wheel,) = (out / "files" / "setuptools").glob("*.whl")
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    setuptools = verified["results"]["setuptools"]["version"]
    proc = run_mirror_builder("verify", f"setuptools=={setuptools}", "-o", "out", "--json",
                              cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert "replaced after publishing" in json.loads(proc.stdout)["results"][0]["summary"]


def test_verify_wants_one_version_or_all(verified):
    proc = run_mirror_builder("verify", "-o", "out", cwd=verified["work"], check=False)
    assert proc.returncode == 2 and "NAME==VERSION or --all" in proc.stderr


def test_each_wheel_carries_an_sbom_naming_the_debian_packages_it_links_to(verified):
    out = verified["out"]
    (markupsafe,) = (out / "files" / "markupsafe").glob("*.whl")
    record = json.loads((out / "records" / "markupsafe" / f"{markupsafe.name}.build.json")
                        .read_text())
    sbom = wheel_sbom(markupsafe)
    assert sbom["metadata"]["component"]["purl"].startswith(f"pkg:pypi/markupsafe@{MARKUPSAFE}")
    (libc,) = sbom["components"]  # its extension links glibc alone
    installed = dict(p.split("=", 1) for p in record["image"]["system_packages"])
    assert libc["name"] == "libc6" and libc["version"] == installed["libc6"]
    assert libc["purl"].startswith("pkg:deb/debian/libc6@") and "distro=debian-12" in libc["purl"]
    assert [lib["soname"] for lib in record["linked"]] == ["libc.so.6"]
    (unrepro,) = (out / "files" / "unrepro").glob("*.whl")
    assert wheel_sbom(unrepro)["components"] == []  # pure Python: nothing but itself

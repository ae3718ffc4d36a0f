"""The SBOM a wheel carries: CycloneDX 1.6 that CycloneDX's own validator accepts, naming the
wheel, the crates vendored into it and the Debian packages it links to (copied in by auditwheel
or expected from the system), the same bytes for the same build."""

import json

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from mirror_builder.provenance.sbom import sbom_bytes, sbom_document, sbom_member

LIBYAML = {"soname": "libyaml-0.so.2", "path": "/lib/x86_64-linux-gnu/libyaml-0.so.2",
           "package": "libyaml-0-2", "version": "0.2.5-1", "architecture": "amd64",
           "distro": "debian-12"}
LIBC = {"soname": "libc.so.6", "path": "/lib/x86_64-linux-gnu/libc.so.6", "package": "libc6",
        "version": "2.36-9+deb12u10", "architecture": "amd64", "distro": "debian-12"}


def a_record(**changes) -> dict:
    record = {
        "name": "PyYAML", "version": "6.0.2", "wheel_version": "6.0.2",
        "wheel": "pyyaml-6.0.2-1-cp311-cp311-manylinux_2_34_x86_64.whl",
        "source": {"url": "https://files.example/pyyaml-6.0.2.tar.gz", "sha256": "ab" * 32,
                   "origin": {"kind": "sdist", "vendored_crates": [
                       {"name": "memchr", "version": "2.7.4", "checksum": "cd" * 32},
                       {"name": "zerocopy", "version": "0.8.1", "checksum": None}]}},
        "target": {"name": "bookworm-x86_64"}, "build_key": "ef" * 32,
        "environment": {"SOURCE_DATE_EPOCH": "1700000000"}, "started_at": "2026-11-30T00:00:00",
        "repair": {"bundled": ["libyaml-0-1b2c3d4e.so.2"]},
        "linked": [LIBC, LIBYAML],
    }
    record.update(changes)
    return record


def test_cyclonedx_s_own_validator_accepts_it():
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(sbom_bytes(a_record()).decode())
    assert errors is None, errors


def test_it_names_the_wheel_its_sdist_and_everything_built_into_it():
    document = sbom_document(a_record())
    assert document["specVersion"] == "1.6"
    main = document["metadata"]["component"]
    assert main["purl"].startswith("pkg:pypi/pyyaml@6.0.2?file_name=pyyaml-6.0.2-1-")
    assert main["externalReferences"][0]["hashes"] == [{"alg": "SHA-256", "content": "ab" * 32}]
    purls = [c["purl"] for c in document["components"]]
    assert purls == ["pkg:cargo/memchr@2.7.4", "pkg:cargo/zerocopy@0.8.1",
                     "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64&distro=debian-12",
                     "pkg:deb/debian/libyaml-0-2@0.2.5-1?arch=amd64&distro=debian-12"]
    memchr, zerocopy = document["components"][:2]
    assert memchr["hashes"] == [{"alg": "SHA-256", "content": "cd" * 32}]
    assert "hashes" not in zerocopy  # no checksum known: none claimed
    (depends,) = [d for d in document["dependencies"] if d["ref"] == main["bom-ref"]]
    assert sorted(depends["dependsOn"]) == sorted(c["bom-ref"] for c in document["components"])


def test_it_says_which_libraries_auditwheel_copied_in_and_which_come_from_the_system():
    by_name = {c["name"]: c["properties"][0]["value"]
               for c in sbom_document(a_record())["components"]}
    assert by_name["libyaml-0-2"] == ("libyaml-0.so.2: copied into the wheel by auditwheel as "
                                      "libyaml-0-1b2c3d4e.so.2")
    assert by_name["libc6"].startswith("libc.so.6: linked, expected from the system")


def test_the_same_build_makes_the_same_bytes_and_other_content_another_serial():
    assert sbom_bytes(a_record()) == sbom_bytes(a_record(build_key="00" * 32))
    first = json.loads(sbom_bytes(a_record()))
    other = json.loads(sbom_bytes(a_record(linked=[LIBC])))
    assert first["serialNumber"] != other["serialNumber"]
    assert first["metadata"]["timestamp"] == "2023-11-14T22:13:20Z"  # SOURCE_DATE_EPOCH


def test_a_pure_wheel_without_crates_or_libraries_has_just_itself():
    record = a_record(linked=[], repair=None,
                      source={"url": "u", "sha256": "ab" * 32, "origin": {"kind": "sdist"}})
    document = sbom_document(record)
    assert document["components"] == []
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(document)) is None


def test_it_lives_in_pep_770_s_folder():
    assert sbom_member("PyYAML") == "sboms/pyyaml.cdx.json"

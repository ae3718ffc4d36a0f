"""The build record and its in-toto / SLSA statement (mirror_builder/provenance.py), and the
record's JSON Schema (mirror_builder/data/build-record.schema.json)."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
from packaging.version import Version

import mirror_builder
from mirror_builder.config.overrides import PackageSettings
from mirror_builder.provenance.record import RECORD_SCHEMA, SLSA_BUILD_TYPE, BuildRecord, Rebuild, slsa_statement

SCHEMA_PATH = Path(mirror_builder.__file__).parent / "data" / "build-record.schema.json"

SDIST_SHA = hashlib.sha256(b"sdist").hexdigest()
SETUPTOOLS_SHA = hashlib.sha256(b"setuptools wheel").hexdigest()
WHEEL_PKG_SHA = hashlib.sha256(b"wheel wheel").hexdigest()
PATCH_SHA = hashlib.sha256(b"a patch").hexdigest()
PATCH2_SHA = hashlib.sha256(b"another patch").hexdigest()
IMAGE_HEX = hashlib.sha256(b"image").hexdigest()
WHEEL_SHA = hashlib.sha256(b"the published wheel").hexdigest()
SETTINGS = {"build": {"timeout_seconds": 3600, "memory": "8g", "pids_limit": 4096},
            "rebuild_numbering": "build-tag",
            # as the record holds it: through JSON, so tuples are lists
            "package": json.loads(json.dumps(PackageSettings(
                "six", changelog={Version("1.16.0"): ("rebuilt against openssl 3.0.13",)}).as_dict())),
            "plugin": None}


def make_record(**changes) -> BuildRecord:
    """A record with the values Bootstrapper._publish fills in for a second rebuild of six."""
    record = BuildRecord(
        name="six",
        version="1.16.0",
        wheel="six-1.16.0-2-py2.py3-none-any.whl",
        wheel_version="1.16.0",
        source={"url": "https://files.pythonhosted.org/packages/71/39/six-1.16.0.tar.gz",
                "filename": "six-1.16.0.tar.gz", "sha256": SDIST_SHA,
                "sha256_checked_against_index": True, "origin": {"kind": "sdist"}},
        patches=[{"name": "0001-fix-tests.patch", "sha256": PATCH_SHA},
                 {"name": "0002-no-network.patch", "sha256": PATCH2_SHA}],
        settings=copy.deepcopy(SETTINGS),
        build_system={"requires": ["setuptools>=40.8.0"],
                      "backend": "setuptools.build_meta:__legacy__", "backend_path": []},
        backend_requires=["wheel"],
        build_env={"freeze": ["setuptools==69.0.3", "wheel==0.42.0"],
                   "wheels": [{"filename": "setuptools-69.0.3-py3-none-any.whl",
                               "sha256": SETUPTOOLS_SHA},
                              {"filename": "wheel-0.42.0-py3-none-any.whl",
                               "sha256": WHEEL_PKG_SHA}]},
        target={"name": "bookworm-x86_64", "python_full_version": "3.11.2",
                "platform_machine": "x86_64", "sys_platform": "linux"},
        image={"tag": "localhost/mirror-builder-bookworm-x86_64:0123456789abcdef",
               "id": f"sha256:{IMAGE_HEX}", "base": "localhost/mirror-builder-base:bookworm@sha256:0",
               "containerfile": "/work/containerfiles/bookworm/Containerfile",
               "containerfile_sha256": hashlib.sha256(b"FROM debian").hexdigest(),
               "target": "bookworm-x86_64", "system_packages": ("gcc=4:12.2.0-3", "libc6=2.36-9"),
               "layer_packages": ()},
        sandbox={"network": "none", "hostname": "mirror-builder", "user": "builder (uid 1000)", "capabilities": "all dropped",
                 "no_new_privileges": True, "memory": "8g", "pids_limit": 4096,
                 "timeout_seconds": 3600, "cpus": None,
                 "root_filesystem": "read-only; writable: /out and a fresh /tmp",
                 "in_memory": ["/tmp/mb-work (2048m)"],
                 "user_namespace": {"uid_map": "0 2147483647 65534",
                                    "gid_map": "0 2147483647 65534"},
                 "host": {"executor": "dask", "name": "wbook", "id": "Worker-c6acd0a1",
                          "address": "tls://10.0.0.5:44469", "host": "build-3",
                          "kernel": "6.1.0-27-amd64", "podman": "podman version 4.3.1",
                          "image_id": "f6312959192b", "image_tag": "localhost/mb:c98060f0"}},
        command=["python3", "/mb/mb_driver.py", "/job/job.json"],
        environment={"SOURCE_DATE_EPOCH": "1620000000", "PYTHONHASHSEED": "0"},
        started_at="2024-03-01T10:00:00.123456+00:00",
        ended_at="2024-03-01T10:00:12.654321+00:00",
        seconds=12.531,
        exit_status=0,
        rebuild=Rebuild(number=2, numbering="build-tag", reason="openssl update",
                        changelog=("rebuilt against openssl 3.0.13",)),
        required_by=["requests==2.31.0", "urllib3==2.2.1"],
        log="six-1.16.0-2-py2.py3-none-any.whl.log",
        timings={"install_env": 3.2, "build": 8.1, "container": 12.4},
    )
    return replace(record, **changes)


def as_written(data: dict) -> dict:
    """The record as it is stored: through JSON, the way RecordStore writes it."""
    return json.loads(json.dumps(data))


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def validate(schema: dict, data: dict) -> None:
    jsonschema.Draft202012Validator(schema).validate(data)


# -- BuildRecord ---------------------------------------------------------------------------------

def test_to_dict_has_settings_sha256_and_no_wheel_sha256():
    data = make_record().to_dict()

    expected = hashlib.sha256(json.dumps(SETTINGS, sort_keys=True).encode()).hexdigest()
    assert data["settings_sha256"] == expected
    assert "wheel_sha256" not in data


def test_to_dict_with_wheel_sha256_adds_only_that():
    record = make_record()

    with_hash = record.to_dict(wheel_sha256=WHEEL_SHA)

    assert with_hash["wheel_sha256"] == WHEEL_SHA
    assert {k: v for k, v in with_hash.items() if k != "wheel_sha256"} == record.to_dict()


def test_to_dict_holds_the_fields_schema_and_version():
    data = as_written(make_record().to_dict())

    assert data["schema"] == RECORD_SCHEMA == "mirror-builder/build-record/v1"
    assert data["mirror_builder_version"] == mirror_builder.__version__
    assert data["rebuild"] == {"number": 2, "numbering": "build-tag", "reason": "openssl update",
                               "changelog": ["rebuilt against openssl 3.0.13"]}
    assert data["built_from_source"] is True
    assert data["source"]["sha256"] == SDIST_SHA
    assert data["image"]["system_packages"] == ["gcc=4:12.2.0-3", "libc6=2.36-9"]


def test_settings_sha256_ignores_key_order_and_follows_the_values():
    reordered = dict(reversed(list(copy.deepcopy(SETTINGS).items())))
    changed = copy.deepcopy(SETTINGS)
    changed["build"]["memory"] = "4g"

    assert make_record(settings=reordered).settings_sha256 == make_record().settings_sha256
    assert make_record(settings=changed).settings_sha256 != make_record().settings_sha256


# -- SLSA statement ---------------------------------------------------------------------------------

@pytest.fixture
def statement() -> dict:
    return slsa_statement(as_written(make_record().to_dict(wheel_sha256=WHEEL_SHA)))


def test_statement_is_an_in_toto_v1_statement_about_the_wheel(statement):
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"] == [{"name": "six-1.16.0-2-py2.py3-none-any.whl",
                                     "digest": {"sha256": WHEEL_SHA}}]
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert statement["predicate"]["buildDefinition"]["buildType"] == SLSA_BUILD_TYPE


def test_statement_resolved_dependencies_are_sdist_env_wheels_patches_and_image(statement):
    dependencies = statement["predicate"]["buildDefinition"]["resolvedDependencies"]

    assert dependencies == [
        {"uri": "https://files.pythonhosted.org/packages/71/39/six-1.16.0.tar.gz",
         "name": "six-1.16.0.tar.gz", "digest": {"sha256": SDIST_SHA}},
        {"uri": "wheel:setuptools-69.0.3-py3-none-any.whl",
         "name": "setuptools-69.0.3-py3-none-any.whl", "digest": {"sha256": SETUPTOOLS_SHA}},
        {"uri": "wheel:wheel-0.42.0-py3-none-any.whl",
         "name": "wheel-0.42.0-py3-none-any.whl", "digest": {"sha256": WHEEL_PKG_SHA}},
        {"uri": "patch:0001-fix-tests.patch", "name": "0001-fix-tests.patch",
         "digest": {"sha256": PATCH_SHA}},
        {"uri": "patch:0002-no-network.patch", "name": "0002-no-network.patch",
         "digest": {"sha256": PATCH2_SHA}},
        {"uri": "oci:localhost/mirror-builder-bookworm-x86_64:0123456789abcdef",
         "name": "build image", "digest": {"sha256": IMAGE_HEX}},
    ]


def test_statement_image_digest_is_the_bare_hex_whether_or_not_the_id_has_a_prefix():
    bare = make_record(image={**make_record().image, "id": IMAGE_HEX})

    statement = slsa_statement(as_written(bare.to_dict(wheel_sha256=WHEEL_SHA)))

    image = statement["predicate"]["buildDefinition"]["resolvedDependencies"][-1]
    assert image["digest"] == {"sha256": IMAGE_HEX}


def test_statement_parameters_and_run_details(statement):
    definition = statement["predicate"]["buildDefinition"]
    run = statement["predicate"]["runDetails"]

    assert definition["externalParameters"] == {
        "package": "six", "version": "1.16.0", "target": "bookworm-x86_64",
        "rebuild": {"number": 2, "numbering": "build-tag", "reason": "openssl update",
                    "changelog": ["rebuilt against openssl 3.0.13"]}, "variant": "cpu"}
    internal = definition["internalParameters"]
    assert internal["settings"] == SETTINGS
    assert internal["settings_sha256"] == make_record().settings_sha256
    assert internal["command"] == ["python3", "/mb/mb_driver.py", "/job/job.json"]
    assert internal["sandbox"]["network"] == "none"
    assert internal["containerfile_sha256"] == hashlib.sha256(b"FROM debian").hexdigest()
    assert run["builder"]["id"] == f"mirror-builder@{mirror_builder.__version__}"
    assert run["metadata"] == {
        "invocationId": "six-1.16.0-2-py2.py3-none-any.whl@2024-03-01T10:00:00.123456+00:00",
        "startedOn": "2024-03-01T10:00:00.123456+00:00",
        "finishedOn": "2024-03-01T10:00:12.654321+00:00"}
    assert run["byproducts"] == [{"name": "six-1.16.0-2-py2.py3-none-any.whl.log",
                                  "mediaType": "text/plain"}]


def test_statement_is_json_serializable(statement):
    assert json.loads(json.dumps(statement)) == statement


def test_statement_without_patches_or_env_wheels_has_sdist_and_image_only():
    record = make_record(patches=[], build_env={"freeze": [], "wheels": []})

    statement = slsa_statement(as_written(record.to_dict(wheel_sha256=WHEEL_SHA)))

    names = [d["name"] for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"]]
    assert names == ["six-1.16.0.tar.gz", "build image"]


# -- the JSON Schema --------------------------------------------------------------------------------

def test_schema_is_a_valid_draft_2020_12_schema(schema):
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema"] == {"const": RECORD_SCHEMA,
                                              "description": schema["properties"]["schema"]["description"]}


def test_schema_requires_every_record_key_but_wheel_sha256(schema):
    keys = set(make_record().to_dict(wheel_sha256=WHEEL_SHA))

    assert set(schema["required"]) == keys - {"wheel_sha256"}
    # smoke_test is added when the wheel is published, after the record is embedded in it;
    # from_cache when the published wheel was taken from the build cache; content_sha256 (like
    # wheel_sha256) only beside the index.
    assert set(schema["properties"]) == keys | {"smoke_test", "from_cache", "content_sha256"}


def test_schema_describes_every_property_in_one_line(schema):
    def walk(properties, where):
        for key, body in properties.items():
            description = body.get("description", "")
            assert description and "\n" not in description, f"{where}{key}"
            walk(body.get("properties", {}), f"{where}{key}.")

    walk(schema["properties"], "")


# Keys a record may lack: records of builds made before builds had a user namespace of their own
# or were done in memory, and of wheels not built here, have none; only builds on a cluster's
# worker name their host.
OPTIONAL = {"sandbox": {"user_namespace", "host", "in_memory"}}


@pytest.mark.parametrize("nested", ["source", "build_env", "rebuild", "image", "sandbox"])
def test_schema_describes_the_keys_of_nested_objects(schema, nested):
    keys = set(as_written(make_record().to_dict())[nested])

    assert schema["properties"][nested]["type"] == "object"
    assert set(schema["properties"][nested]["required"]) == keys - OPTIONAL.get(nested, set())
    assert set(schema["properties"][nested]["properties"]) == keys


def test_a_record_without_a_user_namespace_still_validates(schema):
    data = as_written(make_record().to_dict(wheel_sha256=WHEEL_SHA))
    del data["sandbox"]["user_namespace"]

    validate(schema, data)


def test_a_user_namespace_of_several_ranges_validates(schema):
    data = as_written(make_record().to_dict(wheel_sha256=WHEEL_SHA))
    data["sandbox"]["user_namespace"]["uid_map"] = "0 2147483647 1000\n1000 2147484647 64534"

    validate(schema, data)


def test_a_record_beside_the_index_validates(schema):
    validate(schema, as_written(make_record().to_dict(wheel_sha256=WHEEL_SHA)))


def test_an_embedded_record_without_wheel_sha256_validates(schema):
    validate(schema, as_written(make_record().to_dict()))


def test_a_first_build_without_reason_validates(schema):
    record = make_record(rebuild=Rebuild(number=0, numbering="post-release"),
                         wheel="six-1.16.0-py2.py3-none-any.whl")

    validate(schema, as_written(record.to_dict(wheel_sha256=WHEEL_SHA)))


def test_a_record_whose_override_names_the_manifests_to_vendor_validates(schema):
    package = PackageSettings("six", vendor_rust=("rust/Cargo.toml",)).as_dict()
    record = make_record(settings=copy.deepcopy(SETTINGS) | {"package": package})
    data = as_written(record.to_dict(wheel_sha256=WHEEL_SHA))

    assert data["settings"]["package"]["vendor_rust"] == ["rust/Cargo.toml"]
    validate(schema, data)


@pytest.mark.parametrize("missing", ["name", "source", "settings_sha256", "rebuild", "image",
                                     "schema", "built_from_source", "timings"])
def test_a_record_missing_a_required_key_fails_validation(schema, missing):
    data = as_written(make_record().to_dict(wheel_sha256=WHEEL_SHA))
    del data[missing]

    with pytest.raises(jsonschema.ValidationError, match=f"'{missing}' is a required property"):
        validate(schema, data)


@pytest.mark.parametrize("path, value", [
    (("schema",), "mirror-builder/build-record/v2"),
    (("wheel_sha256",), "not-a-digest"),
    (("source", "sha256"), SDIST_SHA.upper()),
    (("rebuild", "number"), -1),
    (("rebuild", "numbering"), "calendar"),
    (("seconds",), "12.5"),
    (("build_env", "wheels"), [{"filename": "x.whl"}]),
    (("sandbox", "no_new_privileges"), "yes"),
    (("sandbox", "user_namespace", "uid_map"), "0:2147483647:65534"),
    (("sandbox", "user_namespace", "gid_map"), ""),
    (("sandbox", "user_namespace", "owner"), "root"),
    (("started_at",), 1709287200),
    (("settings", "package", "vendor_rust"), "yes"),
    (("settings", "package", "vendor_rust"), [1]),
    (("surprise",), 1),
])
def test_a_record_with_a_wrong_value_fails_validation(schema, path, value):
    data = as_written(make_record().to_dict(wheel_sha256=WHEEL_SHA))
    holder = data
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value

    with pytest.raises(jsonschema.ValidationError):
        validate(schema, data)


def test_a_record_missing_a_nested_key_fails_validation(schema):
    data = as_written(make_record().to_dict(wheel_sha256=WHEEL_SHA))
    del data["source"]["sha256"]

    with pytest.raises(jsonschema.ValidationError, match="'sha256' is a required property"):
        validate(schema, data)


def test_an_override_key_newer_than_a_record_is_no_change_at_its_default():
    from mirror_builder.config.overrides import PackageSettings
    from mirror_builder.provenance.buildkey import as_json, overrides_changed

    package = PackageSettings("demo", env={"X": "1"})
    recorded = as_json(package.as_dict())
    del recorded["manylinux"]  # a record written before the manylinux override existed
    assert not overrides_changed(recorded, package)
    assert overrides_changed(recorded, PackageSettings("demo", env={"X": "1"}, manylinux=True))
    assert overrides_changed(recorded, PackageSettings("demo", env={"X": "2"}))

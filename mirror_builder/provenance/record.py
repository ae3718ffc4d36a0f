"""What went into a wheel: the build record and its in-toto / SLSA provenance statement.

The record (schema: data/build-record.schema.json) is embedded in the wheel's .dist-info so it
travels with the wheel, and kept beside the index with the wheel's final sha256, which the
embedded copy cannot hold (it is part of what is hashed).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from mirror_builder import __version__
from mirror_builder.config.variants import DEFAULT_VARIANT

RECORD_SCHEMA = "mirror-builder/build-record/v1"
# Fields only the record beside the index has: the embedded copy cannot hold the hash of the
# wheel it is part of, the smoke test runs after the record was embedded, and a wheel taken
# from the build cache is the same file, built elsewhere.
OUTSIDE_ONLY_FIELDS = ("wheel_sha256", "content_sha256", "smoke_test", "from_cache")
SLSA_BUILD_TYPE = "urn:mirror-builder:build-type:sdist-to-wheel:v1"


@dataclass(frozen=True)
class Rebuild:
    number: int
    numbering: str
    reason: str | None = None
    changelog: tuple[str, ...] = ()


@dataclass(frozen=True)
class BuildRecord:
    name: str
    version: str            # the upstream version that was built
    wheel: str              # the published file name (with build tag or .postN)
    wheel_version: str
    source: dict[str, Any]
    patches: list[dict[str, str]]
    settings: dict[str, Any]
    build_system: dict[str, Any]
    backend_requires: list[str]
    build_env: dict[str, Any]      # {"freeze": [...], "wheels": [{"filename", "sha256"}]}
    target: dict[str, Any]
    image: dict[str, Any]
    sandbox: dict[str, Any]
    command: list[str]
    environment: dict[str, str]
    started_at: str
    ended_at: str
    seconds: float
    exit_status: int
    rebuild: Rebuild
    required_by: list[str]
    log: str
    timings: dict[str, float] = field(default_factory=dict)
    built_from_source: bool = True
    # sha256 over what makes this wheel: sdist, patches, package settings and plugin, image,
    # target, and the exact wheels of the build environment. Same key: the wheel is reused.
    build_key: str | None = None
    # auditwheel's repair to a manylinux tag: tool, command, from and to, the libraries it
    # bundled into the wheel, and its wheels.
    repair: dict | None = None
    # The build job that made it: id, trigger (why it was built), detail, start time.
    job: dict | None = None
    # Newer versions resolution passed over because they cannot be built: [{version, reason}].
    skipped_versions: list[dict[str, str]] = field(default_factory=list)
    # A build cycle broken in stages: {stage: "1" | "full", removed: [...], stage1: {...}}.
    bootstrap_stage: dict | None = None
    # The build variant it was built for (settings.yaml's variants:); a wheel shared by every
    # variant names the one it was built in.
    variant: str = DEFAULT_VARIANT
    # The Debian packages its ELF files link to (sandbox/linked.py), and where in its
    # .dist-info the SBOM made from this record is (provenance/sbom.py).
    linked: list[dict[str, str]] = field(default_factory=list)
    sbom: str | None = None
    mirror_builder_version: str = __version__
    schema: str = RECORD_SCHEMA

    @property
    def settings_sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()

    def to_dict(self, wheel_sha256: str | None = None,
                content_sha256: str | None = None) -> dict[str, Any]:
        data = asdict(self)
        data["settings_sha256"] = self.settings_sha256
        if wheel_sha256 is not None:
            data["wheel_sha256"] = wheel_sha256
        if content_sha256 is not None:
            data["content_sha256"] = content_sha256
        return data


def slsa_statement(record: dict[str, Any]) -> dict[str, Any]:
    """An unsigned in-toto Statement v1 with a SLSA provenance v1 predicate for one wheel."""
    dependencies = [{
        "uri": record["source"]["url"],
        "name": record["source"]["filename"],
        "digest": {"sha256": record["source"]["sha256"]},
    }]
    dependencies += [{"uri": f"wheel:{w['filename']}", "name": w["filename"],
                      "digest": {"sha256": w["sha256"]}} for w in record["build_env"]["wheels"]]
    dependencies += [{"uri": f"patch:{p['name']}", "name": p["name"], "digest": {"sha256": p["sha256"]}}
                     for p in record["patches"]]
    image = record["image"]
    dependencies.append({"uri": f"oci:{image['tag']}", "name": "build image",
                         "digest": {"sha256": image["id"].removeprefix("sha256:")}})
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": record["wheel"], "digest": {"sha256": record["wheel_sha256"]}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": SLSA_BUILD_TYPE,
                "externalParameters": {
                    "package": record["name"], "version": record["version"],
                    "target": record["target"].get("name"), "rebuild": record["rebuild"],
                    "variant": record.get("variant"),
                },
                "internalParameters": {
                    "settings": record["settings"], "settings_sha256": record["settings_sha256"],
                    "sandbox": record["sandbox"], "command": record["command"],
                    "environment": record["environment"],
                    "containerfile_sha256": image.get("containerfile_sha256"),
                },
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": f"mirror-builder@{record['mirror_builder_version']}",
                            "version": {"mirror-builder": record["mirror_builder_version"]}},
                "metadata": {"invocationId": f"{record['wheel']}@{record['started_at']}",
                             "startedOn": record["started_at"], "finishedOn": record["ended_at"]},
                "byproducts": [{"name": record["log"], "mediaType": "text/plain"}],
            },
        },
    }

"""The SBOM every wheel we build carries (PEP 770: in .dist-info/sboms/), as CycloneDX 1.6 JSON.

CycloneDX rather than SPDX 2.3: it has a first-class place for what a wheel is made of
(components with purls and hashes, and their dependency graph), its Python library validates a
document against the official schema, and pip-audit, Dependency-Track and Grype read it.

It names the wheel itself (pkg:pypi, with the sdist it was built from and that sdist's hash),
the Rust crates vendored into its build (pkg:cargo, with their crates.io checksums), and the
Debian packages whose shared libraries its ELF files link to (pkg:deb, at the image's versions),
saying for each whether auditwheel copied the library into the wheel or the wheel expects it
from the system. It is made from the build record and the driver's findings alone, with
SOURCE_DATE_EPOCH as its time and a serial number derived from its own content, so that the
same build makes the same bytes (and `verify` can check it too).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from packaging.utils import canonicalize_name

from mirror_builder import __version__

SPEC_VERSION = "1.6"
# Where in the .dist-info directory (relative to it, as stamp_wheel's embed takes it).
SBOM_FOLDER = "sboms"
# auditwheel names a grafted copy <stem>-<8 hex of its hash>.so[.N...]
_GRAFTED = re.compile(r"^(?P<stem>.+)-[0-9a-f]{8}(?P<suffix>\.so(?:\.[\w.]+)?)$")


def sbom_member(name: str) -> str:
    """The SBOM's path inside the .dist-info directory."""
    return f"{SBOM_FOLDER}/{canonicalize_name(name)}.cdx.json"


def sbom_bytes(record: dict[str, Any]) -> bytes:
    return (json.dumps(sbom_document(record), indent=2, sort_keys=True) + "\n").encode()


def sbom_document(record: dict[str, Any]) -> dict[str, Any]:
    """The CycloneDX document for the wheel record describes (its linked packages included)."""
    name, version = canonicalize_name(record["name"]), record["wheel_version"]
    main_ref = f"pkg:pypi/{name}@{version}"
    components = _crates(record) + _debian(record)
    document = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "version": 1,
        "metadata": {
            **_time(record),
            "tools": {"components": [{"type": "application", "name": "mirror-builder",
                                      "version": __version__}]},
            "component": {
                "type": "library", "bom-ref": main_ref, "name": name, "version": version,
                "purl": f"{main_ref}?file_name={quote(record['wheel'])}",
                "externalReferences": [{
                    "type": "source-distribution", "url": record["source"]["url"],
                    "hashes": [{"alg": "SHA-256", "content": record["source"]["sha256"]}]}],
                "properties": [{"name": "mirror-builder:target",
                                "value": record["target"]["name"]}],
            },
        },
        "components": components,
        "dependencies": [{"ref": main_ref, "dependsOn": [c["bom-ref"] for c in components]}] +
                        [{"ref": c["bom-ref"], "dependsOn": []} for c in components],
    }
    # Unique per document and the same for the same content (not the build key: that changes
    # with every rebuild of the build environment's wheels, which carry their build times).
    content = json.dumps(document, sort_keys=True).encode()
    serial = uuid.uuid5(uuid.NAMESPACE_URL, "urn:mirror-builder:sbom:" +
                        hashlib.sha256(content).hexdigest())
    return {**document, "serialNumber": f"urn:uuid:{serial}"}


def _crates(record: dict[str, Any]) -> list[dict[str, Any]]:
    crates = record["source"].get("origin", {}).get("vendored_crates", [])
    found = {}
    for crate in crates:
        ref = f"pkg:cargo/{crate['name']}@{crate['version']}"
        found[ref] = {"type": "library", "bom-ref": ref, "name": crate["name"],
                      "version": crate["version"], "purl": ref,
                      "properties": [{"name": "mirror-builder:how", "value":
                                      "vendored from crates.io, compiled into the wheel"}]}
        if crate.get("checksum"):
            found[ref]["hashes"] = [{"alg": "SHA-256", "content": crate["checksum"]}]
    return [found[ref] for ref in sorted(found)]


def _debian(record: dict[str, Any]) -> list[dict[str, Any]]:
    bundled = _grafted_sonames(record)
    found: dict[str, dict[str, Any]] = {}
    for lib in record.get("linked", []):
        qualifiers = f"arch={lib['architecture']}" + (
            f"&distro={lib['distro']}" if lib.get("distro") else "")
        ref = f"pkg:deb/debian/{lib['package']}@{quote(lib['version'])}?{qualifiers}"
        component = found.setdefault(ref, {
            "type": "library", "bom-ref": ref, "name": lib["package"], "version": lib["version"],
            "purl": ref, "properties": []})
        how = (f"{lib['soname']}: copied into the wheel by auditwheel as {bundled[lib['soname']]}"
               if lib["soname"] in bundled else
               f"{lib['soname']}: linked, expected from the system ({lib['path']})")
        component["properties"].append({"name": "mirror-builder:library", "value": how})
    return [found[ref] for ref in sorted(found)]


def _grafted_sonames(record: dict[str, Any]) -> dict[str, str]:
    """soname -> the file name auditwheel gave its copy in the wheel."""
    names = {}
    for grafted in (record.get("repair") or {}).get("bundled", []):
        match = _GRAFTED.match(grafted)
        if match:
            names[match["stem"] + match["suffix"]] = grafted
    return names


def _time(record: dict[str, Any]) -> dict[str, str]:
    """{"timestamp": SOURCE_DATE_EPOCH (else the build's start)}, or nothing if neither is
    known (the field is optional)."""
    epoch = str(record.get("environment", {}).get("SOURCE_DATE_EPOCH", ""))
    try:
        when = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch.isdigit() else \
            datetime.fromisoformat(record.get("started_at", ""))
    except ValueError:
        return {}
    return {"timestamp": when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}

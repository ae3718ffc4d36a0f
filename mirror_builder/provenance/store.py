"""The build records kept beside the index: each wheel's record, freeze, log and SLSA statement
(in a signed DSSE envelope when the run has a signing key)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from packaging.version import Version

from mirror_builder.files import atomic_copy, atomic_write_text
from mirror_builder.layout import OutputLayout, RecordsLayout
from mirror_builder.provenance.record import slsa_statement
from mirror_builder.provenance.signing import Signer, publish_key


class RecordStore:
    """Records under one RecordsLayout: OUTPUT/records/, or OUTPUT/rejected/records/ for the
    wheels that failed their smoke test. Given an output directory or OutputLayout, its records/."""

    def __init__(self, where: RecordsLayout | OutputLayout | Path,
                 signer: Signer | None = None, output: OutputLayout | None = None) -> None:
        self.layout = where if isinstance(where, RecordsLayout) else OutputLayout.of(where).records
        self.root = self.layout.root
        self.signer = signer  # signs each statement written (a DSSE envelope); None: unsigned
        # Where the signer's public key goes with the first statement (an output with no
        # statement gets no key: a run that fails before publishing leaves nothing behind).
        self.output = output if output is not None or isinstance(where, RecordsLayout) \
            else OutputLayout.of(where)

    def folder(self, name: str) -> Path:
        return self.layout.folder(name)

    def record_path(self, name: str, wheel: str) -> Path:
        return self.layout.record(name, wheel)

    def freeze_path(self, name: str, wheel: str) -> Path:
        return self.layout.freeze(name, wheel)

    def log_path(self, name: str, wheel: str) -> Path:
        return self.layout.log(name, wheel)

    def slsa_path(self, name: str, wheel: str) -> Path:
        return self.layout.slsa(name, wheel)

    def write(self, record: dict[str, Any], log_path: Path) -> Path:
        name, wheel = record["name"], record["wheel"]
        self.folder(name).mkdir(parents=True, exist_ok=True)
        atomic_copy(log_path, self.log_path(name, wheel))
        atomic_write_text(self.freeze_path(name, wheel), "".join(
            f"{line}\n" for line in record["build_env"]["freeze"]))
        statement = slsa_statement(record)
        if self.signer is not None:
            statement = self.signer.envelope(statement)
            if self.output is not None:
                publish_key(self.output, self.signer)
        atomic_write_text(self.slsa_path(name, wheel), json.dumps(statement, indent=2))
        path = self.record_path(name, wheel)
        atomic_write_text(path, json.dumps(record, indent=2))
        return path

    def write_verification(self, record: dict[str, Any], statement: dict[str, Any],
                           differences: str | None) -> Path:
        """Keep a verification's statement (signed when we have a key) beside the record, and
        diffoscope's text when it differed; a reproduced wheel keeps no stale differences."""
        name, wheel = record["name"], record["wheel"]
        if differences is None:
            self.layout.differences(name, wheel).unlink(missing_ok=True)
        else:
            atomic_write_text(self.layout.differences(name, wheel), differences)
        if self.signer is not None:
            statement = self.signer.envelope(statement)
            if self.output is not None:
                publish_key(self.output, self.signer)
        path = self.layout.verification(name, wheel)
        atomic_write_text(path, json.dumps(statement, indent=2))
        return path

    def verification(self, name: str, wheel: str) -> dict[str, Any] | None:
        """The last verification's statement (unverified), or None if it was never verified."""
        path = self.layout.verification(name, wheel)
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        return json.loads(base64.b64decode(data["payload"])) if "payloadType" in data else data

    def copy_statement(self, record: dict[str, Any], dest: Path) -> None:
        """Put a copy of the record's statement (as written: signed or not) at dest."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        atomic_copy(self.slsa_path(record["name"], record["wheel"]), dest)

    def statement(self, name: str, wheel: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """(the statement, its DSSE envelope or None if it was written unsigned), unverified."""
        data = json.loads(self.slsa_path(name, wheel).read_text())
        if "payloadType" not in data:
            return data, None
        return json.loads(base64.b64decode(data["payload"])), data

    def read(self, name: str, wheel: str) -> dict[str, Any] | None:
        path = self.record_path(name, wheel)
        if not path.is_file():
            return None
        return json.loads(path.read_text())

    def for_version(self, name: str, version: Version) -> list[dict[str, Any]]:
        """Every record of builds of this upstream version, newest rebuild first."""
        found = []
        folder = self.folder(name)
        if folder.is_dir():
            for path in folder.glob("*.build.json"):
                record = json.loads(path.read_text())
                if Version(record["version"]) == version:
                    found.append(record)
        return sorted(found, key=lambda r: r["rebuild"]["number"], reverse=True)

    def versions(self, name: str) -> list[Version]:
        folder = self.folder(name)
        if not folder.is_dir():
            return []
        return sorted({Version(json.loads(p.read_text())["version"])
                       for p in folder.glob("*.build.json")})

"""The build records kept beside the index, under <output>/records/<project>/:
<wheel>.build.json (the record), .freeze.txt, .log and .intoto.json (the SLSA statement)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import Version

from mirror_builder.files import atomic_copy, atomic_write_text
from mirror_builder.provenance.record import slsa_statement


class RecordStore:
    def __init__(self, output_dir: Path) -> None:
        self.root = output_dir / "records"

    def folder(self, name: str) -> Path:
        return self.root / canonicalize_name(name)

    def record_path(self, name: str, wheel: str) -> Path:
        return self.folder(name) / f"{wheel}.build.json"

    def freeze_path(self, name: str, wheel: str) -> Path:
        return self.folder(name) / f"{wheel}.freeze.txt"

    def log_path(self, name: str, wheel: str) -> Path:
        return self.folder(name) / f"{wheel}.log"

    def slsa_path(self, name: str, wheel: str) -> Path:
        return self.folder(name) / f"{wheel}.intoto.json"

    def write(self, record: dict[str, Any], log_path: Path) -> Path:
        name, wheel = record["name"], record["wheel"]
        self.folder(name).mkdir(parents=True, exist_ok=True)
        atomic_copy(log_path, self.log_path(name, wheel))
        atomic_write_text(self.freeze_path(name, wheel), "".join(
            f"{line}\n" for line in record["build_env"]["freeze"]))
        atomic_write_text(self.slsa_path(name, wheel), json.dumps(slsa_statement(record), indent=2))
        path = self.record_path(name, wheel)
        atomic_write_text(path, json.dumps(record, indent=2))
        return path

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

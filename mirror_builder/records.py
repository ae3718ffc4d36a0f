"""Build records: what went into a wheel, kept beside the index under <output>/records/."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

from mirror_builder import __version__
from mirror_builder.files import atomic_write_text

RECORD_SCHEMA = "mirror-builder.build-record/1"


@dataclass(frozen=True)
class EnvWheel:
    filename: str
    sha256: str


@dataclass(frozen=True)
class BuildRecord:
    name: str
    version: str
    wheel: str
    wheel_sha256: str
    source: dict
    patches: list[dict]
    build_system: dict
    backend_requires: list[str]
    build_env_wheels: list[EnvWheel]
    freeze: str
    target: dict
    image: dict
    sandbox: dict
    command: list[str]
    environment: dict
    started_at: str
    ended_at: str
    seconds: float
    exit_status: int
    required_by: list[str]
    log: str
    mirror_builder_version: str = __version__
    schema: str = RECORD_SCHEMA
    timings: dict = field(default_factory=dict)


class RecordStore:
    def __init__(self, output_dir: Path) -> None:
        self.root = output_dir / "records"

    def paths(self, name: str, wheel_filename: str) -> tuple[Path, Path, Path]:
        folder = self.root / canonicalize_name(name)
        return (folder / f"{wheel_filename}.build.json", folder / f"{wheel_filename}.freeze.txt",
                folder / f"{wheel_filename}.log")

    def write(self, record: BuildRecord, log_path: Path) -> Path:
        record_path, freeze_path, kept_log = self.paths(record.name, record.wheel)
        record_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log_path, kept_log)
        atomic_write_text(freeze_path, record.freeze)
        atomic_write_text(record_path, json.dumps(asdict(record), indent=2))
        return record_path

    def read(self, name: str, wheel_filename: str) -> dict | None:
        record_path = self.paths(name, wheel_filename)[0]
        if not record_path.is_file():
            return None
        return json.loads(record_path.read_text())

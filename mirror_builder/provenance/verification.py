"""What `verify` found for one published wheel, and the statement that says so.

A verification rebuilds a wheel from its recorded inputs and compares the bytes. Its result is
kept beside the build record as an in-toto Statement with a SLSA Verification Summary v1
predicate (signed like every statement we write); what differed, when something did, is kept
as diffoscope's text beside it.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from mirror_builder import __version__

VSA_TYPE = "https://slsa.dev/verification_summary/v1"
VERIFIER_ID = "https://github.com/mirror-builder/mirror-builder/verify"
# Levels outside SLSA's tracks may be named, but not with a SLSA_ prefix.
REPRODUCED_LEVEL = "MIRROR_BUILDER_REPRODUCED"

Status = Literal["reproduced", "differs", "unverifiable"]


@dataclass(frozen=True)
class Verification:
    """One wheel's verification: reproduced (the same bytes), differs (a mismatch, said in a
    line), or unverifiable (an input changed since the build, or is gone: named, and no
    mismatch is claimed)."""

    name: str
    version: str
    wheel: str
    status: Status
    summary: str                    # one line: what differed, or which input changed
    varied: dict[str, Any] = field(default_factory=dict)  # what the rebuild ran with
    rebuilt_sha256: str | None = None
    seconds: float = 0.0
    differences: Path | None = None  # diffoscope's text, when it differs

    @property
    def passed(self) -> bool:
        return self.status == "reproduced"


def member_digests(wheel: Path) -> dict[str, str]:
    with zipfile.ZipFile(wheel) as archive:
        return {info.filename: hashlib.sha256(archive.read(info)).hexdigest()
                for info in archive.infolist() if not info.is_dir()}


def describe_difference(published: Path, rebuilt: Path) -> str:
    """One line on how two wheels of the same name differ, by their members."""
    ours, theirs = member_digests(published), member_digests(rebuilt)
    parts = []
    missing = sorted(ours.keys() - theirs.keys())
    extra = sorted(theirs.keys() - ours.keys())
    if missing:
        parts.append(f"only in the published wheel: {_some(missing)}")
    if extra:
        parts.append(f"only in the rebuild: {_some(extra)}")
    changed = sorted(n for n in ours.keys() & theirs.keys() if ours[n] != theirs[n])
    # RECORD lists every member's hash: it differs whenever another member does.
    content = [n for n in changed if not n.endswith(".dist-info/RECORD")]
    if content:
        parts.append(f"content of {_some(content)}")
    if not parts:
        return ("differs: the same files, but the archive differs (member order, times, modes "
                "or compression)")
    return "differs: " + "; ".join(parts)


def _some(names: list[str], shown: int = 3) -> str:
    listed = ", ".join(names[:shown])
    return listed + (f" and {len(names) - shown} more" if len(names) > shown else "")


def verification_statement(record: dict[str, Any], result: Verification,
                           provenance_sha256: str | None) -> dict[str, Any]:
    """An unsigned in-toto Statement v1 with a SLSA Verification Summary v1 predicate about
    the published wheel record describes. provenance_sha256: of the build's statement file,
    the attestation this verification checked."""
    passed = result.passed
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": record["wheel"], "digest": {"sha256": record["wheel_sha256"]}}],
        "predicateType": VSA_TYPE,
        "predicate": {
            "verifier": {"id": VERIFIER_ID, "version": {"mirror-builder": __version__}},
            "timeVerified": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "resourceUri": f"pkg:pypi/{record['name']}@{record['version']}"
                           f"?file_name={record['wheel']}",
            "policy": {"uri": f"{VERIFIER_ID}#rebuild-bit-identical"},
            "inputAttestations": [{"uri": f"{record['wheel']}.intoto.json",
                                   "digest": {"sha256": provenance_sha256}}]
            if provenance_sha256 else [],
            "verificationResult": "PASSED" if passed else "FAILED",
            "verifiedLevels": ["SLSA_BUILD_LEVEL_1", REPRODUCED_LEVEL] if passed else
                              ["SLSA_BUILD_LEVEL_1"],
            # Statement consumers ignore fields they do not know; ours say how it was checked.
            "reproduction": {"status": result.status, "summary": result.summary,
                             "varied": result.varied, "rebuilt_sha256": result.rebuilt_sha256,
                             "seconds": round(result.seconds, 3)},
        },
    }

"""Which key signs what mirror-builder states (settings' signing:): a path to an Ed25519 key
in PEM (mirror-builder keys generate makes one). Without the section nothing is signed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mirror_builder.config.yamlfile import YamlReader


def read_signing_key(r: YamlReader, top: dict[str, Any], project_dir: Path) -> Path | None:
    if top.get("signing") is None:
        return None
    body = r.mapping(top.get("signing"), ("signing",), {"key"})
    raw = r.value(body, ("signing", "key"), str, "")
    if not raw:
        raise r.fail(("signing",), "missing key 'key' (the signing key's file)")
    path = Path(os.path.expanduser(os.path.expandvars(raw)))
    return path if path.is_absolute() else project_dir / path

"""Sizes as settings write them ("8g", "512m") and the machine's own: what memory budgets are
counted in, on this machine and on a cluster's workers."""

from __future__ import annotations

import os
import re


def parse_size(text: str | None) -> int:
    """Bytes from a size with an optional unit b, k, m or g (binary); 0 for none."""
    if not text:
        return 0
    match = re.fullmatch(r"(\d+)([bkmg]?)", text.strip().lower())
    if not match:
        raise ValueError(f"not a size: {text!r}")
    return int(match.group(1)) << {"": 0, "b": 0, "k": 10, "m": 20, "g": 30}[match.group(2)]


def machine_memory() -> int:
    """This machine's memory in bytes (8 GiB if the system will not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 8 << 30

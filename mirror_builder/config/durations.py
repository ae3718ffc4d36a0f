"""Durations as settings write them ("12h", "3d", "1d12h") and as messages show them."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"^(?:[0-9]+[wdhms])+$")


def parse_duration(value: object) -> timedelta:
    """A duration as written in settings: 0, or numbers with units w d h m s ("12h", "3d",
    "1d12h"). A number without a unit is refused (hours? days?), except 0."""
    if value == 0 and not isinstance(value, bool):
        return timedelta(0)
    text = value.strip() if isinstance(value, str) else None
    if text == "0":
        return timedelta(0)
    if text is None or not _DURATION.match(text):
        raise ValueError(f"expected a duration like 0, 12h, 3d or 2w (units: w d h m s), "
                         f"got {value!r}")
    return timedelta(seconds=sum(int(n) * _DURATION_UNITS[unit]
                                 for n, unit in re.findall(r"([0-9]+)([wdhms])", text)))


def format_duration(duration: timedelta) -> str:
    """A duration for messages: its largest unit, and the next one when not zero ("3 d", "5 h",
    "2 d 23 h", "40 s"). Cut down, never rounded up: 2 d 23 h 59 m is not shown as 3 d."""
    seconds = int(abs(duration).total_seconds())
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    text = ""
    for i, (unit, size) in enumerate(units):
        if seconds >= size or unit == "s":
            text = f"{seconds // size} {unit}"
            if i + 1 < len(units):
                next_unit, next_size = units[i + 1]
                if rest := (seconds % size) // next_size:
                    text += f" {rest} {next_unit}"
            break
    return ("-" if duration < timedelta(0) else "") + text

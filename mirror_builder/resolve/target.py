"""The build target's environment: what markers and requires-python are evaluated against.

Markers must describe the container that builds and runs the wheel, not the host, so these
values are read from the target image itself (see sandbox.images, marker_environment).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from packaging import tags
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import parse_wheel_filename
from packaging.version import Version

# Run with the target's python3: prints the PEP 508 marker environment as JSON (stdlib only).
PROBE_SCRIPT = r"""
import json, os, platform, sys
impl = sys.implementation
v = impl.version
iver = "{0.major}.{0.minor}.{0.micro}".format(v)
if v.releaselevel != "final":
    iver += v.releaselevel[0] + str(v.serial)
print(json.dumps({
    "implementation_name": impl.name,
    "implementation_version": iver,
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
    "libc_version": platform.libc_ver()[1],
}))
"""


@dataclass(frozen=True)
class TargetEnvironment:
    """A named build target and the marker environment of its image."""

    name: str
    markers: Mapping[str, str] = field(hash=False)

    @property
    def python_version(self) -> Version:
        return Version(self.markers["python_full_version"])

    def evaluate(self, marker: Marker | None, extras: frozenset[str] = frozenset()) -> bool:
        """True when a requirement with this marker applies on the target (for any of extras)."""
        if marker is None:
            return True
        env = dict(self.markers)
        for extra in extras or {""}:
            env["extra"] = extra
            if marker.evaluate(env):
                return True
        return False

    def applies(self, requirement: Requirement, extras: frozenset[str] = frozenset()) -> bool:
        return self.evaluate(requirement.marker, extras)

    def fits(self, filename: str) -> bool:
        """Whether a wheel's tags fit the target (a pure wheel fits every Python it accepts)."""
        return any(tag in self._supported for tag in parse_wheel_filename(filename)[3])

    @cached_property
    def _supported(self) -> frozenset[Tag]:
        return frozenset(self.supported_tags())

    def supported_tags(self) -> list[Tag]:
        """Wheel tags the target's Python accepts, most preferred first (for pre-built wheels)."""
        version = self.python_version
        python = (version.major, version.minor)
        machine = self.markers["platform_machine"]
        platforms = []
        libc = self.markers.get("libc_version") or ""
        if self.markers["sys_platform"] == "linux" and libc.count(".") >= 1:
            major, minor = (int(p) for p in libc.split(".")[:2])
            platforms += [f"manylinux_{major}_{m}_{machine}" for m in range(minor, 4, -1)]
            legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
            platforms += [f"{alias}_{machine}" for m, alias in legacy.items() if m <= minor]
        platforms.append(f"{self.markers['sys_platform']}_{machine}")
        interpreter = f"cp{python[0]}{python[1]}"
        return [*tags.cpython_tags(python, [interpreter, "abi3", "none"], platforms),
                *tags.compatible_tags(python, interpreter, platforms)]

    def accepts_python(self, requires_python: str | None) -> bool:
        if not requires_python:
            return True
        try:
            spec = SpecifierSet(requires_python)
        except InvalidSpecifier:
            # pip ignores files whose requires-python it cannot parse; do the same.
            return False
        return spec.contains(self.python_version, prereleases=True)

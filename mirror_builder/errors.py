"""Errors a user can act on. The CLI prints each as one line; nothing here is a bug report."""

from __future__ import annotations

from collections.abc import Sequence


class MirrorBuilderError(Exception):
    """Base class: the message says what went wrong and what to do about it."""


class UsageError(MirrorBuilderError):
    """The command line asks for something impossible (a port in use, a file where a directory
    belongs); the CLI exits with status 2, as argparse does for malformed arguments."""


class SettingsError(MirrorBuilderError):
    """A settings or override file is malformed; the message names the file, line and key."""


class UpstreamError(MirrorBuilderError):
    """The upstream index could not answer, or answered something unusable."""


class SourceError(MirrorBuilderError):
    """An sdist could not be fetched, verified, unpacked or patched."""


class ContainerError(MirrorBuilderError):
    """Podman or an image is not usable."""


class PackageError(MirrorBuilderError):
    """Something failed for one package version; carries the chain of requirements behind it."""

    def __init__(self, message: str, *, package: str = "", version: str = "",
                 chain: Sequence[str] = (), log_path: str | None = None) -> None:
        self.package = package
        self.version = version
        self.chain = tuple(chain)
        self.log_path = log_path
        self.detail = message
        super().__init__(self._render())

    def _render(self) -> str:
        text = self.detail
        if self.package:
            who = f"{self.package}=={self.version}" if self.version else self.package
            if not text.startswith(who):
                text = f"{who}: {text}"
        if self.chain:
            text += f" (required by: {' -> '.join(self.chain)})"
        if self.log_path:
            text += f"; log: {self.log_path}"
        return text


class ResolutionError(PackageError):
    """No set of versions satisfies the requirements. summary says what is missing in a few
    words ("python-sbom is not on the index"), for listings of versions passed over."""

    def __init__(self, message: str, *, summary: str = "", **where) -> None:
        self.summary = summary
        super().__init__(message, **where)


class BuildError(PackageError):
    """A package's build failed in its container."""


class BuildCycleError(PackageError):
    """Build dependencies form a cycle, so no order of builds can satisfy them."""


class RebuildError(PackageError):
    """A rebuild cannot go ahead as asked."""

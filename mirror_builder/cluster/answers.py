"""Reading what comes back from the cluster: Dask's errors in words, a worker's failure as the
package's, and whether a vendored tree differs from the one sent by more than its crates."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from mirror_builder.cluster.wire import RemoteOutcome
from mirror_builder.files import sha256_of
from mirror_builder.prepare.cargoprojects import VENDOR_DIR


class RemoteFailure(Exception):
    """A task did not come back with a usable answer; the message says why, in words."""


def explain_dask_error(exc: Exception, target: str) -> str:
    text = str(exc)
    kind = type(exc).__name__
    if kind == "KilledWorker" or "died while running it" in text:
        return (f"the build killed its worker on every try (Dask's allowed-failures); {text}. "
                f"See that worker's log")
    if kind in ("NoValidWorkerError", "NoWorkerError") or "valid worker" in text:
        return f"no worker serving target {target} is left in the cluster: {text}"
    if kind == "CancelledError" or "cancelled" in text.lower():
        return "the build was cancelled on the cluster (the scheduler went away?)"
    return f"the cluster could not run the build: {kind}: {text}"


def changed_outside_vendoring(before: Path, after: Path) -> list[str]:
    """Paths (outside the vendored crates and .cargo/) that differ between two trees."""
    def files(root: Path) -> dict[str, str]:
        found = {}
        for path in root.rglob("*"):
            relative = path.relative_to(root).as_posix()
            if relative.split("/")[0] in (VENDOR_DIR, ".cargo") or path.is_dir() \
                    and not path.is_symlink():
                continue
            found[relative] = (f"link:{os.readlink(path)}" if path.is_symlink()
                               else sha256_of(path))
        return found

    old, new = files(before), files(after)
    return sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))


def raise_if_failed(outcome: RemoteOutcome, error: Callable[[str], Exception]) -> None:
    if outcome.status in ("failed", "refused"):
        verb = "refused by" if outcome.status == "refused" else "on"
        raise error(f"{outcome.error} ({verb} worker {outcome.worker.get('name', '?')})")

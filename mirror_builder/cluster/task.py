"""The functions Dask runs on a worker. The scheduler unpickles the task graph, so this module
is imported by the scheduler too: it imports nothing heavy at the top."""

from __future__ import annotations

from typing import Any


def run_build(payload: dict[str, Any]) -> dict[str, Any]:
    """Build one package version on this worker (a RemoteBuild in, a RemoteOutcome out)."""
    from distributed import get_worker

    from mirror_builder.cluster.buildhost import PLUGIN_NAME

    return get_worker().plugins[PLUGIN_NAME].build(payload)


def run_repair(payload: dict[str, Any]) -> dict[str, Any]:
    """Repair one wheel on this worker (a RemoteRepair in, a RemoteOutcome out)."""
    from distributed import get_worker

    from mirror_builder.cluster.buildhost import PLUGIN_NAME

    return get_worker().plugins[PLUGIN_NAME].repair(payload)


def run_smoke(payload: dict[str, Any]) -> dict[str, Any]:
    """Smoke-test wheels on this worker (a RemoteSmoke in, a RemoteOutcome out)."""
    from distributed import get_worker

    from mirror_builder.cluster.buildhost import PLUGIN_NAME

    return get_worker().plugins[PLUGIN_NAME].smoke(payload)


def run_vendor(payload: dict[str, Any]) -> dict[str, Any]:
    """Vendor a tree's Rust crates on this worker (a RemoteVendor in, a RemoteOutcome out)."""
    from distributed import get_worker

    from mirror_builder.cluster.buildhost import PLUGIN_NAME

    return get_worker().plugins[PLUGIN_NAME].vendor(payload)


def describe_host(dask_worker) -> dict[str, Any]:
    """What this worker serves: its targets and their images, for the coordinator's checks
    before a run (Client.run passes the worker as dask_worker)."""
    from mirror_builder.cluster.buildhost import PLUGIN_NAME
    from mirror_builder.cluster.wire import code_version, image_resource

    host = dask_worker.plugins.get(PLUGIN_NAME)
    if host is None:
        return {"code": code_version(), "targets": {}}
    return {"code": code_version(), **host.provenance(),
            "targets": {t: {"containerfile_sha256": image.containerfile_sha256,
                            "packages": len(image.system_packages),
                            "resource": image_resource(image)}
                        for t, image in host.images.items()}}

"""Starting the cluster's long-running members in this process: a scheduler with the hardened
settings, and a worker (a Dask Nanny and the worker process it keeps alive) that serves build
targets with this host's podman (cluster/buildhost.py)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mirror_builder.cluster.buildhost import BuildHost
from mirror_builder.cluster.security import (HARDENED_SCHEDULER, HARDENED_WORKER, dask_security)
from mirror_builder.config.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSpec:
    scheduler: str
    name: str
    certs: Path | None  # None: plain TCP (--insecure, loopback)
    member: str  # whose certificate in certs (cluster certs --member)
    host: str
    slots: int  # builds at once
    resources: dict[str, float]
    cpus: float | None = None  # at most this many CPUs per build container


def run_scheduler(certs: Path | None, host: str, port: int, on_ready: Callable[[str], None],
                  allowed_failures: int = 2, lost_target_seconds: int = 120) -> None:
    """Serve a scheduler until SIGINT or SIGTERM."""
    import dask
    from distributed import Scheduler

    config = dict(HARDENED_SCHEDULER, **{
        "distributed.scheduler.allowed-failures": allowed_failures,
        "distributed.scheduler.no-workers-timeout": f"{lost_target_seconds}s"})

    async def serve() -> None:
        with dask.config.set(config):
            async with Scheduler(host=host, port=port, protocol="tls" if certs else "tcp",
                                 security=dask_security(certs, "scheduler", ("scheduler",)),
                                 dashboard=False, dashboard_address="127.0.0.1:0") as scheduler:
                on_ready(scheduler.address)
                await _until_stopped(scheduler.finished())

    asyncio.run(serve())


def run_worker(spec: WorkerSpec, settings: Settings, targets: tuple[str, ...],
               on_ready: Callable[[str], None]) -> None:
    """Serve builds for the scheduler until SIGINT or SIGTERM (the Nanny restarts its worker
    process if it dies)."""
    import dask
    from distributed import Nanny

    plugin = BuildHost(settings, targets, spec.certs, spec.member, spec.cpus)

    async def serve() -> None:
        with dask.config.set(HARDENED_WORKER):
            # A thread per build slot and one per smoke-test slot (resources keep each kind
            # to its own count).
            async with Nanny(spec.scheduler, name=spec.name, nthreads=2 * spec.slots,
                             resources=spec.resources, host=spec.host,
                             protocol="tls" if spec.certs else "tcp",
                             security=dask_security(spec.certs, spec.member, ("worker", "client")),
                             dashboard_address=None, memory_limit=0, plugins=(plugin,),
                             local_directory=str(settings.cache_dir / "cluster" / "dask")
                             ) as nanny:
                on_ready(nanny.worker_address)
                await _until_stopped(nanny.finished())

    asyncio.run(serve())


async def _until_stopped(finished) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    done = asyncio.ensure_future(finished)
    waiting = asyncio.ensure_future(stop.wait())
    await asyncio.wait({done, waiting}, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()

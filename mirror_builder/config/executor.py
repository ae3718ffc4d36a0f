"""Where builds run (settings' executor:): on this machine (local, the default), or on the
workers of a Dask cluster (dask:)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mirror_builder.config.yamlfile import YamlReader

DEFAULT_STORE_LISTEN = "127.0.0.1:0"


@dataclass(frozen=True)
class DaskSettings:
    """The cluster a run sends its builds to, and the artifact store its workers reach."""

    scheduler: str  # tls://host:port
    certs: Path  # ca.pem, coordinator.pem, coordinator.key (mirror-builder cluster certs)
    # Where the coordinator's artifact store listens (host:port, port 0 for any free port), and
    # the https:// URL workers reach it at (default: https://<listen host>:<port>/).
    store_listen: str = DEFAULT_STORE_LISTEN
    store_url: str | None = None
    # Plain tcp:// to a loopback scheduler, for tests only (--insecure).
    insecure: bool = False


@dataclass(frozen=True)
class ExecutorSettings:
    kind: str = "local"  # local | dask
    dask: DaskSettings | None = None

    def describe(self) -> str:
        return "local podman" if self.dask is None else f"dask cluster at {self.dask.scheduler}"


def read_executor(r: YamlReader, top: dict[str, Any], project_dir: Path,
                  cache_dir: Path) -> ExecutorSettings:
    raw = top.get("executor", "local")
    if raw == "local" or raw is None:
        return ExecutorSettings()
    if not isinstance(raw, dict):
        raise r.fail(("executor",), f"expected local or a mapping with dask:, got {raw!r}")
    body = r.mapping(raw, ("executor",), {"dask"})
    key = ("executor", "dask")
    dask = r.mapping(body.get("dask"), key, {"scheduler", "certs", "store"})
    scheduler = r.value(dask, key + ("scheduler",), str, "")
    if not scheduler:
        raise r.fail(key, "missing key 'scheduler' (tls://host:port)")
    if not scheduler.startswith("tls://"):
        raise r.fail(key + ("scheduler",), f"expected a tls:// address (the cluster runs "
                                           f"code on every worker: mutual TLS only), got "
                                           f"{scheduler!r}")
    certs = r.value(dask, key + ("certs",), str, str(cache_dir / "cluster" / "certs"))
    store = r.mapping(dask.get("store"), key + ("store",), {"listen", "url"})
    listen = r.value(store, key + ("store", "listen"), str, DEFAULT_STORE_LISTEN)
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise r.fail(key + ("store", "listen"), f"expected host:port, got {listen!r}")
    url = r.value(store, key + ("store", "url"), str, "") or None
    if url is not None and not url.startswith("https://"):
        raise r.fail(key + ("store", "url"), f"expected an https:// URL, got {url!r}")
    path = Path(os.path.expanduser(os.path.expandvars(certs)))
    return ExecutorSettings("dask", DaskSettings(
        scheduler=scheduler, certs=path if path.is_absolute() else project_dir / path,
        store_listen=listen, store_url=url))

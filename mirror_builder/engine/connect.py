"""The upstream index client that settings.yaml describes (no podman: plan and lint use it)."""

from __future__ import annotations

from mirror_builder import __version__
from mirror_builder.config.settings import Settings
from mirror_builder.resolve.upstream import UpstreamIndex, UpstreamOptions


def upstream_for(settings: Settings, refresh: bool = False) -> UpstreamIndex:
    up = settings.upstream
    options = UpstreamOptions(json_api_url=up.json_api_url, ttl=up.cache_ttl_seconds,
                              timeout=up.timeout_seconds, retries=up.retries, refresh=refresh,
                              user_agent=f"mirror-builder/{__version__}")
    return UpstreamIndex(up.index_url, settings.cache_dir, options)

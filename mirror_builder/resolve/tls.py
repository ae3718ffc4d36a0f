"""One TLS context, its CA bundle read once, for every connection to the indexes.

requests names the CA bundle (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, else certifi's) to urllib3 by
path, and urllib3 reads the whole file again for each new connection: about 15 ms of CPU a time,
0.3 s of a cold resolution's, while the prefetching threads opened theirs. Here the bundle goes
into one context, made once; a request that asks for another bundle (or none) is left alone.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

from requests.adapters import HTTPAdapter
from requests.utils import DEFAULT_CA_BUNDLE_PATH


def ca_bundle() -> str:
    """The bundle requests verifies with when told nothing else, from the environment as it
    reads it."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or \
        DEFAULT_CA_BUNDLE_PATH


class PreloadedTLSAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections share one context holding the bundle requests would
    have used (its file read once)."""

    def __init__(self, cafile: str | None = None, **kwargs: Any) -> None:
        self.cafile = cafile or ca_bundle()
        self.context = ssl.create_default_context(cafile=self.cafile)
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self.context
        super().init_poolmanager(*args, **kwargs)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host, pool = super().build_connection_pool_key_attributes(request, verify, cert)
        # The context has this very bundle; naming it would make urllib3 read it again.
        if self._ours(verify):
            pool.pop("ca_certs", None)
        return host, pool

    def cert_verify(self, conn, url, verify, cert) -> None:
        super().cert_verify(conn, url, verify, cert)
        if self._ours(verify) and conn.ca_certs == self.cafile:
            conn.ca_certs = None  # verified all the same: by the context's own bundle

    def _ours(self, verify: object) -> bool:
        return verify is True and self.cafile == DEFAULT_CA_BUNDLE_PATH or verify == self.cafile

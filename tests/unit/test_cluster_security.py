"""Who may be the cluster's scheduler: tls:// only; plain TCP only when asked (--insecure) and
only on loopback, because a Dask worker runs whatever its scheduler sends."""

import pytest

from mirror_builder.cluster.security import check_address
from mirror_builder.errors import UsageError


def test_a_tls_address_is_taken():
    assert check_address("tls://build-sched.example:8786") == "tls://build-sched.example:8786"


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:8786", "tcp://10.0.0.5:8786"])
def test_plain_tcp_is_refused_without_insecure(address):
    with pytest.raises(UsageError, match="refusing a plain-TCP scheduler"):
        check_address(address)


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:8786", "tcp://localhost:8786"])
def test_insecure_allows_plain_tcp_on_loopback(address):
    assert check_address(address, insecure=True) == address


@pytest.mark.parametrize("address", ["tcp://10.0.0.5:8786", "tcp://0.0.0.0:8786",
                                     "tcp://127.0.0.1.evil.example:8786"])
def test_insecure_never_allows_plain_tcp_off_loopback(address):
    with pytest.raises(UsageError, match="loopback address only"):
        check_address(address, insecure=True)


@pytest.mark.parametrize("address", ["127.0.0.1:8786", "ws://127.0.0.1:8786", "tls://"])
def test_an_address_without_a_usable_scheme_is_refused(address):
    with pytest.raises(UsageError, match="tls://host:port"):
        check_address(address)

"""Where builds run, from settings' executor: and --executor: local podman by default, a Dask
cluster only over mutual TLS; mistakes name the file, line and key."""

import argparse
from pathlib import Path

import pytest

from mirror_builder.cli.common import cluster_of, executor_options
from mirror_builder.config.settings import load_settings
from mirror_builder.errors import UsageError
from test_settings import isolated_home, settings_error, write_settings  # noqa: F401


def test_without_an_executor_section_builds_run_here(tmp_path):
    settings = load_settings(write_settings(tmp_path, "output_dir: out\n"))
    assert settings.executor.kind == "local" and settings.executor.dask is None


def test_a_dask_section_names_the_scheduler_the_certificates_and_the_store(tmp_path):
    settings = load_settings(write_settings(tmp_path, """\
        executor:
          dask:
            scheduler: tls://sched.example:8786
            certs: cluster-certs
            store: {listen: "0.0.0.0:8790", url: "https://coord.example:8790/"}
        """))
    dask = settings.executor.dask
    assert dask.scheduler == "tls://sched.example:8786"
    assert dask.certs == tmp_path / "conf" / "cluster-certs"
    assert (dask.store_listen, dask.store_url) == ("0.0.0.0:8790", "https://coord.example:8790/")
    assert settings.executor.describe() == "dask cluster at tls://sched.example:8786"


@pytest.mark.parametrize("body, where, problem", [
    ("executor:\n  dask:\n    scheduler: tcp://sched:8786\n", "executor.dask.scheduler",
     "mutual TLS only"),
    ("executor:\n  dask:\n    certs: x\n", "executor.dask", "missing key 'scheduler'"),
    ("executor:\n  dask:\n    scheduler: tls://s:1\n    store: {listen: 8790}\n",
     "executor.dask.store.listen", "expected str"),
    ("executor:\n  dask:\n    scheduler: tls://s:1\n    store: {listen: 'nohost'}\n",
     "executor.dask.store.listen", "host:port"),
    ("executor:\n  dask:\n    scheduler: tls://s:1\n    store: {url: 'http://c:1/'}\n",
     "executor.dask.store.url", "https://"),
    ("executor:\n  kubernetes: {}\n", "executor.kubernetes", "unknown key"),
    ("executor: remote\n", "executor", "expected local or a mapping"),
])
def test_a_wrong_executor_section_names_its_key(tmp_path, body, where, problem):
    message = settings_error(write_settings(tmp_path, body))
    assert "settings.yaml" in message and where in message and problem in message


def parse(*argv: str):
    parser = argparse.ArgumentParser()
    executor_options(parser)
    return parser.parse_args(argv)


def test_the_executor_flag_overrides_settings(tmp_path):
    settings = load_settings(write_settings(tmp_path, """\
        executor:
          dask: {scheduler: "tls://sched.example:8786", certs: /etc/mb/cluster}
        """))
    assert cluster_of(parse(), settings).scheduler == "tls://sched.example:8786"
    assert cluster_of(parse("--executor", "local"), settings) is None
    other = cluster_of(parse("--executor", "tls://other:9000", "--cluster-certs", "/c"), settings)
    assert (other.scheduler, other.certs) == ("tls://other:9000", Path("/c"))


def test_an_address_alone_is_enough_and_plain_tcp_needs_insecure_and_loopback(tmp_path):
    settings = load_settings(write_settings(tmp_path, "output_dir: out\n"))
    cluster = cluster_of(parse("--executor", "tls://sched:8786"), settings)
    assert cluster.certs == settings.cache_dir / "cluster" / "certs"
    with pytest.raises(UsageError, match="refusing a plain-TCP scheduler"):
        cluster_of(parse("--executor", "tcp://127.0.0.1:8786"), settings)
    assert cluster_of(parse("--executor", "tcp://127.0.0.1:8786", "--insecure"),
                      settings).insecure
    with pytest.raises(UsageError, match="no executor: dask: section"):
        cluster_of(parse("--executor", "dask"), settings)
    with pytest.raises(UsageError, match="expected local, dask or tls://"):
        cluster_of(parse("--executor", "kubernetes"), settings)

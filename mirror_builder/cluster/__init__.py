"""Building on many hosts: the cluster's mutual TLS (and, next, the Dask executor and workers)."""

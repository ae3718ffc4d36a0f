"""Logging that carries the package a line is about, without passing it everywhere."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager

current_package: contextvars.ContextVar[str] = contextvars.ContextVar("current_package", default="")


class PackageFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        package = current_package.get()
        record.package = f"[{package}] " if package else ""
        return True


@contextmanager
def about(package: str) -> Iterator[None]:
    token = current_package.set(package)
    try:
        yield
    finally:
        current_package.reset(token)

"""The command line: arguments and output only."""

from mirror_builder.cli.app import main

__all__ = ["main"]

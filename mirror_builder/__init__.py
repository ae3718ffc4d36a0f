"""mirror-builder: rebuild a Python package's whole wheel tree from source, in containers."""

__version__ = "0.1.0"

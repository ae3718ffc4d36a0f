"""Prepare a source tree: unpack safely, patch, read [build-system], vendor crates."""

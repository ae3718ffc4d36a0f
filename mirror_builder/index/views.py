"""The index's views: everything (OUTPUT/simple/), and only what was built from source
(OUTPUT/from-source/simple/), which a gap-fill run keeps beside it so that a user who wants
no upstream binary at all can point their installer there."""

from __future__ import annotations

from collections.abc import Callable

from mirror_builder.index.wheelindex import SimpleIndex, WheelIndex


def sync_from_source(index: WheelIndex, built_from_source: Callable[[str, str], bool]) -> int:
    """Add to the from-source view every wheel of index that was built from source and is not
    there yet (copied: a view is a whole index of its own); the view's number of files."""
    view = SimpleIndex(index.layout.from_source, "wheel")
    count = 0
    for project in index.projects():
        for entry in index.entries(project):
            name = entry["filename"]
            if not built_from_source(project, name):
                continue
            count += 1
            if not view.is_listed(project, name):
                view.add(index.layout.file(project, name), entry.get("requires-python"))
    return count

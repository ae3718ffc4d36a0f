"""What a run writes about itself: build-order.json and graph.json (per target, and plain for
the run's first target), rewritten after every package so that a stopped run still says what
it did."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from mirror_builder.engine.model import BuiltWheel, Edge
from mirror_builder.files import atomic_write_text
from mirror_builder.layout import OutputLayout


def write_graph(out: OutputLayout, target: str, primary: bool, wheels: Sequence[BuiltWheel],
                edges: Iterable[Edge]) -> list[Edge]:
    """Write both files; returns the edges, sorted as written."""
    edges = sorted(edges, key=lambda e: (e.child, e.parent, e.kind))
    out.root.mkdir(parents=True, exist_ok=True)
    targets = (target, None) if primary else (target,)  # None: the plain file names
    order = json.dumps(build_order(wheels, edges), indent=2)
    graph = json.dumps({
        "nodes": [{"id": w.pin, "name": w.name, "version": str(w.version), "wheel": w.path.name}
                  for w in wheels],
        "edges": [{"from": e.parent or None, "to": e.child, "kind": e.kind,
                   "requirement": e.requirement} for e in edges],
    }, indent=2)
    for which in targets:
        atomic_write_text(out.build_order(which), order)
        atomic_write_text(out.graph(which), graph)
    return edges


def build_order(wheels: Sequence[BuiltWheel], edges: Sequence[Edge]) -> list[dict]:
    incoming: dict[str, list[dict]] = {}
    for e in edges:
        incoming.setdefault(e.child, []).append(
            {"parent": e.parent or None, "kind": e.kind, "requirement": e.requirement})
    return [{
        "name": w.name, "version": str(w.version), "wheel": w.path.name, "status": w.status,
        "seconds": round(w.seconds, 2),
        "why": " -> ".join(w.chain + (w.pin,)) if w.chain else f"{w.pin} (requested)",
        "needed_by": incoming.get(w.pin, []),
    } for w in wheels]

"""A project's dependency graph as an SVG picture, drawn server-side by Graphviz's dot (Debian's
graphviz): build edges dashed, install edges solid, the project itself filled."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

EDGE_STYLE = {"build-system": 'style=dashed color="#b35806" label="build"',
              "build-backend": 'style=dashed color="#e08214" label="backend"',
              "install": 'color="#542788" label="install"'}
MOST_EDGES = 400  # a bigger picture says nothing a person can read
DOT_SECONDS = 20


def dot_source(name: str, edges: list[dict[str, Any]]) -> str:
    lines = ["digraph dependencies {", "  rankdir=LR;",
             '  node [shape=box style="rounded,filled" fillcolor="#f7f7f7" fontname="sans-serif" '
             'fontsize=10];', '  edge [fontname="sans-serif" fontsize=8];']
    nodes = sorted({e["from"] for e in edges} | {e["to"] for e in edges})
    for node in nodes:
        attrs = f"label={_quoted(node)}"
        if node.split("==")[0] == name:
            attrs += ' fillcolor="#c6dbef"'
        lines.append(f"  {_quoted(node)} [{attrs}];")
    for edge in edges[:MOST_EDGES]:
        style = EDGE_STYLE.get(edge.get("kind", ""), "")
        lines.append(f"  {_quoted(edge['from'])} -> {_quoted(edge['to'])} [{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def svg(name: str, edges: list[dict[str, Any]]) -> str | None:
    """The picture as an <svg> element, or None if there is nothing to draw or no dot."""
    dot = shutil.which("dot")
    if not edges or dot is None:
        return None
    try:
        drawn = subprocess.run([dot, "-Tsvg"], input=dot_source(name, edges), text=True,
                               capture_output=True, timeout=DOT_SECONDS, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    start = drawn.find("<svg")
    return drawn[start:] if start >= 0 else None


def _quoted(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'

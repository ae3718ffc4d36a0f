"""The web view's HTML pages, for people (the PEP 503 pages under /simple/ are for installers).

Plain HTML and a little CSS, no JavaScript: the details of a build open with <details>. Every
value from the output is escaped; links go only to this server's own paths.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote

from mirror_builder.serve.webdata import ProjectView, WheelView

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { text-align: left; padding: 0.25em 0.8em; border-bottom: 1px solid #ddd; vertical-align: top; }
code, pre { font-size: 0.9em; } pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
.yanked { color: #a00; } .ok { color: #070; } .bad { color: #a00; } .note { color: #666; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dt { font-weight: bold; } dd { margin: 0; }
svg { max-width: 100%; height: auto; }
"""


def page(title: str, body: list[str]) -> str:
    return "\n".join(["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
                      f"<title>{escape(title)}</title>", f"<style>{STYLE}</style>", "</head>",
                      "<body>", f"<h1>{escape(title)}</h1>", *body, "</body>", "</html>", ""])


def home(projects: list[tuple[str, list[str]]], failures: list[dict[str, Any]],
         waiting: list[dict[str, Any]], usage: str) -> str:
    rows = [f'<tr><td><a href="/project/{quote(name)}/">{escape(name)}</a></td>'
            f'<td>{escape(", ".join(versions[:5]))}{" …" if len(versions) > 5 else ""}</td>'
            f"<td>{len(versions)}</td></tr>" for name, versions in projects]
    body = [f'<p class="note">{len(projects)} projects, every wheel built from source in a '
            f"network-isolated container, each with its build record.</p>",
            '<table id="projects"><tr><th>project</th><th>versions (newest first)</th>'
            "<th>count</th></tr>", *rows, "</table>",
            "<h2>Recent failed builds</h2>", _failures(failures),
            "<h2>Waiting for review</h2>", _waiting(waiting),
            "<h2>Installing from this index</h2>", f"<pre>{escape(usage)}</pre>"]
    return page("mirror-builder index", body)


def project(view: ProjectView, graph_svg: str | None) -> str:
    body = [f'<p><a href="/">all projects</a> · installers read <a href="/simple/'
            f'{quote(view.name)}/">/simple/{escape(view.name)}/</a></p>']
    for version, wheels in view.versions.items():
        body.append(f'<h2 id="v{escape(version)}">{escape(view.name)} {escape(version)}</h2>')
        body.append('<table class="wheels"><tr><th>wheel</th><th>target</th><th>variant</th>'
                    "<th>built</th><th>verified</th></tr>")
        body += [_wheel_row(view.name, w) for w in wheels]
        body.append("</table>")
        body += [_wheel_details(view.name, w) for w in wheels]
    body.append('<h2 id="graph">Dependency graph</h2>')
    if graph_svg:
        body.append('<p class="note">From the last run\'s graph.json: dashed edges are build '
                    "requirements, solid ones install requirements.</p>")
        body.append(f'<div class="graph">{graph_svg}</div>')
    else:
        body.append('<p class="note">Not in the last run\'s graph (graph.json), or Graphviz '
                    "is not installed.</p>")
    return page(f"{view.name}", body)


def _wheel_row(name: str, wheel: WheelView) -> str:
    record = wheel.record or {}
    built = "from source" if record.get("built_from_source", True) else \
        '<span class="bad">pre-built upstream wheel</span>'
    yanked = f' <span class="yanked">yanked{": " + escape(str(wheel.yanked)) if isinstance(wheel.yanked, str) else ""}</span>' \
        if wheel.yanked else ""
    return (f'<tr><td><a href="/files/{quote(name)}/{quote(wheel.filename)}">'
            f"{escape(wheel.filename)}</a>{yanked}</td><td>{escape(wheel.target)}</td>"
            f"<td>{escape(wheel.variant)}</td><td>{built}</td>"
            f"<td>{_verified(wheel.verification)}</td></tr>")


def _verified(predicate: dict[str, Any] | None) -> str:
    if not predicate:
        return '<span class="note">not yet</span>'
    result = str(predicate.get("verificationResult", ""))
    css = "ok" if result == "PASSED" else "bad"
    return f'<span class="{css}">{escape(result)}</span> {escape(str(predicate.get("timeVerified", "")))}'


def _wheel_details(name: str, wheel: WheelView) -> str:
    record = wheel.record
    if record is None:
        return f"<p class=\"note\">{escape(wheel.filename)}: no build record kept.</p>"
    source, image, job = record.get("source", {}), record.get("image", {}), record.get("job") or {}
    patches = ", ".join(p.get("name", "") for p in record.get("patches", [])) or "none"
    items = [
        ("source", f'{escape(source.get("url", ""))}<br><code>sha256 {escape(source.get("sha256", ""))}</code>'),
        ("patches", escape(patches)),
        ("image", f'{escape(image.get("tag", ""))}<br><code>{escape(image.get("id", ""))}</code>'),
        ("duration", f'{record.get("seconds", 0):.1f} s, started {escape(record.get("started_at", ""))}'),
        ("job", escape(f'{job.get("trigger", "")}: {job.get("detail", "")}') if job else "none recorded"),
        ("log", f'<a href="/project/{quote(name)}/log/{quote(wheel.filename)}">build log</a>'),
        ("provenance", f'<a href="/files/{quote(name)}/{quote(wheel.filename)}.provenance">'
                       "signed statement</a>"),
    ]
    if wheel.verification:
        found = wheel.verification.get("reproduction", {})
        items.append(("verification", escape(f'{wheel.verification.get("verificationResult")}: '
                                             f'{found.get("summary", "")}')))
    items.append(("SBOM", escape(", ".join(wheel.sbom_components)) or
                  '<span class="note">nothing but the wheel itself</span>'))
    freeze = "\n".join(record.get("build_env", {}).get("freeze", []))
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{v}</dd>" for k, v in items)
    return (f'<details class="record"><summary>build record of {escape(wheel.filename)}</summary>'
            f"<dl>{rows}</dl><p>build environment (pip freeze):</p><pre>{escape(freeze)}</pre>"
            "</details>")


def _failures(failures: list[dict[str, Any]]) -> str:
    return _jobs_table("failures", ("package", "target", "ended", "why"), [
        (f"{f.get('package')}=={f.get('version')}", f.get("target", ""), f.get("ended_at", ""),
         f.get("message", "")) for f in failures], "None in the job history.")


def _waiting(waiting: list[dict[str, Any]]) -> str:
    return _jobs_table("waiting", ("job", "waits for", "why"), [
        (f"{w.get('package')}=={w.get('version')}", ", ".join(w.get("waiting_for", [])),
         w.get("detail", "")) for w in waiting], "No job is waiting for a review.")


def _jobs_table(table_id: str, headings: tuple[str, ...], rows: list[tuple],
                empty: str) -> str:
    if not rows:
        return f'<p class="note">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headings)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return f'<table id="{table_id}"><tr>{head}</tr>{body}</table>'

"""What `serve` answers for a project the index does not carry (opt-in; off by default).

redirect:    a temporary redirect to the upstream index's page for it (python.build's model);
             the installer then reads upstream's page, sdists and all.
wheels-only: upstream's page for it with the sdists removed, so that even the fallback never
             makes anyone compile: fetched through our upstream client (its disk cache and
             conditional requests), each file's URL and hashes passed through as upstream gave
             them, and marked as not built by us (PEP 691's private "_mirror-builder" key, a meta
             tag and the page's title).

A project we carry is never answered from upstream, whatever its versions there: only a name
with no page of ours falls back.
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from aiohttp import web
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from mirror_builder.errors import MirrorBuilderError
from mirror_builder.index.wheelindex import API_VERSION, JSON_TYPE
from mirror_builder.resolve.pages import DistributionFile

MARK = "upstream wheels, not built from source by this index"


@dataclass(frozen=True)
class Fallback:
    mode: Literal["redirect", "wheels-only"]
    upstream_url: str  # the upstream simple index, ending in /
    # wheels-only: the files upstream lists for a project ([] if none), blocking (a thread).
    project_files: Callable[[str], list[DistributionFile]] | None = None

    async def answer(self, project: str, chosen: str) -> web.StreamResponse:
        """The answer for project (normalized) that we do not carry, as the chosen page type."""
        page_url = f"{self.upstream_url}{project}/"
        if self.mode == "redirect":
            raise web.HTTPTemporaryRedirect(page_url, headers={"Vary": "Accept"})
        assert self.project_files is not None
        try:
            files = await asyncio.get_running_loop().run_in_executor(
                None, self.project_files, project)
        except (MirrorBuilderError, OSError) as exc:
            raise web.HTTPBadGateway(text=f"the upstream index did not answer for {project}: "
                                          f"{exc}\n") from None
        wheels = [f for f in files if f.is_wheel]
        if not wheels:
            raise web.HTTPNotFound(text=f"no such project here, and upstream has no wheels "
                                        f"of {project}\n")
        response = web.Response(headers={"Vary": "Accept", "X-Mirror-Builder-Origin": "upstream"})
        response.content_type = chosen
        if chosen == JSON_TYPE:
            response.body = json.dumps(json_page(project, wheels, page_url), indent=1).encode()
        else:
            response.body = html_page(project, wheels, page_url).encode()
            response.charset = "utf-8"
        return response


def json_page(project: str, wheels: list[DistributionFile], page_url: str) -> dict:
    files = []
    for f in wheels:
        entry: dict = {"filename": f.filename, "url": f.url,
                       "hashes": {"sha256": f.sha256} if f.sha256 else {},
                       "requires-python": f.requires_python,
                       "yanked": (f.yanked_reason or True) if f.yanked else False}
        if f.has_metadata:
            entry["core-metadata"] = True
        if f.size is not None:
            entry["size"] = f.size
        files.append(entry)
    return {"meta": {"api-version": API_VERSION}, "name": project,
            "versions": _versions(wheels), "files": files,
            # PEP 691 reserves keys with a leading underscore for the index server's own use.
            "_mirror-builder": {"origin": "upstream", "built_from_source": False,
                                "upstream_page": page_url, "note": MARK}}


def html_page(project: str, wheels: list[DistributionFile], page_url: str) -> str:
    links = []
    for f in wheels:
        href = f.url + (f"#sha256={f.sha256}" if f.sha256 else "")
        attrs = ""
        if f.requires_python:
            attrs += f' data-requires-python="{html.escape(f.requires_python)}"'
        if f.yanked:
            attrs += f' data-yanked="{html.escape(f.yanked_reason or "")}"'
        if f.has_metadata:
            attrs += ' data-core-metadata="true" data-dist-info-metadata="true"'
        links.append(f'    <a href="{html.escape(href)}"{attrs}>{html.escape(f.filename)}</a><br/>')
    title = f"Links for {project} ({MARK})"
    return "\n".join([
        "<!DOCTYPE html>", "<html>", "  <head>",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
        '    <meta name="mirror-builder:origin" content="upstream">',
        f'    <meta name="mirror-builder:upstream-page" content="{html.escape(page_url)}">',
        f"    <title>{html.escape(title)}</title>", "  </head>", "  <body>",
        f"    <h1>{html.escape(title)}</h1>", *links, "  </body>", "</html>", ""])


def _versions(wheels: list[DistributionFile]) -> list[str]:
    found = set()
    for f in wheels:
        try:
            found.add(parse_wheel_filename(f.filename)[1])
        except InvalidWheelFilename:
            continue
    return [str(v) for v in sorted(found)]

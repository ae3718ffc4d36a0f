"""The nginx site that serves an output directory as a static, private index in production.

`mirror-builder serve` is for a team's machine; behind a real web server the output directory is
plain files. This writes the server block for Debian's nginx that keeps what `serve` promises:
PEP 691 negotiation by Accept (and ?format=), the PEP 658 .metadata files, only the index's own
files (records, jobs, the lock and temporary files stay private), no symbolic links followed,
HTTP Basic auth against the same hashed tokens file `serve --tokens` reads, and TLS. The other
build variants' outputs (OUTPUT/variants/<name>/) are served as they lie on disk, under
/variants/<name>/, for the declared variant names only.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from mirror_builder.config.variants import VARIANT_NAME
from mirror_builder.errors import UsageError
from mirror_builder.layout import VARIANTS_FOLDER, OutputLayout

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
# What a path may hold before it is written into the configuration: nginx would read a quote,
# a backslash, a brace, ';' or '$' (a variable) in a path as syntax.
_SAFE_PATH = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
_LISTEN = re.compile(r"(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})|[0-9]{1,5}")
_SERVER_NAME = re.compile(r"[A-Za-z0-9.*_-]+")
# A normalized project name (PEP 503), and a published file name (never a hidden temporary one).
_PROJECT = r"[a-z0-9]+(?:-[a-z0-9]+)*"
_FILE = r"[A-Za-z0-9_][A-Za-z0-9_.+!-]*"


@dataclass(frozen=True)
class NginxSite:
    """Where the index is, where nginx listens, and how it admits and encrypts."""

    root: Path
    listen: str = "127.0.0.1:8443"
    server_name: str = "_"
    tokens_file: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    # The other build variants, served from OUTPUT/variants/<name>/ at the same path.
    variants: tuple[str, ...] = ()


def render_site(site: NginxSite) -> str:
    """The configuration for /etc/nginx/conf.d/ (it goes in nginx's http block)."""
    _check(site)
    # map names are global in nginx; a suffix per index lets one nginx serve several.
    tag = hashlib.sha256(str(site.root).encode()).hexdigest()[:8]
    accept, page = f"$mirror_builder_accept_{tag}", f"$mirror_builder_page_{tag}"
    lines = [
        f"# A wheels-only index, served from {site.root}",
        "# (written by `mirror-builder nginx-config`; see the README's private index recipe).",
        "",
        *_page_maps(accept, page),
        "",
        "server {",
        *_server_settings(site),
        "",
        *_locations(page, _variant_prefix(site.variants)),
        "}",
        "",
    ]
    return "\n".join(lines)


def _page_maps(accept: str, page: str) -> list[str]:
    """Two maps that set page to the index file (JSON or HTML) the request asks for."""
    return [
        "# PEP 691: the JSON page for a client that asks for it, else HTML. nginx cannot weigh",
        "# q-values, so JSON wins whenever it is offered (pip and uv prefer it anyway).",
        f"map $http_accept {accept} {{",
        "    default index.html;",
        '    "~*application/vnd\\.pypi\\.simple\\.v1\\+json" index.json;',
        "}",
        f"map $arg_format {page} {{",
        f"    default {accept};",
        f'    "{JSON_TYPE}" index.json;',
        '    "application/vnd.pypi.simple.v1%2Bjson" index.json;',
        '    "application/vnd.pypi.simple.v1+html" index.html;',
        '    "application/vnd.pypi.simple.v1%2Bhtml" index.html;',
        '    "text/html" index.html;',
        '    "text%2Fhtml" index.html;',
        "}",
    ]


def _server_settings(site: NginxSite) -> list[str]:
    """The server block's own settings: where it listens, TLS, the root and auth."""
    tls = site.certfile is not None
    lines = [
        f"    listen {site.listen}{' ssl' if tls else ''};",
        f"    server_name {site.server_name};",
    ]
    if tls:
        lines += [
            f'    ssl_certificate "{site.certfile}";',
            f'    ssl_certificate_key "{site.keyfile}";',
            "    ssl_protocols TLSv1.2 TLSv1.3;",
        ]
    lines += [
        f'    root "{site.root}";',
        "    # A link under the output is never followed, inside the tree or out of it.",
        "    disable_symlinks on;",
        "    autoindex off;",
        "    server_tokens off;",
        "    # Redirects (a project page without its slash) stay relative, so they work behind",
        "    # a proxy or a port mapping.",
        "    absolute_redirect off;",
    ]
    if site.tokens_file is not None:
        lines += [
            "    # The tokens file `mirror-builder tokens` keeps: name:bcrypt-hash lines, which",
            "    # nginx checks with crypt(). Every path asks, so a 401 says nothing about",
            "    # whether a project exists.",
            '    auth_basic "mirror-builder";',
            f'    auth_basic_user_file "{site.tokens_file}";',
        ]
    return lines


def _variant_prefix(variants: tuple[str, ...]) -> str:
    """The optional path prefix of the other variants' outputs, e.g. (?:variants/(?:cuda)/)?"""
    if not variants:
        return ""
    names = "|".join(re.escape(v) for v in variants)
    return f"(?:{VARIANTS_FOLDER}/(?:{names})/)?"


def _locations(page: str, variant: str = "") -> list[str]:
    """What is served: the index pages, wheels, metadata and sources (of each variant, under
    the variant prefix); nothing else."""
    return [
        f"    location ~ ^/{variant}(?:sources/|from-source/)?simple/(?:{_PROJECT}/)?index\\.json$ {{",
        f"        types {{ }} default_type {JSON_TYPE};",
        "        add_header Vary Accept always;",
        "    }",
        f"    location ~ ^/{variant}(?:sources/|from-source/)?simple/(?:{_PROJECT}/)?index\\.html$ {{",
        "        types { } default_type text/html;",
        "        charset utf-8;",
        "        add_header Vary Accept always;",
        "    }",
        "    # The project list and project pages: the form the client asked for.",
        f"    location ~ ^/{variant}(?:sources/|from-source/)?simple/(?:{_PROJECT}/?)?$ {{",
        f"        index {page};",
        "        add_header Vary Accept always;",
        "    }",
        "    # Wheels and their core metadata (PEP 658); the sources' sdists.",
        f"    location ~ ^/{variant}(?:from-source/)?files/{_PROJECT}/{_FILE}\\.whl$ {{",
        "        types { } default_type application/octet-stream;",
        "    }",
        f"    location ~ ^/{variant}(?:sources/|from-source/)?files/{_PROJECT}/{_FILE}\\.metadata$ {{",
        "        types { } default_type text/plain;",
        "        charset utf-8;",
        "    }",
        f"    location ~ ^/{variant}sources/files/{_PROJECT}/{_FILE}\\.(?:tar\\.gz|zip)$ {{",
        "        types { application/gzip gz; application/zip zip; }",
        "    }",
        "    # Each wheel's signed statement (the pages' provenance URL), and the signing keys.",
        f"    location ~ ^/{variant}files/{_PROJECT}/{_FILE}\\.whl\\.provenance$ {{",
        "        types { } default_type application/json;",
        "    }",
        "    # Every wheel on one flat page, for pip --find-links.",
        f"    location ~ ^/{variant}find-links\\.html$ {{",
        "        types { } default_type text/html;",
        "        charset utf-8;",
        "    }",
        f"    location ~ ^/{variant}(?:signing-key|keys/[0-9a-f]+)\\.pub$ {{",
        "        types { } default_type application/x-pem-file;",
        "    }",
        "    # Nothing else in the output directory is served (records, logs, jobs, the lock,",
        "    # temporary files). A root with no files answers 404 only after auth has run.",
        "    location / {",
        "        root /nonexistent;",
        "    }",
    ]


def _check(site: NginxSite) -> None:
    if not OutputLayout(site.root).simple.is_dir():
        raise UsageError(f"{site.root} holds no index yet; run mirror-builder bootstrap first")
    if not _LISTEN.fullmatch(site.listen):
        raise UsageError(f"--listen {site.listen!r}: give PORT, ADDRESS:PORT or [IPv6]:PORT")
    if not 0 < int(site.listen.rpartition(":")[2]) < 65536:
        raise UsageError(f"--listen {site.listen!r}: the port must be from 1 to 65535")
    if not _SERVER_NAME.fullmatch(site.server_name):
        raise UsageError(f"--server-name {site.server_name!r} is not a host name")
    if (site.certfile is None) != (site.keyfile is None):
        raise UsageError("TLS needs both --certfile and --keyfile")
    for variant in site.variants:
        if not VARIANT_NAME.fullmatch(variant):
            raise UsageError(f"variant {variant!r} is not a variant name")
    for label, path in (("output", site.root), ("tokens file", site.tokens_file),
                        ("certificate", site.certfile), ("key", site.keyfile)):
        if path is None:
            continue
        if not path.is_absolute() or not _SAFE_PATH.fullmatch(str(path)):
            raise UsageError(f"{label} {str(path)!r}: nginx needs an absolute path of letters, "
                             f"digits and ._-/@%+=:, (no quotes, spaces, braces, ';' or '$')")
        if label != "output" and not path.is_file():
            raise UsageError(f"{label} {path}: no such file")

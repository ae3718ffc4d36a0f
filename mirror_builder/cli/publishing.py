"""Commands that publish the index: yank, index, serve, tokens, nginx-config."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from mirror_builder.cli.common import output_of, output_option, pin, settings_of, writing
from mirror_builder.errors import MirrorBuilderError, UsageError
from mirror_builder.layout import OutputLayout, variant_output


def add_yank(commands) -> None:
    yank = commands.add_parser(
        "yank", help="mark a version's wheels yanked (PEP 592); nothing is deleted",
        description="Mark every wheel of NAME==VERSION yanked in the index, so installers skip "
                    "it unless it is pinned exactly. Files are never deleted.")
    yank.add_argument("requirement", metavar="NAME==VERSION")
    yank.add_argument("--reason", help="shown to users by pip and uv")
    yank.add_argument("--undo", action="store_true", help="take the yank back")
    output_option(yank, writes=True)
    yank.set_defaults(run=_yank)


def add_index(commands) -> None:
    index = commands.add_parser(
        "index", help="write the index pages again from the files, or check them",
        description="Regenerate every page of the wheel index and the source archive from the "
                    "files on disk (keeping yanks), or with --check read them back as a client "
                    "would and report any page, hash, size or metadata file that does not match.")
    index.add_argument("--check", action="store_true", help="verify instead of writing")
    output_option(index, writes=True)
    index.set_defaults(run=_index)


def add_serve(commands) -> None:
    serve = commands.add_parser(
        "serve", help="serve the index over HTTP(S), public or with read tokens",
        description="Serve OUTPUT over HTTP: /simple/ (PEP 503 HTML and PEP 691 JSON, chosen by "
                    "the Accept header), /files/ (wheels and their .metadata, with ETag, "
                    "Last-Modified and byte ranges), and /sources/simple/ (the sdists); each "
                    "other build variant in settings the same way under /variants/NAME/. With "
                    "--tokens (or serve.tokens_file in settings), every request needs a read "
                    "token (HTTP Basic); with --certfile and --keyfile, HTTPS.")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=_port_number, default=8080,
                       help="port, 0 for any free one (default: %(default)s)")
    serve.add_argument("--access-log", type=Path, metavar="FILE",
                       help="write the request log to FILE instead of standard error")
    serve.add_argument("--tokens", type=Path, metavar="FILE",
                       help="admit only requests with a read token from FILE (default: "
                            "serve.tokens_file in settings; see mirror-builder tokens)")
    serve.add_argument("--certfile", type=Path, metavar="FILE",
                       help="serve HTTPS with this certificate chain (PEM); needs --keyfile")
    serve.add_argument("--keyfile", type=Path, metavar="FILE", help="the certificate's private key (PEM)")
    serve.add_argument("--fallback", choices=("off", "redirect", "wheels-only"),
                       help="a project this index does not carry: off (404), redirect (to the "
                            "upstream index's page), wheels-only (upstream's page with its "
                            "sdists removed, marked as not built here); default: serve.fallback "
                            "in settings, else off")
    output_option(serve, variant=False)  # every variant, side by side
    serve.set_defaults(run=_serve)


def add_tokens(commands) -> None:
    tokens = commands.add_parser(
        "tokens", help="the read tokens of a private index (serve, nginx)",
        description="add NAME: make a read token, store its bcrypt hash and print the token, "
                    "once. list: the token names and when each was made. revoke NAME: remove "
                    "it; a running serve stops admitting it at once. The file is htpasswd's "
                    "format, so nginx's auth_basic_user_file reads it too.")
    tokens.add_argument("action", choices=["add", "list", "revoke"])
    tokens.add_argument("name", nargs="?", metavar="NAME",
                        help="the token's name: the user name clients give with it")
    tokens.add_argument("--file", type=Path, metavar="FILE",
                        help="the tokens file (default: serve.tokens_file in settings)")
    tokens.set_defaults(run=_tokens)


def add_nginx_config(commands) -> None:
    nginx = commands.add_parser(
        "nginx-config", help="print an nginx site that serves the index in production",
        description="Print a server block for Debian's nginx (/etc/nginx/conf.d/) that serves "
                    "OUTPUT as `serve` does: PEP 691 by Accept, .metadata files, only the "
                    "index's own files, no links followed, and each other build variant in "
                    "settings under /variants/NAME/; with --tokens, HTTP Basic auth "
                    "against the tokens file; with --certfile/--keyfile, TLS.")
    output_option(nginx, variant=False)
    nginx.add_argument("--listen", default="443", metavar="[ADDRESS:]PORT",
                       help="nginx's listen address (default: %(default)s)")
    nginx.add_argument("--server-name", default="_", metavar="NAME",
                       help="the host name clients use (default: any)")
    nginx.add_argument("--tokens", type=Path, metavar="FILE",
                       help="require a token from this file (default: serve.tokens_file in "
                            "settings; see mirror-builder tokens)")
    nginx.add_argument("--certfile", type=Path, metavar="FILE", help="TLS certificate (PEM)")
    nginx.add_argument("--keyfile", type=Path, metavar="FILE", help="its private key (PEM)")
    nginx.set_defaults(run=_nginx_config)


def _yank(args, console: Console) -> int:
    from mirror_builder.index.wheelindex import WheelIndex

    name, version = pin(args.requirement)
    index = WheelIndex(output_of(args, settings_of(args), existing=True))
    with writing(args, index.root, console):
        changed = index.yank(name, version, args.reason, undo=args.undo)
    if not changed:
        raise MirrorBuilderError(f"{name}=={version} has no wheels in {index.simple_dir}")
    verb = "un-yanked" if args.undo else "yanked"
    for filename in changed:
        console.print(f"{verb} {filename}")
    return 0


def _index(args, console: Console) -> int:
    from mirror_builder.index.wheelindex import WheelIndex, verify

    index = WheelIndex(output_of(args, settings_of(args), existing=True))
    if args.check:
        problems = verify(index) + verify(index.sources)
        for problem in problems:
            console.print(f"[red]problem:[/] {problem}", highlight=False)
        if problems:
            raise MirrorBuilderError(f"{len(problems)} problems in {index.root}")
        console.print(f"{index.root}: every page, hash, size and metadata file checks out")
        return 0
    with writing(args, index.root, console):
        wheels = index.regenerate()
        sources = index.sources.regenerate()
    console.print(f"wrote the pages for {wheels} wheels and {sources} sdists in {index.root}")
    return 0


def _nginx_config(args, console: Console) -> int:
    from mirror_builder.serve.nginx import NginxSite, render_site

    def absolute(path: Path | None) -> Path | None:
        return None if path is None else path.absolute()

    settings = settings_of(args)
    site = NginxSite(root=output_of(args, settings, existing=True), listen=args.listen,
                     server_name=args.server_name,
                     tokens_file=absolute(args.tokens or settings.serve.tokens_file),
                     certfile=absolute(args.certfile), keyfile=absolute(args.keyfile),
                     variants=settings.variant_names[1:])
    sys.stdout.write(render_site(site))
    return 0


def _port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is out of range (1 to 65535, or 0 for any "
                                         f"free port)")
    return port


def _fallback(mode: str, settings):
    """serve's Fallback for mode (None: off), through our upstream client and its cache."""
    if mode == "off":
        return None
    from mirror_builder.engine.connect import upstream_for
    from mirror_builder.serve.fallback import Fallback

    upstream = upstream_for(settings)
    return Fallback(mode, upstream.index_url,
                    upstream.project_files if mode == "wheels-only" else None)


def _serve(args, console: Console) -> int:
    from mirror_builder.serve.server import ServeOptions, serve

    settings = settings_of(args)
    root = output_of(args, settings)
    variants = settings.variant_names[1:]  # the default variant's output is root itself
    if not any(OutputLayout(variant_output(root, v, settings.variant_names[0])).simple.is_dir()
               for v in settings.variant_names):
        raise UsageError(f"{root} holds no index yet; run mirror-builder bootstrap first")
    options = ServeOptions(root=root, host=args.host, port=args.port, access_log=args.access_log,
                           tokens_file=args.tokens or settings.serve.tokens_file,
                           certfile=args.certfile, keyfile=args.keyfile, variants=variants,
                           fallback=_fallback(args.fallback or settings.serve.fallback, settings))
    # Plain print: the commands must stay copy-pasteable (rich would wrap them).
    serve(options, print_fn=lambda text: print(text, flush=True))
    return 0


def _tokens(args, console: Console) -> int:
    from mirror_builder.serve.tokens import add_token, read_tokens, revoke_token

    path = args.file or settings_of(args).serve.tokens_file
    if path is None:
        raise UsageError("which tokens file? give --file FILE, or set serve.tokens_file in "
                         "settings.yaml")
    if args.action in ("add", "revoke") and not args.name:
        raise UsageError(f"tokens {args.action} needs the token's NAME")
    if args.action == "list":
        if args.name:
            raise UsageError("tokens list takes no NAME")
        listed = read_tokens(path, missing_ok=True).tokens
        for token in listed:
            print(f"{token.name}\t{token.created or '-'}")
        if not listed:
            console.print(f"no tokens in {path}", highlight=False, markup=False)
        return 0
    if args.action == "revoke":
        revoke_token(path, args.name)
        console.print(f"revoked {args.name!r} in {path}; a running serve refuses it from its next "
                      f"request (nginx reads the file on every request)", highlight=False, markup=False)
        return 0
    token = add_token(path, args.name)
    # The token alone on standard output (TOKEN=$(mirror-builder tokens add ci) works); the
    # explanation on standard error, without it, so a captured log does not hold it twice.
    print(token, flush=True)
    index = f"https://{args.name}:TOKEN@HOST/simple/"
    console.print(
        f"Added the read token {args.name!r} to {path}; it is printed above, this once only "
        f"(the file keeps only its hash).\n"
        f"Clients give it as user name {args.name} and password TOKEN (HTTP Basic), in the "
        f"index URL:\n"
        f"  pip install --index-url {index} --only-binary :all: PACKAGE\n"
        f"  uv pip install --index-url {index} --only-binary :all: PACKAGE\n"
        f"or, to keep it out of commands and logs, with the plain URL "
        f"https://HOST/simple/ and a line in ~/.netrc (or the file NETRC names):\n"
        f"  machine HOST login {args.name} password TOKEN",
        highlight=False, soft_wrap=True, markup=False)
    return 0

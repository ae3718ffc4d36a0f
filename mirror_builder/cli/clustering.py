"""The build cluster: cluster certs (its mutual TLS)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

DEFAULT_MEMBERS = ("scheduler", "coordinator", "worker")


def add_cluster(commands) -> None:
    cluster = commands.add_parser(
        "cluster", help="the build cluster's certificates (mutual TLS)",
        description="certs DIR: make the cluster's CA in DIR (ca.pem, ca.key; kept if it is "
                    "there) and a certificate and key for each member (default: scheduler, "
                    "coordinator, worker), valid for the given hosts. Every connection in the "
                    "cluster is mutual TLS: a worker runs what its scheduler sends, so only "
                    "holders of a certificate from this CA may connect. Copy ca.pem and a "
                    "member's .pem and .key to that member; ca.key stays where certificates "
                    "are made.")
    actions = cluster.add_subparsers(dest="action", required=True, metavar="ACTION")
    certs = actions.add_parser("certs", help="make the CA and member certificates")
    certs.add_argument("folder", type=Path, metavar="DIR")
    certs.add_argument("--member", action="append", metavar="NAME",
                       help=f"a member to certify; repeat (default: {', '.join(DEFAULT_MEMBERS)})")
    certs.add_argument("--host", action="append", metavar="HOST",
                       help="an IP address or host name the members' certificates are valid "
                            "for; repeat (default: 127.0.0.1 and localhost)")
    certs.add_argument("--force", action="store_true",
                       help="replace member certificates that exist (and the CA if --member is "
                            "not given: then every member needs a new certificate)")
    cluster.set_defaults(run=_cluster)


def _cluster(args, console: Console) -> int:
    from mirror_builder.cluster.certs import DEFAULT_HOSTS, make_ca, make_member

    folder: Path = args.folder
    if not (folder / "ca.pem").exists() or (args.force and not args.member):
        files = make_ca(folder, force=args.force)
        console.print(f"CA: {files.certificate} (its key {files.key} stays here)",
                      highlight=False)
    hosts = tuple(args.host) if args.host else DEFAULT_HOSTS
    for member in args.member or DEFAULT_MEMBERS:
        files = make_member(folder, member, hosts, force=args.force)
        console.print(f"{member}: {files.certificate} and {files.key} (valid for "
                      f"{', '.join(hosts)})", highlight=False)
    return 0

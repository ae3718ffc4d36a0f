"""The build cluster: cluster certs (its mutual TLS), cluster scheduler, and worker (a build
host). The coordinator is bootstrap, rebuild or update with --executor."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

DEFAULT_MEMBERS = ("scheduler", "coordinator", "worker")


def add_cluster(commands) -> None:
    cluster = commands.add_parser(
        "cluster", help="the build cluster: its certificates (mutual TLS), its scheduler",
        description="scheduler: run the cluster's scheduler here (see cluster scheduler "
                    "--help). certs DIR: make the cluster's CA in DIR (ca.pem, ca.key; kept if "
                    "it is "
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
    scheduler = actions.add_parser(
        "scheduler", help="run the cluster's Dask scheduler here, hardened",
        description="A Dask scheduler for the build cluster, until Ctrl-C: mutual TLS with the "
                    "certificates in --certs (scheduler.pem, scheduler.key), its HTTP server "
                    "answering /health only (Dask's dashboard pages need no credentials), a "
                    "build that kills its worker tried on at most --allowed-failures + 1 "
                    "workers, a build whose target has no worker left failing after "
                    "--lost-target-timeout. It prints its address.")
    scheduler.add_argument("--certs", type=Path, metavar="DIR", required=True)
    scheduler.add_argument("--host", default="127.0.0.1",
                           help="the address to listen on (default: 127.0.0.1)")
    scheduler.add_argument("--port", type=int, default=8786, help="0: any free port")
    scheduler.add_argument("--allowed-failures", type=int, default=2, metavar="N",
                           help="a build whose worker dies is tried on at most N + 1 workers "
                                "(default: 2)")
    scheduler.add_argument("--lost-target-timeout", default="120s", metavar="DURATION",
                           help="a build waiting for a target no worker serves any more fails "
                                "after this (default: 120s)")
    scheduler.add_argument("--address-file", type=Path, metavar="FILE",
                           help="also write the address to FILE once listening")
    cluster.set_defaults(run=_cluster)


def add_worker(commands) -> None:
    worker = commands.add_parser(
        "worker", help="serve builds for a build cluster from this host",
        description="Start a Dask worker (with a nanny that restarts it) on this build host. It "
                    "makes the images of the targets it serves, as bootstrap does, and "
                    "advertises one resource per target and per image content, so a build goes "
                    "only to a host whose image is the coordinator's. Each build runs in this "
                    "host's podman, in the same network-less sandbox as a local build; its "
                    "files come from and go to the coordinator's artifact store by sha256.")
    worker.add_argument("--scheduler", required=True, metavar="ADDRESS",
                        help="tls://HOST:PORT of the cluster's scheduler")
    worker.add_argument("--target", metavar="NAME", action="append",
                        help="a target this host builds for; repeat (default: the default "
                             "target)")
    worker.add_argument("--certs", type=Path, metavar="DIR",
                        help="ca.pem and this worker's certificate and key (default: "
                             "CACHE_DIR/cluster/certs)")
    worker.add_argument("--member", default="worker",
                        help="whose certificate in --certs (default: worker)")
    worker.add_argument("--name", help="this worker's name in records and summaries "
                                       "(default: the host name)")
    worker.add_argument("--slots", type=int, default=1, metavar="N",
                        help="builds at once (default: 1)")
    worker.add_argument("--cpus", type=float, metavar="N",
                        help="at most N CPUs for each build container, whatever a package's "
                             "cpus override asks (a host shared with other work)")
    worker.add_argument("--host", default=None,
                        help="the address to listen on and be reached at (default: this "
                             "host's address toward the scheduler)")
    worker.add_argument("--cache-dir", type=Path, metavar="DIR",
                        help="this worker's cache (default: settings' cache_dir)")
    worker.add_argument("--insecure", action="store_true",
                        help="allow a tcp:// scheduler on loopback (tests only)")
    worker.set_defaults(run=_worker)


def _worker(args, console: Console) -> int:
    import dataclasses
    import os
    import socket

    from mirror_builder.cli.common import settings_of
    from mirror_builder.cluster.members import WorkerSpec, run_worker
    from mirror_builder.cluster.security import check_address, member_files
    from mirror_builder.cluster.wire import image_resource, target_resource, tests_resource
    from mirror_builder.config.sizes import machine_memory
    from mirror_builder.errors import UsageError
    from mirror_builder.sandbox.images import ImageManager
    from mirror_builder.sandbox.podman import PodmanService

    settings = settings_of(args)
    if args.cache_dir is not None:
        settings = dataclasses.replace(settings, cache_dir=args.cache_dir.resolve())
    insecure = check_address(args.scheduler, args.insecure).startswith("tcp://")
    certs = (args.certs or settings.cache_dir / "cluster" / "certs").resolve()
    member_files(certs, args.member)  # the store needs them even with --insecure
    if args.slots < 1:
        raise UsageError("--slots must be at least 1")
    if args.cpus is not None and args.cpus <= 0:
        raise UsageError("--cpus must be more than 0")
    targets = settings.select_targets(args.target)
    # The host's cores and memory: the budget builds take their cpus and memory limits from.
    resources: dict[str, float] = {"cpus": float(os.cpu_count() or 1),
                                   "memory": float(machine_memory())}
    with PodmanService(settings.cache_dir / "state") as podman:
        images = ImageManager(podman, settings.cache_dir)
        for target in targets:
            with console.status(f"preparing the image for {target.name}"):
                image = images.ensure(target)
            resources[target_resource(target.name)] = args.slots
            resources[image_resource(image)] = args.slots
            resources[tests_resource(image)] = args.slots
            console.print(f"{target.name}: {image.tag}", highlight=False)
    spec = WorkerSpec(scheduler=args.scheduler, name=args.name or socket.gethostname(),
                      certs=None if insecure else certs, member=args.member, host=args.host,
                      slots=args.slots, resources=resources, cpus=args.cpus)
    run_worker(spec, settings, tuple(t.name for t in targets), lambda address: console.print(
        f"worker {spec.name} at {address}, serving {', '.join(t.name for t in targets)} "
        f"({args.slots} at once); Ctrl-C stops it", highlight=False))
    return 0


def _cluster(args, console: Console) -> int:
    if args.action == "scheduler":
        return _scheduler(args, console)
    return _certs(args, console)


def _scheduler(args, console: Console) -> int:
    from mirror_builder.cluster.members import run_scheduler
    from mirror_builder.cluster.security import member_files

    member_files(args.certs, "scheduler")

    def ready(address: str) -> None:
        console.print(f"scheduler at {address}; Ctrl-C stops it", highlight=False)
        if args.address_file:
            args.address_file.write_text(address + "\n")

    from mirror_builder.config.durations import parse_duration
    from mirror_builder.errors import UsageError

    try:
        lost = int(parse_duration(args.lost_target_timeout).total_seconds())
    except ValueError as exc:
        raise UsageError(f"--lost-target-timeout: {exc}") from None
    if args.allowed_failures < 0 or lost < 1:
        raise UsageError("--allowed-failures must be 0 or more, --lost-target-timeout at "
                         "least 1s")
    run_scheduler(args.certs.resolve(), args.host, args.port, ready, args.allowed_failures,
                  lost)
    return 0


def _certs(args, console: Console) -> int:
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

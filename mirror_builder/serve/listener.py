"""What serve listens with: bound sockets, the TLS context, the access log file. Each problem is
a UsageError raised before the banner is printed and before anything is written."""

from __future__ import annotations

import errno
import ipaddress
import socket
import ssl
from pathlib import Path

from mirror_builder.errors import UsageError

_BIND_HINTS = {
    errno.EADDRINUSE: "the port is in use (another program listens there; choose another --port)",
    errno.EACCES: "permission denied (ports below 1024 need root)",
    errno.EADDRNOTAVAIL: "this machine has no such address",
}


def tls_context(certfile: Path | None, keyfile: Path | None) -> ssl.SSLContext | None:
    """A server context (TLS 1.2 or newer) with the certificate chain and its key, or None for
    plain HTTP when neither is given."""
    if certfile is None and keyfile is None:
        return None
    if certfile is None or keyfile is None:
        raise UsageError("--certfile and --keyfile go together: give the certificate (chain) "
                         "and its private key")
    for path in (certfile, keyfile):
        try:
            path.open("rb").close()
        except OSError as exc:
            raise UsageError(f"{path}: cannot read it: {exc.strerror}") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile, keyfile)
    except ssl.SSLError as exc:
        raise UsageError(f"{certfile}, {keyfile}: not a PEM certificate and its matching private "
                         f"key ({exc.reason or exc})") from None
    return context


def check_log_file(path: Path | None) -> None:
    """The access log's folder must exist (the file itself is made when serving starts)."""
    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"--access-log {path}: is a folder; name a file in it")
    if not path.parent.is_dir():
        raise UsageError(f"--access-log {path}: no such folder {path.parent}")


def bind(host: str, port: int) -> list[socket.socket]:
    """Listening sockets on every address host resolves to, all on one port (port 0: a free
    one, chosen by the first)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"--host {host}: cannot resolve it to an address ({exc.strerror})") \
            from None
    sockets: list[socket.socket] = []
    try:
        unique = dict.fromkeys((family, kind, proto, address)
                               for family, kind, proto, _, address in infos)
        for family, kind, proto, address in unique:
            if sockets:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            # A restart must not wait out TIME_WAIT; this never lets two servers share a port.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                hint = _BIND_HINTS.get(exc.errno, exc.strerror)
                raise UsageError(f"cannot listen on {address[0]} port {address[1]}: {hint}") \
                    from None
            sock.listen(128)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def only_loopback(sockets: list[socket.socket]) -> bool:
    return all(ipaddress.ip_address(s.getsockname()[0]).is_loopback for s in sockets)


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host

"""A listening TCP socket for the HTTP servers (ingest's API and the console)."""

from __future__ import annotations

import socket

from devices._errors import SettingsError


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; :class:`SettingsError` (one readable line) when that
    fails. The servers bind before anything else, so that a port in use stops the start-up at
    once, like every other configuration error."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise SettingsError(f"cannot serve HTTP on {host}:{port}: {exc.strerror or exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise SettingsError(f"cannot serve HTTP on {host}:{port}: {exc.strerror or exc}") from exc
    return sock

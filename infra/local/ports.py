"""Loopback ports for the servers: chosen free by the kernel, never a server's default port."""

from __future__ import annotations

import socket
from collections.abc import Iterable


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports; every socket is held until all ports are chosen."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def ports_free(ports: Iterable[int]) -> bool:
    """Whether every port can be bound on loopback now (as a server with SO_REUSEADDR would)."""
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def accepts_connections(port: int) -> bool:
    """Whether some process accepts TCP connections on loopback ``port`` now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False

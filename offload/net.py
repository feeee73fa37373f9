"""Addresses and ports: what the services check before they listen, and what `host:port` means."""

from __future__ import annotations

import socket


class PortInUseError(RuntimeError):
    """A service cannot start because its port is taken."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a TCP server could listen on `host:port` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As servers do: connections of a stopped server in TIME_WAIT don't make a port busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def require_free_port(port: int, service: str, variable: str, host: str = "127.0.0.1") -> None:
    """Raise `PortInUseError` naming the port and the service when `port` is taken."""
    if not port_is_free(port, host):
        raise PortInUseError(
            f"port {port} is already in use, so the {service} cannot start there. "
            f"Stop whatever listens on {port}, or set {variable} to use another service."
        )


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free now (for tests and side-by-side stacks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def split_address(address: str) -> tuple[str, int]:
    """`host:port` as its two parts (`localhost` when the host is left out)."""
    host, _, port = address.rpartition(":")
    return host or "localhost", int(port)

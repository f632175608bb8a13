"""Server addresses as people write them: the one reader and writer of ``host:port`` text.

Every part of the package that takes an address from a user (the pool, the
command lines, ``top``, the exporter, the web console) reads it here, so one
spelling means the same server everywhere, and a Unix socket is recognised in
one place.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Optional

#: beanstalkd's port, used when an address names a host only.
DEFAULT_PORT = 11300

#: How a Unix domain socket is written (beanstalkd's own ``-l unix:/path``).
UNIX_PREFIX = "unix:"


def unix_socket_path(host: str) -> Optional[str]:
    """The socket path of a ``unix:/path`` host, or ``None`` for a network host."""
    return host[len(UNIX_PREFIX) :] if host.startswith(UNIX_PREFIX) else None


def parse_address(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """Split a server address into what :class:`~beanstalkt.Client` takes: ``(host, port)``.

    ``"host:port"``, ``"host"`` (``default_port``), ``"[::1]:11300"`` or a
    bare ``"::1"`` for IPv6, or ``"unix:/path"`` (returned as the host, port
    0). Raises ``ValueError`` with the reason for anything else, e.g.
    ``"::1:11300"``, which could be meant either way.
    """
    if not isinstance(text, str):
        raise TypeError(f"a server address is a string, not {type(text).__name__}")
    if text.startswith(UNIX_PREFIX):
        if len(text) == len(UNIX_PREFIX):
            raise ValueError(f"{text!r}: a Unix socket address is 'unix:/path'")
        return text, 0
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not host or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r}: an IPv6 address is '[address]:port'")
        port_text = rest[1:] if rest else ""
    elif text.count(":") > 1:
        if not _is_ipv6(text):
            raise ValueError(f"{text!r}: write an IPv6 address as '[address]:port'")
        return text, default_port
    else:
        host, _, port_text = text.partition(":")
        if ":" in text and not port_text:
            raise ValueError(f"{text!r}: the port is missing after ':'")
    if not host or host.strip() != host:
        raise ValueError(f"{text!r}: a server address is 'host:port' or 'unix:/path'")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


def format_address(host: str, port: int) -> str:
    """The canonical spelling of an address: ``host:port``, ``[v6]:port`` or ``unix:/path``."""
    if host.startswith(UNIX_PREFIX):
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


#: The environment variable naming several servers: ``host:port,host:port``.
SERVERS_VARIABLE = "BEANSTALKD_SERVERS"
#: The environment variable naming the server's host (one server).
HOST_VARIABLE = "BEANSTALKD_HOST"
#: The environment variable naming the server's port (one server).
PORT_VARIABLE = "BEANSTALKD_PORT"
#: Where a command line looks when nothing names a server.
DEFAULT_HOST = "localhost"


def command_line_servers(
    servers: Optional[Sequence[str]],
    host: Optional[str],
    port: Optional[int],
    environ: Optional[Mapping[str, str]] = None,
) -> list[tuple[str, int]]:
    """Moved to :func:`beanstalkt.cli.common.command_line_servers`: the servers a command names.

    This name keeps working. The rule belongs to the command lines (an edge),
    so it is imported only when called: the core imports nothing from the edges.
    """
    from .cli.common import command_line_servers as rule

    return rule(servers, host, port, environ)


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "HOST_VARIABLE",
    "PORT_VARIABLE",
    "SERVERS_VARIABLE",
    "UNIX_PREFIX",
    "command_line_servers",
    "format_address",
    "parse_address",
    "unix_socket_path",
]

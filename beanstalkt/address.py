"""Server addresses as people write them: the one reader and writer of ``host:port`` text.

Every part of the package that takes an address from a user (the pool, the
command lines, ``top``, the exporter, the web console) reads it here, so one
spelling means the same server everywhere, and a Unix socket is recognised in
one place.
"""

from __future__ import annotations

import ipaddress
import os
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
    """The servers a command line names, as ``(host, port)`` pairs (at least one).

    The one rule of ``beanstalkt`` and ``python -m beanstalkt.worker``:
    ``--server`` options (``servers``, repeatable), else ``--host``/``--port``,
    else ``$BEANSTALKD_SERVERS`` (comma-separated addresses), else
    ``$BEANSTALKD_HOST``/``$BEANSTALKD_PORT`` (each filling in what the
    options left out), else ``localhost:11300``. ``--server`` with
    ``--host``/``--port`` is refused rather than one of them ignored. Raises
    ``ValueError`` naming the option or variable at fault.
    """
    environ = os.environ if environ is None else environ
    if servers and (host or port is not None):
        raise ValueError("give either --server, or --host/--port, not both")
    source = "--server"
    addresses = list(servers or [])
    if not addresses and not host and port is None:
        text = environ.get(SERVERS_VARIABLE, "")
        addresses = [part.strip() for part in text.split(",") if part.strip()]
        source = SERVERS_VARIABLE
    if addresses:
        try:
            return [parse_address(address) for address in addresses]
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None
    host = host or environ.get(HOST_VARIABLE) or DEFAULT_HOST
    if port is None:
        text = environ.get(PORT_VARIABLE) or str(DEFAULT_PORT)
        if not text.isdigit():
            raise ValueError(f"{PORT_VARIABLE}={text!r}: port must be an integer, not {text!r}")
        port = int(text)
        if not 1 <= port <= 65535:
            raise ValueError(
                f"{PORT_VARIABLE}={text!r}: port must be between 1 and 65535, not {port}"
            )
    return [(host, port)]


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

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


#: The environment variable naming several servers for the command lines
#: (``beanstalkt``, ``python -m beanstalkt.worker``): ``host:port,host:port``.
SERVERS_VARIABLE = "BEANSTALKD_SERVERS"


def addresses_from_command_line(
    servers: Optional[Sequence[str]],
    host_or_port_given: bool,
    environ: Optional[Mapping[str, str]] = None,
) -> list[tuple[str, int]]:
    """The servers a command line names with ``--server``, parsed (empty: use host/port).

    The one rule of both command lines: repeated ``--server`` flags, else
    (when neither ``--host`` nor ``--port`` is given) the comma-separated
    ``$BEANSTALKD_SERVERS``; an empty list means "one server, from
    ``--host``/``--port`` or ``$BEANSTALKD_HOST``/``$BEANSTALKD_PORT``".
    Raises ``ValueError`` (with a message for a usage line) for ``--server``
    together with ``--host``/``--port``, and for a bad address.
    """
    addresses = list(servers or [])
    if addresses and host_or_port_given:
        raise ValueError("give either --server, or --host/--port, not both")
    source = "--server"
    if not addresses and not host_or_port_given:
        text = (os.environ if environ is None else environ).get(SERVERS_VARIABLE, "")
        addresses = [part.strip() for part in text.split(",") if part.strip()]
        source = SERVERS_VARIABLE
    try:
        return [parse_address(address) for address in addresses]
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


__all__ = [
    "DEFAULT_PORT",
    "SERVERS_VARIABLE",
    "UNIX_PREFIX",
    "addresses_from_command_line",
    "format_address",
    "parse_address",
    "unix_socket_path",
]

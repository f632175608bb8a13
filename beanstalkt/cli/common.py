"""What every beanstalkt command line shares: one family of options and answers.

``beanstalkt`` and its commands, ``top``, ``exporter``, ``web`` and ``worker``
all take their pieces from here, so that they agree:

* **the servers** -- :func:`add_server_arguments` adds ``--server`` (repeat it
  for several), ``--host`` and ``--port``; :func:`servers_or_usage_error` applies
  the one rule (:func:`find_servers`: ``--server``, else ``--host``/``--port``,
  else ``$BEANSTALKD_SERVERS``, else ``$BEANSTALKD_HOST``/``$BEANSTALKD_PORT``,
  else ``localhost:11300``), and every ``-h`` says where the servers of that
  run come from (:func:`servers_note`);
* **TLS** -- the ``--tls`` flags of :mod:`beanstalkt.cli.tls`, added with the
  servers by :func:`add_connection_arguments`;
* **the exit codes** -- :data:`EXIT_CODES`, one table, printed by ``-h``;
* **the argument converters** -- :func:`argument` turns a parser's
  ``ValueError`` into argparse's usage error; :func:`server_text` and
  :func:`port` check addresses and ports by the core's rules;
* :func:`silence_library_loggers` for tools that report failures themselves;
* :data:`GLOBAL_OPTIONS` and :func:`split_global_options`, with which
  ``beanstalkt --host H top`` means ``beanstalkt top --host H``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import ssl
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional, TypeVar

from ..address import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    HOST_VARIABLE,
    PORT_VARIABLE,
    SERVERS_VARIABLE,
    format_address,
    parse_address,
    unix_socket_path,
)
from ..protocol import check_integer, check_interval, check_tube_name
from .tls import add_tls_arguments, context_or_usage_error

# --------------------------------------------------------------------------
# Exit codes.

#: Success.
EXIT_OK = 0
#: The command failed: the server refused it, or nothing was found.
EXIT_FAILED = 1
#: A usage error, found before any byte was sent.
EXIT_USAGE = 2
#: No connection to beanstalkd, or it was lost.
EXIT_CANNOT_CONNECT = 3
#: Interrupted (Ctrl-C).
EXIT_INTERRUPTED = 130

#: Exit status and meaning, the same for every tool, as ``-h`` prints them.
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_FAILED: "the command failed: job or tube not found, reserve timed out, or another "
    "refusal by the server",
    EXIT_USAGE: "usage error: unknown command or option, bad tube name, number out of range",
    EXIT_CANNOT_CONNECT: "cannot connect to beanstalkd, or the connection was lost",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}


def exit_codes_text() -> str:
    """The ``exit status:`` section of an epilog, from :data:`EXIT_CODES`."""
    codes = "\n".join(
        textwrap.fill(meaning, 79, initial_indent=f"  {status:<5}", subsequent_indent=" " * 7)
        for status, meaning in EXIT_CODES.items()
    )
    return f"exit status:\n{codes}"


def exit_status(code: object) -> int:
    """The exit status a ``SystemExit`` from argparse stands for (``-h``: 0, errors: 2)."""
    if code is None:
        return EXIT_OK
    return code if isinstance(code, int) else EXIT_USAGE


# --------------------------------------------------------------------------
# Argument converters.

T = TypeVar("T")


def argument(parse: Callable[[str], T]) -> Callable[[str], T]:
    """``parse`` as an argparse ``type=``: its ``ValueError`` becomes a usage error.

    The message of the ``ValueError`` is what the user reads, after the
    option's name.
    """

    def checked(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    # argparse names the type in some messages.
    checked.__name__ = getattr(parse, "__name__", "value")
    return checked


def _checked_tube_name(text: str) -> str:
    check_tube_name(text)
    return text


_checked_tube_name.__name__ = "tube"
#: A tube name by the protocol's rules, as an argparse ``type=``.
tube_name = argument(_checked_tube_name)


def _server_text(text: str) -> str:
    parse_address(text)
    return text


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"port must be an integer, not {text!r}") from None
    return check_integer("port", value, 1, 65535)


def _seconds(text: str, positive: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number of seconds, not {text!r}") from None
    wanted = "a positive number of seconds" if positive else "a number of seconds >= 0"
    try:
        # The core's rule for a time the client keeps: finite ("inf" and "nan"
        # read as floats) and not negative.
        check_interval("seconds", value)
    except ValueError:
        raise ValueError(f"expected {wanted}, not {text!r}") from None
    if positive and value == 0:
        raise ValueError(f"expected {wanted}, not {text!r}")
    return value


def _seconds_or_zero(text: str) -> float:
    return _seconds(text, positive=False)


def _positive_seconds(text: str) -> float:
    return _seconds(text, positive=True)


#: A server address as written (``host:port``, ``[v6]:port``, ``unix:/path``), checked.
server_text = argument(_server_text)
#: A TCP port, 1 to 65535.
port = argument(_port)
#: A finite number of seconds, 0 included.
seconds = argument(_seconds_or_zero)
#: A finite number of seconds above 0.
positive_seconds = argument(_positive_seconds)


def listen_address(text: str, default_port: Optional[int] = None) -> tuple[str, int]:
    """Where a tool serves (``--listen``): ``HOST:PORT``, ``[IPv6]:PORT`` or ``:PORT``.

    ``:PORT`` means every interface (``0.0.0.0``). Without a port,
    ``default_port`` is used, or (``None``) the address is refused. A Unix
    socket is refused: the tools serve HTTP over TCP. Raises ``ValueError``.
    """
    if text.startswith(":"):
        text = "0.0.0.0" + text  # ":PORT": every interface
    host, port = parse_address(text, default_port or DEFAULT_PORT)
    if unix_socket_path(host) is not None:
        raise ValueError("--listen takes HOST:PORT, not a Unix socket")
    if default_port is None and ":" not in text.rsplit("]", 1)[-1]:
        raise ValueError(f"--listen {text!r}: give a port, e.g. 127.0.0.1:9127")
    return host, port


# --------------------------------------------------------------------------
# Where the servers are: the one rule.


@dataclass(frozen=True)
class CommandLineServers:
    """The servers a command line names, and where that came from (for messages and ``-h``)."""

    #: ``(host, port)`` pairs, at least one; ``unix:/path`` hosts have port 0.
    addresses: tuple[tuple[str, int], ...]
    #: What named them: ``--server``, ``--host/--port``, ``$BEANSTALKD_SERVERS``,
    #: ``$BEANSTALKD_HOST``... or ``the default``.
    source: str

    @property
    def texts(self) -> list[str]:
        """The addresses spelled canonically (``host:port``, ``[v6]:port``, ``unix:/path``)."""
        return [format_address(host, port) for host, port in self.addresses]

    def describe(self) -> str:
        """``"localhost:11300 (from the default)"``: one line for ``-h`` and logs."""
        return f"{', '.join(self.texts)} (from {self.source})"


def find_servers(
    servers: Optional[Sequence[str]],
    host: Optional[str],
    port: Optional[int],
    environ: Optional[Mapping[str, str]] = None,
) -> CommandLineServers:
    """The servers a command line names, and where they came from.

    The one rule of every beanstalkt command line: ``--server`` options
    (``servers``, repeatable), else ``--host``/``--port``, else
    ``$BEANSTALKD_SERVERS`` (comma-separated addresses), else
    ``$BEANSTALKD_HOST``/``$BEANSTALKD_PORT`` (each filling in what the options
    left out), else ``localhost:11300``. ``--server`` with ``--host``/``--port``
    is refused rather than one of them ignored. Raises ``ValueError`` naming the
    option or variable at fault.
    """
    environ = os.environ if environ is None else environ
    if servers and (host or port is not None):
        raise ValueError("give either --server, or --host/--port, not both")
    source = "--server"
    addresses = list(servers or [])
    if not addresses and not host and port is None:
        text = environ.get(SERVERS_VARIABLE, "")
        addresses = [part.strip() for part in text.split(",") if part.strip()]
        source = f"${SERVERS_VARIABLE}"
    if addresses:
        try:
            return CommandLineServers(tuple(parse_address(each) for each in addresses), source)
        except ValueError as exc:
            raise ValueError(f"{source.lstrip('$')}: {exc}") from None
    sources = []
    if host:
        sources.append("--host")
    elif environ.get(HOST_VARIABLE):
        host = environ[HOST_VARIABLE]
        sources.append(f"${HOST_VARIABLE}")
    else:
        host = DEFAULT_HOST
    if port is not None:
        sources.append("--port")
    elif environ.get(PORT_VARIABLE):
        port = _environment_port(environ[PORT_VARIABLE])
        sources.append(f"${PORT_VARIABLE}")
    else:
        port = DEFAULT_PORT
    return CommandLineServers(((host, port),), " and ".join(sources) or "the default")


def _environment_port(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"{PORT_VARIABLE}={text!r}: port must be an integer, not {text!r}")
    value = int(text)
    if not 1 <= value <= 65535:
        raise ValueError(f"{PORT_VARIABLE}={text!r}: port must be between 1 and 65535, not {value}")
    return value


def command_line_servers(
    servers: Optional[Sequence[str]],
    host: Optional[str],
    port: Optional[int],
    environ: Optional[Mapping[str, str]] = None,
) -> list[tuple[str, int]]:
    """The addresses of :func:`find_servers`, as a list of ``(host, port)`` pairs."""
    return list(find_servers(servers, host, port, environ).addresses)


# --------------------------------------------------------------------------
# The options themselves.

#: The options every tool takes, before or after its name: those with a value...
GLOBAL_VALUE_OPTIONS = ("--server", "--host", "--port", "--tls-ca", "--tls-cert", "--tls-key")
#: ...and the flags.
GLOBAL_FLAGS = ("--tls",)
#: Both.
GLOBAL_OPTIONS = GLOBAL_VALUE_OPTIONS + GLOBAL_FLAGS


def add_server_arguments(
    parser: argparse.ArgumentParser,
    *,
    several: str = "",
    argv: Optional[Sequence[str]] = None,
    environ: Optional[Mapping[str, str]] = None,
    suppress_defaults: bool = False,
) -> argparse._ArgumentGroup:
    """Add ``--server`` (repeatable), ``--host`` and ``--port`` to ``parser``.

    ``several`` says what the tool does with several servers (``""``: it takes
    one). The values land in ``args.server`` (a list or ``None``),
    ``args.host`` and ``args.port``; :func:`servers_or_usage_error` turns them
    into servers. ``-h`` explains the rule in the group's heading and, given
    the run's ``argv``, adds :func:`servers_note` for it and ``environ``
    (default: ``os.environ``): where the servers of that very run come from.
    Without ``argv`` (a parser built for the docs), it does not.
    ``suppress_defaults``: an option not given sets nothing (for a
    sub-command's parser repeating its program's options, so that a value
    given before the sub-command's name stays).
    """
    unset: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress_defaults else {}
    rule = (
        "from --server, else --host/--port, else $BEANSTALKD_SERVERS, else "
        "$BEANSTALKD_HOST/$BEANSTALKD_PORT, else localhost:11300."
    )
    if argv is not None:
        rule += f" {servers_note(argv, environ)}"
    # Filled here: some tools print their help texts as written (RawDescriptionHelpFormatter).
    group = parser.add_argument_group("servers", textwrap.fill(rule, 78))
    repeat = f"; repeat it for several: {several}" if several else " (this tool shows one)"
    group.add_argument(
        "--server",
        action="append",
        type=server_text,
        metavar="HOST:PORT",
        **unset,
        help=f"a beanstalkd server, or unix:/path{repeat} (default: ${SERVERS_VARIABLE}, "
        "a comma-separated list; not with --host/--port)",
    )
    group.add_argument(
        "--host",
        **unset,
        help="beanstalkd host name or address, or unix:/path/to/socket "
        f"(default: ${HOST_VARIABLE}, else {DEFAULT_HOST})",
    )
    group.add_argument(
        "--port",
        type=port,
        **unset,
        help=f"beanstalkd TCP port (default: ${PORT_VARIABLE}, else {DEFAULT_PORT})",
    )
    return group


def add_connection_arguments(
    parser: argparse.ArgumentParser,
    *,
    several: str = "",
    argv: Optional[Sequence[str]] = None,
    environ: Optional[Mapping[str, str]] = None,
    suppress_defaults: bool = False,
) -> None:
    """:func:`add_server_arguments`, then the TLS flags (:func:`.tls.add_tls_arguments`)."""
    add_server_arguments(
        parser, several=several, argv=argv, environ=environ, suppress_defaults=suppress_defaults
    )
    add_tls_arguments(parser, suppress_defaults=suppress_defaults)


def servers_or_usage_error(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    *,
    one: bool = False,
    environ: Optional[Mapping[str, str]] = None,
) -> CommandLineServers:
    """The servers ``args`` name (by :func:`find_servers`); a bad one is ``parser.error``.

    ``one``: the tool works with one server, and more is a usage error rather
    than all but the first ignored.
    """
    try:
        found = find_servers(
            getattr(args, "server", None),
            getattr(args, "host", None),
            getattr(args, "port", None),
            environ,
        )
    except ValueError as exc:
        parser.error(str(exc))
    if one and len(found.addresses) > 1:
        parser.error(
            f"{parser.prog} works with one server; {found.source} names "
            f"{len(found.addresses)}: {', '.join(found.texts)}"
        )
    return found


def tls_or_usage_error(
    parser: argparse.ArgumentParser, args: argparse.Namespace, servers: CommandLineServers
) -> Optional[ssl.SSLContext]:
    """The TLS context the flags ask for (``None``: plain TCP), for every server named."""
    return context_or_usage_error(parser, args, [host for host, _ in servers.addresses])


# --------------------------------------------------------------------------
# -h: where the servers come from.


def servers_note(argv: Sequence[str] = (), environ: Optional[Mapping[str, str]] = None) -> str:
    """What ``-h`` says of this run's servers: ``This run: a:1, b:2 (from $BEANSTALKD_SERVERS).``

    ``argv`` is the run's command line (its ``--server``, ``--host`` and
    ``--port`` count), ``environ`` its environment (default ``os.environ``).
    """
    values = _scan_values(argv, ("--server", "--host", "--port"))
    text_port = values.get("--port", [None])[-1]
    try:
        port_value = None if text_port is None else _port(text_port)
        found = find_servers(
            values.get("--server"), values.get("--host", [None])[-1], port_value, environ
        )
    except ValueError as exc:
        return f"This run: no usable server: {exc}."
    return f"This run: {found.describe()}."


def _scan_values(argv: Sequence[str], names: Sequence[str]) -> dict[str, list[str]]:
    """The values of the options ``names`` in ``argv`` (``--name V`` or ``--name=V``)."""
    found: dict[str, list[str]] = {}
    words = list(argv)
    index = 0
    while index < len(words):
        word = words[index]
        if word == "--":
            break
        name, equals, value = word.partition("=")
        if name in names:
            if not equals:
                if index + 1 >= len(words):
                    break
                index += 1
                value = words[index]
            found.setdefault(name, []).append(value)
        index += 1
    return found


def split_global_options(words: Sequence[str]) -> tuple[list[str], list[str]]:
    """``words`` as (the global options that lead them, the rest).

    The leading options are those of :data:`GLOBAL_OPTIONS`, with their values
    (``--host H`` or ``--host=H``); the rest starts at the first other word.
    ``beanstalkt --host H top --once`` thus hands ``top`` the arguments
    ``--host H --once``.
    """
    words = list(words)
    index = 0
    while index < len(words):
        name, equals, _ = words[index].partition("=")
        if name in GLOBAL_VALUE_OPTIONS:
            index += 1 if equals else 2
        elif words[index] in GLOBAL_FLAGS:
            index += 1
        else:
            break
    index = min(index, len(words))
    return words[:index], words[index:]


# --------------------------------------------------------------------------
# Logging.


def silence_library_loggers() -> None:
    """Keep the library's and Tornado's connection logs off a tool that reports failures itself.

    The library logs reconnect attempts and Tornado a failed TLS handshake
    (``tornado.general``); a one-shot command or a full-screen view says what
    went wrong in its own words instead. A logger that already has a handler
    (the application configured it) is left alone.
    """
    for name in ("beanstalkt", "tornado.general"):
        library_logger = logging.getLogger(name)
        if not library_logger.handlers:
            library_logger.addHandler(logging.NullHandler())


def import_object(spec: str, what: str, shape: str) -> Any:
    """Import what ``"package.module:name"`` (or ``module:object.attribute``) names.

    ``what`` and ``shape`` word the error for a malformed ``spec`` ("handler
    must look like module:function"). The module is found from the current
    directory too, as under ``python -m``: the ``beanstalkt`` console script
    has its own directory on ``sys.path`` instead, so ``beanstalkt worker
    myapp.jobs:handle`` would not find ``myapp`` otherwise.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{what} must look like {shape}, not {spec!r}")
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        here = os.getcwd()
        if exc.name != module_name.partition(".")[0] or "" in sys.path or here in sys.path:
            raise
        sys.path.insert(0, here)
        target = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


__all__ = [
    "tube_name",
    "import_object",
    "EXIT_CANNOT_CONNECT",
    "EXIT_CODES",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "GLOBAL_FLAGS",
    "GLOBAL_OPTIONS",
    "GLOBAL_VALUE_OPTIONS",
    "listen_address",
    "CommandLineServers",
    "add_connection_arguments",
    "add_server_arguments",
    "argument",
    "command_line_servers",
    "exit_codes_text",
    "exit_status",
    "find_servers",
    "port",
    "positive_seconds",
    "seconds",
    "server_text",
    "servers_note",
    "servers_or_usage_error",
    "silence_library_loggers",
    "split_global_options",
    "tls_or_usage_error",
]

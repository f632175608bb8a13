"""A web console for beanstalkd: ``python -m beanstalkt.web`` (or ``beanstalkt web``).

A Tornado application on the library's own :class:`beanstalkt.Client`: a live
overview of every server and tube (over a WebSocket), a page per tube with its
next ready, delayed and buried job, and actions to kick, delete, move, pause
and put. Everything it serves ships in this package (no CDN, no build step).

::

    python -m beanstalkt.web --listen 127.0.0.1:8080 --server localhost:11300

It binds to localhost unless told otherwise; ``--read-only`` hides and
refuses every action, and ``--token``/``--basic-auth`` ask for credentials.
It answers only to its own host names (``localhost``, IP literals, the
listen address, ``--allow-host``), which defeats DNS rebinding, and serves
HTTPS itself with ``--https-cert``/``--https-key``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import os
import re
import signal
import sys
from collections.abc import Sequence
from ssl import Purpose, SSLContext, SSLError, create_default_context
from typing import Optional

from ..._compat import ssl_or_old_spelling
from ...address import parse_address
from ...cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    add_connection_arguments,
    exit_status,
    listen_address,
    servers_or_usage_error,
    tls_or_usage_error,
)
from ...connection import SSLOption
from .app import ConsoleOptions, make_app
from .guard import DEFAULT_ALLOWED_HOSTS, MAX_REQUEST_BODY, ConsoleHTTPServer, host_name
from .live import Monitor

DEFAULT_LISTEN = "127.0.0.1:8080"

log = logging.getLogger("beanstalkt.web")


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_parser(
    prog: str = "python -m beanstalkt.web", argv: Optional[Sequence[str]] = None
) -> argparse.ArgumentParser:
    """The command line of the web console (``argv``: the run's, for ``-h``'s servers line)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="A web console for beanstalkd: live overview, tube pages, kick, "
        "delete, move, pause and put.",
    )
    parser.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"where the console listens (default {DEFAULT_LISTEN}: this machine only)",
    )
    parser.add_argument(
        "--read-only", action="store_true", help="hide and refuse every action that changes a queue"
    )
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument(
        "--token",
        metavar="T",
        help="require this access token (the sign-in form or 'Authorization: Bearer T'); "
        "default: $BEANSTALKT_WEB_TOKEN",
    )
    auth.add_argument("--basic-auth", metavar="USER:PASS", help="require HTTP basic authentication")
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="how often each server is polled (default 1)",
    )
    _add_network_arguments(parser)
    add_connection_arguments(parser, several="each is shown", argv=argv)
    return parser


def _add_network_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that keep the console safe on a network (see the operations guide)."""
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name the console answers to besides localhost, IP addresses and the "
        "--listen name (repeat for several); any other Host header is refused (DNS rebinding)",
    )
    parser.add_argument(
        "--https-cert",
        metavar="FILE",
        help="serve HTTPS with this certificate (PEM; may hold the key too); cookies become Secure",
    )
    parser.add_argument("--https-key", metavar="FILE", help="the --https-cert private key (PEM)")
    parser.add_argument(
        "--secure-cookies",
        action="store_true",
        help="mark cookies Secure although the console serves plain HTTP (behind a TLS proxy)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        metavar="N",
        help="most HTTP connections open at once (default: the file-descriptor limit less 128); "
        "at the limit the longest idle one is closed",
    )


def allowed_hosts(listen_host: str, extra: Sequence[str]) -> frozenset[str]:
    """The host names of ``--allow-host``, ``localhost`` and a named ``--listen`` host."""
    names = set(DEFAULT_ALLOWED_HOSTS)
    for text in [listen_host, *extra]:
        name = host_name(text if ":" not in text or text.startswith("[") else f"[{text}]")
        if name is None or not (_HOST_NAME.fullmatch(name) or _is_ip(name)):
            raise ValueError(f"--allow-host takes a host name, not {text!r}")
        names.add(name)
    return frozenset(names)


# A DNS name: dot-separated labels of letters, digits and inner hyphens.
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def https_context(cert: Optional[str], key: Optional[str]) -> Optional[SSLContext]:
    """The server-side TLS context of ``--https-cert``/``--https-key`` (``None``: plain HTTP)."""
    if cert is None:
        if key is not None:
            raise ValueError("--https-key needs --https-cert")
        return None
    context = create_default_context(Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, SSLError) as error:
        raise ValueError(f"cannot load --https-cert {cert}: {error}") from None
    return context


def options_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ConsoleOptions:
    """The console options of parsed arguments (usage errors exit through ``parser``)."""
    token = args.token or (os.environ.get("BEANSTALKT_WEB_TOKEN") if not args.basic_auth else None)
    basic = None
    if args.basic_auth is not None:
        user, colon, password = args.basic_auth.partition(":")
        if not colon or not user or not password:
            parser.error("--basic-auth takes USER:PASS, both non-empty")
        basic = (user, password)
    if token is not None and not token:
        parser.error("--token must not be empty")
    return ConsoleOptions(
        read_only=args.read_only,
        token=token,
        basic_auth=basic,
        secure_cookies=bool(args.secure_cookies or args.https_cert),
    )


async def serve(
    listen: tuple[str, int],
    servers: list[tuple[str, int]],
    options: ConsoleOptions,
    interval: float = 1.0,
    ssl: SSLOption = None,
    *,
    ssl_context: Optional[SSLContext] = None,
    https: Optional[SSLContext] = None,
    max_connections: Optional[int] = None,
) -> None:
    """Run the console until SIGINT or SIGTERM.

    ``ssl``: reach the servers with TLS (``ssl_context=`` is its old spelling,
    still accepted); ``https``: serve HTTPS; ``max_connections``: see
    ``guard.ConsoleHTTPServer``.
    """
    monitor = Monitor(
        servers, interval=interval, ssl=ssl_or_old_spelling(ssl, ssl_context, "serve")
    )
    app = make_app(monitor, options)
    http = ConsoleHTTPServer(
        app,
        max_connections=max_connections,
        max_body_size=MAX_REQUEST_BODY,
        xheaders=False,
        ssl_options=https,
    )
    http.listen(listen[1], listen[0])
    monitor.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Not every platform has signal handlers on the loop (Windows).
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    host = f"[{listen[0]}]" if ":" in listen[0] else listen[0]
    shown = ", ".join(server.address for server in monitor.servers)
    scheme = "https" if https is not None else "http"
    print(f"beanstalkt web console on {scheme}://{host}:{listen[1]}/ for {shown}", flush=True)
    try:
        await stop.wait()
    finally:
        http.stop()
        await monitor.stop()


def _warn_about_exposure(host: str, options: ConsoleOptions, https: Optional[SSLContext]) -> None:
    """Say on stderr what a console reachable from other machines gives away."""
    if is_loopback(host):
        return
    if not options.needs_auth:
        print(
            f"warning: listening on {host} without --token or --basic-auth: anyone who "
            "reaches this port can delete jobs",
            file=sys.stderr,
        )
    elif https is None:
        print(
            f"warning: listening on {host} over plain HTTP: the token or password crosses "
            "the network in clear; use --https-cert/--https-key or a TLS proxy",
            file=sys.stderr,
        )


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """Run the console with the command line ``argv`` (default ``sys.argv[1:]``)."""
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog or "python -m beanstalkt.web", words)
    try:
        args = parser.parse_args(words)
        options = options_from(args, parser)
        listen = listen_address(args.listen, default_port=8080)
        # The same rule as every command line (cli.common): --server, --host/--port,
        # then $BEANSTALKD_SERVERS, $BEANSTALKD_HOST/$BEANSTALKD_PORT, localhost:11300.
        named = servers_or_usage_error(parser, args)
        servers = list(named.addresses)
        if not args.interval > 0:
            raise ValueError("--interval must be more than 0 seconds")
        ssl_context = tls_or_usage_error(parser, args, named)
        options = dataclasses.replace(
            options, allowed_hosts=allowed_hosts(listen[0], args.allow_host)
        )
        https = https_context(args.https_cert, args.https_key)
        if args.max_connections is not None and args.max_connections < 1:
            raise ValueError("--max-connections must be at least 1")
    except ValueError as error:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exit_:
        return exit_status(exit_.code)
    _warn_about_exposure(listen[0], options, https)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # The server layer tells every reconnect attempt (INFO); the console says once per change
    # of state what it shows, so the library's log keeps to warnings.
    logging.getLogger("beanstalkt").setLevel(logging.WARNING)
    logging.getLogger("beanstalkt.web").setLevel(logging.INFO)
    try:
        asyncio.run(
            serve(
                listen,
                servers,
                options,
                args.interval,
                ssl_context,
                https=https,
                max_connections=args.max_connections,
            )
        )
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except OSError as error:
        print(f"{parser.prog}: cannot listen on {args.listen}: {error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


__all__ = [
    "ConsoleOptions",
    "Monitor",
    "build_parser",
    "main",
    "make_app",
    "parse_address",
    "serve",
]

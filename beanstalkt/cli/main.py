"""The command line client: ``python -m beanstalkt.cmd COMMAND ...`` (or ``beanstalkt``).

One command per run, over one connection made with :class:`beanstalkt.Client`
(with several servers, a :class:`beanstalkt.Pool`). Results go to stdout: a job id or a count as
a bare number, everything structured as JSON. Failures print one line on stderr
and exit with a status that tells them apart (see :data:`EXIT_CODES`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib
import json
import logging
import os
import ssl
import sys
import textwrap
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, NamedTuple, Optional

from .. import __version__
from ..address import DEFAULT_HOST, DEFAULT_PORT, command_line_servers, format_address
from ..client import Client
from ..errors import (
    BeanstalkConnectionError,
    BeanstalkException,
    Buried,
    Draining,
    JobTooBig,
    NotFound,
    TimedOut,
)
from ..models import Job
from ..ops.monitor import per_tube
from ..pool import Pool, PoolStats
from ..protocol import (
    DEFAULT_PRIORITY,
    DEFAULT_TTR,
    MAX_UINT32,
    check_integer,
    check_job_id,
    check_tube_name,
)
from .options import Option, add_options, option
from .tls import add_tls_arguments, context_or_usage_error

#: Seconds allowed to reach the server: a CLI must fail, not hang, when nobody answers.
CONNECT_TIMEOUT = 5.0
#: Seconds a server may stay silent while it owes a reply to a non-blocking command.
REPLY_TIMEOUT = 30.0

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANNOT_CONNECT = 3
EXIT_INTERRUPTED = 130

#: Exit status and meaning, as documented in ``-h``.
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_FAILED: "the command failed: job or tube not found, reserve timed out, or another "
    "refusal by the server",
    EXIT_USAGE: "usage error: unknown command or option, bad tube name, number out of range",
    EXIT_CANNOT_CONNECT: "cannot connect to beanstalkd, or the connection was lost",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}

Handler = Callable[[argparse.Namespace, "Server"], Coroutine[Any, Any, None]]


class CommandError(Exception):
    """A failure to report on one line of stderr, with the exit status to use."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------
# Talking to the server.


class Server:
    """Where beanstalkd is (TLS with ``ssl_context``), and the client this tool talks to it with."""

    def __init__(self, host: str, port: int, ssl_context: Optional[ssl.SSLContext] = None) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context

    @property
    def address(self) -> str:
        """``host:port``, or ``unix:/path``, as the library spells it in messages."""
        return format_address(self.host, self.port)

    def client(self, use: Optional[str] = None, watch: Optional[list[str]] = None) -> Client[bytes]:
        """A library client for one command: bounded connect and reply waits."""
        return Client(
            self.host,
            self.port,
            connect_timeout=CONNECT_TIMEOUT,
            use=use,
            watch=watch,
            # Never wait for a reconnect: a one-shot command reports the loss instead.
            disconnected_timeout=0,
            stall_timeout=REPLY_TIMEOUT,
            ssl=self.ssl_context,
        )


# --------------------------------------------------------------------------
# Output.


def _write(text: str) -> None:
    """Write ``text`` and a newline to stdout as UTF-8, whatever the locale says."""
    _write_bytes((text + "\n").encode("utf-8"))


def _write_bytes(data: bytes) -> None:
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # a text-only stand-in for stdout (embedding, some test runners)
        sys.stdout.write(data.decode("utf-8", "replace"))
    else:
        sys.stdout.flush()
        buffer.write(data)
    # Now, not at exit: `reserve` prints the job before it deletes, releases or buries it.
    sys.stdout.flush()


def _write_json(value: object) -> None:
    # indent=2, as the original beanstalkt printed; non-ASCII text stays readable.
    _write(json.dumps(value, indent=2, ensure_ascii=False))


def job_json(job: Job[bytes]) -> dict[str, Any]:
    """A job as JSON-ready data: the body as text when it is UTF-8, else base64.

    Base64 bodies carry ``"body_encoding": "base64"``, so any body, binary ones
    included, survives the round trip.
    """
    body = job.body if isinstance(job.body, bytes) else job.body.encode("utf-8")
    try:
        return {"body": body.decode("utf-8"), "id": job.id}
    except UnicodeDecodeError:
        encoded = base64.b64encode(body).decode("ascii")
        return {"body": encoded, "body_encoding": "base64", "id": job.id}


def _write_job(job: Job[bytes]) -> None:
    _write_json(job_json(job))


# --------------------------------------------------------------------------
# The commands.


async def _not_found(awaitable: Awaitable[Any], message: str) -> Any:
    """Await a reply, turning ``NOT_FOUND`` into a message that names what was missing."""
    try:
        return await awaitable
    except NotFound:
        raise CommandError(message) from None


#: The max-job-size assumed when a server does not say (beanstalkd's default).
DEFAULT_MAX_JOB_SIZE = 65_535


def _stdin_body(limit: int) -> bytes:
    """``put -``'s body: at most ``limit + 1`` bytes of stdin, so a huge input is never read."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise CommandError("put -: stdin is closed; pipe the body in or give it as an argument")
    try:
        body: bytes = stream.read(limit + 1)
    except OSError as exc:
        raise CommandError(f"put -: cannot read stdin: {exc.strerror or exc}") from None
    if len(body) > limit:
        raise CommandError(
            f"job too big: stdin holds more than the server's max-job-size of {limit:,} bytes "
            f"(put - reads at most {limit + 1:,})"
        )
    return body


async def cmd_put(args: argparse.Namespace, server: Server) -> None:
    """``put BODY``: print the new job's id."""
    async with server.client(use=args.use) as client:
        body: bytes = args.body_bytes
        if body is None:  # put -: as much of stdin as this server takes, and a byte more
            max_job_size = (await client.stats()).get("max-job-size", DEFAULT_MAX_JOB_SIZE)
            body = _stdin_body(max_job_size)
        try:
            job_id = await client.put(body, args.priority, args.delay, args.ttr)
        except JobTooBig:
            raise CommandError(
                f"job too big: the body is {len(body)} bytes, more than the server's max-job-size"
            ) from None
        except Draining:
            raise CommandError("the server is draining: it accepts no new jobs") from None
        except Buried as exc:
            raise CommandError(
                f"the server is out of memory: job {exc.job_id} was buried"
            ) from None
    _write(str(job_id))


async def cmd_reserve(args: argparse.Namespace, server: Server) -> None:
    """``reserve ACTION``: reserve from the watched tubes, print the job, then act on it."""
    async with server.client(watch=args.watch_list) as client:
        try:
            job = await client.reserve(args.timeout)
        except TimedOut:
            raise CommandError(
                f"no job reserved within {args.timeout} s in tube(s) "
                f"{', '.join(args.watch_list)} (timed out)"
            ) from None
        _write_job(job)
        await _finish(client, job, args)


async def cmd_reserve_job(args: argparse.Namespace, server: Server) -> None:
    """``reserve-job ID ACTION``: reserve one job by id, print it, then act on it."""
    async with server.client() as client:
        job = await _not_found(
            client.reserve_job(args.id),
            f"job {args.id} not found, or it is reserved already",
        )
        _write_job(job)
        await _finish(client, job, args)


async def _finish(client: Client[bytes], job: Job[bytes], args: argparse.Namespace) -> None:
    """Delete, release or bury a job this connection has reserved."""
    if args.action == "delete":
        await client.delete(job.id)
        return
    priority = args.priority
    if priority is None:
        # Keep the job's own priority rather than imposing a default one.
        priority = (await client.stats_job(job.id))["pri"]
    if args.action == "release":
        await client.release(job.id, priority, args.delay or 0)
    else:
        await client.bury(job.id, priority)


async def cmd_delete(args: argparse.Namespace, server: Server) -> None:
    """``delete ID``: delete a ready, delayed or buried job."""
    async with server.client() as client:
        await _not_found(
            client.delete(args.id),
            f"job {args.id} not found, or it is reserved by another client",
        )


async def cmd_peek(args: argparse.Namespace, server: Server) -> None:
    """``peek ID``: print a job without reserving it."""
    async with server.client() as client:
        job = await _not_found(client.peek(args.id), f"job {args.id} not found")
    _write_job(job)


def _peek_state(state: str) -> Handler:
    async def peek(args: argparse.Namespace, server: Server) -> None:
        async with server.client(use=args.use) as client:
            method = getattr(client, f"peek_{state}")
            job = await _not_found(method(), f"no {state} job in tube {args.use!r}")
        _write_job(job)

    peek.__doc__ = f"``peek-{state}``: print the next {state} job of a tube."
    return peek


async def cmd_kick(args: argparse.Namespace, server: Server) -> None:
    """``kick``: kick buried (else delayed) jobs of a tube; print how many."""
    async with server.client(use=args.use) as client:
        kicked = await client.kick(args.bound)
    _write(str(kicked))


async def cmd_kick_job(args: argparse.Namespace, server: Server) -> None:
    """``kick-job ID``: move one buried or delayed job to ready."""
    async with server.client() as client:
        await _not_found(
            client.kick_job(args.id),
            f"job {args.id} not found, or it is neither buried nor delayed",
        )


async def cmd_stats_job(args: argparse.Namespace, server: Server) -> None:
    """``stats-job ID``: print a job's statistics."""
    missing = f"job {args.id} not found"
    async with server.client() as client:
        if args.raw:
            _write_bytes(await _not_found(client.yaml("stats-job", args.id), missing))
        else:
            _write_json(await _not_found(client.stats_job(args.id), missing))


async def cmd_stats_tube(args: argparse.Namespace, server: Server) -> None:
    """``stats-tube [NAME]``: print one tube's statistics, or every tube's by name."""
    async with server.client() as client:
        if args.name is not None:
            missing = f"tube {args.name!r} not found"
            if args.raw:
                _write_bytes(await _not_found(client.yaml("stats-tube", args.name), missing))
            else:
                _write_json(await _not_found(client.stats_tube(args.name), missing))
            return
        names = await client.list_tubes()
        if args.raw:
            # One YAML document per tube, as the server sent each.
            documents = await per_tube(names, lambda name: client.yaml("stats-tube", name))
            for document in documents.values():
                _write_bytes(document)
            return
        _write_json(await per_tube(names, client.stats_tube))


async def cmd_stats(args: argparse.Namespace, server: Server) -> None:
    """``stats``: print the server's statistics."""
    async with server.client() as client:
        if args.raw:
            _write_bytes(await client.yaml("stats"))
        else:
            _write_json(await client.stats())


async def cmd_list_tubes(args: argparse.Namespace, server: Server) -> None:
    """``list``: print the names of all existing tubes."""
    async with server.client() as client:
        _write_json(await client.list_tubes())


# --------------------------------------------------------------------------
# The commands over several servers (--server given more than once, or
# BEANSTALKD_SERVERS): a beanstalkt.Pool; output documented in the epilog.


def _pool(args: argparse.Namespace, use: Optional[str] = None) -> Pool:
    return Pool(
        args.pool_addresses,
        ssl=args.ssl_context,
        connect_timeout=CONNECT_TIMEOUT,
        use=use,
        # Never wait for a reconnect: a put goes to another server, or fails.
        disconnected_timeout=0,
        stall_timeout=REPLY_TIMEOUT,
    )


def _per_server(values: dict[str, Any]) -> dict[str, Any]:
    return {
        address: {"error": str(value)} if isinstance(value, BaseException) else value
        for address, value in values.items()
    }


def _write_pool_stats(stats: PoolStats) -> None:
    _write_json({"total": stats.total, "servers": _per_server(stats.per_server)})


async def pool_put(args: argparse.Namespace, server: Server) -> None:
    """``put BODY`` over several servers: print ``HOST:PORT ID``."""
    # One put per run has no rotation to follow: without --key, a random key
    # spreads successive runs evenly over the live servers.
    key = args.key if args.key is not None else os.urandom(8)
    async with _pool(args, use=args.use) as pool:
        body: bytes = args.body_bytes
        if body is None:  # put -: bounded by the largest max-job-size of the servers
            sizes = [
                stats.get("max-job-size", DEFAULT_MAX_JOB_SIZE)
                for stats in (await pool.stats()).per_server.values()
                if not isinstance(stats, BaseException)
            ]
            body = _stdin_body(max(sizes, default=DEFAULT_MAX_JOB_SIZE))
        try:
            ref = await pool.put(body, args.priority, args.delay, args.ttr, key=key)
        except JobTooBig:
            raise CommandError(
                f"job too big: the body is {len(body)} bytes, more than the server's max-job-size"
            ) from None
    _write(str(ref))


async def pool_stats(args: argparse.Namespace, server: Server) -> None:
    """``stats`` over several servers: ``{"total": ..., "servers": {address: ...}}``."""
    async with _pool(args) as pool:
        _write_pool_stats(await pool.stats())


async def pool_stats_tube(args: argparse.Namespace, server: Server) -> None:
    """``stats-tube [NAME]`` over several servers: totals and each server's, as JSON."""
    async with _pool(args) as pool:
        if args.name is not None:
            stats = await _not_found(pool.stats_tube(args.name), f"tube {args.name!r} not found")
            _write_pool_stats(stats)
            return
        names = (await pool.list_tubes()).tubes
        every_tube = await per_tube(names, pool.stats_tube)
    total: dict[str, Any] = {}
    servers: dict[str, dict[str, Any]] = {}
    for name, reply in every_tube.items():
        total[name] = reply.total
        for address, value in _per_server(reply.per_server).items():
            servers.setdefault(address, {})[name] = value
    _write_json({"total": total, "servers": servers})


async def pool_list_tubes(args: argparse.Namespace, server: Server) -> None:
    """``list`` over several servers: every tube name, and each server's list."""
    async with _pool(args) as pool:
        tubes = await pool.list_tubes()
    _write_json({"total": tubes.tubes, "servers": _per_server(tubes.per_server)})


async def pool_kick(args: argparse.Namespace, server: Server) -> None:
    """``kick`` on every server: ``{"total": N, "servers": {address: n}}``."""
    async with _pool(args) as pool:
        kicked = await pool.kick(args.bound, tube=args.use)
    _write_json({"total": kicked.total, "servers": _per_server(kicked.per_server)})


_POOL_HANDLERS: dict[str, Handler] = {
    "put": pool_put,
    "stats": pool_stats,
    "stats-tube": pool_stats_tube,
    "list": pool_list_tubes,
    "list-tubes": pool_list_tubes,
    "kick": pool_kick,
}


async def cmd_pause_tube(args: argparse.Namespace, server: Server) -> None:
    """``pause NAME``: hold back reservations from a tube for a while."""
    async with server.client() as client:
        await _not_found(client.pause_tube(args.name, args.delay), f"tube {args.name!r} not found")


# --------------------------------------------------------------------------
# Arguments.


def _tube(text: str) -> str:
    try:
        check_tube_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _integer(what: str, low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be an integer, not {text!r}") from None
        try:
            return check_integer(what, value, low, high)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = what  # argparse names the type in some messages
    return parse


def _job_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"job id must be an integer, not {text!r}") from None
    try:
        return check_job_id(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_PRIORITY = _integer("priority", 0, MAX_UINT32)
_DELAY = _integer("delay", 0, MAX_UINT32)
_TTR = _integer("ttr", 0, MAX_UINT32)
_TIMEOUT = _integer("timeout", 0, MAX_UINT32)
_BOUND = _integer("bound", 0, MAX_UINT32)
_PORT = _integer("port", 1, 65535)


def _epilog() -> str:
    codes = "\n".join(
        textwrap.fill(meaning, 79, initial_indent=f"  {status:<5}", subsequent_indent=" " * 7)
        for status, meaning in EXIT_CODES.items()
    )
    return (
        "environment:\n"
        f"  BEANSTALKD_HOST  server host when --host is not given (default {DEFAULT_HOST})\n"
        f"  BEANSTALKD_PORT  server port when --port is not given (default {DEFAULT_PORT})\n"
        "  BEANSTALKD_SERVERS  several servers, HOST:PORT,HOST:PORT (when no --server,\n"
        "                   --host or --port is given)\n"
        "\n"
        "output: job ids and counts as bare numbers; jobs, stats and lists as JSON.\n"
        "With several servers, put prints HOST:PORT ID (the server holding the job and\n"
        "its id there; a random live server unless --key is given, which picks one\n"
        "server per key). "
        'Stats, stats-tube, list and kick print {"total": ..., "servers":\n'
        '{"HOST:PORT": ...}}, a server that did not answer as {"error": "..."}.\n'
        'A job body that is not UTF-8 is printed in base64, with "body_encoding": "base64".\n'
        "\n"
        f"exit status:\n{codes}"
        "\n\noperations: beanstalkt top [-h] ... (live view of the tubes),\n"
        "            beanstalkt exporter [-h] ... (Prometheus metrics; beanstalkt[metrics]),\n"
        "            beanstalkt web [-h] ... (the web console)"
    )


def _useoption(doing: str) -> Option:
    return option(
        "-u",
        "--use",
        type=_tube,
        default="default",
        metavar="TUBE",
        help=f"tube to {doing} (default: default)",
    )


class Command(NamedTuple):
    """One sub-command: its name, what runs it, its one-line summary and its arguments."""

    name: str
    handler: Handler
    summary: str
    options: tuple[Option, ...] = ()
    #: The text of ``COMMAND -h`` (default: the summary as a sentence).
    description: Optional[str] = None


_JOB_ID = option("id", type=_job_id, metavar="ID", help="the job id")
_RAW = option(
    "--raw",
    action="store_true",
    help="print the YAML exactly as the server sent it instead of JSON",
)
# What reserve and reserve-job do with the job once printed.
_ACTION_OPTIONS = (
    option(
        "action",
        choices=["delete", "release", "bury"],
        help="what to do with the job once printed: delete it, release it back to "
        "ready (or delayed, with -d), or bury it",
    ),
    option(
        "-p",
        "--priority",
        type=_PRIORITY,
        help="new priority when releasing or burying (default: the job's own)",
    ),
    option(
        "-d",
        "--delay",
        type=_DELAY,
        help="when releasing: seconds the job stays delayed before it is ready again (default: 0)",
    ),
)

#: Every sub-command, in the order ``-h`` lists them.
COMMANDS: tuple[Command, ...] = (
    Command(
        "put",
        cmd_put,
        "put a job into a tube and print its id",
        (
            option("body", metavar="BODY", help="the job body, or - to read it from stdin"),
            option(
                "-k",
                "--key",
                help="with several servers: put every job with this key on the same server",
            ),
            option(
                "-p",
                "--priority",
                type=_PRIORITY,
                default=DEFAULT_PRIORITY,
                help=f"0 (most urgent) to {MAX_UINT32} (default: {DEFAULT_PRIORITY})",
            ),
            _useoption("put the job into"),
            option(
                "-d",
                "--delay",
                type=_DELAY,
                default=0,
                help="seconds the job waits, delayed, before it becomes ready (default: 0)",
            ),
            option(
                "-t",
                "--ttr",
                type=_TTR,
                default=DEFAULT_TTR,
                help="time to run: seconds a worker may hold the job before the server takes "
                f"it back (default: {DEFAULT_TTR})",
            ),
        ),
        "Put a job into a tube and print the new job's id. "
        "Give the body as an argument, or - to read it from stdin as raw bytes "
        "(binary and multi-line bodies work). A body starting with '-' goes after --.",
    ),
    Command(
        "reserve",
        cmd_reserve,
        "reserve a job, print it, then delete, release or bury it",
        (
            *_ACTION_OPTIONS,
            option(
                "-t",
                "--timeout",
                type=_TIMEOUT,
                help="give up (exit status 1) when no job comes within this many seconds; "
                "0 only takes a job that is ready now (default: wait forever)",
            ),
            option(
                "-w",
                "--watch",
                type=_tube,
                action="append",
                default=[],
                metavar="TUBE",
                help="also watch this tube; repeat to watch several",
            ),
            option(
                "-i",
                "--ignore-default",
                action="store_true",
                help="do not watch the tube 'default' (needs at least one -w)",
            ),
        ),
        "Reserve a job from the watched tubes (default: the tube 'default'), "
        "print it as JSON, then delete, release or bury it. Without -t, waits until a job "
        "is ready.",
    ),
    Command(
        "reserve-job",
        cmd_reserve_job,
        "reserve a job by id, print it, then delete, release or bury it",
        (_JOB_ID, *_ACTION_OPTIONS),
        "Reserve the job with this id (ready, delayed or buried, in any tube), "
        "print it as JSON, then delete, release or bury it.",
    ),
    Command("delete", cmd_delete, "delete a job (ready, delayed or buried)", (_JOB_ID,)),
    Command("peek", cmd_peek, "print a job without reserving it", (_JOB_ID,)),
    *(
        Command(
            f"peek-{state}",
            _peek_state(state),
            f"print the next {state} job of a tube without reserving it",
            (_useoption("look into"),),
        )
        for state in ("ready", "delayed", "buried")
    ),
    Command(
        "kick",
        cmd_kick,
        "move buried jobs (or, if none, delayed jobs) of a tube to ready; print how many",
        (
            option(
                "-b",
                "--bound",
                type=_BOUND,
                default=1,
                help="kick at most this many jobs (default: 1)",
            ),
            _useoption("kick jobs in"),
        ),
    ),
    Command("kick-job", cmd_kick_job, "move one buried or delayed job to ready", (_JOB_ID,)),
    Command("stats-job", cmd_stats_job, "print a job's statistics as JSON", (_JOB_ID, _RAW)),
    Command(
        "stats-tube",
        cmd_stats_tube,
        "print a tube's statistics, or every tube's, as JSON",
        (
            option(
                "name",
                nargs="?",
                type=_tube,
                metavar="NAME",
                help="the tube (default: every tube)",
            ),
            _RAW,
        ),
        "Print a tube's statistics as JSON; without NAME, those of every tube, "
        "as a JSON object keyed by tube name (with --raw: one YAML document per tube).",
    ),
    Command("stats", cmd_stats, "print the server's statistics as JSON", (_RAW,)),
    *(
        Command(name, cmd_list_tubes, "print the names of all existing tubes as a JSON list")
        for name in ("list", "list-tubes")
    ),
    *(
        Command(
            name,
            cmd_pause_tube,
            "stop jobs of a tube from being reserved for a while",
            (
                option("name", type=_tube, metavar="NAME", help="the tube to pause"),
                option(
                    "-d",
                    "--delay",
                    type=_DELAY,
                    default=0,
                    help="seconds to hold back reservations from the tube; 0 lifts a pause "
                    "(default: 0)",
                ),
            ),
        )
        for name in ("pause", "pause-tube")
    ),
)


def build_parser(prog: str = "beanstalkt") -> argparse.ArgumentParser:
    """The argument parser of the whole program: the global options, then :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Beanstalkd command line client: one beanstalkd command per run.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host",
        help="beanstalkd host name or address, or unix:/path/to/socket "
        f"(default: $BEANSTALKD_HOST, else {DEFAULT_HOST})",
    )
    parser.add_argument(
        "--port",
        type=_PORT,
        help=f"beanstalkd TCP port (default: $BEANSTALKD_PORT, else {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--server",
        action="append",
        metavar="HOST:PORT",
        help="a beanstalkd server (or unix:/path); repeat it to use several: put spreads jobs "
        "over them, stats, stats-tube, list and kick cover all (default: $BEANSTALKD_SERVERS)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_tls_arguments(parser)
    subparsers = parser.add_subparsers(
        dest="command",
        metavar="COMMAND",
        title="commands",
        help="the beanstalkd command to run; COMMAND -h explains its arguments",
    )
    subparsers.required = True
    for command in COMMANDS:
        summary = command.summary
        sub = subparsers.add_parser(
            command.name,
            help=summary,
            description=textwrap.fill(
                command.description or summary[0].upper() + summary[1:] + ".", 79
            ),
            epilog=_epilog(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_options(sub, command.options)
        sub.set_defaults(handler=command.handler, parser=sub)
    return parser


def _check_combinations(args: argparse.Namespace) -> None:
    """Refuse option combinations that would be silently ignored."""
    sub: argparse.ArgumentParser = args.parser
    if args.command == "reserve":
        if args.ignore_default and not args.watch:
            sub.error("-i/--ignore-default needs at least one -w/--watch TUBE")
        watched = args.watch if args.ignore_default else ["default", *args.watch]
        args.watch_list = list(dict.fromkeys(watched))
    if args.command in ("reserve", "reserve-job"):
        if args.delay is not None and args.action != "release":
            sub.error("-d/--delay applies only to release")
        if args.priority is not None and args.action == "delete":
            sub.error("-p/--priority applies only to release and bury")


def _server(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Server:
    """The server address: flags first, then the environment, then the defaults.

    With several servers (``--server`` repeated, or ``BEANSTALKD_SERVERS``),
    ``args.pool_addresses`` lists them and the first is returned.
    """
    args.pool_addresses = None
    try:
        parsed = command_line_servers(args.server, args.host, args.port)
    except ValueError as exc:
        parser.error(str(exc))
    if len(parsed) > 1:
        if args.command not in _POOL_HANDLERS:
            args.parser.error(
                f"{args.command} acts on one server: give --server once "
                "(put, stats, stats-tube, list and kick take several)"
            )
        if getattr(args, "raw", False):
            args.parser.error("--raw needs one server")
        args.pool_addresses = [format_address(*address) for address in parsed]
    # TLS (--tls...) applies to every server named.
    args.ssl_context = context_or_usage_error(parser, args, [host for host, _ in parsed])
    return Server(*parsed[0], args.ssl_context)


def _program_name() -> str:
    """How the user ran us, for usage lines: ``python -m beanstalkt.cmd`` or the script."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return (
        "python -m beanstalkt.cmd"
        if getattr(spec, "name", None) == "beanstalkt.cmd"
        else "beanstalkt"
    )


_TOOLS = {
    "top": "beanstalkt.ops.top",
    "exporter": "beanstalkt.ops.exporter",
    "web": "beanstalkt.ops.web",
}


def _run_tool(name: str, argv: list[str]) -> int:
    """Hand ``beanstalkt top|exporter|web ARGS`` to that module's ``main``."""
    try:
        module = importlib.import_module(_TOOLS[name])
    except ImportError as exc:  # e.g. the exporter without prometheus_client
        return _fail(str(exc), EXIT_FAILED)
    status: int = module.main(argv, prog=f"{_program_name()} {name}")
    return status


def _fail(message: str, status: int) -> int:
    if sys.stderr is not None:
        sys.stderr.write(f"beanstalkt: {message}\n")
        sys.stderr.flush()
    return status


def _exit_status(code: object) -> int:
    if code is None:
        return EXIT_OK
    return code if isinstance(code, int) else EXIT_FAILED


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one command line (``sys.argv[1:]`` by default); return the exit status."""
    if sys.stdout is None:
        # Started with stdout closed (`>&-`): say so before doing anything,
        # rather than put a job whose id cannot be printed.
        return _fail("standard output is closed; nothing was done", EXIT_FAILED)
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, and keep the
        # interpreter's final flush of stdout from failing a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED


def _main(argv: Optional[Sequence[str]]) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words and words[0] in _TOOLS:  # operations tools with command lines of their own
        return _run_tool(words[0], words[1:])
    parser = build_parser(_program_name())
    try:
        args = parser.parse_args(argv)
        _check_combinations(args)
        server = _server(parser, args)
    except SystemExit as exc:  # argparse: -h, --version and usage errors
        return _exit_status(exc.code)
    handler: Handler = args.handler if args.pool_addresses is None else _POOL_HANDLERS[args.command]
    try:
        if args.command == "put":
            # put - reads stdin once connected: the server's max-job-size bounds the read.
            body: str = args.body
            args.body_bytes = None if body == "-" else os.fsencode(body)
        # The library logs reconnect attempts; a one-shot command reports the loss itself.
        # Tornado logs a failed TLS handshake too (tornado.general): the message is ours.
        for name in ("beanstalkt", "tornado.general"):
            library_logger = logging.getLogger(name)
            if not library_logger.handlers:
                library_logger.addHandler(logging.NullHandler())
        asyncio.run(handler(args, server))
    except CommandError as exc:
        return _fail(str(exc), exc.status)
    except BeanstalkConnectionError as exc:
        return _fail(str(exc), EXIT_CANNOT_CONNECT)
    except BeanstalkException as exc:
        return _fail(str(exc), EXIT_FAILED)
    except BrokenPipeError:
        raise  # handled by main()
    except Exception as exc:  # anything else, e.g. stdin unreadable: one line, no traceback
        return _fail(f"{type(exc).__name__}: {exc}", EXIT_FAILED)
    return EXIT_OK

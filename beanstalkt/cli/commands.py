"""The commands of ``beanstalkt``: what each does once its arguments are parsed.

One handler per command (``cmd_*`` over one server, ``pool_*`` over several,
through a :class:`beanstalkt.Pool`), the :class:`Endpoint` they reach the
server through, and the output: a job id or a count as a bare number,
everything structured as JSON. The table of commands and their options, and
the parser, are in :mod:`beanstalkt.cli.main`.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from ssl import SSLContext
from typing import Any, Optional

from .._compat import ssl_or_old_spelling
from ..address import format_address
from ..client import Client
from ..connection import SSLOption
from ..errors import Buried, Draining, JobTooBig, NotFound, TimedOut
from ..models import Job
from ..ops.monitor import per_tube
from ..pool import Pool, PoolStats
from .common import EXIT_FAILED

CONNECT_TIMEOUT = 5.0
#: Seconds a server may stay silent while it owes a reply to a non-blocking command.
REPLY_TIMEOUT = 30.0


#: What runs a command: its parsed arguments and where the server is, in; output, out.
CommandHandler = Callable[[argparse.Namespace, "Endpoint"], Coroutine[Any, Any, None]]


class CommandError(Exception):
    """A failure to report on one line of stderr, with the exit status to use."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------
# Talking to the server.


class Endpoint:
    """Where beanstalkd is (TLS with ``ssl``), and the client this tool talks to it with.

    ``ssl_context=`` is the old spelling of ``ssl``, still accepted.
    """

    def __init__(
        self,
        host: str,
        port: int,
        ssl: SSLOption = None,
        *,
        ssl_context: Optional[SSLContext] = None,
    ) -> None:
        self.host = host
        self.port = port
        #: TLS, as :class:`beanstalkt.Client`'s ``ssl``.
        self.ssl = ssl_or_old_spelling(ssl, ssl_context, "Endpoint")

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
            ssl=self.ssl,
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


async def cmd_put(args: argparse.Namespace, server: Endpoint) -> None:
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


async def cmd_reserve(args: argparse.Namespace, server: Endpoint) -> None:
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


async def cmd_reserve_job(args: argparse.Namespace, server: Endpoint) -> None:
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


async def cmd_delete(args: argparse.Namespace, server: Endpoint) -> None:
    """``delete ID``: delete a ready, delayed or buried job."""
    async with server.client() as client:
        await _not_found(
            client.delete(args.id),
            f"job {args.id} not found, or it is reserved by another client",
        )


async def cmd_peek(args: argparse.Namespace, server: Endpoint) -> None:
    """``peek ID``: print a job without reserving it."""
    async with server.client() as client:
        job = await _not_found(client.peek(args.id), f"job {args.id} not found")
    _write_job(job)


def peek_state(state: str) -> CommandHandler:
    async def peek(args: argparse.Namespace, server: Endpoint) -> None:
        async with server.client(use=args.use) as client:
            method = getattr(client, f"peek_{state}")
            job = await _not_found(method(), f"no {state} job in tube {args.use!r}")
        _write_job(job)

    peek.__doc__ = f"``peek-{state}``: print the next {state} job of a tube."
    return peek


async def cmd_kick(args: argparse.Namespace, server: Endpoint) -> None:
    """``kick``: kick buried (else delayed) jobs of a tube; print how many."""
    async with server.client(use=args.use) as client:
        kicked = await client.kick(args.bound)
    _write(str(kicked))


async def cmd_kick_job(args: argparse.Namespace, server: Endpoint) -> None:
    """``kick-job ID``: move one buried or delayed job to ready."""
    async with server.client() as client:
        await _not_found(
            client.kick_job(args.id),
            f"job {args.id} not found, or it is neither buried nor delayed",
        )


async def cmd_stats_job(args: argparse.Namespace, server: Endpoint) -> None:
    """``stats-job ID``: print a job's statistics."""
    missing = f"job {args.id} not found"
    async with server.client() as client:
        if args.raw:
            _write_bytes(await _not_found(client.yaml("stats-job", args.id), missing))
        else:
            _write_json(await _not_found(client.stats_job(args.id), missing))


async def cmd_stats_tube(args: argparse.Namespace, server: Endpoint) -> None:
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


async def cmd_stats(args: argparse.Namespace, server: Endpoint) -> None:
    """``stats``: print the server's statistics."""
    async with server.client() as client:
        if args.raw:
            _write_bytes(await client.yaml("stats"))
        else:
            _write_json(await client.stats())


async def cmd_list_tubes(args: argparse.Namespace, server: Endpoint) -> None:
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


async def pool_put(args: argparse.Namespace, server: Endpoint) -> None:
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


async def pool_stats(args: argparse.Namespace, server: Endpoint) -> None:
    """``stats`` over several servers: ``{"total": ..., "servers": {address: ...}}``."""
    async with _pool(args) as pool:
        _write_pool_stats(await pool.stats())


async def pool_stats_tube(args: argparse.Namespace, server: Endpoint) -> None:
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


async def pool_list_tubes(args: argparse.Namespace, server: Endpoint) -> None:
    """``list`` over several servers: every tube name, and each server's list."""
    async with _pool(args) as pool:
        tubes = await pool.list_tubes()
    _write_json({"total": tubes.tubes, "servers": _per_server(tubes.per_server)})


async def pool_kick(args: argparse.Namespace, server: Endpoint) -> None:
    """``kick`` on every server: ``{"total": N, "servers": {address: n}}``."""
    async with _pool(args) as pool:
        kicked = await pool.kick(args.bound, tube=args.use)
    _write_json({"total": kicked.total, "servers": _per_server(kicked.per_server)})


#: The commands that work over several servers, and their handlers there.
POOL_HANDLERS: dict[str, CommandHandler] = {
    "put": pool_put,
    "stats": pool_stats,
    "stats-tube": pool_stats_tube,
    "list": pool_list_tubes,
    "list-tubes": pool_list_tubes,
    "kick": pool_kick,
}


async def cmd_pause_tube(args: argparse.Namespace, server: Endpoint) -> None:
    """``pause NAME``: hold back reservations from a tube for a while."""
    async with server.client() as client:
        await _not_found(client.pause_tube(args.name, args.delay), f"tube {args.name!r} not found")


#: The old name of :class:`Endpoint` (one of too many ``Server*`` types).
Server = Endpoint

__all__ = [
    "CONNECT_TIMEOUT",
    "POOL_HANDLERS",
    "REPLY_TIMEOUT",
    "CommandError",
    "CommandHandler",
    "Endpoint",
    "Server",
    "cmd_delete",
    "cmd_kick",
    "cmd_kick_job",
    "cmd_list_tubes",
    "cmd_pause_tube",
    "cmd_peek",
    "cmd_put",
    "cmd_reserve",
    "cmd_reserve_job",
    "cmd_stats",
    "cmd_stats_job",
    "cmd_stats_tube",
    "job_json",
    "peek_state",
    "pool_kick",
    "pool_list_tubes",
    "pool_put",
    "pool_stats",
    "pool_stats_tube",
]

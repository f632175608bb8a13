"""The client: one thin, typed method per beanstalkd command.

Every command method checks its arguments (raising ``TypeError`` or
``ValueError`` before anything is sent), hands the encoded bytes to the
connection and returns an :class:`asyncio.Future` at once, so the command is
on its way whether or not the caller awaits it. Each method also accepts
``callback=``: it is called with the result, or with the exception instance
on failure, as in the original beanstalkt.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from asyncio.events import _get_running_loop
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Generic, Optional, TypeVar, Union, overload

from ._batch import joined_batches, slice_bounds
from ._io import call_back as _call_back
from ._io import completed as _completed
from .backoff import Backoff
from .connection import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_DISCONNECTED_TIMEOUT,
    DEFAULT_KEEPALIVE,
    DEFAULT_STALL_TIMEOUT,
    RECONNECT_INTERVAL,
    Connection,
    DisconnectCallback,
    Keepalive,
    ReconnectCallback,
    SSLOption,
    State,
)
from .errors import BufferFull
from .models import BodyT, Job, Stats, StatsJob, StatsTube
from .pipeline import DEFAULT_MAX_PENDING_BYTES, BatchResult, Reservation
from .producer import delay_until, encode_json
from .protocol import (
    BURY,
    DEFAULT_PRIORITY,
    DEFAULT_TTR,
    DELETE,
    IGNORE,
    KICK,
    KICK_JOB,
    LIST_TUBE_USED,
    LIST_TUBES,
    LIST_TUBES_WATCHED,
    MAX_RESERVE_TIMEOUT,
    MAX_UINT32,
    PAUSE_TUBE,
    PEEK,
    PEEK_BURIED,
    PEEK_DELAYED,
    PEEK_READY,
    PUT,
    RELEASE,
    RESERVE,
    RESERVE_JOB,
    RESERVE_WITH_TIMEOUT,
    STATS,
    STATS_JOB,
    STATS_TUBE,
    TOUCH,
    USE,
    VERBATIM,
    WATCH,
    CommandSpec,
    Seconds,
    check_body,
    check_integer,
    check_interval,
    check_job_id,
    check_seconds,
    check_tube_name,
    checked_put,
    encode_command,
    encode_put,
)

Future = asyncio.Future
Callback = Callable[[Any], Any]
#: A job to act on: a :class:`Job` (as reserved: its connection is checked)
#: or a bare job id (any job with that id).
JobRef = Union[Job[Any], int]
_ResultT = TypeVar("_ResultT")

_RESERVE_LINE = b"reserve\r\n"


class Client(Generic[BodyT]):
    """An asynchronous, pipelined beanstalkd client over one Tornado IOStream.

    One client is meant to be shared by every coroutine of a process (or of
    one event loop): its commands are pipelined on one connection, and
    ``put(tube=...)`` lets each caller pick its tube without disturbing the
    others. The reliability guide (docs/guides/reliability.rst) says what is safe.

    :param host: host name or address, or ``'unix:/path/to/socket'`` for a Unix
        domain socket (as beanstalkd's ``-l unix:/path``).
    :param port: TCP port (ignored for Unix sockets).
    :param connect_timeout: seconds a connection attempt may take before it
        fails with ``ConnectFailed`` (default 5; ``None``: the operating
        system's limit, minutes for a host that drops packets). This and the
        other times below take an ``int``, a ``float`` or a ``datetime.timedelta``.
    :param io_loop: accepted for compatibility with the original beanstalkt and
        ignored: the client uses the running asyncio loop (which is Tornado's).
    :param use: the client's own tube: where ``put`` (and ``peek_ready``,
        ``kick``...) act unless given ``tube=``.
    :param watch: tube name, or names, to watch instead of ``default``.
    :param encoding: when set (e.g. ``'utf-8'``), ``put`` also accepts ``str``
        bodies and jobs come back with ``str`` bodies. Default: bytes only.
        The client is generic in its body type: ``Client()`` is a
        ``Client[bytes]`` and ``Client(encoding='utf-8')`` a ``Client[str]``,
        so type checkers know what ``job.body`` is without narrowing.
    :param reconnect_interval: seconds between reconnection attempts after the
        connection is lost (:data:`RECONNECT_INTERVAL`, 1 s).
    :param disconnected_timeout: how long a command may wait for the
        connection to come back before it fails with ``NotConnected``, never
        sent (default 5 s, so a web handler can answer 503; ``None``: wait as
        long as it takes).
    :param stall_timeout: if the server sends nothing for this many seconds
        while replies to non-blocking commands are owed, the connection is
        treated as lost and they fail with ``ConnectionLost`` (default 10 s;
        ``None``: no guard). A blocking ``reserve`` is exempt (``keepalive``
        bounds it), and ``reserve(timeout=t)`` is allowed ``t`` seconds more.
    :param max_pending_bytes: bound on the bytes of commands not answered yet
        (in flight, or waiting for a connection); past it a command fails at
        once with :class:`~beanstalkt.errors.BufferFull` (``None``: no bound).
    :param keepalive: TCP keepalive timings (:class:`Keepalive`), so that a
        dead peer that never says so is noticed; ``None`` turns it off.
    :param ssl: ``True`` for TLS with the system's certificate authorities,
        or an :class:`ssl.SSLContext` (own CA, client certificate); for
        beanstalkd behind a TLS terminator such as stunnel or haproxy.
    :param reconnect_backoff: a :class:`~beanstalkt.backoff.Backoff` to pace
        reconnection attempts instead of the fixed ``reconnect_interval``
        (the server layer passes its own).
    """

    # Which body type a client has follows from encoding=: the overloads say so.
    @overload
    def __init__(
        self: Client[bytes],
        host: str = "localhost",
        port: int = 11300,
        connect_timeout: Optional[Seconds] = DEFAULT_CONNECT_TIMEOUT,
        io_loop: Any = None,
        *,
        use: Optional[str] = None,
        watch: Union[str, Iterable[str], None] = None,
        encoding: None = None,
        reconnect_interval: Seconds = RECONNECT_INTERVAL,
        disconnected_timeout: Optional[Seconds] = DEFAULT_DISCONNECTED_TIMEOUT,
        stall_timeout: Optional[Seconds] = DEFAULT_STALL_TIMEOUT,
        max_pending_bytes: Optional[int] = DEFAULT_MAX_PENDING_BYTES,
        keepalive: Optional[Keepalive] = DEFAULT_KEEPALIVE,
        ssl: SSLOption = None,
        reconnect_backoff: Optional[Backoff] = None,
    ) -> None: ...

    @overload
    def __init__(
        self: Client[str],
        host: str = "localhost",
        port: int = 11300,
        connect_timeout: Optional[Seconds] = DEFAULT_CONNECT_TIMEOUT,
        io_loop: Any = None,
        *,
        use: Optional[str] = None,
        watch: Union[str, Iterable[str], None] = None,
        encoding: str,
        reconnect_interval: Seconds = RECONNECT_INTERVAL,
        disconnected_timeout: Optional[Seconds] = DEFAULT_DISCONNECTED_TIMEOUT,
        stall_timeout: Optional[Seconds] = DEFAULT_STALL_TIMEOUT,
        max_pending_bytes: Optional[int] = DEFAULT_MAX_PENDING_BYTES,
        keepalive: Optional[Keepalive] = DEFAULT_KEEPALIVE,
        ssl: SSLOption = None,
        reconnect_backoff: Optional[Backoff] = None,
    ) -> None: ...

    def __init__(
        self,
        host: str = "localhost",
        port: int = 11300,
        connect_timeout: Optional[Seconds] = DEFAULT_CONNECT_TIMEOUT,
        io_loop: Any = None,
        *,
        use: Optional[str] = None,
        watch: Union[str, Iterable[str], None] = None,
        encoding: Optional[str] = None,
        reconnect_interval: Seconds = RECONNECT_INTERVAL,
        disconnected_timeout: Optional[Seconds] = DEFAULT_DISCONNECTED_TIMEOUT,
        stall_timeout: Optional[Seconds] = DEFAULT_STALL_TIMEOUT,
        max_pending_bytes: Optional[int] = DEFAULT_MAX_PENDING_BYTES,
        keepalive: Optional[Keepalive] = DEFAULT_KEEPALIVE,
        ssl: SSLOption = None,
        reconnect_backoff: Optional[Backoff] = None,
    ) -> None:
        del io_loop  # kept only so old call sites keep working
        if use is not None:
            check_tube_name(use)
        if isinstance(watch, str):
            watch = [watch]
        watched = list(watch) if watch is not None else ["default"]
        for name in watched:
            check_tube_name(name)
        if not watched:
            raise ValueError("watch must name at least one tube")
        if max_pending_bytes is not None:
            check_integer("max_pending_bytes", max_pending_bytes, 1, 2**63)
        self._encoding = encoding
        self._connection = Connection(
            host,
            port,
            use=use or "default",
            watch=watched,
            encoding=encoding,
            connect_timeout=_interval("connect_timeout", connect_timeout),
            reconnect_interval=check_interval("reconnect_interval", reconnect_interval),
            disconnected_timeout=_interval("disconnected_timeout", disconnected_timeout),
            stall_timeout=_interval("stall_timeout", stall_timeout),
            max_pending_bytes=max_pending_bytes,
            keepalive=keepalive,
            ssl=ssl,
            reconnect_backoff=reconnect_backoff,
        )
        self._submit = self._connection.submit
        # The slices of each put_many under way (for withdraw).
        self._batch_slices: dict[Future[Any], list[Future[list[BatchResult]]]] = {}

    def __repr__(self) -> str:
        return f"<beanstalkt.Client {self._connection.address} {self._connection.state.value}>"

    # ------------------------------------------------------------------
    # Connection.

    @property
    def address(self) -> str:
        """The server address, ``host:port`` or ``unix:/path``."""
        return self._connection.address

    @property
    def using(self) -> str:
        """The client's own tube: where ``put`` goes without ``tube=``."""
        return self._connection.pipeline.used_tube

    @property
    def watching(self) -> list[str]:
        """The watch list, as last confirmed by the server."""
        return list(self._connection.pipeline.watched_tubes)

    @property
    def in_flight(self) -> int:
        """Commands sent (or waiting to be) whose replies have not arrived yet."""
        return self._connection.in_flight

    @property
    def pending_bytes(self) -> int:
        """Bytes of the commands not answered yet (what ``max_pending_bytes`` bounds)."""
        return self._connection.pipeline.pending_bytes

    def connect(self, callback: Optional[Callable[..., Any]] = None) -> Future[None]:
        """Connect to the server; the future resolves once connected.

        Fails with :class:`~beanstalkt.errors.ConnectFailed` when nothing
        answers (it never waits for a server to appear). Once connected, a
        lost connection is re-established automatically every
        ``reconnect_interval`` seconds, with the watch list restored. The
        client belongs to the event loop it connects on. ``callback`` is
        called with no argument on success, or with the exception.
        """
        future = self._connection.connect()
        if callback is not None:
            _call_back(future, callback, with_result=False)
        return future

    def close(self, callback: Optional[Callable[..., Any]] = None) -> Future[None]:
        """Close the connection now and stop reconnecting.

        Replies still owed fail with :class:`~beanstalkt.errors.ConnectionLost`
        and commands not sent yet with :class:`~beanstalkt.errors.NotConnected`
        (await what you need first). Always succeeds, even after the client's
        event loop has closed; ``connect()`` may follow, on any loop.
        ``callback`` is called with no argument.
        """
        self._connection.close()
        running = _get_running_loop()
        if running is None:
            # Closed from plain code (after asyncio.run, at interpreter exit...):
            # nothing to wait for, and no loop to make one current for.
            if callback is not None:
                callback()
            return _completed()
        future: Future[None] = running.create_future()
        future.set_result(None)
        if callback is not None:
            _call_back(future, callback, with_result=False)
        return future

    def closed(self) -> bool:
        """True unless the connection is established right now.

        The original beanstalkt's method, kept; :attr:`connected` is the same
        state as a property, like the client's other state (``in_flight``,
        ``using``).
        """
        return self._connection.state is not State.OPEN

    @property
    def connected(self) -> bool:
        """True while the connection is established (the opposite of :meth:`closed`)."""
        return self._connection.state is State.OPEN

    def set_reconnect_callback(self, callback: Optional[ReconnectCallback]) -> None:
        """Call ``callback()`` (plain or async) after each automatic reconnect.

        It runs once the session (the watch list) has been re-sent.
        """
        self._connection.reconnect_callback = callback

    def set_disconnect_callback(self, callback: Optional[DisconnectCallback]) -> None:
        """Call ``callback(reason)`` (plain or async) each time the connection is lost.

        ``reason`` is the text the errors carry ("connection to ... lost:
        closed by the server"). It runs once the client has started
        reconnecting, and not for :meth:`close`. With
        :meth:`set_reconnect_callback` it tells a caller (a pool, a health
        check) when the server goes away and comes back, without polling.
        """
        self._connection.disconnect_callback = callback

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """Write the commands issued in this block together, in one write.

        ::

            with client.batch():
                client.delete(job)
                next_job = client.reserve(timeout=0)

        Without it, a command issued while nothing is owed is written at once
        (a lock-step caller never waits for its own write) and the next one a
        loop turn later: two writes. From the call on, every command is held
        until the end of the loop turn. Awaiting inside the block is harmless:
        the commands then go out at that point.
        """
        self._connection.defer_writes()
        # The work is done above; the block itself needs nothing on exit.
        return _NO_EXIT

    def withdraw(self, future: Future[Any], reason: str = "withdrawn by the caller") -> int:
        """Take back a command (or the parts of a ``put_many``) not written yet.

        What was still waiting to be written fails with
        :class:`~beanstalkt.errors.NotConnected` (so it was certainly never
        sent: safe to send elsewhere); what was written goes on. Returns how
        many commands were taken back. A pool uses it when a server leaves
        rotation.
        """
        parts = self._batch_slices.get(future, [future])
        return sum(1 for part in parts if self._connection.withdraw(part, reason))

    def abort(self, reason: str) -> bool:
        """Treat the open connection as lost now, ``reason`` in the errors; False if none is open.

        What was written fails with :class:`~beanstalkt.errors.ConnectionLost`
        (outcome unknown), reservations end, and the client reconnects as after
        any loss. For a caller that knows the server is gone before the socket
        does: the server layer when a probe goes unanswered, a pooled worker
        whose blocking reserves wait on a frozen server.
        """
        return self._connection.abort(reason)

    def sequence(self) -> contextlib.AbstractContextManager[None]:
        """Issue the commands of this block as one sequence: one write, one connection.

        ::

            with client.sequence():
                buried = client.bury(job)
                taken_back = client.reserve_job(job.id)
                released = client.release(job, delay=10)

        The commands are written together, in one write, when the block ends,
        on the connection open at its start. None of them is ever sent on
        another connection: if that one is lost before they are written (or
        there was none), they fail with
        :class:`~beanstalkt.errors.NotConnected` instead of waiting for the
        next connection, where a ``reserve-job`` by id could take a stranger's
        job. A command refused at the call (``ReservationLost``,
        ``BufferFull``) takes the others back, unsent. Issue the commands
        without awaiting in between: the block is one moment of the caller.
        """
        return self._connection.sequence()

    async def __aenter__(self) -> Client[BodyT]:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------
    # Producer commands.

    def put(
        self,
        body: Union[bytes, BodyT],
        priority: int = DEFAULT_PRIORITY,
        delay: Seconds = 0,
        ttr: Seconds = DEFAULT_TTR,
        callback: Optional[Callback] = None,
        *,
        tube: Optional[str] = None,
    ) -> Future[int]:
        """Put a job; resolves to the new job's id.

        The job goes into ``tube``, or without it into the client's own tube
        (``use``), whatever other coroutines sharing the client do.
        ``priority``: 0 (most urgent) to 2**32-1; ``delay``: seconds before the
        job becomes ready; ``ttr``: seconds a worker may hold it (each an
        ``int``, a whole-second ``float`` or a ``timedelta``; a fraction is a
        ``ValueError``, see :func:`~beanstalkt.protocol.check_seconds`). Fails with
        ``JobTooBig``, ``Draining``, or ``Buried`` (server out of memory; the
        job exists, buried, with id ``exc.job_id``). Cancelled before it was
        written, it is never sent; cancelled later, the job exists.
        """
        data = checked_put(body, priority, delay, ttr, self._encoding)
        if tube is not None:
            check_tube_name(tube)
        future = self._submit(PUT, data, None, tube)
        if callback is not None:
            _call_back(future, callback)
        return future

    def put_many(
        self,
        bodies: Iterable[Union[bytes, BodyT]],
        priority: int = DEFAULT_PRIORITY,
        delay: Seconds = 0,
        ttr: Seconds = DEFAULT_TTR,
        callback: Optional[Callback] = None,
        *,
        tube: Optional[str] = None,
    ) -> Future[list[BatchResult]]:
        """Put many jobs at once; resolves to one result per body, in order.

        Each result is the new job's id, or the exception for that job alone
        (``JobTooBig``, ``Buried``..., or ``ConnectionLost`` for the jobs
        whose replies a lost connection took with it). The batch is encoded
        and written in one piece and answered by one future, which is how it
        keeps the server, not the client, the limit. Every body is checked
        before anything is sent. An empty batch resolves to ``[]``.
        """
        encoding = self._encoding
        priority = check_integer("priority", priority, 0, MAX_UINT32)
        delay_seconds, ttr_seconds = check_seconds("delay", delay), check_seconds("ttr", ttr)
        if tube is not None:
            check_tube_name(tube)
        # Every body is checked (and encoded, by the protocol's one put encoder)
        # before anything is sent.
        commands = [
            encode_put(check_body(body, encoding), priority, delay_seconds, ttr_seconds)
            for body in bodies
        ]
        # Sent in slices of about BATCH_SLICE bytes: the server starts on the
        # first while the rest is still being handed to the socket, and no
        # single joined copy of a large batch is ever made.
        slices: list[Future[list[BatchResult]]] = []
        counts: list[int] = []
        refused: Optional[BaseException] = None
        for start, end in slice_bounds(commands):
            count = end - start
            if refused is not None:
                # Once a slice is refused (BufferFull), so is every later one,
                # even one small enough to fit: the failures are a suffix of the
                # batch, never a hole in its middle, and a caller retries in order.
                part: Future[list[BatchResult]] = self._connection.loop.create_future()
                part.set_exception(refused)
            else:
                data = b"".join(commands[start:end])
                part = self._connection.submit_batch(
                    data, b"put (batch of %d)" % count, tube, count
                )
                if part.done() and isinstance(part.exception(), BufferFull):
                    refused = part.exception()
            slices.append(part)
            counts.append(count)
        future = joined_batches(self._connection.loop, slices, counts)
        if len(slices) > 1:
            self._batch_slices[future] = slices
            future.add_done_callback(self._batch_slices.pop)
        if callback is not None:
            _call_back(future, callback)
        return future

    def use(self, name: str, callback: Optional[Callback] = None) -> Future[str]:
        """Make ``name`` the client's own tube; resolves to the tube's name.

        It takes effect at the call, for every command issued after it (a
        cancelled ``use`` is not undone). Coroutines sharing a client should
        rather pass ``tube=`` to ``put``.
        """
        line = encode_command(b"use", check_tube_name(name))
        future = self._submit(USE, line, line, name)
        if callback is not None:
            _call_back(future, callback)
        return future

    # ------------------------------------------------------------------
    # Worker commands.

    def reserve(
        self, timeout: Optional[Seconds] = None, callback: Optional[Callback] = None
    ) -> Future[Job[BodyT]]:
        """Reserve a job from the watched tubes; resolves to a :class:`Job`.

        Without ``timeout`` the server answers only when a job is ready, and
        every command sent after it on this connection waits until then: reserve
        on a connection of its own. With ``timeout`` (seconds or a ``timedelta``,
        a fraction rounded up, at most 2**31-1), fails with ``TimedOut`` when no
        job came in time; ``timeout=0`` polls. Fails
        with ``DeadlineSoon`` when a job reserved by this connection is about to
        time out.

        Cancelling it (``asyncio.wait_for``...) is safe: a job that arrives
        for a cancelled reserve is released at once with its own priority, and
        a blocking reserve still waiting on the server is taken over by the
        next ``reserve()`` instead of being doubled.
        """
        if timeout is None:
            future = self._submit(RESERVE, _RESERVE_LINE, _RESERVE_LINE)
        else:
            seconds = check_seconds("timeout", timeout, MAX_RESERVE_TIMEOUT, round_up=True)
            line = b"reserve-with-timeout %d\r\n" % seconds
            future = self._submit(RESERVE_WITH_TIMEOUT, line, line, None, None, seconds)
        if callback is not None:
            _call_back(future, callback)
        return future

    def reserve_job(self, job_id: int, callback: Optional[Callback] = None) -> Future[Job[BodyT]]:
        """Reserve the job with id ``job_id`` (ready, delayed or buried) whatever its tube.

        Cancelled after it was sent, the job is released (to ready) at once.
        """
        return self._job_command(RESERVE_JOB, job_id, callback)

    def delete(self, job: JobRef, callback: Optional[Callback] = None) -> Future[None]:
        """Delete a job: one reserved by this connection, or a ready, delayed or buried one.

        Given a reserved :class:`Job`, fails with ``ReservationLost`` (sending
        nothing) when the connection that reserved it was lost since. Given an
        id, deletes whatever job has that id now.
        """
        return self._job_command(DELETE, job, callback)

    def release(
        self,
        job: JobRef,
        priority: int = DEFAULT_PRIORITY,
        delay: Seconds = 0,
        callback: Optional[Callback] = None,
    ) -> Future[None]:
        """Put a job reserved by this connection back to ready (or delayed, with ``delay``).

        ``ReservationLost`` as for :meth:`delete`.
        """
        return self._job_command(
            RELEASE,
            job,
            callback,
            check_integer("priority", priority, 0, MAX_UINT32),
            check_seconds("delay", delay),
        )

    def bury(
        self, job: JobRef, priority: int = DEFAULT_PRIORITY, callback: Optional[Callback] = None
    ) -> Future[None]:
        """Bury a job reserved by this connection: kept aside until kicked.

        ``ReservationLost`` as for :meth:`delete`.
        """
        return self._job_command(
            BURY, job, callback, check_integer("priority", priority, 0, MAX_UINT32)
        )

    def touch(self, job: JobRef, callback: Optional[Callback] = None) -> Future[None]:
        """Ask for more time on a reserved job: its TTR starts again now.

        ``ReservationLost`` as for :meth:`delete`.
        """
        return self._job_command(TOUCH, job, callback)

    def watch(self, name: str, callback: Optional[Callback] = None) -> Future[int]:
        """Add tube ``name`` to the watch list; resolves to the number of watched tubes."""
        return self._tube_command(WATCH, name, callback)

    def ignore(self, name: str, callback: Optional[Callback] = None) -> Future[int]:
        """Remove tube ``name`` from the watch list; resolves to the number left.

        Fails with ``NotIgnored`` for the last watched tube.
        """
        return self._tube_command(IGNORE, name, callback)

    # ------------------------------------------------------------------
    # Other commands.

    def peek(self, job_id: int, callback: Optional[Callback] = None) -> Future[Job[BodyT]]:
        """Look at job ``job_id`` without reserving it; fails with ``NotFound``."""
        return self._job_command(PEEK, job_id, callback)

    def peek_ready(
        self, callback: Optional[Callback] = None, *, tube: Optional[str] = None
    ) -> Future[Job[BodyT]]:
        """Look at the next ready job of ``tube`` (default: the client's); ``NotFound`` if none."""
        return self._tube_scoped(PEEK_READY, tube, callback)

    def peek_delayed(
        self, callback: Optional[Callback] = None, *, tube: Optional[str] = None
    ) -> Future[Job[BodyT]]:
        """Look at the delayed job of ``tube`` (default: the client's) that is due first."""
        return self._tube_scoped(PEEK_DELAYED, tube, callback)

    def peek_buried(
        self, callback: Optional[Callback] = None, *, tube: Optional[str] = None
    ) -> Future[Job[BodyT]]:
        """Look at the next buried job of ``tube`` (default: the client's)."""
        return self._tube_scoped(PEEK_BURIED, tube, callback)

    def kick(
        self, bound: int = 1, callback: Optional[Callback] = None, *, tube: Optional[str] = None
    ) -> Future[int]:
        """Kick up to ``bound`` jobs of ``tube`` (default: the client's) to ready: buried
        ones if any, else delayed ones. Resolves to the number kicked."""
        line = encode_command(b"kick", check_integer("bound", bound, 0, MAX_UINT32))
        if tube is not None:
            check_tube_name(tube)
        return self._send(KICK, line, callback, tube)

    def kick_job(self, job_id: int, callback: Optional[Callback] = None) -> Future[None]:
        """Kick one buried or delayed job to ready."""
        return self._job_command(KICK_JOB, job_id, callback)

    def stats_job(self, job_id: JobRef, callback: Optional[Callback] = None) -> Future[StatsJob]:
        """Statistics of one job (state, tube, priority, age, counters...)."""
        return self._job_command(STATS_JOB, job_id, callback)

    def stats_tube(self, name: str, callback: Optional[Callback] = None) -> Future[StatsTube]:
        """Statistics of one tube; fails with ``NotFound`` if it does not exist."""
        return self._tube_command(STATS_TUBE, name, callback)

    def stats(self, callback: Optional[Callback] = None) -> Future[Stats]:
        """Statistics of the whole server."""
        return self._simple_command(STATS, callback)

    def list_tubes(self, callback: Optional[Callback] = None) -> Future[list[str]]:
        """Names of all existing tubes."""
        return self._simple_command(LIST_TUBES, callback)

    def list_tube_used(self, callback: Optional[Callback] = None) -> Future[str]:
        """The name of the client's own tube, as the server reports it."""
        return self._simple_command(LIST_TUBE_USED, callback)

    def list_tubes_watched(self, callback: Optional[Callback] = None) -> Future[list[str]]:
        """Names of the tubes this connection watches."""
        return self._simple_command(LIST_TUBES_WATCHED, callback)

    def yaml(
        self,
        command: str,
        argument: Union[int, str, None] = None,
        callback: Optional[Callback] = None,
    ) -> Future[bytes]:
        """The YAML document of a stats or list reply, exactly as the server sent it.

        ``command`` is ``'stats'``, ``'stats-job'`` (``argument``: a job id),
        ``'stats-tube'`` (``argument``: a tube name), ``'list-tubes'`` or
        ``'list-tubes-watched'``. For tools that show the server's own text
        (the CLI's ``--raw``); :meth:`stats` and the others parse it.
        Failures are those of the parsing method (``NotFound``...).
        """
        spec = VERBATIM.get(command)
        if spec is None:
            raise ValueError(f"yaml() takes one of {', '.join(sorted(VERBATIM))}, not {command!r}")
        if spec.name == b"stats-job":
            line = encode_command(spec.name, check_job_id(argument))
        elif spec.name == b"stats-tube":
            line = encode_command(spec.name, check_tube_name(argument))
        elif argument is not None:
            raise TypeError(f"{command} takes no argument")
        else:
            line = spec.name + b"\r\n"
        return self._send(spec, line, callback)

    def pause_tube(
        self, name: str, delay: Seconds, callback: Optional[Callback] = None
    ) -> Future[None]:
        """Hold back reservations from tube ``name`` for ``delay`` seconds."""
        line = encode_command(b"pause-tube", check_tube_name(name), check_seconds("delay", delay))
        return self._send(PAUSE_TUBE, line, callback)

    # ------------------------------------------------------------------

    def _send(
        self,
        spec: CommandSpec[_ResultT],
        line: bytes,
        callback: Optional[Callback],
        tube: Optional[str] = None,
        reservation: Optional[Reservation] = None,
    ) -> Future[_ResultT]:
        future = self._submit(spec, line, line, tube, reservation)
        if callback is not None:
            _call_back(future, callback)
        return future

    def _simple_command(
        self, spec: CommandSpec[_ResultT], callback: Optional[Callback]
    ) -> Future[_ResultT]:
        return self._send(spec, spec.name + b"\r\n", callback)

    def _tube_scoped(
        self, spec: CommandSpec[_ResultT], tube: Optional[str], callback: Optional[Callback]
    ) -> Future[_ResultT]:
        if tube is not None:
            check_tube_name(tube)
        return self._send(spec, spec.name + b"\r\n", callback, tube)

    def _job_command(
        self, spec: CommandSpec[_ResultT], job: JobRef, callback: Optional[Callback], *args: int
    ) -> Future[_ResultT]:
        reservation = None
        if isinstance(job, Job):
            reservation = job.reservation if spec.acts_on_reservation else None
            job_id = job.id
        else:
            job_id = job
        line = encode_command(spec.name, check_job_id(job_id), *args)
        return self._send(spec, line, callback, None, reservation)

    def _tube_command(
        self, spec: CommandSpec[_ResultT], tube: str, callback: Optional[Callback]
    ) -> Future[_ResultT]:
        return self._send(spec, encode_command(spec.name, check_tube_name(tube)), callback)

    # ------------------------------------------------------------------
    # Producer conveniences: thin wrappers over put().

    def put_json(
        self,
        data: Any,
        priority: int = DEFAULT_PRIORITY,
        delay: Seconds = 0,
        ttr: Seconds = DEFAULT_TTR,
        callback: Optional[Callback] = None,
        *,
        tube: Optional[str] = None,
    ) -> Future[int]:
        """Put ``data`` encoded as compact UTF-8 JSON; resolves to the new job's id.

        Strict JSON: ``NaN`` and infinities are refused (``ValueError``).
        """
        return self.put(encode_json(data), priority, delay, ttr, callback, tube=tube)

    def schedule_at(
        self,
        when: datetime.datetime,
        body: Union[bytes, BodyT],
        priority: int = DEFAULT_PRIORITY,
        ttr: Seconds = DEFAULT_TTR,
        callback: Optional[Callback] = None,
        *,
        tube: Optional[str] = None,
    ) -> Future[int]:
        """Put ``body`` as a job that becomes ready at ``when`` (a past time: at once).

        A naive ``datetime`` is local time. The delay is whole seconds, rounded up.
        """
        return self.put(body, priority, delay_until(when), ttr, callback, tube=tube)


_NO_EXIT = contextlib.nullcontext()


def _interval(what: str, value: Optional[Seconds]) -> Optional[float]:
    """An optional time bound of the client's own, in seconds (``None``: no bound)."""
    return None if value is None else check_interval(what, value)

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
import datetime
import math
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Callable, Optional, Union

from .connection import RECONNECT_TIMEOUT, Connection, ReconnectCallback, Session, State
from .models import Body, Job, Stats, StatsJob, StatsTube
from .protocol import (
    COMMANDS,
    DEFAULT_PRIORITY,
    DEFAULT_TTR,
    MAX_UINT32,
    CommandSpec,
    check_body,
    check_integer,
    check_job_id,
    check_tube_name,
    encode_command,
    encode_put,
)

Future = asyncio.Future
Callback = Callable[[Any], Any]

_PUT = COMMANDS["put"]
_RESERVE = COMMANDS["reserve"]
_RESERVE_WITH_TIMEOUT = COMMANDS["reserve-with-timeout"]
_RESERVE_LINE = b"reserve\r\n"


class Client:
    """An asynchronous, pipelined beanstalkd client over one Tornado IOStream.

    :param host: host name or address, or ``'unix:/path/to/socket'`` for a Unix
        domain socket (as beanstalkd's ``-l unix:/path``).
    :param port: TCP port (ignored for Unix sockets).
    :param connect_timeout: seconds a connection attempt may take (``None``:
        the operating system's limit).
    :param io_loop: accepted for compatibility with the original beanstalkt and
        ignored: the client uses the running asyncio loop (which is Tornado's).
    :param use: tube to use for ``put`` from the first connection on.
    :param watch: tube name, or names, to watch instead of ``default``.
    :param encoding: when set (e.g. ``'utf-8'``), ``put`` also accepts ``str``
        bodies and jobs come back with ``str`` bodies. Default: bytes only.
    :param reconnect_interval: seconds between reconnection attempts after the
        connection is lost (:data:`RECONNECT_TIMEOUT`, 1 s).
    :param disconnected_timeout: how long a command may wait for the
        connection to come back before it fails with ``NotConnected``
        (``None``: wait as long as it takes).
    :param stall_timeout: if the server sends nothing for this many seconds
        while replies to non-blocking commands are owed, the connection is
        treated as lost (``None``: no guard). A blocking ``reserve`` is exempt,
        and ``reserve(timeout=t)`` is allowed ``t`` seconds more.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 11300,
        connect_timeout: Optional[float] = None,
        io_loop: Any = None,
        *,
        use: Optional[str] = None,
        watch: Union[str, Iterable[str], None] = None,
        encoding: Optional[str] = None,
        reconnect_interval: float = RECONNECT_TIMEOUT,
        disconnected_timeout: Optional[float] = None,
        stall_timeout: Optional[float] = None,
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
        self._encoding = encoding
        self._connection = Connection(
            host,
            port,
            session=Session(use or "default", watched),
            encoding=encoding,
            connect_timeout=connect_timeout,
            reconnect_interval=reconnect_interval,
            disconnected_timeout=disconnected_timeout,
            stall_timeout=stall_timeout,
        )

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
        """The tube ``put`` goes to, as last confirmed by the server."""
        return self._connection.session.used_tube

    @property
    def watching(self) -> list[str]:
        """The watch list, as last confirmed by the server."""
        return list(self._connection.session.watched_tubes)

    @property
    def in_flight(self) -> int:
        """Commands sent (or about to be) whose replies have not arrived yet."""
        return self._connection.in_flight

    def connect(self, callback: Optional[Callable[..., Any]] = None) -> Future[None]:
        """Connect to the server; the future resolves once connected.

        Fails with :class:`~beanstalkt.errors.ConnectFailed` when nothing
        answers (it never waits for a server to appear). Once connected, a
        lost connection is re-established automatically every
        ``reconnect_interval`` seconds, with the used tube and the watch list
        restored. ``callback`` is called with no argument on success, or with
        the exception.
        """
        future = self._connection.connect()
        if callback is not None:
            _call_back(future, callback, with_result=False)
        return future

    def close(self, callback: Optional[Callable[..., Any]] = None) -> Future[None]:
        """Close the connection now and stop reconnecting.

        Replies still owed fail with :class:`~beanstalkt.errors.ConnectionLost`
        (await what you need first). ``callback`` is called with no argument.
        """
        self._connection.close()
        future: Future[None] = self._connection.loop.create_future()
        future.set_result(None)
        if callback is not None:
            _call_back(future, callback, with_result=False)
        return future

    def closed(self) -> bool:
        """True unless the connection is established right now."""
        return self._connection.state is not State.OPEN

    def set_reconnect_callback(self, callback: Optional[ReconnectCallback]) -> None:
        """Call ``callback()`` (plain or async) after each automatic reconnect.

        It runs once the session (used tube, watch list) has been re-sent.
        """
        self._connection.reconnect_callback = callback

    async def __aenter__(self) -> Client:
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
        body: Body,
        priority: int = DEFAULT_PRIORITY,
        delay: int = 0,
        ttr: int = DEFAULT_TTR,
        callback: Optional[Callback] = None,
    ) -> Future[int]:
        """Put a job into the used tube; resolves to the new job's id.

        ``priority``: 0 (most urgent) to 2**32-1; ``delay``: seconds before the
        job becomes ready; ``ttr``: seconds a worker may hold it. Fails with
        ``JobTooBig``, ``Draining``, or ``Buried`` (server out of memory; the
        job exists, buried, with id ``exc.job_id``).
        """
        data = encode_put(
            check_body(body, self._encoding),
            check_integer("priority", priority, 0, MAX_UINT32),
            check_integer("delay", delay, 0, MAX_UINT32),
            check_integer("ttr", ttr, 0, MAX_UINT32),
        )
        future = self._connection.submit(_PUT, data, None)
        if callback is not None:
            _call_back(future, callback)
        return future

    def use(self, name: str, callback: Optional[Callback] = None) -> Future[str]:
        """Put subsequent jobs into tube ``name``; resolves to the tube's name."""
        return self._tube_command("use", name, callback)

    # ------------------------------------------------------------------
    # Worker commands.

    def reserve(
        self, timeout: Optional[float] = None, callback: Optional[Callback] = None
    ) -> Future[Job]:
        """Reserve a job from the watched tubes; resolves to a :class:`Job`.

        Without ``timeout`` the server answers only when a job is ready, and
        every command sent after it on this connection waits until then: reserve
        on a connection of its own. With ``timeout`` (seconds, rounded up), fails
        with ``TimedOut`` when no job came in time; ``timeout=0`` polls. Fails
        with ``DeadlineSoon`` when a job reserved by this connection is about to
        time out.
        """
        if timeout is None:
            future = self._connection.submit(_RESERVE, _RESERVE_LINE, _RESERVE_LINE)
        else:
            if isinstance(timeout, float) and math.isfinite(timeout):
                if timeout < 0:
                    raise ValueError(f"timeout must not be negative, not {timeout!r}")
                timeout = math.ceil(timeout)
            seconds = check_integer("timeout", timeout, 0, MAX_UINT32)
            line = b"reserve-with-timeout %d\r\n" % seconds
            future = self._connection.submit(_RESERVE_WITH_TIMEOUT, line, line)
        if callback is not None:
            _call_back(future, callback)
        return future

    def reserve_job(self, job_id: int, callback: Optional[Callback] = None) -> Future[Job]:
        """Reserve the job with id ``job_id`` (ready, delayed or buried) whatever its tube."""
        return self._job_command("reserve-job", job_id, callback)

    def delete(self, job_id: int, callback: Optional[Callback] = None) -> Future[None]:
        """Delete a job: one reserved by this connection, or a ready, delayed or buried one."""
        return self._job_command("delete", job_id, callback)

    def release(
        self,
        job_id: int,
        priority: int = DEFAULT_PRIORITY,
        delay: int = 0,
        callback: Optional[Callback] = None,
    ) -> Future[None]:
        """Put a job reserved by this connection back to ready (or delayed, with ``delay``)."""
        return self._job_command(
            "release",
            job_id,
            callback,
            check_integer("priority", priority, 0, MAX_UINT32),
            check_integer("delay", delay, 0, MAX_UINT32),
        )

    def bury(
        self, job_id: int, priority: int = DEFAULT_PRIORITY, callback: Optional[Callback] = None
    ) -> Future[None]:
        """Bury a job reserved by this connection: kept aside until kicked."""
        return self._job_command(
            "bury", job_id, callback, check_integer("priority", priority, 0, MAX_UINT32)
        )

    def touch(self, job_id: int, callback: Optional[Callback] = None) -> Future[None]:
        """Ask for more time on a reserved job: its TTR starts again now."""
        return self._job_command("touch", job_id, callback)

    def watch(self, name: str, callback: Optional[Callback] = None) -> Future[int]:
        """Add tube ``name`` to the watch list; resolves to the number of watched tubes."""
        return self._tube_command("watch", name, callback)

    def ignore(self, name: str, callback: Optional[Callback] = None) -> Future[int]:
        """Remove tube ``name`` from the watch list; resolves to the number left.

        Fails with ``NotIgnored`` for the last watched tube.
        """
        return self._tube_command("ignore", name, callback)

    # ------------------------------------------------------------------
    # Other commands.

    def peek(self, job_id: int, callback: Optional[Callback] = None) -> Future[Job]:
        """Look at job ``job_id`` without reserving it; fails with ``NotFound``."""
        return self._job_command("peek", job_id, callback)

    def peek_ready(self, callback: Optional[Callback] = None) -> Future[Job]:
        """Look at the next ready job of the used tube; fails with ``NotFound``."""
        return self._simple_command("peek-ready", callback)

    def peek_delayed(self, callback: Optional[Callback] = None) -> Future[Job]:
        """Look at the delayed job of the used tube that is due first."""
        return self._simple_command("peek-delayed", callback)

    def peek_buried(self, callback: Optional[Callback] = None) -> Future[Job]:
        """Look at the next buried job of the used tube."""
        return self._simple_command("peek-buried", callback)

    def kick(self, bound: int = 1, callback: Optional[Callback] = None) -> Future[int]:
        """Kick up to ``bound`` jobs of the used tube to ready: buried ones if any,
        else delayed ones. Resolves to the number kicked."""
        line = encode_command(b"kick", check_integer("bound", bound, 0, MAX_UINT32))
        return self._send(COMMANDS["kick"], line, callback)

    def kick_job(self, job_id: int, callback: Optional[Callback] = None) -> Future[None]:
        """Kick one buried or delayed job to ready."""
        return self._job_command("kick-job", job_id, callback)

    def stats_job(self, job_id: int, callback: Optional[Callback] = None) -> Future[StatsJob]:
        """Statistics of one job (state, tube, priority, age, counters...)."""
        return self._job_command("stats-job", job_id, callback)

    def stats_tube(self, name: str, callback: Optional[Callback] = None) -> Future[StatsTube]:
        """Statistics of one tube; fails with ``NotFound`` if it does not exist."""
        return self._tube_command("stats-tube", name, callback)

    def stats(self, callback: Optional[Callback] = None) -> Future[Stats]:
        """Statistics of the whole server."""
        return self._simple_command("stats", callback)

    def list_tubes(self, callback: Optional[Callback] = None) -> Future[list[str]]:
        """Names of all existing tubes."""
        return self._simple_command("list-tubes", callback)

    def list_tube_used(self, callback: Optional[Callback] = None) -> Future[str]:
        """The name of the tube this connection uses."""
        return self._simple_command("list-tube-used", callback)

    def list_tubes_watched(self, callback: Optional[Callback] = None) -> Future[list[str]]:
        """Names of the tubes this connection watches."""
        return self._simple_command("list-tubes-watched", callback)

    def pause_tube(
        self, name: str, delay: int, callback: Optional[Callback] = None
    ) -> Future[None]:
        """Hold back reservations from tube ``name`` for ``delay`` seconds."""
        line = encode_command(
            b"pause-tube", check_tube_name(name), check_integer("delay", delay, 0, MAX_UINT32)
        )
        return self._send(COMMANDS["pause-tube"], line, callback)

    # ------------------------------------------------------------------

    def _send(self, spec: CommandSpec, line: bytes, callback: Optional[Callback]) -> Future[Any]:
        future = self._connection.submit(spec, line, line)
        if callback is not None:
            _call_back(future, callback)
        return future

    def _simple_command(self, name: str, callback: Optional[Callback]) -> Future[Any]:
        spec = COMMANDS[name]
        return self._send(spec, spec.name + b"\r\n", callback)

    def _job_command(
        self, name: str, job_id: int, callback: Optional[Callback], *args: int
    ) -> Future[Any]:
        spec = COMMANDS[name]
        return self._send(spec, encode_command(spec.name, check_job_id(job_id), *args), callback)

    def _tube_command(self, name: str, tube: str, callback: Optional[Callback]) -> Future[Any]:
        spec = COMMANDS[name]
        return self._send(spec, encode_command(spec.name, check_tube_name(tube)), callback)

    # ------------------------------------------------------------------
    # Producer conveniences (see beanstalkt.producer): thin wrappers over put().

    def put_json(
        self,
        data: Any,
        priority: int = DEFAULT_PRIORITY,
        delay: int = 0,
        ttr: int = DEFAULT_TTR,
        callback: Optional[Callback] = None,
    ) -> Future[int]:
        """Put ``data`` encoded as compact UTF-8 JSON; resolves to the new job's id."""
        from .producer import encode_json

        return self.put(encode_json(data), priority, delay, ttr, callback)

    def schedule_at(
        self,
        when: datetime.datetime,
        body: Body,
        priority: int = DEFAULT_PRIORITY,
        ttr: int = DEFAULT_TTR,
        callback: Optional[Callback] = None,
    ) -> Future[int]:
        """Put ``body`` as a job that becomes ready at ``when`` (a past time: at once).

        A naive ``datetime`` is local time. The delay is whole seconds, rounded up.
        """
        from .producer import delay_until

        return self.put(body, priority, delay_until(when), ttr, callback)

    # End of the producer conveniences.
    # ------------------------------------------------------------------


def _call_back(
    future: asyncio.Future[Any], callback: Callable[..., Any], with_result: bool = True
) -> None:
    """Call ``callback`` with the future's result, or its exception, when it is done."""

    def done(completed: asyncio.Future[Any]) -> None:
        if completed.cancelled():
            return
        error = completed.exception()
        if error is not None:
            callback(error)
        elif with_result:
            callback(completed.result())
        else:
            callback()

    future.add_done_callback(done)

"""The one I/O layer: a Tornado IOStream carrying one :class:`~beanstalkt.pipeline.Pipeline`.

Every rule of the conversation (FIFO matching, the tube on the wire,
cancellation, reservations, what a lost connection means, the memory bound)
lives in the pure :mod:`beanstalkt.pipeline`. This module only:

* writes what the pipeline has to send: at once when nothing is owed (a
  lock-step caller never waits a loop turn for its own write), otherwise once
  per event-loop turn (a burst of thousands of commands costs one ``write``);
* reads: one reader per stream, plain callbacks on Tornado's ``read_into``
  futures, feeding the pipeline and resolving the callers' futures;
* keeps time: ``disconnected_timeout`` for commands waiting for a connection,
  the stall guard, TCP keepalive against half-open connections;
* connects, and reconnects every ``reconnect_interval`` seconds after a loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import socket
import ssl as ssl_module
import time
from asyncio.events import _get_running_loop
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, NamedTuple, Optional, Union, cast

from tornado.iostream import IOStream, StreamClosedError
from tornado.tcpclient import TCPClient

from . import errors
from ._io import (
    current_loop,
    deliver,
    reason_text,
    run_callback,
    set_keepalive,
    ssl_context,
)
from ._tornado import start_read
from .address import format_address, unix_socket_path
from .backoff import Backoff
from .pipeline import (
    DEFAULT_MAX_PENDING_BYTES,
    BatchResult,
    Pipeline,
    Reservation,
    Sequence,
)
from .protocol import PUT, CommandSpec, ProtocolError, ResultT, describe_command

logger = logging.getLogger("beanstalkt")

#: Seconds between reconnection attempts after the connection is lost.
RECONNECT_INTERVAL = 1.0
#: The original beanstalkt's name for :data:`RECONNECT_INTERVAL`.
RECONNECT_TIMEOUT = RECONNECT_INTERVAL

# Nothing waits for ever by default (httpx's finite, documented, overridable
# 5 s is the model): a web handler gets an answer or a typed error in seconds.
#: Seconds a connection attempt may take before it fails with ``ConnectFailed``.
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Seconds a command may wait for a connection before it fails with ``NotConnected``.
DEFAULT_DISCONNECTED_TIMEOUT = 5.0
#: Seconds a server may stay silent while replies are owed before the
#: connection counts as lost (a blocking reserve is allowed its own timeout more).
DEFAULT_STALL_TIMEOUT = 10.0

# Large reads let one wake-up parse hundreds of replies.
READ_CHUNK_SIZE = 256 * 1024

# A burst is written out as soon as this many bytes of it are queued, instead
# of waiting for the end of the loop turn.
FLUSH_THRESHOLD = 256 * 1024

ReconnectCallback = Callable[[], Union[Awaitable[None], None]]
#: Called with the reason (text) when a connection is lost; may be async.
DisconnectCallback = Callable[[str], Union[Awaitable[None], None]]
SSLOption = Union[bool, ssl_module.SSLContext, None]


class Keepalive(NamedTuple):
    """TCP keepalive settings: how a silently dead peer is noticed.

    After ``idle`` seconds without traffic the kernel sends a probe every
    ``interval`` seconds; ``probes`` unanswered probes end the connection. A
    blocking ``reserve`` on a server that vanished without a word (host gone,
    a NAT or firewall that dropped the flow) then fails with
    :class:`~beanstalkt.errors.ConnectionLost` after about :attr:`timeout`
    seconds, and the client reconnects. The same bound applies to written data
    that is never acknowledged (``TCP_USER_TIMEOUT``, on Linux).
    """

    idle: float = 10.0
    interval: float = 5.0
    probes: int = 3

    @property
    def timeout(self) -> float:
        """Seconds from the last sign of life until a dead peer is given up."""
        return self.idle + self.interval * self.probes


#: What a client uses unless told otherwise: a dead peer is noticed within 25 s.
DEFAULT_KEEPALIVE = Keepalive()


class State(enum.Enum):
    """Where a connection is in its life."""

    NEW = "new"  # connect() not called yet
    CONNECTING = "connecting"  # first connect() under way
    OPEN = "open"
    RECONNECTING = "reconnecting"  # lost after a successful connect; retrying
    CLOSED = "closed"  # close() called


_future_done = asyncio.Future.done
# Enum members read on every command: an Enum class attribute costs a
# descriptor call (about 50 ns on Python 3.11), a module global almost nothing.
_OPEN = State.OPEN
_NEW = State.NEW
_CLOSED = State.CLOSED


class Connection:
    """A pipelined, self-reconnecting connection to one beanstalkd server.

    ``host`` is a host name or address, or ``unix:/path`` for a Unix domain
    socket (beanstalkd's own ``-l unix:/path`` spelling).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        use: str = "default",
        watch: Iterable[str] = ("default",),
        encoding: Optional[str] = None,
        connect_timeout: Optional[float] = DEFAULT_CONNECT_TIMEOUT,
        reconnect_interval: float = RECONNECT_INTERVAL,
        disconnected_timeout: Optional[float] = DEFAULT_DISCONNECTED_TIMEOUT,
        stall_timeout: Optional[float] = DEFAULT_STALL_TIMEOUT,
        max_pending_bytes: Optional[int] = DEFAULT_MAX_PENDING_BYTES,
        keepalive: Optional[Keepalive] = DEFAULT_KEEPALIVE,
        ssl: SSLOption = None,
        reconnect_backoff: Optional[Backoff] = None,
    ) -> None:
        self.host = host
        self.reconnect_backoff = reconnect_backoff
        self.port = port
        self.connect_timeout = connect_timeout
        self.reconnect_interval = reconnect_interval
        self.disconnected_timeout = disconnected_timeout
        self.stall_timeout = stall_timeout
        self.keepalive = keepalive
        self.ssl_context = ssl_context(ssl)
        if self.ssl_context is not None and unix_socket_path(self.host) is not None:
            raise ValueError("TLS (ssl=) needs a TCP address, not a Unix socket")
        self.reconnect_callback: Optional[ReconnectCallback] = None
        self.disconnect_callback: Optional[DisconnectCallback] = None
        self.state = State.NEW
        self.pipeline = Pipeline(
            encoding=encoding,
            use=use,
            watch=watch,
            is_abandoned=_future_done,
            max_pending_bytes=max_pending_bytes,
            address=self.address,
        )
        self._init_io_state()

    def _init_io_state(self) -> None:
        """The I/O layer's own state: loop, stream, timers, reader (none of it the pipeline's)."""
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stream: Optional[IOStream] = None
        # Bytes queued in the pipeline since the last write (a trigger for
        # writing a long burst early, nothing more).
        self._unflushed = 0
        self._flush_scheduled = False
        # Commands waiting for a connection, with their disconnected_timeout timers.
        self._waiting_timers: dict[asyncio.Future[Any], Optional[asyncio.TimerHandle]] = {}
        self._connecting: Optional[asyncio.Future[None]] = None
        self._reconnect_task: Optional[asyncio.Task[None]] = None
        self._stall_timer: Optional[asyncio.TimerHandle] = None
        # connect() calls made while reconnecting, resolved by the next _start.
        self._reopen_waiters: list[asyncio.Future[None]] = []
        # The sequence being issued (Connection.sequence), if any.
        self._sequence: Optional[Sequence] = None
        # When the head of the pipeline last made progress (for the stall
        # guard; kept up to date only while there is one).
        self._last_progress = 0.0
        #: When the connection last received anything (time.monotonic; -inf: never).
        self.last_received = -float("inf")
        # Why the connection was last lost (for the commands that then fail).
        self._last_loss: Optional[str] = None
        # The reader: Tornado reads straight into _buffer (read_into: no fresh
        # zeroed chunk per recv, one copy out), a new one per stream.
        # _read_future is the read under way on self._stream, if any.
        self._buffer = bytearray(0)
        self._view = memoryview(self._buffer)
        self._read_future: Optional[asyncio.Future[int]] = None

    # ------------------------------------------------------------------
    # Public surface used by Client.

    @property
    def address(self) -> str:
        """``host:port``, or ``unix:/path``, for messages."""
        return format_address(self.host, self.port)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the connection belongs to (the running one before a connect)."""
        return self._loop if self._loop is not None else current_loop()

    @property
    def in_flight(self) -> int:
        """Commands sent or queued whose replies have not arrived."""
        return self.pipeline.pending

    def submit(
        self,
        spec: CommandSpec[ResultT],
        data: bytes,
        line: Optional[bytes],
        tube: Optional[str] = None,
        reservation: Optional[Reservation] = None,
        timeout: int = 0,
        batch: int = 0,
    ) -> asyncio.Future[ResultT]:
        """Queue one encoded command; return the future of its result (FIFO order).

        The future's type is the one ``spec`` declares; the pipeline resolves
        it with what :func:`~beanstalkt.protocol.interpret` makes of the reply
        for that spec, which is where the declaration is kept true (the tests
        of each command check it).
        """
        loop = self._loop
        running = _get_running_loop()
        # The common case costs one comparison: called from the client's own
        # (so running, so open) loop.
        if running is not loop and (running is not None or loop is None or loop.is_closed()):
            return self._submit_elsewhere(spec, line, running)
        assert loop is not None
        future: asyncio.Future[ResultT] = loop.create_future()
        state = self.state
        if state is _CLOSED or state is _NEW:
            future.set_exception(self._not_connected_error(spec, line))
            return future
        sequence = self._sequence
        pipeline = self.pipeline
        try:
            # Positional: this runs once per command.
            pipeline.send(future, spec, data, line, tube, reservation, timeout, batch, sequence)
        except errors.BeanstalkException as exc:
            # Without its traceback: the frames in it would keep this call's
            # arguments (a job body) alive as long as the future is.
            future.set_exception(exc.with_traceback(None))
            if sequence is not None:
                deliver(pipeline.break_sequence(sequence, exc))
            return future
        if sequence is not None:
            return future  # written with the rest of its sequence, when it ends
        if state is not _OPEN:
            self._wait(future)
        elif not self._flush_scheduled and not pipeline.owed:
            # Nothing else is owed, so nothing can join this write: a
            # lock-step caller would only wait a loop turn for it.
            self._flush()
        else:
            self._write_soon(loop, len(data))
        return future

    def _write_soon(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        """A command of ``size`` bytes was queued on the open connection, with
        replies owed or a write already due: write it when best."""
        self._unflushed += size
        if self._unflushed >= FLUSH_THRESHOLD:
            # A long burst: let the server start on it now, and never hold
            # all of it twice (as parts and as one joined copy).
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)

    def submit_batch(
        self, data: bytes, line: bytes, tube: Optional[str], count: int
    ) -> asyncio.Future[list[BatchResult]]:
        """Queue ``count`` encoded puts as one entry; its future resolves to one
        result per job (see :meth:`beanstalkt.pipeline.Pipeline.send`)."""
        # The pipeline answers a batch entry with a list, not with PUT's int.
        future = self.submit(PUT, data, line, tube, batch=count)
        return cast("asyncio.Future[list[BatchResult]]", future)

    def defer_writes(self) -> None:
        """Write what is issued from now on in this loop turn together, at its end.

        Turns off, for this turn only, the immediate write of a command issued
        while nothing is owed: a caller about to issue several commands (a
        worker's delete and its next reserve) gets them into one write.
        """
        if self.state is State.OPEN and not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    @contextlib.contextmanager
    def sequence(self) -> Iterator[None]:
        """Issue the commands of the block as one :class:`~beanstalkt.pipeline.Sequence`.

        They are written in one write when the block ends, on the connection
        open now, or not at all (see the pipeline's rules). A block inside
        another is part of the outer one.
        """
        if self._sequence is not None:
            yield
            return
        self._sequence = self.pipeline.begin_sequence()
        try:
            yield
        finally:
            self._sequence = None
            if self.state is State.OPEN and self.pipeline.has_data_to_send:
                self._flush()

    def _submit_elsewhere(
        self,
        spec: CommandSpec[Any],
        line: Optional[bytes],
        running: Optional[asyncio.AbstractEventLoop],
    ) -> asyncio.Future[Any]:
        """A command with no loop of ours to run on: fail it, queueing nothing."""
        if self._loop is None:
            # Never connected (or closed): say so on the caller's loop.
            future: asyncio.Future[Any] = (running or current_loop()).create_future()
            future.set_exception(self._not_connected_error(spec, line))
            return future
        command = describe_command(spec, line)
        closed = " (now closed)" if self._loop.is_closed() else ""
        raise errors.WrongEventLoop(
            command=command,
            message=f"{command!r} not sent: this client belongs to the event loop it connected "
            f"on{closed}, not the one running now; use a client per event loop, or close() "
            "it and connect() it again from this loop",
        )

    def connect(self) -> asyncio.Future[None]:
        """Open the connection; fail fast with ConnectFailed if nothing answers.

        The state changes before this returns, so commands submitted right
        after it, in the same loop turn, wait for the connection.
        """
        running = _get_running_loop()
        if self.state is State.NEW or self.state is State.CLOSED:
            # No running loop in the seed's style: connect(callback), then start it.
            self._loop = running if running is not None else current_loop()
            self.state = State.CONNECTING
            connecting = self._connecting = self._loop.create_future()
            attempt = asyncio.ensure_future(self._open_first_stream(connecting), loop=self._loop)
            attempt.add_done_callback(functools.partial(self._first_connect_done, connecting))
            return attempt
        loop = self.loop
        if (running is not None and running is not loop) or loop.is_closed():
            raise errors.WrongEventLoop(
                message="connect(): this client is connected on another event loop; "
                "close() it first, then connect() from this loop"
            )
        return asyncio.ensure_future(self._join_connect(), loop=loop)

    async def _join_connect(self) -> None:
        if self.state is State.OPEN:
            return
        if self.state is State.RECONNECTING:
            # Already connected once: the reconnect loop is on it; wait for it.
            reopened: asyncio.Future[None] = self.loop.create_future()
            self._reopen_waiters.append(reopened)
            return await reopened
        assert self._connecting is not None
        return await self._connecting

    async def _open_first_stream(self, connecting: asyncio.Future[None]) -> None:
        """One connect() attempt; ``connecting`` is what its joiners await."""
        try:
            stream = await self._open_stream()
        except Exception as exc:
            failure = errors.ConnectFailed(
                message=f"cannot connect to beanstalkd at {self.address}: {reason_text(exc)}"
            )
            self._first_connect_failed(connecting, failure)
            raise failure from exc
        if self._connecting is not connecting or self.state is not State.CONNECTING:
            # close() was called meanwhile (and maybe connect() again, which
            # made an attempt of its own): this one is void.
            stream.close()
            error = errors.NotConnected(message="client closed while connecting")
            if not connecting.done():
                connecting.set_exception(error)
                connecting.exception()
            raise error
        self._connecting = None
        self._start(stream)
        connecting.set_result(None)

    def _first_connect_done(
        self, connecting: asyncio.Future[None], attempt: asyncio.Future[None]
    ) -> None:
        if attempt.cancelled():
            # connect() itself was cancelled (maybe before it even started):
            # the client is as if it had never been asked to connect.
            self._first_connect_failed(
                connecting,
                errors.NotConnected(message=f"connecting to {self.address} was cancelled"),
            )

    def _first_connect_failed(
        self, connecting: asyncio.Future[None], failure: errors.BeanstalkException
    ) -> None:
        if self._connecting is connecting:
            self._connecting = None
            if self.state is State.CONNECTING:
                self.state = State.NEW
                self._fail_waiting(type(failure), str(failure))
                self._loop = None  # the next connect() may come from any loop
        if not connecting.done():
            connecting.set_exception(failure)
            connecting.exception()  # retrieved: the caller gets it from connect()

    def close(self) -> None:
        """Close now: stop reconnecting, fail what is owed, send nothing more.

        Always succeeds and leaves a clean state, even when the loop the
        client ran on is already closed; ``connect()`` may then be called from
        any loop.
        """
        if self.state is State.CLOSED:
            return
        self.state = State.CLOSED
        loop = self._loop
        live = loop is not None and not loop.is_closed()
        # On a closed loop, nothing can be scheduled: futures of that loop
        # are dropped (nobody can await them), and handles are cancelled quietly.
        with contextlib.suppress(RuntimeError):
            if self._reconnect_task is not None:
                self._reconnect_task.cancel()
        self._reconnect_task = None
        self._cancel_stall_timer()
        for timer in self._waiting_timers.values():
            if timer is not None:
                timer.cancel()
        self._waiting_timers = {}
        stream, self._stream = self._stream, None
        self._read_future = None
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()
        self._flush_scheduled = False
        self._unflushed = 0
        events = self.pipeline.connection_lost(
            f"connection to {self.address} closed by the client", closing=True
        )
        waiters, self._reopen_waiters = self._reopen_waiters, []
        connecting, self._connecting = self._connecting, None
        if live:
            deliver(events)
            closed = errors.NotConnected(message="client closed")
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(closed)
            if connecting is not None and not connecting.done():
                connecting.set_exception(errors.NotConnected(message="client closed"))
                connecting.exception()
        self._loop = None

    # ------------------------------------------------------------------
    # Writing.

    def _flush(self) -> None:
        """Hand everything the pipeline has to send to the stream, in one write."""
        self._flush_scheduled = False
        self._unflushed = 0
        stream = self._stream
        if stream is None:
            return
        pipeline = self.pipeline
        if self.stall_timeout is not None and pipeline.owed == 0:
            # Nothing was owed before this write: the stall clock starts now.
            self._last_progress = time.monotonic()
        data = pipeline.data_to_send()
        if not data:
            return
        try:
            stream.write(data)
        except StreamClosedError:
            self._drop(stream, f"connection to {self.address} closed while writing")

    # ------------------------------------------------------------------
    # Reading.

    def _read(self) -> None:
        """Make sure a read is under way on the current stream.

        Tornado tries a read at once (``read_into`` reads inline when bytes are
        waiting); a read completed that way is handled here, in a loop, and only
        one that has to wait for the socket is left to :meth:`_on_read`. After a
        buffer's worth of inline reads the loop gets a turn: replies arriving as
        fast as they are parsed would otherwise queue a callback per future
        answered (and hold every reply) until the whole burst is in.
        """
        budget = READ_CHUNK_SIZE
        while True:
            stream = self._stream
            if stream is None or self._read_future is not None:
                return
            try:
                read = start_read(stream, self._buffer, self._on_read)
            except Exception as exc:
                # StreamClosedError, or what closed it: an inline read can
                # raise the TLS alert itself (a refused client certificate).
                self._lost(stream, exc)
                return
            if not read.done():
                # _on_read gets it, straight from the stream's event handler.
                self._read_future = read
                return
            if not self._received(stream, read):
                return
            budget -= read.result()
            if budget <= 0:
                self.loop.call_soon(self._read)
                return

    def _on_read(self, read: asyncio.Future[int]) -> None:
        if read is not self._read_future:
            return  # a read on a stream since dropped
        self._read_future = None
        stream = self._stream
        assert stream is not None  # _drop forgets the read with the stream
        if self._received(stream, read):
            self._read()

    def _received(self, stream: IOStream, read: asyncio.Future[int]) -> bool:
        """Answer the commands whose replies a completed read brought.

        Returns whether to read on at once. Not when the stream is gone, nor when
        nothing is owed any more: the next read then starts one loop turn later,
        after the callers just woken have sent their next commands, so that its
        inline attempt can find their replies instead of nothing.
        """
        error = read.exception()
        if error is not None:
            self._lost(stream, error)
            return False
        now = self.last_received = time.monotonic()
        if self.stall_timeout is not None:
            self._last_progress = now
        pipeline = self.pipeline
        try:
            events = pipeline.receive_data(self._view[: read.result()].tobytes())
        except ProtocolError as exc:
            # Replies framed before the garbage answered commands the server
            # did run: deliver them, then give up on the stream.
            deliver(exc.events)
            self._drop(
                stream,
                f"reply from {self.address} out of sync: {exc}",
                failure=errors.UnexpectedResponse,
            )
            return False
        for future, succeeded, value in events:
            if succeeded:
                future.set_result(value)
            else:
                future.set_exception(value)
        if pipeline.has_data_to_send and not self._flush_scheduled:
            # The pipeline answered a reply on its own (giving a job back).
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)
        if pipeline.owed:
            return True  # more replies owed: keep reading
        self.loop.call_soon(self._read)
        return False

    def _lost(self, stream: IOStream, exc: BaseException) -> None:
        real_error = exc.real_error if isinstance(exc, StreamClosedError) else exc
        if real_error is None and stream.error is not None and stream.error is not exc:
            real_error = stream.error
        reason = reason_text(real_error) if real_error else "closed by the server"
        self._drop(stream, f"connection to {self.address} lost: {reason}")

    # ------------------------------------------------------------------
    # Connection life.

    async def _open_stream(self) -> IOStream:
        path = unix_socket_path(self.host)
        if path is None:
            stream = await TCPClient().connect(
                self.host,
                self.port,
                ssl_options=self.ssl_context,
                timeout=self.connect_timeout,
            )
            if stream.closed():
                # Closed during the handshake's last steps (a TLS terminator
                # refusing us as soon as the handshake ends): say why.
                raise stream.error or StreamClosedError()
            # Lock-step callers wait on every reply; Nagle would add 40 ms each.
            stream.set_nodelay(True)
            if self.keepalive is not None:
                set_keepalive(stream.socket, self.keepalive)
            return stream
        stream = IOStream(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
        try:
            await asyncio.wait_for(stream.connect(path), self.connect_timeout)
        except BaseException:
            stream.close()
            raise
        return stream

    def _start(self, stream: IOStream) -> None:
        """Adopt a fresh stream: restore the session, then send what waited."""
        self._stream = stream
        self.state = State.OPEN
        self._buffer = bytearray(READ_CHUNK_SIZE)
        self._view = memoryview(self._buffer)
        self._read_future = None
        timers, self._waiting_timers = self._waiting_timers, {}
        for timer in timers.values():
            if timer is not None:
                timer.cancel()
        self.pipeline.connection_made()
        if self.pipeline.has_data_to_send and not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)
        self.loop.call_soon(self._read)
        if self.stall_timeout is not None:
            self._schedule_stall_check()
        waiters, self._reopen_waiters = self._reopen_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _drop(
        self,
        stream: IOStream,
        reason: str,
        failure: type[errors.BeanstalkException] = errors.ConnectionLost,
    ) -> None:
        """The single place a connection ends, whatever ended it."""
        if stream is not self._stream:
            return  # an old stream, already handled
        self._stream = None
        self._read_future = None  # Tornado fails it on close; _on_read ignores it
        stream.close()
        self._last_loss = reason
        self._cancel_stall_timer()
        self._unflushed = 0
        deliver(self.pipeline.connection_lost(reason, failure))
        if self.state is State.CLOSED:
            return
        if self.reconnect_backoff is None:
            logger.warning("%s; reconnecting every %ss", reason, self.reconnect_interval)
        else:
            logger.warning("%s; reconnecting with backoff", reason)
        self.state = State.RECONNECTING
        for future in self.pipeline.unsent_tokens():
            self._wait(future)
        self._reconnect_task = self.loop.create_task(self._reconnect_loop())
        if self.disconnect_callback is not None:
            run_callback(self.disconnect_callback, "disconnect", reason)

    async def _reconnect_loop(self) -> None:
        attempt = 0
        backoff = self.reconnect_backoff
        while self.state is State.RECONNECTING:
            await asyncio.sleep(
                self.reconnect_interval if backoff is None else backoff.delay(attempt + 1)
            )
            if self.state is not State.RECONNECTING:
                return
            attempt += 1
            try:
                stream = await self._open_stream()
            except Exception as exc:
                logger.info(
                    "reconnect attempt %d to %s failed: %s", attempt, self.address, reason_text(exc)
                )
                continue
            if self.state is not State.RECONNECTING:
                stream.close()
                return
            self._reconnect_task = None
            self._start(stream)
            logger.warning("reconnected to %s after %d attempt(s)", self.address, attempt)
            if self.reconnect_callback is not None:
                run_callback(self.reconnect_callback, "reconnect")
            return

    def withdraw(self, future: asyncio.Future[Any], reason: str) -> bool:
        """Fail ``future``'s command with NotConnected if never written (see Client.withdraw)."""
        if future.done() or not self.pipeline.discard(future):
            return False
        future.set_exception(errors.NotConnected(message=f"not sent: {reason}"))
        return True

    def abort(self, reason: str) -> bool:
        """Treat the open connection as lost now; False if none is open (see Client.abort)."""
        stream = self._stream
        if stream is None or self.state is not State.OPEN:
            return False
        self._drop(stream, reason)
        return True

    # ------------------------------------------------------------------
    # Waiting while disconnected.

    def _wait(self, future: asyncio.Future[Any]) -> None:
        """``future``'s command waits for a connection: bound the wait, forget it if abandoned."""
        if future in self._waiting_timers:
            return
        timer = None
        if self.disconnected_timeout is not None:
            timer = self.loop.call_later(self.disconnected_timeout, self._expire_waiting, future)
        self._waiting_timers[future] = timer
        future.add_done_callback(self._waiting_done)

    def _waiting_done(self, future: asyncio.Future[Any]) -> None:
        # Cancelled or expired while waiting: it leaves the pipeline now, with
        # its bytes (answered normally: it left already, and this is a no-op).
        self.pipeline.discard(future)
        timer = self._waiting_timers.pop(future, None)
        if timer is not None:
            timer.cancel()

    def _expire_waiting(self, future: asyncio.Future[Any]) -> None:
        self._waiting_timers.pop(future, None)
        if future.done():
            return
        self.pipeline.discard(future)
        why = f" ({self._last_loss})" if self._last_loss else ""
        future.set_exception(
            errors.NotConnected(
                message=f"not sent: no connection to {self.address} "
                f"within {self.disconnected_timeout}s{why}",
            )
        )

    def _fail_waiting(self, kind: type[errors.BeanstalkException], message: str) -> None:
        """Fail every command waiting for the first connection (it failed)."""
        for future in self.pipeline.unsent_tokens():
            self.pipeline.discard(future)
            if not future.done():
                future.set_exception(kind(message=message))

    def _not_connected_error(
        self, spec: CommandSpec[Any], line: Optional[bytes]
    ) -> errors.NotConnected:
        why = "closed" if self.state is State.CLOSED else "not connected; call connect() first"
        command = describe_command(spec, line)
        return errors.NotConnected(command=command, message=f"{command!r} not sent: client {why}")

    # ------------------------------------------------------------------
    # Stall guard.

    def _schedule_stall_check(self) -> None:
        assert self.stall_timeout is not None
        interval = max(0.05, self.stall_timeout / 4)
        self._stall_timer = self.loop.call_later(interval, self._check_stall)

    def _cancel_stall_timer(self) -> None:
        if self._stall_timer is not None:
            with contextlib.suppress(RuntimeError):
                self._stall_timer.cancel()
            self._stall_timer = None

    def _check_stall(self) -> None:
        self._stall_timer = None
        stream = self._stream
        if stream is None or self.stall_timeout is None:
            return
        allowed = self.pipeline.allowed_silence(self.stall_timeout)
        if allowed is not None:
            silent = time.monotonic() - self._last_progress
            if silent > allowed:
                owed = self.pipeline.owed
                self._drop(
                    stream,
                    f"{self.address} sent nothing for {silent:.1f}s "
                    f"while {owed} repl{'y was' if owed == 1 else 'ies were'} owed",
                )
                return
        self._schedule_stall_check()

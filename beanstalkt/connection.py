"""The one I/O layer: a Tornado IOStream carrying pipelined commands.

Everything protocol-shaped is delegated to :mod:`beanstalkt.protocol`; this
module only moves bytes and keeps order:

* a command issued while nothing is owed is written at once (a lock-step
  caller never waits a loop turn for its own write); any other is appended to
  an outgoing buffer that is written once per event loop turn (so a burst of
  thousands of commands costs one ``write``); every command's future joins
  ``pending``, the FIFO of replies the server owes us;
* one reader per stream, plain callbacks on Tornado's ``read_into`` futures
  (no task of its own), feeds the parser and resolves ``pending`` in order;
* the loss of a stream is handled in one place, :meth:`Connection._drop`:
  what was written fails with :class:`~beanstalkt.errors.ConnectionLost`,
  what was never written waits, and the reconnect loop starts;
* on every (re)connect the :class:`Session` (used tube, watch list) is
  re-established *before* any waiting command is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import socket
import time
from collections import deque
from collections.abc import Awaitable, Iterable
from typing import Any, Callable, Optional, Union

from tornado.iostream import IOStream, StreamClosedError
from tornado.tcpclient import TCPClient

from . import errors
from .protocol import (
    COMMANDS,
    CommandSpec,
    ProtocolError,
    Reply,
    ReplyParser,
    check_tube_name,
    encode_command,
    interpret,
)

logger = logging.getLogger("beanstalkt")

#: Seconds between reconnection attempts after the connection is lost.
RECONNECT_TIMEOUT = 1.0

# Large reads let one wake-up parse hundreds of replies.
READ_CHUNK_SIZE = 256 * 1024

# A burst is written out as soon as this many bytes of it are buffered,
# instead of waiting for the end of the loop turn.
FLUSH_THRESHOLD = 256 * 1024

ReconnectCallback = Callable[[], Union[Awaitable[None], None]]

_USE = COMMANDS["use"]
_WATCH = COMMANDS["watch"]
_IGNORE = COMMANDS["ignore"]
_SESSION_SPECS = frozenset({_USE, _WATCH, _IGNORE})
_RESERVE = COMMANDS["reserve"]


class State(enum.Enum):
    """Where a connection is in its life."""

    NEW = "new"  # connect() not called yet
    CONNECTING = "connecting"  # first connect() under way
    OPEN = "open"
    RECONNECTING = "reconnecting"  # lost after a successful connect; retrying
    CLOSED = "closed"  # close() called


class Session:
    """The per-connection server state a client relies on: used tube and watch list.

    It follows the replies of successful ``use``/``watch``/``ignore`` commands
    (not the commands themselves: a command whose reply never came may not have
    happened) and yields the commands that rebuild it on a fresh connection.
    """

    def __init__(self, use: str = "default", watch: Iterable[str] = ("default",)) -> None:
        self.used_tube = use
        self.watched_tubes: list[str] = list(dict.fromkeys(watch))

    def observe(self, spec: CommandSpec, command_line: bytes) -> None:
        """Record the effect of a successful session command."""
        tube = command_line.split()[1].decode("ascii")
        if spec is _USE:
            self.used_tube = tube
        elif spec is _WATCH:
            if tube not in self.watched_tubes:
                self.watched_tubes.append(tube)
        elif tube in self.watched_tubes:
            self.watched_tubes.remove(tube)

    def restore_commands(self) -> list[tuple[CommandSpec, bytes]]:
        """Commands that turn a fresh connection's defaults into this session."""
        commands = []
        if self.used_tube != "default":
            commands.append((_USE, encode_command(b"use", check_tube_name(self.used_tube))))
        for tube in self.watched_tubes:
            if tube != "default":
                commands.append((_WATCH, encode_command(b"watch", check_tube_name(tube))))
        if "default" not in self.watched_tubes:
            commands.append((_IGNORE, b"ignore default\r\n"))
        return commands


# A command whose bytes were buffered or written and whose reply is owed:
# (future, spec, command line or None). Tuples keep the hot path cheap.
PendingCommand = tuple["asyncio.Future[Any]", CommandSpec, Optional[bytes]]
# A command issued while disconnected: it also keeps its bytes and the timer
# that fails it after ``disconnected_timeout``.
WaitingCommand = tuple[
    "asyncio.Future[Any]", CommandSpec, Optional[bytes], bytes, Optional[asyncio.TimerHandle]
]


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
        session: Session,
        encoding: Optional[str] = None,
        connect_timeout: Optional[float] = None,
        reconnect_interval: float = RECONNECT_TIMEOUT,
        disconnected_timeout: Optional[float] = None,
        stall_timeout: Optional[float] = None,
    ) -> None:
        self.host = host
        self.port = port
        self.session = session
        self.encoding = encoding
        self.connect_timeout = connect_timeout
        self.reconnect_interval = reconnect_interval
        self.disconnected_timeout = disconnected_timeout
        self.stall_timeout = stall_timeout
        self.reconnect_callback: Optional[ReconnectCallback] = None
        self.state = State.NEW

        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stream: Optional[IOStream] = None
        self._parser = ReplyParser()
        # Bytes not yet handed to the stream. Each entry belongs to one of the
        # *last* len(_outgoing) entries of _pending, which is how a lost
        # connection tells commands never sent from commands with unknown fate.
        self._outgoing: list[bytes] = []
        # Roughly how many bytes _outgoing holds (only a trigger for early writes).
        self._outgoing_bytes = 0
        self._flush_scheduled = False
        self._pending: deque[PendingCommand] = deque()
        self._waiting: deque[WaitingCommand] = deque()
        self._connecting: Optional[asyncio.Future[None]] = None
        self._reconnect_task: Optional[asyncio.Task[None]] = None
        self._stall_timer: Optional[asyncio.TimerHandle] = None
        # connect() calls made while reconnecting, resolved by the next _start.
        self._reopen_waiters: list[asyncio.Future[None]] = []
        # When the head of _pending last made progress (for the stall guard;
        # kept up to date only while there is one).
        self._last_progress = 0.0
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
        return self.host if self._unix_path else f"{self.host}:{self.port}"

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the connection's futures belong to."""
        if self._loop is None:
            self._loop = _current_loop()
        return self._loop

    @property
    def in_flight(self) -> int:
        """Commands sent or buffered whose replies have not arrived."""
        return len(self._pending)

    def submit(
        self, spec: CommandSpec, data: bytes, command_line: Optional[bytes]
    ) -> asyncio.Future[Any]:
        """Queue one encoded command; return the future of its result (FIFO order)."""
        loop = self.loop
        future: asyncio.Future[Any] = loop.create_future()
        if self.state is State.OPEN:
            pending = self._pending
            pending.append((future, spec, command_line))
            if len(pending) == 1:
                # Nothing else is owed, so nothing can join this write: a
                # lock-step caller would only wait a loop turn for it. It never
                # enters _outgoing: handed to the stream, it counts as sent.
                stream = self._stream
                assert stream is not None  # OPEN always has one
                if self.stall_timeout is not None:
                    self._last_progress = time.monotonic()
                self._write(stream, data)
            else:
                self._outgoing.append(data)
                self._outgoing_bytes += len(data)
                if self._outgoing_bytes >= FLUSH_THRESHOLD:
                    # A long burst: let the server start on it now, and never
                    # hold all of it twice (as parts and as one joined copy).
                    self._write_outgoing()
                elif not self._flush_scheduled:
                    self._flush_scheduled = True
                    loop.call_soon(self._flush)
        elif self.state is State.CONNECTING or self.state is State.RECONNECTING:
            self._wait(future, spec, command_line, data)
        else:
            future.set_exception(self._not_connected_error(spec, command_line))
        return future

    def connect(self) -> asyncio.Future[None]:
        """Open the connection; fail fast with ConnectFailed if nothing answers.

        The state changes before this returns, so commands submitted right
        after it, in the same loop turn, wait for the connection.
        """
        if self.state is State.NEW or self.state is State.CLOSED:
            # No running loop in the seed's style: connect(callback), then start it.
            with contextlib.suppress(RuntimeError):
                self._loop = asyncio.get_running_loop()
            self.state = State.CONNECTING
            connecting = self._connecting = self.loop.create_future()
            return asyncio.ensure_future(self._open_first_stream(connecting), loop=self.loop)
        return asyncio.ensure_future(self._join_connect(), loop=self.loop)

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
                message=f"cannot connect to beanstalkd at {self.address}: {_reason(exc)}"
            )
            if self._connecting is connecting:
                self._connecting = None
                if self.state is State.CONNECTING:
                    self.state = State.NEW
                    self._fail_waiting(failure)
            connecting.set_exception(failure)
            connecting.exception()  # retrieved: the caller gets it raised below
            raise failure from exc
        if self._connecting is not connecting or self.state is not State.CONNECTING:
            # close() was called meanwhile (and maybe connect() again, which
            # made an attempt of its own): this one is void.
            stream.close()
            error = errors.NotConnected(message="client closed while connecting")
            connecting.set_exception(error)
            connecting.exception()
            raise error
        self._connecting = None
        self._start(stream)
        connecting.set_result(None)

    def close(self) -> None:
        """Close now: stop reconnecting, fail what is owed, send nothing more."""
        if self.state is State.CLOSED:
            return
        self.state = State.CLOSED
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            self._reconnect_task = None
        if self._stream is not None:
            self._drop(self._stream, f"connection to {self.address} closed by the client")
        self._fail_waiting(errors.NotConnected(message="client closed"))
        waiters, self._reopen_waiters = self._reopen_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(errors.NotConnected(message="client closed"))

    # ------------------------------------------------------------------
    # Writing.

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._write_outgoing()

    def _write_outgoing(self) -> None:
        """Hand everything buffered to the stream in one write."""
        outgoing = self._outgoing
        stream = self._stream
        if not outgoing or stream is None:
            return
        if self.stall_timeout is not None and len(outgoing) == len(self._pending):
            # Nothing was owed before this write: the stall clock starts now.
            self._last_progress = time.monotonic()
        data = outgoing[0] if len(outgoing) == 1 else b"".join(outgoing)
        self._outgoing = []
        self._outgoing_bytes = 0
        self._write(stream, data)

    def _write(self, stream: IOStream, data: bytes) -> None:
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
                read: asyncio.Future[int] = stream.read_into(  # type: ignore[assignment]
                    self._buffer, partial=True
                )
            except StreamClosedError as exc:
                self._lost(stream, exc)
                return
            if not read.done():
                self._read_future = read
                read.add_done_callback(self._on_read)
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
        if self.stall_timeout is not None:
            self._last_progress = time.monotonic()
        pending = self._pending
        try:
            try:
                replies = self._parser.feed(self._view[: read.result()].tobytes())
            except ProtocolError as exc:
                # Replies framed before the garbage answered commands the
                # server did run: deliver them, then give up on the stream.
                replies = exc.replies
                exc.replies = []
                self._deliver(replies, pending, self.encoding)
                raise
            self._deliver(replies, pending, self.encoding)
        except ProtocolError as exc:
            self._drop(
                stream,
                f"reply from {self.address} out of sync: {exc}",
                failure=errors.UnexpectedResponse,
            )
            return False
        if len(pending) > len(self._outgoing):
            return True  # more replies owed: keep reading
        self.loop.call_soon(self._read)
        return False

    def _lost(self, stream: IOStream, exc: BaseException) -> None:
        real_error = exc.real_error if isinstance(exc, StreamClosedError) else exc
        reason = _reason(real_error) if real_error else "closed by the server"
        self._drop(stream, f"connection to {self.address} lost: {reason}")

    def _deliver(
        self, replies: list[Reply], pending: deque[PendingCommand], encoding: Optional[str]
    ) -> None:
        """Answer the oldest pending commands with ``replies``, in order."""
        unsent = len(self._outgoing)  # nothing below writes: fixed meanwhile
        for reply in replies:
            if len(pending) <= unsent:
                raise ProtocolError(f"reply {reply.status!r} to no command")
            future, spec, command_line = pending.popleft()
            try:
                value = interpret(spec, reply, command_line, encoding)
            except errors.BeanstalkException as exc:
                if not future.done():
                    future.set_exception(exc)
                continue
            if spec in _SESSION_SPECS:
                self.session.observe(spec, command_line)  # type: ignore[arg-type]
            if not future.done():
                future.set_result(value)

    # ------------------------------------------------------------------
    # Connection life.

    @property
    def _unix_path(self) -> Optional[str]:
        return self.host[len("unix:") :] if self.host.startswith("unix:") else None

    async def _open_stream(self) -> IOStream:
        path = self._unix_path
        if path is None:
            stream = await TCPClient().connect(self.host, self.port, timeout=self.connect_timeout)
            # Lock-step callers wait on every reply; Nagle would add 40 ms each.
            stream.set_nodelay(True)
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
        self._parser.reset()
        self._buffer = bytearray(READ_CHUNK_SIZE)
        self._view = memoryview(self._buffer)
        self._read_future = None
        for spec, data in self.session.restore_commands():
            future = self.loop.create_future()
            future.add_done_callback(_log_restore_failure)
            self._outgoing.append(data)
            self._pending.append((future, spec, data))
        waiting, self._waiting = self._waiting, deque()
        for future, spec, command_line, data, timer in waiting:
            if timer is not None:
                timer.cancel()
            if not future.done():
                self._outgoing.append(data)
                self._pending.append((future, spec, command_line))
        if self._outgoing and not self._flush_scheduled:
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
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        pending, self._pending = self._pending, deque()
        unsent_data, self._outgoing = self._outgoing, []
        self._parser.reset()
        # Commands whose bytes never left our buffer can safely wait for the
        # next connection; the rest were written and their outcome is unknown.
        unsent = [pending.pop() for _ in unsent_data]
        unsent.reverse()
        carried: list[tuple[PendingCommand, bytes]] = []
        for entry, data in zip(unsent, unsent_data):
            future, spec, command_line = entry
            if spec.acts_on_reservation and not future.done():
                # Never sent, but about a reservation that just ended: replaying
                # it on the next connection could delete a job another worker
                # now holds, so it fails like the written ones.
                future.set_exception(
                    failure(
                        command=_command_text(spec, command_line),
                        message=f"{reason}; {_command_text(spec, command_line)!r} not sent: "
                        "the job's reservation ended with the connection",
                    )
                )
            else:
                carried.append((entry, data))
        for future, spec, command_line in pending:
            if not future.done():
                future.set_exception(
                    failure(
                        command=_command_text(spec, command_line),
                        message=f"{reason}; outcome of "
                        f"{_command_text(spec, command_line)!r} unknown",
                    )
                )
        if self.state is State.CLOSED:
            for (future, spec, command_line), _data in carried:
                if not future.done():
                    future.set_exception(self._not_connected_error(spec, command_line))
            return
        logger.warning("%s; reconnecting every %ss", reason, self.reconnect_interval)
        self.state = State.RECONNECTING
        for (future, spec, command_line), data in reversed(carried):
            self._wait(future, spec, command_line, data, front=True)
        self._reconnect_task = self.loop.create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        attempt = 0
        while self.state is State.RECONNECTING:
            await asyncio.sleep(self.reconnect_interval)
            if self.state is not State.RECONNECTING:
                return
            attempt += 1
            try:
                stream = await self._open_stream()
            except Exception as exc:
                logger.info(
                    "reconnect attempt %d to %s failed: %s", attempt, self.address, _reason(exc)
                )
                continue
            if self.state is not State.RECONNECTING:
                stream.close()
                return
            self._reconnect_task = None
            self._start(stream)
            logger.warning("reconnected to %s after %d attempt(s)", self.address, attempt)
            self._run_reconnect_callback()
            return

    def _run_reconnect_callback(self) -> None:
        callback = self.reconnect_callback
        if callback is None:
            return
        try:
            outcome = callback()
        except Exception:
            logger.exception("reconnect callback failed")
            return
        if outcome is not None:
            task = asyncio.ensure_future(outcome)
            task.add_done_callback(_log_callback_failure)

    # ------------------------------------------------------------------
    # Waiting while disconnected.

    def _wait(
        self,
        future: asyncio.Future[Any],
        spec: CommandSpec,
        command_line: Optional[bytes],
        data: bytes,
        front: bool = False,
    ) -> None:
        timer = None
        if self.disconnected_timeout is not None:
            timer = self.loop.call_later(
                self.disconnected_timeout, self._expire_waiting, future, spec, command_line
            )
        entry = (future, spec, command_line, data, timer)
        if front:
            self._waiting.appendleft(entry)
        else:
            self._waiting.append(entry)

    def _expire_waiting(
        self, future: asyncio.Future[Any], spec: CommandSpec, command_line: Optional[bytes]
    ) -> None:
        # The entry stays in _waiting; _start skips futures that are done.
        if not future.done():
            future.set_exception(
                errors.NotConnected(
                    command=_command_text(spec, command_line),
                    message=f"{_command_text(spec, command_line)!r} not sent: no connection to "
                    f"{self.address} within {self.disconnected_timeout}s",
                )
            )

    def _fail_waiting(self, error: errors.BeanstalkException) -> None:
        waiting, self._waiting = self._waiting, deque()
        for future, spec, command_line, _data, timer in waiting:
            if timer is not None:
                timer.cancel()
            if not future.done():
                future.set_exception(
                    type(error)(command=_command_text(spec, command_line), message=str(error))
                )

    def _not_connected_error(
        self, spec: CommandSpec, command_line: Optional[bytes]
    ) -> errors.NotConnected:
        why = "closed" if self.state is State.CLOSED else "not connected; call connect() first"
        return errors.NotConnected(
            command=_command_text(spec, command_line),
            message=f"{_command_text(spec, command_line)!r} not sent: client {why}",
        )

    # ------------------------------------------------------------------
    # Stall guard.

    def _schedule_stall_check(self) -> None:
        assert self.stall_timeout is not None
        interval = max(0.05, self.stall_timeout / 4)
        self._stall_timer = self.loop.call_later(interval, self._check_stall)

    def _check_stall(self) -> None:
        self._stall_timer = None
        stream = self._stream
        if stream is None or self.stall_timeout is None:
            return
        written = len(self._pending) - len(self._outgoing)
        if written > 0:
            allowed = _allowed_silence(self._pending[0], self.stall_timeout)
            silent = time.monotonic() - self._last_progress
            if silent > allowed:
                self._drop(
                    stream,
                    f"{self.address} sent nothing for {silent:.1f}s "
                    f"while {written} repl{'y was' if written == 1 else 'ies were'} owed",
                )
                return
        self._schedule_stall_check()


def _allowed_silence(head: PendingCommand, stall_timeout: float) -> float:
    """How long the server may stay silent with ``head`` first in line."""
    _future, spec, command_line = head
    if spec is _RESERVE:
        return float("inf")  # waits for a job as long as it takes
    if spec.blocking and command_line is not None:
        # reserve-with-timeout <seconds>: silent for up to that long, by design.
        return stall_timeout + int(command_line.split()[1])
    return stall_timeout


def _current_loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        # Called before the loop runs (the original callback style:
        # client.connect(cb); IOLoop.current().start()): use Tornado's current loop.
        from tornado.ioloop import IOLoop

        return IOLoop.current().asyncio_loop  # type: ignore[attr-defined,no-any-return]


def _command_text(spec: CommandSpec, command_line: Optional[bytes]) -> str:
    if command_line is None:
        return spec.name.decode("ascii")
    return command_line.rstrip(b"\r\n").decode("ascii", "replace")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, StreamClosedError) and exc.real_error is not None:
        # Tornado wraps the OS error ("Connection refused") in "Stream is closed".
        return _reason(exc.real_error)
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timed out"
    text = str(exc)
    return text or type(exc).__name__


def _log_restore_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("restoring the session failed: %s", future.exception())


def _log_callback_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("reconnect callback failed: %s", future.exception())

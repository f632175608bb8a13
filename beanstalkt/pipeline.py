"""The rules of a pipelined beanstalkd connection, as a pure state machine (no sockets).

:class:`Pipeline` is to a beanstalkt connection what h11's ``Connection`` is to
an HTTP one: commands go in (:meth:`~Pipeline.send`), bytes to write come out
(:meth:`~Pipeline.data_to_send`), received bytes go in
(:meth:`~Pipeline.receive_data`) and come back as results for the callers, and
the end of a connection is one call (:meth:`~Pipeline.connection_lost`). The
I/O layer (``beanstalkt/connection.py``) only reads, writes, keeps time and
reconnects; every rule that decides *correctness* lives here, where it is
tested with byte strings:

* **FIFO**: replies answer commands in the order their bytes were written.
* **The tube on the wire**: commands that act on "the used tube" (``put``,
  ``peek-ready``, ``kick``...) carry the tube they are meant for; a ``use`` is
  written in front of one only when the connection is on another tube. So a
  ``put(tube=...)`` from one coroutine never changes where another coroutine's
  plain ``put`` lands.
* **Cancellation**: a command whose caller gave up (its token is *abandoned*)
  is not written if it was still unsent; a job that arrives for an abandoned
  ``reserve`` is released at once with its own priority; an abandoned blocking
  ``reserve`` still owed at the tail is *adopted* by the next ``reserve``
  instead of piling up a second one on the server.
* **Reservations know their connection**: each connection is a new
  :class:`Reservation` generation; a reserved :class:`~beanstalkt.Job` carries
  it, and a ``delete``/``release``/``bury``/``touch`` of a job reserved on a
  connection since lost raises :class:`~beanstalkt.errors.ReservationLost`
  without sending anything.
* **A lost connection**: what was written fails (its outcome is unknown); what
  was never written waits for the next connection, except commands about a
  reservation, which ended with the connection.
* **The session**: the watch list as the server confirmed it, restored first
  on a new connection.
* **Memory**: the bytes of commands not yet answered are bounded
  (``max_pending_bytes``); past the bound :meth:`Pipeline.send` refuses.

Tokens are the callers' handles (futures, in the I/O layer); the pipeline
never looks inside them except through the ``is_abandoned`` predicate it is
given.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Optional, Union

from . import errors
from .models import Job
from .models import Reservation as Reservation  # its home was here: the old import keeps working
from .protocol import (
    COMMANDS,
    CommandSpec,
    ProtocolError,
    ReplyParser,
    check_tube_name,
    describe_command,
    encode_command,
    interpret,
)

logger = logging.getLogger("beanstalkt")

#: Default bound on the bytes of commands not yet answered (written or waiting).
DEFAULT_MAX_PENDING_BYTES = 64 * 1024 * 1024

_USE = COMMANDS["use"]
_WATCH = COMMANDS["watch"]
_IGNORE = COMMANDS["ignore"]
_RESERVE = COMMANDS["reserve"]
_RESERVE_WITH_TIMEOUT = COMMANDS["reserve-with-timeout"]
_STATS_JOB = COMMANDS["stats-job"]
_RELEASE = COMMANDS["release"]
_PUT = COMMANDS["put"]

# A run of successful put replies, as a batch put gets them by the thousand.
_INSERTED_RUN = re.compile(rb"(?:INSERTED [0-9]{1,20}\r\n)+")

#: One result for a caller: (token, succeeded, value or exception).
Event = tuple[Any, bool, Any]
#: One result of a batch put: the new job's id, or why that job failed.
BatchResult = Union[int, errors.BeanstalkException]


class _Internal:
    """The token of a command the pipeline sends on its own (session restore,
    giving back an abandoned job); ``on_reply(succeeded, value)`` gets its result."""

    __slots__ = ("on_reply",)

    def __init__(self, on_reply: Callable[[bool, Any], None]) -> None:
        self.on_reply = on_reply


class Sequence:
    """Commands that go out together on one connection, or not at all.

    Made by :meth:`Pipeline.begin_sequence`; every command sent with it is
    written in the same write as the others (the I/O layer holds its writes
    until the sequence ends), and none of them is ever sent on another
    connection than the one it began on: if that connection is lost before a
    command of the sequence was written, the command fails with
    :class:`~beanstalkt.errors.NotConnected` instead of waiting for the next
    connection (where a ``reserve-job`` by id could take a stranger's job). A
    command of the sequence refused at :meth:`Pipeline.send` (``BufferFull``,
    ``ReservationLost``...) breaks it: the commands queued before it are taken
    back, never sent, and those after it are refused.
    """

    __slots__ = ("error", "reservation", "tokens")

    def __init__(self, reservation: Optional[Reservation]) -> None:
        #: The connection generation the sequence belongs to (None: none was open).
        self.reservation = reservation
        #: Why the sequence is broken (every later command is refused with it).
        self.error: Optional[errors.BeanstalkException] = None
        self.tokens: list[Any] = []


class _Entry:
    """One command from the moment it is sent until it is answered or failed."""

    __slots__ = (
        "batch",
        "data",
        "line",
        "remaining",
        "reservation",
        "sequence",
        "sets_tube",
        "size",
        "spec",
        "timeout",
        "token",
        "tube",
    )

    def __init__(
        self,
        token: Any,
        spec: CommandSpec[Any],
        data: bytes,
        line: Optional[bytes],
        tube: Optional[str],
        sets_tube: Optional[str] = None,
        reservation: Optional[Reservation] = None,
        sequence: Optional[Sequence] = None,
        timeout: int = 0,
        batch: Optional[list[BatchResult]] = None,
        remaining: int = 1,
    ) -> None:
        # Every field is set here, once: an entry is made per command.
        self.token = token
        self.spec = spec
        self.data = data
        self.line = line
        # The tube the connection must be using when this command runs.
        self.tube = tube
        self.size = len(data)
        # ``use NAME``: the tube the connection uses after this command.
        self.sets_tube = sets_tube
        self.reservation = reservation
        # The sequence this command belongs to (never sent on another connection).
        self.sequence = sequence
        # reserve-with-timeout: its timeout, for the stall guard.
        self.timeout = timeout
        # A batch put: one result per job, and how many replies are still owed.
        self.batch = batch
        self.remaining = remaining

    def describe(self) -> str:
        return describe_command(self.spec, self.line)


def _never_abandoned(token: Any) -> bool:
    return False


class Pipeline:
    """The state of one client's pipelined conversation with one server, across reconnects.

    :param encoding: decode job bodies to ``str`` with it (``None``: bytes).
    :param use: the client's own tube, where plain ``put`` goes.
    :param watch: the tubes to watch (instead of ``default``).
    :param is_abandoned: tells whether a token's caller has given up (a
        cancelled or already-failed future); such commands are not written, and
        their jobs are given back.
    :param max_pending_bytes: bound on the bytes of commands sent and not yet
        answered plus those waiting to be written (``None``: no bound).
    :param address: the server, for messages.
    """

    def __init__(
        self,
        *,
        encoding: Optional[str] = None,
        use: str = "default",
        watch: Iterable[str] = ("default",),
        is_abandoned: Callable[[Any], bool] = _never_abandoned,
        max_pending_bytes: Optional[int] = DEFAULT_MAX_PENDING_BYTES,
        address: str = "beanstalkd",
    ) -> None:
        self.encoding = encoding
        #: The client's own tube: where commands without ``tube=`` act.
        self.used_tube = use
        #: The watch list, as the server last confirmed it.
        self.watched_tubes: list[str] = list(dict.fromkeys(watch))
        self.max_pending_bytes = max_pending_bytes
        self.address = address
        self._is_abandoned = is_abandoned
        self._parser = ReplyParser()
        # Written, reply owed, oldest first.
        self._written: deque[_Entry] = deque()
        # Not written yet, in send order. A dict: a cancelled or expired entry
        # leaves in O(1), with its bytes, instead of waiting to be skipped.
        self._unsent: dict[Any, _Entry] = {}
        self._pending_bytes = 0
        # The tube the connection will be using once everything written has
        # run (None: unknown, e.g. before a connection).
        self._wire_tube: Optional[str] = None
        self._reservation: Optional[Reservation] = None
        # Jobs being given back whose release is not queued yet (a reserve
        # waits until then: see data_to_send).
        self._giving_back = 0

    # ------------------------------------------------------------------
    # State, for the I/O layer and for messages.

    @property
    def connected(self) -> bool:
        """True between :meth:`connection_made` and :meth:`connection_lost`."""
        return self._reservation is not None

    @property
    def owed(self) -> int:
        """Commands written whose replies have not arrived."""
        return len(self._written)

    @property
    def in_flight(self) -> int:
        """Commands not answered yet: written (:attr:`owed`), or waiting to be written.

        The same count as :attr:`beanstalkt.Client.in_flight`.
        """
        return len(self._written) + len(self._unsent)

    @property
    def pending(self) -> int:
        """The old name of :attr:`in_flight`."""
        return self.in_flight

    @property
    def pending_bytes(self) -> int:
        """Bytes of the commands not answered yet (what ``max_pending_bytes`` bounds)."""
        return self._pending_bytes

    @property
    def has_data_to_send(self) -> bool:
        """True when :meth:`data_to_send` would return bytes (or skip abandoned ones)."""
        return bool(self._unsent)

    @property
    def reservation(self) -> Optional[Reservation]:
        """The current connection's reservation generation (``None`` when disconnected)."""
        return self._reservation

    # ------------------------------------------------------------------
    # Commands in.

    def send(
        self,
        token: Any,
        spec: CommandSpec[Any],
        data: bytes,
        line: Optional[bytes] = None,
        tube: Optional[str] = None,
        reservation: Optional[Reservation] = None,
        timeout: int = 0,
        batch: int = 0,
        sequence: Optional[Sequence] = None,
    ) -> None:
        """Queue one encoded command for ``token``.

        ``line`` is the command line (without body) for messages. ``tube`` is
        for commands that act on the used tube (``spec.uses_tube``): the tube
        to act on, by default the client's own. ``reservation`` is the
        reservation of the job a ``delete``/``release``/``bury``/``touch`` is
        about, when the caller passed a :class:`~beanstalkt.Job`. ``batch`` is
        the number of ``put`` commands in ``data`` (a batch put). ``sequence``
        (from :meth:`begin_sequence`) makes the command part of it.

        Raises :class:`~beanstalkt.errors.ReservationLost` for a job reserved
        on a connection since lost, :class:`~beanstalkt.errors.BufferFull`
        past ``max_pending_bytes``, and the sequence's error for a command of
        a broken sequence; nothing is queued then (see :meth:`break_sequence`).
        """
        if sequence is not None:
            self._check_sequence(sequence, spec, line)
        if reservation is not None:
            self._check_reservation(reservation, spec, line)
        size = len(data)
        limit = self.max_pending_bytes
        if limit is not None and self._pending_bytes + size > limit:
            self._refuse(spec, line, size, limit)
        sets_tube = None
        if spec.uses_tube:
            if tube is None:
                tube = self.used_tube
        elif spec is _USE:
            assert tube is not None, "use needs its tube"
            sets_tube = self.used_tube = tube
            tube = None
        else:
            tube = None
        if batch:
            entry = _Entry(token, spec, data, line, tube, None, reservation, sequence, 0, [], batch)
        else:
            entry = _Entry(token, spec, data, line, tube, sets_tube, reservation, sequence, timeout)
        if sequence is not None:
            sequence.tokens.append(token)
        if spec is _RESERVE and not self._unsent and self._adopt_reserve(token):
            return
        self._unsent[token] = entry
        self._pending_bytes += size

    def _refuse(self, spec: CommandSpec[Any], line: Optional[bytes], size: int, limit: int) -> None:
        """Raise BufferFull: a command of ``size`` bytes does not fit under ``limit``."""
        command = describe_command(spec, line)
        if size > limit:
            # Alone larger than the bound: say so, not that the server is slow.
            why = (
                f"the command is {size} bytes, more than max_pending_bytes={limit} allows "
                f"for everything waiting for {self.address}; raise max_pending_bytes, or "
                "send a smaller job"
            )
        else:
            why = (
                f"{self._pending_bytes} bytes of commands are already waiting for "
                f"{self.address} (max_pending_bytes={limit}); the server is unreachable or "
                "slower than its producers"
            )
        raise errors.BufferFull(command=command, message=f"{command!r} not sent: {why}")

    def _check_reservation(
        self, reservation: Reservation, spec: CommandSpec[Any], line: Optional[bytes]
    ) -> None:
        if reservation.owner is not self:
            raise ValueError(
                f"{describe_command(spec, line)!r}: the job was reserved by another client; "
                "acknowledge it on the client that reserved it"
            )
        if reservation is not self._reservation:  # lost with its connection
            command = describe_command(spec, line)
            raise errors.ReservationLost(
                command=command,
                message=f"{command!r} not sent: the job was reserved on a connection to "
                f"{self.address} that has since been lost, and the server has taken the "
                "job back (another worker may hold it now)",
            )

    def begin_sequence(self) -> Sequence:
        """Start a :class:`Sequence` on the current connection.

        Without a connection the sequence is born broken: each of its commands
        fails with :class:`~beanstalkt.errors.NotConnected` at :meth:`send`
        (a sequence never waits for a connection that is not its own).
        """
        sequence = Sequence(self._reservation)
        if self._reservation is None:
            sequence.error = errors.NotConnected(
                message=f"not sent: no connection to {self.address}, and a sequence of "
                "commands goes out on the connection it began on or not at all"
            )
        return sequence

    def _check_sequence(
        self, sequence: Sequence, spec: CommandSpec[Any], line: Optional[bytes]
    ) -> None:
        if sequence.error is None and sequence.reservation is not self._reservation:
            sequence.error = errors.NotConnected(
                message=f"not sent: the connection to {self.address} its sequence began on was lost"
            )
        if sequence.error is not None:
            command = describe_command(spec, line)
            raise type(sequence.error)(command=command, message=f"{command!r} {sequence.error}")

    def break_sequence(self, sequence: Sequence, error: errors.BeanstalkException) -> list[Event]:
        """A command of ``sequence`` was refused with ``error``: take the others back.

        Returns the failures (``NotConnected``: never sent) of its commands
        still unsent; every later command of it is refused at :meth:`send`.
        """
        if sequence.error is None:
            sequence.error = errors.NotConnected(
                message=f"not sent: another command of its sequence was refused ({error})"
            )
        events: list[Event] = []
        for token in sequence.tokens:
            entry = self._unsent.pop(token, None)
            if entry is None:
                continue
            self._pending_bytes -= entry.size
            command = entry.describe()
            events.append(
                (
                    token,
                    False,
                    errors.NotConnected(command=command, message=f"{command!r} {sequence.error}"),
                )
            )
        sequence.tokens = []
        return events

    def _adopt_reserve(self, token: Any) -> bool:
        """Let a new ``reserve`` take over an abandoned one still waiting on the server.

        Both would be answered with the next job of the same watch list, so
        the server's pending reserve serves the new caller and no second one
        queues up behind it (a ``wait_for(reserve(), 1)`` loop would otherwise
        pile up one more blocking reserve every second).
        """
        written = self._written
        if not written:
            return False
        tail = written[-1]
        if (
            tail.spec is not _RESERVE
            or type(tail.token) is _Internal
            or not self._is_abandoned(tail.token)
        ):
            return False
        tail.token = token
        return True

    def unsent_tokens(self) -> list[Any]:
        """The callers' tokens whose commands wait to be written, in order."""
        return [token for token in self._unsent if type(token) is not _Internal]

    def discard(self, token: Any) -> bool:
        """Forget ``token``'s command if it has not been written; return whether it was.

        For a command cancelled, or failed by a timeout, while it waits for a
        connection: it leaves at once, with its bytes, and is never sent.
        """
        entry = self._unsent.pop(token, None)
        if entry is None:
            return False
        self._pending_bytes -= entry.size
        return True

    # ------------------------------------------------------------------
    # Bytes out.

    def data_to_send(self) -> bytes:
        """Everything queued, as the bytes to write now; it counts as written from here.

        A ``use`` goes in front of any command meant for another tube than the
        one the connection is on. Commands whose callers gave up are dropped.
        While a job is being given back, a reserve (and what follows it) waits:
        written before the ``release``, it would wait on the server for the
        very job the connection still holds.
        """
        unsent = self._unsent
        if not unsent or self._reservation is None:
            return b""
        self._unsent = {}
        written = self._written
        is_abandoned = self._is_abandoned
        wire_tube = self._wire_tube
        parts: list[bytes] = []
        held: Optional[dict[Any, _Entry]] = None
        for token, entry in unsent.items():
            if held is not None:
                held[token] = entry
                continue
            if type(token) is not _Internal and is_abandoned(token):
                self._pending_bytes -= entry.size
                continue
            if self._giving_back and entry.spec.blocking:
                held = {token: entry}
                continue
            tube = entry.tube
            if tube is not None and tube != wire_tube:
                use = self._internal_entry(_USE, encode_command(b"use", check_tube_name(tube)))
                use.sets_tube = tube
                self._pending_bytes += use.size
                written.append(use)
                parts.append(use.data)
                wire_tube = tube
            elif entry.sets_tube is not None:
                wire_tube = entry.sets_tube
            written.append(entry)
            parts.append(entry.data)
            # Written commands are never sent again: their bytes need not stay
            # (with 100,000 puts in flight, that is most of their memory).
            entry.data = b""
        self._wire_tube = wire_tube
        if held is not None:
            # Nothing can be queued while this runs (it never yields): what was
            # held back is all that stays unsent.
            self._unsent = held
        if not parts:
            return b""
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)

    # ------------------------------------------------------------------
    # Bytes in.

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed received bytes; return ``(token, succeeded, value)`` for each caller answered.

        Raises :class:`~beanstalkt.protocol.ProtocolError` when the bytes are
        not replies (or answer no command): the connection is out of sync and
        must be dropped. The results of the replies framed before the bad bytes
        are on the exception's ``events``.
        """
        events: list[Event] = []
        written = self._written
        while data and written and written[0].batch is not None:
            # Batch slices one after the other: each takes its run of replies.
            before = len(data)
            data = self._answer_batch(data, events)
            if len(data) >= before:
                break  # not a run of INSERTED lines: the parser takes it from here
        try:
            replies = self._parser.feed(data)
        except ProtocolError as exc:
            replies = exc.replies
            exc.replies = []
            self._answer(replies, events)
            exc.events = events
            raise
        try:
            self._answer(replies, events)
        except ProtocolError as exc:
            exc.events = events
            raise
        return events

    def _answer_batch(self, data: bytes, events: list[Event]) -> bytes:
        """Answer a batch put at the head from a run of ``INSERTED`` lines; return the rest.

        The general parser builds a reply and interprets it for each line; a
        batch of 100,000 puts would spend more time there than the server
        spends storing the jobs. A run of plain ``INSERTED <id>`` lines is
        framed here at once; anything else (``BURIED``, ``JOB_TOO_BIG``, a
        partial line) is left to the parser.
        """
        pending = self._parser.take_buffered()
        if pending:
            data = pending + data  # start from a reply boundary
        run = _INSERTED_RUN.match(data)
        if run is None:
            return data
        entry = self._written[0]
        assert entry.batch is not None
        end = run.end()
        lines = data[:end].split(b"\r\n")
        lines.pop()  # after the last CR LF
        if len(lines) > entry.remaining:
            lines = lines[: entry.remaining]
            end = sum(len(line) + 2 for line in lines)
        entry.batch.extend([int(line[9:]) for line in lines])
        entry.remaining -= len(lines)
        if not entry.remaining:
            self._written.popleft()
            self._pending_bytes -= entry.size
            if not self._is_abandoned(entry.token):
                events.append((entry.token, True, entry.batch))
        return data[end:]

    def _answer(self, replies: list[Any], events: list[Event]) -> None:
        written = self._written
        encoding = self.encoding
        for reply in replies:
            if not written:
                raise ProtocolError(f"reply {reply.status!r} to no command")
            entry = written[0]
            spec = entry.spec
            try:
                value = interpret(spec, reply, entry.line, encoding)
                succeeded = True
            except errors.BeanstalkException as exc:
                value = exc
                succeeded = False
            if entry.batch is not None:
                entry.batch.append(value)
                entry.remaining -= 1
                if entry.remaining:
                    continue
                value = entry.batch
                succeeded = True
            written.popleft()
            self._pending_bytes -= entry.size
            token = entry.token
            if succeeded:
                if spec.reserves:
                    value.reservation = self._reservation
                elif spec is _WATCH or spec is _IGNORE:
                    self._observe_watch(spec, entry.line)
            if type(token) is _Internal:
                token.on_reply(succeeded, value)
            elif self._is_abandoned(token):
                if succeeded and spec.reserves:
                    self._give_back(value)
            else:
                events.append((token, succeeded, value))

    def _observe_watch(self, spec: CommandSpec[Any], line: Optional[bytes]) -> None:
        assert line is not None
        tube = line.split()[1].decode("ascii")
        watched = self.watched_tubes
        if spec is _WATCH:
            if tube not in watched:
                watched.append(tube)
        elif tube in watched:
            watched.remove(tube)

    def _give_back(self, job: Job[Any]) -> None:
        """Release a job nobody is waiting for any more, with its own priority.

        The reply to ``reserve`` does not carry the priority, so ask for it
        (``stats-job``) and release with what it says: the job goes back to
        ready exactly as it was, instead of staying reserved until its TTR.
        """
        job_id = job.id
        reservation = self._reservation

        def release(succeeded: bool, stats: Any) -> None:
            if reservation is not self._reservation:
                return  # that connection is gone, and the job went back with it
            self._giving_back -= 1
            if not succeeded:
                return  # gone meanwhile (deleted by id, or the TTR ran out)
            line = encode_command(b"release", job_id, int(stats.get("pri", 0)), 0)
            self._queue_first(self._internal_entry(_RELEASE, line, on_reply=_log_give_back))

        # First in line, before any reserve waiting to be written (see data_to_send).
        self._giving_back += 1
        line = encode_command(b"stats-job", job_id)
        self._queue_first(self._internal_entry(_STATS_JOB, line, on_reply=release))

    # ------------------------------------------------------------------
    # Connection life.

    def connection_made(self) -> None:
        """A new connection is up: a new reservation generation, and the session first.

        The commands that restore the watch list go in front of everything
        waiting. The used tube needs no restoring: every command that depends
        on it brings its own ``use`` when the fresh connection is elsewhere.
        """
        self._reservation = Reservation(self)
        self._wire_tube = "default"
        self._giving_back = 0
        self._parser.reset()
        restore: dict[Any, _Entry] = {}
        for entry in self._restore_entries():
            restore[entry.token] = entry
            self._pending_bytes += entry.size
        if restore:
            restore.update(self._unsent)
            self._unsent = restore

    def _restore_entries(self) -> list[_Entry]:
        entries = []
        for tube in self.watched_tubes:
            if tube != "default":
                line = encode_command(b"watch", check_tube_name(tube))
                entries.append(self._internal_entry(_WATCH, line, on_reply=_log_restore))
        if "default" not in self.watched_tubes:
            entries.append(
                self._internal_entry(_IGNORE, b"ignore default\r\n", on_reply=_log_restore)
            )
        return entries

    def connection_lost(
        self,
        reason: str,
        failure: type[errors.BeanstalkException] = errors.ConnectionLost,
        *,
        closing: bool = False,
    ) -> list[Event]:
        """The connection is gone; return the failures to deliver.

        Written commands fail with ``failure`` (their outcome is unknown); a
        batch put resolves with the ids it got and ``failure`` for the rest.
        Unwritten ones wait for the next connection, except those about a
        reservation (it ended with the connection: the job may be another
        worker's by now). With ``closing`` (the client is closing), nothing
        waits: every command fails, with :class:`~beanstalkt.errors.NotConnected`
        for the unwritten ones.
        """
        if self._reservation is not None:
            self._reservation.lost = True
        self._reservation = None
        self._wire_tube = None
        self._giving_back = 0
        self._parser.reset()
        events: list[Event] = []
        written, self._written = self._written, deque()
        for entry in written:
            self._pending_bytes -= entry.size
            if type(entry.token) is _Internal or self._is_abandoned(entry.token):
                continue
            command = entry.describe()
            error = failure(command=command, message=f"{reason}; outcome of {command!r} unknown")
            if entry.batch is not None:
                entry.batch.extend(error for _ in range(entry.remaining))
                events.append((entry.token, True, entry.batch))
            else:
                events.append((entry.token, False, error))
        unsent, self._unsent = self._unsent, {}
        for token, entry in unsent.items():
            if type(token) is _Internal or self._is_abandoned(token):
                self._pending_bytes -= entry.size
                continue
            refusal = _unsent_failure(entry, reason, failure, closing)
            if refusal is None:
                self._unsent[token] = entry  # waits for the next connection
                continue
            self._pending_bytes -= entry.size
            events.append((token, False, refusal))
        return events

    # ------------------------------------------------------------------
    # Timing rules.

    def allowed_silence(self, stall_timeout: float) -> Optional[float]:
        """How long the server may stay silent now (``None``: nothing is owed).

        A blocking ``reserve`` at the head may wait for ever; a
        ``reserve-with-timeout`` for its timeout, plus ``stall_timeout``.
        """
        if not self._written:
            return None
        head = self._written[0]
        if head.spec is _RESERVE:
            return float("inf")
        if head.spec is _RESERVE_WITH_TIMEOUT:
            return stall_timeout + head.timeout
        return stall_timeout

    # ------------------------------------------------------------------

    def _internal_entry(
        self,
        spec: CommandSpec[Any],
        data: bytes,
        on_reply: Callable[[bool, Any], None] = lambda succeeded, value: None,
    ) -> _Entry:
        return _Entry(_Internal(on_reply), spec, data, data, None)

    def _queue_first(self, entry: _Entry) -> None:
        """Queue an internal command in front of everything not yet written."""
        self._unsent = {entry.token: entry, **self._unsent}
        self._pending_bytes += entry.size


def _unsent_failure(
    entry: _Entry,
    reason: str,
    failure: type[errors.BeanstalkException],
    closing: bool,
) -> Optional[errors.BeanstalkException]:
    """How an unsent command fails when its connection is lost (None: it waits for the next)."""
    command = entry.describe()
    if closing:
        return errors.NotConnected(command=command, message=f"{command!r} not sent: client closed")
    if entry.spec.acts_on_reservation:
        # Never sent, but about a reservation that just ended: sending it on
        # the next connection could act on a job another worker now holds (or,
        # without a binlog, on a new job with the same id).
        kind = errors.ReservationLost if entry.reservation is not None else failure
        return kind(
            command=command,
            message=f"{reason}; {command!r} not sent: "
            "the job's reservation ended with the connection",
        )
    if entry.sequence is not None:
        # Its sequence belonged to the connection just lost: sent on the next
        # one, a reserve-job by id could take a stranger's job.
        return errors.NotConnected(
            command=command,
            message=f"{reason}; {command!r} not sent: its sequence belonged to that connection",
        )
    return None


def _log_restore(succeeded: bool, value: Any) -> None:
    if not succeeded:
        logger.error("restoring the watch list failed: %s", value)


def _log_give_back(succeeded: bool, value: Any) -> None:
    if not succeeded:
        logger.warning("giving back a job nobody waited for failed: %s", value)

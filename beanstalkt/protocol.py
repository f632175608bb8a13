"""The beanstalkd text protocol as pure functions over bytes (no sockets, no Tornado).

Three parts, each usable and testable alone:

* **checks and encoders** turn Python arguments into command bytes, refusing
  bad input (tube names, out-of-range numbers, non-bytes bodies) *before* any
  byte exists, so nothing half-formed can reach the server;
* :data:`COMMANDS`, one table describing every command once: its reply word
  on success, what the success carries, and which failure words it expects;
* :class:`ReplyParser`, fed whatever bytes arrived (one byte or a thousand
  replies at a time) and returning the complete replies, and
  :func:`interpret`, which turns one reply to one command into a value or an
  exception.
"""

from __future__ import annotations

import datetime
import enum
import math
import re
from typing import Any, Generic, NamedTuple, Optional, TypeVar, Union

from . import errors
from .models import Job, Stats, StatsJob, StatsTube
from .yaml import (
    STATS_JOB_TEXT_KEYS,
    STATS_TEXT_KEYS,
    STATS_TUBE_TEXT_KEYS,
    YAMLError,
    parse_list,
    parse_mapping,
)

#: Default job priority (the middle of the range, as in the original beanstalkt).
DEFAULT_PRIORITY = 2**31
#: Default time to run, in seconds.
DEFAULT_TTR = 120

MAX_UINT32 = 2**32 - 1
MAX_JOB_ID = 2**64 - 1
#: The longest ``reserve-with-timeout`` beanstalkd takes, in seconds: 1.13
#: answers ``BAD_FORMAT`` above ``2**31-1`` (its timeout is a C ``int``).
MAX_RESERVE_TIMEOUT = 2**31 - 1

#: A duration as the commands take it: seconds (``int``, or a ``float`` holding
#: whole seconds) or a :class:`datetime.timedelta`. See :func:`check_seconds`.
Seconds = Union[int, float, datetime.timedelta]
MAX_TUBE_NAME_BYTES = 200

# The protocol's name alphabet; a name may not begin with a hyphen.
_TUBE_NAME = re.compile(r"[A-Za-z0-9+/;.$_()][A-Za-z0-9\-+/;.$_()]*")

# Longest reply line we accept before deciding the stream is garbage. Real
# lines are short (the longest is "USING <200-byte name>").
MAX_REPLY_LINE = 1024


# --------------------------------------------------------------------------
# Checks: every argument is validated before it is encoded.


def check_tube_name(name: object) -> bytes:
    """Return the tube name as bytes, or raise if the server would refuse it.

    Names are 1 to 200 ASCII characters from ``A-Za-z0-9-+/;.$_()``, not
    starting with a hyphen. Anything else (spaces, CR/LF, non-ASCII) could
    change the meaning of the command line, so it is refused here.
    """
    if not isinstance(name, str):
        raise TypeError(f"tube name must be str, not {type(name).__name__}")
    if not _TUBE_NAME.fullmatch(name):
        if not name:
            raise ValueError("tube name must not be empty")
        if name.startswith("-"):
            raise ValueError(f"tube name must not start with a hyphen: {name!r}")
        raise ValueError(f"tube name {name!r} has characters outside A-Za-z0-9-+/;.$_()")
    if len(name) > MAX_TUBE_NAME_BYTES:
        raise ValueError(f"tube name is {len(name)} bytes long; the limit is 200")
    return name.encode("ascii")


def check_integer(what: str, value: object, low: int, high: int) -> int:
    """Return ``value`` if it is an int (not a bool) with ``low <= value <= high``."""
    # type() first: the common case costs one comparison.
    if type(value) is not int and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{what} must be between {low} and {high}, not {value}")
    return value


def check_seconds(
    what: str, value: object, high: int = MAX_UINT32, *, round_up: bool = False
) -> int:
    """Return a duration as the whole seconds the protocol carries, or raise.

    The one rule for every duration that goes on the wire (a put's ``delay``
    and ``ttr``, a release's ``delay``, ``pause-tube``'s delay, a reserve
    timeout): an ``int``, a ``float`` or a :class:`datetime.timedelta`, from 0
    to ``high`` seconds. beanstalkd counts in whole seconds, so a fraction
    (``1.5``, ``timedelta(milliseconds=500)``) is refused with a
    ``ValueError``, never silently cut: a shorter TTR or delay than asked
    for would change what the job does. With ``round_up`` (a reserve timeout,
    a bound on a wait) a fraction rounds up instead: the wait is never shorter
    than asked. ``bool`` and other types raise ``TypeError``.
    """
    # The common case first, and at the cost of one comparison.
    if type(value) is int and 0 <= value <= high:
        return value
    if isinstance(value, datetime.timedelta):
        # Exact: total_seconds() is a float, and would blur large durations.
        whole = value.days * 86_400 + value.seconds
        fraction = value.microseconds != 0
        negative = whole < 0
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(
                f"{what} must be a finite number of seconds from 0 to {high}, not {value!r}"
            )
        whole = math.floor(value)
        fraction = whole != value
        negative = value < 0
    elif isinstance(value, int) and not isinstance(value, bool):
        whole, fraction, negative = int(value), False, value < 0
    else:
        raise TypeError(
            f"{what} must be a number of seconds (int, float or timedelta), "
            f"not {type(value).__name__}"
        )
    if negative:
        raise ValueError(f"{what} must be between 0 and {high} seconds, not {value!r}")
    if fraction:
        if not round_up:
            raise ValueError(
                f"{what} must be whole seconds (beanstalkd counts in seconds), not {value!r}"
            )
        whole += 1
    if whole > high:
        raise ValueError(f"{what} must be between 0 and {high} seconds, not {value!r}")
    return whole


def check_interval(what: str, value: object) -> float:
    """Return a time the client keeps itself (a connect or reconnect bound), in seconds.

    The same spellings as :func:`check_seconds` (an ``int``, a ``float``, a
    :class:`datetime.timedelta`), finite and not negative; fractions are fine,
    as these times never go on the wire.
    """
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(
            f"{what} must be a number of seconds (int, float or timedelta), "
            f"not {type(value).__name__}"
        )
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"{what} must be a finite, non-negative number of seconds, not {value!r}")
    return seconds


def check_job_id(job_id: object) -> int:
    """Return ``job_id`` if it is a possible job id (1 to 2**64-1)."""
    return check_integer("job id", job_id, 1, MAX_JOB_ID)


def check_body(body: object, encoding: Optional[str]) -> bytes:
    """Return the job body as bytes.

    Bodies are bytes (``bytes``, ``bytearray`` or ``memoryview``); a ``str`` is
    accepted only when the client has an ``encoding``, so text is never
    encoded by accident.
    """
    if type(body) is bytes:
        return body
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)  # subclasses too; a plain copy is what gets sent
    if isinstance(body, str):
        if encoding is None:
            raise TypeError(
                "job body must be bytes; pass encoding='utf-8' to Client to put str bodies"
            )
        return body.encode(encoding)
    raise TypeError(f"job body must be bytes, not {type(body).__name__}")


# --------------------------------------------------------------------------
# Encoders: checked arguments in, command bytes out.


def encode_put(body: bytes, priority: int, delay: int, ttr: int) -> bytes:
    """``put <pri> <delay> <ttr> <bytes>\\r\\n<data>\\r\\n``, arguments already checked."""
    return b"put %d %d %d %d\r\n%b\r\n" % (priority, delay, ttr, len(body), body)


def checked_put(
    body: object, priority: object, delay: object, ttr: object, encoding: Optional[str]
) -> bytes:
    """A put's arguments checked (as :func:`check_body`, :func:`check_integer` and
    :func:`check_seconds` check them) and encoded: the bytes of the command.

    One call per put instead of five: when the types already prove the
    arguments (``bytes`` and ``int`` in range, by far the common case), the
    per-field checks have nothing left to say; anything else goes through them,
    with their messages.
    """
    if (
        type(body) is bytes
        and type(priority) is int
        and type(delay) is int
        and type(ttr) is int
        and 0 <= priority <= MAX_UINT32
        and 0 <= delay <= MAX_UINT32
        and 0 <= ttr <= MAX_UINT32
    ):
        return b"put %d %d %d %d\r\n%b\r\n" % (priority, delay, ttr, len(body), body)
    return encode_put(
        check_body(body, encoding),
        check_integer("priority", priority, 0, MAX_UINT32),
        check_seconds("delay", delay),
        check_seconds("ttr", ttr),
    )


def encode_command(name: bytes, *args: Union[bytes, int]) -> bytes:
    """A one-line command: the name, then each argument (bytes or int), CR LF."""
    parts = [name]
    for arg in args:
        parts.append(arg if isinstance(arg, bytes) else b"%d" % arg)
    return b" ".join(parts) + b"\r\n"


# --------------------------------------------------------------------------
# The command table.


class Result(enum.Enum):
    """What a successful reply carries."""

    NOTHING = "nothing"
    INTEGER = "integer"  # the first argument, e.g. INSERTED <id>, WATCHING <count>
    NAME = "name"  # the first argument as text, e.g. USING <tube>
    JOB = "job"  # <id> <bytes> line plus the body
    MAPPING = "mapping"  # YAML dictionary
    LIST = "list"  # YAML list of names
    DATA = "data"  # the reply's data chunk (a YAML document) verbatim


#: The type a command's successful reply turns into (see :class:`CommandSpec`).
ResultT = TypeVar("ResultT")


class CommandSpec(Generic[ResultT]):
    """One command, described once: wire name, success word, result, failures.

    The type parameter is what the command's future resolves to: the spec
    constants below (``PUT: CommandSpec[int]``...) carry it from this table
    through ``Connection.submit`` (``beanstalkt/connection.py``) to the client's
    methods, so that mypy checks each method's declared result against the
    command it sends. Each constructor below (``_integer``...) fixes the
    type from the result kind, so a spec cannot claim a type its kind does not
    produce.

    ``blocking`` marks commands the server may legitimately sit on (``reserve``
    waits for a job), which the stall guard must not mistake for a dead link.
    ``acts_on_reservation`` marks commands about a job this connection has
    reserved (``delete``, ``release``, ``bury``, ``touch``): a reservation ends
    with its connection, so such a command queued on a connection that dropped
    must not be replayed on the next one. ``uses_tube`` marks commands that
    act on the connection's used tube (``put``, ``peek-ready``, ``kick``...),
    and ``reserves`` those whose success is a job now reserved by the connection.
    """

    __slots__ = (
        "acts_on_reservation",
        "blocking",
        "failures",
        "name",
        "reserves",
        "result",
        "success",
        "text_keys",
        "uses_tube",
    )

    def __init__(
        self,
        name: bytes,
        success: bytes,
        result: Result,
        failures: dict[bytes, type[errors.BeanstalkException]],
        text_keys: frozenset[str] = frozenset(),
        blocking: bool = False,
        acts_on_reservation: bool = False,
        uses_tube: bool = False,
        reserves: bool = False,
    ) -> None:
        self.acts_on_reservation = acts_on_reservation
        self.uses_tube = uses_tube
        self.reserves = reserves
        self.name = name
        self.success = success
        self.result = result
        self.failures = failures
        self.text_keys = text_keys
        self.blocking = blocking

    def __repr__(self) -> str:
        return f"<CommandSpec {self.name.decode()}>"


_NOT_FOUND = {b"NOT_FOUND": errors.NotFound}
_RESERVE_FAILURES: dict[bytes, type[errors.BeanstalkException]] = {
    b"TIMED_OUT": errors.TimedOut,
    b"DEADLINE_SOON": errors.DeadlineSoon,
}


def _integer(name: bytes, success: bytes, **kw: Any) -> CommandSpec[int]:
    return CommandSpec(name, success, Result.INTEGER, kw.pop("failures", {}), **kw)


def _nothing(name: bytes, success: bytes, **kw: Any) -> CommandSpec[None]:
    return CommandSpec(name, success, Result.NOTHING, kw.pop("failures", {}), **kw)


def _name(name: bytes, **kw: Any) -> CommandSpec[str]:
    return CommandSpec(name, b"USING", Result.NAME, kw.pop("failures", {}), **kw)


# A job's body type depends on the client's encoding: the client narrows it.
def _job(name: bytes, success: bytes, **kw: Any) -> CommandSpec[Job[Any]]:
    return CommandSpec(name, success, Result.JOB, kw.pop("failures", {}), **kw)


def _names(name: bytes) -> CommandSpec[list[str]]:
    return CommandSpec(name, b"OK", Result.LIST, {})


# YAML mappings: which TypedDict is the caller's declaration (the annotation).
def _mapping(name: bytes, text_keys: frozenset[str], **kw: Any) -> CommandSpec[Any]:
    return CommandSpec(name, b"OK", Result.MAPPING, kw.pop("failures", {}), text_keys, **kw)


PUT = _integer(
    b"put",
    b"INSERTED",
    failures={
        b"BURIED": errors.Buried,
        b"EXPECTED_CRLF": errors.ExpectedCRLF,
        b"JOB_TOO_BIG": errors.JobTooBig,
        b"DRAINING": errors.Draining,
    },
    uses_tube=True,
)
USE = _name(b"use")
RESERVE = _job(b"reserve", b"RESERVED", failures=_RESERVE_FAILURES, blocking=True, reserves=True)
RESERVE_WITH_TIMEOUT = _job(
    b"reserve-with-timeout",
    b"RESERVED",
    failures=_RESERVE_FAILURES,
    blocking=True,
    reserves=True,
)
RESERVE_JOB = _job(b"reserve-job", b"RESERVED", failures=_NOT_FOUND, reserves=True)
DELETE = _nothing(b"delete", b"DELETED", failures=_NOT_FOUND, acts_on_reservation=True)
RELEASE = _nothing(
    b"release",
    b"RELEASED",
    failures={b"BURIED": errors.Buried, **_NOT_FOUND},
    acts_on_reservation=True,
)
BURY = _nothing(b"bury", b"BURIED", failures=_NOT_FOUND, acts_on_reservation=True)
TOUCH = _nothing(b"touch", b"TOUCHED", failures=_NOT_FOUND, acts_on_reservation=True)
WATCH = _integer(b"watch", b"WATCHING")
IGNORE = _integer(b"ignore", b"WATCHING", failures={b"NOT_IGNORED": errors.NotIgnored})
PEEK = _job(b"peek", b"FOUND", failures=_NOT_FOUND)
PEEK_READY = _job(b"peek-ready", b"FOUND", failures=_NOT_FOUND, uses_tube=True)
PEEK_DELAYED = _job(b"peek-delayed", b"FOUND", failures=_NOT_FOUND, uses_tube=True)
PEEK_BURIED = _job(b"peek-buried", b"FOUND", failures=_NOT_FOUND, uses_tube=True)
KICK = _integer(b"kick", b"KICKED", uses_tube=True)
KICK_JOB = _nothing(b"kick-job", b"KICKED", failures=_NOT_FOUND)
STATS_JOB: CommandSpec[StatsJob] = _mapping(b"stats-job", STATS_JOB_TEXT_KEYS, failures=_NOT_FOUND)
STATS_TUBE: CommandSpec[StatsTube] = _mapping(
    b"stats-tube", STATS_TUBE_TEXT_KEYS, failures=_NOT_FOUND
)
STATS: CommandSpec[Stats] = _mapping(b"stats", STATS_TEXT_KEYS)
LIST_TUBES = _names(b"list-tubes")
LIST_TUBE_USED = _name(b"list-tube-used", uses_tube=True)
LIST_TUBES_WATCHED = _names(b"list-tubes-watched")
PAUSE_TUBE = _nothing(b"pause-tube", b"PAUSED", failures=_NOT_FOUND)

#: The YAML replies, unparsed: the same commands resolving to the server's own bytes.
VERBATIM: dict[str, CommandSpec[bytes]] = {
    spec.name.decode("ascii"): CommandSpec(spec.name, spec.success, Result.DATA, spec.failures)
    for spec in (STATS_JOB, STATS_TUBE, STATS, LIST_TUBES, LIST_TUBES_WATCHED)
}

#: Every command by its wire name.
COMMANDS: dict[str, CommandSpec[Any]] = {
    spec.name.decode("ascii"): spec
    for spec in (
        PUT,
        USE,
        RESERVE,
        RESERVE_WITH_TIMEOUT,
        RESERVE_JOB,
        DELETE,
        RELEASE,
        BURY,
        TOUCH,
        WATCH,
        IGNORE,
        PEEK,
        PEEK_READY,
        PEEK_DELAYED,
        PEEK_BURIED,
        KICK,
        KICK_JOB,
        STATS_JOB,
        STATS_TUBE,
        STATS,
        LIST_TUBES,
        LIST_TUBE_USED,
        LIST_TUBES_WATCHED,
        PAUSE_TUBE,
    )
}

# Error replies any command may get (the protocol lists them once, for all).
SERVER_ERRORS = frozenset({b"OUT_OF_MEMORY", b"INTERNAL_ERROR", b"BAD_FORMAT", b"UNKNOWN_COMMAND"})


# --------------------------------------------------------------------------
# Replies: framing.


class Reply(NamedTuple):
    """One framed server reply: status word, the line's other words, and the body.

    ``body`` is ``None`` for replies without one, and also for a job reply
    (``RESERVED``, ``FOUND``) whose body is not followed by CR LF: the job's
    stored data is damaged (beanstalkd replays a binlog record cut short by a
    crash as zero bytes), but its announced length still frames the reply.
    """

    status: bytes
    args: list[bytes]
    body: Optional[bytes]


class ProtocolError(errors.UnexpectedResponse):
    """The byte stream is not a sequence of beanstalkd replies; it cannot be resynchronised.

    The client never lets it out: it drops the connection, and what was owed
    fails with :class:`~beanstalkt.errors.UnexpectedResponse` (its base). It
    is raised as is only by the sans-I/O parts, to whoever drives them.

    ``replies`` holds the good replies framed before the bad bytes in the same
    :meth:`ReplyParser.feed` call: their commands did run on the server, so
    they are still answered, whatever way TCP happened to split the stream.
    """

    def __init__(self, message: str, replies: Optional[list[Reply]] = None) -> None:
        super().__init__(message=message)
        self.replies: list[Reply] = replies if replies is not None else []
        #: Set by :meth:`beanstalkt.pipeline.Pipeline.receive_data`: the callers'
        #: results from those replies.
        self.events: list[Any] = []


# Largest body length we believe: beanstalkd's job size limit is below 2**32,
# and an absurd announced length would make us buffer without end.
MAX_BODY_SIZE = 2**32


# Replies followed by a data chunk; their last argument is its length.
_BODY_STATUSES = {b"RESERVED": 2, b"FOUND": 2, b"OK": 1}
_LINE_STATUSES = frozenset(
    {
        b"INSERTED",
        b"BURIED",
        b"EXPECTED_CRLF",
        b"JOB_TOO_BIG",
        b"DRAINING",
        b"USING",
        b"DEADLINE_SOON",
        b"TIMED_OUT",
        b"DELETED",
        b"NOT_FOUND",
        b"RELEASED",
        b"TOUCHED",
        b"WATCHING",
        b"NOT_IGNORED",
        b"KICKED",
        b"PAUSED",
    }
    | SERVER_ERRORS
)


class ReplyParser:
    """Incremental reply framer: feed it bytes as they arrive, get complete replies.

    Framing depends only on the reply itself (``RESERVED``, ``FOUND`` and
    ``OK`` carry a body of the announced length), never on which command was
    sent, so the parser needs no knowledge of what is in flight. Input split at
    any byte, or holding many replies, both work. While a large body is still
    arriving, chunks are only collected, not rescanned, so reading a body costs
    linear time however it is fragmented.
    """

    __slots__ = ("_buffered", "_chunks", "_needed")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._buffered = 0
        # Bytes that must be buffered before parsing can make progress.
        self._needed = 1

    @property
    def buffered(self) -> int:
        """How many received bytes belong to a reply that is not complete yet."""
        return self._buffered

    def take_buffered(self) -> bytes:
        """Hand back the bytes of the partial reply held so far, and forget them.

        For a caller that frames some replies itself (a batch put's run of
        ``INSERTED`` lines) and must start from a reply boundary.
        """
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.reset()
        return data

    def reset(self) -> None:
        """Forget any partial reply (used when a new connection starts)."""
        self._chunks = []
        self._buffered = 0
        self._needed = 1

    def feed(self, data: bytes) -> list[Reply]:
        """Add received bytes; return the replies they complete, in order.

        Raises :class:`ProtocolError` when the bytes cannot be replies; the
        replies framed before them are on the exception.
        """
        if not self._chunks:
            # The lock-step case, worth its own path: nothing buffered, and
            # the bytes are exactly one reply line ("INSERTED 5\r\n").
            line_end = data.find(b"\r\n")
            if line_end == len(data) - 2 and 0 < line_end <= MAX_REPLY_LINE:
                words = data[:line_end].split(b" ")
                status = words[0]
                if status in _LINE_STATUSES:
                    return [Reply(status, words[1:], None)]
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered < self._needed:
            return []
        chunks = self._chunks
        buffer = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        replies: list[Reply] = []
        try:
            position, needed = self._frame(buffer, replies)
        except ProtocolError as exc:
            exc.replies = replies
            raise
        end = len(buffer)
        if position == end:
            self._chunks = []
            self._buffered = 0
        else:
            self._chunks = [buffer[position:] if position else buffer]
            self._buffered = end - position
        self._needed = needed
        return replies

    @staticmethod
    def _frame(buffer: bytes, replies: list[Reply]) -> tuple[int, int]:
        """Append the complete replies in ``buffer``; return where the rest starts
        and how many bytes (from there) must be buffered before trying again."""
        end = len(buffer)
        position = 0
        needed = 1
        while position < end:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                # +1: the line's "\r" may have arrived without its "\n".
                if end - position > MAX_REPLY_LINE + 1:
                    raise ProtocolError(f"reply line longer than {MAX_REPLY_LINE} bytes")
                needed = end - position + 1
                break
            if line_end - position > MAX_REPLY_LINE:
                raise ProtocolError(f"reply line longer than {MAX_REPLY_LINE} bytes")
            words = buffer[position:line_end].split(b" ")
            status = words[0]
            if status in _LINE_STATUSES:
                replies.append(Reply(status, words[1:], None))
                position = line_end + 2
                continue
            arg_count = _BODY_STATUSES.get(status)
            if arg_count is None or len(words) != arg_count + 1:
                raise ProtocolError(f"unexpected reply line {buffer[position:line_end]!r}")
            size = _body_size(words[-1])
            body_start = line_end + 2
            body_end = body_start + size
            if body_end + 2 > end:
                needed = body_end + 2 - position
                break
            if buffer[body_end : body_end + 2] != b"\r\n":
                if status == b"OK":  # made up on the spot by the server: out of sync
                    raise ProtocolError(f"{status.decode()} body is not followed by CR LF")
                # A damaged job, framed by its length (see Reply); None marks it.
                replies.append(Reply(status, words[1:-1], None))
            else:
                body = buffer[body_start:body_end]
                replies.append(Reply(status, words[1:-1], body))
            position = body_end + 2
        return position, needed


def _body_size(word: bytes) -> int:
    size = int(word) if word.isdigit() and len(word) <= 10 else MAX_BODY_SIZE + 1
    if size > MAX_BODY_SIZE:
        raise ProtocolError(f"bad body length {word!r}")
    return size


# --------------------------------------------------------------------------
# Replies: meaning.


# Read on every reply: module globals, not Enum class attributes (a descriptor call each).
_INTEGER = Result.INTEGER
_NOTHING = Result.NOTHING


def interpret(
    spec: CommandSpec[Any],
    reply: Reply,
    command_line: Optional[bytes],
    encoding: Optional[str] = None,
) -> Any:
    """Turn the reply to one command into its result, or raise its exception.

    ``command_line`` (the line sent, without body) is used only to describe a
    failure. A well-framed reply that makes no sense for this command raises
    :class:`~beanstalkt.errors.UnexpectedResponse`; framing is unaffected, so
    later replies still match their commands.
    """
    status = reply.status
    if status == spec.success:
        result = spec.result
        try:
            # The common results first, without a call.
            if result is _INTEGER:
                word = reply.args[0]
                # The check of _unsigned, without its call (an id per put).
                return int(word) if word.isdigit() else _unsigned(word)
            if result is _NOTHING:
                if reply.args:
                    raise ValueError("unexpected arguments")
                return None
            return _result(spec, reply, encoding)
        except (ValueError, IndexError, YAMLError) as exc:
            raise errors.UnexpectedResponse(
                status.decode("ascii", "replace"),
                describe_command(spec, command_line),
                f"malformed {status.decode('ascii', 'replace')} reply "
                f"to {describe_command(spec, command_line)!r}: {exc}",
            ) from None
    raise reply_error(spec, reply, command_line)


def _unsigned(word: bytes) -> int:
    """A count or id from a reply: ASCII digits only (``int()`` alone takes ``-1``, ``1_0``)."""
    if not word.isdigit():  # bytes.isdigit: ASCII digits only
        raise ValueError(f"not an unsigned integer: {word!r}")
    return int(word)


def _bad_job(
    kind: type[errors.BadJob], spec: CommandSpec[Any], reply: Reply, job_id: int, why: str
) -> errors.BadJob:
    return kind(
        reply.status.decode("ascii"),
        spec.name.decode("ascii"),
        f"job {job_id}: {why}",
        job_id=job_id,
        body=reply.body or b"",
    )


def _result(spec: CommandSpec[Any], reply: Reply, encoding: Optional[str]) -> Any:
    """The results :func:`interpret` does not answer itself (jobs, names, YAML)."""
    result = spec.result
    if result is Result.JOB:
        body: Any = reply.body
        job_id = _unsigned(reply.args[0])
        if body is None:
            raise _bad_job(
                errors.BadJob,
                spec,
                reply,
                job_id,
                "its body is not followed by CR LF: the server's copy is damaged "
                "(e.g. a binlog record cut short by a crash)",
            )
        if encoding is not None:
            try:
                body = body.decode(encoding)
            except UnicodeDecodeError as exc:
                raise _bad_job(
                    errors.UndecodableBody,
                    spec,
                    reply,
                    job_id,
                    f"body is not {encoding} text ({exc.reason}); "
                    "its raw bytes are on the exception's .body",
                ) from None
        return Job(job_id, body)
    if result is Result.NAME:
        return reply.args[0].decode("ascii")
    if reply.body is None:
        raise ValueError("no body")
    if result is Result.MAPPING:
        return parse_mapping(reply.body, spec.text_keys)
    if result is Result.DATA:
        return reply.body
    return parse_list(reply.body)


def reply_error(
    spec: CommandSpec[Any], reply: Reply, command_line: Optional[bytes]
) -> errors.BeanstalkException:
    """The exception for a reply that is not ``spec``'s success word."""
    status = reply.status
    text = status.decode("ascii", "replace")
    command = describe_command(spec, command_line)
    failure = spec.failures.get(status)
    if failure is errors.Buried:
        job_id = int(reply.args[0]) if reply.args and reply.args[0].isdigit() else None
        return errors.Buried(text, command, job_id=job_id)
    if failure is not None:
        return failure(text, command)
    if status in SERVER_ERRORS:
        return errors.ServerError(text, command)
    return errors.UnexpectedResponse(text, command, f"unexpected reply {text} to {command!r}")


def describe_command(spec: CommandSpec[Any], command_line: Optional[bytes]) -> str:
    """The command as messages show it: its line without CR LF, or just its name."""
    if command_line is None:
        return spec.name.decode("ascii")
    return command_line.rstrip(b"\r\n").decode("ascii", "replace")

"""The exception tree.

Every exception the client raises for a server reply derives from
:class:`BeanstalkException` and carries the protocol status word (``.status``,
e.g. ``'NOT_FOUND'``) and the command it answered (``.command``, e.g.
``'delete 12'``). The names of the original beanstalkt (``UnexpectedResponse``,
``CommandFailed``, ``Buried``, ``DeadlineSoon``, ``TimedOut``) keep working;
finer subclasses let callers catch exactly the failure they expect.

Connection problems also derive from the built-in :class:`ConnectionError`, so
generic ``except ConnectionError`` handlers catch them too.
"""

from __future__ import annotations

from typing import Optional


class BeanstalkException(Exception):
    """Base class of every beanstalkt error.

    ``status`` is the server's reply word (``''`` when there was no reply) and
    ``command`` the command line it answered, without the job body.
    """

    def __init__(self, status: str = "", command: str = "", message: str = "") -> None:
        self.status = status
        self.command = command
        text = message or _describe(status, command)
        super().__init__(text)


def _describe(status: str, command: str) -> str:
    if status and command:
        return f"{status} in reply to {command!r}"
    return status or command


class UnexpectedResponse(BeanstalkException):
    """The server sent a reply the client does not understand for this command.

    When the reply cannot even be framed, the connection is out of sync: it is
    closed, and everything pending on it fails with this exception.
    """


class BadJob(UnexpectedResponse):
    """The server handed out a job whose body this client cannot deliver.

    Raised as is when the job's stored body is damaged (not followed by CR LF,
    as after a binlog record cut short by a crash), and as
    :class:`UndecodableBody` when it is not text in the client's encoding.
    The job *was* reserved (or peeked) and the connection stays in sync:
    ``job_id`` is here so the caller can bury or delete it, instead of leaving
    it to come back to every worker.
    """

    def __init__(
        self,
        status: str = "",
        command: str = "",
        message: str = "",
        job_id: Optional[int] = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(status, command, message)
        self.job_id = job_id
        #: The raw body bytes, when they were received intact.
        self.body = body


class UndecodableBody(BadJob):
    """A job's body is not text in the client's ``encoding`` (raw bytes in ``.body``)."""


class CommandFailed(BeanstalkException):
    """The server refused the command with a documented failure reply."""


class NotFound(CommandFailed):
    """``NOT_FOUND``: no such job or tube, or the job is not in a state the command needs."""


class JobTooBig(CommandFailed):
    """``JOB_TOO_BIG``: the body is larger than the server's ``max-job-size``."""


class ExpectedCRLF(CommandFailed):
    """``EXPECTED_CRLF``: the job body was not followed by CR LF."""


class Draining(CommandFailed):
    """``DRAINING``: the server is in drain mode and accepts no new jobs."""


class NotIgnored(CommandFailed):
    """``NOT_IGNORED``: the tube is the last one in the watch list."""


class ServerError(CommandFailed):
    """A protocol-level error reply: ``OUT_OF_MEMORY``, ``INTERNAL_ERROR``,
    ``BAD_FORMAT`` or ``UNKNOWN_COMMAND``."""


class Buried(BeanstalkException):
    """``BURIED``: the server ran out of memory and buried the job.

    Raised by ``put`` (the job exists, buried, with id ``job_id``) and by
    ``release``.
    """

    def __init__(
        self,
        status: str = "BURIED",
        command: str = "",
        message: str = "",
        job_id: Optional[int] = None,
    ) -> None:
        super().__init__(status, command, message)
        self.job_id = job_id


class DeadlineSoon(BeanstalkException):
    """``DEADLINE_SOON``: a job reserved by this connection is about to time out."""


class TimedOut(BeanstalkException):
    """``TIMED_OUT``: ``reserve`` with a timeout found no job in time."""


class ReservationLost(BeanstalkException):
    """Not sent: the job was reserved on a connection that has since been lost.

    The server took the job back when that connection ended (it is ready
    again, or another worker holds it), and without a binlog a new, unrelated
    job may even have the same id. So ``delete``, ``release``, ``bury`` and
    ``touch`` given a :class:`~beanstalkt.Job` from a lost connection refuse
    to act on it. The job will be handed out again: delivery is at least once.
    """


class StaleJobRef(NotFound):
    """Not sent: the job reference predates a restart of its server without a binlog.

    beanstalkd without a binlog loses its jobs when it restarts and numbers new
    ones from 1 again, so the id of a :class:`~beanstalkt.PoolJobRef` taken
    before the restart now names a stranger's job (or none). The pool can tell
    (the server's pid changed, and it keeps no binlog), and refuses instead of
    acting on the wrong job. A ``NotFound``: the job the reference named is gone.
    """


class BufferFull(BeanstalkException):
    """Not sent: the client already holds ``max_pending_bytes`` of commands not yet answered.

    The server is unreachable (commands wait for the reconnect) or slower than
    the producers. Nothing was queued: fail the request, or retry later.
    """


class WrongEventLoop(BeanstalkException, RuntimeError):
    """The client was used from an event loop other than the one it connected on.

    A client belongs to one loop (its connection, timers and futures live
    there). Create a client per loop, or ``close()`` it and ``connect()`` it
    again from the new loop.
    """


class BeanstalkConnectionError(BeanstalkException, ConnectionError):
    """Base class of the connection problems (also a built-in ``ConnectionError``)."""


class ConnectFailed(BeanstalkConnectionError):
    """``connect()`` could not reach the server (refused, unreachable, timed out)."""


class ConnectionLost(BeanstalkConnectionError):
    """The connection dropped after the command was written: its outcome is unknown.

    The client reconnects by itself; the command was not retried, because the
    server may or may not have executed it.
    """


class NotConnected(BeanstalkConnectionError):
    """The command could not be sent: the client is closed, was never connected,
    or stayed disconnected longer than ``disconnected_timeout``."""


__all__ = [
    "BadJob",
    "BeanstalkConnectionError",
    "BeanstalkException",
    "BufferFull",
    "Buried",
    "CommandFailed",
    "ConnectFailed",
    "ConnectionLost",
    "DeadlineSoon",
    "Draining",
    "ExpectedCRLF",
    "JobTooBig",
    "NotConnected",
    "NotFound",
    "StaleJobRef",
    "NotIgnored",
    "ReservationLost",
    "ServerError",
    "TimedOut",
    "UndecodableBody",
    "UnexpectedResponse",
    "WrongEventLoop",
]

"""Result types: :class:`Job` and the typed dictionaries of the stats replies."""

from __future__ import annotations

import json
from typing import Any, Generic, Optional, TypedDict, TypeVar, Union

#: A job body: bytes, or str when the client was created with ``encoding=``.
Body = Union[bytes, str]

#: The body type of a client and of its jobs: ``bytes``, or ``str`` for a
#: client with an ``encoding`` (``Client[bytes]``, ``Job[str]``...).
BodyT = TypeVar("BodyT", bytes, str)


class Reservation:
    """One connection's reservations: what a reserved job remembers of where it came from.

    Every new connection of a :class:`~beanstalkt.pipeline.Pipeline` starts a
    new generation. Jobs reserved on it carry it as ``job.reservation``; once
    the connection is lost, ``lost`` is true and acknowledging such a job is
    refused. ``owner`` is the pipeline that made it (compared by identity
    only, so this module needs nothing of the pipeline's).
    """

    __slots__ = ("lost", "owner")

    def __init__(self, owner: object) -> None:
        self.owner = owner
        self.lost = False

    def __repr__(self) -> str:
        return f"<Reservation {'lost' if self.lost else 'live'}>"


class Job(dict[str, Any], Generic[BodyT]):
    """A job as returned by ``reserve``, ``reserve_job`` and the ``peek`` commands.

    Read it as an object (``job.id``, ``job.body``) or, as in the original
    beanstalkt, as a mapping (``job['id']``, ``job['body']``). It is a real
    ``dict`` with exactly those two keys, so it compares equal to
    ``{'id': 1, 'body': b'...'}`` and serialises like one.

    It is generic in its body type: ``Job[bytes]`` from a plain client,
    ``Job[str]`` from one with an ``encoding``.

    A reserved job also remembers the connection that reserved it
    (``reservation``): pass the job itself, not its id, to ``delete``,
    ``release``, ``bury`` and ``touch``, and the client refuses to act on a
    reservation that ended with a lost connection instead of touching
    whatever job now has that id.
    """

    __slots__ = ("reservation",)

    def __init__(self, id: int, body: BodyT, reservation: Optional[Reservation] = None) -> None:
        super().__init__(id=id, body=body)
        #: Which connection reserved the job (``None`` for a peeked job).
        self.reservation = reservation

    @property
    def id(self) -> int:
        """The job id the server assigned."""
        job_id: int = self["id"]
        return job_id

    @property
    def body(self) -> BodyT:
        """The job body, verbatim (decoded only when the client has an ``encoding``)."""
        body: BodyT = self["body"]
        return body

    def json(self) -> Any:
        """The body decoded as JSON (what ``put_json`` encoded)."""
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, body={self.body!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Job, (self.id, self.body))


Stats = TypedDict(
    "Stats",
    {
        "current-jobs-urgent": int,
        "current-jobs-ready": int,
        "current-jobs-reserved": int,
        "current-jobs-delayed": int,
        "current-jobs-buried": int,
        "cmd-put": int,
        "cmd-peek": int,
        "cmd-peek-ready": int,
        "cmd-peek-delayed": int,
        "cmd-peek-buried": int,
        "cmd-reserve": int,
        "cmd-reserve-with-timeout": int,
        "cmd-delete": int,
        "cmd-release": int,
        "cmd-use": int,
        "cmd-watch": int,
        "cmd-ignore": int,
        "cmd-bury": int,
        "cmd-kick": int,
        "cmd-touch": int,
        "cmd-stats": int,
        "cmd-stats-job": int,
        "cmd-stats-tube": int,
        "cmd-list-tubes": int,
        "cmd-list-tube-used": int,
        "cmd-list-tubes-watched": int,
        "cmd-pause-tube": int,
        "job-timeouts": int,
        "total-jobs": int,
        "max-job-size": int,
        "current-tubes": int,
        "current-connections": int,
        "current-producers": int,
        "current-workers": int,
        "current-waiting": int,
        "total-connections": int,
        "pid": int,
        "version": str,
        "rusage-utime": float,
        "rusage-stime": float,
        "uptime": int,
        "binlog-oldest-index": int,
        "binlog-current-index": int,
        "binlog-records-migrated": int,
        "binlog-records-written": int,
        "binlog-max-size": int,
        "draining": bool,
        "id": str,
        "hostname": str,
        "os": str,
        "platform": str,
    },
    total=False,
)
Stats.__doc__ = """The ``stats`` reply: counters and facts about the whole server."""

StatsTube = TypedDict(
    "StatsTube",
    {
        "name": str,
        "current-jobs-urgent": int,
        "current-jobs-ready": int,
        "current-jobs-reserved": int,
        "current-jobs-delayed": int,
        "current-jobs-buried": int,
        "total-jobs": int,
        "current-using": int,
        "current-watching": int,
        "current-waiting": int,
        "cmd-delete": int,
        "cmd-pause-tube": int,
        "pause": int,
        "pause-time-left": int,
    },
    total=False,
)
StatsTube.__doc__ = """The ``stats-tube`` reply: counters of one tube."""

StatsJob = TypedDict(
    "StatsJob",
    {
        "id": int,
        "tube": str,
        "state": str,
        "pri": int,
        "age": int,
        "delay": int,
        "ttr": int,
        "time-left": int,
        "file": int,
        "reserves": int,
        "timeouts": int,
        "releases": int,
        "buries": int,
        "kicks": int,
    },
    total=False,
)
StatsJob.__doc__ = """The ``stats-job`` reply: state and counters of one job."""

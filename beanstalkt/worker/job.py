"""The job a handler receives: :class:`ReservedJob`, built once per reservation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from ..errors import ReservationLost
from ..models import Body, Job, StatsJob

if TYPE_CHECKING:
    from ..client import Client
    from ..pipeline import Reservation


class ReservedJob(Job[Any]):
    """A job reserved by a :class:`~beanstalkt.worker.Worker`, as its handler receives it.

    Still a :class:`~beanstalkt.Job` (``job.id``, ``job.body``, equal to
    ``{'id': ..., 'body': ...}``), plus its ``tube`` (always known), the
    ``server`` that handed it out, and what the job's ``stats-job`` says:
    :attr:`stats`, :attr:`priority`, :attr:`ttr` and :attr:`attempt`. Those
    are read from the server only when needed: in a handler, ``await
    job.load_stats()`` first, unless the worker has ``prefetch_stats=True``;
    reading them before raises ``RuntimeError``.
    """

    __slots__ = ("_client", "_server", "_stats", "tube")

    def __init__(
        self,
        id: int,
        body: Body,
        tube: str,
        stats: Optional[StatsJob] = None,
        *,
        reservation: Optional[Reservation] = None,
        client: Optional[Client[Any]] = None,
        server: Optional[str] = None,
    ) -> None:
        # dict.__init__ directly: Job.__init__ would add a call per job for nothing.
        dict.__init__(self, id=id, body=body)
        self.reservation = reservation
        #: The tube the job was reserved from.
        self.tube = tube
        self._stats = stats
        # Where it was reserved: acknowledged, touched and asked about there only.
        self._client = client
        self._server = server

    @property
    def server(self) -> Optional[str]:
        """The address of the server that handed the job out (``None``: made by hand).

        ``"host:port"`` (or ``unix:/path``), as spelled by
        :func:`~beanstalkt.address.format_address`. The job is acknowledged and
        touched there, on the connection that reserved it.
        """
        return self._server

    @property
    def reservation_lost(self) -> bool:
        """True once the connection that reserved the job is gone (the server took it back)."""
        reservation = self.reservation
        return reservation is not None and reservation.lost

    @property
    def stats(self) -> StatsJob:
        """The job's ``stats-job`` reply, as last loaded (see :meth:`load_stats`)."""
        stats = self._stats
        if stats is None:
            raise RuntimeError(
                f"the stats of job {self.id} are not loaded: `await job.load_stats()` first "
                "(or make the worker with prefetch_stats=True)"
            )
        return stats

    @property
    def stats_loaded(self) -> bool:
        """Whether :attr:`stats` (and so priority, ttr, attempt) can be read now."""
        return self._stats is not None

    async def load_stats(self, refresh: bool = False) -> StatsJob:
        """Read the job's ``stats-job`` (once; again with ``refresh=True``) and return it.

        Asked on the connection that reserved the job. Fails with
        :class:`~beanstalkt.ReservationLost` when that reservation is gone with
        its connection, and with :class:`~beanstalkt.NotFound` when the job no
        longer exists.
        """
        if self._stats is not None and not refresh:
            return self._stats
        client = self._client
        if client is None:
            raise RuntimeError(f"job {self.id} was not reserved by a worker: no stats to load")
        if self.reservation_lost:
            raise self._lost()
        stats = await client.stats_job(self.id)
        if self.reservation_lost:
            # Answered by a new connection: after a restart without binlog
            # this id may name another job.
            raise self._lost()
        self._stats = stats
        return stats

    def _lost(self) -> ReservationLost:
        return ReservationLost(
            command=f"stats-job {self.id}",
            message=f"job {self.id}: its reservation was lost with the connection",
        )

    @property
    def priority(self) -> int:
        """The job's priority (kept when it is released or buried)."""
        return self.stats.get("pri", 0)

    @property
    def ttr(self) -> int:
        """The job's time to run, in seconds."""
        return max(1, self.stats.get("ttr", 1))  # the server treats 0 as 1

    @property
    def attempt(self) -> int:
        """Which attempt this is: 1, then 1 + the failures so far (the job's ``buries``).

        Releases that are not failures do not count (see "How attempts are
        counted" in :mod:`beanstalkt.worker.worker`).
        """
        return self.stats.get("buries", 0) + 1

    def __repr__(self) -> str:
        attempt = f", attempt={self.attempt}" if self._stats is not None else ""
        return f"ReservedJob(id={self.id!r}, tube={self.tube!r}{attempt})"


__all__ = ["ReservedJob"]

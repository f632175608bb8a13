"""A production worker: concurrency, retries with backoff, TTR touches, graceful shutdown.

::

    import beanstalkt

    async def send_email(job: beanstalkt.ReservedJob) -> None:
        message = job.json()
        ...                                   # returns: the job is deleted

    worker = beanstalkt.Worker({"emails": send_email}, concurrency=8)
    worker.install_signal_handlers()          # SIGTERM / SIGINT stop it gracefully
    await worker.run()

or from the shell::

    python -m beanstalkt.worker myapp.jobs:send_email --tube emails --concurrency 8

Design: slots sharing connections
---------------------------------
A worker with ``concurrency=N`` has N *slots*; a slot runs one job at a time
and reserves only when it is free, so a busy worker never holds jobs it cannot
start. ``slots_per_connection`` slots (default 8) share one connection:
``release``, ``bury`` and ``touch`` are only accepted from the connection that
reserved the job, so each job is acknowledged and touched on its slot's
connection, and the commands of the slots of one connection travel together,
many to a write, their replies many to a read.

beanstalkd answers the commands of one connection strictly in order, and a
reserve that waits for a job holds its connection until one comes: a job's
touches and acknowledgement must never queue behind one. So a free slot asks
with ``reserve-with-timeout 0``, answered at once, job or ``TIMED_OUT``. Only
once a tube was found empty, and only on a connection with nothing else to do
(no job reserved on it, no other reserve pending), does one slot wait on the
server for the next job (``reserve_timeout`` seconds at a time, at least one:
an idle worker never spins); its siblings wait for it. On a connection whose
other slots are busy, one idle slot looks for new jobs every 0.1 s, so a new
job waits at most that long when every connection has a busy slot
(``slots_per_connection=1`` keeps one connection, and one waiting reserve, per
slot). Stopping closes the connections whose reserve waits for a job at once:
nothing else is pending there, a pending reserve never delays shutdown, and
should the server have just handed such a connection a job, closing it puts
that job straight back to ready.

Over several servers
--------------------
``Worker(handlers, servers=[...])`` reserves from every server: each gets
``ceil(concurrency / slots_per_connection)`` connections and the slots start
spread over them. A slot moves only between jobs, once its last job is
acknowledged on the connection that reserved it (``job.server`` names it).
A slot whose reserve found its server empty moves to a server where a quick
reserve (``reserve-with-timeout 0``) just handed out a job, a sign of a
backlog (a job found by a waiting reserve may be the only one, and does not
call every idle slot over); else to a server with fewer slots, so that idle
slots stay spread with one waiting reserve per server; else it stays. A slot
that just finished a job visits, with a reserve answered at once, a server
that has had no slot and no look for a reserve timeout, so no server's jobs
wait long behind another's backlog. No reserve is sent on a connection being
reconnected (it would wait): its slots move to live servers. A server back
(reconnected, or reached for the first time) is looked at by the idle slots
at once, since its binlog may hold jobs.

The cost per job
----------------
Per job a slot sends the acknowledgement of the previous job and its next
reserve back to back without waiting for the first reply (the server answers
in order, so the reservation's arrival settles the acknowledgement), and an
``async`` handler runs inside the slot's own task: no task or timer is created
per job. Nothing else is asked of the server per job:

* the tube is known when the worker has one tube (with several, each job's
  ``stats-job`` is read before its handler runs, to learn its tube);
* the job's TTR matters only to a job that runs long enough to need a touch:
  a sweep every 0.2 s finds the jobs running for longer than that, reads
  their ``stats-job`` (TTR, priority, counters) once, and touches them from
  then on every ``ttr * touch_fraction`` seconds after their reservation;
* the priority and the attempt number are read (``stats-job``) only when the
  job is not simply deleted: to release or bury it with its own priority, and
  on failure. A handler that wants them calls ``await job.load_stats()``, or
  the worker is made with ``prefetch_stats=True``.

An ``async`` handler runs in its slot's task, so a context variable it sets
stays set for the next jobs of that slot: set what you use in every job.

Outcomes
--------
* The handler returns: the job is deleted (counted ``done`` once the server
  confirms).
* It raises (or returns) :class:`Release`, :class:`Bury` or :class:`Delete`:
  that is done, with the given delay and priority. A :class:`Release` is not
  a failure: it does not use up ``max_attempts``.
* It raises anything else, a *failure*: the job is released with an
  exponential backoff delay, ``min(backoff_max, backoff_base *
  backoff_factor ** (attempt - 1))`` seconds. The attempt that reaches
  ``max_attempts`` buries the job instead, with a log line naming the job, its
  tube and the error.

How attempts are counted
------------------------
The count must survive worker restarts, so it lives in the server, in the
job's own ``stats-job`` counters; but beanstalkd's ``releases`` counts every
release, and a release that is not a failure (:class:`Release`, the hand-back
of unfinished jobs at shutdown) must not count. So a failure *marks* the job:
the worker buries it, takes it back with ``reserve-job`` and releases it with
its backoff delay, three commands in one write (``buries``, ``reserves`` and
``releases`` each grow by one). ``job.attempt`` is ``1 + buries``. Every
burial therefore counts as a failure: a job kicked after being buried for good
fails for the last time at its next failure, and a job a handler buried
(:class:`Bury`) and somebody kicked has used up one attempt. Nothing else
bumps ``buries``: a release does not, nor does a closed connection handing a
job back, nor a ``kick``. (beanstalkd 1.12, checked by the tests.) Should the
connection die between the bury and the ``reserve-job``, the job stays buried,
visible to :func:`buried_tubes`, rather than lost.

A job no handler can be given, because its body is damaged on the server or
is not text in the worker's ``encoding`` (:class:`~beanstalkt.BadJob`), is
buried at once with a log line, and counted ``buried``.

Reservations lost with a connection (a beanstalkd restart, a network failure)
are never acknowledged on the new connection: the job is counted ``lost``, the
server makes it ready again (binlog) and some worker runs it again. Delivery
is at least once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import inspect
import logging
import math
import signal
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from ..address import format_address, parse_address
from ..client import Client
from ..connection import SSLOption
from ..errors import (
    BadJob,
    BeanstalkConnectionError,
    BeanstalkException,
    Buried,
    ConnectionLost,
    DeadlineSoon,
    NotFound,
    ReservationLost,
    TimedOut,
)
from ..models import Body, Job, StatsJob
from ..ops.monitor import per_tube
from ..protocol import (
    MAX_RESERVE_TIMEOUT,
    MAX_UINT32,
    Seconds,
    check_integer,
    check_interval,
    check_seconds,
    check_tube_name,
)

if TYPE_CHECKING:  # the metrics extra is optional: imported only when used
    from ..ops.metrics import WorkerMetrics

logger = logging.getLogger("beanstalkt.worker")

#: What a handler may be: ``async def handler(job)`` or a plain function (run in
#: a thread). It returns nothing useful (or a :class:`JobAction`).
Handler = Callable[["ReservedJob"], Any]

# A slot that got DEADLINE_SOON for a job it does not run waits this long
# before reserving again (the server frees that job within its last second).
_DEADLINE_SOON_PAUSE = 0.2
# After an unexpected error in a slot, pause before trying again.
_ERROR_PAUSE = 1.0
# After the grace period, how long unfinished jobs may take to be released.
_RELEASE_TIMEOUT = 5.0
# How often running jobs are looked at for TTR touches. The smallest TTR is one
# second, due for a touch after 0.5 s with the default touch_fraction: a job is
# found by the sweep at most this long after it started, well before that.
_TTR_SWEEP_INTERVAL = 0.2
# How often an idle slot sharing a connection with running jobs looks for new ones.
_IDLE_POLL_INTERVAL = 0.1


# ----------------------------------------------------------------------
# What handlers see and what they may ask for.


class ReservedJob(Job[Any]):
    """A job reserved by a :class:`Worker`, as its handler receives it.

    Still a :class:`~beanstalkt.Job` (``job.id``, ``job.body``, equal to
    ``{'id': ..., 'body': ...}``), plus its ``tube`` (always known) and what
    the job's ``stats-job`` says: :attr:`stats`, :attr:`priority`, :attr:`ttr`
    and :attr:`attempt`. Those are read from the server only when needed (see
    the module's documentation): in a handler, ``await job.load_stats()``
    first, unless the worker has ``prefetch_stats=True``; reading them before
    raises ``RuntimeError``.
    """

    __slots__ = ("_epoch", "_lane", "_slot", "_stats", "tube")

    def __init__(self, id: int, body: Body, tube: str, stats: Optional[StatsJob] = None) -> None:
        super().__init__(id, body)
        #: The tube the job was reserved from.
        self.tube = tube
        self._stats = stats
        # The slot that reserved it, the connection it was reserved on (a
        # slot of a pooled worker moves between servers from job to job) and
        # that connection's epoch then (None: made by hand).
        self._slot: Optional[_Slot] = None
        self._lane: Optional[_Lane] = None
        self._epoch = 0

    @property
    def server(self) -> Optional[str]:
        """The address of the server that handed the job out (``None``: made by hand).

        ``"host:port"`` (or ``unix:/path``): with ``Worker(servers=...)``, as
        spelled by :func:`~beanstalkt.address.format_address`. The job is
        acknowledged and touched there, on the connection that reserved it.
        """
        lane = self._lane
        return None if lane is None else lane.address

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
        :class:`~beanstalkt.ConnectionLost` when that reservation is gone with
        its connection, and with :class:`~beanstalkt.NotFound` when the job no
        longer exists.
        """
        if self._stats is not None and not refresh:
            return self._stats
        lane = self._lane
        if lane is None:
            raise RuntimeError(f"job {self.id} was not reserved by a worker: no stats to load")
        if lane.epoch != self._epoch or lane.client.closed():
            raise ConnectionLost(
                command=f"stats-job {self.id}",
                message=f"job {self.id}: its reservation was lost with the connection",
            )
        stats = await lane.client.stats_job(self.id)
        if lane.epoch != self._epoch:
            # Answered by a new connection: after a restart without binlog
            # this id may name another job.
            raise ConnectionLost(
                command=f"stats-job {self.id}",
                message=f"job {self.id}: its reservation was lost with the connection",
            )
        self._stats = stats
        return stats

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

        Releases that are not failures do not count; see the module's
        documentation, "How attempts are counted".
        """
        return self.stats.get("buries", 0) + 1

    def __repr__(self) -> str:
        attempt = f", attempt={self.attempt}" if self._stats is not None else ""
        return f"ReservedJob(id={self.id!r}, tube={self.tube!r}{attempt})"


def _reserved_job(job: Job[Any], tube: str, slot: _Slot, stats: Optional[StatsJob]) -> ReservedJob:
    """The :class:`ReservedJob` a handler gets for ``job``, reserved by ``slot``.

    The one place a reserved :class:`~beanstalkt.Job` becomes a ReservedJob
    (what else the reservation carries is copied over here).
    """
    reserved = ReservedJob(job.id, job.body, tube, stats)
    # Acknowledged as a Job: the client refuses (ReservationLost) to act on
    # it once the connection that reserved it is gone.
    reserved.reservation = job.reservation
    reserved._slot = slot
    reserved._lane = slot.lane
    reserved._epoch = slot.epoch
    return reserved


class JobAction(Exception):
    """Base of what a handler may raise (or return) to decide a job's fate itself.

    Each action carries out its own decision (its ``_settle`` method): the worker
    only asks it to.
    """

    #: Whether the job counts as done (finished by its handler) in the metrics.
    finishes_job = False

    async def _settle(
        self, worker: Worker, slot: _Slot, job: ReservedJob, counters: TubeCounters
    ) -> Optional[asyncio.Future[Any]]:
        """Tell the server what becomes of ``job``; return the acknowledgement sent, if any."""
        raise NotImplementedError


class Release(JobAction):
    """Put the job back to ready, after ``delay`` seconds, without counting a failure.

    ``priority`` defaults to the job's own. The job's ``releases`` grows, but
    the attempt number does not (it counts failures only).
    """

    def __init__(self, delay: Seconds = 0, priority: Optional[int] = None) -> None:
        seconds = check_seconds("delay", delay)
        super().__init__(f"release with delay {seconds}s")
        self.delay = seconds
        self.priority = (
            None if priority is None else check_integer("priority", priority, 0, MAX_UINT32)
        )

    async def _settle(
        self, worker: Worker, slot: _Slot, job: ReservedJob, counters: TubeCounters
    ) -> Optional[asyncio.Future[Any]]:
        return await worker._release(slot, job, counters, self.priority, self.delay, "released")


class Bury(JobAction):
    """Bury the job at once, whatever attempt this is (``reason`` is logged).

    Should somebody kick it, the burial counts as one failed attempt.
    """

    def __init__(self, reason: str = "", priority: Optional[int] = None) -> None:
        super().__init__(reason or "buried by its handler")
        self.reason = reason
        self.priority = (
            None if priority is None else check_integer("priority", priority, 0, MAX_UINT32)
        )

    async def _settle(
        self, worker: Worker, slot: _Slot, job: ReservedJob, counters: TubeCounters
    ) -> Optional[asyncio.Future[Any]]:
        logger.warning("job %d (tube %s) buried by its handler: %s", job.id, job.tube, self)
        return await worker._bury(slot, job, counters, self.priority)


class Delete(JobAction):
    """Delete the job without running it further (counted ``done``; ``reason`` is logged)."""

    finishes_job = True

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason or "deleted by its handler")
        self.reason = reason

    async def _settle(
        self, worker: Worker, slot: _Slot, job: ReservedJob, counters: TubeCounters
    ) -> Optional[asyncio.Future[Any]]:
        logger.info("job %d (tube %s) deleted by its handler: %s", job.id, job.tube, self)
        return worker._delete(slot, job, counters)


# ----------------------------------------------------------------------
# Counters.

#: The per-tube counters, in the order they are reported.
COUNTER_NAMES = ("done", "failed", "retried", "released", "buried", "lost", "in_progress")


class TubeCounters:
    """What a worker did with the jobs of one tube.

    * ``done``: deleted after the handler succeeded (or raised :class:`Delete`);
    * ``failed``: handler runs that raised an error (each one, retried or not);
    * ``retried``: failed jobs released with a backoff delay;
    * ``released``: jobs released without a failure (:class:`Release`, or
      unfinished at shutdown);
    * ``buried``: jobs buried (after ``max_attempts``, or :class:`Bury`);
    * ``lost``: jobs whose reservation was lost (connection lost, TTR expired):
      their outcome was not recorded, and the server will hand them out again;
    * ``in_progress``: handlers running right now.
    """

    __slots__ = (*COUNTER_NAMES, "_metrics", "_tube")

    def __init__(self, tube: str = "", metrics: Optional[WorkerMetrics] = None) -> None:
        for name in COUNTER_NAMES:
            setattr(self, name, 0)
        self._tube = tube
        self._metrics = metrics

    def add(self, name: str) -> None:
        """Count one more ``name`` (and tell the metrics, when the worker has them)."""
        setattr(self, name, getattr(self, name) + 1)
        metrics = self._metrics
        if metrics is not None:
            if name == "retried":
                metrics.job_retried(self._tube)
            elif name == "buried":
                metrics.job_buried(self._tube)
            elif name == "released":
                metrics.job_released(self._tube)

    done: int
    failed: int
    retried: int
    released: int
    buried: int
    lost: int
    in_progress: int

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dictionary."""
        return {name: getattr(self, name) for name in COUNTER_NAMES}


# ----------------------------------------------------------------------
# The worker.


class _Lane:
    """One connection, shared by up to ``slots_per_connection`` slots.

    Its jobs' acknowledgements and touches must never wait behind a reserve
    that waits for a job, so such a reserve is sent only when the connection
    has nothing else to do (no job reserved on it, no other reserve pending);
    otherwise slots ask with ``reserve-with-timeout 0``, answered at once.
    """

    __slots__ = (
        "address",
        "blocking",
        "changed",
        "client",
        "epoch",
        "polling",
        "reserving",
        "running",
        "site",
        "slots",
    )

    def __init__(self, client: Client[Any], site: Optional[_Site] = None) -> None:
        self.client = client
        # The server's address (what ReservedJob.server says), and, in a pooled
        # worker, the server's shared state.
        self.site = site
        self.address = site.address if site is not None else client.address
        # Slots on this connection now (a pooled worker's slots move).
        self.slots = 0
        # Bumped at each reconnect: a reservation made in an older epoch is gone.
        self.epoch = 0
        # Jobs reserved on this connection and not acknowledged yet.
        self.running = 0
        # Reserves sent and not answered yet; True while one of them may wait.
        self.reserving = 0
        self.blocking = False
        # True while one of the lane's idle slots polls for new jobs.
        self.polling = False
        # Set (and replaced) when idle slots of this lane should look again.
        self.changed: Optional[asyncio.Event] = None

    def reconnected(self) -> None:
        self.epoch += 1
        self.notify()

    def notify(self) -> None:
        changed = self.changed
        if changed is not None:
            self.changed = None
            changed.set()

    async def wait_for_change(self, timeout: Optional[float]) -> None:
        if self.changed is None:
            self.changed = asyncio.Event()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.changed.wait(), timeout)


class _Site:
    """One server of a pooled worker: its connections and what is known of its tubes.

    Slots move between servers only between jobs, so a job is always
    acknowledged on the connection that reserved it.
    """

    __slots__ = ("address", "has_work", "lanes", "looked_at", "reserved", "slots")

    def __init__(self, address: str) -> None:
        self.address = address
        self.lanes: list[_Lane] = []
        # Slots homed here now (those running a job here included).
        self.slots = 0
        # The last reserve answered here handed out a job: more may wait.
        self.has_work = False
        # Loop time of the last reserve answered here (-inf: never, or since
        # the server came back): a server nobody looked at lately gets a visit.
        self.looked_at = -math.inf
        # Jobs reserved here (the per-server count of Worker.servers).
        self.reserved = 0

    def live(self) -> bool:
        """True while at least one of its connections is established."""
        return any(not lane.client.closed() for lane in self.lanes)

    def open_lane(self) -> Optional[_Lane]:
        """Its established connection with the fewest slots, if any."""
        best: Optional[_Lane] = None
        for lane in self.lanes:
            if not lane.client.closed() and (best is None or lane.slots < best.slots):
                best = lane
        return best


class WorkerServer(NamedTuple):
    """One server of a :class:`Worker` (see :attr:`Worker.servers`).

    ``slots``: slots there now (running a job there, or looking for one);
    ``reserved``: jobs reserved there since the worker started.
    """

    address: str
    live: bool
    slots: int
    reserved: int


class _Slot:
    """A place for one running job (reused from job to job) on one lane's connection."""

    __slots__ = (
        "abandoned",
        "handler_future",
        "in_handler",
        "index",
        "job",
        "keep_alive",
        "lane",
        "reserved_at",
        "task",
        "uncounted_delete",
    )

    def __init__(self, index: int, lane: _Lane) -> None:
        self.index = index
        self.lane = lane
        lane.slots += 1
        if lane.site is not None:
            lane.site.slots += 1
        # The delete in flight that no callback counts: the slot counts it itself.
        self.uncounted_delete: Optional[tuple[TubeCounters, ReservedJob]] = None
        self.task: Optional[asyncio.Task[None]] = None
        # The job being run, when (loop time) it was reserved, and its touches.
        self.job: Optional[ReservedJob] = None
        self.reserved_at = 0.0
        self.keep_alive: Optional[asyncio.Task[None]] = None
        # True while an async handler runs inside self.task (stop() may cancel it).
        self.in_handler = False
        # A plain-function handler's future (stop() cancels that instead).
        self.handler_future: Optional[asyncio.Future[Any]] = None
        # Set by stop() when the grace period is over: hand the job back.
        self.abandoned = False

    @property
    def client(self) -> Client[Any]:
        return self.lane.client

    @property
    def epoch(self) -> int:
        return self.lane.epoch


class Worker:
    """Reserve jobs from tubes and run their handlers, ``concurrency`` at a time.

    :param handlers: ``{tube: handler}``. A handler is ``async def
        handler(job)`` or a plain function (run in a thread pool), given a
        :class:`ReservedJob`. Returning deletes the job; raising retries it
        with backoff, then buries it; raising (or returning) :class:`Release`,
        :class:`Bury` or :class:`Delete` decides explicitly.
    :param host: beanstalkd host (or ``unix:/path``), when no ``client_factory``
        (default: the :class:`~beanstalkt.Client` default, ``localhost``).
    :param port: beanstalkd port, when no ``client_factory`` (default: 11300).
    :param servers: several beanstalkd servers to reserve from, instead of
        ``host``/``port``: addresses ``"host:port"`` or ``"unix:/path"`` (see
        :func:`~beanstalkt.address.parse_address`), each once. Each server gets
        ``ceil(concurrency / slots_per_connection)`` connections, and the
        slots move, between jobs, to where the jobs are (see "Over several
        servers" in the module's documentation). :attr:`ReservedJob.server`
        names the server of a job. Servers down at :meth:`start` are retried
        every second in the background (it fails only when none answers).
    :param client_factory: called with no argument, once per connection, to
        make its (unconnected) :class:`~beanstalkt.Client`; each must be a new
        client. The worker sets its watch list and its reconnect callback.
    :param encoding: passed to the default clients (``str`` bodies).
    :param ssl: passed to the default clients: ``True`` or an
        :class:`ssl.SSLContext` for beanstalkd behind a TLS terminator.
    :param concurrency: jobs run at once (slots).
    :param max_attempts: the attempt that fails for the ``max_attempts``-th
        time buries the job (1: bury at the first failure). Only failures
        count, not :class:`Release`; see "How attempts are counted" above.
    :param backoff_base: seconds of delay after the first failure. This and the
        other times here take an ``int``, a ``float`` or a ``datetime.timedelta``.
    :param backoff_factor: each further failure multiplies the delay by this.
    :param backoff_max: the delay never exceeds this many seconds.
    :param grace_period: on :meth:`stop`, seconds running jobs may take to
        finish before they are cancelled and released for another worker.
    :param reserve_timeout: seconds each ``reserve-with-timeout`` waits for a
        job before the slot asks again. Values under one second (0 included)
        count as one second: an idle worker never polls.
    :param touch_fraction: a running job is touched every ``ttr *
        touch_fraction`` seconds, so it never reaches its TTR.
    :param executor: the thread-based executor plain-function handlers run in
        (default: a thread pool of ``concurrency`` threads, owned by the worker).
    :param stats_interval: log the counters every this many seconds (``None``: never).
    :param metrics: a :class:`beanstalkt.ops.metrics.WorkerMetrics` to record
        Prometheus metrics in (the ``metrics`` extra); ``None``: none, and
        nothing of prometheus_client is imported.
    :param prefetch_stats: read every job's ``stats-job`` before its handler
        runs, so that :attr:`ReservedJob.attempt`, ``priority``, ``ttr`` and
        ``stats`` can be read at once (one more round trip per job).
    :param slots_per_connection: slots sharing one connection (the worker
        opens ``ceil(concurrency / slots_per_connection)``). Shared, their
        commands travel together, several to a write; 1 gives every slot a
        connection of its own, which picks up a new job the moment it is put
        even while the other slots of the worker are busy (a shared connection
        with busy slots looks for new jobs every 0.1 s instead).
    """

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        *,
        host: Optional[str] = None,
        port: Optional[int] = None,
        servers: Optional[Sequence[str]] = None,
        client_factory: Optional[Callable[[], Client[Any]]] = None,
        encoding: Optional[str] = None,
        ssl: SSLOption = None,
        concurrency: int = 1,
        max_attempts: int = 5,
        backoff_base: Seconds = 1.0,
        backoff_factor: float = 2.0,
        backoff_max: Seconds = 3600.0,
        grace_period: Seconds = 30.0,
        reserve_timeout: Seconds = 1.0,
        touch_fraction: float = 0.5,
        executor: Optional[concurrent.futures.Executor] = None,
        stats_interval: Optional[Seconds] = None,
        metrics: Optional[WorkerMetrics] = None,
        prefetch_stats: bool = False,
        slots_per_connection: int = 8,
    ) -> None:
        if not handlers:
            raise ValueError("handlers must name at least one tube")
        for tube, handler in handlers.items():
            check_tube_name(tube)
            if not callable(handler):
                raise TypeError(f"the handler of tube {tube!r} is not callable")
        check_integer("concurrency", concurrency, 1, 10_000)
        check_integer("slots_per_connection", slots_per_connection, 1, 10_000)
        check_integer("max_attempts", max_attempts, 1, MAX_UINT32)
        # The worker's own times: seconds or a timedelta, finite, not negative.
        backoff_base = check_interval("backoff_base", backoff_base)
        backoff_max = check_interval("backoff_max", backoff_max)
        grace_period = check_interval("grace_period", grace_period)
        if stats_interval is not None:
            stats_interval = check_interval("stats_interval", stats_interval)
        if backoff_base < 0 or backoff_factor < 1 or backoff_max < 0:
            raise ValueError("backoff needs base >= 0, factor >= 1 and max >= 0")
        if not 0 <= grace_period < math.inf:
            raise ValueError("grace_period must be finite and not negative")
        # The wire's rule for a reserve timeout (a timedelta too; fractions round up).
        reserve_seconds = check_seconds(
            "reserve_timeout", reserve_timeout, MAX_RESERVE_TIMEOUT, round_up=True
        )
        if not 0 < touch_fraction < 1:
            raise ValueError("touch_fraction must be between 0 and 1")
        self.handlers: dict[str, Handler] = dict(handlers)
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_factor = backoff_factor
        self.backoff_max = backoff_max
        self.grace_period = grace_period
        self.reserve_timeout = reserve_timeout
        self.touch_fraction = touch_fraction
        self.stats_interval = stats_interval
        #: Where Prometheus metrics are recorded (``None``: nowhere).
        self.metrics = metrics
        self.prefetch_stats = prefetch_stats
        self.slots_per_connection = slots_per_connection
        # Whole seconds, at least one: reserve-with-timeout 0 on an empty tube
        # answers at once, and a slot asking again at once spins.
        self._reserve_seconds = max(1, reserve_seconds)
        # With one tube every job's tube is known without asking the server.
        self._only_tube = next(iter(self.handlers)) if len(self.handlers) == 1 else None
        # A pooled worker: one _Site per server, slots moving between them.
        self._sites: list[_Site] = []
        self._site_addresses: list[tuple[str, int]] = []
        if servers is not None:
            if isinstance(servers, str):
                raise TypeError("servers must be a list of addresses, not one string")
            if host is not None or port is not None or client_factory is not None:
                raise TypeError("give either servers=, or host=/port=/client_factory=, not both")
            for text in servers:
                parsed = parse_address(text)
                address_text = format_address(*parsed)
                if any(site.address == address_text for site in self._sites):
                    raise ValueError(f"server {address_text} is listed twice")
                self._sites.append(_Site(address_text))
                self._site_addresses.append(parsed)
            if not self._sites:
                raise ValueError("servers must name at least one server")
        self._encoding = encoding
        self._ssl = ssl
        # Background first connections of the servers down at start().
        self._connecting: list[asyncio.Task[None]] = []
        if client_factory is None:
            address: dict[str, Any] = {}
            if host is not None:
                address["host"] = host
            if port is not None:
                address["port"] = port
            client_factory = functools.partial(Client, encoding=encoding, ssl=ssl, **address)
        self._client_factory = client_factory
        self._executor = executor
        self._own_executor = False
        self._coroutine_handlers = {
            tube: _is_coroutine_function(handler) for tube, handler in self.handlers.items()
        }
        self._counters: dict[str, TubeCounters] = {
            tube: TubeCounters(tube, metrics) for tube in self.handlers
        }
        self._lanes: list[_Lane] = []
        self._slots: list[_Slot] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stats_task: Optional[asyncio.Task[None]] = None
        self._ttr_task: Optional[asyncio.Task[None]] = None
        self._started = False
        self._stopping = False
        self._stop_requested: Optional[asyncio.Event] = None
        self._stopped: Optional[asyncio.Event] = None
        self._stop_task: Optional[asyncio.Task[None]] = None
        self._signals: list[int] = []
        # Plain-function handlers running in threads (which cannot be cancelled).
        self._threads_busy = 0
        self._threads_lock = threading.Lock()

    def __repr__(self) -> str:
        state = "stopping" if self._stopping else "running" if self._started else "new"
        return f"<beanstalkt.Worker {sorted(self.handlers)} x{self.concurrency} {state}>"

    # ------------------------------------------------------------------
    # Life cycle.

    async def start(self) -> None:
        """Connect every slot, watch the tubes, and start working in the background.

        Fails with :class:`~beanstalkt.ConnectFailed` when the server does not
        answer (nothing is left open then).
        """
        if self._started:
            raise RuntimeError("a worker can be started only once")
        self._started = True
        _stop_requested, stopped = self._events()
        if self._stopping:  # stopped before it started
            stopped.set()
            return
        lanes = math.ceil(self.concurrency / self.slots_per_connection)
        if self._sites:
            self._make_sites(lanes)
        else:
            self._lanes = [_Lane(self._client_factory()) for _ in range(lanes)]
            # Spread evenly: 10 slots at 8 per connection make 5 + 5, not 8 + 2.
            self._slots = [
                _Slot(index, self._lanes[index % lanes]) for index in range(self.concurrency)
            ]
        try:
            if self._sites:
                await self._connect_sites()
            else:
                await asyncio.gather(*[self._prepare(lane) for lane in self._lanes])
        except BaseException:
            for lane in self._lanes:
                lane.client.close()
            if self._stopping:  # stop() during start(): that is why it failed
                return
            stopped.set()
            raise
        if self._stopping:
            return  # stop() was called meanwhile; it closes the clients
        if self._executor is None and not all(self._coroutine_handlers.values()):
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.concurrency, thread_name_prefix="beanstalkt-worker"
            )
            self._own_executor = True
        for slot in self._slots:
            slot.task = asyncio.ensure_future(self._run_slot(slot))
        self._tasks = [slot.task for slot in self._slots if slot.task is not None]
        self._ttr_task = asyncio.ensure_future(self._sweep_for_touches())
        if self.stats_interval:
            self._stats_task = asyncio.ensure_future(self._log_counters_periodically())
        logger.info(
            "worker started: tubes %s, concurrency %d", ", ".join(self.handlers), self.concurrency
        )

    async def run(self) -> None:
        """Start (unless started) and work until :meth:`stop` (or a signal) has finished."""
        if not self._started:
            await self.start()
        _stop_requested, stopped = self._events()
        await stopped.wait()

    async def stop(self, grace_period: Optional[Seconds] = None) -> None:
        """Stop gracefully; returns once every connection is closed.

        Reserving stops at once (pending reserves are cut short), running jobs
        get ``grace_period`` seconds (default: the worker's) to finish and be
        acknowledged, then the unfinished ones are cancelled and released so
        that another worker picks them up immediately. Calling it again waits
        for the same shutdown. (A handler that wants its own worker stopped
        must not await this, which waits for that handler: use
        ``asyncio.ensure_future(worker.stop())``.)
        """
        if not self._started:
            self._stopping = True  # start() and run() will return at once
            return
        if self._stop_task is None:
            grace = (
                self.grace_period
                if grace_period is None
                else check_interval("grace_period", grace_period)
            )
            self._stop_task = asyncio.ensure_future(self._shutdown(grace))
        await asyncio.shield(self._stop_task)

    def install_signal_handlers(
        self, signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT)
    ) -> None:
        """Stop gracefully on these signals (a second one releases running jobs at once).

        Unix only (it uses :meth:`asyncio.AbstractEventLoop.add_signal_handler`);
        the handlers are removed when the worker has stopped.
        """
        loop = asyncio.get_running_loop()
        for signum in signals:
            loop.add_signal_handler(signum, self._on_signal, signum)
            self._signals.append(signum)

    async def __aenter__(self) -> Worker:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------
    # Observability.

    def counters(self) -> dict[str, dict[str, int]]:
        """``{tube: {"done": .., "failed": .., ...}}``; see :class:`TubeCounters`."""
        return {tube: counters.as_dict() for tube, counters in self._counters.items()}

    def log_counters(self, level: int = logging.INFO) -> None:
        """Log one line per tube with the counters."""
        for tube, counters in self.counters().items():
            text = " ".join(f"{name}={value}" for name, value in counters.items())
            logger.log(level, "tube %s: %s", tube, text)

    @property
    def stopping(self) -> bool:
        """True once a stop has begun."""
        return self._stopping

    # ------------------------------------------------------------------
    # Slots.

    def _make_sites(self, lanes_per_site: int) -> None:
        """A pooled worker's connections (``lanes_per_site`` per server) and slots."""
        for site, (host, port) in zip(self._sites, self._site_addresses, strict=True):
            site.lanes = [
                _Lane(Client(host, port, encoding=self._encoding, ssl=self._ssl), site)
                for _ in range(lanes_per_site)
            ]
        self._lanes = [lane for site in self._sites for lane in site.lanes]
        # Slot i on server i % n: the slots start spread over the servers.
        count = len(self._sites)
        self._slots = [
            _Slot(index, self._sites[index % count].lanes[(index // count) % lanes_per_site])
            for index in range(self.concurrency)
        ]

    async def _connect_sites(self) -> None:
        """Connect every server's connections; succeed when at least one answers.

        The connections that failed are retried every second in the
        background; raises the first failure when none answers.
        """
        outcomes = await asyncio.gather(
            *[self._prepare(lane) for lane in self._lanes], return_exceptions=True
        )
        failed = []
        for lane, outcome in zip(self._lanes, outcomes, strict=True):
            if outcome is None:
                continue
            if not isinstance(outcome, BeanstalkConnectionError):
                raise outcome
            failed.append((lane, outcome))
        if len(failed) == len(self._lanes):
            raise failed[0][1]
        for lane, error in failed:
            logger.warning(
                "worker: %s unreachable (%s); retrying every second", lane.address, error
            )
            self._connecting.append(asyncio.ensure_future(self._connect_later(lane)))

    async def _connect_later(self, lane: _Lane) -> None:
        # A client reconnects by itself only after a first success: until
        # then, retrying is the worker's job.
        while not self._stopping:
            await self._pause(_ERROR_PAUSE)
            if self._stopping:
                return
            try:
                await self._prepare(lane)
            except BeanstalkConnectionError as exc:
                logger.debug("worker: %s still unreachable: %s", lane.address, exc)
                continue
            logger.warning("worker: %s answers; reserving from it", lane.address)
            assert lane.site is not None
            self._server_back(lane.site)
            return

    def _reconnected(self, lane: _Lane) -> None:
        lane.reconnected()
        if lane.site is not None:
            self._server_back(lane.site)
        if self.metrics is not None:
            self.metrics.reconnected()

    async def _prepare(self, lane: _Lane) -> None:
        client = lane.client
        metrics = self.metrics
        if lane.site is not None:
            client.set_reconnect_callback(functools.partial(self._reconnected, lane))
        elif metrics is None:
            client.set_reconnect_callback(lane.reconnected)
        else:

            def reconnected() -> None:
                lane.reconnected()
                metrics.reconnected()

            client.set_reconnect_callback(reconnected)
        await client.connect()
        # Watch first, so ignoring never hits the last watched tube.
        await asyncio.gather(*[client.watch(tube) for tube in self.handlers])
        extra = [tube for tube in await client.list_tubes_watched() if tube not in self.handlers]
        await asyncio.gather(*[client.ignore(tube) for tube in extra])

    async def _run_slot(self, slot: _Slot) -> None:
        """Reserve, run, acknowledge, until the worker stops."""
        lane = slot.lane
        ack: Optional[asyncio.Future[Any]] = None
        # True once a reserve found no job: only then is waiting for one worth it.
        empty = False
        pooled = bool(self._sites)
        while not self._stopping:
            try:
                if pooled:
                    # Between jobs only: the slot's last job is acknowledged
                    # on the connection that reserved it before it moves.
                    target = self._where_to(slot, empty)
                    if target is not None or lane.client.closed():
                        if ack is not None:
                            await _settle(slot, ack)
                            ack = None
                        if target is None:
                            # Every server is down: wait for one to come back
                            # (never reserve on a reconnecting client: it waits).
                            await lane.wait_for_change(_ERROR_PAUSE)
                        else:
                            self._move(slot, target)
                            lane = target
                            empty = False
                        continue
                if lane.blocking:
                    # A sibling waits for the next job on this connection: so do
                    # we (our delete, sent before its reserve, is answered first).
                    if ack is not None:
                        await _settle(slot, ack)
                        ack = None
                    await lane.wait_for_change(None)
                    continue
                # Wait on the server only when the tube was found empty and nothing
                # else of this connection's could get stuck behind the reserve.
                may_wait = empty and lane.running == 0 and lane.reserving == 0
                if may_wait and ack is not None:
                    # This reserve may be answered long after the delete: count
                    # that as soon as its own reply comes.
                    _count_when_answered(slot, ack)
                # Written right behind the previous acknowledgement: the server
                # answers both in order, so once the job (or TIMED_OUT) is here,
                # the acknowledgement is settled too.
                reservation = lane.client.reserve(timeout=self._reserve_seconds if may_wait else 0)
                lane.reserving += 1
                lane.blocking = may_wait
                job = None
                try:
                    if self._stopping:
                        reservation.add_done_callback(_retrieve)
                    else:
                        try:
                            job = await reservation
                        except BeanstalkException as exc:
                            await self._no_job(slot, exc)
                        else:
                            if lane.client.closed():
                                # Lost with the connection before it could start:
                                # the server has already put it back.
                                job = None
                            else:
                                # Counted in the same step as the reserve's end: no
                                # sibling may see the lane empty in between.
                                lane.running += 1
                                if pooled:
                                    self._found_job(lane, may_wait)
                finally:
                    lane.reserving -= 1
                    if may_wait:
                        lane.blocking = False
                    if may_wait or job is not None:
                        # Idle siblings look again: the tube may hold more.
                        lane.notify()
                if ack is not None:
                    await _settle(slot, ack)
                    ack = None
                if job is not None:
                    empty = False
                    try:
                        ack = await self._run_job(slot, job)
                    finally:
                        lane.running -= 1
                        lane.notify()
                else:
                    empty = True
                    if (lane.running or lane.reserving) and not self._stopping:
                        await self._idle(lane)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("worker slot %d: unexpected error; going on", slot.index)
                await self._pause(_ERROR_PAUSE)
        if ack is not None:
            await _settle(slot, ack)

    # ------------------------------------------------------------------
    # Over several servers: where a slot goes between jobs.

    def _where_to(self, slot: _Slot, empty: bool) -> Optional[_Lane]:
        """The connection ``slot`` should move to before its next reserve (None: stay).

        * Its server is down: to a live one, one with work first.
        * It found its server empty: to a server whose last quick reserve
          handed out a job (work waits there), else to a server with fewer
          slots (idle slots spread out, one waiting reserve on each server),
          else to a server nobody has looked at for a reserve timeout.
        * Busy where it is: it stays, unless a server has had no slot and no
          look for a reserve timeout: then it pays that one a visit (its
          jobs never wait long behind another server's backlog).
        """
        lane = slot.lane
        site = lane.site
        assert site is not None
        sites = self._sites
        if lane.client.closed():
            best: Optional[_Lane] = None
            best_rank = (True, 0)
            for other in sites:
                candidate = other.open_lane()
                if candidate is None:
                    continue
                rank = (not other.has_work, other.slots)
                if best is None or rank < best_rank:
                    best, best_rank = candidate, rank
            return best
        if len(sites) == 1:
            return None
        now = asyncio.get_running_loop().time()
        stale_before = now - self._reserve_seconds
        if not empty:
            for other in sites:
                if other.slots == 0 and other.looked_at < stale_before:
                    candidate = other.open_lane()
                    if candidate is not None:
                        other.looked_at = now  # one visitor at a time
                        return candidate
            return None
        with_work: Optional[_Lane] = None
        fewest: Optional[_Lane] = None
        unseen: Optional[_Lane] = None
        for other in sites:
            if other is site:
                continue
            candidate = other.open_lane()
            if candidate is None:
                continue
            if other.has_work and (with_work is None or other.slots < _site_slots(with_work)):
                with_work = candidate
            if fewest is None or other.slots < _site_slots(fewest):
                fewest = candidate
            if other.slots == 0 and other.looked_at < stale_before:
                unseen = candidate
        if with_work is not None:
            return with_work
        if fewest is not None and site.slots > _site_slots(fewest) + 1:
            return fewest
        if unseen is not None:
            assert unseen.site is not None
            unseen.site.looked_at = now
            return unseen
        return None

    def _move(self, slot: _Slot, target: _Lane) -> None:
        """Move an idle slot to another connection (of its server, or of another)."""
        old = slot.lane
        old.slots -= 1
        target.slots += 1
        if old.site is not target.site:
            assert old.site is not None and target.site is not None
            old.site.slots -= 1
            target.site.slots += 1
        slot.lane = target
        # Its former siblings look again: one of them may now wait on the server.
        old.notify()

    def _found_job(self, lane: _Lane, waited: bool) -> None:
        """A reserve on ``lane`` handed out a job: note it on the server's record."""
        site = lane.site
        assert site is not None
        site.reserved += 1
        site.looked_at = asyncio.get_running_loop().time()
        # A job that came to a waiting reserve may be the only one; one found
        # by a quick reserve means a backlog: idle slots elsewhere come over.
        if not waited and not site.has_work:
            site.has_work = True
            self._wake_all()

    def _wake_all(self) -> None:
        """Every waiting idle slot looks again (work was found, or a server is back)."""
        for lane in self._lanes:
            lane.notify()

    def _server_back(self, site: _Site) -> None:
        """A server of a pooled worker answers again: have its jobs looked at."""
        # Its binlog may hold jobs: slots come to look rather than wait for a visit.
        site.has_work = True
        site.looked_at = -math.inf
        self._wake_all()

    @property
    def servers(self) -> list[WorkerServer]:
        """Each server of a pooled worker (``servers=``): live, its slots, jobs reserved.

        Empty for a worker of one server (``host``/``port`` or ``client_factory``).
        """
        return [
            WorkerServer(site.address, site.live(), site.slots, site.reserved)
            for site in self._sites
        ]

    async def _idle(self, lane: _Lane) -> None:
        """Nothing to reserve, and jobs of the lane still running: wait for news.

        One idle slot per lane polls every ``_IDLE_POLL_INTERVAL`` seconds;
        the others wait until the lane changes (a job comes or finishes).
        """
        if lane.polling:
            await lane.wait_for_change(None)
            return
        lane.polling = True
        try:
            await lane.wait_for_change(_IDLE_POLL_INTERVAL)
        finally:
            lane.polling = False

    async def _no_job(self, slot: _Slot, error: BeanstalkException) -> None:
        """A reserve answered without a job to run; raises what it cannot handle."""
        if isinstance(error, TimedOut):
            site = slot.lane.site
            if site is not None:
                site.has_work = False
                site.looked_at = asyncio.get_running_loop().time()
            if self.metrics is not None:
                self.metrics.reserve_timed_out(self._only_tube or "")
            return
        if isinstance(error, BadJob):
            # Reserved, but its body is damaged or not text: no handler can run
            # it, and released it would come back to every worker. Bury it.
            slot.lane.running += 1
            try:
                await self._bury_bad_job(slot, error)
            finally:
                slot.lane.running -= 1
        elif isinstance(error, DeadlineSoon):
            # A job reserved on this connection is in its last second before
            # its TTR (one a client_factory handed over reserved, or one whose
            # touch is due): the server frees it, or we touch it, shortly.
            logger.debug("worker slot %d: DEADLINE_SOON; reserving again shortly", slot.index)
            await self._pause(_DEADLINE_SOON_PAUSE)
        elif isinstance(error, BeanstalkConnectionError):
            if not self._stopping:
                # The next reserve waits for the reconnection; a closed client
                # (NotConnected) would answer at once, hence the pause.
                logger.debug("worker slot %d: %s", slot.index, error)
                # (A pooled worker's slot moves to a live server instead.)
                if slot.client.closed() and not self._sites:
                    await self._pause(_ERROR_PAUSE)
        else:
            raise error

    async def _bury_bad_job(self, slot: _Slot, error: BadJob) -> None:
        """Bury a reserved job whose body cannot be handed to a handler."""
        assert error.job_id is not None  # set for every BadJob the protocol raises
        try:
            stats = await slot.client.stats_job(error.job_id)
            await slot.client.bury(error.job_id, stats["pri"])
        except BeanstalkException as exc:
            logger.warning("job %d: could not bury it (%s): %s", error.job_id, exc, error)
            return
        tube = stats["tube"]
        self._counters_of(tube).buried += 1
        logger.error("job %d (tube %s) buried without running it: %s", error.job_id, tube, error)

    def _counters_of(self, tube: str) -> TubeCounters:
        counters = self._counters.get(tube)
        if counters is None:
            counters = self._counters[tube] = TubeCounters(tube, self.metrics)
        return counters

    async def _run_job(self, slot: _Slot, job: Job[Any]) -> Optional[asyncio.Future[Any]]:
        """Run one reserved job; return its acknowledgement, if one was sent."""
        loop = asyncio.get_running_loop()
        reserved_at = loop.time()
        tube = self._only_tube
        stats: Optional[StatsJob] = None
        if tube is None or self.prefetch_stats:
            epoch = slot.epoch
            try:
                stats = await slot.client.stats_job(job.id)
            except (BeanstalkConnectionError, NotFound) as exc:
                logger.warning("job %d: reservation lost before it started (%s)", job.id, exc)
                return None
            if slot.epoch != epoch:
                logger.warning("job %d: reservation lost before it started", job.id)
                return None
            tube = stats["tube"]
        reserved = _reserved_job(job, tube, slot, stats)
        counters = self._counters_of(tube)
        if self._stopping:
            # Stopped between reservation and start: hand it back untouched.
            return await self._release(slot, reserved, counters, None, 0, "released")
        handler = self.handlers.get(tube)
        if handler is None:
            # Cannot happen with the watch list set up by start(); the delay
            # keeps a misconfigured client from spinning on the same job.
            logger.error("job %d: no handler for tube %r; releasing it", job.id, tube)
            return await self._release(slot, reserved, counters, None, 1, "released")

        metrics = self.metrics
        if metrics is not None:
            self._record_queue_latency(slot, reserved, metrics)
        slot.job = reserved
        slot.reserved_at = reserved_at
        slot.abandoned = False
        counters.in_progress += 1
        started = loop.time()
        action: Optional[JobAction]
        error: Optional[BaseException]
        try:
            if self._coroutine_handlers[tube]:
                # Inline (not a method of its own): one coroutine less per job.
                slot.in_handler = True
                try:
                    result = await handler(reserved)
                except JobAction as raised:
                    action, error = raised, None
                except asyncio.CancelledError:
                    if not slot.abandoned:
                        raise  # the slot itself is being cancelled
                    # stop() gave up on it (see _abandon_running_jobs).
                    _uncancel(slot.task)
                    action, error = Release(), None  # back, with its own priority
                except Exception as exc:
                    action, error = None, exc
                else:
                    # A handler finishing in the instant its grace period ended
                    # is done all the same.
                    action = result if isinstance(result, JobAction) else None
                    error = None
                finally:
                    slot.in_handler = False
            else:
                action, error = await self._call_thread_handler(slot, handler, reserved)
        finally:
            counters.in_progress -= 1
            slot.job = None
            if slot.keep_alive is not None:
                slot.keep_alive.cancel()
                slot.keep_alive = None
        if metrics is not None:
            # Done: the handler finished the job (returned, or raised Delete);
            # a Release or Bury it asked for is counted when the server agrees.
            seconds = loop.time() - started
            if error is not None:
                metrics.job_failed(tube, seconds)
            elif action is None or action.finishes_job:
                metrics.job_done(tube, seconds)
        if action is None and error is None:
            return self._delete(slot, reserved, counters)
        return await self._decide(slot, reserved, counters, action, error)

    def _record_queue_latency(self, slot: _Slot, job: ReservedJob, metrics: WorkerMetrics) -> None:
        """How long ``job`` waited in its tube: its ``age`` when reserved.

        From the stats already read, or from a ``stats-job`` pipelined behind
        the reservation and not waited for (one more command per job, only
        when metrics are on).
        """
        if job.stats_loaded:
            metrics.queue_latency(job.tube, job.stats.get("age", 0))
            return

        def record(future: asyncio.Future[StatsJob]) -> None:
            if not future.cancelled() and future.exception() is None:
                metrics.queue_latency(job.tube, future.result().get("age", 0))

        slot.client.stats_job(job.id).add_done_callback(record)

    async def _call_thread_handler(
        self, slot: _Slot, handler: Handler, job: ReservedJob
    ) -> tuple[Optional[JobAction], Optional[BaseException]]:
        """Run a plain-function handler in the executor; stop() may cancel its future."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self._run_in_thread, handler, job)
        slot.handler_future = future
        try:
            result = await future
            if inspect.isawaitable(result):  # a plain function that returned a coroutine
                slot.handler_future = None
                slot.in_handler = True
                result = await result
        except JobAction as action:
            return action, None
        except asyncio.CancelledError:
            if not slot.abandoned:
                future.cancel()
                raise
            if slot.in_handler:  # the task was cancelled, not the thread's future
                _uncancel(slot.task)
            return Release(), None
        except Exception as exc:
            return None, exc
        finally:
            slot.handler_future = None
            slot.in_handler = False
        if slot.abandoned:
            return None, None
        return (result if isinstance(result, JobAction) else None), None

    async def _decide(
        self,
        slot: _Slot,
        job: ReservedJob,
        counters: TubeCounters,
        action: Optional[JobAction],
        error: Optional[BaseException],
    ) -> Optional[asyncio.Future[Any]]:
        """Turn a handler's outcome other than "returned" into delete, release or bury."""
        if error is None:
            assert action is not None  # "returned" was handled by the caller
            return await action._settle(self, slot, job, counters)
        counters.failed += 1
        if not await self._stats_for(slot, job, "retried"):
            counters.lost += 1
            return None
        attempt = job.attempt
        if attempt >= self.max_attempts:
            logger.error(
                "job %d (tube %s) failed on attempt %d of %d; burying it: %s",
                job.id,
                job.tube,
                attempt,
                self.max_attempts,
                _describe(error),
                exc_info=error,
            )
            return await self._bury(slot, job, counters, None)
        delay = self.backoff_delay(attempt)
        logger.warning(
            "job %d (tube %s) failed on attempt %d of %d; retrying in %ds: %s",
            job.id,
            job.tube,
            attempt,
            self.max_attempts,
            delay,
            _describe(error),
        )
        return self._retry(slot, job, counters, delay)

    def _run_in_thread(self, handler: Handler, job: ReservedJob) -> Any:
        with self._threads_lock:
            self._threads_busy += 1
        try:
            return handler(job)
        finally:
            with self._threads_lock:
                self._threads_busy -= 1

    def backoff_delay(self, attempt: int) -> int:
        """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...)."""
        try:
            delay = self.backoff_base * self.backoff_factor ** (attempt - 1)
        except OverflowError:
            delay = self.backoff_max
        return min(MAX_UINT32, math.ceil(min(self.backoff_max, delay)))

    # ------------------------------------------------------------------
    # Acknowledgements. Each checks that the reservation still lives on the
    # slot's connection: a reservation dies with its connection, and without
    # a binlog ids start again at 1 after a restart, so the same id on a new
    # connection may name somebody else's job.

    def _still_reserved(self, slot: _Slot, job: ReservedJob, outcome: str) -> bool:
        if slot.epoch == job._epoch and not slot.client.closed():
            return True
        logger.warning(
            "job %d (tube %s): reservation lost with the connection; not %s, "
            "it will be handed out again",
            job.id,
            job.tube,
            outcome,
        )
        return False

    async def _stats_for(self, slot: _Slot, job: ReservedJob, outcome: str) -> bool:
        """Make sure ``job.stats`` is loaded; False when the reservation is gone."""
        if job.stats_loaded:
            return True
        if not self._still_reserved(slot, job, outcome):
            return False
        try:
            await job.load_stats()
        except (BeanstalkConnectionError, NotFound) as exc:
            logger.warning(
                "job %d (tube %s): reservation lost, not %s (%s); it will be handed out again",
                job.id,
                job.tube,
                outcome,
                exc,
            )
            return False
        return True

    def _delete(
        self, slot: _Slot, job: ReservedJob, counters: TubeCounters
    ) -> Optional[asyncio.Future[Any]]:
        if not self._still_reserved(slot, job, "done"):
            counters.lost += 1
            return None
        # Counted by the slot once the server has answered (see _settle).
        slot.uncounted_delete = (counters, job)
        # In one write with the slot's next reserve, issued in this same turn.
        with slot.client.batch():
            return slot.client.delete(job)

    async def _release(
        self,
        slot: _Slot,
        job: ReservedJob,
        counters: TubeCounters,
        priority: Optional[int],
        delay: int,
        outcome: str,
    ) -> Optional[asyncio.Future[Any]]:
        if priority is None:
            if not await self._stats_for(slot, job, outcome):
                counters.lost += 1
                return None
            priority = job.priority
        if not self._still_reserved(slot, job, outcome):
            counters.lost += 1
            return None
        return _counted(slot.client.release(job, priority, delay), counters, outcome, job)

    async def _bury(
        self, slot: _Slot, job: ReservedJob, counters: TubeCounters, priority: Optional[int]
    ) -> Optional[asyncio.Future[Any]]:
        if priority is None:
            if not await self._stats_for(slot, job, "buried"):
                counters.lost += 1
                return None
            priority = job.priority
        if not self._still_reserved(slot, job, "buried"):
            counters.lost += 1
            return None
        return _counted(slot.client.bury(job, priority), counters, "buried", job)

    def _retry(
        self, slot: _Slot, job: ReservedJob, counters: TubeCounters, delay: int
    ) -> Optional[asyncio.Future[Any]]:
        """Release a failed job with ``delay``, marked as a failure (see the module doc)."""
        if not self._still_reserved(slot, job, "retried"):
            counters.lost += 1
            return None
        client = slot.client
        priority = job.priority
        # One write: nothing else of this connection's can come in between.
        buried = client.bury(job, priority)
        taken_back = client.reserve_job(job.id)
        released = client.release(job, priority, delay)
        future = asyncio.ensure_future(_retried(job, buried, taken_back, released))
        future.add_done_callback(functools.partial(_count_retry, counters, job))
        return future

    # ------------------------------------------------------------------
    # TTR.

    async def _sweep_for_touches(self) -> None:
        """Find the jobs running long enough to need touches; start touching them."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(_TTR_SWEEP_INTERVAL)
            found_before = loop.time() - _TTR_SWEEP_INTERVAL / 2
            for slot in self._slots:
                job = slot.job
                if job is not None and slot.keep_alive is None and slot.reserved_at < found_before:
                    slot.keep_alive = asyncio.ensure_future(
                        self._keep_alive(slot, job, slot.reserved_at)
                    )

    async def _keep_alive(self, slot: _Slot, job: ReservedJob, reserved_at: float) -> None:
        """Touch ``job`` every ``ttr * touch_fraction`` s (cancelled when it finishes)."""
        try:
            await job.load_stats()
        except (BeanstalkConnectionError, NotFound) as exc:
            logger.debug("job %d (tube %s): no stats, no touches: %s", job.id, job.tube, exc)
            return
        loop = asyncio.get_running_loop()
        interval = job.ttr * self.touch_fraction
        due = reserved_at + interval
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            client = slot.client
            if slot.job is not job or slot.epoch != job._epoch or client.closed():
                return
            touch = client.touch(job)
            touch.add_done_callback(functools.partial(_touched, job))
            if self.metrics is not None:
                self.metrics.touched(job.tube)
            due = loop.time() + interval

    # ------------------------------------------------------------------
    # Shutdown.

    def _events(self) -> tuple[asyncio.Event, asyncio.Event]:
        # Created on first use, in the running loop: an Event is tied to the loop that
        # first waits on it.
        if self._stop_requested is None or self._stopped is None:
            self._stop_requested = asyncio.Event()
            self._stopped = asyncio.Event()
        return self._stop_requested, self._stopped

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if not self._started:
            self._stopping = True
        elif self._stop_task is None:
            logger.info("%s: stopping (grace period %ss)", name, self.grace_period)
            self._stop_task = asyncio.ensure_future(self._shutdown(self.grace_period))
        else:
            logger.warning("%s again: releasing running jobs now", name)
            self._abandon_running_jobs()

    async def _shutdown(self, grace: float) -> None:
        stop_requested, stopped = self._events()
        self._stopping = True
        stop_requested.set()
        # Cut reserves that wait for a job short: nothing else is pending on
        # those connections. (The other reserves are answered at once.)
        for lane in self._lanes:
            if lane.blocking:
                lane.client.close()
            lane.notify()
        tasks = set(self._tasks)
        if tasks:
            _done, remaining = await asyncio.wait(tasks, timeout=grace)
            if remaining:
                running = sum(1 for slot in self._slots if slot.job is not None)
                logger.warning("grace period over: releasing %d unfinished job(s)", running)
                self._abandon_running_jobs()
                _done, remaining = await asyncio.wait(remaining, timeout=_RELEASE_TIMEOUT)
                for task in remaining:
                    task.cancel()
                if remaining:
                    await asyncio.wait(remaining)
        for lane in self._lanes:
            lane.client.close()
        for connecting in self._connecting:
            connecting.cancel()
        for slot in self._slots:
            if slot.keep_alive is not None:
                slot.keep_alive.cancel()
        for periodic in (self._stats_task, self._ttr_task):
            if periodic is not None:
                periodic.cancel()
        if self._own_executor and self._executor is not None:
            # Threads of abandoned handlers keep running: do not wait for them.
            self._executor.shutdown(wait=False)
        loop = asyncio.get_running_loop()
        for signum in self._signals:
            loop.remove_signal_handler(signum)
        self._signals = []
        self.log_counters()
        logger.info("worker stopped")
        stopped.set()

    def _abandon_running_jobs(self) -> None:
        for slot in self._slots:
            if slot.job is None or slot.abandoned:
                continue
            slot.abandoned = True
            if slot.handler_future is not None:
                slot.handler_future.cancel()
            elif slot.in_handler and slot.task is not None:
                slot.task.cancel()

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake up at once when a stop begins."""
        stop_requested, _stopped = self._events()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop_requested.wait(), seconds)

    async def _log_counters_periodically(self) -> None:
        assert self.stats_interval is not None
        while True:
            await asyncio.sleep(self.stats_interval)
            self.log_counters()


# ----------------------------------------------------------------------
# Helpers.


def _site_slots(lane: _Lane) -> int:
    assert lane.site is not None
    return lane.site.slots


def _is_coroutine_function(handler: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(handler):
        return True
    target = getattr(handler, "func", None)  # functools.partial
    if target is not None and inspect.iscoroutinefunction(target):
        return True
    call = getattr(handler, "__call__", None)  # noqa: B004 - objects with async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def _count(
    counters: TubeCounters, outcome: str, job: ReservedJob, future: asyncio.Future[Any]
) -> None:
    """Done-callback of an acknowledgement: count it, or count the job lost."""
    if future.cancelled():
        counters.lost += 1
        return
    error = future.exception()
    if error is None:
        counters.add(outcome)
    elif isinstance(error, Buried):
        # release answered BURIED: the server ran out of memory and buried it.
        counters.add("buried")
        logger.error("job %d (tube %s): the server buried it (%s)", job.id, job.tube, error)
    else:
        counters.lost += 1
        if isinstance(error, (NotFound, BeanstalkConnectionError, ReservationLost)):
            logger.warning(
                "job %d (tube %s): reservation lost, not %s (%s); it will be handed out again",
                job.id,
                job.tube,
                outcome,
                error,
            )
        else:
            logger.error("job %d (tube %s): acknowledgement failed: %s", job.id, job.tube, error)


def _touched(job: ReservedJob, future: asyncio.Future[None]) -> None:
    if future.cancelled():
        return
    error = future.exception()
    if isinstance(error, NotFound):
        logger.warning(
            "job %d (tube %s): touch refused, the reservation has expired; another "
            "worker may run it too",
            job.id,
            job.tube,
        )
    elif error is not None:
        logger.debug("job %d (tube %s): touch failed: %s", job.id, job.tube, error)


def _counted(
    future: asyncio.Future[Any], counters: TubeCounters, outcome: str, job: ReservedJob
) -> asyncio.Future[Any]:
    """``future``, counted as ``outcome`` of ``job`` once the server has answered."""
    future.add_done_callback(functools.partial(_count, counters, outcome, job))
    return future


async def _settle(slot: _Slot, ack: asyncio.Future[Any]) -> None:
    """Wait for an acknowledgement (usually answered already), and count a delete.

    A callback counts the other acknowledgements; the delete of every job
    finished is counted here, without a callback (one loop turn less per job).
    """
    if not ack.done():
        await asyncio.wait((ack,))
    uncounted = slot.uncounted_delete
    if uncounted is not None:
        slot.uncounted_delete = None
        _count(uncounted[0], "done", uncounted[1], ack)


def _count_when_answered(slot: _Slot, ack: asyncio.Future[Any]) -> None:
    """Have a callback count the slot's delete in flight, if it is one."""
    uncounted = slot.uncounted_delete
    if uncounted is not None:
        slot.uncounted_delete = None
        ack.add_done_callback(functools.partial(_count, uncounted[0], "done", uncounted[1]))


async def _retried(
    job: ReservedJob,
    buried: asyncio.Future[None],
    taken_back: asyncio.Future[Job[Any]],
    released: asyncio.Future[None],
) -> str:
    """The outcome of a retry's bury, reserve-job and release: ``retried`` or ``buried``.

    Raises what made the bury fail (the reservation was lost: nothing happened).
    """
    await asyncio.wait((buried, taken_back, released))
    bury_error = _error_of(buried)
    take_error = _error_of(taken_back)
    release_error = _error_of(released)
    if bury_error is not None:
        raise bury_error
    if take_error is None and release_error is None:
        return "retried"
    if take_error is None and isinstance(
        release_error, (BeanstalkConnectionError, ReservationLost)
    ):
        # Reserved again on a connection now gone: the server made it ready.
        raise release_error
    logger.error(
        "job %d (tube %s): buried to mark a failure, but not released (%s); it stays buried",
        job.id,
        job.tube,
        take_error or release_error,
    )
    return "buried"


def _count_retry(counters: TubeCounters, job: ReservedJob, future: asyncio.Future[str]) -> None:
    """Count the outcome of :func:`_retried`."""
    if future.cancelled() or future.exception() is not None:
        _count(counters, "retried", job, future)
        return
    counters.add(future.result())


def _error_of(future: asyncio.Future[Any]) -> Optional[BaseException]:
    if future.cancelled():
        return ConnectionLost(message="cancelled")
    return future.exception()


def _uncancel(task: Optional[asyncio.Task[None]]) -> None:
    """Forget a cancellation the slot's task has handled (Python 3.11+ counts them)."""
    uncancel = getattr(task, "uncancel", None)
    if uncancel is not None:
        uncancel()


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _describe(error: Optional[BaseException]) -> str:
    if error is None:
        return "no error"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def buried_tubes(
    client: Client[Any], tubes: Optional[Iterable[str]] = None
) -> dict[str, int]:
    """``{tube: buried job count}`` for the tubes that have buried jobs.

    Buried jobs are failures nobody has looked at yet: alert when this is not
    empty. ``tubes`` defaults to every tube on the server.
    """
    names = list(tubes) if tubes is not None else await client.list_tubes()
    every_tube = await per_tube(names, client.stats_tube)
    return {
        name: stats["current-jobs-buried"]
        for name, stats in every_tube.items()
        if stats.get("current-jobs-buried", 0)
    }


__all__ = [
    "Bury",
    "Delete",
    "Handler",
    "JobAction",
    "Release",
    "ReservedJob",
    "TubeCounters",
    "Worker",
    "WorkerServer",
    "buried_tubes",
]

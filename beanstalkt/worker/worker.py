"""A production worker: concurrency, retries with backoff, time limits, TTR touches, shutdown.

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

The rooms of ``beanstalkt/worker/``: ``job.py``, ``actions.py``,
``counters.py``, ``policy.py``, ``scheduling.py`` (pure decisions),
``acks.py``, ``failures.py``, ``ttr.py``, ``runner.py`` (the slots),
``supervisor.py``, and this module: the life cycle.

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
other slots are busy, one idle slot looks for new jobs every 0.1 s. Stopping
closes the connections whose reserve waits for a job at once: nothing else is
pending there, and should the server have just handed such a connection a job,
closing it puts that job straight back to ready.

A tube with a ``concurrency`` of its own (:class:`~beanstalkt.worker.TubePolicy`)
gets its own group of slots and connections, watching that tube alone.

Servers: one or many, one code path
-----------------------------------
``host``/``port`` name a set of one server, ``servers=[...]`` a set of many:
each server gets ``ceil(slots / slots_per_connection)`` connections and the
slots start spread over them. A slot moves only between jobs, once its last
job is acknowledged on the connection that reserved it (``job.server`` names
it); where it goes is :func:`~beanstalkt.worker.scheduling.next_site`: to a
server where a quick reserve just handed out a job (a backlog), else one with
fewer slots, else one nobody looked at for a reserve timeout. No reserve is
sent on a connection that is down or whose watch list is not set; a server
back is looked at by the idle slots at once, since its binlog may hold jobs.
:meth:`Worker.start` returns as soon as one server is ready; the others are
retried in the background with backoff and jitter. A server whose probes go
unanswered (the server layer's :class:`~beanstalkt.servers.ServerSet`) has
its connections dropped, so it keeps no slot.

The cost per job
----------------
Per job a slot sends the acknowledgement of the previous job and its next
reserve in one write, without waiting for the first reply (the server answers
in order, so the reservation's arrival settles the acknowledgement), and an
``async`` handler runs inside the slot's own task: no task or timer is created
per job (TTR touches and time limits: one sweep every 0.2 s). ``stats-job``
is read only with several tubes (for the tube), when the job is not simply
deleted, or with ``prefetch_stats=True``.

Outcomes
--------
* The handler returns: the job is deleted (counted ``done`` once the server
  confirms).
* It raises (or returns) :class:`Release`, :class:`Bury` or :class:`Delete`:
  that is done. A :class:`Release` is not a failure.
* It raises anything else, or runs past its ``time_limit``: a *failure*.
  The job is released with ``min(backoff_max, backoff_base * backoff_factor
  ** (attempt - 1))`` seconds of delay, shortened at random by up to
  ``backoff_jitter``; the attempt that reaches ``max_attempts`` buries it,
  with a failure record (:mod:`~beanstalkt.worker.failures`) beside it.

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
bumps ``buries``. Should the connection die between the bury and the
``reserve-job``, the job stays buried, visible to :func:`buried_tubes`, rather
than lost.

A job no handler can be given (its body damaged, or not text in the worker's
``encoding``: :class:`~beanstalkt.BadJob`) is buried at once, recorded and
counted ``buried``. Reservations lost with a connection are never
acknowledged on the new connection (``job.reservation`` says it is lost): the
job is counted ``lost`` and the server hands it out again. Delivery is at
least once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import signal
import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, Optional, Union

from ..address import parse_address
from ..client import Client
from ..connection import SSLOption
from ..errors import BeanstalkException, NotFound
from ..protocol import MAX_RESERVE_TIMEOUT, Seconds, check_interval, check_seconds
from ..servers import Server, ServerSet
from . import acks, scheduling
from .actions import Bury, Delete, JobAction, Release, TimeLimitExceeded
from .counters import TubeCounters
from .failures import buried_tubes
from .job import ReservedJob
from .policy import (
    DEFAULTS,
    Handler,
    Policy,
    TubePolicy,
    check_worker_options,
    is_coroutine_function,
    policies,
    worker_settings,
)
from .runner import Runner

if TYPE_CHECKING:  # the metrics extra is optional: imported only when used
    from ..ops.metrics import WorkerMetrics

logger = logging.getLogger("beanstalkt.worker")

# After the grace period, how long unfinished jobs may take to be released.
_RELEASE_TIMEOUT = 5.0
# How often running jobs are looked at for TTR touches and time limits. The
# smallest TTR is one second, due for a touch after 0.5 s with the default
# touch_fraction: a job is found by the sweep at most this long after it started.
_SWEEP_INTERVAL = 0.2
# How often burst mode looks whether the watched tubes are empty.
_BURST_INTERVAL = 0.1
#: The client options the worker sets over the Client's own defaults (which
#: already bound connects, stalls and waits for a connection: nothing waits
#: for ever on a server that accepts connections and never answers).
DEFAULT_CLIENT_OPTIONS: Mapping[str, Any] = {}


class WorkerServer(NamedTuple):
    """One server of a :class:`Worker` (see :attr:`Worker.servers`).

    ``slots``: slots there now (running a job there, or looking for one);
    ``reserved``: jobs reserved there since the worker started.
    """

    address: str
    live: bool
    slots: int
    reserved: int


class Worker:
    """Reserve jobs from tubes and run their handlers, ``concurrency`` at a time.

    :param handlers: ``{tube: handler}``, or ``{tube: TubePolicy(handler, ...)}``
        for a tube with settings of its own. A handler is ``async def
        handler(job)`` or a plain function (run in a thread pool), given a
        :class:`ReservedJob`. Returning deletes the job; raising retries it
        with backoff, then buries it; raising (or returning) :class:`Release`,
        :class:`Bury` or :class:`Delete` decides explicitly.
    :param host: beanstalkd host (or ``unix:/path``) (default ``localhost``).
    :param port: beanstalkd port (default: 11300).
    :param servers: several beanstalkd servers to reserve from, instead of
        ``host``/``port``: addresses ``"host:port"`` or ``"unix:/path"``, each
        once. The slots move, between jobs, to where the jobs are.
    :param client_factory: called with no argument, once per connection, to
        make its (unconnected) :class:`~beanstalkt.Client` (instead of
        host/port/servers); each must be a new client.
    :param encoding: passed to the clients (``str`` bodies).
    :param ssl: passed to the clients: ``True`` or an :class:`ssl.SSLContext`.
    :param client_options: more keyword arguments for every client
        (``connect_timeout``, ``stall_timeout``, ``keepalive``,
        ``reconnect_interval``, ...), over ``DEFAULT_CLIENT_OPTIONS``.
    :param concurrency: jobs run at once (slots), shared by the tubes without
        a ``concurrency`` of their own.
    :param max_attempts: the attempt that fails for the ``max_attempts``-th
        time buries the job (1: bury at the first failure). Only failures
        count, not :class:`Release`.
    :param backoff_base: seconds of delay after the first failure (0: at once).
    :param backoff_factor: each further failure multiplies the delay by this.
    :param backoff_max: the delay never exceeds this many seconds.
    :param backoff_jitter: each delay is shortened at random by up to this
        fraction of itself (0: exact delays).
    :param time_limit: seconds a handler may run before it is stopped and the
        run counts as a failure (default 600; ``None``: no limit). An
        ``async`` handler is cancelled; a thread handler's thread is
        abandoned (see :class:`TimeLimitExceeded`).
    :param grace_period: on :meth:`stop`, seconds running jobs may take to
        finish before they are cancelled and released for another worker.
    :param reserve_timeout: seconds each ``reserve-with-timeout`` waits for a
        job before the slot asks again (under one second counts as one).
    :param touch_fraction: a running job is touched every ``ttr *
        touch_fraction`` seconds, so it never reaches its TTR.
    :param executor: the thread-based executor plain-function handlers run in
        (default: a thread pool with a thread per slot, owned by the worker).
    :param stats_interval: log the counters every this many seconds (``None``: never).
    :param metrics: a :class:`beanstalkt.ops.metrics.WorkerMetrics` to record
        Prometheus metrics in (the ``metrics`` extra).
    :param prefetch_stats: read every job's ``stats-job`` before its handler runs.
    :param slots_per_connection: slots sharing one connection (1: one each).
    """

    # The Worker-wide policy settings (each tube's own: :meth:`policy`).
    max_attempts: int
    backoff_base: float
    backoff_factor: float
    backoff_max: float
    backoff_jitter: float
    time_limit: Optional[float]

    def __init__(
        self,
        handlers: Mapping[str, Union[Handler, TubePolicy]],
        *,
        host: Optional[str] = None,
        port: Optional[int] = None,
        servers: Optional[Sequence[str]] = None,
        client_factory: Optional[Callable[[], Client[Any]]] = None,
        encoding: Optional[str] = None,
        ssl: SSLOption = None,
        client_options: Optional[Mapping[str, Any]] = None,
        concurrency: int = 1,
        max_attempts: int = int(DEFAULTS["max_attempts"] or 5),
        backoff_base: Seconds = DEFAULTS["backoff_base"] or 0.0,
        backoff_factor: float = DEFAULTS["backoff_factor"] or 1.0,
        backoff_max: Seconds = DEFAULTS["backoff_max"] or 0.0,
        backoff_jitter: float = DEFAULTS["backoff_jitter"] or 0.0,
        time_limit: Optional[Seconds] = DEFAULTS["time_limit"],
        grace_period: Seconds = 30.0,
        reserve_timeout: Seconds = 1.0,
        touch_fraction: float = 0.5,
        executor: Optional[concurrent.futures.Executor] = None,
        stats_interval: Optional[Seconds] = None,
        metrics: Optional[WorkerMetrics] = None,
        prefetch_stats: bool = False,
        slots_per_connection: int = 8,
    ) -> None:
        settings = worker_settings(
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            backoff_jitter=backoff_jitter,
            time_limit=time_limit,
        )
        # The worker's own times: seconds or a timedelta, finite, not negative.
        grace_period = check_interval("grace_period", grace_period)
        if stats_interval is not None:
            stats_interval = check_interval("stats_interval", stats_interval)
        # The wire's rule for a reserve timeout (a timedelta too; fractions round up).
        reserve_seconds = check_seconds(
            "reserve_timeout", reserve_timeout, MAX_RESERVE_TIMEOUT, round_up=True
        )
        check_worker_options(concurrency, slots_per_connection, touch_fraction)
        self._policies = policies(handlers, settings)
        #: ``{tube: handler}``.
        self.handlers: dict[str, Handler] = {t: p.handler for t, p in self._policies.items()}
        self.concurrency = concurrency
        for name, value in settings.items():  # max_attempts, backoff_*, time_limit
            setattr(self, name, value)
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
        options = {**DEFAULT_CLIENT_OPTIONS, **(client_options or {})}
        self._client_options = options
        #: Seconds a connection may take to connect and set its watch list.
        self.prepare_timeout: float = 2 * (options.get("connect_timeout") or 5.0)
        self._addresses, self._factory = scheduling.addresses_of(
            host, port, servers, client_factory
        )
        self._encoding = encoding
        self._ssl = ssl
        self._executor = executor
        self._init_state()

    def _init_state(self) -> None:
        self._own_executor = False
        self._coroutine_handlers = {
            tube: is_coroutine_function(policy.handler) for tube, policy in self._policies.items()
        }
        self._counters: dict[str, TubeCounters] = {}
        for tube in self._policies:
            self._counters_of(tube)
        self._runners: list[Runner] = []
        # The servers' liveness, proven by probes (None with a client_factory).
        self._server_set: Optional[ServerSet] = None
        self._periodic: list[asyncio.Task[None]] = []
        # Bounded work beside the slots (burials whose reply was lost).
        self._background: set[asyncio.Future[None]] = set()
        # Job ids whose lost burial reply is being asked about, and those of
        # them this worker buried or retried again meanwhile (acks.verify_burial).
        self._verifying: dict[int, int] = {}
        self._settled_again: set[int] = set()
        self._started = False
        self._stopping = False
        self._stop_requested: Optional[asyncio.Event] = None
        self._stopped: Optional[asyncio.Event] = None
        self._stop_task: Optional[asyncio.Task[None]] = None
        self._signals: list[int] = []
        # Plain-function handlers running in threads (which cannot be cancelled).
        self._threads_busy = 0
        self._threads_abandoned = 0
        self._threads_lock = threading.Lock()

    def __repr__(self) -> str:
        state = "stopping" if self._stopping else "running" if self._started else "new"
        return f"<beanstalkt.Worker {sorted(self.handlers)} x{self.concurrency} {state}>"

    # ------------------------------------------------------------------
    # Life cycle.

    async def start(self) -> None:
        """Connect, watch the tubes, and start working in the background.

        Returns as soon as one server is ready (the others are retried in the
        background, with backoff), within the server layer's start bound
        (``connect_timeout`` + ``probe_timeout``, 8 s by default); fails with
        :class:`~beanstalkt.servers.NoServerAvailable` (a
        :class:`~beanstalkt.BeanstalkConnectionError`) when none answers, and
        with the first connection error when a client_factory's clients fail.
        """
        if self._started:
            raise RuntimeError("a worker can be started only once")
        self._started = True
        _stop_requested, stopped = self._events()
        if self._stopping:  # stopped before it started
            stopped.set()
            return
        try:
            if self._addresses:
                self._server_set = ServerSet(
                    self._addresses, encoding=self._encoding, ssl=self._ssl, **self._client_options
                )
                self._server_set.add_listener(self._server_changed)
                await self._server_set.start()  # returns once one server answers
            self._runners = self._make_runners()
            loop = asyncio.get_running_loop()
            firsts = [loop.create_future() for _ in self._runners]
            for runner, first in zip(self._runners, firsts, strict=True):
                await runner.connect(first)
            await asyncio.gather(*firsts)
        except BaseException:
            await self._close_all()
            if self._stopping:  # stop() during start(): that is why it failed
                return
            stopped.set()
            raise
        if self._stopping:
            return  # stop() was called meanwhile; it closes the clients
        if self._executor is None and not all(self._coroutine_handlers.values()):
            self._executor = self._new_executor()
            self._own_executor = True
        for runner in self._runners:
            runner.start()
        self._periodic = [asyncio.ensure_future(self._sweep())]
        if self.stats_interval:
            self._periodic.append(asyncio.ensure_future(self._log_counters_periodically()))
        logger.info(
            "worker started: tubes %s, concurrency %d", ", ".join(self.handlers), self.concurrency
        )

    async def run(self) -> None:
        """Start (unless started) and work until :meth:`stop` (or a signal) has finished."""
        if not self._started:
            await self.start()
        _stop_requested, stopped = self._events()
        await stopped.wait()

    async def run_burst(self) -> None:
        """Burst mode: work on the jobs ready now, and stop once the watched tubes have none.

        For batch jobs and tests. Returns when the worker has stopped: every
        job ready when it looked was run (jobs delayed, e.g. by a retry's
        backoff, are not waited for). Looks every 0.1 s, and stops when twice
        in a row no slot holds a job and no watched tube has a ready job on a
        live server.
        """
        if not self._started:
            await self.start()
        _stop_requested, stopped = self._events()
        quiet = 0
        while not self._stopping:
            await self._pause(_BURST_INTERVAL)
            quiet = quiet + 1 if await self._drained() else 0
            if quiet >= 2:
                await self.stop()
        await stopped.wait()

    async def stop(self, grace_period: Optional[Seconds] = None) -> None:
        """Stop gracefully; returns once every connection is closed.

        Reserving stops at once, running jobs get ``grace_period`` seconds
        (default: the worker's) to finish and be acknowledged, then the
        unfinished ones are cancelled and released so that another worker
        picks them up immediately. Calling it again waits for the same
        shutdown. (A handler that wants its own worker stopped must not await
        this, which waits for that handler: use ``asyncio.ensure_future(worker.stop())``.)
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

    @property
    def servers(self) -> list[WorkerServer]:
        """Each server: live (a connection ready), its slots, jobs reserved there.

        One entry for a worker of one server (a set of one).
        """
        found: dict[str, WorkerServer] = {}
        for runner in self._runners:
            for site in runner.sites:
                seen = found.get(site.address)
                if seen is None:
                    found[site.address] = WorkerServer(
                        site.address, site.live, site.slots, site.reserved
                    )
                else:
                    found[site.address] = WorkerServer(
                        site.address,
                        seen.live or site.live,
                        seen.slots + site.slots,
                        seen.reserved + site.reserved,
                    )
        return list(found.values())

    def healthy(self) -> bool:
        """True while the worker runs with at least one live server (``/healthz``)."""
        if not self._started or self._stopping:
            return False
        return any(site.live for runner in self._runners for site in runner.sites)

    def policy(self, tube: str) -> Policy:
        """The settings the worker applies to ``tube`` (its TubePolicy over the Worker's)."""
        return self._policies[tube]

    def backoff_delay(self, attempt: int, tube: Optional[str] = None) -> int:
        """Seconds after failed attempt number ``attempt`` (1, 2, ...), before jitter.

        The Worker's backoff, or ``tube``'s own. The delay used is shortened
        at random by up to ``backoff_jitter`` of it.
        """
        if tube is None:
            base, factor, most = self.backoff_base, self.backoff_factor, self.backoff_max
        else:
            own = self._policies[tube]
            base, factor, most = own.backoff_base, own.backoff_factor, own.backoff_max
        return scheduling.backoff_delay(attempt, base, factor, most)

    # ------------------------------------------------------------------
    # Used by the runners.

    def _counters_of(self, tube: str) -> TubeCounters:
        counters = self._counters.get(tube)
        if counters is None:
            running = functools.partial(self._running_in, tube)
            counters = self._counters[tube] = TubeCounters(tube, self.metrics, running)
        return counters

    def _running_in(self, tube: str) -> int:
        """Handlers of ``tube`` running now (``in_progress``): the slots holding its jobs."""
        return sum(
            1
            for runner in self._runners
            for slot in runner.slots
            if slot.job is not None and slot.job.tube == tube
        )

    def _run_in_thread(self, handler: Handler, job: ReservedJob) -> Any:
        with self._threads_lock:
            self._threads_busy += 1
        try:
            return handler(job)
        finally:
            with self._threads_lock:
                self._threads_busy -= 1

    def _new_executor(self) -> concurrent.futures.Executor:
        slots = sum(runner.concurrency for runner in self._runners) or self.concurrency
        return concurrent.futures.ThreadPoolExecutor(
            max_workers=slots, thread_name_prefix="beanstalkt-worker"
        )

    def _thread_abandoned(self, job: ReservedJob) -> None:
        """A thread handler was given up on (time limit, or the grace period): it runs on."""
        self._threads_abandoned += 1
        logger.warning(
            "job %d (tube %s): its handler thread cannot be stopped; abandoned (%d so far)",
            job.id,
            job.tube,
            self._threads_abandoned,
        )
        if self._own_executor and self._executor is not None and not self._stopping:
            # The abandoned thread keeps its place in the pool: the next jobs
            # get a fresh pool, and the old one goes once its threads return.
            old, self._executor = self._executor, self._new_executor()
            old.shutdown(wait=False)

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` beside the slots; a stop waits for it (it is bounded)."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake up at once when a stop begins."""
        stop_requested, _stopped = self._events()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop_requested.wait(), seconds)

    # ------------------------------------------------------------------
    # Inside.

    def _make_client(self, address: Optional[str]) -> Client[Any]:
        """A new client for ``address`` (None: the client_factory's, or the Client's defaults)."""
        if address is None and self._factory is not None:
            return self._factory()
        if address is not None and self._server_set is not None:
            server = self._server_set.get(address)
            return self._server_set.new_client(server.host, server.port)
        options = dict(self._client_options)
        if address is not None:
            options["host"], options["port"] = parse_address(address)
        client: Client[Any] = Client(encoding=self._encoding, ssl=self._ssl, **options)
        return client

    def _make_runners(self) -> list[Runner]:
        """One runner for the shared slots, one per tube with a concurrency of its own."""
        shared = [tube for tube, p in self._policies.items() if p.concurrency is None]
        groups = [(shared, self.concurrency)] if shared else []
        groups += [
            ([tube], p.concurrency)
            for tube, p in self._policies.items()
            if p.concurrency is not None
        ]
        runners = []
        addresses: list[Optional[str]] = list(self._addresses) or [None]
        for tubes, slots in groups:
            runner = Runner(self, tubes, slots)
            made = [self._make_client(address) for address in addresses]
            names = [
                client.address if address is None else address
                for client, address in zip(made, addresses, strict=True)
            ]
            pending = {index: [client] for index, client in enumerate(made)}

            def make(index: int, pending: dict[int, list[Client[Any]]] = pending) -> Client[Any]:
                waiting = pending[index]
                return waiting.pop() if waiting else self._make_client(addresses[index])

            entries = (
                None if self._server_set is None else [self._server_set.get(name) for name in names]
            )
            runner.build(names, make, entries)
            runners.append(runner)
        return runners

    async def _drained(self) -> bool:
        """True when no slot holds a job and no watched tube has ready jobs (burst mode)."""
        if any(lane.running for runner in self._runners for lane in runner.lanes):
            return False
        for runner in self._runners:
            for site in runner.sites:
                lane = site.open_lane()
                if lane is None:
                    continue
                # The server set's own client: never behind a lane's waiting reserve.
                client = lane.client if site.server is None else site.server.client
                for tube in runner.tubes:
                    try:
                        stats = await client.stats_tube(tube)
                    except NotFound:
                        continue
                    except BeanstalkException:
                        return False
                    if stats["current-jobs-ready"]:
                        return False
        return not any(lane.running for runner in self._runners for lane in runner.lanes)

    async def _sweep(self) -> None:
        """Every 0.2 s: start touches for jobs running long enough, cut those past their limit."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(_SWEEP_INTERVAL)
            now = loop.time()
            for runner in self._runners:
                runner.sweep(now, now - _SWEEP_INTERVAL / 2)

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
        for runner in self._runners:
            for lane in runner.lanes:
                if lane.blocking:
                    lane.client.close()
            runner.wake_all()
        tasks = {task for runner in self._runners for task in runner.tasks}
        if tasks:
            _done, remaining = await asyncio.wait(tasks, timeout=grace)
            if remaining:
                running = sum(1 for r in self._runners for slot in r.slots if slot.job is not None)
                logger.warning("grace period over: releasing %d unfinished job(s)", running)
                self._abandon_running_jobs()
                _done, remaining = await asyncio.wait(remaining, timeout=_RELEASE_TIMEOUT)
                for task in remaining:
                    task.cancel()
                if remaining:
                    await asyncio.wait(remaining)
        if self._background:
            await asyncio.wait(set(self._background), timeout=acks.VERIFY_WAIT + 5)
        await self._close_all()
        for periodic in self._periodic:
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

    def _server_changed(self, server: Server, live: bool) -> None:
        """A ServerSet listener: a server came back, or left rotation."""
        if live:
            logger.info("worker: %s is live", server.address)
        else:
            logger.warning("worker: %s is out of rotation (%s)", server.address, server.last_error)
        for runner in self._runners:
            runner.server_changed(server.address, live)

    async def _close_all(self) -> None:
        if self._server_set is not None:
            await self._server_set.close()
        for runner in self._runners:
            for connecting in runner.connecting:
                connecting.cancel()
            for lane in runner.lanes:
                lane.client.close()
            for slot in runner.slots:
                if slot.keep_alive is not None:
                    slot.keep_alive.cancel()

    def _abandon_running_jobs(self) -> None:
        for runner in self._runners:
            for slot in runner.slots:
                slot.interrupt("stop")

    async def _log_counters_periodically(self) -> None:
        assert self.stats_interval is not None
        while True:
            await asyncio.sleep(self.stats_interval)
            self.log_counters()


__all__ = [
    "DEFAULT_CLIENT_OPTIONS",
    "Bury",
    "Delete",
    "Handler",
    "JobAction",
    "Release",
    "ReservedJob",
    "TimeLimitExceeded",
    "TubeCounters",
    "TubePolicy",
    "Worker",
    "WorkerServer",
    "buried_tubes",
]

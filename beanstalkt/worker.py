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

Design: one connection per slot
-------------------------------
beanstalkd answers the commands of one connection strictly in order, and a
reserve holds its connection until a job comes or the timeout expires;
``release``, ``bury`` and ``touch`` are only accepted from the connection that
reserved the job. A single shared connection would therefore make every
acknowledgement and every TTR touch wait behind a pending reserve (and make
shutdown wait for it).

So a worker with ``concurrency=N`` opens N connections, one per *slot*. A slot
is either waiting for a job (a ``reserve-with-timeout`` is pending on its
connection) or running one (nothing else is pending on its connection, so its
touches and its final delete/release/bury go out and come back at once). A
slot reserves only when it is free, so a busy worker never holds jobs it cannot
start. The acknowledgement of a finished job is pipelined with the slot's next
reserve. Stopping closes the connections of the waiting slots at once: a
pending reserve never delays shutdown, and should the server have just handed
such a connection a job, closing it puts that job straight back to ready.

Outcomes
--------
* The handler returns: the job is deleted (counted ``done`` once the server
  confirms).
* It raises (or returns) :class:`Release`, :class:`Bury` or :class:`Delete`:
  that is done, with the given delay and priority.
* It raises anything else: the job is released with an exponential backoff
  delay, ``min(backoff_max, backoff_base * backoff_factor ** (attempt - 1))``
  seconds, where ``attempt`` is the job's own ``releases`` count (from
  ``stats-job``) plus one. The attempt that reaches ``max_attempts`` buries
  the job instead, with a log line naming the job, its tube and the error.

A job no handler can be given, because its body is damaged on the server or
is not text in the worker's ``encoding`` (:class:`~beanstalkt.BadJob`), is
buried at once with a log line, and counted ``buried``.

Reservations lost with a connection (a beanstalkd restart, a network failure)
are never acknowledged on the new connection: the job is counted ``lost``, the
server makes it ready again (binlog) and some worker runs it again. Delivery
is at least once.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import functools
import importlib
import inspect
import json
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Callable, Optional

from .client import Client
from .errors import (
    BadJob,
    BeanstalkConnectionError,
    BeanstalkException,
    Buried,
    DeadlineSoon,
    NotFound,
    TimedOut,
)
from .models import Body, Job, StatsJob
from .protocol import MAX_UINT32, check_integer, check_tube_name

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


# ----------------------------------------------------------------------
# What handlers see and what they may ask for.


class ReservedJob(Job):
    """A job reserved by a :class:`Worker`, as its handler receives it.

    Still a :class:`~beanstalkt.Job` (``job.id``, ``job.body``, equal to
    ``{'id': ..., 'body': ...}``), plus what the worker learned from
    ``stats-job`` when it reserved the job.
    """

    __slots__ = ("stats", "tube")

    def __init__(self, id: int, body: Body, tube: str, stats: StatsJob) -> None:
        super().__init__(id, body)
        self.tube = tube
        #: The ``stats-job`` reply read right after the reservation.
        self.stats = stats

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
        """Which attempt this is: 1 the first time, then 1 + the job's ``releases``."""
        return self.stats.get("releases", 0) + 1

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"ReservedJob(id={self.id!r}, tube={self.tube!r}, attempt={self.attempt})"


class JobAction(Exception):
    """Base of what a handler may raise (or return) to decide a job's fate itself."""


class Release(JobAction):
    """Put the job back to ready, after ``delay`` seconds, without counting a failure.

    ``priority`` defaults to the job's own. Note that the server counts it in
    the job's ``releases``, which is what the attempt number is read from.
    """

    def __init__(self, delay: int = 0, priority: Optional[int] = None) -> None:
        super().__init__(f"release with delay {delay}s")
        self.delay = check_integer("delay", delay, 0, MAX_UINT32)
        self.priority = (
            None if priority is None else check_integer("priority", priority, 0, MAX_UINT32)
        )


class Bury(JobAction):
    """Bury the job at once, whatever attempt this is (``reason`` is logged)."""

    def __init__(self, reason: str = "", priority: Optional[int] = None) -> None:
        super().__init__(reason or "buried by its handler")
        self.reason = reason
        self.priority = (
            None if priority is None else check_integer("priority", priority, 0, MAX_UINT32)
        )


class Delete(JobAction):
    """Delete the job without running it further (counted ``done``; ``reason`` is logged)."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason or "deleted by its handler")
        self.reason = reason


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

    __slots__ = COUNTER_NAMES

    def __init__(self) -> None:
        for name in COUNTER_NAMES:
            setattr(self, name, 0)

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


class _Running:
    """A job a slot is running: what its touches and its shutdown need."""

    __slots__ = ("abandoned", "epoch", "handler_future", "job", "touch_timer")

    def __init__(self, job: ReservedJob, epoch: int) -> None:
        self.job = job
        self.epoch = epoch
        self.handler_future: Optional[asyncio.Future[Any]] = None
        self.touch_timer: Optional[asyncio.TimerHandle] = None
        # Set by stop() when the grace period is over: hand the job back.
        self.abandoned = False


class _Slot:
    """One connection and the job it runs, if any."""

    __slots__ = ("client", "epoch", "index", "reserving", "running")

    def __init__(self, index: int, client: Client) -> None:
        self.index = index
        self.client = client
        # Bumped at each reconnect: a reservation made in an older epoch is gone.
        self.epoch = 0
        # True while the slot waits for a job (stop() may close its connection).
        self.reserving = False
        self.running: Optional[_Running] = None

    def reconnected(self) -> None:
        self.epoch += 1


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
    :param client_factory: called with no argument, once per slot, to make
        the (unconnected) :class:`~beanstalkt.Client` of that slot; each must be
        a new client. The worker sets its watch list and its reconnect callback.
    :param encoding: passed to the default clients (``str`` bodies).
    :param concurrency: jobs run at once, and connections opened.
    :param max_attempts: the attempt that fails for the ``max_attempts``-th
        time buries the job (1: bury at the first failure).
    :param backoff_base: seconds of delay after the first failure.
    :param backoff_factor: each further failure multiplies the delay by this.
    :param backoff_max: the delay never exceeds this many seconds.
    :param grace_period: on :meth:`stop`, seconds running jobs may take to
        finish before they are cancelled and released for another worker.
    :param reserve_timeout: seconds each ``reserve-with-timeout`` waits.
    :param touch_fraction: a running job is touched every ``ttr *
        touch_fraction`` seconds, so it never reaches its TTR.
    :param executor: the thread-based executor plain-function handlers run in
        (default: a thread pool of ``concurrency`` threads, owned by the worker).
    :param stats_interval: log the counters every this many seconds (``None``: never).
    """

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        *,
        host: Optional[str] = None,
        port: Optional[int] = None,
        client_factory: Optional[Callable[[], Client]] = None,
        encoding: Optional[str] = None,
        concurrency: int = 1,
        max_attempts: int = 5,
        backoff_base: float = 1.0,
        backoff_factor: float = 2.0,
        backoff_max: float = 3600.0,
        grace_period: float = 30.0,
        reserve_timeout: float = 1.0,
        touch_fraction: float = 0.5,
        executor: Optional[concurrent.futures.Executor] = None,
        stats_interval: Optional[float] = None,
    ) -> None:
        if not handlers:
            raise ValueError("handlers must name at least one tube")
        for tube, handler in handlers.items():
            check_tube_name(tube)
            if not callable(handler):
                raise TypeError(f"the handler of tube {tube!r} is not callable")
        check_integer("concurrency", concurrency, 1, 10_000)
        check_integer("max_attempts", max_attempts, 1, MAX_UINT32)
        if backoff_base < 0 or backoff_factor < 1 or backoff_max < 0:
            raise ValueError("backoff needs base >= 0, factor >= 1 and max >= 0")
        if grace_period < 0 or reserve_timeout < 0:
            raise ValueError("grace_period and reserve_timeout must not be negative")
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
        if client_factory is None:
            address: dict[str, Any] = {}
            if host is not None:
                address["host"] = host
            if port is not None:
                address["port"] = port
            client_factory = functools.partial(Client, encoding=encoding, **address)
        self._client_factory = client_factory
        self._executor = executor
        self._own_executor = False
        self._coroutine_handlers = {
            tube: _is_coroutine_function(handler) for tube, handler in self.handlers.items()
        }
        self._counters: dict[str, TubeCounters] = {tube: TubeCounters() for tube in self.handlers}
        self._slots: list[_Slot] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stats_task: Optional[asyncio.Task[None]] = None
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
        self._slots = [_Slot(index, self._client_factory()) for index in range(self.concurrency)]
        try:
            await asyncio.gather(*[self._prepare(slot) for slot in self._slots])
        except BaseException:
            for slot in self._slots:
                slot.client.close()
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
        self._tasks = [asyncio.ensure_future(self._run_slot(slot)) for slot in self._slots]
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

    async def stop(self, grace_period: Optional[float] = None) -> None:
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
            grace = self.grace_period if grace_period is None else grace_period
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

    async def _prepare(self, slot: _Slot) -> None:
        client = slot.client
        client.set_reconnect_callback(slot.reconnected)
        await client.connect()
        # Watch first, so ignoring never hits the last watched tube.
        await asyncio.gather(*[client.watch(tube) for tube in self.handlers])
        extra = [tube for tube in await client.list_tubes_watched() if tube not in self.handlers]
        await asyncio.gather(*[client.ignore(tube) for tube in extra])

    async def _run_slot(self, slot: _Slot) -> None:
        """Reserve, run, acknowledge, until the worker stops."""
        ack: Optional[asyncio.Future[None]] = None
        try:
            while not self._stopping:
                try:
                    # The next reserve goes out with the previous acknowledgement.
                    reservation = slot.client.reserve(timeout=self.reserve_timeout)
                    if ack is not None:
                        await _settled(ack)
                        ack = None
                    job = await self._await_job(slot, reservation)
                    if job is not None:
                        ack = await self._run_job(slot, job)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("worker slot %d: unexpected error; going on", slot.index)
                    await self._pause(_ERROR_PAUSE)
            if ack is not None:
                await _settled(ack)
        finally:
            # Closing hands back, server-side, anything reserved but not started.
            slot.client.close()

    async def _await_job(self, slot: _Slot, reservation: asyncio.Future[Job]) -> Optional[Job]:
        if self._stopping:
            reservation.add_done_callback(_retrieve)
            return None
        slot.reserving = True
        try:
            job = await reservation
        except TimedOut:
            return None
        except BadJob as exc:
            # Reserved, but its body is damaged or not text: no handler can run
            # it, and released it would come back to every worker. Bury it.
            await self._bury_bad_job(slot, exc)
            return None
        except DeadlineSoon:
            # Only a job this slot does not run can be near its deadline (one a
            # client_factory handed over reserved): the server frees it shortly.
            logger.debug("worker slot %d: DEADLINE_SOON; reserving again shortly", slot.index)
            await self._pause(_DEADLINE_SOON_PAUSE)
            return None
        except BeanstalkConnectionError as exc:
            if not self._stopping:
                # The next reserve waits for the reconnection; a closed client
                # (NotConnected) would answer at once, hence the pause.
                logger.debug("worker slot %d: %s", slot.index, exc)
                if slot.client.closed():
                    await self._pause(min(_ERROR_PAUSE, self.reserve_timeout or _ERROR_PAUSE))
            return None
        finally:
            slot.reserving = False
        if slot.client.closed():
            # Lost with the connection before we could start it: the server has
            # already put it back.
            return None
        return job

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
        counters = self._counters.get(tube)
        if counters is None:
            counters = self._counters[tube] = TubeCounters()
        counters.buried += 1
        logger.error("job %d (tube %s) buried without running it: %s", error.job_id, tube, error)

    async def _run_job(self, slot: _Slot, job: Job) -> Optional[asyncio.Future[None]]:
        """Run one reserved job; return the future of its acknowledgement, if one was sent."""
        client = slot.client
        epoch = slot.epoch
        try:
            stats = await client.stats_job(job.id)
        except (BeanstalkConnectionError, NotFound) as exc:
            logger.warning("job %d: reservation lost before it started (%s)", job.id, exc)
            return None
        tube = stats["tube"]
        counters = self._counters.get(tube)
        if counters is None:
            counters = self._counters[tube] = TubeCounters()
        reserved = ReservedJob(job.id, job.body, tube, stats)
        if self._stopping:
            # Stopped between reservation and start: hand it back untouched.
            return self._acknowledge(slot, reserved, epoch, counters, "released", reserved.priority)
        handler = self.handlers.get(tube)
        if handler is None:
            # Cannot happen with the watch list set up by start(); the delay
            # keeps a misconfigured client from spinning on the same job.
            logger.error("job %d: no handler for tube %r; releasing it", job.id, tube)
            return self._acknowledge(
                slot, reserved, epoch, counters, "released", reserved.priority, 1
            )

        running = _Running(reserved, epoch)
        slot.running = running
        counters.in_progress += 1
        self._schedule_touch(slot, running)
        try:
            action, error = await self._call_handler(handler, reserved, running, tube)
        finally:
            counters.in_progress -= 1
            slot.running = None
            if running.touch_timer is not None:
                running.touch_timer.cancel()
        return self._decide(slot, reserved, epoch, counters, action, error)

    async def _call_handler(
        self, handler: Handler, job: ReservedJob, running: _Running, tube: str
    ) -> tuple[Optional[JobAction], Optional[BaseException]]:
        """Run the handler; return (the action it asked for, the error it raised)."""
        loop = asyncio.get_running_loop()
        if self._coroutine_handlers.get(tube, False):
            future: asyncio.Future[Any] = loop.create_task(handler(job))
        else:
            future = loop.run_in_executor(self._executor, self._run_in_thread, handler, job)
        running.handler_future = future
        try:
            # Shielded, so that a cancelled handler (stop() gave up on it) and
            # a cancelled slot (the worker's own task) can be told apart.
            result = await asyncio.shield(future)
            if inspect.isawaitable(result):  # a plain function that returned a coroutine
                result = await result
        except JobAction as action:
            return action, None
        except asyncio.CancelledError:
            if not future.cancelled():
                future.cancel()  # the slot itself is being cancelled: take the handler along
                raise
            if running.abandoned:
                return Release(priority=job.priority), None
            return None, RuntimeError("the handler was cancelled")
        except Exception as exc:
            return None, exc
        if running.abandoned:  # it finished in the same instant the grace period ended
            return None, None
        return (result if isinstance(result, JobAction) else None), None

    def _decide(
        self,
        slot: _Slot,
        job: ReservedJob,
        epoch: int,
        counters: TubeCounters,
        action: Optional[JobAction],
        error: Optional[BaseException],
    ) -> Optional[asyncio.Future[None]]:
        """Turn a handler's outcome into delete, release or bury."""
        if error is None:
            if action is None or isinstance(action, Delete):
                if isinstance(action, Delete):
                    logger.info(
                        "job %d (tube %s) deleted by its handler: %s", job.id, job.tube, action
                    )
                return self._acknowledge(slot, job, epoch, counters, "done")
            if isinstance(action, Release):
                priority = job.priority if action.priority is None else action.priority
                return self._acknowledge(
                    slot, job, epoch, counters, "released", priority, action.delay
                )
            if isinstance(action, Bury):
                logger.warning(
                    "job %d (tube %s) buried by its handler: %s", job.id, job.tube, action
                )
                priority = job.priority if action.priority is None else action.priority
                return self._acknowledge(slot, job, epoch, counters, "buried", priority)
        counters.failed += 1
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
            return self._acknowledge(slot, job, epoch, counters, "buried", job.priority)
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
        return self._acknowledge(slot, job, epoch, counters, "retried", job.priority, delay)

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

    def _acknowledge(
        self,
        slot: _Slot,
        job: ReservedJob,
        epoch: int,
        counters: TubeCounters,
        outcome: str,
        priority: int = 0,
        delay: int = 0,
    ) -> Optional[asyncio.Future[None]]:
        """Send the delete/release/bury for ``outcome``; count it once the server agrees."""
        client = slot.client
        if slot.epoch != epoch or client.closed():
            # The reservation died with its connection. Never acknowledge on a
            # new connection: without a binlog, ids start again at 1 after a
            # restart, and this id may name somebody else's job.
            counters.lost += 1
            logger.warning(
                "job %d (tube %s): reservation lost with the connection; not %s, "
                "it will be handed out again",
                job.id,
                job.tube,
                outcome,
            )
            return None
        if outcome == "done":
            future = client.delete(job.id)
        elif outcome == "buried":
            future = client.bury(job.id, priority)
        else:
            future = client.release(job.id, priority, delay)
        future.add_done_callback(functools.partial(_count, counters, outcome, job))
        return future

    # ------------------------------------------------------------------
    # TTR.

    def _schedule_touch(self, slot: _Slot, running: _Running) -> None:
        interval = running.job.ttr * self.touch_fraction
        loop = asyncio.get_running_loop()
        running.touch_timer = loop.call_later(interval, self._touch, slot, running)

    def _touch(self, slot: _Slot, running: _Running) -> None:
        running.touch_timer = None
        if slot.running is not running or slot.epoch != running.epoch or slot.client.closed():
            return
        future = slot.client.touch(running.job.id)
        future.add_done_callback(functools.partial(_touched, running.job))
        self._schedule_touch(slot, running)

    # ------------------------------------------------------------------
    # Shutdown.

    def _events(self) -> tuple[asyncio.Event, asyncio.Event]:
        # Created on first use, inside the running loop (Python 3.9 binds them).
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
        # Cut pending reserves short: nothing of value is pending on these connections.
        for slot in self._slots:
            if slot.reserving:
                slot.client.close()
        tasks = set(self._tasks)
        if tasks:
            _done, remaining = await asyncio.wait(tasks, timeout=grace)
            if remaining:
                running = sum(1 for slot in self._slots if slot.running is not None)
                logger.warning("grace period over: releasing %d unfinished job(s)", running)
                self._abandon_running_jobs()
                _done, remaining = await asyncio.wait(remaining, timeout=_RELEASE_TIMEOUT)
                for task in remaining:
                    task.cancel()
                if remaining:
                    await asyncio.wait(remaining)
        for slot in self._slots:
            slot.client.close()
        if self._stats_task is not None:
            self._stats_task.cancel()
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
            running = slot.running
            if running is not None and not running.abandoned:
                running.abandoned = True
                if running.handler_future is not None:
                    running.handler_future.cancel()

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


def _is_coroutine_function(handler: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(handler):
        return True
    target = getattr(handler, "func", None)  # functools.partial
    if target is not None and inspect.iscoroutinefunction(target):
        return True
    call = getattr(handler, "__call__", None)  # noqa: B004 - objects with async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def _count(
    counters: TubeCounters, outcome: str, job: ReservedJob, future: asyncio.Future[None]
) -> None:
    """Done-callback of an acknowledgement: count it, or count the job lost."""
    if future.cancelled():
        counters.lost += 1
        return
    error = future.exception()
    if error is None:
        setattr(counters, outcome, getattr(counters, outcome) + 1)
    elif isinstance(error, Buried):
        # release answered BURIED: the server ran out of memory and buried it.
        counters.buried += 1
        logger.error("job %d (tube %s): the server buried it (%s)", job.id, job.tube, error)
    else:
        counters.lost += 1
        if isinstance(error, (NotFound, BeanstalkConnectionError)):
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


async def _settled(future: asyncio.Future[None]) -> None:
    """Wait for an acknowledgement whose outcome its done-callback has already counted."""
    with contextlib.suppress(BeanstalkException):
        await future


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _describe(error: Optional[BaseException]) -> str:
    if error is None:
        return "no error"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def buried_tubes(client: Client, tubes: Optional[Iterable[str]] = None) -> dict[str, int]:
    """``{tube: buried job count}`` for the tubes that have buried jobs.

    Buried jobs are failures nobody has looked at yet: alert when this is not
    empty. ``tubes`` defaults to every tube on the server.
    """
    names = list(tubes) if tubes is not None else await client.list_tubes()
    replies = await asyncio.gather(
        *[client.stats_tube(name) for name in names], return_exceptions=True
    )
    buried = {}
    for name, reply in zip(names, replies):
        if isinstance(reply, NotFound):
            continue  # the tube vanished meanwhile: nothing buried in it
        if isinstance(reply, BaseException):
            raise reply
        count = reply.get("current-jobs-buried", 0)
        if count:
            buried[name] = count
    return buried


# ----------------------------------------------------------------------
# Command line.


def load_handler(spec: str) -> Handler:
    """Import ``"package.module:function"`` (or ``module:object.method``)."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"handler must look like module:function, not {spec!r}")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{spec} is not callable")
    handler: Handler = target
    return handler


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m beanstalkt.worker",
        description="Run beanstalkd jobs through a handler function, with retries, "
        "TTR touches and graceful shutdown on SIGTERM/SIGINT.",
    )
    parser.add_argument(
        "handler", help="module:function handling every --tube without a handler of its own"
    )
    parser.add_argument(
        "--tube",
        action="append",
        default=[],
        metavar="TUBE[=module:function]",
        help="a tube to work on (repeatable; default: 'default')",
    )
    parser.add_argument(
        "--host", default=None, help="beanstalkd host, or unix:/path (default: localhost)"
    )
    parser.add_argument("--port", type=int, default=None, help="beanstalkd port (default: 11300)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="jobs run at once; one connection each (default: 1)",
    )
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=5,
        help="the attempt that fails this many times buries the job (default: 5)",
    )
    parser.add_argument(
        "--backoff-base",
        type=float,
        default=1.0,
        help="seconds of delay after the first failure (default: 1)",
    )
    parser.add_argument(
        "--backoff-factor",
        type=float,
        default=2.0,
        help="each further failure multiplies the delay by this (default: 2)",
    )
    parser.add_argument(
        "--backoff-max",
        type=float,
        default=3600.0,
        help="cap on the delay, seconds (default: 3600)",
    )
    parser.add_argument(
        "--grace-period",
        type=float,
        default=30.0,
        help="on SIGTERM/SIGINT, seconds running jobs may take to finish before they are "
        "released (default: 30)",
    )
    parser.add_argument(
        "--reserve-timeout",
        type=float,
        default=1.0,
        help="seconds each reserve-with-timeout waits (default: 1)",
    )
    parser.add_argument("--encoding", default=None, help="decode bodies to str, e.g. utf-8")
    parser.add_argument(
        "--stats-interval", type=float, default=None, help="log counters every N seconds"
    )
    parser.add_argument(
        "--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default: INFO)"
    )
    return parser


def _load_handlers(arguments: argparse.Namespace) -> dict[str, Handler]:
    default_handler = load_handler(arguments.handler)
    handlers: dict[str, Handler] = {}
    for entry in arguments.tube or ["default"]:
        tube, sep, spec = entry.partition("=")
        handlers[tube] = load_handler(spec) if sep else default_handler
    return handlers


async def _serve(worker: Worker) -> None:
    worker.install_signal_handlers()
    await worker.run()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m beanstalkt.worker``; returns the exit status."""
    parser = _argument_parser()
    arguments = parser.parse_args(argv)
    logging.basicConfig(
        level=arguments.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        worker = Worker(
            _load_handlers(arguments),
            host=arguments.host,
            port=arguments.port,
            encoding=arguments.encoding,
            concurrency=arguments.concurrency,
            max_attempts=arguments.max_attempts,
            backoff_base=arguments.backoff_base,
            backoff_factor=arguments.backoff_factor,
            backoff_max=arguments.backoff_max,
            grace_period=arguments.grace_period,
            reserve_timeout=arguments.reserve_timeout,
            stats_interval=arguments.stats_interval,
        )
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        parser.error(str(exc))
    status = 0
    try:
        asyncio.run(_serve(worker))
    except BeanstalkConnectionError as exc:
        logger.error("%s", exc)
        status = 1
    if worker._threads_busy:
        # A plain-function handler still runs after the grace period. Its job
        # is already released: do not let the interpreter's exit wait for it.
        logger.warning("%d handler thread(s) still running; exiting anyway", worker._threads_busy)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


if __name__ == "__main__":
    sys.exit(main())

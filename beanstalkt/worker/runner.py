"""The runner: slots that reserve, run and acknowledge jobs, over one set of servers.

A :class:`Runner` owns one group of slots and the tubes they watch (the
Worker's shared slots, or the slots of a tube with a ``concurrency`` of its
own), spread over every server: one :class:`Site` per server, each with its
connections (:class:`Lane`), each shared by up to ``slots_per_connection``
slots. One server is a set of one: there is no other code path.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import math
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional

from ..client import Client
from ..errors import (
    BadJob,
    BeanstalkConnectionError,
    BeanstalkException,
    DeadlineSoon,
    NotFound,
    TimedOut,
)
from ..models import Job, StatsJob
from . import acks, failures, scheduling, ttr
from .actions import Ack, JobAction, Release, TimeLimitExceeded
from .counters import TubeCounters
from .job import ReservedJob

if TYPE_CHECKING:
    from ..servers import Server
    from .worker import Worker

logger = logging.getLogger("beanstalkt.worker")

# A slot that got DEADLINE_SOON for a job it does not run waits this long
# before reserving again (the server frees that job within its last second).
_DEADLINE_SOON_PAUSE = 0.2
# After an unexpected error in a slot, or while every server is down, pause
# (or wait for a server to come back) this long before trying again.
ERROR_PAUSE = 1.0
# How often an idle slot sharing a connection with running jobs looks for new ones.
_IDLE_POLL_INTERVAL = 0.1


class Lane:
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
        "polling",
        "preparing",
        "ready",
        "reserving",
        "running",
        "site",
        "slots",
    )

    def __init__(self, client: Client[Any], site: Site) -> None:
        self.client = client
        self.site = site
        self.address = site.address
        # True once its watch list is set: only then does a slot reserve on it.
        self.ready = False
        # True while its first connection and watch list are being set up:
        # its slots wait for it rather than crowd onto the lanes already up.
        self.preparing = True
        # Slots on this connection now (slots move between jobs).
        self.slots = 0
        # Jobs reserved on this connection and not acknowledged yet.
        self.running = 0
        # Reserves sent and not answered yet; True while one of them may wait.
        self.reserving = 0
        self.blocking = False
        # True while one of the lane's idle slots polls for new jobs.
        self.polling = False
        # Set (and replaced) when idle slots of this lane should look again.
        self.changed: Optional[asyncio.Event] = None

    def notify(self) -> None:
        """Wake the idle slots of this lane waiting for a change."""
        changed = self.changed
        if changed is not None:
            self.changed = None
            changed.set()

    async def wait_for_change(self, timeout: Optional[float]) -> None:
        """Wait until :meth:`notify` (or ``timeout`` seconds; None: no limit)."""
        if self.changed is None:
            self.changed = asyncio.Event()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.changed.wait(), timeout)


class Site:
    """One server: its connections and what is known of its tubes (see scheduling.SiteState)."""

    __slots__ = ("address", "has_work", "lanes", "looked_at", "reserved", "server", "slots")

    def __init__(self, address: str, server: Optional[Server] = None) -> None:
        self.address = address
        # Its entry in the worker's ServerSet, whose probes prove it answers
        # (None with a client_factory: its connections' state is all we know).
        self.server = server
        self.lanes: list[Lane] = []
        self.slots = 0
        self.has_work = False
        self.looked_at = -math.inf
        # Jobs reserved here (the per-server count of Worker.servers).
        self.reserved = 0

    @property
    def live(self) -> bool:
        """True while at least one of its prepared connections is established."""
        return self.open_lane() is not None

    def open_lane(self) -> Optional[Lane]:
        """Its established, prepared connection with the fewest slots, if any.

        None while its server is out of rotation (its probes unanswered).
        """
        if self.server is not None and not self.server.live:
            return None
        best: Optional[Lane] = None
        for lane in self.lanes:
            if (
                lane.ready
                and not lane.client.closed()
                and (best is None or lane.slots < best.slots)
            ):
                best = lane
        return best


class Slot:
    """A place for one running job (reused from job to job); the Settler of its jobs."""

    __slots__ = (
        "cut",
        "handler_future",
        "in_handler",
        "index",
        "job",
        "keep_alive",
        "lane",
        "limit",
        "reserved_at",
        "runner",
        "started",
        "task",
        "uncounted_delete",
    )

    def __init__(self, runner: Runner, index: int, lane: Lane) -> None:
        self.runner = runner
        self.index = index
        self.lane = lane
        lane.slots += 1
        lane.site.slots += 1
        # The delete in flight that no callback counts: the slot counts it itself.
        self.uncounted_delete: Optional[tuple[TubeCounters, ReservedJob]] = None
        self.task: Optional[asyncio.Task[None]] = None
        # The job being run, when (loop time) it was reserved and started, its
        # time limit, and its touches.
        self.job: Optional[ReservedJob] = None
        self.reserved_at = 0.0
        self.started = 0.0
        self.limit: Optional[float] = None
        self.keep_alive: Optional[asyncio.Task[None]] = None
        # True while an async handler runs inside self.task (it may be cancelled).
        self.in_handler = False
        # A plain-function handler's future (cancelled instead of the task).
        self.handler_future: Optional[asyncio.Future[Any]] = None
        # Why the running handler is being cut short: "stop" (grace period
        # over: hand the job back) or "time_limit" (a failure).
        self.cut: Optional[str] = None

    @property
    def client(self) -> Client[Any]:
        """The client of the slot's lane now (slots move between jobs)."""
        return self.lane.client

    def finished(self) -> None:
        """Its job's handler is done: no job, no touches."""
        self.job = None
        if self.keep_alive is not None:
            self.keep_alive.cancel()
            self.keep_alive = None

    def interrupt(self, why: str) -> None:
        """Cut the running handler short (see :attr:`cut`)."""
        if self.job is None or self.cut is not None:
            return
        self.cut = why
        if self.handler_future is not None:
            self.handler_future.cancel()
        elif self.in_handler and self.task is not None:
            self.task.cancel()

    # The Settler interface (beanstalkt.worker.actions).

    def delete(self, job: ReservedJob) -> Ack:
        """Settler: delete ``job``."""
        return acks.delete(self, job, self._counters_of(job))

    async def release(self, job: ReservedJob, priority: Optional[int], delay: int) -> Ack:
        """Settler: release ``job`` without counting a failure."""
        return await acks.release(self, job, self._counters_of(job), priority, delay)

    async def bury(self, job: ReservedJob, priority: Optional[int], reason: str) -> Ack:
        """Settler: bury ``job``, recording ``reason``."""
        return await acks.bury(self, job, self._counters_of(job), priority, reason, "")

    def _counters_of(self, job: ReservedJob) -> TubeCounters:
        return self.runner.worker._counters_of(job.tube)


class Runner:
    """One group of slots over every server, watching ``tubes`` (see the module)."""

    def __init__(self, worker: Worker, tubes: list[str], concurrency: int) -> None:
        self.worker = worker
        self.tubes = tubes
        self.concurrency = concurrency
        # With one tube every job's tube is known without asking the server.
        self.only_tube = tubes[0] if len(tubes) == 1 else None
        self.sites: list[Site] = []
        # More than one server: slots choose where to go between jobs.
        self.many = False
        self.lanes: list[Lane] = []
        self.slots: list[Slot] = []
        self.tasks: list[asyncio.Task[None]] = []
        # Background first connections of the lanes that did not answer at start.
        self.connecting: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------
    # Building and connecting.

    def build(
        self,
        addresses: list[str],
        make_client: Callable[[int], Client[Any]],
        servers: Optional[list[Server]] = None,
    ) -> None:
        """Make the sites, lanes and slots (``make_client(site_index)`` makes one client)."""
        per_site = scheduling.lanes_needed(self.concurrency, self.worker.slots_per_connection)
        self.sites = [
            Site(address, None if servers is None else servers[index])
            for index, address in enumerate(addresses)
        ]
        for index, site in enumerate(self.sites):
            site.lanes = [Lane(make_client(index), site) for _ in range(per_site)]
        self.lanes = [lane for site in self.sites for lane in site.lanes]
        self.many = len(self.sites) > 1
        self.slots = [
            Slot(self, index, self.sites[site].lanes[lane])
            for index, (site, lane) in enumerate(
                scheduling.placement(self.concurrency, len(self.sites), per_site)
            )
        ]

    async def connect(self, first: asyncio.Future[None]) -> None:
        """Prepare every connection in the background; ``first`` resolves when one is ready.

        ``first`` fails with the first connection error when every one failed;
        the failed ones are retried (with backoff) until the worker stops.
        """
        remaining = [len(self.lanes)]
        errors: list[BaseException] = []

        async def one(lane: Lane) -> None:
            try:
                await self.prepare(lane)
            except Exception as exc:
                lane.preparing = False
                lane.notify()
                errors.append(exc)
                remaining[0] -= 1
                if not first.done() and remaining[0] == 0:
                    first.set_exception(errors[0])
                if not isinstance(exc, BeanstalkConnectionError) or self.worker.stopping:
                    return
                logger.warning("worker: %s unreachable (%s); retrying", lane.address, exc)
                await self._connect_later(lane)
                return
            remaining[0] -= 1
            lane.preparing = False
            if not first.done():
                first.set_result(None)
            self.server_back(lane.site)

        self.connecting = [asyncio.ensure_future(one(lane)) for lane in self.lanes]

    async def _connect_later(self, lane: Lane) -> None:
        # A client reconnects by itself only after a first success: until
        # then, retrying is the worker's job (with backoff and jitter).
        attempt = 0
        while not self.worker.stopping:
            attempt += 1
            pause = min(30.0, ERROR_PAUSE * 2 ** min(attempt - 1, 5)) * (0.5 + random.random() / 2)
            await self.worker._pause(pause)
            if self.worker.stopping:
                return
            try:
                await self.prepare(lane)
            except BeanstalkConnectionError as exc:
                logger.debug("worker: %s still unreachable: %s", lane.address, exc)
                continue
            logger.warning("worker: %s answers; reserving from it", lane.address)
            self.server_back(lane.site)
            return

    async def prepare(self, lane: Lane) -> None:
        """Connect ``lane`` and set its watch list (within the worker's prepare timeout)."""
        client = lane.client
        client.set_reconnect_callback(functools.partial(self._reconnected, lane))
        try:
            await asyncio.wait_for(self._watch(client), self.worker.prepare_timeout)
        except asyncio.TimeoutError:
            # Connected but not answering (frozen): not live; the client is
            # closed so that the next attempt starts afresh.
            client.close()
            raise BeanstalkConnectionError(
                message=f"{lane.address} did not answer within {self.worker.prepare_timeout}s"
            ) from None
        lane.ready = True

    async def _watch(self, client: Client[Any]) -> None:
        await client.connect()
        # Watch first, so ignoring never hits the last watched tube.
        await asyncio.gather(*[client.watch(tube) for tube in self.tubes])
        extra = [tube for tube in await client.list_tubes_watched() if tube not in self.tubes]
        await asyncio.gather(*[client.ignore(tube) for tube in extra])

    def _reconnected(self, lane: Lane) -> None:
        lane.notify()
        self.server_back(lane.site)
        if self.worker.metrics is not None:
            self.worker.metrics.reconnected()

    def start(self) -> None:
        """Start every slot's task."""
        for slot in self.slots:
            slot.task = asyncio.ensure_future(self.run_slot(slot))
        self.tasks = [slot.task for slot in self.slots if slot.task is not None]

    # ------------------------------------------------------------------
    # The slot loop.

    async def run_slot(self, slot: Slot) -> None:
        """Reserve, run, acknowledge, until the worker stops."""
        worker = self.worker
        ack: Ack = None
        # True once a reserve found no job: only then is waiting for one worth it.
        empty = False
        many = self.many
        while not worker._stopping:
            try:
                lane = slot.lane
                # Between jobs only: the last job is acknowledged first.
                if (many or not lane.ready or lane.client.closed()) and self._moved(slot, empty):
                    ack = await self._settle(slot, ack)
                    if slot.lane is lane:  # nowhere to go: every server is down
                        await lane.wait_for_change(ERROR_PAUSE)
                    empty = False
                    continue
                if lane.blocking:
                    # A sibling waits for the next job on this connection: so do
                    # we (our delete, sent before its reserve, is answered first).
                    ack = await self._settle(slot, ack)
                    await lane.wait_for_change(None)
                    continue
                # Wait on the server only when the tube was found empty and nothing
                # else of this connection's could get stuck behind the reserve.
                may_wait = empty and lane.running == 0 and lane.reserving == 0
                if may_wait and ack is not None:
                    # This reserve may be answered long after the delete.
                    acks.count_when_answered(slot, ack)
                # Written right behind the previous acknowledgement (one write):
                # once the job (or TIMED_OUT) is here, the ack is settled too.
                job = await self._reserve(slot, lane, may_wait)
                if ack is not None:
                    ack = await self._settle(slot, ack)
                if job is not None:
                    empty = False
                    try:
                        ack = await self._run_job(slot, lane, job)
                    finally:
                        lane.running -= 1
                        lane.notify()
                else:
                    empty = True
                    if (lane.running or lane.reserving) and not worker._stopping:
                        await self._idle(lane)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("worker slot %d: unexpected error; going on", slot.index)
                await worker._pause(ERROR_PAUSE)
        await self._settle(slot, ack)

    async def _reserve(self, slot: Slot, lane: Lane, may_wait: bool) -> Optional[Job[Any]]:
        """One reserve on ``lane``: the job, or None (none ready, or it went wrong)."""
        reservation = lane.client.reserve(timeout=self.worker._reserve_seconds if may_wait else 0)
        lane.reserving += 1
        lane.blocking = may_wait
        job = None
        try:
            if self.worker._stopping:
                reservation.add_done_callback(_retrieve)
            else:
                try:
                    job = await reservation
                except BeanstalkException as exc:
                    await self._no_job(slot, exc)
                else:
                    if job.reservation is not None and job.reservation.lost:
                        # Lost with the connection before it could start:
                        # the server has already put it back.
                        job = None
                    else:
                        # Counted in the same step as the reserve's end: no
                        # sibling may see the lane empty in between.
                        lane.running += 1
                        lane.site.reserved += 1
                        if self.many:  # where the jobs are only matters with a choice
                            self._found_job(lane, may_wait)
        finally:
            lane.reserving -= 1
            if may_wait:
                lane.blocking = False
            if may_wait or job is not None:
                lane.notify()  # idle siblings look again: the tube may hold more
        return job

    async def _settle(self, slot: Slot, ack: Ack) -> Ack:
        """Wait for an acknowledgement (usually answered already), and count a delete.

        A callback counts the other acknowledgements; the delete of every job
        finished is counted here, without a callback (one loop turn less per job).
        """
        if ack is None:
            return None
        if not ack.done():
            await asyncio.wait((ack,))
        uncounted = slot.uncounted_delete
        if uncounted is not None:
            slot.uncounted_delete = None
            acks.count(uncounted[0], "done", uncounted[1], ack)
        return None  # settled: nothing is owed any more

    async def _idle(self, lane: Lane) -> None:
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

    async def _no_job(self, slot: Slot, error: BeanstalkException) -> None:
        """A reserve answered without a job to run; raises what it cannot handle."""
        if isinstance(error, TimedOut):
            site = slot.lane.site
            site.has_work = False
            site.looked_at = asyncio.get_running_loop().time()
            if self.worker.metrics is not None:
                self.worker.metrics.reserve_timed_out(self.only_tube or "")
        elif isinstance(error, BadJob):
            # Reserved, but its body is damaged or not text: no handler can run
            # it, and released it would come back to every worker. Bury it.
            slot.lane.running += 1
            try:
                await self._bury_bad_job(slot, error)
            finally:
                slot.lane.running -= 1
        elif isinstance(error, DeadlineSoon):
            # A job reserved on this connection is in its last second before
            # its TTR: the server frees it, or we touch it, shortly.
            logger.debug("worker slot %d: DEADLINE_SOON; reserving again shortly", slot.index)
            await self.worker._pause(_DEADLINE_SOON_PAUSE)
        elif isinstance(error, BeanstalkConnectionError):
            # The slot moves to a live server, or waits for one, next turn.
            logger.debug("worker slot %d: %s", slot.index, error)
        else:
            raise error

    async def _bury_bad_job(self, slot: Slot, error: BadJob) -> None:
        """Bury a reserved job whose body cannot be handed to a handler (and record why)."""
        assert error.job_id is not None  # set for every BadJob the protocol raises
        client = slot.client
        try:
            stats = await client.stats_job(error.job_id)
            await client.bury(error.job_id, stats["pri"])
        except BeanstalkException as exc:
            logger.warning("job %d: could not bury it (%s): %s", error.job_id, exc, error)
            return
        tube = stats["tube"]
        self.worker._counters_of(tube).add("buried")
        logger.error("job %d (tube %s) buried without running it: %s", error.job_id, tube, error)
        body = failures.record_body(
            error.job_id, tube, stats.get("age", 0), failures.describe(error), stats["buries"] + 1
        )
        put = acks.put_record(client, tube, body, error.job_id)
        if put is not None:
            await asyncio.wait((put,))  # (its failure is logged by put_record)

    # ------------------------------------------------------------------
    # Over several servers: where a slot goes between jobs.

    def _moved(self, slot: Slot, empty: bool) -> bool:
        """Move ``slot`` where :func:`scheduling.next_site` says; True unless it stays put.

        Also True when its connection is down and no server is live (it
        stays, and waits for one to come back).
        """
        lane = slot.lane
        if lane.preparing:
            return True  # it stays, and waits for its connection
        current = self.sites.index(lane.site)
        is_open = lane.ready and not lane.client.closed()
        if is_open and lane.site.server is not None and not lane.site.server.live:
            is_open = False  # out of rotation: its probes go unanswered
        move = scheduling.next_site(
            self.sites,
            current,
            is_open,
            empty,
            asyncio.get_running_loop().time(),
            self.worker._reserve_seconds,
        )
        if move is None:
            return not is_open
        site = self.sites[move.site]
        target = site.open_lane()
        if target is None:
            return not is_open
        if move.visit:
            site.looked_at = asyncio.get_running_loop().time()  # one visitor at a time
        if target is not lane:
            self._move(slot, target)
        return True

    def _move(self, slot: Slot, target: Lane) -> None:
        old = slot.lane
        old.slots -= 1
        target.slots += 1
        if old.site is not target.site:
            old.site.slots -= 1
            target.site.slots += 1
        slot.lane = target
        # Its former siblings look again: one of them may now wait on the server.
        old.notify()

    def _found_job(self, lane: Lane, waited: bool) -> None:
        site = lane.site
        site.looked_at = asyncio.get_running_loop().time()
        # A job that came to a waiting reserve may be the only one; one found
        # by a quick reserve means a backlog: idle slots elsewhere come over.
        if not waited and not site.has_work:
            site.has_work = True
            self.wake_all()

    def wake_all(self) -> None:
        """Every waiting idle slot looks again (work was found, a server is back, a stop)."""
        for lane in self.lanes:
            lane.notify()

    def server_changed(self, address: str, live: bool) -> None:
        """The ServerSet says a server is up or down: look again (a server back may hold jobs)."""
        for site in self.sites:
            if site.address == address:
                if live:
                    self.server_back(site)
                else:
                    # A lane parked in a blocking reserve on a frozen server is
                    # exempt from the stall guard: drop its connections now
                    # (they reconnect by themselves), so its slots move on.
                    for lane in site.lanes:
                        if not lane.client.closed():
                            lane.client.abort(f"{address} is out of rotation")
                    self.wake_all()

    def server_back(self, site: Site) -> None:
        """A server answers again: have its jobs looked at (its binlog may hold some)."""
        site.has_work = True
        site.looked_at = -math.inf
        self.wake_all()

    # ------------------------------------------------------------------
    # One job.

    async def _run_job(self, slot: Slot, lane: Lane, job: Job[Any]) -> Ack:
        """Run one reserved job; return its acknowledgement, if one was sent."""
        worker = self.worker
        reserved_at = asyncio.get_running_loop().time()
        tube = self.only_tube
        stats: Optional[StatsJob] = None
        if tube is None or worker.prefetch_stats:
            stats = await self._stats_before(lane, job)
            if stats is None:
                return None
            tube = stats["tube"]
        reserved = ReservedJob(
            job["id"], job["body"], tube, stats, reservation=job.reservation,
            client=lane.client, server=lane.address,
        )  # fmt: skip
        counters = worker._counters_of(tube)
        policy = worker._policies.get(tube)
        if worker._stopping or policy is None:
            return await self._hand_back(slot, reserved, counters, policy is None)
        if worker.metrics is not None:
            acks.record_queue_latency(lane.client, reserved, worker)
        slot.job = reserved
        slot.reserved_at = slot.started = reserved_at
        slot.limit = policy.time_limit
        slot.cut = None
        action: Optional[JobAction] = None
        error: Optional[BaseException] = None
        try:
            if worker._coroutine_handlers[tube]:
                # Inline (not a coroutine of its own): one coroutine less per job.
                slot.in_handler = True
                try:
                    result = await policy.handler(reserved)
                except JobAction as raised:
                    action = raised
                except asyncio.CancelledError:
                    if slot.cut is None:
                        raise  # the slot itself is being cancelled
                    _uncancel(slot.task)
                    action, error = self._cut_outcome(slot, reserved)
                except Exception as exc:
                    error = exc
                else:
                    # Finishing in the instant it was cut short is done all the same.
                    action = result if isinstance(result, JobAction) else None
                finally:
                    slot.in_handler = False
            else:
                action, error = await self._call_thread(slot, policy.handler, reserved)
        finally:
            slot.finished()
        if worker.metrics is not None:
            seconds = asyncio.get_running_loop().time() - reserved_at
            acks.record_outcome(worker, tube, seconds, action, error)
        if error is not None:
            return await acks.failed(slot, reserved, counters, error)
        if action is None:
            return acks.delete(slot, reserved, counters)
        return await action.settle(slot, reserved)

    async def _stats_before(self, lane: Lane, job: Job[Any]) -> Optional[StatsJob]:
        """The job's ``stats-job`` before its handler runs (None: the reservation is gone)."""
        try:
            stats = await lane.client.stats_job(job["id"])
        except (BeanstalkConnectionError, NotFound) as exc:
            logger.warning("job %d: reservation lost before it started (%s)", job["id"], exc)
            return None
        if job.reservation is not None and job.reservation.lost:
            logger.warning("job %d: reservation lost before it started", job["id"])
            return None
        return stats

    async def _hand_back(
        self, slot: Slot, job: ReservedJob, counters: TubeCounters, unknown_tube: bool
    ) -> Ack:
        """Release a job that will not run here: the worker is stopping, or no handler."""
        if unknown_tube:
            # Cannot happen with the watch list set up by start(); the delay
            # keeps a misconfigured client from spinning on the same job.
            logger.error("job %d: no handler for tube %r; releasing it", job.id, job.tube)
        return await acks.release(slot, job, counters, None, 1 if unknown_tube else 0)

    def _cut_outcome(
        self, slot: Slot, job: ReservedJob
    ) -> tuple[Optional[JobAction], Optional[BaseException]]:
        if slot.cut == "time_limit":
            self.worker._counters_of(job.tube).add("timed_out")
            return None, TimeLimitExceeded(
                f"the handler ran past its time limit of {slot.limit:g}s"
            )
        return Release(), None  # stop() gave up on it: back, with its own priority

    async def _call_thread(
        self, slot: Slot, handler: Any, job: ReservedJob
    ) -> tuple[Optional[JobAction], Optional[BaseException]]:
        """Run a plain-function handler in the executor; it may be cut short (abandoned)."""
        loop = asyncio.get_running_loop()
        worker = self.worker
        future = loop.run_in_executor(worker._executor, worker._run_in_thread, handler, job)
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
            if slot.cut is None:
                future.cancel()
                raise
            if slot.in_handler:  # the task was cancelled, not the thread's future
                _uncancel(slot.task)
            else:
                worker._thread_abandoned(job)
            return self._cut_outcome(slot, job)
        except Exception as exc:
            return None, exc
        finally:
            slot.handler_future = None
            slot.in_handler = False
        if slot.cut is not None:
            return self._cut_outcome(slot, job)
        return (result if isinstance(result, JobAction) else None), None

    def sweep(self, now: float, found_before: float) -> None:
        """TTR touches and time limits for this runner's slots (see :mod:`.ttr`)."""
        ttr.sweep(self.slots, self.worker, now, found_before)


# ----------------------------------------------------------------------
# Helpers (callbacks: no closure per job).


def _uncancel(task: Optional[asyncio.Task[None]]) -> None:
    """Forget a cancellation the slot's task has handled (Python 3.11+ counts them)."""
    uncancel = getattr(task, "uncancel", None)
    if uncancel is not None:
        uncancel()


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


__all__ = ["Lane", "Runner", "Site", "Slot"]

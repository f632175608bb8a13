"""The acknowledgement sequence: how a reserved job's outcome reaches the server.

Each acknowledgement is sent on the connection that reserved the job and only
while ``job.reservation`` lives: a reservation dies with its connection, and
without a binlog ids start again at 1 after a restart, so the same id on a new
connection may name somebody else's job. A failure is *marked* (bury,
``reserve-job``, release: one :meth:`~beanstalkt.Client.sequence`, never
carried to another connection); a final burial puts a failure record beside
the job once the server agrees. What each reply means is counted through
:meth:`TubeCounters.add`, the one mutator.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from typing import TYPE_CHECKING, Any, Optional

from ..client import Client
from ..errors import (
    BeanstalkConnectionError,
    BeanstalkException,
    Buried,
    ConnectionLost,
    NotFound,
    ReservationLost,
)
from ..models import Job, StatsJob
from . import failures, scheduling
from .actions import Ack
from .counters import TubeCounters
from .job import ReservedJob

if TYPE_CHECKING:
    from .actions import JobAction
    from .runner import Slot
    from .worker import Worker

logger = logging.getLogger("beanstalkt.worker")

#: After a burial's reply was lost with its connection, how long to wait for
#: the server to be back before asking it whether the job is buried.
VERIFY_WAIT = 15.0


async def failed(slot: Slot, job: ReservedJob, counters: TubeCounters, error: BaseException) -> Ack:
    """A failed run: retry it with backoff, or bury it (with a failure record)."""
    counters.add("failed")
    if not await stats_for(job, "retried"):
        counters.add("lost")
        return None
    policy = slot.runner.worker._policies[job.tube]
    attempt = job.attempt
    text = failures.describe(error)
    if scheduling.after_failure(attempt, policy.max_attempts) == "bury":
        logger.error(
            "job %d (tube %s) failed on attempt %d of %d; burying it: %s",
            job.id,
            job.tube,
            attempt,
            policy.max_attempts,
            text,
            exc_info=error,
        )
        trace = failures.format_traceback(error)
        return await bury(slot, job, counters, None, text, trace)
    delay = scheduling.jittered(
        scheduling.backoff_delay(
            attempt, policy.backoff_base, policy.backoff_factor, policy.backoff_max
        ),
        policy.backoff_jitter,
        random.random(),
    )
    logger.warning(
        "job %d (tube %s) failed on attempt %d of %d; retrying in %ds: %s",
        job.id,
        job.tube,
        attempt,
        policy.max_attempts,
        delay,
        text,
    )
    return retry(slot, job, counters, delay)


# ----------------------------------------------------------------------
# Acknowledgements. Each checks that the reservation still lives: it dies
# with its connection, and without a binlog ids start again at 1 after a
# restart, so the same id on a new connection may name somebody else's job.


def still_reserved(job: ReservedJob, outcome: str) -> bool:
    """True while ``job``'s reservation lives (else logged: it will be handed out again)."""
    if not job.reservation_lost:
        return True
    logger.warning(
        "job %d (tube %s): reservation lost with the connection; not %s, "
        "it will be handed out again",
        job.id,
        job.tube,
        outcome,
    )
    return False


async def stats_for(job: ReservedJob, outcome: str) -> bool:
    """Make sure ``job.stats`` is loaded; False when the reservation is gone."""
    if job.stats_loaded:
        return True
    if not still_reserved(job, outcome):
        return False
    try:
        await job.load_stats()
    except (BeanstalkConnectionError, NotFound, ReservationLost) as exc:
        logger.warning(
            "job %d (tube %s): reservation lost, not %s (%s); it will be handed out again",
            job.id,
            job.tube,
            outcome,
            exc,
        )
        return False
    return True


def delete(slot: Slot, job: ReservedJob, counters: TubeCounters) -> Ack:
    """Delete ``job`` in one write with the slot's next reserve; the slot counts it."""
    if not still_reserved(job, "done"):
        counters.add("lost")
        return None
    # Counted by the slot once the server has answered (see _settle).
    slot.uncounted_delete = (counters, job)
    client = slot.lane.client
    # In one write with the slot's next reserve, issued in this same turn.
    with client.batch():
        return client.delete(job)


async def release(
    slot: Slot,
    job: ReservedJob,
    counters: TubeCounters,
    priority: Optional[int],
    delay: int,
) -> Ack:
    """Release ``job`` (``priority`` None: its own), counted ``released`` once answered."""
    if priority is None:
        if not await stats_for(job, "released"):
            counters.add("lost")
            return None
        priority = job.priority
    if not still_reserved(job, "released"):
        counters.add("lost")
        return None
    return _counted(slot.lane.client.release(job, priority, delay), counters, "released", job)


async def bury(
    slot: Slot,
    job: ReservedJob,
    counters: TubeCounters,
    priority: Optional[int],
    reason: str,
    trace: str,
) -> Ack:
    """Bury ``job`` and, once the server agrees, put its failure record beside it."""
    if not await stats_for(job, "buried"):
        counters.add("lost")
        return None
    if priority is None:
        priority = job.priority
    if not still_reserved(job, "buried"):
        counters.add("lost")
        return None
    client = slot.lane.client
    _mark_settled_again(slot.runner.worker, job)
    buried = client.bury(job, priority)
    body = failures.record_body(
        job.id, job.tube, job.stats.get("age", 0), reason, job.attempt, trace
    )
    # The slot (and so a stop) waits for the record too: none is lost at shutdown.
    return asyncio.ensure_future(
        _burial_settled(slot.runner.worker, client, job, counters, body, buried)
    )


def retry(slot: Slot, job: ReservedJob, counters: TubeCounters, delay: int) -> Ack:
    """Release a failed job with ``delay``, marked as a failure (see the module doc)."""
    if not still_reserved(job, "retried"):
        counters.add("lost")
        return None
    client = slot.lane.client
    priority = job.priority
    _mark_settled_again(slot.runner.worker, job)
    # One write, on this connection only: never carried to a new
    # connection (a reserve-job there could take a stranger's job).
    with client.sequence():
        buried = client.bury(job, priority)
        taken_back = client.reserve_job(job.id)
        released = client.release(job, priority, delay)
    future = asyncio.ensure_future(_retried(job, buried, taken_back, released))
    future.add_done_callback(
        functools.partial(_count_retry, slot.runner.worker, client, counters, job)
    )
    return future


# ----------------------------------------------------------------------
# Callbacks (no closure per job).


def count(
    counters: TubeCounters, outcome: str, job: ReservedJob, future: asyncio.Future[Any]
) -> None:
    """Done-callback of an acknowledgement: count it, or count the job lost."""
    if future.cancelled():
        counters.add("lost")
        return
    error = future.exception()
    if error is None:
        counters.add(outcome)
    elif isinstance(error, Buried):
        # release answered BURIED: the server ran out of memory and buried it.
        counters.add("buried")
        logger.error("job %d (tube %s): the server buried it (%s)", job.id, job.tube, error)
    else:
        counters.add("lost")
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


def _counted(
    future: asyncio.Future[Any], counters: TubeCounters, outcome: str, job: ReservedJob
) -> asyncio.Future[Any]:
    """``future``, counted as ``outcome`` of ``job`` once the server has answered."""
    future.add_done_callback(functools.partial(count, counters, outcome, job))
    return future


async def _burial_settled(
    worker: Worker,
    client: Client[Any],
    job: ReservedJob,
    counters: TubeCounters,
    body: bytes,
    buried: asyncio.Future[Any],
) -> None:
    """Count a final burial and put its failure record once the server agrees.

    A reply lost with the connection (``ConnectionLost``: written, outcome
    unknown) is asked about once the server is back (:func:`verify_burial`),
    so the worker's ``buried`` count agrees with the server's.
    """
    await asyncio.wait((buried,))
    error = _error_of(buried)
    if isinstance(error, ConnectionLost):
        worker._in_background(verify_burial(worker, client, job, counters, body))
        return
    count(counters, "buried", job, buried)
    if error is None:
        await _wait_for(put_record(client, job.tube, body, job.id))


async def verify_burial(
    worker: Worker,
    client: Client[Any],
    job: ReservedJob,
    counters: TubeCounters,
    body: Optional[bytes],
) -> None:
    """Whether ``job`` is buried on its server after a lost reply: count it ``buried`` or ``lost``.

    Waits up to :data:`VERIFY_WAIT` seconds for the client to reconnect, then
    reads the job's ``stats-job``; only the same job (its tube and creation
    time, see :func:`~beanstalkt.worker.failures.matches`), not buried or
    retried again by this worker meanwhile (a later run's burial is that
    run's to count), in state ``buried`` counts. ``body``: the failure record
    to put when it is. (Another worker re-running the job cannot be told
    apart: with several workers, each one's count is its own view.)
    """
    created = time.time() - job.stats.get("age", 0) if job.stats_loaded else None
    worker._verifying[job.id] = worker._verifying.get(job.id, 0) + 1
    try:
        await _verify(worker, client, job, counters, body, created)
    finally:
        worker._verifying[job.id] -= 1
        if not worker._verifying[job.id]:
            del worker._verifying[job.id]
            worker._settled_again.discard(job.id)


async def _verify(
    worker: Worker,
    client: Client[Any],
    job: ReservedJob,
    counters: TubeCounters,
    body: Optional[bytes],
    created: Optional[float],
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + VERIFY_WAIT
    # (A stop closes the connections for good: no use waiting then.)
    while client.closed() and loop.time() < deadline and not worker.stopping:
        await asyncio.sleep(0.1)
    state = None
    try:
        stats = await client.stats_job(job.id)
    except BeanstalkException:
        stats = None
    if stats is not None and created is not None:
        record = {"id": job.id, "tube": job.tube, "created": created}
        # The same job, and not settled again since by this worker: a burial
        # by a later run (the job released with the connection, reserved
        # again, failed again) is that run's to count.
        if failures.matches(record, dict(stats)) and job.id not in worker._settled_again:
            state = stats["state"]
    if state == "buried":
        counters.add("buried")
        logger.warning("job %d (tube %s): buried (the reply was lost)", job.id, job.tube)
        if body is not None:
            await _wait_for(put_record(client, job.tube, body, job.id))
    else:
        counters.add("lost")
        logger.warning(
            "job %d (tube %s): reply lost with the connection and not buried (%s); "
            "it will be handed out again",
            job.id,
            job.tube,
            state or "not found",
        )


def _mark_settled_again(worker: Worker, job: ReservedJob) -> None:
    """A job whose lost burial is being asked about is buried or retried again by this worker."""
    if job.id in worker._verifying:
        worker._settled_again.add(job.id)


async def _wait_for(future: Optional[asyncio.Future[Any]]) -> None:
    if future is not None:
        await asyncio.wait((future,))


def put_record(
    client: Client[Any], tube: str, body: bytes, job_id: int
) -> Optional[asyncio.Future[int]]:
    """Put the failure record ``body`` of ``job_id`` into ``tube``'s record tube."""
    name = failures.record_tube(tube)
    if name is None:
        logger.warning("job %d: tube %r too long for a failure record tube", job_id, tube)
        return None
    put = client.put(body, failures.RECORD_PRIORITY, 0, failures.RECORD_TTR, tube=name)
    put.add_done_callback(functools.partial(_record_put, job_id))
    return put


def _record_put(job_id: int, future: asyncio.Future[int]) -> None:
    if future.cancelled() or future.exception() is not None:
        error = "cancelled" if future.cancelled() else future.exception()
        logger.warning("job %d: its failure record could not be written: %s", job_id, error)


def touched(job: ReservedJob, future: asyncio.Future[None]) -> None:
    """Done-callback of a touch: a refused one means the TTR had expired."""
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


def count_when_answered(slot: Slot, ack: asyncio.Future[Any]) -> None:
    """Have a callback count the slot's delete in flight, if it is one."""
    uncounted = slot.uncounted_delete
    if uncounted is not None:
        slot.uncounted_delete = None
        ack.add_done_callback(functools.partial(count, uncounted[0], "done", uncounted[1]))


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
    if isinstance(take_error, ConnectionLost):
        raise take_error  # buried, and taken back or not: ask the server
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


def _count_retry(
    worker: Worker,
    client: Client[Any],
    counters: TubeCounters,
    job: ReservedJob,
    future: asyncio.Future[str],
) -> None:
    error = _error_of(future)
    if isinstance(error, ConnectionLost):
        # Written, outcome unknown: the job may be buried (a failure marked,
        # never released). Ask the server once it is back.
        worker._in_background(verify_burial(worker, client, job, counters, None))
    elif error is not None:
        count(counters, "retried", job, future)
    else:
        counters.add(future.result())


def _error_of(future: asyncio.Future[Any]) -> Optional[BaseException]:
    if future.cancelled():
        return ConnectionLost(message="cancelled")
    return future.exception()


def record_queue_latency(client: Client[Any], job: ReservedJob, worker: Worker) -> None:
    """How long ``job`` waited in its tube: its ``age`` when reserved.

    From the stats already read, or from a ``stats-job`` pipelined behind
    the reservation and not waited for (one more command per job, only
    when metrics are on).
    """
    metrics = worker.metrics
    assert metrics is not None
    if job.stats_loaded:
        metrics.queue_latency(job.tube, job.stats.get("age", 0))
        return

    def record(future: asyncio.Future[StatsJob]) -> None:
        if not future.cancelled() and future.exception() is None:
            metrics.queue_latency(job.tube, future.result().get("age", 0))

    client.stats_job(job.id).add_done_callback(record)


def record_outcome(
    worker: Worker,
    tube: str,
    seconds: float,
    action: Optional[JobAction],
    error: Optional[BaseException],
) -> None:
    """Tell the metrics how a handler run ended (done or failed) and how long it took."""
    # Done: the handler finished the job (returned, or raised Delete); a
    # Release or Bury it asked for is counted when the server agrees.
    metrics = worker.metrics
    assert metrics is not None
    if error is not None:
        metrics.job_failed(tube, seconds)
    elif action is None or action.finishes_job:
        metrics.job_done(tube, seconds)


__all__ = [
    "bury",
    "count",
    "count_when_answered",
    "delete",
    "failed",
    "put_record",
    "record_outcome",
    "record_queue_latency",
    "release",
    "retry",
    "stats_for",
    "still_reserved",
]

"""TTR touches and time limits: what the Worker's sweep does every 0.2 s.

No timer per job: one sweep over the slots finds the jobs running long enough
to need a touch (their ``stats-job`` is read then, once, for the TTR; shorter
jobs cost nothing) and the handlers past their time limit (cut short: an
``async`` handler cancelled, a thread abandoned; the run is a failure).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..errors import BeanstalkConnectionError, NotFound, ReservationLost
from . import acks, scheduling
from .job import ReservedJob

if TYPE_CHECKING:
    from .runner import Slot
    from .worker import Worker

logger = logging.getLogger("beanstalkt.worker")


def sweep(slots: Iterable[Slot], worker: Worker, now: float, found_before: float) -> None:
    """Start touching the jobs running since before ``found_before``; cut the overdue ones."""
    for slot in slots:
        job = slot.job
        if job is None:
            continue
        if slot.keep_alive is None and slot.reserved_at < found_before:
            slot.keep_alive = asyncio.ensure_future(keep_alive(slot, job, slot.reserved_at, worker))
        if slot.cut is None and scheduling.overdue(slot.started, slot.limit, now):
            logger.warning(
                "job %d (tube %s): the handler ran past its time limit of %gs; stopping it",
                job.id,
                job.tube,
                slot.limit,
            )
            slot.interrupt("time_limit")


async def keep_alive(slot: Slot, job: ReservedJob, reserved_at: float, worker: Worker) -> None:
    """Touch ``job`` every ``ttr * touch_fraction`` s (cancelled when it finishes)."""
    try:
        await job.load_stats()
    except (BeanstalkConnectionError, NotFound, ReservationLost) as exc:
        logger.debug("job %d (tube %s): no stats, no touches: %s", job.id, job.tube, exc)
        return
    loop = asyncio.get_running_loop()
    interval = job.ttr * worker.touch_fraction
    due = reserved_at + interval
    while True:
        await asyncio.sleep(max(0.0, due - loop.time()))
        if slot.job is not job or job.reservation_lost:
            return
        touch = job._client.touch(job) if job._client is not None else None
        if touch is None:
            return
        touch.add_done_callback(functools.partial(acks.touched, job))
        if worker.metrics is not None:
            worker.metrics.touched(job.tube)
        due = loop.time() + interval


__all__ = ["keep_alive", "sweep"]

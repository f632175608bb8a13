"""What a handler may raise (or return) to decide its job's fate: Release, Bury, Delete.

Each action carries out its own decision through a :class:`Settler`, the small
interface the worker's runner offers for one reserved job; an action never
reaches into the Worker.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Optional, Protocol

from ..protocol import MAX_UINT32, Seconds, check_integer, check_seconds
from .job import ReservedJob

logger = logging.getLogger("beanstalkt.worker")

#: An acknowledgement sent to the server (``None``: nothing was sent, the
#: reservation was lost).
Ack = Optional["asyncio.Future[Any]"]


class Settler(Protocol):
    """How an action settles one reserved job (the runner implements it, per slot)."""

    def delete(self, job: ReservedJob) -> Ack:
        """Delete the job (counted ``done`` once the server agrees)."""

    async def release(self, job: ReservedJob, priority: Optional[int], delay: int) -> Ack:
        """Release it without counting a failure (``priority`` None: its own)."""

    async def bury(self, job: ReservedJob, priority: Optional[int], reason: str) -> Ack:
        """Bury it (``priority`` None: its own), recording ``reason`` with it."""


class JobAction(Exception):
    """Base of what a handler may raise (or return) to decide a job's fate itself.

    Each action carries out its own decision (:meth:`settle`): the worker
    only asks it to.
    """

    #: Whether the job counts as done (finished by its handler) in the metrics.
    finishes_job = False

    async def settle(self, settler: Settler, job: ReservedJob) -> Ack:
        """Tell the server what becomes of ``job``; return the acknowledgement sent, if any."""
        raise NotImplementedError


class Release(JobAction):
    """Put the job back to ready after ``delay`` (seconds, or a timedelta), not as a failure.

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

    async def settle(self, settler: Settler, job: ReservedJob) -> Ack:
        """Release the job (see the class)."""
        return await settler.release(job, self.priority, self.delay)


class Bury(JobAction):
    """Bury the job at once, whatever attempt this is (``reason`` is logged and recorded).

    Should somebody kick it, the burial counts as one failed attempt.
    """

    def __init__(self, reason: str = "", priority: Optional[int] = None) -> None:
        super().__init__(reason or "buried by its handler")
        self.reason = reason
        self.priority = (
            None if priority is None else check_integer("priority", priority, 0, MAX_UINT32)
        )

    async def settle(self, settler: Settler, job: ReservedJob) -> Ack:
        """Bury the job (see the class)."""
        logger.warning("job %d (tube %s) buried by its handler: %s", job.id, job.tube, self)
        return await settler.bury(job, self.priority, f"Bury: {self}")


class Delete(JobAction):
    """Delete the job without running it further (counted ``done``; ``reason`` is logged)."""

    finishes_job = True

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason or "deleted by its handler")
        self.reason = reason

    async def settle(self, settler: Settler, job: ReservedJob) -> Ack:
        """Delete the job (see the class)."""
        logger.info("job %d (tube %s) deleted by its handler: %s", job.id, job.tube, self)
        return settler.delete(job)


class TimeLimitExceeded(Exception):
    """A handler ran past its tube's ``time_limit``: the run counts as a failure.

    An ``async`` handler is cancelled; a thread cannot be, so its thread is
    abandoned (it runs on, its result ignored) and the job is settled all the same.
    """


__all__ = ["Ack", "Bury", "Delete", "JobAction", "Release", "Settler", "TimeLimitExceeded"]

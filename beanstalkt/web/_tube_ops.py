"""Every command the console runs against one named tube, in one place.

beanstalkd's ``peek-ready``, ``peek-delayed``, ``peek-buried``, ``kick`` and
``put`` act on the connection's *used* tube. Until the client offers
``tube=`` on those commands, each one here is sent as ``use TUBE``, the
command, and ``use default`` again, pipelined, while an :class:`asyncio.Lock`
keeps the console's other tube commands on the same connection from slipping
in between. Going back to ``default`` keeps the console from holding a tube
alive: beanstalkd drops an empty tube only when no connection uses it.

When ``Client`` gains ``tube=``, the bodies below become one call each (e.g.
``return await self._client.peek_ready(tube=tube)``), and the lock and
:meth:`TubeOps._in_tube` go away; nothing else in the console changes.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Callable, TypeVar, cast

from ..client import Client
from ..errors import BeanstalkException
from ..models import Job

T = TypeVar("T")


class TubeOps:
    """Tube-scoped commands over one shared :class:`Client`."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._lock = asyncio.Lock()

    async def peek_ready(self, tube: str) -> Job:
        """The next ready job of ``tube`` (``NotFound`` when there is none)."""
        return await self._in_tube(tube, self._client.peek_ready)

    async def peek_delayed(self, tube: str) -> Job:
        """The delayed job of ``tube`` due first (``NotFound`` when there is none)."""
        return await self._in_tube(tube, self._client.peek_delayed)

    async def peek_buried(self, tube: str) -> Job:
        """The next buried job of ``tube`` (``NotFound`` when there is none)."""
        return await self._in_tube(tube, self._client.peek_buried)

    async def kick(self, tube: str, bound: int) -> int:
        """Kick up to ``bound`` buried jobs of ``tube`` (else delayed ones); the count kicked."""
        return await self._in_tube(tube, lambda: self._client.kick(bound))

    async def put(self, tube: str, body: bytes, priority: int, delay: int, ttr: int) -> int:
        """Put a job into ``tube``; the new job's id."""
        return await self._in_tube(tube, lambda: self._client.put(body, priority, delay, ttr))

    async def move_job(self, job_id: int, tube: str) -> int:
        """Move job ``job_id`` into ``tube``; the id it has there.

        beanstalkd cannot move a job, so this reserves it (``reserve-job``),
        puts its body into ``tube`` with the same priority and TTR (a delayed
        job keeps the delay it has left; a buried one arrives ready), then
        deletes the original. The moved job is a new job: new id, age and
        counters. If the put fails, the original is put back as it was
        (buried, delayed or ready). If the connection drops after the put and
        before the delete, beanstalkd releases the original: the job then
        exists in both tubes (at least once, never lost).
        """
        before = await self._client.stats_job(job_id)
        job = await self._client.reserve_job(job_id)
        body = job.body if isinstance(job.body, bytes) else job.body.encode("utf-8")
        priority = before.get("pri", 0)
        delay = before.get("time-left", 0) if before.get("state") == "delayed" else 0
        try:
            new_id = await self.put(tube, body, priority, delay, before.get("ttr", 0))
        except BaseException:
            await self._restore(job_id, before.get("state", "ready"), priority, delay)
            raise
        await self._client.delete(job_id)
        return new_id

    async def _restore(self, job_id: int, state: str, priority: int, delay: int) -> None:
        # The original must not change state because a move failed.
        with contextlib.suppress(BeanstalkException):
            if state == "buried":
                await self._client.bury(job_id, priority)
            else:
                await self._client.release(job_id, priority, delay)

    async def _in_tube(self, tube: str, command: Callable[[], asyncio.Future[T]]) -> T:
        async with self._lock:
            used = self._client.use(tube)
            try:
                result = command()
            except BaseException:
                # Refused before sending (bad argument): still leave the tube.
                back = self._client.use("default")
                await asyncio.gather(used, back, return_exceptions=True)
                raise
            back = self._client.use("default")
            outcomes = await asyncio.gather(used, result, back, return_exceptions=True)
        for outcome in outcomes[:2]:
            if isinstance(outcome, BaseException):
                raise outcome
        return cast(T, outcomes[1])

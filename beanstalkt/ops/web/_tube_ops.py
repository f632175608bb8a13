"""Every command the console runs against one named tube, in one place.

beanstalkd's ``peek-ready``, ``peek-delayed``, ``peek-buried``, ``kick`` and
``put`` act on the connection's *used* tube; the client's ``tube=`` writes the
``use`` for each of them, whatever other requests do meanwhile. After each,
the connection is sent back to the client's own tube (``default``): that keeps
the console from holding a tube alive (beanstalkd drops an empty tube only
when no connection uses it) or showing up in its ``current-using``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TypeVar

from ...client import Client
from ...errors import BeanstalkException, NotFound
from ...models import Job

T = TypeVar("T")

#: Most buried jobs one "delete buried" request deletes (the page says how many are left).
MAX_BULK_DELETE = 10_000


class TubeOps:
    """Tube-scoped commands over one shared :class:`Client`."""

    def __init__(self, client: Client[bytes]) -> None:
        self._client = client

    async def peek_ready(self, tube: str) -> Job[bytes]:
        """The next ready job of ``tube`` (``NotFound`` when there is none)."""
        return await self._in_tube(self._client.peek_ready(tube=tube))

    async def peek_delayed(self, tube: str) -> Job[bytes]:
        """The delayed job of ``tube`` due first (``NotFound`` when there is none)."""
        return await self._in_tube(self._client.peek_delayed(tube=tube))

    async def peek_buried(self, tube: str) -> Job[bytes]:
        """The next buried job of ``tube`` (``NotFound`` when there is none)."""
        return await self._in_tube(self._client.peek_buried(tube=tube))

    async def kick(self, tube: str, bound: int) -> int:
        """Kick up to ``bound`` buried jobs of ``tube`` (else delayed ones); the count kicked."""
        return await self._in_tube(self._client.kick(bound, tube=tube))

    async def put(self, tube: str, body: bytes, priority: int, delay: int, ttr: int) -> int:
        """Put a job into ``tube``; the new job's id."""
        return await self._in_tube(self._client.put(body, priority, delay, ttr, tube=tube))

    async def delete_buried(self, tube: str, wanted: int) -> int:
        """Delete up to ``wanted`` buried jobs of ``tube``, oldest first; the number deleted.

        Each is the current head of the buried queue (``peek-buried``), so a
        job kicked or deleted by someone else meanwhile is simply not counted.
        """
        deleted = 0
        while deleted < wanted:
            try:
                job = await self.peek_buried(tube)
            except NotFound:
                break  # none left
            try:
                await self._client.delete(job.id)
            except NotFound:
                continue  # gone meanwhile: take the next head
            deleted += 1
        return deleted

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

    async def _in_tube(self, sent: asyncio.Future[T]) -> T:
        """Await a tube command, sending the connection back to the client's own tube."""
        home = self._client.use(self._client.using)
        outcomes = await asyncio.gather(sent, home, return_exceptions=True)
        if isinstance(outcomes[0], BaseException):
            raise outcomes[0]
        return outcomes[0]

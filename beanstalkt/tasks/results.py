"""Results: a reply tube per producer, read by a small worker of its own.

A :class:`~beanstalkt.tasks.Tasks` that defers a task with ``results=True``
first starts its *result listener*: a :class:`~beanstalkt.worker.Worker`
watching the producer's reply tube (``tasks.reply.<random>``, or
``Tasks(reply_tube=...)``) on every server. The envelope names that tube in
``reply_to``; the worker that runs the task puts one reply job there (a JSON
object, see :func:`~beanstalkt.tasks.envelope.encode_result`) after a success,
or after the last failed attempt. The listener hands the reply to the waiting
:class:`~beanstalkt.tasks.TaskRef` and deletes it.

* Delivered once: a reply resolves its ref's future once; a second reply for
  the same task (the task ran again after a worker died before deleting it)
  finds nobody waiting and is deleted.
* Nothing left behind: a worker puts a reply only when somebody watches the
  reply tube (``stats-tube``'s ``current-watching``; it waits
  :data:`~beanstalkt.tasks.runner.REPLY_GRACE` seconds for a listener that is
  reconnecting), so a producer that is gone gets none; a reply that comes
  after its ref gave up (``result(timeout=)`` expired) or was
  garbage-collected is deleted on arrival; :meth:`ResultListener.close` deletes what is left
  in the tube.
* A producer that restarted lost its refs with its memory: results of tasks
  deferred before the restart cannot be awaited. With the default (random)
  reply tube a new process listens on a new tube and the old one is never
  written again (workers see nobody watching it); with a fixed
  ``reply_tube=`` the new process deletes the old replies as they come.
  Delivery of a reply caught in the instant its producer disappeared is the
  one leftover: a job in a tube nobody watches, deleted by a later producer
  with the same ``reply_tube`` (``beanstalkt`` ``kick``/``delete`` can see it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any, Optional

from ..client import Client
from ..errors import NotFound, TimedOut
from ..worker import ReservedJob, Worker
from .envelope import EnvelopeError, Reply, decode_result

logger = logging.getLogger("beanstalkt.tasks")


class TaskFailed(Exception):
    """The task failed on its last attempt; ``type`` and ``message`` describe its error.

    ``type`` is the exception's class name (``"ValueError"``, or
    ``"module.Name"``); the traceback stays in the worker's log.
    """

    def __init__(self, task_id: str, type: str, message: str) -> None:
        super().__init__(f"task {task_id} failed: {type}: {message}")
        self.task_id = task_id
        self.type = type
        self.message = message


class ResultTimeout(asyncio.TimeoutError):
    """No result came within ``result(timeout=...)``; a later one is deleted when it arrives."""


def new_reply_tube() -> str:
    """A reply tube name of this process's own."""
    return f"tasks.reply.{uuid.uuid4().hex}"


class ResultListener:
    """Waits for replies in one reply tube and resolves the futures of their task ids."""

    def __init__(self, tube: str, make_worker: Callable[[dict[str, Any]], Worker]) -> None:
        self.tube = tube
        self._make_worker = make_worker
        self._worker: Optional[Worker] = None
        self._starting: Optional[asyncio.Future[None]] = None
        self._waiting: dict[str, asyncio.Future[Reply]] = {}

    async def start(self) -> None:
        """Start listening (once); returns when the tube is watched on every live server."""
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        worker = self._make_worker({self.tube: self._on_reply})
        await worker.start()
        self._worker = worker

    def expect(self, task_id: str) -> asyncio.Future[Reply]:
        """The future of ``task_id``'s reply (registered before the task is put)."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[task_id] = future
        return future

    def forget(self, task_id: str) -> None:
        """Nobody waits for ``task_id`` any more: its reply will be deleted on arrival."""
        future = self._waiting.pop(task_id, None)
        if future is not None and not future.done():
            future.cancel()

    @property
    def waiting(self) -> int:
        """How many task ids await a reply."""
        return len(self._waiting)

    async def _on_reply(self, job: ReservedJob) -> None:
        try:
            reply = decode_result(job.body)
        except EnvelopeError as exc:
            logger.warning(
                "reply tube %s: job %d is not a result (%s); deleted", self.tube, job.id, exc
            )
            return
        future = self._waiting.pop(reply.id, None)
        if future is None or future.done():
            logger.info("result of task %s: nobody waits for it; deleted", reply.id)
            return
        future.set_result(reply)

    async def close(self, client: Optional[Client[Any]] = None) -> None:
        """Stop listening; cancel what still waits; with ``client``, empty the reply tube."""
        for future in self._waiting.values():
            if not future.done():
                future.cancel()
        self._waiting.clear()
        if self._starting is not None:
            with contextlib.suppress(Exception):  # a failed start left nothing open
                await self._starting
        if self._worker is not None:
            await self._worker.stop(grace_period=1)
            self._worker = None
        if client is not None:
            await drain(client, self.tube)


async def drain(client: Client[Any], tube: str) -> int:
    """Delete every ready job of ``tube`` on ``client``'s server; how many."""
    deleted = 0
    while True:
        try:
            job = await client.peek_ready(tube=tube)
        except NotFound:
            return deleted
        except TimedOut:  # pragma: no cover - peek does not time out
            return deleted
        try:
            await client.delete(job.id)
        except NotFound:
            continue
        deleted += 1

"""Small helpers for producers: JSON bodies, named priorities, scheduling at a time.

::

    from beanstalkt.producer import Priority, put_json, schedule_at

    await put_json(client, {"to": "ada@example.com"}, tube="emails", priority=Priority.HIGH)
    await schedule_at(client, datetime(2030, 12, 25, 9, 0, tzinfo=timezone.utc), b"report")

The same are methods of :class:`~beanstalkt.Client` (``client.put_json(...)``,
``client.schedule_at(...)``), which put into the client's used tube.
"""

from __future__ import annotations

import asyncio
import datetime
import enum
import json
import math
import time
from typing import TYPE_CHECKING, Any, Optional

from .models import Body
from .protocol import DEFAULT_PRIORITY, DEFAULT_TTR, MAX_UINT32

if TYPE_CHECKING:
    from .client import Client


class Priority(enum.IntEnum):
    """Named priority levels (lower is more urgent); any int from 0 to 2**32-1 works too.

    ``CRITICAL`` and ``HIGH`` are below 1024, so the server counts those jobs
    as *urgent* (``current-jobs-urgent`` in the stats). ``NORMAL`` is what
    ``put`` uses without a priority. The gaps leave room for levels of your own.
    """

    CRITICAL = 0
    HIGH = 512
    NORMAL = DEFAULT_PRIORITY
    LOW = DEFAULT_PRIORITY + 2**30


def encode_json(data: Any) -> bytes:
    """``data`` as compact UTF-8 JSON bytes (what :func:`put_json` sends)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def delay_until(when: datetime.datetime) -> int:
    """Whole seconds from now until ``when`` (rounded up; 0 if it is past).

    A naive ``datetime`` is taken as local time, an aware one as what it says.
    """
    seconds = when.timestamp() - time.time()
    return min(MAX_UINT32, max(0, math.ceil(seconds)))


def put_json(
    client: Client,
    data: Any,
    *,
    tube: Optional[str] = None,
    priority: int = DEFAULT_PRIORITY,
    delay: int = 0,
    ttr: int = DEFAULT_TTR,
) -> asyncio.Future[int]:
    """Put ``data`` encoded as JSON; resolves to the new job's id.

    With ``tube``, a ``use`` is pipelined just before the put (so the job
    lands there whatever else is queued on the connection), and the client
    keeps using that tube afterwards.
    """
    return _put(client, encode_json(data), tube, priority, delay, ttr)


def schedule_at(
    client: Client,
    when: datetime.datetime,
    body: Body,
    *,
    tube: Optional[str] = None,
    priority: int = DEFAULT_PRIORITY,
    ttr: int = DEFAULT_TTR,
) -> asyncio.Future[int]:
    """Put ``body`` as a delayed job that becomes ready at ``when`` (to the second).

    A time in the past makes the job ready at once. For a JSON body, pass
    ``encode_json(data)``. ``tube`` is as in :func:`put_json`.
    """
    return _put(client, body, tube, priority, delay_until(when), ttr)


def _put(
    client: Client, body: Body, tube: Optional[str], priority: int, delay: int, ttr: int
) -> asyncio.Future[int]:
    if tube is not None:
        # The name is checked before anything is sent; both commands then go
        # out together, in order, so the put lands in ``tube`` or fails with it.
        client.use(tube).add_done_callback(_retrieve)
    return client.put(body, priority=priority, delay=delay, ttr=ttr)


def _retrieve(future: asyncio.Future[Any]) -> None:
    # The put's own future reports any failure; this one needs no reader.
    if not future.cancelled():
        future.exception()


__all__ = ["Priority", "delay_until", "encode_json", "put_json", "schedule_at"]

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
    # allow_nan=False: NaN and Infinity are not JSON; a consumer's parser would reject them.
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


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

    The same as ``client.put_json(data, ..., tube=tube)``: ``tube`` chooses
    where this job goes, and leaves the client's own tube alone.
    """
    return client.put_json(data, priority, delay, ttr, tube=tube)


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
    return client.schedule_at(when, body, priority, ttr, tube=tube)


__all__ = ["Priority", "delay_until", "encode_json", "put_json", "schedule_at"]

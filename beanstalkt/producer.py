"""Small helpers for producers: JSON bodies, named priorities, times as delays.

::

    from beanstalkt.producer import Priority

    await client.put_json({"to": "ada@example.com"}, tube="emails", priority=Priority.HIGH)
    await client.schedule_at(datetime(2030, 12, 25, 9, 0, tzinfo=timezone.utc), b"report")

Putting is the client's (:meth:`~beanstalkt.Client.put_json`,
:meth:`~beanstalkt.Client.schedule_at`, and the pool's namesakes); this module
holds what they share: :func:`encode_json` and :func:`delay_until`.
"""

from __future__ import annotations

import datetime
import enum
import json
import math
import time
from typing import Any

from .protocol import DEFAULT_PRIORITY, MAX_UINT32


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
    """``data`` as compact UTF-8 JSON bytes (what :meth:`beanstalkt.Client.put_json` sends)."""
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


__all__ = ["Priority", "delay_until", "encode_json"]

"""A buried job's failure reason: the failure records the worker engine writes.

When the beanstalkt worker buries a job, it puts a small JSON *record job*
into ``<tube>.failures`` beside it (see ``beanstalkt.worker.failures``,
which also reads them). The console shows the record of a buried job on its
tube and job pages. The reader is a hook (``make_app(failure_reader=...)``),
so other record stores can be shown too.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Optional

from .live import REPLY_TIMEOUT, LiveServer, console_client

log = logging.getLogger("beanstalkt.web")

#: Reads the failure records of a tube: job id -> record; ``None`` when records are not supported.
FailureReader = Callable[["LiveServer", str], Awaitable[Optional[dict[int, dict[str, Any]]]]]


async def read_failure_records(
    server: LiveServer, tube: str
) -> Optional[dict[int, dict[str, Any]]]:
    """The worker's failure records of ``tube`` (see ``beanstalkt.worker.failures``).

    The worker engine writes a record job into ``<tube>.failures`` when it
    buries a job; its module reads them (reserving the records for a moment,
    so a connection of its own is used). This is the console's hook: when
    the installed beanstalkt has no failure records, the answer is ``None``
    and the page says so.
    """
    try:
        failures = importlib.import_module("beanstalkt.worker.failures")
    except ImportError:
        return None
    read_failures = getattr(failures, "read_failures", None)
    if read_failures is None:
        return None
    client = console_client(server.host, server.port, server.ssl)
    try:
        await client.connect()
        records = await asyncio.wait_for(read_failures(client, tube), REPLY_TIMEOUT)
    finally:
        client.close()
    return {record["id"]: record for record in records}


async def attach_failure(reader: Optional[FailureReader], server: LiveServer, view: Any) -> None:
    """Set ``view.failure`` for a buried job (its record), or ``view.failure_note`` (why none).

    ``view`` is the page's ``JobView``; ``reader``
    defaults to :func:`read_failure_records`.
    """
    tube = (view.stats or {}).get("tube")
    if (view.stats or {}).get("state") != "buried" or not isinstance(tube, str):
        return
    reader = reader or read_failure_records
    try:
        records = await reader(server, tube)
    except Exception as error:  # the page still shows the job
        log.warning("cannot read the failure records of %s on %s: %s", tube, server.address, error)
        view.failure_note = f"The failure records could not be read: {type(error).__name__}."
        return
    if records is None:
        view.failure_note = "This beanstalkt writes no failure records."
    elif view.id in records:
        view.failure = records[view.id]
    else:
        view.failure_note = (
            "No failure record: buried by something other than a beanstalkt worker, "
            "or its record was lost."
        )


__all__ = ["FailureReader", "attach_failure", "read_failure_records"]

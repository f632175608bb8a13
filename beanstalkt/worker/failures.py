"""Failure records: why the worker buried a job, kept in beanstalkd beside the job.

Design
------
beanstalkd's jobs are immutable: the worker cannot attach a note to a buried
job. So when it buries a job (attempts used up, a time limit, :class:`~beanstalkt.worker.Bury`,
a body no handler can take) it puts a small *record job* in the job's
*record tube*, ``<tube>.failures``, on the same server. A record is a JSON
object (:func:`record_body`)::

    {"beanstalkt_failure": 1, "id": 42, "tube": "emails",
     "created": 1764870000.5, "error": "ValueError: bad address",
     "traceback": "Traceback (most recent call last): ...",
     "attempts": 5, "failed_at": "2026-12-04T20:00:00Z",
     "worker": {"host": "web-1", "pid": 4242}}

* It lives in beanstalkd, so it survives worker restarts and, with a binlog,
  server restarts, exactly like the job it describes (same server, same
  binlog). Without a binlog both go together.
* Nothing watches a record tube unless it asks: workers never reserve records.
* It is bounded: the message to 1,000 characters, the traceback to its last
  4,000 (the innermost frames), the whole record under 8 KiB.
* It names its job by id *and identity*: the tube and the job's creation time
  (``created``, the failure's time minus the job's ``age``; job ids are never
  reused by one server, but a record compared with a job of the same id must
  still describe that job). A reader drops a record whose job is gone
  (deleted), has another tube or another creation time (more than
  :data:`CREATED_TOLERANCE` seconds apart: the worker's and the reader's
  clocks must roughly agree), and keeps only the newest record of a job.
* A kick does not touch records: a kicked job keeps its record until it is
  deleted (then the next reader drops it) or fails again (a new record).
  Records of deleted jobs stay in the record tube until a reader
  (:func:`read_failures`, ``beanstalkt failures``) sweeps them.

Readers reserve every record of the tube (``reserve-with-timeout 0`` on the
record tube), decide, delete what is stale and release the rest: two readers
at once see each other's share only. Listing buried jobs themselves is not
possible in beanstalkd (only the first one can be peeked): a buried job
without a record (buried by someone else) is shown only when it is that first one.
"""

from __future__ import annotations

import json
import os
import socket
import time
import traceback
from collections.abc import Iterable
from typing import Any, Optional

from ..client import Client
from ..errors import NotFound, TimedOut
from ..ops.monitor import per_tube
from ..protocol import check_tube_name

#: Appended to a tube's name to make its record tube.
SUFFIX = ".failures"
#: A record's job and the job of that id must have been created this close (seconds).
CREATED_TOLERANCE = 5.0
#: Bounds of a record's parts (characters).
MAX_MESSAGE = 1_000
MAX_TRACEBACK = 4_000
#: Records are ready jobs with this priority and TTR (a reader holds them briefly).
RECORD_PRIORITY = 2**31
RECORD_TTR = 120

_HOST = socket.gethostname()


def record_tube(tube: str) -> Optional[str]:
    """The record tube of ``tube`` (``None`` when that name would be too long)."""
    name = tube + SUFFIX
    try:
        check_tube_name(name)
    except ValueError:
        return None
    return name


def describe(error: BaseException) -> str:
    """``"ExceptionType: message"`` (just the type when the message is empty)."""
    text = str(error)
    name = type(error).__name__
    return f"{name}: {text}" if text else name


def record_body(
    job_id: int,
    tube: str,
    age: int,
    error: str,
    attempts: int,
    trace: str = "",
    now: Optional[float] = None,
) -> bytes:
    """The record of job ``job_id`` failing with ``error`` (see the module's design)."""
    when = time.time() if now is None else now
    if len(error) > MAX_MESSAGE:
        error = error[: MAX_MESSAGE - 3] + "..."
    if len(trace) > MAX_TRACEBACK:
        trace = "..." + trace[-(MAX_TRACEBACK - 3) :]
    record = {
        "beanstalkt_failure": 1,
        "id": job_id,
        "tube": tube,
        "created": round(when - age, 3),
        "error": error,
        "traceback": trace,
        "attempts": attempts,
        "failed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)),
        "worker": {"host": _HOST[:200], "pid": os.getpid()},
    }
    return json.dumps(record, ensure_ascii=True).encode("ascii")


def format_traceback(error: BaseException) -> str:
    """The traceback of ``error`` as text (bounded later by :func:`record_body`)."""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


def parse_record(body: Any) -> Optional[dict[str, Any]]:
    """A record's JSON object, or ``None`` when ``body`` is not a record."""
    try:
        record = json.loads(body)
    except (ValueError, TypeError):
        return None
    if not isinstance(record, dict) or record.get("beanstalkt_failure") != 1:
        return None
    if not isinstance(record.get("id"), int) or not isinstance(record.get("tube"), str):
        return None
    return record


def matches(record: dict[str, Any], stats: dict[str, Any], now: Optional[float] = None) -> bool:
    """Whether ``record`` describes the job whose ``stats-job`` is ``stats``."""
    when = time.time() if now is None else now
    created = record.get("created")
    if stats.get("tube") != record["tube"] or not isinstance(created, (int, float)):
        return False
    return bool(abs((when - stats.get("age", 0)) - created) <= CREATED_TOLERANCE)


async def read_failures(client: Client[Any], tube: str) -> list[dict[str, Any]]:
    """The failure records of ``tube`` whose jobs still exist, one per job, oldest job first.

    Each is the record (see the module's design) plus ``"state"``, the job's
    state now (``"buried"``, or ``"ready"``... after a kick). Stale records
    (job deleted, id taken by another job, older records of the same job)
    are deleted on the way. Uses ``client``'s watch list for a moment (and
    restores it): use a client nobody else reserves with meanwhile.
    """
    name = record_tube(tube)
    if name is None:
        return []
    held = await _take_records(client, name)
    newest: dict[int, tuple[Any, dict[str, Any]]] = {}
    stale: list[Any] = []
    for job, record in held:
        if record is None:
            continue  # not ours: leave it alone
        previous = newest.get(record["id"])
        if previous is not None:
            stale.append(previous[0])
        newest[record["id"]] = (job, record)
    found: list[dict[str, Any]] = []
    for job_id, (job, record) in sorted(newest.items()):
        try:
            stats = await client.stats_job(job_id)
        except NotFound:
            stale.append(job)
            continue
        if not matches(record, dict(stats)):
            stale.append(job)
            continue
        found.append({**record, "state": stats["state"]})
    stale_ids = {job.id for job in stale}
    for job, _record in held:
        if job.id in stale_ids:
            await client.delete(job)
        else:
            await client.release(job, RECORD_PRIORITY, 0)
    return found


async def _take_records(
    client: Client[Any], name: str
) -> list[tuple[Any, Optional[dict[str, Any]]]]:
    """Reserve every ready job of record tube ``name`` (the watch list restored after)."""
    watched = await client.list_tubes_watched()
    await client.watch(name)
    for other in watched:
        if other != name:
            await client.ignore(other)
    held: list[tuple[Any, Optional[dict[str, Any]]]] = []
    try:
        while True:
            try:
                job = await client.reserve(timeout=0)
            except TimedOut:
                break
            held.append((job, parse_record(job.body)))
    finally:
        for other in watched:
            await client.watch(other)
        if name not in watched:
            await client.ignore(name)
    return held


async def purge_records(client: Client[Any], tube: str, job_ids: Iterable[int]) -> int:
    """Delete the records of ``job_ids`` (jobs deleted by the caller); returns how many."""
    name = record_tube(tube)
    if name is None:
        return 0
    wanted = set(job_ids)
    held = await _take_records(client, name)
    deleted = 0
    for job, record in held:
        if record is not None and record["id"] in wanted:
            await client.delete(job)
            deleted += 1
        else:
            await client.release(job, RECORD_PRIORITY, 0)
    return deleted


async def buried_tubes(
    client: Client[Any], tubes: Optional[Iterable[str]] = None
) -> dict[str, int]:
    """``{tube: buried job count}`` for the tubes that have buried jobs.

    Buried jobs are failures nobody has looked at yet: alert when this is not
    empty (and read why with :func:`beanstalkt.worker.failures.read_failures`
    or ``beanstalkt failures TUBE``). ``tubes`` defaults to every tube on the server.
    """
    names = list(tubes) if tubes is not None else await client.list_tubes()
    every_tube = await per_tube(names, client.stats_tube)
    return {
        name: stats["current-jobs-buried"]
        for name, stats in every_tube.items()
        if stats.get("current-jobs-buried", 0)
    }


__all__ = [
    "CREATED_TOLERANCE",
    "MAX_MESSAGE",
    "MAX_TRACEBACK",
    "SUFFIX",
    "buried_tubes",
    "describe",
    "format_traceback",
    "matches",
    "parse_record",
    "purge_records",
    "read_failures",
    "record_body",
    "record_tube",
]

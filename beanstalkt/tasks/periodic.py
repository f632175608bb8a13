"""Periodic tasks: the schedule lives in beanstalkd, one delayed *tick* job per schedule.

Each periodic task has a tube of its own, its *tick tube*
(``tasks.periodic.<name>``), meant to hold exactly one job: the next tick, a
task envelope delayed until the tick's time (its ``headers["tick"]`` says
which time, in seconds since the epoch). Every worker of the tasks watches
every tick tube; beanstalkd hands a due tick to exactly one of them, and that
worker

1. reads the tick tube's ``stats-tube``: when the tube holds no job but the
   one it reserved, it puts the *next* tick (delayed until the schedule's next
   time after this tick's);
2. runs the task (its errors are logged; a tick is never retried);
3. deletes the tick it reserved.

So no scheduler process is needed, any number of workers share a schedule,
and with a binlog the schedule survives a beanstalkd restart.

A worker dying mid-tick (killed, or its connection lost) after step 1: the
next tick is already scheduled; the server makes the reserved tick ready
again (at once when the connection closes, else when its TTR expires), another
worker reserves it, sees that the next tick exists (step 1 puts nothing) and
runs the task again. That tick runs twice, the task having possibly done part
of its work the first time; every later tick runs once. Dying before step 1:
the tick is handed out again and runs once, late. A run that takes longer than
the interval overlaps the next tick's run (as cron would).

Creating the first tick. A starting worker (and each worker every
``reseed_interval`` seconds, so that a tick lost with a server restarted
without binlog comes back) makes sure the tick tube is not empty. Workers
starting together must not each put one, so the check-then-put is done under
a lock made of beanstalkd jobs: each contender puts a ticket job (ready,
priority 0) in the schedule's lock tube, which nobody reserves from; the ready
jobs of one priority are handed out, and peeked, in job-id order, so the
ticket ``peek-ready`` returns is the oldest contender's. A contender waits
until its ticket is the one peeked, checks the tick tube (``stats-tube``:
ready, delayed and reserved jobs; buried ones do not count) and puts the first
tick only when it is empty, then deletes its ticket, handing the lock to the
next. A ticket older than ``LOCK_STALE_SECONDS`` (its owner died holding the
lock) is deleted by whoever finds it. The tube can only be empty when no
chain of ticks exists, since a worker holding a tick puts the next one before
it deletes its own.

A job in a tick tube that is not a tick (no ``tick`` header, not an
envelope) is buried with a failure record, and the next tick is put in its
place unless the tube holds one.

Over several servers a schedule lives on one server, chosen from its name by
rendezvous hashing over the configured servers; while that server is down the
schedule does not fire.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

from ..client import Client
from ..errors import NotFound
from .envelope import Envelope

logger = logging.getLogger("beanstalkt.tasks")

#: A lock ticket older than this (seconds) belongs to a dead worker and is removed.
LOCK_STALE_SECONDS = 30
# How often a contender looks whether its ticket has come first.
_LOCK_POLL = 0.05
_TUBE_CHARACTERS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-+/;.$_()"
)
_MAX_TUBE = 200


class Interval:
    """Every ``every`` (at least one second), at times aligned on multiples of it since the epoch.

    Aligned, so that every worker computes the same times: ``every=5
    minutes`` fires at :00, :05, :10...
    """

    def __init__(self, every: datetime.timedelta) -> None:
        seconds = every.total_seconds()
        if seconds < 1:
            raise ValueError("every= must be at least one second (beanstalkd delays are seconds)")
        self.seconds = seconds

    def next_after(self, moment: float) -> float:
        """The first time strictly after ``moment`` (seconds since the epoch)."""
        return (math.floor(moment / self.seconds) + 1) * self.seconds

    def __repr__(self) -> str:
        return f"every {datetime.timedelta(seconds=self.seconds)}"


class Cron:
    """A five-field cron expression (``"*/5 * * * *"``), in UTC unless ``tz`` is given.

    Needs the ``cron`` extra (``pip install 'beanstalkt[cron]'``, which brings
    in cronsim).
    """

    def __init__(self, expression: str, tz: Optional[datetime.tzinfo] = None) -> None:
        try:
            from cronsim import CronSim, CronSimError
        except ImportError:
            raise ImportError(
                "cron= needs the cron extra: pip install 'beanstalkt[cron]'"
            ) from None
        self._cronsim = CronSim
        self.tz = tz or datetime.timezone.utc
        try:
            CronSim(expression, datetime.datetime.now(self.tz))
        except CronSimError as exc:
            raise ValueError(f"cron expression {expression!r}: {exc}") from None
        self.expression = expression

    def next_after(self, moment: float) -> float:
        """The first time strictly after ``moment`` (seconds since the epoch)."""
        start = datetime.datetime.fromtimestamp(moment, self.tz)
        return float(next(self._cronsim(self.expression, start)).timestamp())

    def __repr__(self) -> str:
        return f"cron {self.expression!r}"


Schedule = Union[Interval, Cron]


@dataclass
class Periodic:
    """One periodic task's schedule and where its tick lives."""

    name: str
    schedule: Schedule
    tube: str

    @property
    def lock_tube(self) -> str:
        """The tube of the seeding lock's tickets."""
        return tick_tube(self.tube, ".lock")


def tick_tube(name: str, suffix: str = "") -> str:
    """A valid tube name made from ``name`` (``prefix + task name``) and ``suffix``.

    Characters a tube name cannot hold become ``_``; a name too long is cut
    and ends with a hash of the whole, so that two schedules never share a tube.
    """
    cleaned = "".join(ch if ch in _TUBE_CHARACTERS else "_" for ch in name)
    if cleaned.startswith("-"):
        cleaned = "_" + cleaned[1:]
    if len(cleaned) + len(suffix) > _MAX_TUBE or cleaned != name:
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        cleaned = cleaned[: _MAX_TUBE - len(suffix) - 13] + "." + digest
    return cleaned + suffix


def home_server(name: str, addresses: Sequence[str]) -> str:
    """The server (of ``addresses``) a schedule lives on: rendezvous hashing of its name."""
    return max(addresses, key=lambda address: hashlib.sha256(f"{address}|{name}".encode()).digest())


def tick_envelope(periodic: Periodic, when: float) -> Envelope:
    """The envelope of the tick due at ``when`` (seconds since the epoch)."""
    return Envelope(name=periodic.name, headers={"tick": repr(float(when))})


def tick_time(envelope: Envelope) -> Optional[float]:
    """The time a tick was due at, from its ``tick`` header (``None``: not a tick)."""
    try:
        return float(envelope.headers["tick"])
    except (KeyError, ValueError):
        return None


def next_tick(schedule: Schedule, due: float, now: float) -> float:
    """When the tick after the one ``due`` then fires: late ticks are skipped, none is early."""
    upcoming = schedule.next_after(due)
    if upcoming <= now:  # more than one interval late: skip the missed ones
        upcoming = schedule.next_after(now)
    return upcoming


def _delay(when: float, now: float) -> int:
    # Whole seconds, rounded up: a tick never fires before its time.
    return max(0, math.ceil(when - now))


def _jobs_waiting(stats: Any) -> int:
    return int(stats["current-jobs-ready"]) + int(stats["current-jobs-delayed"])


async def put_tick(client: Client[Any], periodic: Periodic, when: float, ttr: int) -> int:
    """Put the tick due at ``when``; its job id."""
    body = tick_envelope(periodic, when).encode()
    return await client.put(
        body, priority=0, delay=_delay(when, time.time()), ttr=ttr, tube=periodic.tube
    )


async def schedule_next(
    client: Client[Any], periodic: Periodic, due: float, ttr: int
) -> Optional[float]:
    """Step 1 of a tick: put the next tick unless the tube already holds one; its time, if put.

    Called by the worker holding the tick due at ``due``: that tick is one of
    the tube's reserved jobs.
    """
    stats = await client.stats_tube(periodic.tube)
    others = _jobs_waiting(stats) + int(stats["current-jobs-reserved"]) - 1
    if others > 0:
        logger.info(
            "periodic %s: the tick after %s is already scheduled", periodic.name, _stamp(due)
        )
        return None
    now = time.time()
    upcoming = next_tick(periodic.schedule, due, now)
    await put_tick(client, periodic, upcoming, ttr)
    return upcoming


async def ensure_tick(client: Client[Any], periodic: Periodic, ttr: int) -> bool:
    """Put the first tick unless one exists, under the lock tube's ticket lock; True if put."""
    ticket = await client.put(b"lock", priority=0, ttr=LOCK_STALE_SECONDS, tube=periodic.lock_tube)
    try:
        await _wait_for_turn(client, periodic, ticket)
        try:
            stats = await client.stats_tube(periodic.tube)
        except NotFound:
            existing = 0
        else:
            existing = _jobs_waiting(stats) + int(stats["current-jobs-reserved"])
        if existing:
            return False
        when = periodic.schedule.next_after(time.time())
        await put_tick(client, periodic, when, ttr)
        logger.info("periodic %s: first tick scheduled for %s", periodic.name, _stamp(when))
        return True
    finally:
        with contextlib.suppress(NotFound):  # deleted as stale by another contender
            await client.delete(ticket)


async def _wait_for_turn(client: Client[Any], periodic: Periodic, ticket: int) -> None:
    """Return once ``ticket`` is the oldest ticket of the lock tube."""
    while True:
        try:
            head = await client.peek_ready(tube=periodic.lock_tube)
        except NotFound:
            # Our own ticket was deleted as stale (we were stalled for longer than
            # LOCK_STALE_SECONDS): the lock is not ours, try again from the start.
            raise RuntimeError(f"periodic {periodic.name}: lock ticket {ticket} vanished") from None
        if head.id == ticket:
            return
        if head.id < ticket:
            try:
                age = (await client.stats_job(head.id))["age"]
            except NotFound:
                continue
            if age > LOCK_STALE_SECONDS:
                logger.warning(
                    "periodic %s: removing lock ticket %d, %ds old", periodic.name, head.id, age
                )
                with contextlib.suppress(NotFound):
                    await client.delete(head.id)
                continue
        await asyncio.sleep(_LOCK_POLL)


def _stamp(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.timezone.utc).isoformat()

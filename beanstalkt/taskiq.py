"""A taskiq broker on beanstalkd (the ``taskiq`` extra: ``pip install 'beanstalkt[taskiq]'``).

::

    from beanstalkt.taskiq import BeanstalkBroker

    broker = BeanstalkBroker(host="localhost", port=11300)      # or servers=[...]

    @broker.task(priority=0, ttr=60)
    async def add(a: int, b: int) -> int:
        return a + b

    await add.kiq(1, 2)                 # then: taskiq worker myapp:broker

:meth:`~BeanstalkBroker.kick` puts the message's bytes with its labels mapped
onto beanstalkd's own job settings:

* ``priority``: beanstalkd's number as given, 0 the most urgent, up to
  2**32 - 1 (taskiq's other brokers read a *higher* label as more urgent:
  here it is beanstalkd's order);
* ``delay``: seconds before the job is ready (rounded up to whole seconds);
* ``ttr``: the job's time to run (the listener touches a job held longer);
* ``tube``: the tube (default: the broker's ``tube``); a worker listens on
  the broker's ``tubes``.

:meth:`~BeanstalkBroker.listen` reserves from every server, yields each job
as a :class:`taskiq.AckableMessage` whose ``ack`` deletes the job, touches
held jobs before their TTR runs out, and :meth:`~BeanstalkBroker.shutdown`
releases the jobs reserved and not acknowledged, so that another worker takes
them at once. A job whose ack never comes (the worker was killed) is handed
out again by beanstalkd when its connection closes: delivery is at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

from taskiq import AckableMessage, AsyncBroker, BrokerMessage

from .address import format_address, parse_address
from .client import Client
from .errors import (
    BeanstalkConnectionError,
    BeanstalkException,
    DeadlineSoon,
    NotFound,
    ReservationLost,
    TimedOut,
)
from .pool import Pool
from .protocol import DEFAULT_PRIORITY, DEFAULT_TTR, MAX_UINT32, check_integer, check_tube_name

logger = logging.getLogger("beanstalkt.taskiq")

# How often held jobs are looked at for touches.
_TOUCH_SWEEP = 0.2
# After a connection error in a reserve loop, wait this long before trying again.
_ERROR_PAUSE = 1.0
# After DEADLINE_SOON, before the next reserve on that connection.
_DEADLINE_PAUSE = 0.1


@dataclass
class _Held:
    """A job reserved by the listener and not acknowledged yet."""

    client: Client[bytes]
    job: Any
    reserved_at: float
    touched_at: float
    ttr: Optional[int] = None
    priority: int = DEFAULT_PRIORITY


def label_settings(
    labels: dict[str, Any], tube: str, priority: int, ttr: int
) -> tuple[str, int, int, int]:
    """``(tube, priority, delay, ttr)`` of a message's labels (pure; ``ValueError`` if bad)."""
    chosen_tube = str(labels.get("tube", tube))
    check_tube_name(chosen_tube)
    chosen_priority = check_integer(
        "priority", int(labels.get("priority", priority)), 0, MAX_UINT32
    )
    raw_delay = float(labels.get("delay", 0) or 0)
    if not 0 <= raw_delay <= MAX_UINT32:
        raise ValueError(f"delay label {raw_delay} is out of range")
    delay = math.ceil(raw_delay)
    chosen_ttr = check_integer("ttr", int(labels.get("ttr", ttr)), 0, MAX_UINT32)
    return chosen_tube, chosen_priority, delay, chosen_ttr


class BeanstalkBroker(AsyncBroker):
    """A :class:`taskiq.AsyncBroker` putting tasks in beanstalkd and reserving them.

    :param host: beanstalkd host (default: the :class:`~beanstalkt.Client`
        default, ``localhost``), with ``port``.
    :param port: beanstalkd port (default: the Client default, 11300).
    :param servers: several servers instead: kick spreads the tasks over them
        (a :class:`~beanstalkt.Pool`), listen reserves from all.
    :param tube: where tasks go without a ``tube`` label (``"taskiq"``).
    :param tubes: the tubes a worker listens on (default: ``[tube]``).
    :param priority: the priority of tasks without a ``priority`` label.
    :param ttr: the time to run of tasks without a ``ttr`` label.
    :param reserve_timeout: seconds each reserve waits on a server before
        the listener looks again (at least 1).
    :param touch_fraction: a held job is touched every ``ttr *
        touch_fraction`` seconds.
    """

    def __init__(
        self,
        host: Optional[str] = None,
        port: Optional[int] = None,
        *,
        servers: Optional[Sequence[str]] = None,
        tube: str = "taskiq",
        tubes: Optional[Sequence[str]] = None,
        priority: int = DEFAULT_PRIORITY,
        ttr: int = DEFAULT_TTR,
        reserve_timeout: float = 1.0,
        touch_fraction: float = 0.5,
    ) -> None:
        super().__init__()
        if servers is not None and (host is not None or port is not None):
            raise TypeError("give either servers= or host=/port=, not both")
        if isinstance(servers, str):
            raise TypeError("servers must be a list of addresses, not one string")
        if servers is not None:
            self.addresses = [format_address(*parse_address(text)) for text in servers]
            if not self.addresses:
                raise ValueError("servers must name at least one server")
        else:
            # The Client's own defaults (localhost:11300) for what is not given.
            default_host, default_port = parse_address(
                (Client() if host is None else Client(host)).address
            )
            self.addresses = [format_address(default_host, port or default_port)]
        self._pooled = servers is not None
        check_tube_name(tube)
        self.tube = tube
        self.tubes = list(tubes) if tubes is not None else [tube]
        for name in self.tubes:
            check_tube_name(name)
        self.priority = check_integer("priority", priority, 0, MAX_UINT32)
        self.ttr = check_integer("ttr", ttr, 0, MAX_UINT32)
        self.reserve_timeout = max(1, math.ceil(reserve_timeout))
        if not 0 < touch_fraction < 1:
            raise ValueError("touch_fraction must be between 0 and 1")
        self.touch_fraction = touch_fraction
        self._producer: Union[Client[bytes], Pool, None] = None
        self._consumers: list[Client[bytes]] = []
        self._held: dict[tuple[int, int], _Held] = {}
        self._ready: list[tuple[Client[bytes], Any]] = []
        self._toucher: Optional[asyncio.Task[None]] = None
        self._closing = False

    # ------------------------------------------------------------------
    # Producing.

    async def startup(self) -> None:
        """Connect the producer (and run taskiq's startup hooks)."""
        await super().startup()
        await self._connected_producer()

    async def _connected_producer(self) -> Union[Client[bytes], Pool]:
        if self._producer is None:
            producer: Union[Client[bytes], Pool]
            if self._pooled:
                producer = Pool(self.addresses)
            else:
                host, port = parse_address(self.addresses[0])
                producer = Client(host, port)
            await producer.connect()
            self._producer = producer
        return self._producer

    async def kick(self, message: BrokerMessage) -> None:
        """Put the message's bytes with its labels as beanstalkd settings (see the module)."""
        tube, priority, delay, ttr = label_settings(
            message.labels, self.tube, self.priority, self.ttr
        )
        producer = await self._connected_producer()
        await producer.put(message.message, priority, delay, ttr, tube=tube)

    # ------------------------------------------------------------------
    # Consuming.

    async def _connect_consumers(self) -> None:
        if self._consumers:
            return
        for address in self.addresses:
            host, port = parse_address(address)
            client: Client[bytes] = Client(host, port, watch=self.tubes)
            try:
                await client.connect()
            except BeanstalkConnectionError as exc:
                if not self._pooled:
                    raise
                # Reconnects only after a first success: a server down now is
                # left out of this listener (logged), the others serve.
                logger.warning("taskiq listener: %s unreachable: %s", address, exc)
                continue
            self._consumers.append(client)
        if not self._consumers:
            raise BeanstalkConnectionError(message="no server answered")
        self._toucher = asyncio.ensure_future(self._touch_held())

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        """Reserve from every server and yield each job as an AckableMessage (ack deletes it)."""
        await self._connect_consumers()
        while not self._closing:
            if not self._ready:
                await self._reserve_some()
                continue
            client, job = self._ready.pop(0)
            yield AckableMessage(data=job.body, ack=self._acknowledger(client, job))

    async def _reserve_some(self) -> None:
        """Fill ``_ready``: a job found at once on any server, else wait on all of them."""
        clients = [client for client in self._consumers if not client.closed()]
        if not clients:
            await asyncio.sleep(_ERROR_PAUSE)
            return
        for client in clients:
            job = await self._try_reserve(client, 0)
            if job is not None:
                self._hold(client, job)
                return
        waits = [asyncio.ensure_future(self._try_reserve(c, self.reserve_timeout)) for c in clients]
        try:
            jobs = await asyncio.gather(*waits)
        except BaseException:
            for wait in waits:
                wait.cancel()  # a job reserved after this is released by the client
            raise
        for client, job in zip(clients, jobs, strict=True):
            if job is not None:
                self._hold(client, job)

    async def _try_reserve(self, client: Client[bytes], timeout: int) -> Any:
        try:
            return await client.reserve(timeout=timeout)
        except TimedOut:
            return None
        except DeadlineSoon:
            # A held job's TTR is about to run out: let its touch through.
            await asyncio.sleep(_DEADLINE_PAUSE)
            return None
        except BeanstalkException as exc:
            if not self._closing:
                logger.warning("taskiq listener: reserve on %s failed: %s", client.address, exc)
                await asyncio.sleep(_ERROR_PAUSE)
            return None

    def _hold(self, client: Client[bytes], job: Any) -> None:
        now = time.monotonic()
        self._held[(id(client), job.id)] = _Held(client, job, now, now)
        self._ready.append((client, job))

    def _acknowledger(self, client: Client[bytes], job: Any) -> Any:
        async def ack() -> None:
            held = self._held.pop((id(client), job.id), None)
            if held is None:
                return  # released at shutdown, or acknowledged already
            await client.delete(job)

        return ack

    async def _touch_held(self) -> None:
        """Touch every held job before ``ttr * touch_fraction`` has passed since the last touch."""
        while True:
            await asyncio.sleep(_TOUCH_SWEEP)
            now = time.monotonic()
            for key, held in list(self._held.items()):
                if now - held.reserved_at < _TOUCH_SWEEP:
                    continue
                try:
                    if held.ttr is None:
                        stats = await held.client.stats_job(held.job.id)
                        held.ttr = max(1, int(stats.get("ttr", 1)))
                        held.priority = int(stats.get("pri", DEFAULT_PRIORITY))
                    if time.monotonic() - held.touched_at >= held.ttr * self.touch_fraction:
                        await held.client.touch(held.job)
                        held.touched_at = time.monotonic()
                except (NotFound, ReservationLost):
                    # Gone: its TTR ran out, or its connection was lost (the
                    # server made it ready again); an ack would fail the same way.
                    self._held.pop(key, None)
                except BeanstalkException as exc:
                    logger.warning("taskiq listener: touch of job %d failed: %s", held.job.id, exc)
                    if held.client.closed():
                        self._held.pop(key, None)  # the server made it ready again

    @property
    def held(self) -> int:
        """Jobs reserved by the listener and not acknowledged yet."""
        return len(self._held)

    async def shutdown(self) -> None:
        """Release the jobs reserved and not acknowledged, close every connection."""
        self._closing = True
        if self._toucher is not None:
            self._toucher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._toucher
            self._toucher = None
        held, self._held = list(self._held.values()), {}
        self._ready = []
        releases = [_release(each) for each in held if not each.client.closed()]
        for outcome in await asyncio.gather(*releases, return_exceptions=True):
            if isinstance(outcome, BaseException):
                logger.warning("taskiq listener: release at shutdown failed: %s", outcome)
        if held:
            logger.info("taskiq listener: %d unacknowledged job(s) released", len(held))
        for client in self._consumers:
            await client.close()  # whatever is still reserved goes back to ready
        self._consumers = []
        if self._producer is not None:
            await self._producer.close()
            self._producer = None
        await super().shutdown()


async def _release(held: _Held) -> None:
    """Hand a held job back to ready with its own priority."""
    if held.ttr is None:  # its priority was never read
        held.priority = int((await held.client.stats_job(held.job.id)).get("pri", DEFAULT_PRIORITY))
    await held.client.release(held.job, held.priority)

"""The live view of every server: one client and one polling loop per server.

Each :class:`LiveServer` polls its server every ``interval`` seconds
(``stats``, ``list-tubes`` and a pipelined ``stats-tube`` per tube), keeps the
last snapshot and a few minutes of ready/buried history per tube, and tells its
listeners (the WebSocket connections) after every poll. A server that does not
answer is *down*: its client is closed and a fresh one tries again on the next
poll, so a dead server never stops the others or the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from ssl import SSLContext
from typing import Any, Optional

from ..._compat import ssl_or_old_spelling
from ...address import format_address
from ...client import Client
from ...connection import SSLOption
from ...errors import BeanstalkConnectionError, BeanstalkException, NotFound
from ...models import Stats, StatsTube
from ._tube_ops import TubeOps

log = logging.getLogger("beanstalkt.web")

Listener = Callable[[dict[str, Any]], None]

#: Seconds a connection attempt may take before the server counts as down.
CONNECT_TIMEOUT = 2.0
#: Seconds a server may owe a reply before its connection is dropped as stalled.
REPLY_TIMEOUT = 5.0


class ServerDown(Exception):
    """The server is not reachable right now (the message says why)."""


class LiveServer:
    """One beanstalkd server: its shared client, latest snapshot and history."""

    def __init__(
        self,
        index: int,
        host: str,
        port: int,
        interval: float = 1.0,
        history_seconds: int = 300,
        ssl: SSLOption = None,
        *,
        ssl_context: Optional[SSLContext] = None,
    ) -> None:
        self.index = index
        self.host = host
        self.port = port
        #: TLS for this server, as :class:`beanstalkt.Client`'s ``ssl``.
        self.ssl = ssl_or_old_spelling(ssl, ssl_context, "LiveServer")
        self.interval = interval
        self.history_seconds = history_seconds
        self.client: Optional[Client[bytes]] = None
        self.ops: Optional[TubeOps] = None
        self.error = "not polled yet"
        self.max_job_size: Optional[int] = None
        self.snapshot: dict[str, Any] = self._down_snapshot()
        #: tube -> deque of (time, ready, buried)
        self.history: dict[str, deque[tuple[float, int, int]]] = {}
        self.listeners: set[Listener] = set()
        self._previous: Optional[tuple[float, Stats, dict[str, StatsTube]]] = None
        self._task: Optional[asyncio.Task[None]] = None
        self._polled = asyncio.Event()

    @property
    def address(self) -> str:
        """``host:port`` (or ``unix:/path``), as shown on the page."""
        return format_address(self.host, self.port)

    @property
    def up(self) -> bool:
        """True when the last poll succeeded."""
        return bool(self.snapshot["up"])

    def start(self) -> None:
        """Start polling in the running event loop."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Stop polling and close the client."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._drop_client()

    async def first_poll(self) -> None:
        """Wait until the first poll has finished, whatever its outcome."""
        await self._polled.wait()

    def require(self) -> tuple[Client[bytes], TubeOps]:
        """The connected client and its tube commands, or :class:`ServerDown`."""
        if self.client is None or self.ops is None or not self.up:
            raise ServerDown(f"beanstalkd at {self.address} is down: {self.error}")
        return self.client, self.ops

    def connection_lost(self, error: BaseException) -> None:
        """A command of a page request found the connection gone: mark down, reconnect."""
        self._mark_down(error)

    async def _run(self) -> None:
        while True:
            await self.poll_once()
            self._polled.set()
            await asyncio.sleep(self.interval)

    async def poll_once(self) -> None:
        """Poll the server once and tell the listeners; never raises for a server problem."""
        try:
            await asyncio.wait_for(self._poll(), timeout=CONNECT_TIMEOUT + 2 * REPLY_TIMEOUT)
        except (BeanstalkException, OSError, asyncio.TimeoutError) as error:
            self._mark_down(error)
        self._notify()

    async def _poll(self) -> None:
        if self.client is None:
            client = Client(
                self.host,
                self.port,
                connect_timeout=CONNECT_TIMEOUT,
                disconnected_timeout=0,
                stall_timeout=REPLY_TIMEOUT,
                ssl=self.ssl,
            )
            try:
                await client.connect()
            except BaseException:
                client.close()
                raise
            self.client, self.ops = client, TubeOps(client)
        client = self.client
        stats_future = client.stats()
        tubes_future = client.list_tubes()
        stats, tubes = await asyncio.gather(stats_future, tubes_future)
        replies = await asyncio.gather(
            *(client.stats_tube(name) for name in tubes), return_exceptions=True
        )
        tube_stats: dict[str, StatsTube] = {}
        for name, reply in zip(tubes, replies, strict=True):
            if isinstance(reply, NotFound):
                continue  # the tube went away between the two commands
            if isinstance(reply, BaseException):
                raise reply
            tube_stats[name] = reply
        self._record(time.time(), stats, tube_stats)

    def _record(self, now: float, stats: Stats, tubes: dict[str, StatsTube]) -> None:
        previous = self._previous
        elapsed = now - previous[0] if previous else 0.0

        def rate(current: Any, old: Any, key: str) -> Optional[float]:
            # Per second since the previous poll; None for the first poll or a reset counter.
            if not old or elapsed <= 0 or key not in old or current.get(key, 0) < old[key]:
                return None
            return round(float(current.get(key, 0) - old[key]) / elapsed, 2)

        rows = []
        for name in sorted(tubes):
            tube = tubes[name]
            old = previous[2].get(name) if previous else None
            pause_left = tube.get("pause-time-left", 0)
            rows.append(
                {
                    "name": name,
                    "ready": tube.get("current-jobs-ready", 0),
                    "reserved": tube.get("current-jobs-reserved", 0),
                    "delayed": tube.get("current-jobs-delayed", 0),
                    "buried": tube.get("current-jobs-buried", 0),
                    "urgent": tube.get("current-jobs-urgent", 0),
                    "total": tube.get("total-jobs", 0),
                    "waiting": tube.get("current-waiting", 0),
                    "watching": tube.get("current-watching", 0),
                    "paused": pause_left > 0,
                    "pause_left": pause_left,
                    "put_rate": rate(tube, old, "total-jobs"),
                    "delete_rate": rate(tube, old, "cmd-delete"),
                }
            )
            history = self.history.setdefault(name, deque())
            ready, buried = tube.get("current-jobs-ready", 0), tube.get("current-jobs-buried", 0)
            history.append((now, ready, buried))
            while history and history[0][0] < now - self.history_seconds:
                history.popleft()
        for gone in set(self.history) - set(tubes):
            del self.history[gone]
        old_stats = previous[1] if previous else None
        self.max_job_size = stats.get("max-job-size")
        self.error = ""
        self.snapshot = {
            "index": self.index,
            "address": self.address,
            "up": True,
            "error": "",
            "time": now,
            "version": stats.get("version", ""),
            "uptime": stats.get("uptime", 0),
            "totals": {
                "ready": stats.get("current-jobs-ready", 0),
                "reserved": stats.get("current-jobs-reserved", 0),
                "delayed": stats.get("current-jobs-delayed", 0),
                "buried": stats.get("current-jobs-buried", 0),
                "urgent": stats.get("current-jobs-urgent", 0),
                "tubes": len(tubes),
                "connections": stats.get("current-connections", 0),
                "workers": stats.get("current-workers", 0),
            },
            "put_rate": rate(stats, old_stats, "cmd-put"),
            "delete_rate": rate(stats, old_stats, "cmd-delete"),
            "tubes": rows,
        }
        self._previous = (now, stats, tubes)

    def _mark_down(self, error: BaseException) -> None:
        if isinstance(error, asyncio.TimeoutError):
            reason = "no reply in time"
        elif isinstance(error, BeanstalkConnectionError):
            reason = str(error) or type(error).__name__
        else:
            reason = f"{type(error).__name__}: {error}"
        if self.up or self.error != reason:
            log.warning("beanstalkd at %s is down: %s", self.address, reason)
        self.error = reason
        self.snapshot = self._down_snapshot()
        self.history.clear()
        self._previous = None
        self._drop_client()

    def _drop_client(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = self.ops = None

    def _down_snapshot(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "address": self.address,
            "up": False,
            "error": self.error,
            "time": time.time(),
            "tubes": [],
        }

    def history_points(self) -> dict[str, list[list[float]]]:
        """The history as JSON-ready lists: tube -> [[time, ready, buried], ...]."""
        return {name: [list(point) for point in points] for name, points in self.history.items()}

    def _notify(self) -> None:
        message = {"type": "server", "server": self.snapshot}
        for listener in list(self.listeners):
            try:
                listener(message)
            except Exception:  # one broken listener must not starve the others
                log.exception("web console listener failed")


class LiveServers:
    """All servers of one console (all reached with TLS when ``ssl`` is given).

    ``ssl`` is :class:`beanstalkt.Client`'s; ``ssl_context=`` is its old
    spelling, still accepted.
    """

    def __init__(
        self,
        addresses: list[tuple[str, int]],
        interval: float = 1.0,
        history_seconds: int = 300,
        ssl: SSLOption = None,
        *,
        ssl_context: Optional[SSLContext] = None,
    ) -> None:
        ssl = ssl_or_old_spelling(ssl, ssl_context, "LiveServers")
        self.servers = [
            LiveServer(index, host, port, interval, history_seconds, ssl)
            for index, (host, port) in enumerate(addresses)
        ]
        self.history_seconds = history_seconds

    def start(self) -> None:
        """Start polling every server."""
        for server in self.servers:
            server.start()

    async def stop(self) -> None:
        """Stop polling and close every client."""
        await asyncio.gather(*(server.stop() for server in self.servers))

    async def first_poll(self) -> None:
        """Wait until every server has been polled once."""
        await asyncio.gather(*(server.first_poll() for server in self.servers))

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(message)`` after every poll of every server."""
        for server in self.servers:
            server.listeners.add(listener)

    def unsubscribe(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        for server in self.servers:
            server.listeners.discard(listener)

    def hello(self) -> dict[str, Any]:
        """The first message of a live feed: every snapshot and the history so far."""
        return {
            "type": "hello",
            "history_seconds": self.history_seconds,
            "servers": [server.snapshot for server in self.servers],
            "history": [server.history_points() for server in self.servers],
        }


# The old names: "monitor" is beanstalkt.ops.monitor (the snapshots that top and
# the exporter share); the console's live state is live.LiveServers.
#: The old name of :class:`LiveServers`.
Monitor = LiveServers
#: The old name of :class:`LiveServer`.
ServerMonitor = LiveServer

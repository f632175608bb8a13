"""The live view of every server: one client and one polling loop per server.

Each :class:`LiveServer` polls its server (``stats``, ``list-tubes``, a
pipelined ``stats-tube`` per tube, and the age of the oldest ready job of the
busiest tubes), keeps the last snapshot and a few minutes of ready/buried
history per tube, and tells its listeners (the WebSocket connections) after
every poll. The servers' connections belong to one
:class:`~beanstalkt.servers.ServerSet` (the library's server layer): it
connects, proves each server live by a round trip and reconnects with backoff;
a server it holds out is shown *down* with its reason. Polling never stops for
good: a live server whose replies the console cannot use (a non-numeric
counter) is *down* with that reason, logged once, and polled again after the
console's own backoff (the poll interval, doubled at each failure, at most
:data:`MAX_BACKOFF`). A tube whose name the client refuses is left out and
named in the server's warnings; the others are shown.

A tube that an open tube page looks at is *watched*: after each poll the
console also peeks at the head of its ready, delayed and buried queues (on its
own connection) and keeps each head's stats, a short body preview and, for a
buried job, its failure record, so the page shows the next jobs live. Tubes
nobody looks at cost nothing more (see :mod:`.heads`).
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
from ...protocol import check_tube_name
from ...servers import Server, ServerSet
from ._tube_ops import TubeOps
from .heads import NextJobs
from .view import View, delta, select, sort_rows

log = logging.getLogger("beanstalkt.web")

Listener = Callable[["LiveServer"], None]

#: Seconds a connection attempt may take before the server counts as down.
CONNECT_TIMEOUT = 2.0
#: Seconds a server may owe a reply before its connection is dropped as stalled.
REPLY_TIMEOUT = 5.0


def console_client(host: str, port: int, ssl: SSLOption) -> Client[bytes]:
    """A client of the console's own: bounded connect and replies, no waiting while down."""
    return Client(
        host,
        port,
        connect_timeout=CONNECT_TIMEOUT,
        disconnected_timeout=0,
        stall_timeout=REPLY_TIMEOUT,
        ssl=ssl,
    )


#: Longest wait between two attempts at a server that keeps failing.
MAX_BACKOFF = 10.0
#: Points of history kept per tube (spread over ``history_seconds``).
HISTORY_POINTS = 60
#: The oldest ready job's age is measured for at most this many tubes per poll (most ready first).
AGE_TUBES = 200


class ServerDown(Exception):
    """The server is not reachable right now (the message says why)."""


class BadReply(Exception):
    """The server answered, but with something the console cannot use (the message says what)."""


def _number(source: str, stats: Any, key: str) -> int:
    """The whole-number field ``key`` of a stats reply (0 when absent); :class:`BadReply` else."""
    value = stats.get(key, 0)
    if type(value) is not int or value < 0:
        raise BadReply(f"{source}: {key} is {str(value)[:40]!r}, not a count")
    return value


def backoff_delay(interval: float, failures: int) -> float:
    """Seconds before the next attempt after ``failures`` failed polls in a row."""
    if failures <= 0:
        return interval
    return float(min(MAX_BACKOFF, interval * 2.0 ** (failures - 1)))


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
        poll_timeout: float = CONNECT_TIMEOUT + 3 * REPLY_TIMEOUT,
        member: Optional[Server] = None,
        server_set: Optional[ServerSet] = None,
    ) -> None:
        self.index = index
        #: This server in the console's :class:`~beanstalkt.servers.ServerSet`: its client,
        #: reconnects and liveness (``None``: a client of this object's own).
        self.member = member
        self.server_set = server_set
        #: Seconds one poll may take in all before the server counts as down.
        self.poll_timeout = poll_timeout
        self.host = host
        self.port = port
        #: TLS for this server, as :class:`beanstalkt.Client`'s ``ssl``.
        self.ssl = ssl_or_old_spelling(ssl, ssl_context, "LiveServer")
        self.interval = interval
        self.history_seconds = history_seconds
        self.client: Optional[Client[bytes]] = None
        self.ops: Optional[TubeOps] = None
        self.error = "not polled yet"
        self.failures = 0
        self.down_since: Optional[float] = None
        self.max_job_size: Optional[int] = None
        self.snapshot: dict[str, Any] = self._down_snapshot()
        #: Times of the history points (the newest last); every tube's points align to its end.
        self.sample_times: deque[float] = deque(maxlen=HISTORY_POINTS)
        #: tube -> deque of (ready, buried), aligned to the end of ``sample_times``
        self.history: dict[str, deque[tuple[int, int]]] = {}
        #: True when the last poll added a history point.
        self.sampled = False
        self.listeners: set[Listener] = set()
        self._previous: Optional[tuple[float, Stats, dict[str, StatsTube]]] = None
        self._sorted: dict[str, list[dict[str, Any]]] = {}
        self._task: Optional[asyncio.Task[None]] = None
        self._stopping = False
        self._polled = asyncio.Event()
        #: The next jobs of the tubes open tube pages show (see :mod:`.heads`).
        self.next_jobs = NextJobs(self)

    @property
    def watched(self) -> dict[str, int]:
        """tube -> how many open tube pages look at it."""
        return self.next_jobs.watched

    @property
    def heads(self) -> dict[str, dict[str, Optional[dict[str, Any]]]]:
        """tube -> {state: its next job as a tube page shows it, or None} (watched tubes)."""
        return self.next_jobs.heads

    def watch_tube(self, tube: str, failure_reader: Optional[Callable[..., Any]] = None) -> bool:
        """An open tube page looks at ``tube``: follow its next jobs; False when at the cap."""
        return self.next_jobs.watch(tube, failure_reader)

    def unwatch_tube(self, tube: str) -> None:
        """One tube page fewer looks at ``tube`` (undoes one :meth:`watch_tube`)."""
        self.next_jobs.unwatch(tube)

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
            self._stopping = False
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Stop polling and close the client."""
        self._stopping = True
        task, self._task = self._task, None
        # asyncio.wait_for before Python 3.12 can swallow a cancellation that arrives as
        # its inner call finishes: cancel again until the task is really done.
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=1.0)
        if task is not None and not task.cancelled():
            with contextlib.suppress(Exception):
                task.result()
        if self.member is None:
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

    def sorted_rows(self, sort: str) -> list[dict[str, Any]]:
        """The current snapshot's tube rows in the order ``sort`` (cached per snapshot)."""
        rows = self._sorted.get(sort)
        if rows is None:
            rows = self._sorted[sort] = sort_rows(self.snapshot["tubes"], sort)
        return rows

    def header(self) -> dict[str, Any]:
        """The snapshot without its tube rows: what every tab gets about this server."""
        return {key: value for key, value in self.snapshot.items() if key != "tubes"}

    async def _run(self) -> None:
        if self.member is not None and self.server_set is not None:
            # The first poll waits for the first connect and probe (bounded).
            await self.server_set.wait_for(self.member, CONNECT_TIMEOUT + REPLY_TIMEOUT)
        while not self._stopping:
            try:
                ok = await self.poll_once()
            except Exception:  # never expected; but this loop must not die
                log.exception("polling beanstalkd at %s failed", self.address)
                ok = False
            self._polled.set()
            self.failures = 0 if ok else self.failures + 1
            await asyncio.sleep(self._next_delay())

    def _next_delay(self) -> float:
        # A server the set holds out of rotation costs nothing to look at again: the set
        # reconnects with its own backoff; the console's backoff is for bad replies.
        if self.member is not None and not self.member.live:
            return self.interval
        return backoff_delay(self.interval, self.failures)

    async def poll_once(self) -> bool:
        """Poll the server once and tell the listeners; True if it answered properly.

        Never raises for a server problem: any failure is this server's error.
        """
        try:
            await asyncio.wait_for(self._poll(), timeout=self.poll_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self._mark_down(error)
            self._notify()
            return False
        self._notify()
        return True

    async def _poll(self) -> None:
        if self.member is not None:
            if self.server_set is not None and not self.member.live:
                if self.server_set.closed and not self._stopping:
                    # Polled by hand (poll_once) before start(): the set starts now.
                    await self.server_set.start(wait=False)
                # A first answer on its way is waited for (bounded); a server known down is not.
                await self.server_set.wait_for(self.member, CONNECT_TIMEOUT + REPLY_TIMEOUT)
            if not self.member.live:
                raise ServerDown(self.member.last_error or "no answer to a probe yet")
            if self.client is not self.member.client:
                self.client, self.ops = self.member.client, TubeOps(self.member.client)
        elif self.client is None:
            client = console_client(self.host, self.port, self.ssl)
            try:
                await client.connect()
            except BaseException:
                client.close()
                raise
            self.client, self.ops = client, TubeOps(client)
        client = self.client
        stats_future = client.stats()
        tubes_future = client.list_tubes()
        stats, listed = await asyncio.gather(stats_future, tubes_future)
        if not isinstance(listed, list):
            raise BadReply(f"list-tubes answered {str(listed)[:60]!r}, not a list")
        names, refused = [], []
        for name in listed:
            try:
                check_tube_name(name)
            except (TypeError, ValueError):
                refused.append(name)
            else:
                names.append(name)
        replies = await asyncio.gather(
            *(client.stats_tube(name) for name in names), return_exceptions=True
        )
        tube_stats: dict[str, StatsTube] = {}
        for name, reply in zip(names, replies, strict=True):
            if isinstance(reply, NotFound):
                continue  # the tube went away between the two commands
            if isinstance(reply, BaseException):
                raise reply
            tube_stats[name] = reply
        ages = await self._ages(tube_stats)
        assert self.ops is not None
        heads = await self.next_jobs.peek(client, self.ops, tube_stats)
        self._record(time.time(), stats, tube_stats, ages, refused)
        self.next_jobs.keep(heads)

    async def _ages(self, tubes: dict[str, StatsTube]) -> dict[str, int]:
        """Age of the oldest ready job of the busiest tubes (peek-ready, then stats-job)."""
        assert self.ops is not None and self.client is not None
        busy = [name for name, stats in tubes.items() if _ready(stats) > 0]
        busy.sort(key=lambda name: -_ready(tubes[name]))
        busy = busy[:AGE_TUBES]
        peeked = await asyncio.gather(
            *(self.ops.peek_ready(name) for name in busy), return_exceptions=True
        )
        heads = [(name, job.id) for name, job in zip(busy, peeked, strict=True)
                 if not isinstance(job, BaseException)]  # fmt: skip
        for outcome in peeked:
            if isinstance(outcome, BaseException) and not isinstance(outcome, NotFound):
                raise outcome
        job_stats = await asyncio.gather(
            *(self.client.stats_job(job_id) for _, job_id in heads), return_exceptions=True
        )
        ages = {}
        for (name, _), reply in zip(heads, job_stats, strict=True):
            if isinstance(reply, NotFound):
                continue  # taken meanwhile; measured again at the next poll
            if isinstance(reply, BaseException):
                raise reply
            ages[name] = _number(f"stats-job of {name}'s head", reply, "age")
        return ages

    def _record(
        self,
        now: float,
        stats: Stats,
        tubes: dict[str, StatsTube],
        ages: dict[str, int],
        refused: list[str],
    ) -> None:
        previous = self._previous
        rate = _rater(now - previous[0] if previous else 0.0)
        # Every value is checked before anything is kept: a bad reply changes nothing.
        rows = [
            _tube_row(name, tubes[name], previous[2].get(name) if previous else None, ages, rate)
            for name in sorted(tubes)
        ]
        totals = _totals(stats, len(tubes))
        old_stats = previous[1] if previous else None
        put_rate = rate(_number("stats", stats, "cmd-put"), old_stats, "cmd-put")
        delete_rate = rate(_number("stats", stats, "cmd-delete"), old_stats, "cmd-delete")
        max_job_size = _number("stats", stats, "max-job-size") or None
        uptime = _number("stats", stats, "uptime")

        self._sample(now, rows)
        if not self.up and self.down_since is not None:
            log.warning("beanstalkd at %s answers again", self.address)
        self.max_job_size = max_job_size
        self.error = ""
        self.down_since = None
        self.snapshot = {
            "index": self.index,
            "address": self.address,
            "up": True,
            "error": "",
            "warnings": _refused_warning(refused),
            "time": now,
            "interval": self.interval,
            "version": str(stats.get("version", ""))[:40],
            "uptime": uptime,
            "totals": totals,
            "oldest": max((row["oldest"] or 0 for row in rows), default=0),
            "put_rate": put_rate,
            "delete_rate": delete_rate,
            "tubes": rows,
        }
        self._sorted = {}
        self._previous = (now, stats, tubes)

    def _sample(self, now: float, rows: list[dict[str, Any]]) -> None:
        """Add a history point when the last is ``history_seconds / HISTORY_POINTS`` old."""
        self.sampled = not self.sample_times or (
            now - self.sample_times[-1] >= self.history_seconds / HISTORY_POINTS
        )
        if not self.sampled:
            return
        self.sample_times.append(now)
        for row in rows:
            points = self.history.get(row["name"])
            if points is None:
                points = self.history[row["name"]] = deque(maxlen=HISTORY_POINTS)
            points.append((row["ready"], row["buried"]))
        for gone in set(self.history) - {row["name"] for row in rows}:
            del self.history[gone]

    def _mark_down(self, error: BaseException) -> None:
        if isinstance(error, asyncio.TimeoutError):
            reason = "no reply in time"
        elif isinstance(error, BeanstalkConnectionError):
            reason = str(error) or type(error).__name__
        elif isinstance(error, ServerDown):
            reason = str(error)
        elif isinstance(error, BadReply):
            reason = f"bad reply: {error}"
        elif isinstance(error, BeanstalkException):
            reason = f"{type(error).__name__}: {error}"
        else:
            reason = f"{type(error).__name__}: {error}"
        reason = reason[:300]
        if self.up or self.error != reason:
            # Once per change of state or reason, however long it lasts.
            known = isinstance(
                error, (BeanstalkException, BadReply, ServerDown, OSError, asyncio.TimeoutError)
            )
            log.warning(
                "beanstalkd at %s is down: %s",
                self.address,
                reason,
                exc_info=None if known else error,
            )
        if self.down_since is None:
            self.down_since = time.time()
        self.error = reason
        self.snapshot = self._down_snapshot()
        self._sorted = {}
        self.history.clear()
        self.sample_times.clear()
        self._previous = None
        if self.member is None:
            self._drop_client()  # the set's own client reconnects by itself

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
            "warnings": [],
            "time": time.time(),
            "interval": self.interval,
            "down_since": self.down_since,
            "retry_in": self._retry_in(),
            "tubes": [],
        }

    def _retry_in(self) -> Optional[float]:
        if self.member is not None and not self.member.live:
            return None  # the server set decides when it tries again
        return backoff_delay(self.interval, self.failures + 1)

    def history_points(self) -> dict[str, list[list[float]]]:
        """The history as JSON-ready lists: tube -> [[time, ready, buried], ...]."""
        times = list(self.sample_times)
        return {
            name: [
                [t, r, b]
                for t, (r, b) in zip(times[len(times) - len(points) :], points, strict=True)
            ]
            for name, points in self.history.items()
        }

    def series(self, names: list[str]) -> dict[str, Any]:
        """History of ``names`` for a tab: shared times, and [name, ready, buried] per tube.

        ``ready`` and ``buried`` are difference-coded: ``[v0, v1 - v0, v2 - v1, ...]``.
        """
        return {
            "times": [round(t, 1) for t in self.sample_times],
            # A list, not an object keyed by name: see console.js on "__proto__". Each series
            # is its first value then the differences: counts move little between points.
            "tubes": [
                [name, _differences([r for r, _ in points]), _differences([b for _, b in points])]
                for name in names
                if (points := self.history.get(name)) is not None
            ],
        }

    def tab_message(self, view: View, sent: dict[str, Any]) -> Optional[dict[str, Any]]:
        """The message for one tab after a poll (``None``: nothing for it).

        ``sent`` is what the tab was sent of this server (name -> row); only
        rows that changed are sent again, and history only for rows new to it.
        """
        if view.tube is not None:
            return self._tube_message(view.tube, sent)
        rows, matched = select(self.sorted_rows(view.sort), view)
        changed, new = delta(rows, sent)
        message: dict[str, Any] = {
            "type": "server",
            "server": self.header(),
            "matched": matched,
            "order": [row["name"] for row in rows],
            "rows": changed,
            "sampled": self.sampled,
        }
        if new:
            message["history"] = self.series(new)
        return message

    def _tube_message(
        self, tube: tuple[int, str], sent: dict[str, Any]
    ) -> Optional[dict[str, Any]]:
        """A tube page's message: its row, and its next jobs when they changed (``.heads``)."""
        index, name = tube
        if self.index != index:
            return None
        row = next((r for r in self.snapshot["tubes"] if r["name"] == name), None)
        message: dict[str, Any] = {"type": "tube", "server": self.header(), "row": row}
        message.update(self.next_jobs.message(name, self.up, sent))
        return message

    def _notify(self) -> None:
        for listener in list(self.listeners):
            try:
                listener(self)
            except Exception:  # one broken listener must not starve the others
                log.exception("web console listener failed")


Rate = Callable[[int, Any, str], Optional[float]]


def _rater(elapsed: float) -> Rate:
    """``rate(current, old_stats, key)``: per second since the previous poll.

    ``None`` for the first poll or a counter that went down (a tube made anew).
    """

    def rate(current: int, old: Any, key: str) -> Optional[float]:
        if not old or elapsed <= 0 or key not in old or current < old[key]:
            return None
        return round(float(current - old[key]) / elapsed, 2)

    return rate


def _tube_row(
    name: str, tube: StatsTube, old: Any, ages: dict[str, int], rate: Rate
) -> dict[str, Any]:
    """One tube's row of the snapshot; :class:`BadReply` if a counter is not a count."""
    source = f"stats-tube {name}"

    def count(key: str) -> int:
        return _number(source, tube, key)

    pause_left, total, deletes = count("pause-time-left"), count("total-jobs"), count("cmd-delete")
    ready = count("current-jobs-ready")
    return {
        "name": name,
        "ready": ready,
        "reserved": count("current-jobs-reserved"),
        "delayed": count("current-jobs-delayed"),
        "buried": count("current-jobs-buried"),
        "urgent": count("current-jobs-urgent"),
        "total": total,
        "waiting": count("current-waiting"),
        "watching": count("current-watching"),
        "paused": pause_left > 0,
        "pause_left": pause_left,
        "put_rate": rate(total, old, "total-jobs"),
        "delete_rate": rate(deletes, old, "cmd-delete"),
        "oldest": (ages.get(name) if ready else 0),
        "using": count("current-using"),
        "deletes": deletes,
    }


def _totals(stats: Stats, tubes: int) -> dict[str, int]:
    """The server's totals row; :class:`BadReply` if a counter is not a count."""
    totals = {
        key: _number("stats", stats, f"current-jobs-{key}")
        for key in ("ready", "reserved", "delayed", "buried", "urgent")
    }
    totals.update(
        tubes=tubes,
        connections=_number("stats", stats, "current-connections"),
        workers=_number("stats", stats, "current-workers"),
        waiting=_number("stats", stats, "current-waiting"),
    )
    return totals


def _refused_warning(refused: list[str]) -> list[str]:
    if not refused:
        return []
    shown = ", ".join(repr(name[:40]) for name in refused[:3])
    return [
        f"{len(refused)} tube{'s' if len(refused) != 1 else ''} not shown: "
        f"names the client refuses ({shown}{', ...' if len(refused) > 3 else ''})"
    ]


def _differences(values: list[int]) -> list[int]:
    return [value - (values[i - 1] if i else 0) for i, value in enumerate(values)]


def _ready(stats: StatsTube) -> int:
    value = stats.get("current-jobs-ready", 0)
    return value if type(value) is int else 0


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
        poll_timeout: float = CONNECT_TIMEOUT + 3 * REPLY_TIMEOUT,
    ) -> None:
        ssl = ssl_or_old_spelling(ssl, ssl_context, "LiveServers")
        # One server layer: the set connects, reconnects with backoff and proves each server
        # live by a round trip; the console polls the live ones for what it shows.
        self.server_set = ServerSet(
            list(addresses),
            connect_timeout=CONNECT_TIMEOUT,
            disconnected_timeout=0,
            stall_timeout=REPLY_TIMEOUT,
            probe_timeout=REPLY_TIMEOUT,
            ssl=ssl,
        )
        self.servers = [
            LiveServer(
                index,
                member.host,
                member.port,
                interval,
                history_seconds,
                ssl,
                poll_timeout=poll_timeout,
                member=member,
                server_set=self.server_set,
            )
            for index, member in enumerate(self.server_set.servers)
        ]
        self._starting: Optional[asyncio.Future[None]] = None
        self.interval = interval
        self.poll_timeout = poll_timeout
        self.history_seconds = history_seconds

    def start(self) -> None:
        """Start the server set and polling every server (in the running event loop)."""
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())

    async def _start(self) -> None:
        # wait=False: a console shows servers down rather than refusing to start.
        await self.server_set.start(wait=False)
        for server in self.servers:
            server.start()

    async def stop(self) -> None:
        """Stop polling and close every client."""
        starting, self._starting = self._starting, None
        if starting is not None:
            await starting
        await asyncio.gather(*(server.stop() for server in self.servers))
        await self.server_set.close()

    async def first_poll(self) -> None:
        """Wait until every server has been polled once."""
        await asyncio.gather(*(server.first_poll() for server in self.servers))

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(server)`` after every poll of every server."""
        for server in self.servers:
            server.listeners.add(listener)

    def unsubscribe(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        for server in self.servers:
            server.listeners.discard(listener)

    def overview(self) -> dict[str, Any]:
        """Every snapshot, all tubes, and the history so far (``/api/overview``)."""
        return {
            "type": "overview",
            "history_seconds": self.history_seconds,
            "servers": [server.snapshot for server in self.servers],
            "history": [server.history_points() for server in self.servers],
        }

    def hello(self) -> dict[str, Any]:
        """The first message of a live feed: what the tab needs before the servers' messages."""
        return {
            "type": "hello",
            "history_seconds": self.history_seconds,
            "interval": self.interval,
            # A tab that hears nothing of a server for this long shows it stale: a poll may
            # take poll_timeout before it fails, and the backoff at most MAX_BACKOFF.
            "stale_after": round(2 * max(self.interval, MAX_BACKOFF) + self.poll_timeout, 1),
            "servers": [server.header() for server in self.servers],
        }


# The old names: "monitor" is beanstalkt.ops.monitor (the snapshots that top and
# the exporter share); the console's live state is live.LiveServers.
#: The old name of :class:`LiveServers`.
Monitor = LiveServers
#: The old name of :class:`LiveServer`.
ServerMonitor = LiveServer

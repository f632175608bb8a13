"""One server layer for everything that talks to several beanstalkd servers.

:class:`ServerSet` is what the :class:`~beanstalkt.Pool`, the pooled
:class:`~beanstalkt.Worker` and the operations tools hold instead of a list of
clients of their own:

* the addresses are parsed and de-duplicated once (:mod:`beanstalkt.address`:
  ``localhost`` and ``localhost:11300`` are one server);
* one :class:`~beanstalkt.Client` per server, all built from one set of client
  options (:meth:`ServerSet.new_client` builds more with the same options);
* first connects, reconnects and re-admissions follow one
  :class:`~beanstalkt.backoff.Backoff` policy, with jitter;
* **liveness is proven by a round trip**: a server is live once it answered a
  ``stats`` probe on its current connection (a TCP connect proves nothing: a
  frozen beanstalkd still accepts connections). A live server is probed every
  ``probe_interval`` seconds; one that leaves a probe unanswered for
  ``probe_timeout`` seconds is out of rotation, its connection dropped (what was
  written to it fails with ``ConnectionLost`` then, not later), and it comes
  back once it answers again, no sooner than its backoff allows;
* :meth:`ServerSet.start` returns as soon as a server is live, or raises
  :class:`NoServerAvailable` within a documented bound;
* listeners hear of every change, live or dead (:meth:`ServerSet.add_listener`).

The decisions (when to connect, probe, drop, re-admit) are made by
:class:`Liveness`, a pure object of counts and timestamps tested without an
event loop; :class:`ServerSet` only applies them.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

from .address import format_address, parse_address
from .backoff import DEFAULT_BACKOFF, Backoff, RandomSource
from .client import Client
from .connection import DEFAULT_CONNECT_TIMEOUT
from .errors import BeanstalkConnectionError, NotConnected
from .protocol import Seconds, check_interval

logger = logging.getLogger("beanstalkt")

#: Seconds between probes of a live server.
DEFAULT_PROBE_INTERVAL = 1.0
#: Seconds a probe may go unanswered (the connection silent) before the server is out.
DEFAULT_PROBE_TIMEOUT = 3.0
#: Seconds :meth:`ServerSet.start` waits, once a server is live, for the others' first answers.
DEFAULT_START_GRACE = 0.5

#: ``callback(server, live)``: called at each change of a server, up or down.
Listener = Callable[["Server", bool], Any]


class NoServerAvailable(BeanstalkConnectionError):
    """No server of the set is live (or every live one refused the command): nothing was sent."""


class Action(enum.Enum):
    """What the server layer does next for one server (see :meth:`Liveness.next_step`)."""

    CONNECT = "connect"  # no connection yet: open one
    PROBE = "probe"  # send a stats probe
    DROP = "drop"  # the probe went unanswered: out of rotation, connection dropped
    WAIT = "wait"  # nothing to do before ``Step.at``


class Step(NamedTuple):
    """A decision of :meth:`Liveness.next_step`: an action, or how long to wait."""

    action: Action
    #: Monotonic time of the next decision (for WAIT; ``inf``: until something happens).
    at: float


@dataclass
class Liveness:
    """The liveness rules of one server, as a pure state machine (no I/O, no clock).

    Every method takes ``now`` (a :func:`time.monotonic` reading). The server is
    :attr:`live` between a probe answered on its current connection and the next
    failure (connect failed, connection lost, garbage received, probe
    unanswered). After ``failures`` failures in a row, the next attempt (a
    connect, or the probe that re-admits it) waits ``backoff.delay(failures)``.
    The count starts again after the server stayed live for ``backoff.cap``
    seconds: a server that answers probes but fails every command keeps its
    long delay instead of being re-admitted at once each time.
    """

    backoff: Backoff = DEFAULT_BACKOFF
    probe_interval: float = DEFAULT_PROBE_INTERVAL
    probe_timeout: float = DEFAULT_PROBE_TIMEOUT
    #: Failures in a row.
    failures: int = 0
    #: Whether the server answered a probe on its current connection.
    live: bool = False
    #: Whether a connection is open now (not proof of life).
    connected: bool = False
    #: Whether connecting is up to the server layer (no first connection yet).
    needs_connect: bool = True
    #: When the server became live (None while it is not).
    live_since: Optional[float] = None
    #: No attempt (connect or re-admitting probe) before this time.
    retry_at: float = 0.0
    #: When the outstanding probe was sent (None: none outstanding).
    probe_sent_at: Optional[float] = None
    #: When the last probe was answered.
    answered_at: Optional[float] = None

    def settled(self) -> bool:
        """Whether the first attempt is over: the server is live, or failed at least once."""
        return self.live or self.failures > 0

    def failed(self, now: float, rng: Optional[RandomSource] = None) -> bool:
        """A failure (any kind); returns whether the server was live until now."""
        was_live = self.live
        if self.live_since is not None and now - self.live_since >= self.backoff.cap:
            self.failures = 0  # healthy for long: this is a fresh failure, not a streak
        self.failures += 1
        self.live = False
        self.live_since = None
        self.probe_sent_at = None
        self.retry_at = now + self.backoff.delay(self.failures, rng)
        return was_live

    def connect_failed(self, now: float, rng: Optional[RandomSource] = None) -> None:
        """A first connect did not succeed."""
        self.connected = False
        self.failed(now, rng)

    def connection_lost(self, now: float, rng: Optional[RandomSource] = None) -> bool:
        """The connection ended (the client reconnects by itself); returns whether it was live."""
        self.connected = False
        self.needs_connect = False
        return self.failed(now, rng)

    def connection_made(self, now: float) -> None:
        """A connection is open: the server is not live until it answers a probe on it."""
        self.connected = True
        self.needs_connect = False
        self.live = False
        self.live_since = None
        self.probe_sent_at = None

    def probe_sent(self, now: float) -> None:
        """A probe went out on the current connection."""
        self.probe_sent_at = now

    def probe_answered(self, now: float) -> bool:
        """The probe was answered; returns whether the server became live by it."""
        self.probe_sent_at = None
        self.answered_at = now
        if self.live or not self.connected:
            return False
        self.live = True
        self.live_since = now
        return True

    def probe_refused(self, now: float) -> None:
        """The probe was refused before it was sent (the client is full): try again later."""
        self.probe_sent_at = None
        self.answered_at = now

    def next_step(self, now: float, last_received: float = -float("inf")) -> Step:
        """What to do now for this server.

        ``last_received`` is when the connection last received anything: a
        probe queued behind a long run of replies is not overdue while they
        keep coming, only when the connection is silent for ``probe_timeout``.
        """
        if not self.connected:
            if not self.needs_connect:
                return Step(Action.WAIT, float("inf"))  # the client is reconnecting
            if now < self.retry_at:
                return Step(Action.WAIT, self.retry_at)
            return Step(Action.CONNECT, now)
        if self.probe_sent_at is not None:
            quiet_since = max(self.probe_sent_at, last_received)
            overdue_at = quiet_since + self.probe_timeout
            if now >= overdue_at:
                return Step(Action.DROP, now)
            return Step(Action.WAIT, overdue_at)
        due = self.retry_at if not self.live else (self.answered_at or now) + self.probe_interval
        if now >= due:
            return Step(Action.PROBE, now)
        return Step(Action.WAIT, due)


class Server:
    """One server of a :class:`ServerSet`: its address, its client and what is known of it."""

    __slots__ = (
        "_wake",
        "address",
        "binlog",
        "client",
        "host",
        "last_error",
        "liveness",
        "pid",
        "port",
        "restarts",
        "task",
        "uptime",
    )

    def __init__(self, host: str, port: int, client: Client[Any], liveness: Liveness) -> None:
        self.host = host
        self.port = port
        #: The canonical address (``host:port``, ``[v6]:port`` or ``unix:/path``).
        self.address = format_address(host, port)
        #: The server's client (shared by every user of the set).
        self.client = client
        #: The pure liveness state (see :class:`Liveness`).
        self.liveness = liveness
        #: The server's process id as its last answered probe said (``None``
        #: before the first): a restart changes it. Trust it only while
        #: :attr:`live` (proven on the current connection).
        self.pid: Optional[int] = None
        #: Whether the server keeps a binlog (its jobs and ids survive a restart),
        #: from the last probe.
        self.binlog = False
        #: The server's uptime (seconds) at the last probe.
        self.uptime: Optional[int] = None
        #: Times the pid was seen to change (the server restarted).
        self.restarts = 0
        #: Why the server last failed (a connect error, a loss), for messages.
        self.last_error: Optional[str] = None
        self.task: Optional[asyncio.Task[None]] = None
        self._wake: Optional[asyncio.Event] = None

    @property
    def live(self) -> bool:
        """Whether the server answered a probe on its current connection."""
        return self.liveness.live

    def __repr__(self) -> str:
        return f"<Server {self.address} {'live' if self.live else 'down'}>"

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()


class ServerSet:
    """Several beanstalkd servers with proven liveness: what a pool or a worker stands on.

    :param servers: addresses (``"host:port"``, ``"host"``, ``"[v6]:port"``,
        ``"unix:/path"``), or ``(host, port)`` pairs; the same server written
        twice (``localhost`` and ``localhost:11300``) is refused.
    :param backoff: the retry policy of first connects, reconnects and re-admissions.
    :param probe_interval: seconds between ``stats`` probes of a live server.
    :param probe_timeout: seconds a probe may go unanswered, the connection
        silent, before the server is out of rotation (its connection dropped).
        A server that stops answering is out within ``probe_interval +
        probe_timeout`` seconds.
    :param start_timeout: the bound on :meth:`start` (default: the client's
        ``connect_timeout`` plus ``probe_timeout``).
    :param start_grace: once a server is live, seconds :meth:`start` still
        waits for the others' first answers (so that a set of healthy servers
        starts with all of them live), never more.
    :param client_options: passed to every :class:`~beanstalkt.Client`
        (``connect_timeout``, ``stall_timeout``, ``disconnected_timeout``,
        ``keepalive``, ``ssl``, ``encoding``, ``use``, ``watch``,
        ``max_pending_bytes``...). ``reconnect_backoff`` defaults to ``backoff``.
    """

    def __init__(
        self,
        servers: Iterable[Any],
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        probe_interval: Seconds = DEFAULT_PROBE_INTERVAL,
        probe_timeout: Seconds = DEFAULT_PROBE_TIMEOUT,
        start_timeout: Optional[Seconds] = None,
        start_grace: Seconds = DEFAULT_START_GRACE,
        **client_options: Any,
    ) -> None:
        if isinstance(servers, str):
            raise TypeError("servers must be a list of addresses, not one string")
        for name in ("host", "port"):
            if name in client_options:
                raise TypeError(f"{name}= is not a server-set option: name the servers")
        probe_interval = check_interval("probe_interval", probe_interval)
        probe_timeout = check_interval("probe_timeout", probe_timeout)
        if not probe_interval > 0 or not probe_timeout > 0:
            raise ValueError("probe_interval and probe_timeout must be positive numbers of seconds")
        client_options.setdefault("reconnect_backoff", backoff)
        self.client_options: dict[str, Any] = client_options
        self.backoff = backoff
        self.probe_interval = probe_interval
        self.probe_timeout = probe_timeout
        connect_timeout = client_options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
        if connect_timeout is None:  # the OS's limit: start() stays bounded all the same
            connect_timeout = DEFAULT_CONNECT_TIMEOUT
        self.start_timeout = (
            check_interval("start_timeout", start_timeout)
            if start_timeout is not None
            else check_interval("connect_timeout", connect_timeout) + self.probe_timeout
        )
        self.start_grace = check_interval("start_grace", start_grace)
        self._servers: list[Server] = []
        self._by_address: dict[str, Server] = {}
        for each in servers:
            host, port = _host_port(each)
            address = format_address(host, port)
            if address in self._by_address:
                raise ValueError(f"server {address} is listed twice")
            liveness = Liveness(backoff, self.probe_interval, self.probe_timeout)
            server = Server(host, port, self.new_client(host, port), liveness)
            server.client.set_disconnect_callback(functools.partial(self._lost, server))
            server.client.set_reconnect_callback(functools.partial(self._reconnected, server))
            self._servers.append(server)
            self._by_address[address] = server
        if not self._servers:
            raise ValueError("give at least one server")
        self._listeners: list[Listener] = []
        self._closed = True
        self._changed: Optional[asyncio.Event] = None

    def __repr__(self) -> str:
        return f"<beanstalkt.ServerSet {len(self.live)}/{len(self._servers)} live>"

    # ------------------------------------------------------------------
    # What is known.

    @property
    def servers(self) -> list[Server]:
        """Every server, in the given order."""
        return list(self._servers)

    @property
    def live(self) -> list[Server]:
        """The live servers, in the given order."""
        return [server for server in self._servers if server.liveness.live]

    @property
    def closed(self) -> bool:
        """True before :meth:`start` and after :meth:`close`."""
        return self._closed

    def __iter__(self) -> Iterator[Server]:
        return iter(self._servers)

    def __len__(self) -> int:
        return len(self._servers)

    def get(self, address: str) -> Server:
        """The server at ``address``, in any spelling of it; ``ValueError`` if none."""
        server = self._by_address.get(address)
        if server is None:
            try:
                server = self._by_address.get(format_address(*parse_address(address)))
            except (ValueError, TypeError):
                server = None
        if server is None:
            raise ValueError(f"{address!r} is not one of these servers")
        return server

    def new_client(self, host: str, port: int) -> Client[Any]:
        """A new client for ``host``/``port`` with the set's client options (not managed here)."""
        return Client(host, port, **self.client_options)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(server, live)`` at each change of a server, up or down."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        self._listeners.remove(listener)

    # ------------------------------------------------------------------
    # Life.

    async def start(self, *, wait: bool = True) -> None:
        """Connect and probe every server; return as soon as one is live.

        Once one server is live, waits at most ``start_grace`` more seconds for
        the others' first answers. Raises :class:`NoServerAvailable` (and
        closes the set) when every server failed its first attempt, or when
        none is live after ``start_timeout`` seconds. The others are retried in
        the background, with backoff. With ``wait=False``, returns at once
        (for a monitor, which reports servers down rather than refusing to start).
        """
        if not self._closed:
            return
        self._closed = False
        loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        for server in self._servers:
            server._wake = asyncio.Event()
            server.task = loop.create_task(self._supervise(server))
        if not wait:
            return
        deadline = loop.time() + self.start_timeout
        grace_end: Optional[float] = None
        while True:
            if self._closed:
                raise NotConnected(message="server set closed while starting")
            live = self.live
            if live and grace_end is None:
                grace_end = loop.time() + self.start_grace
            if all(server.liveness.settled() for server in self._servers):
                if live:
                    return
                failures = "; ".join(
                    f"{server.address}: {server.last_error or 'no answer'}"
                    for server in self._servers
                )
                await self.close()
                raise NoServerAvailable(message=f"no server answered: {failures}")
            end = grace_end if grace_end is not None else deadline
            remaining = end - loop.time()
            if remaining <= 0:
                if live:
                    return
                await self.close()
                raise NoServerAvailable(
                    message=f"no server answered within {self.start_timeout:g}s"
                )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_for(self, server: Server, timeout: float) -> bool:
        """Wait until ``server`` is live or known to be down, ``timeout`` seconds at most.

        Returns whether it is live. "Known down": its last connect failed or
        its connection is lost; a server connected but not yet answering (a
        probe outstanding) is waited for.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            liveness = server.liveness
            if liveness.live:
                return True
            if self._closed or (not liveness.connected and liveness.failures > 0):
                return False
            remaining = deadline - loop.time()
            if remaining <= 0 or self._changed is None:
                return False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def close(self) -> None:
        """Stop probing and retrying, and close every client."""
        self._closed = True
        tasks = [server.task for server in self._servers if server.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for server in self._servers:
            server.task = None
            # Closing is not news: listeners hear of failures, not of close().
            server.liveness = Liveness(self.backoff, self.probe_interval, self.probe_timeout)
            await server.client.close()

    async def __aenter__(self) -> ServerSet:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------------
    # Applying the decisions.

    async def _supervise(self, server: Server) -> None:
        wake = server._wake
        assert wake is not None
        while not self._closed:
            now = time.monotonic()
            step = server.liveness.next_step(now, _heard_from(server.client, now))
            if step.action is Action.CONNECT:
                await self._connect(server)
                continue
            if step.action is Action.PROBE:
                self._probe(server)
                continue
            if step.action is Action.DROP:
                self._drop(server)
                continue
            wake.clear()
            timeout = None if step.at == float("inf") else max(0.0, step.at - now)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout)

    async def _connect(self, server: Server) -> None:
        try:
            await server.client.connect()
        except Exception as exc:  # ConnectFailed, or whatever kept it from connecting
            server.last_error = str(exc) or type(exc).__name__
            server.liveness.connect_failed(time.monotonic())
            logger.info(
                "servers: cannot connect to %s (%s); next attempt in %.1fs",
                server.address,
                exc,
                server.liveness.retry_at - time.monotonic(),
            )
            self._notify()
            return
        server.liveness.connection_made(time.monotonic())

    def _probe(self, server: Server) -> None:
        liveness = server.liveness
        liveness.probe_sent(time.monotonic())
        sent_on = server.client._connection.pipeline.reservation
        probe = server.client.stats()
        probe.add_done_callback(functools.partial(self._probe_done, server, sent_on))

    def _probe_done(self, server: Server, sent_on: object, probe: asyncio.Future[Any]) -> None:
        if probe.cancelled():
            return
        # Retrieved in every case: no "exception was never retrieved" noise.
        error = probe.exception()
        if self._closed or sent_on is not server.client._connection.pipeline.reservation:
            return  # answered for a connection since replaced: the new one proves itself
        if error is not None:
            # Refused at the call on a connection still open (BufferFull: the
            # client is full of work; a lost connection or garbage never gets
            # here, its loss came first): no verdict, probe again later.
            logger.info("servers: probe of %s not sent: %s", server.address, error)
            server.liveness.probe_refused(time.monotonic())
            server.wake()
            return
        stats = probe.result()
        pid = stats.get("pid")
        if isinstance(pid, int):
            if server.pid is not None and pid != server.pid:
                server.restarts += 1
                logger.warning(
                    "servers: %s restarted (pid %s, was %s)", server.address, pid, server.pid
                )
            server.pid = pid
        # beanstalkd without -b reports binlog index 0; with a binlog, 1 or more.
        binlog_index = stats.get("binlog-current-index")
        server.binlog = isinstance(binlog_index, int) and binlog_index > 0
        uptime = stats.get("uptime")
        server.uptime = uptime if isinstance(uptime, int) else None
        if server.liveness.probe_answered(time.monotonic()):
            logger.log(
                logging.INFO if server.liveness.failures == 0 else logging.WARNING,
                "servers: %s is live; %d of %d live",
                server.address,
                len(self.live),
                len(self._servers),
            )
            self._tell(server, True)
        server.wake()

    def _drop(self, server: Server) -> None:
        reason = (
            f"{server.address} left a probe unanswered for {self.probe_timeout:g}s "
            "(a frozen or overloaded server)"
        )
        # The connection's loss comes back through _lost, which counts the failure.
        if not server.client.abort(reason):
            self._failed(server, reason)

    def _lost(self, server: Server, reason: str) -> None:
        if self._closed:
            return
        server.last_error = reason
        was_live = server.liveness.connection_lost(time.monotonic())
        logger.log(
            logging.WARNING if was_live else logging.INFO,
            "servers: %s is down (%s); %d of %d live",
            server.address,
            reason,
            len(self.live),
            len(self._servers),
        )
        if was_live:
            self._tell(server, False)
        else:
            self._notify()
        server.wake()

    def _failed(self, server: Server, reason: str) -> None:
        was_live = server.liveness.failed(time.monotonic())
        if was_live:
            logger.warning("servers: %s is down (%s)", server.address, reason)
            self._tell(server, False)
        server.wake()

    def _reconnected(self, server: Server) -> None:
        if self._closed:
            return
        server.liveness.connection_made(time.monotonic())
        server.wake()

    def _tell(self, server: Server, live: bool) -> None:
        self._notify()
        for listener in list(self._listeners):
            try:
                listener(server, live)
            except Exception:
                logger.exception("servers: listener failed")

    def _notify(self) -> None:
        # Each waiter holds the event it waits on: set it, and give the next
        # waiters a fresh one (no clear() racing a waiter that has not woken yet).
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()


def _heard_from(client: Client[Any], now: float) -> float:
    """When the connection last made progress, as the probe deadline should see it.

    A probe queued behind a ``reserve-with-timeout t`` is allowed ``t`` more
    seconds, and one behind a blocking ``reserve`` (someone consumes on the
    client) waits as long as it takes: keepalive bounds that case.
    """
    connection = client._connection
    allowed = connection.pipeline.allowed_silence(0.0)
    if allowed is None or allowed == 0.0:
        return connection.last_received
    if allowed == float("inf"):
        return now
    return connection.last_received + allowed


def _host_port(server: Any) -> tuple[str, int]:
    if isinstance(server, tuple):
        host, port = server
        return parse_address(format_address(host, int(port)))
    return parse_address(server)


__all__ = [
    "DEFAULT_PROBE_INTERVAL",
    "DEFAULT_PROBE_TIMEOUT",
    "DEFAULT_START_GRACE",
    "Action",
    "Liveness",
    "Listener",
    "NoServerAvailable",
    "Server",
    "ServerSet",
    "Step",
]

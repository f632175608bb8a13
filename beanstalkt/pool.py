"""A pool over many beanstalkd servers: sharded puts, failover, aggregate stats.

beanstalkd is one single-threaded process; its FAQ leaves distribution to the
clients, as with memcached. :class:`Pool` holds one connected
:class:`~beanstalkt.Client` per server and spreads puts over the live ones::

    async with beanstalkt.Pool(["10.0.0.1:11300", "10.0.0.2:11300"]) as pool:
        ref = await pool.put(b"resize 42.jpg", tube="images")   # PoolJobRef(server, id)
        await pool.delete(ref)

Routing: round-robin over the live servers, or with ``key=`` rendezvous
(highest random weight) hashing over the configured servers, skipping dead
ones, so that a key moves only when its server dies (and moves back when it
returns). Failover: a put never written to a dead server goes to another live
one; a put whose outcome is unknown (written, then the connection died) fails
with :class:`~beanstalkt.errors.ConnectionLost` unless ``retry_unknown=True``.
See the pool guide, ``docs/guides/pool.rst``.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, NamedTuple, Optional, Union

from .address import format_address, parse_address
from .client import Client
from .errors import (
    BeanstalkConnectionError,
    BeanstalkException,
    BufferFull,
    ConnectFailed,
    ConnectionLost,
    Draining,
    NotConnected,
    NotFound,
)
from .models import Body, Job, StatsJob
from .producer import delay_until, encode_json
from .protocol import (
    DEFAULT_PRIORITY,
    DEFAULT_TTR,
    MAX_UINT32,
    Seconds,
    check_body,
    check_integer,
    check_interval,
    check_seconds,
    check_tube_name,
)

logger = logging.getLogger("beanstalkt")

#: Stats fields that describe one process, not an amount: left out of totals.
NON_ADDITIVE_FIELDS = frozenset(
    {
        "pid",
        "uptime",
        "max-job-size",
        "binlog-oldest-index",
        "binlog-current-index",
        "binlog-max-size",
        "pause",
        "pause-time-left",
    }
)

Key = Union[str, bytes, int]
StateCallback = Callable[[str, bool], Any]


class NoServerAvailable(BeanstalkConnectionError):
    """No server of the pool is live (or every live one refused the command): nothing was sent."""


class PoolJobRef(NamedTuple):
    """A job put through a :class:`Pool`: the server that holds it and its id there.

    Job ids are per server, so the pair is the job's name. ``str(ref)`` is
    ``"host:port id"`` (what ``beanstalkt put`` prints with several servers);
    :meth:`parse` reads it back.
    """

    server: str
    id: int

    def __str__(self) -> str:
        return f"{self.server} {self.id}"

    @classmethod
    def parse(cls, text: str) -> PoolJobRef:
        """Read ``"host:port id"`` (as :class:`str` writes it) back into a reference."""
        server, _, job_id = text.strip().rpartition(" ")
        if not server or not job_id.isdigit():
            raise ValueError(f"a job reference is 'host:port id', not {text!r}")
        host, port = parse_address(server.strip())
        return cls(format_address(host, port), int(job_id))


class ServerState(NamedTuple):
    """One server of a pool: its address and whether puts go to it now."""

    address: str
    live: bool


class PoolStats(NamedTuple):
    """Statistics over the pool: ``total`` sums the amounts of the servers that
    answered (fields in :data:`NON_ADDITIVE_FIELDS` and text fields are left
    out); ``per_server`` maps every configured address to its own statistics, or
    to the exception that kept it from answering (``NotConnected`` for a dead
    server, to which nothing was sent)."""

    total: dict[str, Union[int, float]]
    per_server: dict[str, Union[dict[str, Any], BaseException]]


class PoolTubes(NamedTuple):
    """``list_tubes`` over the pool: every tube name found on any server
    (sorted), and each server's own list or exception."""

    tubes: list[str]
    per_server: dict[str, Union[list[str], BaseException]]


class PoolKick(NamedTuple):
    """``kick`` on every server: the number kicked in all, and per server."""

    total: int
    per_server: dict[str, Union[int, BaseException]]


#: One result of :meth:`Pool.put_many`: a reference, or that job's exception.
PoolBatchResult = Union[PoolJobRef, BeanstalkException]


def _key_bytes(key: object) -> bytes:
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key).encode("ascii")
    raise TypeError(f"key must be str, bytes or int, not {type(key).__name__}")


class _Server:
    """The pool's view of one server."""

    __slots__ = ("address", "client", "connecting", "hash_prefix", "live", "pending")

    def __init__(self, address: str, client: Client[Any]) -> None:
        self.address = address
        self.client = client
        self.live = False
        # The rendezvous weight of a key is the hash of this prefix + the key.
        self.hash_prefix = address.encode("utf-8") + b"\0"
        # The client futures of puts under way here: those still unwritten when
        # the server is found dead are cancelled (never sent) and placed elsewhere.
        self.pending: set[asyncio.Future[Any]] = set()
        self.connecting: Optional[asyncio.Task[None]] = None

    def weight(self, key: bytes) -> bytes:
        return hashlib.blake2b(self.hash_prefix + key, digest_size=8).digest()


class Pool:
    """Many beanstalkd servers used as one: puts sharded and failed over, stats summed.

    :param servers: addresses, ``"host:port"`` or ``"unix:/path"`` (see
        :func:`~beanstalkt.address.parse_address`); each once.
    :param retry_unknown: also place elsewhere a put whose outcome is unknown
        (written, then the connection died): such a job may then exist twice,
        but is never lost. Default ``False``: the put fails with
        :class:`~beanstalkt.errors.ConnectionLost`.
    :param client_options: passed to every :class:`~beanstalkt.Client`
        (``connect_timeout``, ``encoding``, ``use``, ``ssl``,
        ``reconnect_interval``...). ``reconnect_interval`` also paces the
        pool's retries of servers that were down at :meth:`connect`.

    The pool belongs to the event loop it connects on. Servers unreachable at
    :meth:`connect` are retried in the background and admitted when they
    answer; a lost server is out of rotation at once and back when its client
    reconnects. :attr:`clients` gives the per-server clients (for a consumer).
    """

    def __init__(
        self,
        servers: Iterable[str],
        *,
        retry_unknown: bool = False,
        **client_options: Any,
    ) -> None:
        if isinstance(servers, str):
            raise TypeError("servers must be a list of addresses, not one string")
        for name in ("host", "port"):
            if name in client_options:
                raise TypeError(f"{name}= is not a pool option: name the servers in 'servers'")
        self._servers: list[_Server] = []
        self._by_address: dict[str, _Server] = {}
        for text in servers:
            host, port = parse_address(text)
            address = format_address(host, port)
            if address in self._by_address:
                raise ValueError(f"server {address} is listed twice")
            server = _Server(address, Client(host, port, **client_options))
            # The client says when its connection goes and comes back: no polling.
            server.client.set_disconnect_callback(functools.partial(self._disconnected, server))
            server.client.set_reconnect_callback(functools.partial(self._reconnected, server))
            self._servers.append(server)
            self._by_address[address] = server
        if not self._servers:
            raise ValueError("a pool needs at least one server")
        self.retry_unknown = bool(retry_unknown)
        self._encoding: Optional[str] = client_options.get("encoding")
        self._retry_interval = check_interval(
            "reconnect_interval", client_options.get("reconnect_interval", 1.0)
        )
        self._live: list[_Server] = []
        self._next = 0  # round-robin position
        self._state_callbacks: list[StateCallback] = []
        self._closed = True

    def __repr__(self) -> str:
        return f"<beanstalkt.Pool {len(self._live)}/{len(self._servers)} live>"

    # ------------------------------------------------------------------
    # Servers.

    @property
    def servers(self) -> list[ServerState]:
        """Every configured server, in the given order, with whether it is live now."""
        return [ServerState(server.address, server.live) for server in self._servers]

    @property
    def clients(self) -> dict[str, Client[Any]]:
        """The client of each server by address (in the given order), live or not.

        For a consumer reserving from every server: acknowledge a job on the
        client that reserved it.
        """
        return {server.address: server.client for server in self._servers}

    def client(self, address: str) -> Client[Any]:
        """The client of the server at ``address`` (as given, or canonical)."""
        return self._server(address).client

    def add_state_callback(self, callback: StateCallback) -> None:
        """Call ``callback(address, live)`` at each transition of a server, up or down."""
        self._state_callbacks.append(callback)

    def remove_state_callback(self, callback: StateCallback) -> None:
        """Stop calling ``callback`` (added by :meth:`add_state_callback`)."""
        self._state_callbacks.remove(callback)

    async def connect(self) -> None:
        """Connect to every server; succeed when at least one answers.

        The others are retried every ``reconnect_interval`` seconds in the
        background and admitted when they answer. Fails with
        :class:`NoServerAvailable` when none answers (nothing keeps retrying).
        """
        if not self._closed:
            return
        self._closed = False
        outcomes = await asyncio.gather(
            *(server.client.connect() for server in self._servers), return_exceptions=True
        )
        if self._closed:  # close() meanwhile
            raise NotConnected(message="pool closed while connecting")
        failures = []
        for server, outcome in zip(self._servers, outcomes, strict=True):
            if outcome is None:
                self._set_live(server, True, "connected")
            elif isinstance(outcome, (ConnectFailed, NotConnected)):
                failures.append(f"{server.address}: {outcome}")
            else:
                await self.close()
                raise outcome
        if not self._live:
            await self.close()
            raise NoServerAvailable(message="no server answered: " + "; ".join(failures))
        for server in self._servers:
            if not server.live:
                logger.warning(
                    "pool: %s unreachable; retrying every %ss", server.address, self._retry_interval
                )
                server.connecting = asyncio.ensure_future(self._first_connect(server))

    async def close(self) -> None:
        """Close every client and stop retrying.

        Puts not answered yet fail, as with ``Client.close``.
        """
        self._closed = True
        for task in [server.connecting for server in self._servers]:
            if task is not None:
                task.cancel()
        for server in self._servers:
            server.connecting = None
            server.live = False
            await server.client.close()
        self._live = []

    async def __aenter__(self) -> Pool:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        await self.close()

    async def _first_connect(self, server: _Server) -> None:
        # A client reconnects by itself only after a first success: until
        # then, retrying is the pool's job.
        attempt = 0
        while not self._closed:
            await asyncio.sleep(self._retry_interval)
            attempt += 1
            try:
                await server.client.connect()
            except (ConnectFailed, NotConnected) as exc:
                logger.info(
                    "pool: connect attempt %d to %s failed: %s", attempt, server.address, exc
                )
                continue
            server.connecting = None
            self._set_live(server, True, f"connected after {attempt} attempt(s)")
            return

    def _refresh(self, server: _Server) -> None:
        """Bring ``server.live`` in line with its client's connection."""
        closed = server.client.closed()
        if server.live and closed:
            self._set_live(server, False, "connection lost")
        elif not server.live and not closed and server.connecting is None and not self._closed:
            self._set_live(server, True, "reconnected")

    def _disconnected(self, server: _Server, reason: str) -> None:
        if not self._closed:
            self._set_live(server, False, reason)

    def _reconnected(self, server: _Server) -> None:
        if not self._closed and not server.client.closed():
            self._set_live(server, True, "reconnected")

    def _set_live(self, server: _Server, live: bool, why: str) -> None:
        if server.live is live:
            return
        server.live = live
        self._live = [each for each in self._servers if each.live]
        # The first connection of each server is routine; every later change is news.
        level = logging.INFO if why == "connected" else logging.WARNING
        logger.log(
            level,
            "pool: %s is %s (%s); %d of %d servers live",
            server.address,
            "up" if live else "down",
            why,
            len(self._live),
            len(self._servers),
        )
        if not live:
            # Its client failed every put already written (ConnectionLost); what
            # is left is unwritten: take it back, to be placed elsewhere.
            for future in list(server.pending):
                future.cancel()
        for callback in list(self._state_callbacks):
            try:
                callback(server.address, live)
            except Exception:
                logger.exception("pool: state callback failed")

    def _server(self, address: str) -> _Server:
        server = self._by_address.get(address)
        if server is None:
            try:
                server = self._by_address.get(format_address(*parse_address(address)))
            except ValueError:
                server = None
        if server is None:
            raise ValueError(f"{address!r} is not a server of this pool")
        return server

    def _no_server(self) -> NoServerAvailable:
        why = (
            "every live server failed this command"
            if self._live
            else f"none of the {len(self._servers)} servers is live"
        )
        return NoServerAvailable(message=f"no beanstalkd server available: {why}")

    def _pick(self, key: Optional[bytes], excluded: Optional[set[_Server]]) -> _Server:
        """The server for the next put: round-robin, or the key's highest-weight live server."""
        while True:
            candidates = self._live
            if excluded:
                candidates = [server for server in candidates if server not in excluded]
            if not candidates:
                raise self._no_server()
            if key is None:
                server = candidates[self._next % len(candidates)]
                self._next += 1
            else:
                server = max(candidates, key=lambda each: each.weight(key))
            if not server.client.closed():
                return server
            self._set_live(server, False, "connection lost")

    # ------------------------------------------------------------------
    # Producer commands.

    def put(
        self,
        body: Body,
        priority: int = DEFAULT_PRIORITY,
        delay: Seconds = 0,
        ttr: Seconds = DEFAULT_TTR,
        *,
        tube: Optional[str] = None,
        key: Optional[Key] = None,
    ) -> asyncio.Future[PoolJobRef]:
        """Put a job on one live server; resolves to its :class:`PoolJobRef`.

        Round-robin, or with ``key`` always the same server while it lives (so
        jobs with one key keep their order). A put never written to a server
        that died is placed on another; a put written before its server died
        fails with ``ConnectionLost`` (its job may exist) unless the pool has
        ``retry_unknown``. Fails with :class:`NoServerAvailable` when no server
        is live; otherwise as ``Client.put``.
        """
        check_body(body, self._encoding)
        check_integer("priority", priority, 0, MAX_UINT32)
        seconds, ttr_seconds = check_seconds("delay", delay), check_seconds("ttr", ttr)
        if tube is not None:
            check_tube_name(tube)
        hashed = None if key is None else _key_bytes(key)
        outer: asyncio.Future[PoolJobRef] = asyncio.get_running_loop().create_future()
        attempt = _PutAttempt(outer, (body, priority, seconds, ttr_seconds, tube), hashed)
        outer.add_done_callback(attempt.caller_done)
        self._place_put(attempt)
        return outer

    def _place_put(self, attempt: _PutAttempt) -> None:
        try:
            server = self._pick(attempt.key, attempt.excluded)
        except NoServerAvailable as exc:
            attempt.outer.set_exception(exc)
            return
        body, priority, delay, ttr, tube = attempt.args
        inner = server.client.put(body, priority, delay, ttr, tube=tube)
        attempt.inner = inner
        server.pending.add(inner)
        inner.add_done_callback(functools.partial(self._put_done, attempt, server))

    def _put_done(self, attempt: _PutAttempt, server: _Server, inner: asyncio.Future[int]) -> None:
        server.pending.discard(inner)
        outer = attempt.outer
        if outer.done():
            return
        if not inner.cancelled():
            error = inner.exception()
            if error is None:
                outer.set_result(PoolJobRef(server.address, inner.result()))
                return
            if not self._placed_elsewhere(error, server):
                outer.set_exception(error)
                return
        # Cancelled by _set_live (never written), or to be placed elsewhere by rule.
        attempt.excluded = (attempt.excluded or set()) | {server}
        self._place_put(attempt)

    def _placed_elsewhere(self, error: BaseException, server: _Server) -> bool:
        """Whether a put that failed on ``server`` with ``error`` is tried on another server."""
        if isinstance(error, (NotConnected, BufferFull)):
            if server.client.closed():
                self._set_live(server, False, str(error))
                return True  # never written: the server was down
            return isinstance(error, NotConnected)  # BufferFull from a live server: back-pressure
        if isinstance(error, ConnectionLost):
            self._refresh(server)
            return self.retry_unknown
        return isinstance(error, Draining)  # refused, not stored: another server may take it

    def put_json(
        self,
        data: Any,
        priority: int = DEFAULT_PRIORITY,
        delay: Seconds = 0,
        ttr: Seconds = DEFAULT_TTR,
        *,
        tube: Optional[str] = None,
        key: Optional[Key] = None,
    ) -> asyncio.Future[PoolJobRef]:
        """Put ``data`` as compact UTF-8 JSON (as ``Client.put_json``), routed as :meth:`put`."""
        return self.put(encode_json(data), priority, delay, ttr, tube=tube, key=key)

    def schedule_at(
        self,
        when: datetime.datetime,
        body: Body,
        priority: int = DEFAULT_PRIORITY,
        ttr: Seconds = DEFAULT_TTR,
        *,
        tube: Optional[str] = None,
        key: Optional[Key] = None,
    ) -> asyncio.Future[PoolJobRef]:
        """Put ``body`` to become ready at ``when`` (as ``Client.schedule_at``).

        Routed as :meth:`put`.
        """
        return self.put(body, priority, delay_until(when), ttr, tube=tube, key=key)

    def put_many(
        self,
        bodies: Iterable[Body],
        priority: int = DEFAULT_PRIORITY,
        delay: Seconds = 0,
        ttr: Seconds = DEFAULT_TTR,
        *,
        tube: Optional[str] = None,
        key: Optional[Key] = None,
    ) -> asyncio.Future[list[PoolBatchResult]]:
        """Put many jobs; resolves to one result per body, in order: a
        :class:`PoolJobRef` or that job's exception.

        Without ``key`` the batch is cut into one contiguous slice per live
        server, each written in one piece (``Client.put_many``); with ``key``
        it all goes to the key's server. Failover is per slice and per job as
        for :meth:`put`. Fails with :class:`NoServerAvailable` when no server
        is live at the call.
        """
        encoding = self._encoding
        checked = list(bodies)
        for body in checked:
            check_body(body, encoding)
        check_integer("priority", priority, 0, MAX_UINT32)
        seconds, ttr_seconds = check_seconds("delay", delay), check_seconds("ttr", ttr)
        if tube is not None:
            check_tube_name(tube)
        hashed = None if key is None else _key_bytes(key)
        loop = asyncio.get_running_loop()
        if not checked:
            done: asyncio.Future[list[PoolBatchResult]] = loop.create_future()
            done.set_result([])
            return done
        for server in self._servers:
            self._refresh(server)
        if not self._live:
            failed: asyncio.Future[list[PoolBatchResult]] = loop.create_future()
            failed.set_exception(self._no_server())
            return failed
        batch = _Batch(checked, (priority, seconds, ttr_seconds, tube))
        return asyncio.ensure_future(self._put_batch(batch, hashed))

    async def _put_batch(self, batch: _Batch, key: Optional[bytes]) -> list[PoolBatchResult]:
        indices = list(range(len(batch.bodies)))
        await self._put_slices(batch, indices, key, set())
        return [result for result in batch.results if result is not None]

    async def _put_slices(
        self, batch: _Batch, indices: list[int], key: Optional[bytes], excluded: set[_Server]
    ) -> None:
        try:
            slices = self._slice(indices, key, excluded)
        except NoServerAvailable as exc:
            for index in indices:
                batch.results[index] = exc
            return
        priority, delay, ttr, tube = batch.options
        sent: list[tuple[_Server, list[int], asyncio.Future[list[Any]]]] = []
        for server, part in slices:
            future = server.client.put_many(
                [batch.bodies[index] for index in part], priority, delay, ttr, tube=tube
            )
            server.pending.add(future)
            sent.append((server, part, future))
        try:
            await asyncio.wait([future for _, _, future in sent])
        except asyncio.CancelledError:
            for _, _, future in sent:
                future.cancel()
            raise
        finally:
            for server, _, future in sent:
                server.pending.discard(future)
        retries = []
        for server, part, future in sent:
            again: list[int] = []
            error = None if future.cancelled() else future.exception()
            if future.cancelled() or (error is not None and self._placed_elsewhere(error, server)):
                again = part
            elif isinstance(error, BeanstalkException):
                for index in part:
                    batch.results[index] = error
            elif error is not None:
                raise error
            else:
                for index, outcome in zip(part, future.result(), strict=True):
                    if isinstance(outcome, int):
                        batch.results[index] = PoolJobRef(server.address, outcome)
                    elif isinstance(outcome, Draining) or (
                        isinstance(outcome, ConnectionLost) and self.retry_unknown
                    ):
                        again.append(index)
                    else:
                        batch.results[index] = outcome
                if any(isinstance(outcome, ConnectionLost) for outcome in future.result()):
                    self._refresh(server)
            if again:
                retries.append(self._put_slices(batch, again, key, excluded | {server}))
        if retries:
            await asyncio.gather(*retries)

    def _slice(
        self, indices: list[int], key: Optional[bytes], excluded: set[_Server]
    ) -> list[tuple[_Server, list[int]]]:
        if key is not None:
            return [(self._pick(key, excluded), indices)]
        first = self._pick(None, excluded)
        servers = [first]
        others = len([each for each in self._live if each not in excluded]) - 1
        for _ in range(max(0, min(others, len(indices) - 1))):
            server = self._pick(None, excluded)
            if server in servers:
                break
            servers.append(server)
        size, extra = divmod(len(indices), len(servers))
        slices = []
        start = 0
        for number, server in enumerate(servers):
            end = start + size + (1 if number < extra else 0)
            slices.append((server, indices[start:end]))
            start = end
        return slices

    # ------------------------------------------------------------------
    # Commands on one job: on the server its reference names.

    def peek(self, ref: PoolJobRef) -> asyncio.Future[Job[Any]]:
        """Look at the job ``ref`` names without reserving it; fails with ``NotFound``."""
        return self._client_of(ref).peek(ref.id)

    def delete(self, ref: PoolJobRef) -> asyncio.Future[None]:
        """Delete the (ready, delayed or buried) job ``ref`` names."""
        return self._client_of(ref).delete(ref.id)

    def kick_job(self, ref: PoolJobRef) -> asyncio.Future[None]:
        """Kick the buried or delayed job ``ref`` names to ready."""
        return self._client_of(ref).kick_job(ref.id)

    def stats_job(self, ref: PoolJobRef) -> asyncio.Future[StatsJob]:
        """Statistics of the job ``ref`` names."""
        return self._client_of(ref).stats_job(ref.id)

    def _client_of(self, ref: object) -> Client[Any]:
        if not isinstance(ref, PoolJobRef):
            raise TypeError(
                f"expected a PoolJobRef (the server and the id), not {type(ref).__name__}"
            )
        return self._server(ref.server).client

    # ------------------------------------------------------------------
    # Aggregates over every live server.

    async def stats(self) -> PoolStats:
        """Every server's statistics, and their sums."""
        per_server = await self._on_each(lambda client: client.stats())
        return PoolStats(_sum(per_server.values()), per_server)

    async def stats_tube(self, name: str) -> PoolStats:
        """Statistics of tube ``name`` on every server, and their sums.

        A server without the tube shows ``NotFound``; fails with ``NotFound``
        when no server has it.
        """
        check_tube_name(name)
        per_server = await self._on_each(lambda client: client.stats_tube(name))
        replies = per_server.values()
        if not any(isinstance(value, dict) for value in replies) and any(
            isinstance(value, NotFound) for value in replies
        ):
            raise NotFound("NOT_FOUND", f"stats-tube {name}", f"tube {name!r} not found")
        return PoolStats(_sum(per_server.values()), per_server)

    async def list_tubes(self) -> PoolTubes:
        """The tubes of every server: all names, and each server's list."""
        per_server = await self._on_each(lambda client: client.list_tubes())
        names: set[str] = set()
        for value in per_server.values():
            if isinstance(value, list):
                names.update(value)
        return PoolTubes(sorted(names), per_server)

    async def kick(self, bound: int = 1, *, tube: Optional[str] = None) -> PoolKick:
        """Kick up to ``bound`` jobs of ``tube`` on *each* server (as ``Client.kick``)."""
        check_integer("bound", bound, 0, MAX_UINT32)
        if tube is not None:
            check_tube_name(tube)
        per_server = await self._on_each(lambda client: client.kick(bound, tube=tube))
        total = sum(value for value in per_server.values() if isinstance(value, int))
        return PoolKick(total, per_server)

    async def _on_each(
        self, command: Callable[[Client[Any]], asyncio.Future[Any]]
    ) -> dict[str, Any]:
        for server in self._servers:
            self._refresh(server)
        live = list(self._live)
        if not live:
            raise NoServerAvailable(message=f"none of {len(self._servers)} servers is live")
        replies = await asyncio.gather(
            *(command(server.client) for server in live), return_exceptions=True
        )
        answered = dict(zip((server.address for server in live), replies, strict=True))
        return {
            server.address: (
                answered[server.address]
                if server.address in answered
                else NotConnected(message=f"{server.address} is down: not asked")
            )
            for server in self._servers
        }

    def __iter__(self) -> Iterator[tuple[str, Client[Any]]]:
        """``(address, client)`` for every server, as :attr:`clients`."""
        return iter(self.clients.items())


class _Batch:
    """A put_many under way: the bodies, their options, one result slot each."""

    __slots__ = ("bodies", "options", "results")

    def __init__(
        self, bodies: Sequence[Body], options: tuple[int, int, int, Optional[str]]
    ) -> None:
        self.bodies = bodies
        self.options = options
        self.results: list[Optional[PoolBatchResult]] = [None] * len(bodies)


class _PutAttempt:
    """One pool put: the caller's future, what to put, where it was tried."""

    __slots__ = ("args", "excluded", "inner", "key", "outer")

    def __init__(
        self,
        outer: asyncio.Future[PoolJobRef],
        args: tuple[Body, int, int, int, Optional[str]],
        key: Optional[bytes],
    ) -> None:
        self.outer = outer
        self.args = args
        self.key = key
        self.excluded: Optional[set[_Server]] = None
        self.inner: Optional[asyncio.Future[int]] = None

    def caller_done(self, outer: asyncio.Future[PoolJobRef]) -> None:
        # Cancelled by its caller: so is the client's put (never sent if not
        # written yet, as for Client.put).
        if outer.cancelled() and self.inner is not None:
            self.inner.cancel()


def _sum(values: Iterable[object]) -> dict[str, Union[int, float]]:
    total: dict[str, Union[int, float]] = {}
    for value in values:
        if not isinstance(value, dict):
            continue
        for field, amount in value.items():
            if field in NON_ADDITIVE_FIELDS or isinstance(amount, bool):
                continue
            if isinstance(amount, (int, float)):
                total[field] = total.get(field, 0) + amount
    return total


__all__ = [
    "NON_ADDITIVE_FIELDS",
    "NoServerAvailable",
    "Pool",
    "PoolBatchResult",
    "PoolJobRef",
    "PoolKick",
    "PoolStats",
    "PoolTubes",
    "ServerState",
]

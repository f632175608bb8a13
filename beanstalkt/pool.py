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
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, NamedTuple, Optional, TypeVar, Union

from ._batch import Batch, batch_outcomes, fit, settle_batch_part
from .address import format_address, parse_address
from .backoff import DEFAULT_BACKOFF, Backoff
from .client import Client
from .errors import (
    BeanstalkException,
    BufferFull,
    ConnectionLost,
    Draining,
    NotConnected,
    NotFound,
    StaleJobRef,
    UnexpectedResponse,
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
    check_seconds,
    check_tube_name,
)
from .servers import (
    DEFAULT_PROBE_INTERVAL,
    DEFAULT_PROBE_TIMEOUT,
    DEFAULT_START_GRACE,
    NoServerAvailable,
    Server,
    ServerSet,
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
_T = TypeVar("_T")
StateCallback = Callable[[str, bool], Any]


class PoolJobRef(NamedTuple):
    """A job put through a :class:`Pool`: the server that holds it and its id there.

    Job ids are per server, so the pair is the job's name. ``str(ref)`` is
    ``"host:port id"`` (what ``beanstalkt put`` prints with several servers);
    :meth:`parse` reads it back (without ``pid``).

    ``pid`` is the server's process id when the job was put (``None``:
    unknown, as for a parsed reference). beanstalkd without a binlog starts
    numbering jobs from 1 again after a restart, so the same id then names a
    stranger's job: the pool refuses (:class:`~beanstalkt.errors.StaleJobRef`)
    to act through a reference whose server has restarted without a binlog
    since, instead of deleting whatever now has that id.
    """

    server: str
    id: int
    pid: Optional[int] = None

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
    """The pool's view of one server of its :class:`~beanstalkt.servers.ServerSet`."""

    __slots__ = ("address", "client", "hash_prefix", "pending", "server")

    def __init__(self, server: Server) -> None:
        self.server = server
        self.address = server.address
        self.client = server.client
        # The rendezvous weight of a key is the hash of this prefix + the key.
        self.hash_prefix = self.address.encode("utf-8") + b"\0"
        # The client futures of puts under way here: those still unwritten when
        # the server leaves rotation are withdrawn (never sent) and placed elsewhere.
        self.pending: set[asyncio.Future[Any]] = set()

    @property
    def live(self) -> bool:
        return self.server.live

    def weight(self, key: bytes) -> bytes:
        return hashlib.blake2b(self.hash_prefix + key, digest_size=8).digest()


class Pool:
    """Many beanstalkd servers used as one: puts sharded and failed over, stats summed.

    :param servers: addresses, ``"host:port"`` or ``"unix:/path"`` (see
        :func:`~beanstalkt.address.parse_address`); each once (``localhost``
        and ``localhost:11300`` are the same server).
    :param retry_unknown: also place elsewhere a put whose outcome is unknown
        (written, then the connection died, or the server answered garbage):
        such a job may then exist twice, but is never lost. Default ``False``:
        the put fails with :class:`~beanstalkt.errors.ConnectionLost` (or
        :class:`~beanstalkt.errors.UnexpectedResponse`).
    :param backoff, probe_interval, probe_timeout, start_timeout, start_grace:
        the server layer's liveness rules (:class:`~beanstalkt.servers.ServerSet`):
        a server takes puts once it answered a probe, is out within
        ``probe_interval + probe_timeout`` seconds (1 + 3) of going silent, and
        back when it answers again, paced by ``backoff``.
    :param client_options: passed to every :class:`~beanstalkt.Client`
        (``connect_timeout``, ``stall_timeout``, ``disconnected_timeout``,
        ``keepalive``, ``encoding``, ``use``, ``ssl``...).

    The pool belongs to the event loop it connects on. Servers unreachable at
    :meth:`connect` are retried in the background and admitted when they
    answer. :attr:`clients` gives the per-server clients (for inspection;
    a consumer should rather use a :class:`~beanstalkt.Worker`).
    """

    def __init__(
        self,
        servers: Iterable[str],
        *,
        retry_unknown: bool = False,
        backoff: Backoff = DEFAULT_BACKOFF,
        probe_interval: Seconds = DEFAULT_PROBE_INTERVAL,
        probe_timeout: Seconds = DEFAULT_PROBE_TIMEOUT,
        start_timeout: Optional[Seconds] = None,
        start_grace: Seconds = DEFAULT_START_GRACE,
        **client_options: Any,
    ) -> None:
        # The server set checks the servers and the options (one place for the rules).
        self._set = ServerSet(
            servers,
            backoff=backoff,
            probe_interval=probe_interval,
            probe_timeout=probe_timeout,
            start_timeout=start_timeout,
            start_grace=start_grace,
            **client_options,
        )
        self._servers = [_Server(server) for server in self._set]
        self._by_address = {server.address: server for server in self._servers}
        self._of = {id(server.server): server for server in self._servers}
        self._set.add_listener(self._changed)
        self.retry_unknown = bool(retry_unknown)
        self._encoding: Optional[str] = client_options.get("encoding")
        self._live: list[_Server] = []
        self._next = 0  # round-robin position
        self._state_callbacks: list[StateCallback] = []
        self._closed = True

    def __repr__(self) -> str:
        return f"<beanstalkt.Pool {len(self._live)}/{len(self._servers)} live>"

    # ------------------------------------------------------------------
    # Servers.

    @property
    def server_set(self) -> ServerSet:
        """The server layer under the pool (liveness, pids, client options)."""
        return self._set

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
        """Connect to every server; return as soon as one answers.

        A server takes puts once it has answered a probe (a TCP connect proves
        nothing). Returns at most ``start_grace`` seconds after the first
        server answered; the others are retried in the background, with
        backoff, and admitted when they answer. Fails with
        :class:`NoServerAvailable` when every server failed its first attempt,
        or none answered within ``start_timeout`` (default: ``connect_timeout``
        + ``probe_timeout``, 8 s); nothing keeps retrying then.
        """
        if not self._closed:
            return
        self._closed = False
        try:
            await self._set.start()
        except BaseException:
            self._closed = True
            raise
        self._live = [server for server in self._servers if server.live]

    async def close(self) -> None:
        """Close every client and stop probing and retrying.

        Puts not answered yet fail, as with ``Client.close``.
        """
        self._closed = True
        self._live = []
        await self._set.close()

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

    def _changed(self, server_of_set: Server, live: bool) -> None:
        server = self._of[id(server_of_set)]
        self._live = [each for each in self._servers if each.live]
        if not live:
            # What was written to it has failed already (ConnectionLost) or will;
            # what was never written is taken back, to be placed elsewhere.
            for future in list(server.pending):
                server.client.withdraw(future, f"{server.address} left the pool's rotation")
        if self._closed:
            return
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
        candidates = self._live
        if excluded:
            candidates = [server for server in candidates if server not in excluded]
        if not candidates:
            raise self._no_server()
        if key is None:
            server = candidates[self._next % len(candidates)]
            self._next += 1
            return server
        return max(candidates, key=lambda each: each.weight(key))

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
        if inner.cancelled():
            # Only the caller cancels (caller_done): the outer future is done too.
            return
        error = inner.exception()
        if error is None:
            outer.set_result(self._ref(server, inner.result()))
            return
        if not self._placed_elsewhere(error):
            outer.set_exception(error)
            return
        attempt.excluded = (attempt.excluded or set()) | {server}
        self._place_put(attempt)

    def _ref(self, server: _Server, job_id: int) -> PoolJobRef:
        # The pid is the one proven on the connection that answered only while
        # the server is live; otherwise it is left unknown (no staleness check).
        pid = server.server.pid if server.live else None
        return PoolJobRef(server.address, job_id, pid)

    def _placed_elsewhere(self, error: BaseException) -> bool:
        """Whether a put that failed with ``error`` is tried on another server.

        ``NotConnected`` means never sent (the server was down, or left
        rotation with the put unwritten): always. ``ConnectionLost`` and
        ``UnexpectedResponse`` mean the outcome is unknown (the job may exist):
        only with ``retry_unknown``. ``Draining`` was refused, not stored.
        ``BufferFull`` from a live server is back-pressure: the caller's.
        """
        if isinstance(error, NotConnected):
            return True
        if isinstance(error, (ConnectionLost, UnexpectedResponse)):
            return self.retry_unknown
        return isinstance(error, Draining)

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
        encoded = [check_body(body, encoding) for body in checked]
        check_integer("priority", priority, 0, MAX_UINT32)
        seconds, ttr_seconds = check_seconds("delay", delay), check_seconds("ttr", ttr)
        # The bytes each job's command takes in a client's buffer (see _put_slices).
        head = len(b"put %d %d %d \r\n\r\n" % (priority, seconds, ttr_seconds))
        sizes = [head + len(b"%d" % len(data)) + len(data) for data in encoded]
        if tube is not None:
            check_tube_name(tube)
        hashed = None if key is None else _key_bytes(key)
        loop = asyncio.get_running_loop()
        if not checked:
            done: asyncio.Future[list[PoolBatchResult]] = loop.create_future()
            done.set_result([])
            return done
        if not self._live:
            failed: asyncio.Future[list[PoolBatchResult]] = loop.create_future()
            failed.set_exception(self._no_server())
            return failed
        batch = Batch(checked, sizes, (priority, seconds, ttr_seconds, tube))
        return asyncio.ensure_future(self._put_batch(batch, hashed))

    async def _put_batch(self, batch: Batch, key: Optional[bytes]) -> list[PoolBatchResult]:
        indices = list(range(len(batch.bodies)))
        await self._put_slices(batch, indices, key, set())
        return [result for result in batch.results if result is not None]

    async def _put_slices(
        self, batch: Batch, indices: list[int], key: Optional[bytes], excluded: set[_Server]
    ) -> None:
        try:
            slices = self._slice(indices, key, excluded)
        except NoServerAvailable as exc:
            for index in indices:
                batch.results[index] = exc
            return
        priority, delay, ttr, tube = batch.options
        sent: list[tuple[_Server, list[int], asyncio.Future[list[Any]]]] = []
        refused: Optional[BufferFull] = None
        for server, part in slices:
            if refused is None:
                part, refused = fit(batch, server.client, server.address, part)
            else:
                for index in part:
                    batch.results[index] = refused
                continue
            if not part:
                continue
            future = server.client.put_many(
                [batch.bodies[index] for index in part], priority, delay, ttr, tube=tube
            )
            server.pending.add(future)
            sent.append((server, part, future))
        if not sent:
            return
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
            settled, again = settle_batch_part(
                part, batch_outcomes(future, len(part)), self.retry_unknown
            )
            for index, outcome in settled.items():
                batch.results[index] = (
                    self._ref(server, outcome) if isinstance(outcome, int) else outcome
                )
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
        return self._on_ref(ref, lambda client: client.peek(ref.id))

    def delete(self, ref: PoolJobRef) -> asyncio.Future[None]:
        """Delete the (ready, delayed or buried) job ``ref`` names.

        Fails with :class:`~beanstalkt.errors.StaleJobRef` (a ``NotFound``),
        sending nothing, when the server restarted without a binlog since the
        job was put: the id may now be a stranger's job.
        """
        return self._on_ref(ref, lambda client: client.delete(ref.id))

    def kick_job(self, ref: PoolJobRef) -> asyncio.Future[None]:
        """Kick the buried or delayed job ``ref`` names to ready."""
        return self._on_ref(ref, lambda client: client.kick_job(ref.id))

    def stats_job(self, ref: PoolJobRef) -> asyncio.Future[StatsJob]:
        """Statistics of the job ``ref`` names."""
        return self._on_ref(ref, lambda client: client.stats_job(ref.id))

    def _on_ref(
        self, ref: object, command: Callable[[Client[Any]], asyncio.Future[_T]]
    ) -> asyncio.Future[_T]:
        if not isinstance(ref, PoolJobRef):
            raise TypeError(
                f"expected a PoolJobRef (the server and the id), not {type(ref).__name__}"
            )
        server = self._server(ref.server)
        if ref.pid is None:
            return command(server.client)  # from text: nothing to check it against
        problem = _stale(ref, server.server)
        if problem is not None:
            failed: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
            failed.set_exception(problem)
            return failed
        # A sequence of one: sent on the connection the check was made on, or
        # not at all (never carried to a connection to a restarted server).
        with server.client.sequence():
            return command(server.client)

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


def _stale(ref: PoolJobRef, server: Server) -> Optional[BeanstalkException]:
    """Why ``ref`` (put when its server had ``ref.pid``) must not be acted on now, if so."""
    if not server.live or server.pid is None:
        return NotConnected(
            message=f"{ref} not acted on: {server.address} is not live, so whether it "
            "restarted since the job was put cannot be told"
        )
    if server.pid != ref.pid and not server.binlog:
        return StaleJobRef(
            "NOT_FOUND",
            message=f"{ref} not acted on: {server.address} restarted without a binlog since "
            f"the job was put (pid {ref.pid}, now {server.pid}); its jobs were lost and "
            "the id may now name another job",
        )
    return None


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

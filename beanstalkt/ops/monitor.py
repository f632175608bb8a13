"""Server snapshots: the statistics of a server and of its tubes, read in one go.

This is the one place that knows how to read a whole server, shared by the
Prometheus exporter (:mod:`beanstalkt.ops.exporter`) and ``top``
(:mod:`beanstalkt.ops.top`): ``stats``, ``list-tubes``, then ``stats-tube`` for
each selected tube, pipelined (a tube that vanishes in between is skipped),
and the age of the job at the head of each tube's ready queue. It imports
neither prometheus_client nor curses.

::

    watcher = ServerWatcher("127.0.0.1:11300", timeout=2)
    snapshot = await watcher.snapshot()
    for tube in snapshot.tubes:
        print(tube.name, tube.stats["current-jobs-ready"], tube.oldest_ready_age)
    await watcher.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from ssl import SSLContext
from typing import Any, Optional, TypeVar

from .._compat import ssl_or_old_spelling
from ..address import parse_address
from ..client import Client
from ..connection import SSLOption
from ..errors import NotFound
from ..models import Stats, StatsTube
from ..protocol import check_tube_name
from ..servers import Server, ServerSet

_Answer = TypeVar("_Answer")

# The tube every connection uses at first and that always exists.
_HOME_TUBE = "default"
# stats-job can miss the job peek-ready named (deleted or reserved in
# between); then the head has moved on and another look is worth it.
_PEEK_ATTEMPTS = 3


@dataclass(frozen=True)
class TubeSnapshot:
    """One tube at the time of the snapshot.

    ``oldest_ready_age`` is the age in seconds (time since it was put) of the
    job at the head of the tube's ready queue, the next one a worker gets: of
    the jobs with the most urgent priority, the oldest. It is 0 when the tube
    has no ready job, and ``None`` when it was not measured (measuring
    disabled, or the snapshot ran out of time first).
    """

    name: str
    stats: StatsTube
    oldest_ready_age: Optional[int] = None


@dataclass(frozen=True)
class ServerSnapshot:
    """A whole server at one moment: its ``stats`` and those of its selected tubes.

    ``taken_at`` is a :func:`time.monotonic` reading (rates are computed from
    two snapshots). ``tubes`` are sorted by name; ``tubes_dropped`` counts the
    tubes that matched the selection but were left out by the ``max_tubes``
    cap. The server-wide ``stats`` always cover every tube.
    """

    address: str
    taken_at: float
    stats: Stats
    tubes: tuple[TubeSnapshot, ...]
    tubes_dropped: int = 0


def check_tube_patterns(patterns: Iterable[str]) -> list[str]:
    """Check ``fnmatch`` patterns (``emails``, ``jobs-*``) meant to select tubes.

    beanstalkd tube names never contain ``*``, ``?``, ``[`` or ``]``, so a
    pattern without them is an exact name, and is checked as one.
    """
    checked = []
    for pattern in patterns:
        if not pattern:
            raise ValueError("a tube pattern must not be empty")
        if not any(char in pattern for char in "*?["):
            check_tube_name(pattern)
        checked.append(pattern)
    return checked


def select_tubes(
    names: Iterable[str], patterns: Optional[Sequence[str]], max_tubes: Optional[int]
) -> tuple[list[str], int]:
    """The tubes to report, sorted by name, and how many the cap dropped.

    Tubes matching none of ``patterns`` (when given) are left out silently;
    of those that remain, the first ``max_tubes`` by name are kept, so the
    same tubes keep being reported from one scrape to the next.
    """
    selected = sorted(
        name
        for name in set(names)
        if patterns is None or any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)
    )
    if max_tubes is None or len(selected) <= max_tubes:
        return selected, 0
    return selected[:max_tubes], len(selected) - max_tubes


async def per_tube(
    names: Iterable[str], ask: Callable[[str], Awaitable[_Answer]]
) -> dict[str, _Answer]:
    """``ask(name)`` for every named tube at once; the answers by tube name.

    The questions go out together (pipelined, on a client). A tube that no
    longer exists (``NotFound``: it vanished since it was listed) is left
    out; any other failure is raised.
    """
    names = list(names)
    replies = await asyncio.gather(*(ask(name) for name in names), return_exceptions=True)
    answers: dict[str, _Answer] = {}
    for name, reply in zip(names, replies, strict=True):
        if isinstance(reply, NotFound):
            continue  # the tube vanished since it was listed: nothing to report
        if isinstance(reply, BaseException):
            raise reply
        answers[name] = reply
    return answers


async def stats_of_tubes(client: Client[Any], names: Iterable[str]) -> list[StatsTube]:
    """``stats-tube`` of every named tube, pipelined, skipping tubes that no longer exist."""
    return list((await per_tube(names, client.stats_tube)).values())


async def _oldest_ready_age(client: Client[Any], tube: str, lock: asyncio.Lock) -> int:
    """Age in seconds of the job at the head of ``tube``'s ready queue; 0 if there is none.

    ``peek_ready(tube=)`` switches the connection to ``tube``; a ``use`` of
    ``default`` right behind it sends it back in the same pipelined burst
    (never leaving the connection counted as a user of ``tube``, nor keeping a
    vanished tube alive). Then ``stats-job`` tells the age. ``lock`` keeps
    the retries of two callers from interleaving.
    """
    async with lock:
        for _attempt in range(_PEEK_ATTEMPTS):
            peeked, back_home = await asyncio.gather(
                client.peek_ready(tube=tube),
                client.use(_HOME_TUBE),
                return_exceptions=True,
            )
            for outcome in (peeked, back_home):
                if isinstance(outcome, BaseException) and not isinstance(outcome, NotFound):
                    raise outcome
            if isinstance(peeked, NotFound):
                return 0  # no ready job
            assert not isinstance(peeked, BaseException)
            try:
                job_stats = await client.stats_job(peeked.id)
            except NotFound:
                continue  # reserved or deleted meanwhile: look at the new head
            return job_stats["age"]
    return 0


class ServerWatcher:
    """Reads snapshots of one server over two connections of its own.

    One connection reads statistics; the other peeks at ready jobs (peeking
    needs ``use``, which must not disturb anyone else's connection). Both are
    opened on the first :meth:`snapshot` and then kept; the client reconnects
    them by itself after a loss. No snapshot takes longer than ``timeout``
    seconds: a server that is down, or that accepts connections and never
    answers, makes :meth:`snapshot` raise instead of hanging.

    :param address: ``HOST:PORT``, ``HOST``, ``[IPv6]:PORT`` or ``unix:/path``.
    :param timeout: seconds one snapshot may take, connecting included.
    :param tubes: ``fnmatch`` patterns of the tubes to report (all by default).
    :param max_tubes: report at most this many tubes (the first by name).
    :param measure_oldest: also measure the age of each tube's head ready job.
    :param ssl: connect with TLS, as :class:`beanstalkt.Client`'s ``ssl``
        (``ssl_context=`` is its old spelling, still accepted).

    :meth:`of_server` makes one over a server of a
    :class:`~beanstalkt.servers.ServerSet` instead: it reads statistics on the
    set's client for that server (whose liveness the set proves) and peeks on
    a client of its own built with the set's options.
    """

    def __init__(
        self,
        address: str,
        *,
        timeout: float = 5.0,
        tubes: Optional[Sequence[str]] = None,
        max_tubes: Optional[int] = None,
        measure_oldest: bool = True,
        ssl: SSLOption = None,
        ssl_context: Optional[SSLContext] = None,
        _clients: Optional[tuple[Client[Any], Client[Any]]] = None,
    ) -> None:
        ssl = ssl_or_old_spelling(ssl, ssl_context, "ServerWatcher")
        host, port = parse_address(address)
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        if max_tubes is not None and max_tubes < 0:
            raise ValueError(f"max_tubes must not be negative, not {max_tubes!r}")
        self.address = address
        self.timeout = timeout
        self.tube_patterns = check_tube_patterns(tubes) if tubes is not None else None
        self.max_tubes = max_tubes
        self.measure_oldest = measure_oldest
        # A command issued while the connection is down fails at once
        # (disconnected_timeout=0): a dead server must answer a scrape fast.
        # The stall guard drops a connection whose server went silent, so the
        # next snapshot starts on a fresh one instead of queueing behind it.
        # With _clients (of_server), the stats client is the server set's:
        # connected, probed and closed by the set, not here.
        self._owns_stats_client = _clients is None
        self._stats_client: Client[Any]
        self._peek_client: Client[Any]
        self._stats_client, self._peek_client = _clients or tuple(
            Client(
                host,
                port,
                connect_timeout=timeout,
                disconnected_timeout=0.0,
                stall_timeout=timeout,
                ssl=ssl,
            )
            for _ in range(2)
        )
        # Made in the loop that uses it: a Lock is tied to the loop that first waits on it.
        self._peek_lock: Optional[asyncio.Lock] = None
        self._connecting: Optional[asyncio.Future[list[None]]] = None
        self._connected = False

    @classmethod
    def of_server(
        cls,
        server: Server,
        server_set: ServerSet,
        *,
        timeout: float = 5.0,
        tubes: Optional[Sequence[str]] = None,
        max_tubes: Optional[int] = None,
        measure_oldest: bool = True,
    ) -> ServerWatcher:
        """A watcher of ``server``, a member of ``server_set`` (see the class doc)."""
        peek_client = server_set.new_client(server.host, server.port)
        return cls(
            server.address,
            timeout=timeout,
            tubes=tubes,
            max_tubes=max_tubes,
            measure_oldest=measure_oldest,
            _clients=(server.client, peek_client),
        )

    async def snapshot(self) -> ServerSnapshot:
        """Read the server now; raise on failure or when ``timeout`` runs out.

        Raises a :class:`~beanstalkt.errors.BeanstalkConnectionError` when the
        server cannot be reached, :class:`asyncio.TimeoutError` when it is too
        slow. When the statistics came in time but the oldest-job ages did not,
        the snapshot is returned with the missing ages ``None``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        await self._connect(deadline - loop.time())
        stats, tube_stats, dropped = await asyncio.wait_for(
            self._read_stats(), max(0.0, deadline - loop.time())
        )
        taken_at = time.monotonic()
        ages: dict[str, int] = {}
        if self.measure_oldest:
            waiting = [s["name"] for s in tube_stats if s.get("current-jobs-ready", 0) > 0]
            # On timeout, report what was measured; the rest stays None.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    self._measure_ages(waiting, ages), max(0.0, deadline - loop.time())
                )
            for tube in tube_stats:
                if tube.get("current-jobs-ready", 0) == 0:
                    ages[tube["name"]] = 0
        return ServerSnapshot(
            address=self.address,
            taken_at=taken_at,
            stats=stats,
            tubes=tuple(
                TubeSnapshot(tube["name"], tube, ages.get(tube["name"])) for tube in tube_stats
            ),
            tubes_dropped=dropped,
        )

    async def close(self) -> None:
        """Close both connections (the peek connection only, for a watcher of a server set)."""
        if self._owns_stats_client:
            await self._stats_client.close()
        await self._peek_client.close()

    async def _connect(self, timeout: float) -> None:
        if self._connected:
            return  # from now on the client reconnects by itself
        if self._connecting is None:
            # One attempt for both connections, shared by concurrent snapshots
            # and shielded from their timeouts: an attempt cancelled halfway
            # would leave the client neither connected nor free to try again.
            clients = [self._peek_client]
            if self._owns_stats_client:
                clients.append(self._stats_client)
            self._connecting = asyncio.ensure_future(
                asyncio.gather(*(client.connect() for client in clients))
            )
        attempt = self._connecting
        try:
            await asyncio.wait_for(asyncio.shield(attempt), max(0.0, timeout))
        except asyncio.TimeoutError:
            raise  # the attempt goes on; the next snapshot joins it
        except Exception:
            self._connecting = None  # failed: the next snapshot tries again
            if self._owns_stats_client:
                await self._stats_client.close()
            await self._peek_client.close()
            raise
        self._connected = True

    async def _read_stats(self) -> tuple[Stats, list[StatsTube], int]:
        client = self._stats_client
        server_stats, names = await asyncio.gather(client.stats(), client.list_tubes())
        selected, dropped = select_tubes(names, self.tube_patterns, self.max_tubes)
        return server_stats, await stats_of_tubes(client, selected), dropped

    async def _measure_ages(self, tubes: Iterable[str], ages: dict[str, int]) -> None:
        if self._peek_lock is None:
            self._peek_lock = asyncio.Lock()
        for tube in tubes:
            ages[tube] = await _oldest_ready_age(self._peek_client, tube, self._peek_lock)


__all__ = [
    "ServerSnapshot",
    "ServerWatcher",
    "TubeSnapshot",
    "check_tube_patterns",
    "per_tube",
    "select_tubes",
    "stats_of_tubes",
]

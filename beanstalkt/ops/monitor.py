"""Server snapshots: the statistics of a server and of its tubes, read in one go.

This is the one place that knows how to read a whole server, shared by the
Prometheus exporter (:mod:`beanstalkt.ops.exporter`) and ``top``
(:mod:`beanstalkt.ops.top`): ``stats``, ``list-tubes``, then ``stats-tube`` for
each selected tube, pipelined (a tube that vanishes in between is skipped),
and the age of the job at the head of each tube's ready queue. It imports
neither prometheus_client nor curses.

A snapshot degrades per tube rather than failing whole: a listed tube name
the client's rules refuse (:func:`~beanstalkt.protocol.check_tube_name`) is
left out and named in ``ServerSnapshot.refused_tubes``, and a tube whose
``stats-tube`` has a counter that is not a whole number keeps its row, with
``TubeSnapshot.error`` saying which.

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
# A refused name is shown in messages at most this long: the server chose it.
_NAME_SHOWN = 60
#: The ``stats-tube`` keys whose values must be whole numbers (every key but ``name``).
TUBE_COUNTERS = tuple(key for key in StatsTube.__annotations__ if key != "name")


@dataclass(frozen=True)
class TubeSnapshot:
    """One tube at the time of the snapshot.

    ``oldest_ready_age`` is the age in seconds (time since it was put) of the
    job at the head of the tube's ready queue, the next one a worker gets: of
    the jobs with the most urgent priority, the oldest. It is 0 when the tube
    has no ready job, and ``None`` when it was not measured (measuring
    disabled, the snapshot ran out of time first, or the server's answer was
    not a number).

    ``error`` is ``None`` for a tube read as expected; otherwise it says what
    was wrong with its reply (``current-jobs-ready is 'lots', not a whole
    number``): the tube is still listed, and its sane counters still count.
    """

    name: str
    stats: StatsTube
    oldest_ready_age: Optional[int] = None
    error: Optional[str] = None


@dataclass(frozen=True)
class ServerSnapshot:
    """A whole server at one moment: its ``stats`` and those of its selected tubes.

    ``taken_at`` is a :func:`time.monotonic` reading (rates are computed from
    two snapshots). ``tubes`` are sorted by name; ``tubes_dropped`` counts the
    tubes that matched the selection but were left out by the ``max_tubes``
    cap. The server-wide ``stats`` always cover every tube.

    ``refused_tubes`` are the names the server listed (among those the
    selection would take) that the client's rules refuse, sorted (each shown
    at most 60 characters long, as ``repr()`` would): they were not asked
    about, since no command can name them. :attr:`bad_tubes` are the tubes
    whose reply had an error.
    """

    address: str
    taken_at: float
    stats: Stats
    tubes: tuple[TubeSnapshot, ...]
    tubes_dropped: int = 0
    refused_tubes: tuple[str, ...] = ()

    @property
    def bad_tubes(self) -> tuple[TubeSnapshot, ...]:
        """The tubes whose ``stats-tube`` reply had an error (see ``TubeSnapshot.error``)."""
        return tuple(tube for tube in self.tubes if tube.error is not None)


def shown_name(name: object) -> str:
    """A name the server sent, made safe to print: ``repr()``, cut to 60 characters."""
    text = repr(name)
    return text if len(text) <= _NAME_SHOWN else text[: _NAME_SHOWN - 3] + "..."


def matches(name: str, patterns: Optional[Sequence[str]]) -> bool:
    """Whether ``name`` is selected by ``patterns`` (``None``: every name is)."""
    return patterns is None or any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def split_refused(
    names: Iterable[object], patterns: Optional[Sequence[str]] = None
) -> tuple[list[str], list[str]]:
    """The listed tube names the client accepts, and the others (as :func:`shown_name`).

    Pure. The accepted ones keep their order; the refused ones are sorted and
    de-duplicated, and only those ``patterns`` would select are kept (a
    refused name outside the selection is as uninteresting as an accepted one).
    """
    accepted: list[str] = []
    refused: set[str] = set()
    for name in names:
        try:
            check_tube_name(name)
        except (TypeError, ValueError):
            if patterns is None or (isinstance(name, str) and matches(name, patterns)):
                refused.add(shown_name(name))
        else:
            assert isinstance(name, str)
            accepted.append(name)
    return accepted, sorted(refused)


def tube_error(stats: object) -> Optional[str]:
    """What is wrong with a ``stats-tube`` reply, or ``None`` if nothing is. Pure.

    Every counter present must be a whole number >= 0 (a missing one is not
    an error: older or newer servers send other sets of keys).
    """
    if not isinstance(stats, dict):
        return f"the reply is a {type(stats).__name__}, not a mapping"
    bad = [
        f"{key} is {shown_name(stats[key])}"
        for key in TUBE_COUNTERS
        if key in stats and not (type(stats[key]) is int and stats[key] >= 0)
    ]
    if not bad:
        return None
    return ", ".join(bad) + (", not a whole number" if len(bad) == 1 else ", not whole numbers")


def _ready_count(stats: StatsTube) -> int:
    """The tube's ready count, 0 when the server sent something else (the row's error says so)."""
    value = stats.get("current-jobs-ready", 0)
    return value if type(value) is int else 0


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
    selected = sorted(name for name in set(names) if matches(name, patterns))
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


async def _oldest_ready_age(client: Client[Any], tube: str, lock: asyncio.Lock) -> Optional[int]:
    """Age in seconds of the job at the head of ``tube``'s ready queue; 0 if there is none.

    ``None`` when the server's ``age`` is not a whole number.

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
            age = job_stats.get("age") if isinstance(job_stats, dict) else None
            return age if type(age) is int and age >= 0 else None
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
        stats, tube_stats, dropped, refused = await asyncio.wait_for(
            self._read_stats(), max(0.0, deadline - loop.time())
        )
        taken_at = time.monotonic()
        errors = {name: tube_error(reply) for name, reply in tube_stats.items()}
        ages: dict[str, Optional[int]] = {}
        if self.measure_oldest:
            waiting = [
                name
                for name, reply in tube_stats.items()
                if errors[name] is None and _ready_count(reply) > 0
            ]
            # On timeout, report what was measured; the rest stays None.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    self._measure_ages(waiting, ages), max(0.0, deadline - loop.time())
                )
            for name, reply in tube_stats.items():
                if errors[name] is None and _ready_count(reply) == 0:
                    ages[name] = 0
        return ServerSnapshot(
            address=self.address,
            taken_at=taken_at,
            stats=stats,
            # Named as asked (the reply's own "name" is the server's to get wrong).
            tubes=tuple(
                TubeSnapshot(name, reply, ages.get(name), errors[name])
                for name, reply in tube_stats.items()
            ),
            tubes_dropped=dropped,
            refused_tubes=tuple(refused),
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

    async def _read_stats(self) -> tuple[Stats, dict[str, StatsTube], int, list[str]]:
        client = self._stats_client
        server_stats, names = await asyncio.gather(client.stats(), client.list_tubes())
        # A name no command can carry is left out and named, never the whole
        # server lost for it (stats-tube would refuse it at the call).
        accepted, refused = split_refused(names, self.tube_patterns)
        selected, dropped = select_tubes(accepted, self.tube_patterns, self.max_tubes)
        return server_stats, await per_tube(selected, client.stats_tube), dropped, refused

    async def _measure_ages(self, tubes: Iterable[str], ages: dict[str, Optional[int]]) -> None:
        if self._peek_lock is None:
            self._peek_lock = asyncio.Lock()
        for tube in tubes:
            ages[tube] = await _oldest_ready_age(self._peek_client, tube, self._peek_lock)


def format_duration(seconds: int, space: str = "") -> str:
    """``42s``, ``3m07s``, ``5h02m``, ``3d04h``: the two largest units, readable at a glance.

    ``space`` goes between each number and its unit (``" "``: ``3 m 07 s``), as
    the web console writes them; ``top`` writes them close, to save columns.
    """
    units = ((86400, "d", 3600, "h"), (3600, "h", 60, "m"), (60, "m", 1, "s"))
    for size, name, smaller, smaller_name in units:
        if seconds >= size:
            rest = seconds % size // smaller
            return f"{seconds // size}{space}{name}{space}{rest:02d}{space}{smaller_name}"
    return f"{seconds}{space}s"


__all__ = [
    "format_duration",
    "TUBE_COUNTERS",
    "ServerSnapshot",
    "ServerWatcher",
    "TubeSnapshot",
    "check_tube_patterns",
    "matches",
    "per_tube",
    "select_tubes",
    "shown_name",
    "split_refused",
    "stats_of_tubes",
    "tube_error",
]

"""The worker's decisions, as pure functions: no event loop, no sockets, value-tested.

* :func:`next_site`: which server a slot goes to before its next reserve;
* :func:`backoff_delay` and :func:`jittered`: how long a failed job waits;
* :func:`after_failure`: retry or bury;
* :func:`overdue`: whether a handler has run past its time limit;
* :func:`placement`: where the slots start, spread over servers and connections;
* :func:`addresses_of`: the servers a Worker was given, spelled once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Optional, Protocol

from ..address import format_address, parse_address
from ..protocol import MAX_UINT32

if TYPE_CHECKING:
    from ..client import Client


class SiteState(Protocol):
    """What :func:`next_site` needs to know of one server (read only)."""

    @property
    def has_work(self) -> bool:
        """The last quick reserve answered there handed out a job: more may wait."""

    @property
    def slots(self) -> int:
        """Slots homed there now."""

    @property
    def looked_at(self) -> float:
        """Loop time of the last reserve answered there (-inf: never, or since it came back)."""

    @property
    def live(self) -> bool:
        """It has an established connection to reserve on."""


class Move(NamedTuple):
    """Where a slot goes: the server's index, and whether that is a visit (mark it looked at)."""

    site: int
    visit: bool = False


def next_site(
    sites: Sequence[SiteState],
    current: int,
    current_open: bool,
    empty: bool,
    now: float,
    stale_after: float,
) -> Optional[Move]:
    """The server a slot homed at ``sites[current]`` should move to (``None``: stay).

    * Its connection is down (``current_open`` false): to a live server, one
      with work first, then the one with fewest slots (its own server
      included: another connection of it may be up). ``None`` when none is live.
    * It found its server ``empty``: to a server whose last quick reserve
      handed out a job, else to a server with at least two slots fewer (idle
      slots spread out, one waiting reserve on each), else to a server nobody
      has looked at for ``stale_after`` seconds.
    * Busy where it is: it stays, unless a server has had no slot and no look
      for ``stale_after`` seconds: then it pays that one a visit (its jobs
      never wait long behind another server's backlog).
    """
    if not current_open:
        best: Optional[int] = None
        best_rank = (True, 0)
        for index, site in enumerate(sites):
            if not site.live:
                continue
            rank = (not site.has_work, site.slots)
            if best is None or rank < best_rank:
                best, best_rank = index, rank
        return None if best is None else Move(best)
    if len(sites) == 1:
        return None
    stale_before = now - stale_after
    if not empty:
        for index, site in enumerate(sites):
            if site.live and site.slots == 0 and site.looked_at < stale_before:
                return Move(index, visit=True)
        return None
    with_work: Optional[int] = None
    fewest: Optional[int] = None
    unseen: Optional[int] = None
    for index, site in enumerate(sites):
        if index == current or not site.live:
            continue
        if site.has_work and (with_work is None or site.slots < sites[with_work].slots):
            with_work = index
        if fewest is None or site.slots < sites[fewest].slots:
            fewest = index
        if site.slots == 0 and site.looked_at < stale_before:
            unseen = index
    if with_work is not None:
        return Move(with_work)
    if fewest is not None and sites[current].slots > sites[fewest].slots + 1:
        return Move(fewest)
    if unseen is not None:
        return Move(unseen, visit=True)
    return None


def backoff_delay(attempt: int, base: float, factor: float, most: float) -> int:
    """Whole seconds after failed attempt ``attempt`` (1, 2, ...), before jitter.

    ``min(most, base * factor ** (attempt - 1))``, rounded up; ``base`` 0
    retries at once.
    """
    try:
        delay = base * factor ** (attempt - 1)
    except OverflowError:
        delay = most
    return min(MAX_UINT32, math.ceil(min(most, delay)))


def jittered(delay: int, jitter: float, draw: float) -> int:
    """``delay`` shortened by up to ``jitter`` of itself; ``draw`` is uniform in [0, 1).

    Only ever shorter (the configured delay stays the most a job waits), and
    whole seconds, rounded up: a delay under ``1 / jitter`` seconds rounds back
    to itself.
    """
    if jitter <= 0 or delay <= 0:
        return delay
    return max(0, min(delay, math.ceil(delay * (1.0 - jitter * draw))))


def after_failure(attempt: int, max_attempts: int) -> str:
    """``"bury"`` when failed attempt ``attempt`` was the last allowed, else ``"retry"``."""
    return "bury" if attempt >= max_attempts else "retry"


def overdue(started: float, limit: Optional[float], now: float) -> bool:
    """Whether a handler started at ``started`` has run past ``limit`` seconds (None: never)."""
    return limit is not None and now - started >= limit


def placement(slots: int, sites: int, lanes_per_site: int) -> list[tuple[int, int]]:
    """``(site, lane)`` of each slot at the start: spread over the servers, then their lanes.

    Slot ``i`` goes to server ``i % sites``; on a server, to its lanes in
    turn, so that 10 slots on 2 connections make 5 + 5, not 8 + 2.
    """
    return [(index % sites, (index // sites) % lanes_per_site) for index in range(slots)]


def lanes_needed(slots: int, slots_per_connection: int) -> int:
    """Connections per server for ``slots`` slots, ``slots_per_connection`` to one."""
    return math.ceil(slots / slots_per_connection)


def addresses_of(
    host: Optional[str],
    port: Optional[int],
    servers: Optional[Sequence[str]],
    client_factory: Optional[Callable[[], Client[Any]]],
) -> tuple[list[str], Optional[Callable[[], Client[Any]]]]:
    """The Worker's servers as canonical addresses, and its client factory.

    ``servers=[...]``, or ``host``/``port`` (a set of one), or a
    ``client_factory`` (no addresses: each client says where it goes); none
    of them: the Client's own defaults (no addresses, no factory). Raises
    ``TypeError``/``ValueError`` for what cannot be combined or parsed.
    """
    if servers is not None:
        if isinstance(servers, str):
            raise TypeError("servers must be a list of addresses, not one string")
        if host is not None or port is not None or client_factory is not None:
            raise TypeError("give either servers=, or host=/port=/client_factory=, not both")
        addresses: list[str] = []
        for text in servers:
            address = format_address(*parse_address(text))
            if address in addresses:
                raise ValueError(f"server {address} is listed twice")
            addresses.append(address)
        if not addresses:
            raise ValueError("servers must name at least one server")
        return addresses, None
    if client_factory is not None:
        if host is not None or port is not None:
            raise TypeError("give either client_factory=, or host=/port=, not both")
        return [], client_factory
    if host is None and port is None:
        return [], None  # the Client's own defaults (see Worker._make_client)
    text = host if host is not None else "localhost"
    if port is not None and not text.startswith("unix:"):
        return [format_address(*parse_address(text, port))], None
    return [format_address(*parse_address(text))], None


__all__ = [
    "Move",
    "addresses_of",
    "SiteState",
    "after_failure",
    "backoff_delay",
    "jittered",
    "lanes_needed",
    "next_site",
    "overdue",
    "placement",
]

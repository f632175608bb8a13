"""What one browser tab sees of the servers: sorting, filtering, the row cap and deltas. Pure.

The overview is built for the person on call, and for thousands of tubes:

* **problems first** -- the default order is buried jobs (most first), then
  the age of the oldest ready job, then ready jobs, then the name; a tab may
  sort by ``buried``, ``ready``, ``oldest`` or ``name`` instead, and filter by
  a part of the name;
* **a cap** -- a tab gets at most :data:`DEFAULT_LIMIT` rows per server (it
  may ask for up to :data:`MAX_LIMIT`), the first of its order: with 5,000
  tubes, the 100 that matter, and a count of the rest;
* **deltas** -- after the first message, a row is sent again only when one
  of its values changed; the order is sent as a list of names.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

#: The orders a tab may ask for.
SORTS = ("problems", "buried", "ready", "oldest", "name")
#: Rows per server a tab gets unless it asks for more.
DEFAULT_LIMIT = 100
#: The most rows per server a tab may ask for.
MAX_LIMIT = 1000
#: The longest filter text accepted.
MAX_FILTER = 200

Row = dict[str, Any]


@dataclass(frozen=True)
class View:
    """One tab's view: an order, a filter (part of a tube name), a row cap, or one tube."""

    sort: str = "problems"
    filter: str = ""
    limit: int = DEFAULT_LIMIT
    #: (server index, tube name): the tab is a tube page and wants only that tube.
    tube: Optional[tuple[int, str]] = None


def parse_view(message: str) -> View:
    """The view a tab asked for in a WebSocket message; :class:`ValueError` if malformed."""
    try:
        data = json.loads(message)
    except ValueError:
        raise ValueError("a view message is a JSON object") from None
    if not isinstance(data, dict):
        raise ValueError("a view message is a JSON object")
    sort = data.get("sort", "problems")
    if sort not in SORTS:
        raise ValueError(f"sort is one of {', '.join(SORTS)}")
    text = data.get("filter", "")
    if not isinstance(text, str) or len(text) > MAX_FILTER:
        raise ValueError(f"filter is a text of at most {MAX_FILTER} characters")
    limit = data.get("limit", DEFAULT_LIMIT)
    if type(limit) is not int or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit is a whole number from 1 to {MAX_LIMIT}")
    tube = data.get("tube")
    if tube is not None:
        if (
            not isinstance(tube, list)
            or len(tube) != 2
            or type(tube[0]) is not int
            or not isinstance(tube[1], str)
        ):
            raise ValueError("tube is [server index, tube name]")
        return View(sort, text.strip(), limit, (tube[0], tube[1]))
    return View(sort, text.strip(), limit)


def _age(row: Mapping[str, Any]) -> int:
    oldest = row.get("oldest")
    return oldest if isinstance(oldest, int) else -1


_KEYS: dict[str, Callable[[Mapping[str, Any]], tuple[Any, ...]]] = {
    "problems": lambda row: (-row["buried"], -_age(row), -row["ready"], row["name"]),
    "buried": lambda row: (-row["buried"], row["name"]),
    "ready": lambda row: (-row["ready"], row["name"]),
    "oldest": lambda row: (-_age(row), -row["ready"], row["name"]),
    "name": lambda row: (row["name"],),
}


def sort_rows(rows: Sequence[Row], sort: str) -> list[Row]:
    """``rows`` in the order ``sort`` names (largest numbers first, then by name)."""
    return sorted(rows, key=_KEYS[sort])


def select(ordered: Sequence[Row], view: View) -> tuple[list[Row], int]:
    """The rows ``view`` shows of rows already in its order, and how many matched its filter."""
    if view.filter:
        needle = view.filter.lower()
        matching = [row for row in ordered if needle in row["name"].lower()]
    else:
        matching = list(ordered)
    return matching[: view.limit], len(matching)


def delta(shown: Sequence[Row], sent: dict[str, Row]) -> tuple[list[Row], list[str]]:
    """Rows of ``shown`` that differ from what was ``sent``, and names now new to the tab.

    ``sent`` (name -> the row as last sent) is updated to ``shown``.
    """
    changed: list[Row] = []
    new: list[str] = []
    names = set()
    for row in shown:
        name = row["name"]
        names.add(name)
        before = sent.get(name)
        if before is None:
            new.append(name)
        if before != row:
            changed.append(row)
            sent[name] = row
    for gone in set(sent) - names:
        del sent[gone]
    return changed, new


__all__ = [
    "DEFAULT_LIMIT",
    "MAX_FILTER",
    "MAX_LIMIT",
    "SORTS",
    "View",
    "delta",
    "parse_view",
    "select",
    "sort_rows",
]

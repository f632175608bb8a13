"""Command-line options as data: the command lines declare theirs in tables.

``beanstalkt.cmd`` (one table per sub-command) and ``beanstalkt.worker`` read
their arguments from :class:`Option` tables rather than from long runs of
``add_argument`` calls, so an option is one entry, found and changed in one
place.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any, NamedTuple


class Option(NamedTuple):
    """One argument: its flags (or its name) and ``add_argument``'s settings."""

    flags: tuple[str, ...]
    settings: dict[str, Any]


def option(*flags: str, **settings: Any) -> Option:
    """An :class:`Option`, written as the ``add_argument`` call it stands for."""
    return Option(flags, settings)


def add_options(parser: argparse.ArgumentParser, options: Iterable[Option]) -> None:
    """Add each option of the table to ``parser``, in order."""
    for each in options:
        parser.add_argument(*each.flags, **each.settings)

"""A task's options that are its tube's worker policy, and the rule for tasks sharing a tube.

beanstalkd hands a tube's jobs to whichever worker slot asks, so a tube has one
:class:`~beanstalkt.worker.TubePolicy`: the tasks of one tube must agree on
these options (pure: no I/O).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from ..protocol import check_interval
from ..worker.policy import check_settings

#: The options of a task that make its tube's :class:`~beanstalkt.worker.TubePolicy`.
POLICY_OPTIONS = ("max_attempts", "time_limit", "backoff_base", "backoff_max", "backoff_jitter")


class HasPolicy(Protocol):
    """A registered task, as far as its tube's policy goes."""

    name: str
    tube: str

    @property
    def policy_settings(self) -> dict[str, Any]:
        """Its :data:`POLICY_OPTIONS` and their values."""


def check_policy_options(settings: dict[str, Any]) -> None:
    """Refuse options out of range; times become seconds (a ``timedelta`` too), in place.

    ``math.inf`` is "no limit" for ``time_limit`` only.
    """
    for option in ("time_limit", "backoff_base", "backoff_max"):
        value = settings.get(option)
        if value is not None and not (option == "time_limit" and value == math.inf):
            settings[option] = check_interval(option, value)
    check_settings(settings)


def check_shared_tube(
    tasks: Iterable[HasPolicy], name: str, tube: str, settings: Mapping[str, Any]
) -> None:
    """Refuse task ``name`` when another task of ``tube`` has other policy options (ValueError)."""
    for other in tasks:
        if other.tube != tube:
            continue
        theirs = other.policy_settings
        differ = [
            f"{option}={settings.get(option)!r} (it has {theirs[option]!r})"
            for option in POLICY_OPTIONS
            if settings.get(option) != theirs[option]
        ]
        if differ:
            raise ValueError(
                f"task {name!r} shares tube {tube!r} with task {other.name!r} but not its "
                f"worker policy: {', '.join(differ)}. A tube has one policy (max_attempts, "
                "time_limit, backoff): give the tasks the same values, or tubes of their own"
            )
        return  # the others of this tube agree with this one


__all__ = ["POLICY_OPTIONS", "HasPolicy", "check_policy_options", "check_shared_tube"]

"""Per-tube policies: :class:`TubePolicy`, and the one table of their defaults.

The Worker's defaults, the ``TubePolicy`` fields and the command line's options
(and their ``-h`` text) all come from :data:`POLICY_FIELDS`: no default is
written twice.
"""

from __future__ import annotations

import datetime
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional, Union

from ..protocol import MAX_UINT32, Seconds, check_integer, check_interval, check_tube_name

#: What a handler may be: ``async def handler(job)`` or a plain function (run in
#: a thread), given a :class:`~beanstalkt.worker.ReservedJob`. It returns nothing
#: useful (or a :class:`~beanstalkt.worker.JobAction`).
Handler = Callable[[Any], Any]


class PolicyField(NamedTuple):
    """One setting a tube's policy may override: its name, default and ``-h`` text."""

    name: str
    default: Optional[float]
    help: str
    #: Whole numbers only (max_attempts).
    integer: bool = False


#: The retry and time-limit settings, with their defaults (the Worker's
#: keyword arguments, TubePolicy's fields and the command line's options).
POLICY_FIELDS = (
    PolicyField(
        "max_attempts",
        5,
        "the attempt that fails this many times buries the job; 1: the first failure",
        integer=True,
    ),
    PolicyField("backoff_base", 1.0, "seconds of delay after the first failure; 0: retry at once"),
    PolicyField("backoff_factor", 2.0, "each further failure multiplies the delay by this"),
    PolicyField("backoff_max", 3600.0, "the delay never exceeds this many seconds"),
    PolicyField(
        "backoff_jitter",
        0.25,
        "each delay is shortened at random by up to this fraction, so that jobs failing "
        "together do not come back together; 0: exact delays",
    ),
    PolicyField(
        "time_limit",
        600.0,
        "seconds a handler may run before it is stopped and its run counts as a failure",
    ),
)

DEFAULTS: Mapping[str, Optional[float]] = {field.name: field.default for field in POLICY_FIELDS}


@dataclass(frozen=True)
class TubePolicy:
    """What a worker does with the jobs of one tube, where it differs from the Worker's.

    ::

        Worker({
            "emails": TubePolicy(send_email, max_attempts=10, time_limit=30),
            "reports": TubePolicy(build_report, concurrency=2, time_limit=3600),
            "thumbnails": make_thumbnail,          # the Worker's own settings
        }, concurrency=8)

    Every field left ``None`` is the Worker's. ``concurrency`` gives the tube
    slots of its own (that many of its jobs at once, never more, and never
    waiting behind the other tubes); without it the tube shares the Worker's
    ``concurrency`` slots with the other tubes without one. ``time_limit``
    ``math.inf`` means no limit for this tube.
    """

    handler: Handler
    max_attempts: Optional[int] = None
    backoff_base: Optional[Seconds] = None
    backoff_factor: Optional[float] = None
    backoff_max: Optional[Seconds] = None
    backoff_jitter: Optional[float] = None
    time_limit: Optional[Seconds] = None
    concurrency: Optional[int] = None

    def __post_init__(self) -> None:
        if not callable(self.handler):
            raise TypeError("a TubePolicy's handler must be callable")
        if self.concurrency is not None:
            check_integer("concurrency", self.concurrency, 1, 10_000)


class Policy(NamedTuple):
    """A tube's settings, resolved (the TubePolicy over the Worker's defaults)."""

    handler: Handler
    max_attempts: int
    backoff_base: float
    backoff_factor: float
    backoff_max: float
    backoff_jitter: float
    #: ``None``: no limit.
    time_limit: Optional[float]
    #: Slots of its own (``None``: the Worker's shared slots).
    concurrency: Optional[int]


def check_settings(settings: Mapping[str, Any]) -> None:
    """Refuse settings out of range (ValueError), before anything starts."""
    attempts = settings.get("max_attempts")
    if attempts is not None:
        check_integer("max_attempts", attempts, 1, MAX_UINT32)
    base, factor, most = (
        settings.get(name) for name in ("backoff_base", "backoff_factor", "backoff_max")
    )
    if (
        (base is not None and base < 0)
        or (factor is not None and factor < 1)
        or (most is not None and most < 0)
    ):
        raise ValueError("backoff needs base >= 0, factor >= 1 and max >= 0")
    jitter = settings.get("backoff_jitter")
    if jitter is not None and not 0 <= jitter <= 1:
        raise ValueError("backoff_jitter must be between 0 and 1")
    limit = settings.get("time_limit")
    if limit is not None and not limit > 0:
        raise ValueError("time_limit must be more than 0 seconds (None: no limit)")


def worker_settings(**given: Any) -> dict[str, Any]:
    """The Worker's own policy settings, checked; times as seconds (a ``timedelta`` too)."""
    settings = dict(given)
    for name in ("backoff_base", "backoff_max", "time_limit"):
        value = settings[name]
        if value is not None and value != math.inf:
            settings[name] = check_interval(name, value)
    check_settings(settings)
    return settings


def check_worker_options(
    concurrency: int, slots_per_connection: int, touch_fraction: float
) -> None:
    """Refuse Worker options out of range (ValueError), before anything starts."""
    check_integer("concurrency", concurrency, 1, 10_000)
    check_integer("slots_per_connection", slots_per_connection, 1, 10_000)
    if not 0 < touch_fraction < 1:
        raise ValueError("touch_fraction must be between 0 and 1")


def _seconds(name: str, value: Any) -> Any:
    """A TubePolicy's time as seconds (a ``timedelta`` too); other settings as given."""
    if name in ("backoff_base", "backoff_max", "time_limit") and isinstance(
        value, datetime.timedelta
    ):
        return check_interval(name, value)
    return value


def resolve(entry: Union[Handler, TubePolicy], defaults: Mapping[str, Any]) -> Policy:
    """The settings of one tube: its TubePolicy's fields, else the Worker's ``defaults``."""
    if isinstance(entry, TubePolicy):
        own = {
            field.name: _seconds(field.name, getattr(entry, field.name)) for field in POLICY_FIELDS
        }
        check_settings(own)
        handler, concurrency = entry.handler, entry.concurrency
    else:
        if not callable(entry):
            raise TypeError("a handler must be callable (or a TubePolicy)")
        own, handler, concurrency = {}, entry, None
    values = {name: own[name] if own.get(name) is not None else defaults[name] for name in DEFAULTS}
    limit = values["time_limit"]
    return Policy(
        handler=handler,
        max_attempts=int(values["max_attempts"]),
        backoff_base=float(values["backoff_base"]),
        backoff_factor=float(values["backoff_factor"]),
        backoff_max=float(values["backoff_max"]),
        backoff_jitter=float(values["backoff_jitter"]),
        time_limit=None if limit is None or limit == math.inf else float(limit),
        concurrency=concurrency,
    )


def is_coroutine_function(handler: Callable[..., Any]) -> bool:
    """Whether ``handler`` is ``async`` (also through functools.partial or ``async __call__``)."""
    if inspect.iscoroutinefunction(handler):
        return True
    target = getattr(handler, "func", None)  # functools.partial
    if target is not None and inspect.iscoroutinefunction(target):
        return True
    call = getattr(handler, "__call__", None)  # noqa: B004 - objects with async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def policies(
    handlers: Mapping[str, Union[Handler, TubePolicy]], settings: Mapping[str, Any]
) -> dict[str, Policy]:
    """Each tube's :class:`Policy` (refusing bad tube names and handlers, ValueError/TypeError)."""
    if not handlers:
        raise ValueError("handlers must name at least one tube")
    resolved = {}
    for tube, entry in handlers.items():
        check_tube_name(tube)
        if not callable(entry) and not isinstance(entry, TubePolicy):
            raise TypeError(f"the handler of tube {tube!r} is not callable")
        resolved[tube] = resolve(entry, settings)
    return resolved


__all__ = [
    "DEFAULTS",
    "POLICY_FIELDS",
    "Handler",
    "Policy",
    "PolicyField",
    "TubePolicy",
    "check_worker_options",
    "is_coroutine_function",
    "policies",
    "worker_settings",
]

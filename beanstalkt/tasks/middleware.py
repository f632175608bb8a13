"""Middleware: hooks around deferring a task and around running it.

A middleware subclasses :class:`Middleware` and overrides the hooks it needs;
each hook may be a plain method or ``async def``::

    class Timing(Middleware):
        def before_run(self, message):
            message.state["started"] = time.monotonic()

        def after_run(self, message, result):
            log.info("%s took %.3fs", message.name, time.monotonic() - message.state["started"])

    tasks = Tasks(middleware=[Timing()])

Order: the ``before_*`` hooks run in the order the middleware was given, the
``after_*`` and ``on_*_error`` hooks in the reverse order (the first
middleware wraps all the others). ``message.headers`` travel in the envelope:
a producer's ``before_defer`` writes them (trace context, a request id) and a
worker's ``before_run`` reads them. ``message.state`` is a dictionary for the
middleware's own use during one defer or one run.

An exception raised by a ``before_defer`` hook fails the defer (nothing is
sent); one raised by ``before_run`` fails that run like the task's own error.
Errors in ``after_*`` and ``on_*_error`` hooks are logged and do not change
the outcome.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Union

from .envelope import Envelope

if TYPE_CHECKING:
    from ..worker import ReservedJob

logger = logging.getLogger("beanstalkt.tasks")


@dataclass
class TaskMessage:
    """One task call as middleware sees it, on the producer's side or the worker's.

    :ivar envelope: the envelope sent (or received); its ``headers`` are
        :attr:`headers`.
    :ivar tube: the tube the job is put in (or was reserved from).
    :ivar priority: ``defer`` only: the job's priority.
    :ivar delay: ``defer`` only: seconds before the job becomes ready.
    :ivar ttr: ``defer`` only: the job's time to run.
    :ivar job: ``run`` only: the reserved job (its ``id``, ``server``,
        ``await job.load_stats()``).
    :ivar attempt: ``run`` only: which attempt this is, when known (on
        failure the worker reads it; ``None`` before).
    :ivar state: free for the middleware's own use during this defer or run.
    """

    envelope: Envelope
    tube: str
    priority: int = 0
    delay: int = 0
    ttr: int = 0
    job: Optional[ReservedJob] = None
    attempt: Optional[int] = None
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The task's name."""
        return self.envelope.name

    @property
    def id(self) -> str:
        """The task's id."""
        return self.envelope.id

    @property
    def headers(self) -> dict[str, str]:
        """The envelope's headers (string to string), read and written by middleware."""
        return self.envelope.headers


HookResult = Union[None, Any]


class Middleware:
    """Base class: every hook does nothing. Override the ones you need (plain or async)."""

    def before_defer(self, message: TaskMessage) -> HookResult:
        """Before the job is put: add headers, refuse the call (raise)."""

    def after_defer(self, message: TaskMessage, job: Any) -> HookResult:
        """After the put succeeded; ``job`` is the job id (or ``PoolJobRef``)."""

    def on_defer_error(self, message: TaskMessage, error: BaseException) -> HookResult:
        """The put (or a ``before_defer`` hook) failed with ``error``."""

    def before_run(self, message: TaskMessage) -> HookResult:
        """Before the task function runs in a worker."""

    def after_run(self, message: TaskMessage, result: Any) -> HookResult:
        """The task function returned ``result``."""

    def on_run_error(self, message: TaskMessage, error: BaseException) -> HookResult:
        """The task function (or a ``before_run`` hook) raised ``error``."""


async def _call(hook: Any, *args: Any) -> None:
    outcome = hook(*args)
    if inspect.isawaitable(outcome):
        await outcome


async def run_before(middleware: Sequence[Middleware], hook: str, *args: Any) -> None:
    """Call ``hook`` of each middleware in order; an exception stops and propagates."""
    for each in middleware:
        await _call(getattr(each, hook), *args)


async def run_after(middleware: Sequence[Middleware], hook: str, *args: Any) -> None:
    """Call ``hook`` of each middleware in reverse order; exceptions are logged only."""
    for each in reversed(middleware):
        try:
            await _call(getattr(each, hook), *args)
        except Exception:
            logger.exception("middleware %r: %s failed", each, hook)

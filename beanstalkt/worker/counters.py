"""What a worker did with the jobs of each tube: :class:`TubeCounters`.

Every change goes through :meth:`TubeCounters.add`, the one mutator, so the
Prometheus metrics (when the worker has them) cannot miss an event: a counter
the worker bumps is a metric the exporter shows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # the metrics extra is optional: imported only when used
    from ..ops.metrics import WorkerMetrics

#: The per-tube counters, in the order they are reported.
COUNTER_NAMES = (
    "done",
    "failed",
    "retried",
    "released",
    "buried",
    "lost",
    "timed_out",
    "in_progress",
)


class TubeCounters:
    """What a worker did with the jobs of one tube.

    * ``done``: deleted after the handler succeeded (or raised :class:`Delete`);
    * ``failed``: handler runs that raised an error or ran past their time
      limit (each one, retried or not);
    * ``retried``: failed jobs released with a backoff delay;
    * ``released``: jobs released without a failure (:class:`Release`, or
      unfinished at shutdown);
    * ``buried``: jobs buried (after ``max_attempts``, :class:`Bury`, or a
      job whose body no handler can be given);
    * ``lost``: jobs whose reservation was lost (connection lost, TTR expired):
      their outcome was not recorded, and the server will hand them out again;
    * ``timed_out``: handler runs stopped by their time limit (also ``failed``);
    * ``in_progress``: handlers running right now (not counted: read from the
      worker's slots when asked, so the per-job path changes nothing for it).

    Change them only with :meth:`add`.
    """

    __slots__ = (*COUNTER_NAMES[:-1], "_metrics", "_running", "_tube")

    done: int
    failed: int
    retried: int
    released: int
    buried: int
    lost: int
    timed_out: int

    def __init__(
        self,
        tube: str = "",
        metrics: Optional[WorkerMetrics] = None,
        running: Optional[Callable[[], int]] = None,
    ) -> None:
        for name in COUNTER_NAMES[:-1]:
            setattr(self, name, 0)
        self._tube = tube
        self._metrics = metrics
        # How many of the tube's jobs are being handled now (the worker's slots).
        self._running = running

    @property
    def in_progress(self) -> int:
        """Handlers of this tube running right now."""
        return 0 if self._running is None else self._running()

    def add(self, name: str, amount: int = 1) -> None:
        """Count ``amount`` more ``name`` (and tell the metrics, when the worker has them).

        The one place a counter changes.
        """
        setattr(self, name, getattr(self, name) + amount)
        metrics = self._metrics
        if metrics is not None:
            if name == "retried":
                metrics.job_retried(self._tube)
            elif name == "buried":
                metrics.job_buried(self._tube)
            elif name == "released":
                metrics.job_released(self._tube)
            elif name == "lost":
                metrics.job_lost(self._tube)
            elif name == "timed_out":
                metrics.job_timed_out(self._tube)

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dictionary."""
        return {name: getattr(self, name) for name in COUNTER_NAMES}

    def __repr__(self) -> str:
        text = " ".join(f"{name}={getattr(self, name)}" for name in COUNTER_NAMES)
        return f"<TubeCounters {self._tube!r} {text}>"


__all__ = ["COUNTER_NAMES", "TubeCounters"]

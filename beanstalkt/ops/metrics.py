"""Prometheus metrics of a worker: what it did with the jobs of each tube.

::

    from beanstalkt.metrics import WorkerMetrics

    metrics = WorkerMetrics()          # in prometheus_client's default registry
    port = metrics.serve(9100, health=worker.healthy)  # /metrics and /healthz, loopback
    metrics.job_done("emails", 0.12)   # the worker calls these

Needs the ``metrics`` extra (``pip install 'beanstalkt[metrics]'``, i.e.
prometheus_client). Only this module imports prometheus_client, and nothing
imports this module unless metrics are asked for. Every series is labelled
with the tube (a worker's tubes are a fixed, small set), except reconnects.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Optional

import tornado.httpserver
import tornado.netutil
import tornado.web

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "worker metrics need prometheus_client: pip install 'beanstalkt[metrics]'"
    ) from exc

#: Handler durations: from quick jobs to hour-long ones.
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
#: Queue latency: beanstalkd reports a job's age in whole seconds.
LATENCY_BUCKETS = (0, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400)


class WorkerMetrics:
    """The metrics a :class:`~beanstalkt.Worker` records, one small method per event.

    :param registry: where the metrics live; prometheus_client's default
        registry unless given (one ``WorkerMetrics`` per registry).
    :param namespace: the prefix of every metric name.
    """

    def __init__(
        self, registry: Optional[CollectorRegistry] = None, namespace: str = "beanstalkt_worker"
    ) -> None:
        self.registry = registry if registry is not None else REGISTRY
        self._server: Optional[tornado.httpserver.HTTPServer] = None

        def counter(name: str, documentation: str) -> Counter:
            return Counter(
                name, documentation, ["tube"], namespace=namespace, registry=self.registry
            )

        self._done = counter("jobs_done", "Jobs whose handler succeeded (and were deleted).")
        self._failed = counter("jobs_failed", "Handler runs that raised.")
        self._retried = counter("jobs_retried", "Failed jobs released with a backoff delay.")
        self._buried = counter("jobs_buried", "Jobs buried (attempts exhausted, or asked for).")
        self._released = counter("jobs_released", "Jobs released (asked for, or on shutdown).")
        self._lost = counter(
            "jobs_lost", "Jobs whose reservation was lost before they were settled."
        )
        self._timed_out = counter("jobs_timed_out", "Handler runs stopped by their time limit.")
        self._touched = counter("touches", "Touches sent to keep a long job reserved.")
        self._reserve_timeouts = counter(
            "reserve_timeouts", "Reserves with a timeout that found no job."
        )
        self._reconnects = Counter(
            "reconnects",
            "Connections to the server re-established after a loss.",
            namespace=namespace,
            registry=self.registry,
        )
        self._duration = Histogram(
            "handler_duration_seconds",
            "Time a handler took, by outcome (done or failed).",
            ["tube", "outcome"],
            namespace=namespace,
            registry=self.registry,
            buckets=DURATION_BUCKETS,
        )
        self._latency = Histogram(
            "queue_latency_seconds",
            "How long a job waited in the queue before a worker reserved it (its age).",
            ["tube"],
            namespace=namespace,
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )

    def job_done(self, tube: str, seconds: float) -> None:
        """A handler succeeded after ``seconds``."""
        self._done.labels(tube).inc()
        self._duration.labels(tube, "done").observe(seconds)

    def job_failed(self, tube: str, seconds: float) -> None:
        """A handler raised after ``seconds`` (the job is then retried or buried)."""
        self._failed.labels(tube).inc()
        self._duration.labels(tube, "failed").observe(seconds)

    def job_retried(self, tube: str) -> None:
        """A failed job was released with a backoff delay."""
        self._retried.labels(tube).inc()

    def job_buried(self, tube: str) -> None:
        """A job was buried."""
        self._buried.labels(tube).inc()

    def job_released(self, tube: str) -> None:
        """A job was released other than as a retry (the handler asked, or shutdown)."""
        self._released.labels(tube).inc()

    def job_lost(self, tube: str) -> None:
        """A job's reservation was lost (connection, TTR): the server hands it out again."""
        self._lost.labels(tube).inc()

    def job_timed_out(self, tube: str) -> None:
        """A handler was stopped by its time limit (also counted failed)."""
        self._timed_out.labels(tube).inc()

    def queue_latency(self, tube: str, seconds: float) -> None:
        """A job was reserved ``seconds`` after it was put (its ``age``)."""
        self._latency.labels(tube).observe(seconds)

    def touched(self, tube: str) -> None:
        """A running job was touched."""
        self._touched.labels(tube).inc()

    def reserve_timed_out(self, tube: str) -> None:
        """A reserve with a timeout on ``tube`` found no job."""
        self._reserve_timeouts.labels(tube).inc()

    def reconnected(self) -> None:
        """A connection came back after a loss."""
        self._reconnects.inc()

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)

    def serve(
        self,
        port: int = 0,
        address: str = "127.0.0.1",
        *,
        health: Optional[Callable[[], bool]] = None,
        sockets: Optional[list[socket.socket]] = None,
    ) -> int:
        """Serve ``/metrics`` (and ``/healthz``) on the current event loop; returns the port.

        ``address`` is where to listen: loopback by default, ``""`` for every
        interface. ``health`` (e.g. :meth:`Worker.healthy
        <beanstalkt.worker.Worker.healthy>`) answers ``/healthz``: 200 ``ok``
        while it returns true, 503 ``unavailable`` otherwise (without it,
        always 200). ``sockets``: already bound ones (see :func:`bind`), instead
        of ``port``/``address``. :meth:`stop_serving` stops.
        """
        if self._server is not None:
            raise RuntimeError("already serving; call stop_serving() first")
        if sockets is None:
            sockets = bind(port, address)
        server = tornado.httpserver.HTTPServer(
            tornado.web.Application(
                [
                    (r"/metrics", _MetricsHandler, {"metrics": self}),
                    (r"/healthz", _HealthHandler, {"health": health}),
                ]
            )
        )
        server.add_sockets(sockets)
        self._server = server
        bound: int = sockets[0].getsockname()[1]
        return bound

    def stop_serving(self) -> None:
        """Stop serving ``/metrics``."""
        if self._server is not None:
            self._server.stop()
            self._server = None


def bind(port: int, address: str = "127.0.0.1") -> list[socket.socket]:
    """Bind the listening sockets for :meth:`WorkerMetrics.serve` (``OSError`` if in use)."""
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be between 0 and 65535, not {port}")
    return tornado.netutil.bind_sockets(port, address or None)


class _HealthHandler(tornado.web.RequestHandler):
    def initialize(self, health: Optional[Callable[[], bool]]) -> None:
        """Take the health callback (None: always healthy)."""
        self.health = health

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        if self.health is None or self.health():
            self.write("ok\n")
        else:
            self.set_status(503)
            self.write("unavailable: no beanstalkd server is live\n")


class _MetricsHandler(tornado.web.RequestHandler):
    def initialize(self, metrics: WorkerMetrics) -> None:
        self.metrics = metrics

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.write(self.metrics.render())


__all__ = [
    "DURATION_BUCKETS",
    "LATENCY_BUCKETS",
    "WorkerMetrics",
    "bind",
]

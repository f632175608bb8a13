"""A Prometheus exporter for beanstalkd servers.

::

    python -m beanstalkt.exporter --listen 127.0.0.1:9127 --server 127.0.0.1:11300
    beanstalkt exporter --listen :9127 --server queue-1:11300 --server queue-2:11300

Serves ``/metrics`` in the Prometheus text format: for each server, the
``stats`` gauges and counters and, per tube, those of ``stats-tube`` plus the
age of the job at the head of the ready queue. Each scrape reads every server
at once, each bounded by ``--timeout``: a server that is down or silent shows
as ``beanstalkd_up{server="..."} 0`` and the scrape still succeeds. The metric
names and their meanings are listed in the operations guide
(``docs/guides/operations.rst``, "Prometheus exporter").

Needs the ``metrics`` extra (``pip install 'beanstalkt[metrics]'``, i.e.
prometheus_client); ``import beanstalkt`` never imports this module.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from ssl import SSLContext
from typing import Optional, Union

import tornado.httpserver
import tornado.netutil
import tornado.web

try:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST
    from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
except ImportError as exc:  # pragma: no cover - depends on the installation
    _MISSING = "the exporter needs prometheus_client: pip install 'beanstalkt[metrics]'"
    if __name__ == "__main__":  # python -m beanstalkt.ops.exporter: one line, no traceback
        sys.exit(f"beanstalkt exporter: {_MISSING}")
    raise ImportError(_MISSING) from exc

from .._compat import ssl_or_old_spelling
from ..cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    add_connection_arguments,
    argument,
    exit_status,
    listen_address,
    positive_seconds,
    servers_or_usage_error,
    tls_or_usage_error,
)
from ..connection import SSLOption
from ..servers import Server, ServerSet
from .monitor import ServerSnapshot, ServerWatcher, check_tube_patterns

logger = logging.getLogger("beanstalkt.exporter")

DEFAULT_LISTEN = ":9127"
DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_TUBES = 100
# At most this many distinct refused names and bad tubes are logged (the gauges
# beanstalkd_tubes_refused / beanstalkd_tubes_unreadable go on counting).
_SAID_LIMIT = 1000

JOB_STATES = ("ready", "reserved", "delayed", "buried")


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric read straight from a stats key."""

    key: str  # the stats / stats-tube key
    name: str  # the metric name (counters without their _total suffix)
    help: str
    counter: bool = False


#: Server metrics read from ``stats``, each with the label ``server``.
SERVER_METRICS = (
    MetricSpec("current-jobs-urgent", "beanstalkd_current_jobs_urgent",
               "Ready jobs with priority < 1024."),
    MetricSpec("current-tubes", "beanstalkd_current_tubes", "Tubes that exist."),
    MetricSpec("current-connections", "beanstalkd_current_connections", "Open connections."),
    MetricSpec("current-producers", "beanstalkd_current_producers",
               "Open connections that have issued at least one put."),
    MetricSpec("current-workers", "beanstalkd_current_workers",
               "Open connections that have issued at least one reserve."),
    MetricSpec("current-waiting", "beanstalkd_current_waiting",
               "Connections waiting in a reserve."),
    MetricSpec("max-job-size", "beanstalkd_max_job_size_bytes", "Largest job body accepted."),
    MetricSpec("uptime", "beanstalkd_uptime_seconds", "Seconds since the server started."),
    MetricSpec("draining", "beanstalkd_draining", "1 while the server is in drain mode."),
    MetricSpec("binlog-oldest-index", "beanstalkd_binlog_oldest_index",
               "Index of the oldest binlog file needed (0: no binlog)."),
    MetricSpec("binlog-current-index", "beanstalkd_binlog_current_index",
               "Index of the binlog file being written (0: no binlog)."),
    MetricSpec("binlog-max-size", "beanstalkd_binlog_max_size_bytes",
               "Largest size of a binlog file."),
    MetricSpec("total-jobs", "beanstalkd_jobs", "Jobs put since start.", counter=True),
    MetricSpec("job-timeouts", "beanstalkd_job_timeouts",
               "Reserved jobs that ran out of time-to-run.", counter=True),
    MetricSpec("total-connections", "beanstalkd_connections",
               "Connections accepted since start.", counter=True),
    MetricSpec("binlog-records-written", "beanstalkd_binlog_records_written",
               "Records written to the binlog.", counter=True),
    MetricSpec("binlog-records-migrated", "beanstalkd_binlog_records_migrated",
               "Records moved to a newer binlog file by compaction.", counter=True),
    MetricSpec("rusage-utime", "beanstalkd_cpu_user_seconds",
               "CPU time spent in user mode.", counter=True),
    MetricSpec("rusage-stime", "beanstalkd_cpu_system_seconds",
               "CPU time spent in the kernel.", counter=True),
)  # fmt: skip

#: Tube metrics read from ``stats-tube``, each with the labels ``server`` and ``tube``.
TUBE_METRICS = (
    MetricSpec("current-jobs-urgent", "beanstalkd_tube_current_jobs_urgent",
               "Ready jobs with priority < 1024 in the tube."),
    MetricSpec("current-using", "beanstalkd_tube_current_using",
               "Connections using the tube (for put)."),
    MetricSpec("current-watching", "beanstalkd_tube_current_watching",
               "Connections watching the tube."),
    MetricSpec("current-waiting", "beanstalkd_tube_current_waiting",
               "Connections waiting in a reserve on the tube."),
    MetricSpec("pause", "beanstalkd_tube_pause_seconds",
               "Delay of the last pause-tube, in seconds (0: never paused)."),
    MetricSpec("pause-time-left", "beanstalkd_tube_pause_time_left_seconds",
               "Seconds until the tube is no longer paused (0: not paused)."),
    MetricSpec("total-jobs", "beanstalkd_tube_jobs", "Jobs put into the tube.", counter=True),
    MetricSpec("cmd-delete", "beanstalkd_tube_deletes",
               "Jobs of the tube deleted.", counter=True),
    MetricSpec("cmd-pause-tube", "beanstalkd_tube_pauses",
               "pause-tube commands on the tube.", counter=True),
)  # fmt: skip


def _family(
    spec_name: str, help_text: str, labels: Sequence[str], counter: bool
) -> Union[CounterMetricFamily, GaugeMetricFamily]:
    if counter:
        return CounterMetricFamily(spec_name, help_text, labels=labels)
    return GaugeMetricFamily(spec_name, help_text, labels=labels)


def _add(
    family: Union[CounterMetricFamily, GaugeMetricFamily], labels: list[str], value: object
) -> None:
    """A sample of ``value``, if it is a number: what the server sent otherwise is left out."""
    # stats values are ints, floats and (for "draining") a bool; anything else
    # (a hostile or broken server's "lots") is not invented into a 0.
    if isinstance(value, (int, float)):
        family.add_metric(labels, float(value))


@dataclass(frozen=True)
class ScrapeResult:
    """What one scrape learned about one server: a snapshot, or nothing."""

    address: str
    snapshot: Optional[ServerSnapshot]
    duration: float


def metric_families(results: Sequence[ScrapeResult]) -> Iterator[Metric]:
    """The metric families of one scrape, every server's samples in each family."""
    labels = ["server"]
    tube_labels = ["server", "tube"]
    up = GaugeMetricFamily(
        "beanstalkd_up", "1 if the server answered this scrape in time, else 0.", labels=labels
    )
    duration = GaugeMetricFamily(
        "beanstalkd_scrape_duration_seconds", "Time taken to read the server.", labels=labels
    )
    dropped = GaugeMetricFamily(
        "beanstalkd_tubes_dropped",
        "Tubes matching --tubes that --max-tubes left out of the per-tube metrics.",
        labels=labels,
    )
    info = GaugeMetricFamily(
        "beanstalkd_info", "Always 1; the labels name the server's version and id.",
        labels=["server", "version", "id", "hostname"],
    )  # fmt: skip
    current_jobs = GaugeMetricFamily(
        "beanstalkd_current_jobs", "Jobs by state.", labels=["server", "state"]
    )
    commands = CounterMetricFamily(
        "beanstalkd_commands", "Commands received, by command.", labels=["server", "command"]
    )
    tube_jobs = GaugeMetricFamily(
        "beanstalkd_tube_current_jobs", "Jobs in the tube by state.",
        labels=["server", "tube", "state"],
    )  # fmt: skip
    oldest = GaugeMetricFamily(
        "beanstalkd_tube_oldest_ready_age_seconds",
        "Age of the job at the head of the ready queue (the next one reserved; "
        "of the most urgent priority, the oldest); 0 when no job is ready.",
        labels=tube_labels,
    )
    server_families = [_family(s.name, s.help, labels, s.counter) for s in SERVER_METRICS]
    tube_families = [_family(s.name, s.help, tube_labels, s.counter) for s in TUBE_METRICS]

    for result in results:
        server = result.address
        snapshot = result.snapshot
        up.add_metric([server], 1.0 if snapshot is not None else 0.0)
        duration.add_metric([server], result.duration)
        if snapshot is None:
            continue
        stats = snapshot.stats
        dropped.add_metric([server], float(snapshot.tubes_dropped))
        info.add_metric(
            [
                server,
                str(stats.get("version", "")),
                str(stats.get("id", "")),
                str(stats.get("hostname", "")),
            ],
            1.0,
        )
        for state in JOB_STATES:
            _add(current_jobs, [server, state], stats.get(f"current-jobs-{state}"))
        for key, value in sorted(stats.items()):
            if key.startswith("cmd-"):
                _add(commands, [server, key[4:]], value)
        for spec, family in zip(SERVER_METRICS, server_families, strict=True):
            _add(family, [server], stats.get(spec.key))
        for tube in snapshot.tubes:
            tube_stats = tube.stats
            for state in JOB_STATES:
                _add(tube_jobs, [server, tube.name, state], tube_stats.get(f"current-jobs-{state}"))
            for spec, family in zip(TUBE_METRICS, tube_families, strict=True):
                _add(family, [server, tube.name], tube_stats.get(spec.key))
            _add(oldest, [server, tube.name], tube.oldest_ready_age)

    yield from (up, duration, dropped, *_degraded_families(results), info, current_jobs, commands)
    yield from server_families
    yield from (tube_jobs, oldest)
    yield from tube_families


def _degraded_families(results: Sequence[ScrapeResult]) -> Iterator[Metric]:
    """What each server's snapshot had to leave out: refused tube names, unreadable tubes."""
    refused = GaugeMetricFamily(
        "beanstalkd_tubes_refused",
        "Tube names the server listed that the client's rules refuse (left out of the "
        "per-tube metrics; the log names them).",
        labels=["server"],
    )
    unreadable = GaugeMetricFamily(
        "beanstalkd_tubes_unreadable",
        "Tubes whose stats-tube reply had a counter that is not a whole number (those "
        "samples left out; the log names them).",
        labels=["server"],
    )
    for result in results:
        if result.snapshot is not None:
            refused.add_metric([result.address], float(len(result.snapshot.refused_tubes)))
            unreadable.add_metric([result.address], float(len(result.snapshot.bad_tubes)))
    yield from (refused, unreadable)


class _Scrape:
    """A prometheus_client collector over the results of one scrape."""

    def __init__(self, results: Sequence[ScrapeResult]) -> None:
        self.results = results

    def collect(self) -> Iterator[Metric]:
        return metric_families(self.results)


class Exporter:
    """Reads a set of beanstalkd servers on demand and renders their metrics.

    :param servers: server addresses (``HOST:PORT``, ``[IPv6]:PORT``, ``unix:/path``).
    :param timeout: seconds any one server may take per scrape.
    :param tubes: ``fnmatch`` patterns of the tubes that get per-tube metrics.
    :param max_tubes: at most this many tubes per server get per-tube metrics.
    :param ssl: reach every server with TLS, as :class:`beanstalkt.Client`'s ``ssl``
        (``ssl_context=`` is its old spelling, still accepted).

    The servers and their liveness come from one
    :class:`~beanstalkt.servers.ServerSet`: addresses are parsed once
    (``localhost`` and ``localhost:11300`` are the same server, refused
    twice), a server is probed in the background, and a scrape reads only the
    servers that answer: one known to be down is ``up 0`` at once, one
    connected but silent after ``timeout`` seconds.
    """

    def __init__(
        self,
        servers: Sequence[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        tubes: Optional[Sequence[str]] = None,
        max_tubes: Optional[int] = DEFAULT_MAX_TUBES,
        ssl: SSLOption = None,
        ssl_context: Optional[SSLContext] = None,
    ) -> None:
        ssl = ssl_or_old_spelling(ssl, ssl_context, "Exporter")
        if not servers:
            raise ValueError("give at least one server")
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self.timeout = timeout
        # A scrape never waits for a connection (disconnected_timeout=0), and a
        # server silent for `timeout` is dropped (stall guard and probe alike).
        self.server_set = ServerSet(
            servers,
            probe_timeout=timeout,
            connect_timeout=timeout,
            disconnected_timeout=0.0,
            stall_timeout=timeout,
            ssl=ssl,
        )
        # What was logged already (refused names, bad tubes), to say each once;
        # bounded, since the names are the server's to choose.
        self._said: set[tuple[str, str]] = set()
        self.watchers = [
            ServerWatcher.of_server(
                server, self.server_set, timeout=timeout, tubes=tubes, max_tubes=max_tubes
            )
            for server in self.server_set
        ]

    async def scrape(self) -> list[ScrapeResult]:
        """Read every server at once; a server that fails gives a result without snapshot."""
        await self.server_set.start(wait=False)  # once; from then on it probes by itself
        pairs = zip(self.server_set.servers, self.watchers, strict=True)
        return list(await asyncio.gather(*(self._scrape_one(s, w) for s, w in pairs)))

    async def render(self) -> bytes:
        """One scrape in the Prometheus text format."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Scrape(await self.scrape()))
        return generate_latest(registry)

    async def close(self) -> None:
        """Close every connection."""
        for watcher in self.watchers:
            await watcher.close()
        await self.server_set.close()

    async def _scrape_one(self, server: Server, watcher: ServerWatcher) -> ScrapeResult:
        started = time.monotonic()
        snapshot: Optional[ServerSnapshot] = None
        try:
            if not await self.server_set.wait_for(server, self.timeout):
                why = server.last_error or f"no answer within {self.timeout}s"
                logger.warning("%s: down (%s)", watcher.address, why)
                return ScrapeResult(watcher.address, None, time.monotonic() - started)
            snapshot = await watcher.snapshot()
            self._say_once(snapshot)
        except asyncio.TimeoutError:
            logger.warning("%s: no answer within %ss", watcher.address, watcher.timeout)
        except Exception as exc:  # any failure is this server's "up 0", never the scrape's
            logger.warning("%s: %s", watcher.address, exc)
        return ScrapeResult(watcher.address, snapshot, time.monotonic() - started)

    def _say_once(self, snapshot: ServerSnapshot) -> None:
        """Log each refused tube name and each tube's bad reply once per server."""
        news = [
            f"tube name {name} refused by the client's rules, left out"
            for name in snapshot.refused_tubes
        ] + [f"bad reply for tube {tube.name}: {tube.error}" for tube in snapshot.bad_tubes]
        for text in news:
            if (snapshot.address, text) in self._said or len(self._said) >= _SAID_LIMIT:
                continue
            self._said.add((snapshot.address, text))
            logger.warning("%s: %s", snapshot.address, text)


class MetricsHandler(tornado.web.RequestHandler):
    """``GET /metrics``: a fresh scrape of every server."""

    def initialize(self, exporter: Exporter) -> None:
        self.exporter = exporter

    async def get(self) -> None:
        body = await self.exporter.render()
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.write(body)


class IndexHandler(tornado.web.RequestHandler):
    """``GET /``: a pointer to ``/metrics``."""

    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.write(
            "<html><head><title>beanstalkd exporter</title></head><body>"
            '<h1>beanstalkd exporter</h1><p><a href="/metrics">Metrics</a></p></body></html>'
        )


def make_app(exporter: Exporter) -> tornado.web.Application:
    """The Tornado application serving ``/`` and ``/metrics``."""
    return tornado.web.Application(
        [(r"/", IndexHandler), (r"/metrics", MetricsHandler, {"exporter": exporter})]
    )


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` (every interface) or ``[IPv6]:PORT`` -> (host, port).

    The rule of every tool that serves (:func:`beanstalkt.cli.common.listen_address`);
    the exporter wants the port said.
    """
    return listen_address(text)


def build_parser(
    prog: str = "python -m beanstalkt.exporter", argv: Optional[Sequence[str]] = None
) -> argparse.ArgumentParser:
    """The exporter's command line (``argv``: the run's, for where ``-h`` says its servers are)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve Prometheus metrics of beanstalkd servers on /metrics.",
        epilog="Metric names and meanings: docs/guides/operations.rst, 'Prometheus exporter'.",
    )
    parser.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        type=argument(parse_listen),
        help=f"HOST:PORT to serve on; :PORT means every interface (default {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--tubes",
        type=argument(_patterns),
        help="comma-separated tube names or fnmatch patterns (jobs-*) that get per-tube "
        "metrics (default: all)",
    )
    parser.add_argument(
        "--max-tubes",
        type=argument(_non_negative_int),
        default=DEFAULT_MAX_TUBES,
        help="per-tube metrics for at most N tubes per server, the first by name; the "
        f"others are counted in beanstalkd_tubes_dropped (default {DEFAULT_MAX_TUBES})",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_TIMEOUT,
        help="seconds a server may take per scrape before it counts as down "
        f"(default {DEFAULT_TIMEOUT:g})",
    )
    add_connection_arguments(parser, several="each is scraped", argv=argv)
    return parser


def _patterns(text: str) -> list[str]:
    return check_tube_patterns(part.strip() for part in text.split(","))


def _non_negative_int(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"expected a whole number >= 0, not {text!r}")
    return int(text)


async def serve(
    exporter: Exporter, host: str, port: int, ready: Optional[asyncio.Future[int]] = None
) -> None:
    """Serve until SIGINT or SIGTERM; ``ready`` gets the listening port."""
    # None: every interface, IPv4 and IPv6 alike.
    sockets = tornado.netutil.bind_sockets(port, None if host == "0.0.0.0" else host)
    server = tornado.httpserver.HTTPServer(make_app(exporter))
    server.add_sockets(sockets)
    bound_port: int = sockets[0].getsockname()[1]
    logger.info("serving metrics on http://%s:%d/metrics", host, bound_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set_result(bound_port)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        server.stop()
        await exporter.close()


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """Run the exporter (``sys.argv[1:]`` by default) until interrupted; return the exit status."""
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog or "python -m beanstalkt.exporter", words)
    try:
        args = parser.parse_args(words)
        # The same rule as every command line (cli.common): --server, --host/--port,
        # then $BEANSTALKD_SERVERS, $BEANSTALKD_HOST/$BEANSTALKD_PORT, localhost:11300.
        servers = servers_or_usage_error(parser, args)
        ssl_context = tls_or_usage_error(parser, args, servers)
    except SystemExit as exc:
        return exit_status(exc.code)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    host, port = args.listen
    exporter = Exporter(
        servers.texts,
        timeout=args.timeout,
        tubes=args.tubes,
        max_tubes=args.max_tubes,
        ssl=ssl_context,
    )
    try:
        asyncio.run(serve(exporter, host, port))
    except OSError as exc:  # e.g. the port is taken
        sys.stderr.write(f"beanstalkt exporter: cannot listen on {host}:{port}: {exc}\n")
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "SERVER_METRICS",
    "TUBE_METRICS",
    "Exporter",
    "IndexHandler",
    "MetricSpec",
    "MetricsHandler",
    "ScrapeResult",
    "build_parser",
    "main",
    "make_app",
    "metric_families",
    "parse_listen",
    "serve",
]

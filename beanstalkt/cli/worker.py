"""The worker's command line: ``python -m beanstalkt.worker`` (or ``beanstalkt worker``).

It builds a :class:`~beanstalkt.worker.Worker` from its options and runs it until
SIGTERM/SIGINT; the servers come from the same rule as every beanstalkt command line.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, Optional

from ..errors import BeanstalkConnectionError
from ..worker.worker import Handler, Worker
from .common import add_connection_arguments, servers_or_usage_error, tls_or_usage_error
from .options import add_options, option

logger = logging.getLogger("beanstalkt.worker")


def load_handler(spec: str) -> Handler:
    """Import ``"package.module:function"`` (or ``module:object.method``)."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"handler must look like module:function, not {spec!r}")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{spec} is not callable")
    handler: Handler = target
    return handler


#: The worker's options before the servers and TLS ones (cli.common), in -h order.
_OPTIONS = (
    option(
        "handler",
        nargs="?",
        help="module:function handling every --tube without a handler of its own",
    ),
    option("--tasks", metavar="MODULE:ATTR", help="run the tasks of a beanstalkt.tasks.Tasks"),
    option(
        "--tube",
        action="append",
        default=[],
        metavar="TUBE[=module:function]",
        help="a tube to work on (repeatable; default: 'default')",
    ),
    option(
        "--concurrency",
        type=int,
        default=1,
        help="jobs run at once (default: 1)",
    ),
    option(
        "--max-attempts",
        type=int,
        default=5,
        help="the attempt that fails this many times buries the job (default: 5)",
    ),
    option(
        "--backoff-base",
        type=float,
        default=1.0,
        help="seconds of delay after the first failure (default: 1)",
    ),
    option(
        "--backoff-factor",
        type=float,
        default=2.0,
        help="each further failure multiplies the delay by this (default: 2)",
    ),
    option(
        "--backoff-max",
        type=float,
        default=3600.0,
        help="cap on the delay, seconds (default: 3600)",
    ),
    option(
        "--grace-period",
        type=float,
        default=30.0,
        help="on SIGTERM/SIGINT, seconds running jobs may take to finish before they are "
        "released (default: 30)",
    ),
    option(
        "--reserve-timeout",
        type=float,
        default=1.0,
        help="seconds each reserve-with-timeout waits for a job; under 1 (0 included) "
        "counts as 1, so an idle worker never polls (default: 1)",
    ),
    option(
        "--slots-per-connection",
        type=int,
        default=8,
        help="slots sharing one connection; 1 gives each its own (default: 8)",
    ),
    option(
        "--prefetch-stats",
        action="store_true",
        help="read each job's stats-job before its handler runs (job.attempt, priority, "
        "ttr readable at once; one more round trip per job)",
    ),
    option("--encoding", default=None, help="decode bodies to str, e.g. utf-8"),
    option("--stats-interval", type=float, default=None, help="log counters every N seconds"),
)
#: Its options after the servers and TLS ones.
_LATER_OPTIONS = (
    option(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics on http://0.0.0.0:PORT/metrics "
        "(needs the metrics extra: pip install 'beanstalkt[metrics]')",
    ),
    option("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default: INFO)"),
)


def build_parser(
    prog: str = "python -m beanstalkt.worker", argv: Optional[Sequence[str]] = None
) -> argparse.ArgumentParser:
    """The argument parser of ``python -m beanstalkt.worker`` (also used by the docs).

    ``argv`` (the run's arguments) only makes ``-h`` say where that run's
    servers come from.
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run beanstalkd jobs through a handler function, with retries, "
        "TTR touches and graceful shutdown on SIGTERM/SIGINT.",
    )
    add_options(parser, _OPTIONS)
    add_connection_arguments(parser, several="the slots move to where the jobs are", argv=argv)
    add_options(parser, _LATER_OPTIONS)
    return parser


def _load_handlers(arguments: argparse.Namespace) -> dict[str, Handler]:
    if arguments.tasks is not None:  # the tasks bring their own handlers
        if arguments.handler is not None or arguments.tube:
            raise ValueError("--tasks runs the tasks' own tubes: give no handler or --tube")
        return {}
    if arguments.handler is None:
        raise ValueError("give a handler (module:function) or --tasks module:attr")
    default_handler = load_handler(arguments.handler)
    handlers: dict[str, Handler] = {}
    for entry in arguments.tube or ["default"]:
        tube, sep, spec = entry.partition("=")
        handlers[tube] = load_handler(spec) if sep else default_handler
    return handlers


async def _serve(worker: Worker, metrics_port: Optional[int] = None) -> None:
    worker.install_signal_handlers()
    if worker.metrics is not None and metrics_port is not None:
        port = worker.metrics.serve(metrics_port)
        logger.info("metrics on http://0.0.0.0:%d/metrics", port)
    try:
        await worker.run()
    finally:
        if worker.metrics is not None:
            worker.metrics.stop_serving()


def _make_worker(parser: argparse.ArgumentParser, arguments: argparse.Namespace) -> Worker:
    """The Worker the options describe (a usage error for what cannot be built)."""
    metrics = None
    if arguments.metrics_port is not None:
        try:
            from ..ops.metrics import WorkerMetrics
        except ImportError as exc:
            parser.error(f"--metrics-port: {exc}")
        metrics = WorkerMetrics()
    # The same flags and environment as every beanstalkt command line (cli.common).
    servers = servers_or_usage_error(parser, arguments)
    ssl_context = tls_or_usage_error(parser, arguments, servers)
    addresses = servers.addresses
    # One server: the worker of one server, however it was named.
    where: dict[str, Any] = (
        {"servers": servers.texts}
        if len(addresses) > 1
        else {"host": addresses[0][0], "port": addresses[0][1]}
    )
    try:
        handlers = _load_handlers(arguments)
        make_worker: Callable[..., Worker] = Worker
        if arguments.tasks is not None:
            from ..tasks.runner import tasks_worker

            make_worker = tasks_worker(arguments.tasks)
        worker = make_worker(
            handlers,
            **where,
            encoding=arguments.encoding,
            concurrency=arguments.concurrency,
            max_attempts=arguments.max_attempts,
            backoff_base=arguments.backoff_base,
            backoff_factor=arguments.backoff_factor,
            backoff_max=arguments.backoff_max,
            grace_period=arguments.grace_period,
            reserve_timeout=arguments.reserve_timeout,
            stats_interval=arguments.stats_interval,
            prefetch_stats=arguments.prefetch_stats,
            slots_per_connection=arguments.slots_per_connection,
            metrics=metrics,
            ssl=ssl_context,
        )
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        parser.error(str(exc))
    return worker


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """Entry point of ``python -m beanstalkt.worker`` (and ``beanstalkt worker``).

    Returns the exit status; ``prog`` is the name ``-h`` gives the program.
    """
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog or "python -m beanstalkt.worker", words)
    arguments = parser.parse_args(words)
    logging.basicConfig(
        level=arguments.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    worker = _make_worker(parser, arguments)
    status = 0
    try:
        asyncio.run(_serve(worker, arguments.metrics_port))
    except BeanstalkConnectionError as exc:
        logger.error("%s", exc)
        status = 1
    if worker._threads_busy:
        # A plain-function handler still runs after the grace period. Its job
        # is already released: do not let the interpreter's exit wait for it.
        logger.warning("%d handler thread(s) still running; exiting anyway", worker._threads_busy)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


__all__ = [
    "build_parser",
    "load_handler",
    "main",
]

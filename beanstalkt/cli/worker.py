"""The worker's command line: ``python -m beanstalkt.worker`` (or ``beanstalkt worker``).

It builds a :class:`~beanstalkt.worker.Worker` from its options and runs it until
SIGTERM/SIGINT; the servers come from the same rule as every beanstalkt command line.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any, Optional

from ..errors import BeanstalkConnectionError
from ..worker.policy import POLICY_FIELDS, Handler, PolicyField, TubePolicy
from ..worker.supervisor import Supervisor, child_command, child_index
from ..worker.worker import Worker
from .common import (
    EXIT_CANNOT_CONNECT,
    EXIT_FAILED,
    add_connection_arguments,
    argument,
    import_object,
    port,
    servers_or_usage_error,
    tls_or_usage_error,
)
from .options import Option, add_options, option

logger = logging.getLogger("beanstalkt.worker")


def load_handler(spec: str) -> Handler:
    """Import ``"package.module:function"`` (or ``module:object.method``)."""
    target = import_object(spec, "handler", "module:function")
    if not callable(target):
        raise TypeError(f"{spec} is not callable")
    handler: Handler = target
    return handler


def _seconds_or_none(text: str) -> Optional[float]:
    if text.strip().lower() in ("none", "off", "inf"):
        return None
    value = float(text)
    if not value > 0:
        raise ValueError(f"must be more than 0 seconds (or 'none'), not {text!r}")
    return value


def _policy_option(field: PolicyField) -> Option:
    """The command-line option of one policy setting, from the one table (policy.POLICY_FIELDS)."""
    flag = "--" + field.name.replace("_", "-")
    if field.name == "time_limit":
        kind: Any = argument(_seconds_or_none)
        default_text = f"{field.default:g}; 'none': no limit"
    else:
        kind = int if field.integer else float
        default_text = f"{field.default:g}"
    return option(
        flag, type=kind, default=field.default, help=f"{field.help} (default: {default_text})"
    )


def _tube_policy(text: str) -> tuple[str, dict[str, Any]]:
    """``TUBE:key=value,...`` (keys: the policy settings and concurrency)."""
    tube, sep, rest = text.partition(":")
    if not sep or not tube or not rest:
        raise ValueError(f"must look like TUBE:key=value[,key=value], not {text!r}")
    known = {field.name: field for field in POLICY_FIELDS}
    settings: dict[str, Any] = {}
    for pair in rest.split(","):
        key, eq, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or (key not in known and key != "concurrency"):
            names = ", ".join([*known, "concurrency"])
            raise ValueError(f"{pair!r}: the keys are {names}")
        if key == "time_limit":
            limit = _seconds_or_none(value)
            settings[key] = math.inf if limit is None else limit
        elif key == "concurrency" or known[key].integer:
            settings[key] = int(value)
        else:
            settings[key] = float(value)
    return tube, settings


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
        "--policy",
        action="append",
        default=[],
        type=argument(_tube_policy),
        metavar="TUBE:KEY=VALUE[,...]",
        help="settings of one tube over the worker's (repeatable), e.g. "
        "emails:max_attempts=10,time_limit=30,concurrency=2; keys: "
        + ", ".join([field.name for field in POLICY_FIELDS] + ["concurrency"]),
    ),
    option(
        "--concurrency",
        type=int,
        default=1,
        help="jobs run at once, shared by the tubes without a concurrency of their own "
        "(default: 1)",
    ),
    *(_policy_option(field) for field in POLICY_FIELDS),
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
    option(
        "--burst",
        action="store_true",
        help="work on the jobs ready now, then exit 0 once the watched tubes have none",
    ),
    option(
        "--processes",
        type=int,
        default=1,
        help="run this many worker processes under one supervisor: a child that dies is "
        "restarted (with backoff), SIGTERM/SIGINT stops them all gracefully (default: 1)",
    ),
)
#: Its options after the servers and TLS ones.
_LATER_OPTIONS = (
    option(
        "--metrics-port",
        type=port,
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics and health on "
        "/healthz (200 while a server is live, else 503); with --processes, child i "
        "serves on PORT+i (needs the metrics extra: pip install 'beanstalkt[metrics]')",
    ),
    option(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="the address --metrics-port listens on (default: 127.0.0.1; 0.0.0.0 or :: "
        "for every interface)",
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


def _load_handlers(arguments: argparse.Namespace) -> dict[str, Any]:
    if arguments.tasks is not None:  # the tasks bring their own handlers
        if arguments.handler is not None or arguments.tube or arguments.policy:
            raise ValueError(
                "--tasks runs the tasks' own tubes: give no handler or --tube/--policy"
            )
        return {}
    if arguments.handler is None:
        raise ValueError("give a handler (module:function) or --tasks module:attr")
    default_handler = load_handler(arguments.handler)
    handlers: dict[str, Any] = {}
    for entry in arguments.tube or ["default"]:
        tube, sep, spec = entry.partition("=")
        handlers[tube] = load_handler(spec) if sep else default_handler
    for tube, settings in arguments.policy:
        if tube not in handlers:
            raise ValueError(f"--policy {tube}: no --tube {tube}")
        handlers[tube] = TubePolicy(handlers[tube], **settings)
    return handlers


async def _serve(
    worker: Worker, sockets: Optional[list[socket.socket]], burst: bool = False
) -> None:
    worker.install_signal_handlers()
    metrics = worker.metrics
    if metrics is not None and sockets is not None:
        metrics.serve(health=worker.healthy, sockets=sockets)
        host, bound = sockets[0].getsockname()[:2]
        logger.info("metrics on http://%s:%d/metrics, health on /healthz", host, bound)
    orphaned = (
        asyncio.ensure_future(_stop_if_orphaned(worker)) if child_index() is not None else None
    )
    try:
        await (worker.run_burst() if burst else worker.run())
    finally:
        if orphaned is not None:
            orphaned.cancel()
        if metrics is not None:
            metrics.stop_serving()


async def _stop_if_orphaned(worker: Worker) -> None:
    """A child of ``--processes`` whose supervisor died (kill -9) stops gracefully by itself."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    logger.warning("the supervisor (pid %d) is gone: stopping", parent)
    await worker.stop()


def _metrics_sockets(
    parser: argparse.ArgumentParser, arguments: argparse.Namespace
) -> Optional[list[socket.socket]]:
    """Bind ``--metrics-host``:``--metrics-port`` (+ the child's number) now, or exit clearly."""
    if arguments.metrics_port is None:
        return None
    number = arguments.metrics_port + (child_index() or 0)
    try:
        from ..ops.metrics import bind
    except ImportError as exc:
        parser.error(f"--metrics-port: {exc}")
    try:
        return bind(number, arguments.metrics_host)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        parser.exit(
            EXIT_FAILED,
            f"{parser.prog}: error: --metrics-port: cannot listen on "
            f"{arguments.metrics_host}:{number}: {reason}\n",
        )


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
    policy = {field.name: getattr(arguments, field.name) for field in POLICY_FIELDS}
    try:
        handlers = _load_handlers(arguments)
        make_worker: Callable[..., Worker] = Worker
        if arguments.tasks is not None:
            from ..tasks.runner import tasks_worker

            make_worker = tasks_worker(arguments.tasks)
        worker = make_worker(
            handlers,
            servers=servers.texts,  # one server is a set of one
            encoding=arguments.encoding,
            concurrency=arguments.concurrency,
            grace_period=arguments.grace_period,
            reserve_timeout=arguments.reserve_timeout,
            stats_interval=arguments.stats_interval,
            prefetch_stats=arguments.prefetch_stats,
            slots_per_connection=arguments.slots_per_connection,
            metrics=metrics,
            ssl=ssl_context,
            **policy,
        )
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        parser.error(str(exc))
    return worker


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """Entry point of ``python -m beanstalkt.worker`` (and ``beanstalkt worker``).

    Returns the exit status: 0 after a graceful stop (or, with ``--burst``,
    once the tubes are empty), 1 when the worker failed, 2 for a usage error,
    3 when no server could be reached. ``prog`` is the name ``-h`` gives the program.
    """
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog or "python -m beanstalkt.worker", words)
    arguments = parser.parse_args(words)
    logging.basicConfig(
        level=arguments.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not 1 <= arguments.processes <= 1024:
        parser.error("--processes must be between 1 and 1024")
    worker = _make_worker(parser, arguments)  # checks every option, also for a supervisor
    if arguments.processes > 1:
        del worker
        supervisor = Supervisor(child_command(words), arguments.processes, arguments.grace_period)
        return supervisor.run()
    sockets = _metrics_sockets(parser, arguments)
    status = 0
    try:
        asyncio.run(_serve(worker, sockets, arguments.burst))
    except BeanstalkConnectionError as exc:
        logger.error("%s", exc)
        status = EXIT_CANNOT_CONNECT
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

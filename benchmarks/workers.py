"""Throughput of :class:`beanstalkt.Worker` next to greenstalk's synchronous loop, in one run.

Run ``python benchmarks/workers.py`` (``--help`` for options; ``--quick`` for a
smoke run). Rows:

* ``greenstalk``: the six-line synchronous loop ``job = c.reserve();
  c.delete(job)``, the peer every other row is compared with;
* ``worker-noop-cN``: a :class:`~beanstalkt.Worker` with ``concurrency=N`` and
  a no-op ``async`` handler (N = 1, 8, 50, 200): the worker's own cost per job;
* ``worker-sleep10ms-cN``: the same with a handler that does ``await
  asyncio.sleep(0.01)`` (N = 50, 200), an I/O-bound job. Its *ideal* is
  ``N / 0.01`` jobs/s; the row also shows the share of that ideal reached;
* ``asyncio-sleep10ms-cN``: N asyncio tasks doing nothing but ``await
  asyncio.sleep(0.01)`` in a loop, no server, no worker: what the event loop
  itself reaches of that ideal on this machine (timers wake late), the real
  ceiling of the row above.

Every measurement gets a fresh beanstalkd (no binlog) on a loopback port,
filled with the jobs beforehand (untimed); the time runs from the worker's
``start()`` (greenstalk: the connection) until the server has deleted the last
job. Repetitions are interleaved (rep 1 of every row, then rep 2, ...) so that
drift on a noisy machine hits every row alike, and each row reports the median
jobs/s. ``server cpu`` is the beanstalkd process's CPU time (utime + stime
from ``/proc/<pid>/stat``) during the measurement divided by its wall time: a
share near 100% means the server, not the client, was the limit. ``client
cpu`` is the same for this process.

The lead benchmark (``benchmarks/throughput.py``) imports :func:`worker_rows`
and :func:`format_table` from here.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import socket
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

# Runnable from a checkout without installing the package.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import beanstalkt  # noqa: E402
from beanstalkt.testing import BeanstalkdServer  # noqa: E402

try:
    import greenstalk
except ImportError:  # pragma: no cover - the peer row is then left out, not faked
    greenstalk = None  # type: ignore[assignment]

HOST = "127.0.0.1"
TUBE = "bench"
PRIORITY = 2**31
TTR = 120
#: Seconds the I/O-bound handler sleeps.
SLEEP = 0.01
#: No measurement may take longer than this (a hang guard, not a timing assert).
HANG = 300.0

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

Address = tuple[str, int]


@dataclass
class Measurement:
    """One timed run: jobs/s, and the CPU shares of the server and of this process."""

    jobs_per_s: float
    server_cpu: float
    client_cpu: float


@dataclass
class Row:
    """One benchmark row and its measurements."""

    name: str
    kind: str  # "greenstalk", "noop", "sleep" or "sleep-reference"
    concurrency: int
    runs: list[Measurement] = field(default_factory=list)

    @property
    def ideal(self) -> Optional[float]:
        """Jobs/s of a worker with no overhead at all (I/O-bound rows only)."""
        return self.concurrency / SLEEP if self.kind.startswith("sleep") else None


def default_rows() -> list[Row]:
    """The rows of a full run, in display order."""
    rows = [Row("greenstalk", "greenstalk", 1)] if greenstalk is not None else []
    rows += [Row(f"worker-noop-c{n}", "noop", n) for n in (1, 8, 50, 200)]
    for n in (50, 200):
        rows.append(Row(f"worker-sleep10ms-c{n}", "sleep", n))
        rows.append(Row(f"asyncio-sleep10ms-c{n}", "sleep-reference", n))
    return rows


# --------------------------------------------------------------------------
# Setup and measurement helpers.


def _cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid``, in seconds (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        text = stat.read()
    # The command name (field 2) may contain spaces: split after its ")".
    fields = text[text.rindex(b")") + 2 :].split()
    # Fields 14 and 15 (utime, stime) are at 11 and 12 once pid and comm are gone.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _prefill(address: Address, n: int, body: bytes) -> None:
    """Put ``n`` jobs into the tube in a few large writes (untimed setup)."""
    command = b"put %d 0 %d %d\r\n%b\r\n" % (PRIORITY, TTR, len(body), body)
    with socket.create_connection(address) as sock:
        sock.sendall(b"use %b\r\n" % TUBE.encode())
        _expect_lines(sock, 1)
        batch = 1000
        for first in range(0, n, batch):
            count = min(batch, n - first)
            sock.sendall(command * count)
            _expect_lines(sock, count)


def _expect_lines(sock: socket.socket, count: int) -> None:
    seen = 0
    while seen < count:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("beanstalkd closed the connection")
        seen += chunk.count(b"\n")


def _deleted(address: Address) -> int:
    """The server's ``cmd-delete`` count (for the synchronous rows' check)."""
    with socket.create_connection(address) as sock:
        sock.sendall(b"stats\r\n")
        data = b""
        while b"\ncmd-delete:" not in data or not data.endswith(b"\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("beanstalkd closed the connection")
            data += chunk
    line = data.split(b"\ncmd-delete:", 1)[1].split(b"\n", 1)[0]
    return int(line.strip())


# --------------------------------------------------------------------------
# The contenders.


def greenstalk_loop(address: Address, n: int) -> float:
    """greenstalk's ``reserve(); delete()`` loop over ``n`` jobs; returns seconds."""
    start = time.perf_counter()
    with greenstalk.Client(address, encoding=None, watch=TUBE) as client:
        for _ in range(n):
            job = client.reserve()
            client.delete(job)
    return time.perf_counter() - start


def worker_run(
    address: Address, n: int, concurrency: int, sleep: float, profile: Optional[str] = None
) -> float:
    """A Worker over ``n`` jobs (handler: no-op, or ``sleep`` seconds); returns seconds."""

    if sleep:

        async def handle(job: beanstalkt.ReservedJob) -> None:
            await asyncio.sleep(sleep)

    else:

        async def handle(job: beanstalkt.ReservedJob) -> None:
            return None

    async def run() -> float:
        worker = beanstalkt.Worker(
            {TUBE: handle}, host=address[0], port=address[1], concurrency=concurrency
        )
        counters = worker._counters  # the live object: no dict built per poll
        start = time.perf_counter()
        await worker.start()
        deadline = start + HANG
        while True:
            tube = counters.get(TUBE)
            if tube is not None and tube.done >= n:
                break
            if time.perf_counter() > deadline:
                raise TimeoutError(f"worker did only {tube and tube.done} of {n} jobs")
            await asyncio.sleep(0.002)
        elapsed = time.perf_counter() - start
        await worker.stop()
        return elapsed

    if profile is None:
        return asyncio.run(run())
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        return asyncio.run(run())
    finally:
        profiler.disable()
        profiler.dump_stats(profile)


def sleep_loops(n: int, concurrency: int) -> float:
    """``concurrency`` tasks sleeping ``SLEEP`` s in a loop until ``n`` sleeps are done."""

    async def run() -> float:
        done = 0

        async def loop() -> None:
            nonlocal done
            while done < n:
                await asyncio.sleep(SLEEP)
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*[loop() for _ in range(concurrency)])
        return time.perf_counter() - start

    return asyncio.run(run())


def measure(row: Row, n: int, body: bytes, profile: Optional[str] = None) -> Measurement:
    """Run ``row`` once on a fresh, prefilled server."""
    if row.kind == "sleep-reference":
        client_before = time.process_time()
        seconds = sleep_loops(n, row.concurrency)
        return Measurement(n / seconds, 0.0, (time.process_time() - client_before) / seconds)
    with BeanstalkdServer(host=HOST) as server:
        address = (server.host, server.port)
        assert server.process is not None
        pid = server.process.pid
        _prefill(address, n, body)
        server_before = _cpu_seconds(pid)
        client_before = time.process_time()
        wall_before = time.perf_counter()
        if row.kind == "greenstalk":
            seconds = greenstalk_loop(address, n)
        else:
            seconds = worker_run(
                address, n, row.concurrency, SLEEP if row.kind == "sleep" else 0.0, profile
            )
        wall = time.perf_counter() - wall_before
        server_cpu = (_cpu_seconds(pid) - server_before) / wall
        client_cpu = (time.process_time() - client_before) / wall
        deleted = _deleted(address)
        if deleted != n:
            raise AssertionError(f"{row.name}: the server deleted {deleted} jobs, not {n}")
    return Measurement(n / seconds, server_cpu, client_cpu)


# --------------------------------------------------------------------------
# Running and reporting.


def jobs_for(row: Row, jobs: int) -> int:
    """Jobs for one measurement of ``row``: sleep rows are capped to about 2 s of ideal work."""
    if row.kind.startswith("sleep"):
        return max(row.concurrency, min(jobs, int(row.concurrency / SLEEP * 2)))
    return jobs


def worker_rows(
    jobs: int = 20_000,
    repeat: int = 5,
    body_size: int = 100,
    rows: Optional[list[Row]] = None,
    progress: Optional[Callable[[str], None]] = None,
) -> list[dict[str, Any]]:
    """Measure the rows (interleaved repetitions) and return one result per row.

    Each result: ``name``, ``concurrency``, ``jobs`` (per measurement),
    ``jobs_per_s`` (median), ``runs`` (every jobs/s), ``server_cpu`` and
    ``client_cpu`` (medians, fractions of one core; ``server_cpu`` is ``None``
    for the rows without a server), ``vs_greenstalk`` (ratio
    of medians, ``None`` without greenstalk), ``ideal`` and ``vs_ideal``
    (I/O-bound rows only).
    """
    rows = default_rows() if rows is None else rows
    body = b"x" * body_size
    for rep in range(repeat):
        for row in rows:
            measurement = measure(row, jobs_for(row, jobs), body)
            row.runs.append(measurement)
            if progress is not None:
                progress(
                    f"rep {rep + 1}/{repeat} {row.name}: {measurement.jobs_per_s:,.0f} jobs/s, "
                    f"server cpu {measurement.server_cpu:.0%}"
                )
    peer = next((r for r in rows if r.kind == "greenstalk"), None)
    peer_median = statistics.median(m.jobs_per_s for m in peer.runs) if peer else None
    results = []
    for row in rows:
        median = statistics.median(m.jobs_per_s for m in row.runs)
        ideal = row.ideal
        results.append(
            {
                "name": row.name,
                "concurrency": row.concurrency,
                "jobs": jobs_for(row, jobs),
                "jobs_per_s": median,
                "runs": [m.jobs_per_s for m in row.runs],
                "server_cpu": None
                if row.kind == "sleep-reference"
                else statistics.median(m.server_cpu for m in row.runs),
                "client_cpu": statistics.median(m.client_cpu for m in row.runs),
                "vs_greenstalk": median / peer_median if peer_median else None,
                "ideal": ideal,
                "vs_ideal": median / ideal if ideal else None,
            }
        )
    return results


def _ratio(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _share(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.0%}"


def format_table(results: list[dict[str, Any]]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| row | jobs | jobs/s | vs greenstalk | vs ideal | server cpu | client cpu |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        lines.append(
            f"| {result['name']} | {result['jobs']:,} | {result['jobs_per_s']:,.0f} "
            f"| {_ratio(result['vs_greenstalk'])} | {_ratio(result['vs_ideal'])} "
            f"| {_share(result['server_cpu'])} | {_share(result['client_cpu'])} |"
        )
    return "\n".join(lines)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--jobs", type=int, default=20_000, help="jobs per measurement (default: 20000)"
    )
    parser.add_argument("--repeat", type=int, default=5, help="repetitions (default: 5)")
    parser.add_argument("--body-size", type=int, default=100, help="body bytes (default: 100)")
    parser.add_argument(
        "--rows", default=None, help="comma-separated row names to run (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run (200 jobs, 1 rep)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--profile",
        metavar="ROW",
        default=None,
        help="run ROW once under cProfile and print the top functions instead",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every measurement")
    options = parser.parse_args(argv)
    if options.quick:
        options.jobs = 200
        options.repeat = 1
    if options.jobs < 1 or options.repeat < 1:
        parser.error("--jobs and --repeat must be at least 1")
    return options


def main(argv: Optional[Sequence[str]] = None) -> list[dict[str, Any]]:
    """Run the benchmark as the command line says; print and return the results."""
    options = parse_args(argv)
    rows = default_rows()
    if options.rows:
        wanted = options.rows.split(",")
        unknown = set(wanted) - {row.name for row in rows}
        if unknown:
            raise SystemExit(f"unknown rows: {', '.join(sorted(unknown))}")
        rows = [row for row in rows if row.name in wanted]
    if options.profile:
        named = [r for r in default_rows() if r.name == options.profile]
        row = named[0] if named else None
        if row is None or not row.name.startswith("worker-"):
            raise SystemExit(f"--profile needs a worker row, not {options.profile!r}")
        path = "/tmp/beanstalkt-worker.prof"
        result = measure(row, jobs_for(row, options.jobs), b"x" * options.body_size, path)
        print(f"{row.name}: {result.jobs_per_s:,.0f} jobs/s under the profiler")
        pstats.Stats(path).sort_stats("tottime").print_stats(25)
        return []

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    results = worker_rows(
        options.jobs,
        options.repeat,
        options.body_size,
        rows,
        progress if options.verbose else None,
    )
    if options.json:
        print(json.dumps(results, indent=2))
    else:
        print(
            f"Worker throughput, {options.body_size}-byte bodies, medians of {options.repeat} "
            f"repetition(s); beanstalkd {_server_version()}, Python {sys.version.split()[0]}, "
            f"{os.cpu_count()} CPUs\n"
        )
        print(format_table(results))
    return results


def _server_version() -> str:
    try:
        with (
            BeanstalkdServer(host=HOST) as server,
            socket.create_connection((server.host, server.port)) as sock,
        ):
            sock.sendall(b"stats\r\n")
            data = b""
            while b"\nversion:" not in data or not data.endswith(b"\r\n"):
                data += sock.recv(65536)
        return data.split(b"\nversion:", 1)[1].split(b"\n", 1)[0].strip().strip(b'"').decode()
    except Exception:  # pragma: no cover - only decoration
        return "?"


if __name__ == "__main__":
    main()

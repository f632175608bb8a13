"""beanstalkt against the asyncio floor: each of our rows beside the least a futures client can do.

Run ``python benchmarks/floor.py`` (``--help`` for options; ``--quick`` for a
smoke run). Each *pair* runs the same work twice, on a fresh beanstalkd each
time (no binlog; tubes prefilled, untimed), the two sides alternating within
every repetition so that drift on a busy machine hits both alike:

* ``put-pipelined``: ``gather`` of N ``Client.put`` / the same on
  :mod:`minimal_client`;
* ``put-sequential``: ``await client.put()`` N times / a bare Tornado IOStream
  lock-step loop (one pre-built put written, its reply read, repeat);
* ``worker-noop-c1``: a ``Worker`` with a no-op handler at concurrency 1 / the
  hand loop ``reserve-with-timeout 0; delete`` in 1 task;
* ``worker-noop-c50``: the same at concurrency 50 / the loop in 50 tasks on one
  connection;
* ``worker-sleep10ms-c200``: a handler doing ``await asyncio.sleep(0.01)`` at
  concurrency 200 / the loop with that sleep in 200 tasks.

The figure of a pair is the **median of the per-repetition ratios**
(ours / floor), not a ratio of medians. Ratios to the floor move far less from
one machine to the next than jobs/s or ratios to a lock-step peer do: both
sides are Python on the same event loop and the same server. ``server cpu`` is
beanstalkd's CPU share during our side's run: near 100% means the server, not
the client, was the limit. ``--loop uvloop`` runs both sides on uvloop (when it
is installed).

The minimal client (:mod:`minimal_client`) is benchmark code, not part of the
library: no validation, reconnects, timeouts or cancellation rules.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
for path in (_ROOT, _HERE):
    if path not in sys.path:
        sys.path.insert(0, path)

from minimal_client import MinimalClient  # noqa: E402

import beanstalkt  # noqa: E402
from beanstalkt.testing import BeanstalkdServer  # noqa: E402

HOST = "127.0.0.1"
TUBE = "floor"
PRIORITY = 2**31
TTR = 120
SLEEP = 0.01
#: Bound against hangs only.
HANG = 300.0

Address = tuple[str, int]
#: One side of a pair: (address, jobs, body) -> seconds taken.
Side = Callable[[Address, int, bytes], float]


# --------------------------------------------------------------------------
# Set-up and checks, by raw socket (untimed).


def _lines(sock: socket.socket, count: int) -> None:
    seen = 0
    while seen < count:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("beanstalkd closed the connection")
        seen += chunk.count(b"\n")


def prefill(address: Address, n: int, body: bytes) -> None:
    """Put ``n`` jobs into the benchmark's tube in a few large writes."""
    command = b"put %d 0 %d %d\r\n%b\r\n" % (PRIORITY, TTR, len(body), body)
    with socket.create_connection(address) as sock:
        sock.sendall(b"use %b\r\n" % TUBE.encode())
        _lines(sock, 1)
        for first in range(0, n, 1000):
            count = min(1000, n - first)
            sock.sendall(command * count)
            _lines(sock, count)


def server_counter(address: Address, name: str) -> int:
    """One counter of the server's ``stats`` (``cmd-put``, ``cmd-delete``...)."""
    with socket.create_connection(address) as sock:
        sock.sendall(b"stats\r\n")
        data = b""
        key = b"\n" + name.encode() + b":"
        while key not in data or not data.endswith(b"\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("beanstalkd closed the connection")
            data += chunk
    return int(data.split(key, 1)[1].split(b"\n", 1)[0])


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------
# The sides.

_LOOP = "asyncio"


def _run(make: Callable[[], Coroutine[Any, Any, float]]) -> float:
    if _LOOP == "uvloop":
        import uvloop  # type: ignore[import-not-found,unused-ignore]

        result: float = uvloop.run(make())
        return result
    return asyncio.run(make())


def bt_put_pipelined(address: Address, n: int, body: bytes) -> float:
    """``asyncio.gather`` of ``n`` ``Client.put``."""

    async def run() -> float:
        async with beanstalkt.Client(address[0], address[1], use=TUBE) as client:
            start = time.perf_counter()
            await asyncio.gather(*[client.put(body) for _ in range(n)])
            return time.perf_counter() - start

    return _run(run)


def floor_put_pipelined(address: Address, n: int, body: bytes) -> float:
    """The same on the minimal client."""

    async def run() -> float:
        client = await MinimalClient.connect(*address)
        try:
            await client.use(TUBE)
            start = time.perf_counter()
            await asyncio.gather(*[client.put(body) for _ in range(n)])
            return time.perf_counter() - start
        finally:
            client.close()

    return _run(run)


def bt_put_sequential(address: Address, n: int, body: bytes) -> float:
    """``await client.put(body)``, one at a time."""

    async def run() -> float:
        async with beanstalkt.Client(address[0], address[1], use=TUBE) as client:
            start = time.perf_counter()
            for _ in range(n):
                await client.put(body)
            return time.perf_counter() - start

    return _run(run)


def tornado_put_lockstep(address: Address, n: int, body: bytes) -> float:
    """One pre-built put written to a Tornado IOStream, its reply read, repeat."""
    from tornado.tcpclient import TCPClient

    async def reply(stream: Any, buffer: bytearray) -> None:
        data = b""
        while not data.endswith(b"\r\n"):
            data += buffer[: await stream.read_into(buffer, partial=True)]

    async def run() -> float:
        stream = await TCPClient().connect(*address)
        stream.set_nodelay(True)
        try:
            buffer = bytearray(4096)
            stream.write(b"use %b\r\n" % TUBE.encode())
            await reply(stream, buffer)
            command = b"put %d 0 %d %d\r\n%b\r\n" % (PRIORITY, TTR, len(body), body)
            start = time.perf_counter()
            for _ in range(n):
                stream.write(command)
                await reply(stream, buffer)
            return time.perf_counter() - start
        finally:
            stream.close()

    return _run(run)


def bt_worker(concurrency: int, sleep: float) -> Side:
    """A :class:`beanstalkt.Worker` over the prefilled jobs; seconds until all are done."""

    def side(address: Address, n: int, body: bytes) -> float:
        async def run() -> float:
            handled = 0
            finished = asyncio.Event()

            async def handle(job: beanstalkt.ReservedJob) -> None:
                nonlocal handled
                if sleep:
                    await asyncio.sleep(sleep)
                handled += 1
                if handled == n:
                    finished.set()

            worker = beanstalkt.Worker(
                {TUBE: handle}, host=address[0], port=address[1], concurrency=concurrency
            )
            start = time.perf_counter()
            await worker.start()
            await asyncio.wait_for(finished.wait(), HANG)
            # The last deletes are on the wire: wait for the server to have them all.
            while server_counter(address, "cmd-delete") < n:
                await asyncio.sleep(0.001)
            elapsed = time.perf_counter() - start
            await worker.stop()
            return elapsed

        return _run(run)

    return side


def floor_worker(tasks: int, sleep: float) -> Side:
    """``reserve-with-timeout 0; [sleep]; delete`` in ``tasks`` tasks on one minimal client."""

    def side(address: Address, n: int, body: bytes) -> float:
        async def run() -> float:
            client = await MinimalClient.connect(*address)
            await client.watch(TUBE)

            async def loop() -> None:
                while True:
                    job = await client.reserve(0)
                    if job is None:
                        return
                    if sleep:
                        await asyncio.sleep(sleep)
                    await client.delete(job[0])

            try:
                start = time.perf_counter()
                await asyncio.wait_for(asyncio.gather(*[loop() for _ in range(tasks)]), HANG)
                return time.perf_counter() - start
            finally:
                client.close()

        return _run(run)

    return side


# --------------------------------------------------------------------------
# Pairs, runs and the table.


@dataclass
class Pair:
    """Our row beside its floor, with the per-repetition results."""

    name: str
    ours: Side
    floor: Side
    #: ``put`` rows start from an empty server; the others from ``n`` ready jobs.
    prefilled: bool
    #: The lock-step and sleeping rows run fewer jobs (their time is round trips or sleeps).
    jobs_scale: float = 1.0
    ratios: list[float] = field(default_factory=list)
    ours_rates: list[float] = field(default_factory=list)
    floor_rates: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)


def pairs() -> list[Pair]:
    """Every pair, in display order."""
    return [
        Pair("put-pipelined", bt_put_pipelined, floor_put_pipelined, prefilled=False),
        Pair("put-sequential", bt_put_sequential, tornado_put_lockstep, False, jobs_scale=0.25),
        Pair("worker-noop-c1", bt_worker(1, 0.0), floor_worker(1, 0.0), True, jobs_scale=0.5),
        Pair("worker-noop-c50", bt_worker(50, 0.0), floor_worker(50, 0.0), True),
        Pair(
            "worker-sleep10ms-c200",
            bt_worker(200, SLEEP),
            floor_worker(200, SLEEP),
            True,
            jobs_scale=0.5,
        ),
    ]


def measure(side: Side, n: int, body: bytes, prefilled: bool) -> tuple[float, float]:
    """Run one side on a fresh server: (jobs/s, the server's CPU share)."""
    with BeanstalkdServer(host=HOST) as server:
        address = (server.host, server.port)
        assert server.process is not None
        if prefilled:
            prefill(address, n, body)
        before = _cpu_seconds(server.process.pid)
        wall_before = time.perf_counter()
        seconds = side(address, n, body)
        wall = time.perf_counter() - wall_before
        server_cpu = (_cpu_seconds(server.process.pid) - before) / wall
        counter = "cmd-delete" if prefilled else "cmd-put"
        done = server_counter(address, counter)
        if done < n:
            raise AssertionError(f"the server counted {done} {counter}, not {n}")
    return n / seconds, server_cpu


def run(selected: list[Pair], jobs: int, repetitions: int, body: bytes) -> None:
    """Measure every pair ``repetitions`` times, alternating which side goes first."""
    for repetition in range(repetitions):
        for pair in selected:
            n = max(200, int(jobs * pair.jobs_scale))
            order = [("ours", pair.ours), ("floor", pair.floor)]
            if repetition % 2:
                order.reverse()
            rates: dict[str, float] = {}
            for which, side in order:
                rate, server_cpu = measure(side, n, body, pair.prefilled)
                rates[which] = rate
                if which == "ours":
                    pair.server_cpu.append(server_cpu)
            pair.ours_rates.append(rates["ours"])
            pair.floor_rates.append(rates["floor"])
            pair.ratios.append(rates["ours"] / rates["floor"])


def results(selected: list[Pair]) -> list[dict[str, Any]]:
    """The table as data: medians per pair."""
    return [
        {
            "pair": pair.name,
            "beanstalkt_jobs_per_s": statistics.median(pair.ours_rates),
            "floor_jobs_per_s": statistics.median(pair.floor_rates),
            "ratio": statistics.median(pair.ratios),
            "ratios": pair.ratios,
            "server_cpu": statistics.median(pair.server_cpu),
        }
        for pair in selected
    ]


def format_table(table: list[dict[str, Any]]) -> str:
    """The table as text."""
    lines = [
        f"{'pair':<24}{'beanstalkt/s':>14}{'floor/s':>12}{'ratio':>8}{'server cpu':>12}",
    ]
    for row in table:
        lines.append(
            f"{row['pair']:<24}{row['beanstalkt_jobs_per_s']:>14,.0f}"
            f"{row['floor_jobs_per_s']:>12,.0f}{row['ratio']:>7.2f}x"
            f"{row['server_cpu']:>11.0%}"
        )
    return "\n".join(lines)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The benchmark's options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=20000, help="jobs per measurement")
    parser.add_argument("--repetitions", type=int, default=7, help="repetitions (>= 5)")
    parser.add_argument("--size", type=int, default=100, help="body bytes (default 100)")
    parser.add_argument("--only", default="", help="pairs whose name contains this")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few jobs, 1 rep")
    parser.add_argument("--json", action="store_true", help="print the table as JSON")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> list[dict[str, Any]]:
    """Run the selected pairs and print the table."""
    global _LOOP
    options = parse_args(argv)
    _LOOP = options.loop
    jobs, repetitions = (400, 1) if options.quick else (options.jobs, options.repetitions)
    selected = [pair for pair in pairs() if options.only in pair.name]
    run(selected, jobs, repetitions, b"x" * options.size)
    table = results(selected)
    if options.json:
        print(json.dumps({"loop": options.loop, "jobs": jobs, "rows": table}))
    else:
        print(f"loop: {options.loop}; {jobs} jobs, {repetitions} repetitions, median ratios")
        print(format_table(table))
    return table


if __name__ == "__main__":
    main()

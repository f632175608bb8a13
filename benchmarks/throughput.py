"""Throughput of beanstalkt next to a raw-socket ceiling and greenstalk, in one run.

Run ``python benchmarks/throughput.py`` (``--help`` for options). Every
measurement gets a fresh beanstalkd (no binlog) on a loopback port, so queues
never grow from one measurement to the next, and the repetitions are
interleaved (rep 1 of everything, then rep 2, ...) so that drift on a noisy
machine hits every client alike. Each row reports the median jobs/s over the
repetitions and that median as a ratio to:

* the **ceiling** of its group: a raw-socket client that writes all commands
  pre-built in one go and only counts the replies (no Python-level parsing
  beyond what the protocol needs, e.g. the job ids to delete);
* **greenstalk** (the synchronous peer client), lock-step, in the same run.

The raw "ceiling" is a reference, not a bound: a client that reads its
replies in large batches can make the server's own work cheaper than a raw
client reading eagerly does, and so beat it.

``tornado-lockstep`` (put group) is the floor under any lock-step client
built on Tornado's IOStream: one pre-built put written, its reply awaited
with ``read_into``, repeat, in one coroutine, with no parsing and no futures
of its own. ``beanstalkt-sequential`` can only approach it.

Groups: ``put`` (jobs put), ``reserve+delete`` (jobs reserved with
``reserve-with-timeout 0`` and deleted; the tube is filled beforehand, untimed)
and ``mixed`` (a producer and a worker connection at once; a job counts when it
has been put, reserved and deleted).

A separate child process measures peak memory with 100,000 100-byte puts in
flight on one beanstalkt client: its resident set's high-water mark above the
baseline (``VmHWM``, reset at the baseline where the kernel allows it) and the
tracemalloc peak. Not ``ru_maxrss``: a child started with vfork inherits its
parent's peak in that figure, so the benchmark's own memory would be reported.

Lock-step rows are bound by how fast a round trip is, which on a small
machine depends on where the scheduler puts the client and the server:
``--pin same`` runs both on one CPU, ``--pin split`` on two. The default
leaves placement to the operating system.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import select
import socket
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
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
except ImportError:  # pragma: no cover - the rows are then skipped, not faked
    greenstalk = None  # type: ignore[assignment]

HOST = "127.0.0.1"
PRIORITY = 2**31
TTR = 120
RECV_SIZE = 256 * 1024

#: Jobs a pipelined worker holds reserved at once. beanstalkd's cost per command
#: grows with the number of jobs one connection has reserved (it rescans them
#: for the soonest deadline), so reserving 20,000 at once measures the server,
#: not the client. Every pipelined reserve row, raw or not, works in windows.
WINDOW = 1000

#: Groups and, for each, the row every other row of the group is compared with.
GROUPS = ("put", "reserve+delete", "mixed")
CEILING = {"put": "raw-pipelined", "reserve+delete": "raw-pipelined", "mixed": "raw-pipelined"}
PEER = {"put": "greenstalk", "reserve+delete": "greenstalk", "mixed": "greenstalk"}

Address = tuple[str, int]
Measure = Callable[[Address, str, int, bytes], float]

#: CPUs for --pin: (the benchmark's, the server's); None leaves placement alone.
_PLACEMENT: Optional[tuple[int, int]] = None


def pin(mode: str) -> None:
    """Pin this process (and the threads and children it starts) for ``--pin``."""
    global _PLACEMENT
    if mode == "none":
        return
    cpus = sorted(os.sched_getaffinity(0))
    if mode == "split" and len(cpus) < 2:
        raise SystemExit("--pin split needs two CPUs")
    _PLACEMENT = (cpus[0], cpus[0] if mode == "same" else cpus[1])
    os.sched_setaffinity(0, {cpus[0]})


# The server of the measurement under way, and its CPU seconds at _start_clock().
_SERVER_PID: Optional[int] = None
_SERVER_CPU_AT_START = 0.0
#: The server's CPU share (busy seconds / wall seconds) in the last timed window.
LAST_SERVER_CPU: Optional[float] = None


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_clock() -> float:
    """Start the timed window: wall clock, and the server's CPU time."""
    global _SERVER_CPU_AT_START
    if _SERVER_PID is not None:
        _SERVER_CPU_AT_START = server_cpu_seconds(_SERVER_PID)
    return time.perf_counter()


def _stop_clock(start: float) -> float:
    """End the timed window: its seconds; the server's share of a CPU in it goes to
    :data:`LAST_SERVER_CPU` (1.0: beanstalkd was busy all along, the limit was the server)."""
    global LAST_SERVER_CPU
    elapsed = time.perf_counter() - start
    if _SERVER_PID is not None:
        LAST_SERVER_CPU = (server_cpu_seconds(_SERVER_PID) - _SERVER_CPU_AT_START) / elapsed
    return elapsed


def _server() -> BeanstalkdServer:
    """A fresh server (no binlog), pinned as ``--pin`` says; use it with ``with``."""
    server = BeanstalkdServer(host=HOST).start()
    if _PLACEMENT is not None and server.process is not None:
        try:
            os.sched_setaffinity(server.process.pid, {_PLACEMENT[1]})
        except BaseException:
            server.stop()
            raise
    return server


# --------------------------------------------------------------------------
# Raw sockets: the ceiling and the round-trip floor.


def _raw_socket(address: Address) -> socket.socket:
    sock = socket.create_connection(address)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _raw_command(sock: socket.socket, line: bytes) -> bytes:
    """Send one command line and return its one-line reply (setup only)."""
    sock.sendall(line)
    reply = b""
    while not reply.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("beanstalkd closed the connection")
        reply += chunk
    return reply


def _read_lines(sock: socket.socket, count: int) -> bytes:
    """Read until ``count`` LF bytes arrived (bodies here never contain one)."""
    chunks = []
    seen = 0
    while seen < count:
        chunk = sock.recv(RECV_SIZE)
        if not chunk:
            raise ConnectionError("beanstalkd closed the connection")
        seen += chunk.count(b"\n")
        chunks.append(chunk)
    return b"".join(chunks)


def _pump(sock: socket.socket, data: bytes, count: int) -> bytes:
    """Write ``data`` while reading until ``count`` LF bytes came back, in one thread.

    Writing everything before reading could deadlock once both socket buffers
    are full, so the socket is non-blocking and select() says which way to go.
    """
    sock.setblocking(False)
    view = memoryview(data)
    sent = 0
    chunks = []
    seen = 0
    try:
        while seen < count:
            want_write = [sock] if sent < len(data) else []
            readable, writable, _ = select.select([sock], want_write, [], 30)
            if not readable and not writable:
                raise TimeoutError("beanstalkd stopped answering")
            if writable:
                sent += sock.send(view[sent : sent + RECV_SIZE * 4])
            if readable:
                chunk = sock.recv(RECV_SIZE)
                if not chunk:
                    raise ConnectionError("beanstalkd closed the connection")
                seen += chunk.count(b"\n")
                chunks.append(chunk)
    finally:
        sock.setblocking(True)
    return b"".join(chunks)


def _windows(n: int) -> list[int]:
    """``n`` split into window sizes."""
    return [min(WINDOW, n - start) for start in range(0, n, WINDOW)]


def _put_command(body: bytes) -> bytes:
    return b"put %d 0 %d %d\r\n%b\r\n" % (PRIORITY, TTR, len(body), body)


def _prefill(address: Address, tube: str, n: int, body: bytes) -> None:
    """Put ``n`` jobs into ``tube`` (untimed setup for the reserve measurements)."""
    with _raw_socket(address) as sock:
        _raw_command(sock, b"use %b\r\n" % tube.encode())
        _pump(sock, _put_command(body) * n, n)


def _raw_watch(sock: socket.socket, tube: str) -> None:
    _raw_command(sock, b"watch %b\r\n" % tube.encode())
    _raw_command(sock, b"ignore default\r\n")


_RESERVED_ID = re.compile(rb"RESERVED (\d+) ")


def raw_put_pipelined(address: Address, tube: str, n: int, body: bytes) -> float:
    """All ``n`` put commands, pre-built, written in one go; then count the replies."""
    with _raw_socket(address) as sock:
        _raw_command(sock, b"use %b\r\n" % tube.encode())
        data = _put_command(body) * n
        start = _start_clock()
        replies = _pump(sock, data, n)
        elapsed = _stop_clock(start)
    if replies.count(b"INSERTED") != n:
        raise RuntimeError("raw put: not every reply is INSERTED")
    return elapsed


def raw_put_lockstep(address: Address, tube: str, n: int, body: bytes) -> float:
    """One put, wait for its reply, repeat: the round-trip floor."""
    with _raw_socket(address) as sock:
        _raw_command(sock, b"use %b\r\n" % tube.encode())
        command = _put_command(body)
        start = _start_clock()
        for _ in range(n):
            sock.sendall(command)
            reply = sock.recv(4096)
            while not reply.endswith(b"\r\n"):
                reply += sock.recv(4096)
        return _stop_clock(start)


def _raw_reserve_delete_pipelined(sock: socket.socket, n: int, reserve: bytes) -> None:
    for count in _windows(n):
        # A window's reserve lines fit in the socket buffers: no writer thread needed.
        sock.sendall(reserve * count)
        replies = _read_lines(sock, 2 * count)  # RESERVED line + body line each
        ids = _RESERVED_ID.findall(replies)
        if len(ids) != count:
            raise RuntimeError(f"raw reserve: {len(ids)} jobs reserved, {count} expected")
        sock.sendall(b"".join([b"delete %b\r\n" % job_id for job_id in ids]))
        replies = _read_lines(sock, count)
        if replies.count(b"DELETED") != count:
            raise RuntimeError("raw delete: not every reply is DELETED")


def raw_reserve_delete_pipelined(address: Address, tube: str, n: int, body: bytes) -> float:
    """Per window: all reserve-with-timeout 0 in one write, then all the deletes in one."""
    _prefill(address, tube, n, body)
    with _raw_socket(address) as sock:
        _raw_watch(sock, tube)
        start = _start_clock()
        _raw_reserve_delete_pipelined(sock, n, b"reserve-with-timeout 0\r\n")
        return _stop_clock(start)


def _read_reserved(sock: socket.socket) -> bytes:
    """Read one RESERVED reply with its body; return the job id."""
    data = sock.recv(RECV_SIZE)
    while b"\r\n" not in data:
        data += sock.recv(RECV_SIZE)
    line, _, rest = data.partition(b"\r\n")
    words = line.split()
    if words[0] != b"RESERVED":
        raise RuntimeError(f"raw reserve: {line!r}")
    missing = int(words[2]) + 2 - len(rest)
    while missing > 0:
        chunk = sock.recv(RECV_SIZE)
        missing -= len(chunk)
    return words[1]


def raw_reserve_delete_lockstep(address: Address, tube: str, n: int, body: bytes) -> float:
    """reserve-with-timeout 0, wait, delete, wait: the round-trip floor."""
    _prefill(address, tube, n, body)
    with _raw_socket(address) as sock:
        _raw_watch(sock, tube)
        start = _start_clock()
        for _ in range(n):
            sock.sendall(b"reserve-with-timeout 0\r\n")
            job_id = _read_reserved(sock)
            sock.sendall(b"delete %b\r\n" % job_id)
            reply = sock.recv(4096)
            while not reply.endswith(b"\r\n"):
                reply += sock.recv(4096)
        return _stop_clock(start)


def raw_mixed_pipelined(address: Address, tube: str, n: int, body: bytes) -> float:
    """A raw producer (all puts in one write) and a raw worker (per window: the
    blocking reserves in one write, then the deletes) at the same time."""
    with _raw_socket(address) as producer, _raw_socket(address) as worker:
        _raw_command(producer, b"use %b\r\n" % tube.encode())
        _raw_watch(worker, tube)
        puts = _put_command(body) * n

        def produce() -> None:
            _pump(producer, puts, n)

        start = _start_clock()
        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        _raw_reserve_delete_pipelined(worker, n, b"reserve\r\n")
        thread.join()
        return _stop_clock(start)


# --------------------------------------------------------------------------
# greenstalk: the synchronous peer, lock-step by nature.


def greenstalk_put(address: Address, tube: str, n: int, body: bytes) -> float:
    """greenstalk ``put`` in a loop."""
    with greenstalk.Client(address, encoding=None, use=tube) as client:
        start = _start_clock()
        for _ in range(n):
            client.put(body, priority=PRIORITY, ttr=TTR)
        return _stop_clock(start)


def greenstalk_reserve_delete(address: Address, tube: str, n: int, body: bytes) -> float:
    """greenstalk ``reserve(timeout=0)`` + ``delete`` in a loop."""
    _prefill(address, tube, n, body)
    with greenstalk.Client(address, encoding=None, watch=tube) as client:
        start = _start_clock()
        for _ in range(n):
            client.delete(client.reserve(timeout=0))
        return _stop_clock(start)


def greenstalk_mixed(address: Address, tube: str, n: int, body: bytes) -> float:
    """A greenstalk producer thread and a greenstalk worker (reserve + delete) at once."""
    with (
        greenstalk.Client(address, encoding=None, use=tube) as producer,
        greenstalk.Client(address, encoding=None, watch=tube) as worker,
    ):

        def produce() -> None:
            for _ in range(n):
                producer.put(body, priority=PRIORITY, ttr=TTR)

        start = _start_clock()
        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        for _ in range(n):
            worker.delete(worker.reserve(timeout=10))
        thread.join()
        return _stop_clock(start)


# --------------------------------------------------------------------------
# Tornado's IOStream alone: the floor under a lock-step IOStream client.


def tornado_put_lockstep(address: Address, tube: str, n: int, body: bytes) -> float:
    """Write one pre-built put to an IOStream, await its reply with read_into, repeat."""
    from tornado.tcpclient import TCPClient

    async def reply(stream: Any, buffer: bytearray) -> bytes:
        data = b""
        while not data.endswith(b"\r\n"):
            data += buffer[: await stream.read_into(buffer, partial=True)]
        return data

    async def run() -> float:
        stream = await TCPClient().connect(*address)
        stream.set_nodelay(True)
        try:
            buffer = bytearray(4096)
            stream.write(b"use %b\r\n" % tube.encode())
            await reply(stream, buffer)
            command = _put_command(body)
            start = _start_clock()
            for _ in range(n):
                stream.write(command)
                await reply(stream, buffer)
            return _stop_clock(start)
        finally:
            stream.close()

    return _run_async(run)


# --------------------------------------------------------------------------
# beanstalkt.


def _run_async(make: Callable[[], Awaitable[float]]) -> float:
    async def main() -> float:
        return await make()

    return asyncio.run(main())


def _bt_client(address: Address, **kwargs: Any) -> beanstalkt.Client:
    return beanstalkt.Client(address[0], address[1], **kwargs)


def bt_put_sequential(address: Address, tube: str, n: int, body: bytes) -> float:
    """``await client.put(body)`` one at a time."""

    async def run() -> float:
        async with _bt_client(address, use=tube) as client:
            start = _start_clock()
            for _ in range(n):
                await client.put(body)
            return _stop_clock(start)

    return _run_async(run)


def bt_put_pipelined(address: Address, tube: str, n: int, body: bytes) -> float:
    """``asyncio.gather`` of ``n`` puts."""

    async def run() -> float:
        async with _bt_client(address, use=tube) as client:
            start = _start_clock()
            await asyncio.gather(*[client.put(body) for _ in range(n)])
            return _stop_clock(start)

    return _run_async(run)


def bt_put_many(address: Address, tube: str, n: int, body: bytes) -> float:
    """``client.put_many`` of ``n`` bodies (one future for the whole batch)."""

    async def run() -> float:
        async with _bt_client(address, use=tube) as client:
            bodies = [body] * n
            start = _start_clock()
            await client.put_many(bodies)
            return _stop_clock(start)

    return _run_async(run)


def bt_reserve_delete_sequential(address: Address, tube: str, n: int, body: bytes) -> float:
    """``job = await reserve(timeout=0); await delete(job.id)`` one job at a time."""
    _prefill(address, tube, n, body)

    async def run() -> float:
        async with _bt_client(address, watch=tube) as client:
            start = _start_clock()
            for _ in range(n):
                job = await client.reserve(timeout=0)
                await client.delete(job.id)
            return _stop_clock(start)

    return _run_async(run)


def bt_reserve_delete_pipelined(address: Address, tube: str, n: int, body: bytes) -> float:
    """Per window: ``gather`` of reserve(timeout=0), then ``gather`` of their deletes."""
    _prefill(address, tube, n, body)

    async def run() -> float:
        async with _bt_client(address, watch=tube) as client:
            start = _start_clock()
            for count in _windows(n):
                jobs = await asyncio.gather(*[client.reserve(timeout=0) for _ in range(count)])
                await asyncio.gather(*[client.delete(job.id) for job in jobs])
            return _stop_clock(start)

    return _run_async(run)


def bt_mixed_sequential(address: Address, tube: str, n: int, body: bytes) -> float:
    """A producer awaiting each put and a worker awaiting each reserve and delete,
    on two connections in one event loop."""

    async def run() -> float:
        async with (
            _bt_client(address, use=tube) as producer,
            _bt_client(address, watch=tube) as worker,
        ):

            async def produce() -> None:
                for _ in range(n):
                    await producer.put(body)

            async def work() -> None:
                for _ in range(n):
                    job = await worker.reserve()
                    await worker.delete(job.id)

            start = _start_clock()
            await asyncio.gather(produce(), work())
            return _stop_clock(start)

    return _run_async(run)


def bt_mixed_pipelined(address: Address, tube: str, n: int, body: bytes) -> float:
    """A producer gathering ``n`` puts and a worker with a window of reserves in
    flight, deleting each job as it arrives, on two connections in one event loop."""

    async def run() -> float:
        async with (
            _bt_client(address, use=tube) as producer,
            _bt_client(address, watch=tube) as worker,
        ):

            async def work() -> None:
                for count in _windows(n):
                    reserves = [worker.reserve() for _ in range(count)]
                    deletes = []
                    for reserved in reserves:
                        job = await reserved
                        deletes.append(worker.delete(job.id))
                    await asyncio.gather(*deletes)

            start = _start_clock()
            await asyncio.gather(asyncio.gather(*[producer.put(body) for _ in range(n)]), work())
            return _stop_clock(start)

    return _run_async(run)


# --------------------------------------------------------------------------
# The table.


@dataclass
class Benchmark:
    """One row: a client doing one kind of work one way."""

    group: str
    name: str
    measure: Measure
    lockstep: bool  # one round trip per command: run with fewer jobs
    runs: dict[int, list[float]] = field(default_factory=dict)  # body size -> jobs/s
    # body size -> the server's CPU share during each run
    server_cpu: dict[int, list[float]] = field(default_factory=dict)


def benchmarks() -> list[Benchmark]:
    """Every row, in display order (rows needing a missing optional part are left out)."""
    rows = [
        Benchmark("put", "raw-pipelined", raw_put_pipelined, False),
        Benchmark("put", "raw-lockstep", raw_put_lockstep, True),
        Benchmark("put", "tornado-lockstep", tornado_put_lockstep, True),
        Benchmark("put", "greenstalk", greenstalk_put, True),
        Benchmark("put", "beanstalkt-sequential", bt_put_sequential, True),
        Benchmark("put", "beanstalkt-pipelined", bt_put_pipelined, False),
        Benchmark("put", "beanstalkt-put_many", bt_put_many, False),
        Benchmark("reserve+delete", "raw-pipelined", raw_reserve_delete_pipelined, False),
        Benchmark("reserve+delete", "raw-lockstep", raw_reserve_delete_lockstep, True),
        Benchmark("reserve+delete", "greenstalk", greenstalk_reserve_delete, True),
        Benchmark("reserve+delete", "beanstalkt-sequential", bt_reserve_delete_sequential, True),
        Benchmark("reserve+delete", "beanstalkt-pipelined", bt_reserve_delete_pipelined, False),
        Benchmark("mixed", "raw-pipelined", raw_mixed_pipelined, False),
        Benchmark("mixed", "greenstalk", greenstalk_mixed, True),
        Benchmark("mixed", "beanstalkt-sequential", bt_mixed_sequential, True),
        Benchmark("mixed", "beanstalkt-pipelined", bt_mixed_pipelined, False),
    ]
    if greenstalk is None:
        rows = [row for row in rows if row.name != "greenstalk"]
    return rows


def job_count(options: argparse.Namespace, row: Benchmark, size: int) -> int:
    """Jobs for one measurement: lock-step rows run fewer; big bodies are capped in bytes."""
    n = options.lockstep_jobs if row.lockstep else options.jobs
    if row.name == "beanstalkt-put_many":
        n = options.batch_jobs
    return max(1, min(n, options.max_bytes // (size + 64)))


def run_all(options: argparse.Namespace, rows: list[Benchmark], sizes: Sequence[int]) -> None:
    """Run every row for every size, ``repeat`` times, interleaved, each on a fresh server."""
    global _SERVER_PID, LAST_SERVER_CPU
    for repetition in range(options.repeat):
        for size in sizes:
            body = b"x" * size
            for row in rows:
                n = job_count(options, row, size)
                tube = f"bench-{row.group.replace('+', '-')}-{repetition}"
                with _server() as server:
                    _SERVER_PID = server.process.pid if server.process is not None else None
                    LAST_SERVER_CPU = None
                    elapsed = row.measure((server.host, server.port), tube, n, body)
                    _SERVER_PID = None
                row.runs.setdefault(size, []).append(n / elapsed)
                if LAST_SERVER_CPU is not None:
                    row.server_cpu.setdefault(size, []).append(LAST_SERVER_CPU)
                if options.verbose:
                    print(
                        f"  rep {repetition + 1} {size:>6} B {row.group:<15} {row.name:<22}"
                        f" {n / elapsed:>10.0f} jobs/s",
                        file=sys.stderr,
                    )


def results(rows: list[Benchmark], sizes: Sequence[int]) -> list[dict[str, Any]]:
    """Medians and ratios, one dict per (row, size)."""
    table = []
    for size in sizes:
        medians = {(row.group, row.name): statistics.median(row.runs[size]) for row in rows}
        for row in rows:
            median = medians[(row.group, row.name)]
            ceiling = medians.get((row.group, CEILING[row.group]))
            peer = medians.get((row.group, PEER[row.group]))
            table.append(
                {
                    "group": row.group,
                    "name": row.name,
                    "body_size": size,
                    "jobs_per_s": median,
                    "runs": row.runs[size],
                    "vs_ceiling": median / ceiling if ceiling else None,
                    "vs_greenstalk": median / peer if peer else None,
                    "server_cpu": (
                        statistics.median(row.server_cpu[size])
                        if row.server_cpu.get(size)
                        else None
                    ),
                }
            )
    return table


def _ratio(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}x"


def format_table(table: list[dict[str, Any]]) -> str:
    """The human-readable table (Markdown, so it can go straight into a README)."""
    lines = [
        "| body | group | client | jobs/s | vs ceiling | vs greenstalk | server CPU |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    for entry in table:
        cpu = entry.get("server_cpu")
        lines.append(
            f"| {entry['body_size']} B | {entry['group']} | {entry['name']} "
            f"| {entry['jobs_per_s']:,.0f} | {_ratio(entry['vs_ceiling'])} "
            f"| {_ratio(entry['vs_greenstalk'])} | {'-' if cpu is None else f'{cpu:.0%}'} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Memory: a child process, so that its peak RSS belongs to this measurement only.


def _status_bytes(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux 4.0+); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


async def _memory_child(address: Address, n: int) -> dict[str, Any]:
    body = b"x" * 100
    async with _bt_client(address, use="memory-rss") as client:
        await client.put(body)  # warm up: everything imported and allocated once
        peak_reset = _reset_peak_rss()
        baseline = _status_bytes("VmRSS")
        futures = [client.put(body) for _ in range(n)]
        in_flight = client.in_flight
        await asyncio.gather(*futures)
        # The high-water mark of this process image only (unlike ru_maxrss,
        # which may hold the parent's peak): taken before tracemalloc starts.
        peak_rss = _status_bytes("VmHWM")
        del futures
        await client.use("memory-tracemalloc")
        tracemalloc.start()
        base_traced = tracemalloc.get_traced_memory()[0]
        futures = [client.put(body) for _ in range(n)]
        await asyncio.gather(*futures)
        traced_peak = tracemalloc.get_traced_memory()[1] - base_traced
        tracemalloc.stop()
    return {
        "jobs": n,
        "in_flight": in_flight,
        "baseline_rss_mb": baseline / 1e6,
        # Not clamped at 0: VmHWM, read after the baseline, is never below it,
        # so a negative figure would be a measuring mistake worth seeing.
        "rss_delta_mb": (peak_rss - baseline) / 1e6,
        "peak_reset_at_baseline": peak_reset,
        "tracemalloc_peak_mb": traced_peak / 1e6,
    }


def measure_memory(n: int) -> dict[str, Any]:
    """Peak memory above baseline with ``n`` 100-byte puts in flight on one client."""
    with _server() as server:
        output = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--memory-child", str(server.port), str(n)],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        ).stdout
    result: dict[str, Any] = json.loads(output)
    return result


# --------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    import tornado

    server = subprocess.run(
        [BeanstalkdServer().binary, "-v"], capture_output=True, text=True, check=False
    )
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "python": sys.version.split()[0],
        "tornado": tornado.version,
        "beanstalkd": server.stdout.strip() or server.stderr.strip(),
        "greenstalk": greenstalk.__version__ if greenstalk is not None else "not installed",
        "beanstalkt": getattr(beanstalkt, "__version__", "?"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
    }


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20000, help="jobs per pipelined measurement")
    parser.add_argument(
        "--lockstep-jobs",
        type=int,
        default=None,
        help="jobs per lock-step measurement (default: min(jobs, 4000))",
    )
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=64 * 2**20,
        help="cap on jobs x body size per measurement (default 64 MiB)",
    )
    parser.add_argument(
        "--batch-jobs", type=int, default=100_000, help="jobs in the put_many batch row"
    )
    parser.add_argument("--body-sizes", default="100,16384", help="comma-separated body sizes")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions (medians are shown)")
    parser.add_argument(
        "--memory-jobs", type=int, default=100000, help="puts in flight for the memory figure"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument(
        "--only",
        default=None,
        help="run only rows whose name or group contains this (or one of these, comma-separated); "
        "each group's ceiling and greenstalk rows are kept for the ratios",
    )
    parser.add_argument(
        "--workers",
        action="store_true",
        help="also run the Worker rows of benchmarks/workers.py (no-op and 10 ms handlers at "
        "concurrency 1/8/50/200, greenstalk's reserve/delete loop in the same run)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run")
    parser.add_argument(
        "--pin",
        choices=("none", "same", "split"),
        default="none",
        help="CPU placement: both processes on one CPU (same), on two (split), "
        "or the OS's choice (none, the default)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every measurement")
    parser.add_argument("--memory-child", nargs=2, type=int, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.quick:
        options.jobs = min(options.jobs, 200)
        options.batch_jobs = min(options.batch_jobs, 200)
        options.lockstep_jobs = min(options.lockstep_jobs or 50, 50)
        options.repeat = 1
        options.memory_jobs = min(options.memory_jobs, 1000)
    if options.lockstep_jobs is None:
        options.lockstep_jobs = min(options.jobs, 4000)
    options.sizes = [int(size) for size in options.body_sizes.split(",") if size.strip()]
    if options.jobs < 1 or options.lockstep_jobs < 1 or options.repeat < 1 or not options.sizes:
        parser.error("--jobs, --lockstep-jobs and --repeat must be positive; sizes non-empty")
    return options


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """Run the benchmark, print the table (or JSON) and return the report."""
    options = parse_args(argv)
    if options.memory_child:
        port, n = options.memory_child
        print(json.dumps(asyncio.run(_memory_child((HOST, port), n))))
        return {}
    rows = benchmarks()
    if options.only:
        words = [word for word in options.only.split(",") if word]
        wanted = [
            row for row in rows if any(word in row.name or word in row.group for word in words)
        ]
        # Ratios need their references: keep the ceiling and peer of each group shown.
        groups = {row.group for row in wanted}
        rows = [
            row
            for row in rows
            if row in wanted
            or (row.group in groups and row.name in (CEILING[row.group], PEER[row.group]))
        ]
    pin(options.pin)
    run_all(options, rows, options.sizes)
    report: dict[str, Any] = {
        "machine": _versions(),
        "options": {
            "jobs": options.jobs,
            "lockstep_jobs": options.lockstep_jobs,
            "max_bytes": options.max_bytes,
            "repeat": options.repeat,
            "body_sizes": options.sizes,
            "pin": options.pin,
        },
        "results": results(rows, options.sizes),
        "memory": None if options.no_memory else measure_memory(options.memory_jobs),
        "workers": _worker_rows(options) if options.workers else None,
    }
    if options.json:
        print(json.dumps(report, indent=2))
    else:
        machine = report["machine"]
        print(
            f"{machine['cpu']}, {machine['nproc']} CPUs; Python {machine['python']}, "
            f"Tornado {machine['tornado']}, {machine['beanstalkd']}, "
            f"greenstalk {machine['greenstalk']}"
        )
        print(
            f"jobs={options.jobs} lockstep-jobs={options.lockstep_jobs} "
            f"max-bytes={options.max_bytes} repeat={options.repeat} pin={options.pin} "
            "(medians)\n"
        )
        print(format_table(report["results"]))
        memory = report["memory"]
        if memory is not None:
            print(
                f"\nmemory: {memory['jobs']:,} puts of 100 B in flight "
                f"({memory['in_flight']:,} at peak): RSS +{memory['rss_delta_mb']:.1f} MB, "
                f"tracemalloc peak {memory['tracemalloc_peak_mb']:.1f} MB"
            )
        if report["workers"] is not None:
            from workers import format_table as format_worker_table

            print("\nWorker rows (benchmarks/workers.py):\n")
            print(format_worker_table(report["workers"]))
    return report


def _worker_rows(options: argparse.Namespace) -> list[dict[str, Any]]:
    """The Worker rows, from benchmarks/workers.py, with this run's job count and repeats."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from workers import worker_rows

    rows: list[dict[str, Any]] = worker_rows(jobs=options.jobs, repeat=options.repeat)
    return rows


if __name__ == "__main__":
    main()

"""Put throughput of a beanstalkt.Pool over 1, 2 and 3 servers, with each server's CPU share.

Run ``python benchmarks/pool.py`` (``--quick`` for a short smoke run,
``--help`` for options). For each server count, fresh beanstalkd processes
(no binlog) are started on loopback ports and one pool puts ``--jobs`` jobs in
two ways:

* ``put_many``: pipelined batches of ``--batch`` bodies (each batch is cut
  into one slice per live server, written in one piece);
* ``gather``: ``--concurrency`` single ``pool.put`` calls at a time, awaited
  together (round-robin over the servers);
* ``worker``: a pooled :class:`~beanstalkt.Worker` (``servers=[...]``,
  ``--worker-concurrency`` slots, a no-op ``async`` handler) consumes
  ``--jobs`` jobs put beforehand (untimed), spread evenly over the servers;
  the time runs from ``start()`` until the last delete is confirmed.

Each row shows jobs/s (median of ``--repeat`` runs) and, per server, the CPU
it used during the run (utime+stime from ``/proc/<pid>/stat``) as a share of
the wall time: a server near 100% is the limit; servers well below it with
the client process at 100% mean the client is.

On a 2-core machine the *machine*, not the pool, is the limit: three
beanstalkd processes and the client share two cores, so adding servers
cannot add throughput past what the cores give, and numbers taken while
other work runs are noisy. Sharding pays off when servers are on their own
cores or hosts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Sequence

# Runnable from a checkout without installing the package.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import beanstalkt  # noqa: E402
from beanstalkt.testing import BeanstalkdServer  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: No run may take longer than this (a hang guard, not a timing assertion).
HANG = 300.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        # Fields after the command name (which may hold spaces) start after ')'.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def put_many_run(pool: beanstalkt.Pool, jobs: int, batch: int, body: bytes) -> None:
    for start in range(0, jobs, batch):
        results = await pool.put_many([body] * min(batch, jobs - start))
        if not all(isinstance(result, beanstalkt.PoolJobRef) for result in results):
            raise RuntimeError(f"a put failed: {results}")


async def gather_run(pool: beanstalkt.Pool, jobs: int, concurrency: int, body: bytes) -> None:
    for start in range(0, jobs, concurrency):
        await asyncio.gather(*(pool.put(body) for _ in range(min(concurrency, jobs - start))))


async def worker_run(addresses: Sequence[str], jobs: int, concurrency: int) -> None:
    """Consume ``jobs`` jobs with one pooled worker; return once every delete is confirmed."""
    handled = 0
    all_handled = asyncio.Event()

    async def handler(job: beanstalkt.ReservedJob) -> None:
        nonlocal handled
        handled += 1
        if handled == jobs:
            all_handled.set()

    worker = beanstalkt.Worker({"default": handler}, servers=addresses, concurrency=concurrency)
    await worker.start()
    try:
        await asyncio.wait_for(all_handled.wait(), HANG)
        # The last deletes are confirmed when the slots' next reserves come back.
        while worker.counters()["default"]["done"] < jobs:
            await asyncio.sleep(0.001)
    finally:
        await worker.stop()


async def measure(
    servers: Sequence[BeanstalkdServer], mode: str, args: argparse.Namespace
) -> tuple[float, list[float], float]:
    """One timed run: jobs/s, each server's CPU share, the client's CPU share."""
    body = b"x" * args.body_size
    addresses = [f"{server.host}:{server.port}" for server in servers]
    async with beanstalkt.Pool(addresses) as pool:
        if mode == "worker":  # the jobs to consume, put beforehand (not timed)
            for start in range(0, args.jobs, args.batch):
                await pool.put_many([body] * min(args.batch, args.jobs - start))
        pids = [server.process.pid for server in servers if server.process is not None]
        cpu_before = [cpu_seconds(pid) for pid in pids]
        client_before = time.process_time()
        started = time.perf_counter()
        if mode == "put_many":
            await put_many_run(pool, args.jobs, args.batch, body)
        elif mode == "worker":
            await worker_run(addresses, args.jobs, args.worker_concurrency)
        else:
            await gather_run(pool, args.jobs, args.concurrency, body)
        elapsed = time.perf_counter() - started
        client_share = (time.process_time() - client_before) / elapsed
        shares = [
            (cpu_seconds(pid) - before) / elapsed
            for pid, before in zip(pids, cpu_before, strict=True)
        ]
    return args.jobs / elapsed, shares, client_share


async def run(args: argparse.Namespace) -> None:
    print(
        f"{os.cpu_count()} CPU(s); {args.jobs} jobs of {args.body_size} bytes per run, "
        f"median of {args.repeat}; worker: {args.worker_concurrency} slots"
    )
    if (os.cpu_count() or 1) <= 2:
        print(
            "on 2 cores the machine, not the pool, is the limit: the servers and this "
            "process share them (more servers cannot add throughput here)"
        )
    print(f"{'servers':>7} {'mode':>9} {'jobs/s':>10} {'client cpu':>10}  server cpu shares")
    for count in args.servers:
        for mode in args.modes:
            rates, shares_by_run, client_shares = [], [], []
            for _ in range(args.repeat):
                # Fresh servers per run: queues never grow from one run to the next.
                servers = [BeanstalkdServer().start() for _ in range(count)]
                try:
                    rate, shares, client = await measure(servers, mode, args)
                finally:
                    for server in servers:
                        server.stop()
                rates.append(rate)
                shares_by_run.append(shares)
                client_shares.append(client)
            middle = sorted(range(len(rates)), key=rates.__getitem__)[len(rates) // 2]
            shares_text = " ".join(f"{share:6.0%}" for share in shares_by_run[middle])
            print(
                f"{count:>7} {mode:>9} {statistics.median(rates):>10,.0f} "
                f"{client_shares[middle]:>10.0%}  {shares_text}"
            )


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the options and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000, help="puts per run")
    parser.add_argument("--batch", type=int, default=1000, help="bodies per put_many")
    parser.add_argument("--concurrency", type=int, default=1000, help="puts awaited together")
    parser.add_argument("--body-size", type=int, default=100, help="bytes per body")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row (median shown)")
    parser.add_argument(
        "--servers", type=int, nargs="+", default=[1, 2, 3], help="server counts to measure"
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=("put_many", "gather", "worker"),
        default=["put_many", "gather", "worker"],
        help="rows to measure per server count",
    )
    parser.add_argument(
        "--worker-concurrency", type=int, default=50, help="slots of the pooled worker"
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.jobs, args.repeat = 5_000, 1
    asyncio.run(run(args))


if __name__ == "__main__":
    main()

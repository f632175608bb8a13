"""Safe under real use, against a real beanstalkd: the patterns the README recommends.

One shared client for many coroutines, ``asyncio.wait_for`` around commands,
one client across event loops, restarts without a binlog, outages, and a
peer that vanishes without a word. Each test here failed before the
pipeline became a state machine (see tests/test_pipeline.py for its rules
byte by byte).
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
from collections.abc import Awaitable
from typing import Any, Optional

import pytest

import beanstalkt
from beanstalkt.pipeline import DEFAULT_MAX_PENDING_BYTES
from beanstalkt.protocol import encode_put
from beanstalkt.testing import BeanstalkdServer

# Generous bound against hangs; what is under test takes well under it.
HANG = 15


async def wait_until(condition: object, what: str, limit: float = HANG) -> None:
    deadline = time.monotonic() + limit
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


# --------------------------------------------------------------------------
# 1. One client shared by many coroutines, each with its own tube.


async def test_a_thousand_coroutines_put_into_their_own_tubes_with_none_misrouted(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="plain") as client:

        async def producer(n: int) -> tuple[int, str]:
            await asyncio.sleep(0)  # interleave the coroutines
            tube = ("alpha", "beta", None)[n % 3]
            if tube is None:
                return await client.put(b"%d" % n), "plain"
            if n % 2:
                return await client.put_json({"n": n}, tube=tube), tube
            return await client.put(b"%d" % n, tube=tube), tube

        placed = await asyncio.gather(*[producer(n) for n in range(1000)])
        stats = await asyncio.gather(*[client.stats_job(job_id) for job_id, _tube in placed])
        misrouted = [
            (job_id, tube, job_stats["tube"])
            for (job_id, tube), job_stats in zip(placed, stats, strict=True)
            if job_stats["tube"] != tube
        ]
        assert misrouted == []
        assert client.using == "plain"
        assert await client.list_tube_used() == "plain"
        counts = {
            tube: (await client.stats_tube(tube))["current-jobs-ready"]
            for tube in ("alpha", "beta", "plain")
        }
        assert counts == {"alpha": 334, "beta": 333, "plain": 333}


async def test_producer_helpers_with_tube_leave_the_clients_tube_alone(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="mine") as client:
        other = await client.put_json({"a": 1}, tube="theirs")
        plain = await client.put(b"plain")
        assert (await client.stats_job(other))["tube"] == "theirs"
        assert (await client.stats_job(plain))["tube"] == "mine"
        assert client.using == "mine"


async def test_tube_scoped_peeks_and_kick_act_on_that_tube_only(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        ready = await client.put(b"ready", tube="t")
        delayed = await client.put(b"delayed", delay=100, tube="t")
        await client.put(b"elsewhere", delay=100)
        assert (await client.peek_ready(tube="t")).id == ready
        assert (await client.peek_delayed(tube="t")).id == delayed
        with pytest.raises(beanstalkt.NotFound):
            await client.peek_buried(tube="t")
        with pytest.raises(beanstalkt.NotFound):
            await client.peek_ready()  # the client's own tube, default: nothing ready
        assert await client.kick(10, tube="t") == 1
        assert (await client.stats_job(delayed))["state"] == "ready"
        assert (await client.stats_tube("default"))["current-jobs-delayed"] == 1


# --------------------------------------------------------------------------
# 2. Cancellation.


async def test_a_cancelled_reserve_gives_its_job_back_at_once_with_its_priority(
    beanstalkd: BeanstalkdServer,
) -> None:
    server = beanstalkd
    async with (
        beanstalkt.Client(server.host, server.port) as worker,
        beanstalkt.Client(server.host, server.port) as producer,
        beanstalkt.Client(server.host, server.port) as other,
    ):
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(worker.reserve(), 0.2)
        job_id = await producer.put(b"payload", priority=77, ttr=3600)
        # Not held hostage by the connection whose caller gave up.
        job = await other.reserve(timeout=2)
        assert job.id == job_id
        stats = await other.stats_job(job)
        assert stats["pri"] == 77
        assert stats["releases"] == 1
        await other.delete(job)
        # And the worker's next reserve is not answered DEADLINE_SOON.
        second = await producer.put(b"second")
        assert (await worker.reserve(timeout=5)).id == second


async def test_a_wait_for_reserve_loop_keeps_one_reserve_on_the_server(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as worker:
        for _ in range(20):
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(worker.reserve(), 0.01)
        async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as producer:
            stats = await producer.stats()
            assert stats["cmd-reserve"] == 1  # taken over, not piled up
            assert stats["current-waiting"] == 1
            job_id = await producer.put(b"for the loop")
            job = None
            while job is None:
                try:
                    job = await asyncio.wait_for(worker.reserve(), 0.5)
                except asyncio.TimeoutError:
                    continue
            assert job.id == job_id
            await worker.delete(job)
            assert (await producer.stats())["cmd-delete"] == 1


async def test_a_cancelled_command_not_yet_written_is_never_sent(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        waiting = client.reserve(timeout=1)  # owed: what follows is buffered
        put = client.put(b"never")
        put.cancel()
        with pytest.raises(beanstalkt.TimedOut):
            await waiting
        assert (await client.stats())["cmd-put"] == 0


async def test_a_cancelled_reserve_job_gives_its_job_back(beanstalkd: BeanstalkdServer) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        job_id = await client.put(b"x", priority=5)
        future = client.reserve_job(job_id)
        future.cancel()  # already written: its job comes back
        await wait_until_ready(client, job_id)
        assert (await client.stats_job(job_id))["pri"] == 5


async def wait_until_ready(client: beanstalkt.Client, job_id: int) -> None:
    deadline = time.monotonic() + HANG
    while (await client.stats_job(job_id))["state"] != "ready":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


# --------------------------------------------------------------------------
# 3. One loop per client.


def test_a_client_outliving_its_event_loop_fails_clearly_then_reconnects(
    beanstalkd: BeanstalkdServer,
) -> None:
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port)

    async def first() -> int:
        await client.connect()
        return await client.put(b"first")

    async def second() -> tuple[int, int, dict[str, object]]:
        with pytest.raises(beanstalkt.WrongEventLoop, match="close\\(\\) it and connect\\(\\)"):
            client.put(b"stray")
        assert client.in_flight == 0  # nothing owed
        await client.close()  # the old loop is closed: close still works
        await client.connect()
        a, b = await asyncio.gather(client.put(b"A"), client.put(b"B"))
        stats = dict(await asyncio.wait_for(client.stats_tube("default"), HANG))
        await client.close()
        return a, b, stats

    first_id = asyncio.run(first())
    a, b, stats = asyncio.run(second())
    assert (a, b) == (first_id + 1, first_id + 2)
    assert stats["current-jobs-ready"] == 3


def test_close_outside_any_loop_after_the_loop_closed(beanstalkd: BeanstalkdServer) -> None:
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port)

    async def use_it() -> None:
        await client.connect()
        client.reserve()  # owed when the loop goes away

    asyncio.run(use_it())

    closed = client.close()  # from plain code: the old loop is closed, none runs
    assert closed.done() and client.closed()

    async def again() -> bytes:
        await closed  # awaitable, though made outside any loop
        await client.connect()
        await client.put(b"again")
        job = await client.reserve(timeout=0)
        await client.close()
        return job.body

    assert asyncio.run(again()) == b"again"


# --------------------------------------------------------------------------
# 4. A stale acknowledgement never deletes somebody else's job.


async def test_a_job_from_before_a_restart_without_binlog_is_refused(
    beanstalkd: BeanstalkdServer,
) -> None:
    server = beanstalkd
    worker = beanstalkt.Client(server.host, server.port, reconnect_interval=0.1)
    await worker.connect()
    async with beanstalkt.Client(server.host, server.port) as producer:
        await producer.put(b"old job")
    job = await worker.reserve(timeout=0)
    assert job.id == 1
    server.restart()  # no binlog: the job is gone and ids start again at 1
    await wait_until(lambda: worker.closed(), "the worker to notice")
    await wait_until(lambda: not worker.closed(), "the worker to reconnect")
    async with beanstalkt.Client(server.host, server.port) as producer:
        new_id = await producer.put(b"new, unrelated job")
        assert new_id == 1
        for acknowledge in (worker.delete, worker.touch, worker.bury, worker.release):
            with pytest.raises(beanstalkt.ReservationLost):
                await acknowledge(job)
        assert (await producer.peek(new_id)).body == b"new, unrelated job"
        assert (await producer.stats())["cmd-delete"] == 0
    await worker.close()


# --------------------------------------------------------------------------
# 5. Outages do not hold memory they no longer need.


async def _outage(server: BeanstalkdServer, client: beanstalkt.Client) -> None:
    await client.connect()
    server.kill()
    await wait_until(lambda: client.closed(), "the client to notice the outage")


@pytest.mark.parametrize("how", ["disconnected_timeout", "wait_for"])
async def test_puts_that_fail_during_an_outage_free_their_memory(
    beanstalkd: BeanstalkdServer, how: str
) -> None:
    # The default bound is 64 MiB; a smaller one shows the same at a tenth of the cost.
    assert DEFAULT_MAX_PENDING_BYTES == 64 * 1024 * 1024
    bound = 4 * 1024 * 1024
    timeout = 0.05 if how == "disconnected_timeout" else None
    client = beanstalkt.Client(
        beanstalkd.host, beanstalkd.port, disconnected_timeout=timeout, max_pending_bytes=bound
    )
    await _outage(beanstalkd, client)
    body = b"x" * 10_240

    async def put_them_all() -> set[str]:
        # Twice the bound: the first half waits (and fails), the rest is refused at once.
        count = 2 * bound // len(body)
        puts: list[Awaitable[int]]
        if how == "wait_for":
            puts = [asyncio.wait_for(client.put(body), 0.05) for _ in range(count)]
        else:
            puts = [client.put(body) for _ in range(count)]
        outcomes = await asyncio.gather(*puts, return_exceptions=True)
        return {type(outcome).__name__ for outcome in outcomes}

    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        kinds = await put_them_all()
        await asyncio.sleep(0)  # let the callbacks already scheduled run
        gc.collect()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Past max_pending_bytes puts fail at once.
    waited = "TimeoutError" if how == "wait_for" else "NotConnected"
    assert kinds == {waited, "BufferFull"}
    assert peak - baseline < 2.5 * bound
    assert client.pending_bytes == 0
    assert client.in_flight == 0
    # Holding on to the waiting puts would keep about the whole bound.
    assert after - baseline < bound // 8, f"{(after - baseline) / 2**20:.1f} MiB kept"
    await client.close()


async def test_past_max_pending_bytes_puts_fail_fast_and_accepted_ones_all_land(
    beanstalkd: BeanstalkdServer,
) -> None:
    client = beanstalkt.Client(
        beanstalkd.host, beanstalkd.port, max_pending_bytes=100_000, reconnect_interval=0.1
    )
    await _outage(beanstalkd, client)
    body = b"y" * 1000
    puts = [client.put(body) for _ in range(200)]
    refused = [put for put in puts if put.done()]
    accepted = [put for put in puts if not put.done()]
    one_put = len(encode_put(body, beanstalkt.DEFAULT_PRIORITY, 0, beanstalkt.DEFAULT_TTR))
    assert len(accepted) == 100_000 // one_put == 97
    for put in refused:
        with pytest.raises(beanstalkt.BufferFull, match="max_pending_bytes=100000"):
            put.result()
    beanstalkd.start()
    ids = await asyncio.wait_for(asyncio.gather(*accepted), HANG)
    assert ids == list(range(1, 98))
    assert (await client.stats_tube("default"))["current-jobs-ready"] == 97
    await client.close()


# --------------------------------------------------------------------------
# 6. A peer that vanishes without a word (no FIN, no RST).

KEEPALIVE_SCRIPT = textwrap.dedent(
    """
    import asyncio, subprocess, sys, time
    import beanstalkt
    from beanstalkt.testing import BeanstalkdServer

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)

    async def main() -> None:
        with BeanstalkdServer() as server:
            keepalive = beanstalkt.Keepalive(idle=1, interval=1, probes=2)
            client = beanstalkt.Client(server.host, server.port, keepalive=keepalive)
            await client.connect()
            reserve = client.reserve()
            await asyncio.sleep(0.2)
            # From now on nothing reaches the server: no reply, no RST, no FIN.
            subprocess.run(
                ["iptables", "-A", "INPUT", "-p", "tcp", "--dport", str(server.port),
                 "-j", "DROP"],
                check=True,
            )
            started = time.monotonic()
            try:
                await asyncio.wait_for(reserve, 60)
            except beanstalkt.ConnectionLost as exc:
                print("ConnectionLost after %.1f s: %s" % (time.monotonic() - started, exc))
            except asyncio.TimeoutError:
                print("still waiting after 60 s")
            await client.close()

    asyncio.run(main())
    """
)


def test_a_blocking_reserve_on_a_vanished_peer_fails_within_the_keepalive_time() -> None:
    # A network namespace of its own: a firewall rule there drops the flow
    # silently, as a dead host or a NAT that forgot it would.
    for tool in ("unshare", "ip", "iptables"):
        assert shutil.which(tool), (
            f"{tool} is missing: apt-get install -y util-linux iproute2 iptables"
        )
    completed = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", KEEPALIVE_SCRIPT],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert completed.returncode == 0, completed.stderr
    output = completed.stdout.strip()
    assert output.startswith("ConnectionLost after"), output
    seconds = float(output.split()[2])
    # idle 1 s + 2 probes 1 s apart: about 3 s; far below the 60 s it waited.
    assert seconds < 15, output


async def test_a_cancelled_connect_leaves_a_client_that_can_connect_again(
    beanstalkd: BeanstalkdServer,
) -> None:
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port)
    connecting = client.connect()
    waiting = client.put(b"queued behind the connect")
    connecting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await connecting
    with pytest.raises(beanstalkt.NotConnected, match="cancelled"):
        await waiting
    assert client.closed()
    await asyncio.wait_for(client.connect(), HANG)
    assert await client.put(b"after") == 1
    await client.close()


async def test_a_batch_is_one_write(beanstalkd: BeanstalkdServer) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        stream = client._connection._stream
        assert stream is not None
        writes: list[bytes] = []
        write = stream.write
        stream.write = lambda data: (writes.append(bytes(data)), write(data))[1]  # type: ignore[method-assign]
        await client.put(b"job")
        job = await client.reserve(timeout=0)
        writes.clear()
        with client.batch():
            deleted = client.delete(job)
            nothing = client.reserve(timeout=0)
        await deleted
        with pytest.raises(beanstalkt.TimedOut):
            await nothing
        assert writes == [b"delete 1\r\nreserve-with-timeout 0\r\n"]
        writes.clear()
        await client.stats_tube("default")  # outside a batch: written at once, alone
        assert writes == [b"stats-tube default\r\n"]


async def test_a_sequence_is_one_write_even_when_nothing_is_owed(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        stream = client._connection._stream
        assert stream is not None
        writes: list[bytes] = []
        write = stream.write
        stream.write = lambda data: (writes.append(bytes(data)), write(data))[1]  # type: ignore[method-assign]
        await client.put(b"job")
        job = await client.reserve(timeout=0)
        writes.clear()
        with client.sequence():
            buried = client.bury(job, 5)
            taken_back = client.reserve_job(job.id)
            released = client.release(job, 5, 0)
        await asyncio.gather(buried, taken_back, released)
        assert writes == [b"bury 1 5\r\nreserve-job 1\r\nrelease 1 5 0\r\n"]
        assert (await client.stats_job(job.id))["state"] == "ready"


async def test_a_sequence_issued_while_disconnected_fails_at_once_and_is_never_sent(
    beanstalkd_with_binlog: BeanstalkdServer,
) -> None:
    beanstalkd = beanstalkd_with_binlog
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port, reconnect_interval=0.05)
    await client.connect()
    job_id = await client.put(b"a stranger's job, one day")
    beanstalkd.kill()
    await eventually_closed(client)
    with client.sequence():
        taken = client.reserve_job(job_id)
    with pytest.raises(beanstalkt.NotConnected, match="not sent"):
        await taken
    beanstalkd.start()
    await asyncio.wait_for(client.connect(), HANG)
    assert (await client.stats_job(job_id))["state"] == "ready"  # nobody reserved it
    await client.close()


async def eventually_closed(client: beanstalkt.Client[Any]) -> None:
    for _ in range(1000):
        if client.closed():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the client never saw the server go")


class CuttingProxy:
    """Forwards to a real server and cuts the connection right after the server's
    ``cut_after``-th reply (counted over the first connection); records what
    every connection sent."""

    def __init__(self, upstream: BeanstalkdServer, cut_after: int) -> None:
        self.upstream = upstream
        self.cut_after = cut_after
        self.sent: list[bytearray] = []
        self.replies = 0
        self.port = 0
        self._server: Optional[asyncio.base_events.Server] = None

    async def __aenter__(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = not self.sent
        sent = bytearray()
        self.sent.append(sent)
        up_reader, up_writer = await asyncio.open_connection(self.upstream.host, self.upstream.port)

        async def forward() -> None:
            while data := await reader.read(65536):
                sent.extend(data)
                up_writer.write(data)

        forwarding = asyncio.ensure_future(forward())
        try:
            while line := await up_reader.readline():
                words = line.split()
                if words[0] in (b"RESERVED", b"FOUND", b"OK"):
                    line += await up_reader.readexactly(int(words[-1]) + 2)
                writer.write(line)
                await writer.drain()
                if first:
                    self.replies += 1
                    if self.replies == self.cut_after:
                        return
        finally:
            forwarding.cancel()
            writer.close()
            up_writer.close()


@pytest.mark.parametrize("cut_after", ["BURIED", "RESERVED"])
async def test_a_retry_sequence_cut_after_any_reply_is_never_replayed(
    beanstalkd: BeanstalkdServer, cut_after: str
) -> None:
    # Replies on the first connection: INSERTED, RESERVED (the reserve), then
    # the sequence's BURIED, RESERVED (reserve-job), RELEASED.
    position = {"BURIED": 3, "RESERVED": 4}[cut_after]
    async with CuttingProxy(beanstalkd, position) as proxy:
        client = beanstalkt.Client("127.0.0.1", proxy.port, reconnect_interval=0.05)
        await client.connect()
        await client.put(b"failing job")
        job = await client.reserve(timeout=0)
        with client.sequence():
            buried = client.bury(job, 7)
            taken_back = client.reserve_job(job.id)
            released = client.release(job, 7, 0)
        outcomes = await asyncio.gather(buried, taken_back, released, return_exceptions=True)
        assert isinstance(outcomes[-1], beanstalkt.ConnectionLost)  # written: outcome unknown
        await asyncio.wait_for(client.connect(), HANG)
        stats = await client.stats_job(job.id)
        await client.close()
    # One write held the whole sequence; the server ran it all: the job is
    # ready, not reserved by a reserve-job carried over to the new connection.
    assert b"bury 1 7\r\nreserve-job 1\r\nrelease 1 7 0\r\n" in bytes(proxy.sent[0])
    assert stats["state"] == "ready"
    assert all(b"reserve-job" not in bytes(sent) for sent in proxy.sent[1:])


async def test_abort_ends_a_blocking_reserve_on_a_frozen_server_and_reconnects(
    beanstalkd: BeanstalkdServer,
) -> None:
    assert beanstalkd.process is not None
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port, reconnect_interval=0.05)
    await client.connect()
    waiting = client.reserve()  # blocking: exempt from the stall guard
    for _ in range(1000):  # until it is written and waiting on the server
        if client._connection.pipeline.owed == 1:
            break
        await asyncio.sleep(0.01)
    os.kill(beanstalkd.process.pid, signal.SIGSTOP)
    try:
        assert client.abort("the server layer saw it freeze") is True
        with pytest.raises(beanstalkt.ConnectionLost, match="saw it freeze"):
            await asyncio.wait_for(waiting, HANG)
        assert client.abort("again") is False  # no connection open now
    finally:
        os.kill(beanstalkd.process.pid, signal.SIGCONT)
    await asyncio.wait_for(client.connect(), HANG)
    assert await client.put(b"after") >= 1
    await client.close()

"""The pool against servers that die, freeze, drop packets or speak garbage.

Every call must end within its documented bound, and no job the caller was
told about (a ``PoolJobRef``) may be lost or stored twice. Jobs are counted
on the servers themselves with a raw socket, not through the library under test.
"""

from __future__ import annotations

import asyncio
import collections
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from typing import Optional

import pytest

import beanstalkt
from beanstalkt import ConnectionLost, NotConnected, Pool, PoolJobRef, StaleJobRef
from beanstalkt._batch import BATCH_SLICE, fitting_prefix, settle_batch_part
from beanstalkt.connection import DEFAULT_DISCONNECTED_TIMEOUT
from beanstalkt.protocol import DEFAULT_PRIORITY, DEFAULT_TTR, encode_put
from beanstalkt.testing import BeanstalkdServer, free_port

from .fake_server import FakeServer

HANG = 60.0  # a bound no honest wait comes near: reaching it means a hang


def address_of(server: BeanstalkdServer) -> str:
    return f"{server.host}:{server.port}"


# --------------------------------------------------------------------------
# A raw inventory: every body on a server, by id, read without beanstalkt.


def _read_reply(sock: socket.socket, buffer: bytearray) -> bytes:
    """One reply (line, plus body for FOUND/OK) off ``sock``; ``buffer`` keeps the rest."""
    while b"\r\n" not in buffer:
        chunk = sock.recv(1 << 20)
        assert chunk, "server closed the inventory connection"
        buffer += chunk
    end = buffer.index(b"\r\n")
    line = bytes(buffer[:end])
    words = line.split()
    if words[0] in (b"FOUND", b"OK"):
        size = int(words[-1])
        total = end + 2 + size + 2
        while len(buffer) < total:
            chunk = sock.recv(1 << 20)
            assert chunk
            buffer += chunk
        reply = bytes(buffer[:total])
        del buffer[:total]
        return reply
    del buffer[: end + 2]
    return line


def inventory(server: BeanstalkdServer) -> dict[int, bytes]:
    """Every job on ``server``: id -> body (peeked by id, up to the next id it would give)."""
    with socket.create_connection((server.host, server.port), timeout=HANG) as sock:
        buffer = bytearray()
        sock.sendall(b"use inventory-marker\r\n" + encode_put(b"marker", 0, 0, 60))
        assert _read_reply(sock, buffer).startswith(b"USING")
        marker = _read_reply(sock, buffer)
        assert marker.startswith(b"INSERTED"), marker
        last = int(marker.split()[1])
        jobs: dict[int, bytes] = {}
        for start in range(1, last, 5000):
            ids = range(start, min(last, start + 5000))
            sock.sendall(b"".join(b"peek %d\r\n" % job_id for job_id in ids))
            for job_id in ids:
                reply = _read_reply(sock, buffer)
                if reply.startswith(b"FOUND"):
                    header, _, rest = reply.partition(b"\r\n")
                    assert int(header.split()[1]) == job_id
                    jobs[job_id] = rest[:-2]
        sock.sendall(b"delete %d\r\n" % last)
        assert _read_reply(sock, buffer) == b"DELETED"
        return jobs


# --------------------------------------------------------------------------
# The batch bookkeeping, as values.


def test_an_acknowledged_job_is_settled_whatever_else_happened() -> None:
    lost = ConnectionLost(message="lost")
    never_sent = NotConnected(message="withdrawn")
    garbage = beanstalkt.UnexpectedResponse(message="garbage")
    too_big = beanstalkt.JobTooBig("JOB_TOO_BIG")
    outcomes = [7, lost, never_sent, garbage, too_big, 8]
    settled, again = settle_batch_part([10, 11, 12, 13, 14, 15], outcomes, retry_unknown=False)
    assert settled == {10: 7, 11: lost, 13: garbage, 14: too_big, 15: 8}
    assert again == [12]  # only what was certainly never sent goes elsewhere
    settled, again = settle_batch_part([10, 11, 12, 13, 14, 15], outcomes, retry_unknown=True)
    assert settled == {10: 7, 14: too_big, 15: 8}
    assert again == [11, 12, 13]


def test_a_batch_is_cut_where_the_room_ends() -> None:
    assert fitting_prefix([10, 10, 10], 25) == 2
    assert fitting_prefix([10, 10, 10], 30) == 3
    assert fitting_prefix([40, 1], 30) == 0
    assert fitting_prefix([], 0) == 0


# --------------------------------------------------------------------------
# kill -9 in the middle of a put_many, at slice boundaries.


class KillingProxy:
    """Forwards to a real server and kills it (-9) once it has acknowledged
    ``kill_after`` puts, forwarding exactly those acknowledgements."""

    def __init__(self, upstream: BeanstalkdServer, kill_after: int) -> None:
        self.upstream = upstream
        self.kill_after = kill_after
        self.port = free_port()
        self.acknowledged = 0
        self.killed = asyncio.Event()
        self._server: Optional[asyncio.base_events.Server] = None

    async def __aenter__(self) -> KillingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream.host, self.upstream.port
            )
        except OSError:
            writer.close()
            return
        forward = asyncio.ensure_future(self._forward(reader, up_writer))
        try:
            await self._replies(up_reader, writer)
        finally:
            forward.cancel()
            writer.close()
            up_writer.close()

    @staticmethod
    async def _forward(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while data := await source.read(65536):
            sink.write(data)

    async def _replies(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while True:
            line = await source.readline()
            if not line:
                return
            if self.killed.is_set():
                return
            out = line
            words = line.split()
            if words and words[0] == b"OK":  # a stats probe's YAML
                out += await source.readexactly(int(words[1]) + 2)
            sink.write(out)
            if words and words[0] == b"INSERTED":
                self.acknowledged += 1
                if self.acknowledged == self.kill_after:
                    await sink.drain()
                    self.upstream.kill()
                    self.killed.set()
                    return


def _copies(bodies: list[bytes], stored: list[dict[int, bytes]]) -> collections.Counter[bytes]:
    """How many times each of ``bodies`` is stored over all servers.

    beanstalkd killed -9 between the two writes of a binlog record (header,
    then body) restores that job with its body zeroed (the file was
    preallocated): a job of the killed server (stored[0]) whose outcome the
    client never learnt. It is none of ours to count; anything else foreign is.
    """
    ours = set(bodies)
    for jobs in stored[1:]:
        assert set(jobs.values()) <= ours, "a job nobody put is on a server never killed"
    damaged = [body for body in stored[0].values() if body not in ours]
    assert all(body == bytes(len(body)) for body in damaged), damaged
    assert len(damaged) <= 1  # one kill cuts at most one record
    return collections.Counter(body for jobs in stored for body in jobs.values() if body in ours)


def _jobs_per_slice(command_size: int) -> int:
    # Client.put_many cuts a batch where a slice reaches BATCH_SLICE bytes.
    return -(-BATCH_SLICE // command_size)


BODY_SIZE = 100
COMMAND_SIZE = len(encode_put(b"x" * BODY_SIZE, DEFAULT_PRIORITY, 0, DEFAULT_TTR))
PER_SLICE = _jobs_per_slice(COMMAND_SIZE)


@pytest.mark.parametrize(
    "kill_after", [PER_SLICE - 1, PER_SLICE, PER_SLICE + 1, 3 * PER_SLICE, 5 * PER_SLICE + 7]
)
async def test_put_many_cut_by_kill_9_stores_nothing_twice_and_loses_nothing_acknowledged(
    servers: list[BeanstalkdServer], kill_after: int
) -> None:
    total = 45_000
    bodies = [b"job-%06d-" % number + b"." * (BODY_SIZE - 11) for number in range(total)]
    assert all(len(body) == BODY_SIZE for body in bodies)
    async with KillingProxy(servers[0], kill_after) as proxy:
        addresses = [f"127.0.0.1:{proxy.port}", *(address_of(s) for s in servers[1:])]
        async with Pool(addresses) as pool:
            assert len(pool.server_set.live) == 3
            results = await asyncio.wait_for(pool.put_many(bodies, tube="batch"), HANG)
            assert proxy.killed.is_set()
            servers[0].start()  # the binlog brings back what it stored
            stored = [inventory(server) for server in servers]
    by_address = dict(zip(addresses, stored, strict=True))
    copies = _copies(bodies, stored)
    assert max(copies.values()) == 1, "a job was stored twice"
    acknowledged = [result for result in results if isinstance(result, PoolJobRef)]
    unknown = [result for result in results if isinstance(result, ConnectionLost)]
    assert len(acknowledged) + len(unknown) == total  # nothing else went wrong
    for body, result in zip(bodies, results, strict=True):
        if isinstance(result, PoolJobRef):
            assert by_address[result.server][result.id] == body  # stored where the ref says
    # Exactly the puts the killed server acknowledged before it died are its refs.
    assert sum(1 for ref in acknowledged if ref.server == addresses[0]) == kill_after
    # Every unknown outcome belongs to the killed server's share, stored at most once.
    assert len(unknown) == total // 3 - kill_after
    assert len(copies) <= total


# --------------------------------------------------------------------------
# Servers that never answer.


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
    await reader.read()


async def test_a_listener_that_never_answers_takes_no_put_and_stalls_no_call(
    servers: list[BeanstalkdServer],
) -> None:
    async with FakeServer(_silent) as fake:
        addresses = [f"127.0.0.1:{fake.port}", *(address_of(s) for s in servers[:2])]
        async with Pool(addresses) as pool:
            assert [state.live for state in pool.servers] == [False, True, True]
            refs = await asyncio.wait_for(
                asyncio.gather(*(pool.put(b"job %d" % n) for n in range(60))), HANG
            )
            assert {ref.server for ref in refs} == set(addresses[1:])
            batch = await asyncio.wait_for(pool.put_many([b"batch"] * 90), HANG)
            assert all(isinstance(ref, PoolJobRef) for ref in batch)
            stats = await asyncio.wait_for(pool.stats(), HANG)
            assert isinstance(stats.per_server[addresses[0]], NotConnected)
            assert stats.total["current-jobs-ready"] == 150


async def test_a_frozen_server_leaves_rotation_and_every_call_ends(
    servers: list[BeanstalkdServer],
) -> None:
    frozen = servers[0]
    assert frozen.process is not None
    addresses = [address_of(s) for s in servers[:2]]
    async with Pool(addresses, probe_interval=0.2, probe_timeout=1.0) as pool:
        os.kill(frozen.process.pid, signal.SIGSTOP)
        try:
            outcomes = await asyncio.wait_for(
                asyncio.gather(
                    *(pool.put(b"during %d" % n) for n in range(100)), return_exceptions=True
                ),
                HANG,
            )
            # Written to the frozen server: unknown (ConnectionLost) once it is dropped.
            assert all(isinstance(o, (PoolJobRef, ConnectionLost)) for o in outcomes), outcomes
            stats = await asyncio.wait_for(pool.stats(), HANG)
            assert not isinstance(stats.per_server[addresses[1]], BaseException)
            assert pool.servers[0].live is False
            after = await asyncio.wait_for(
                asyncio.gather(*(pool.put(b"after %d" % n) for n in range(20))), HANG
            )
            assert {ref.server for ref in after} == {addresses[1]}
        finally:
            os.kill(frozen.process.pid, signal.SIGCONT)
        await asyncio.wait_for(_until(lambda: pool.servers[0].live), HANG)


async def _until(condition: object) -> None:
    while not condition():  # type: ignore[operator]
        await asyncio.sleep(0.02)


# --------------------------------------------------------------------------
# Garbage.


async def _stats_then_garbage(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int
) -> None:
    """Answers stats like beanstalkd, anything else with nonsense."""
    yaml = b"---\npid: 4242\nuptime: 1\nbinlog-current-index: 0\n"
    while line := await reader.readline():
        if line == b"stats\r\n":
            writer.write(b"OK %d\r\n%b\r\n" % (len(yaml), yaml))
        else:
            if line.startswith(b"put "):
                await reader.readexactly(int(line.split()[4]) + 2)
            writer.write(b"WHAT\r\n")
        await writer.drain()


@pytest.mark.parametrize("retry_unknown", [False, True])
async def test_a_garbage_speaking_server_is_an_unknown_outcome_and_out_with_backoff(
    beanstalkd: BeanstalkdServer, retry_unknown: bool
) -> None:
    async with FakeServer(_stats_then_garbage) as fake:
        garbage = f"127.0.0.1:{fake.port}"
        async with Pool([garbage, address_of(beanstalkd)], retry_unknown=retry_unknown) as pool:
            assert pool.servers[0].live  # it answers probes
            outcomes = await asyncio.wait_for(
                asyncio.gather(
                    *(pool.put(b"job %d" % n) for n in range(40)), return_exceptions=True
                ),
                HANG,
            )
            failures = [o for o in outcomes if isinstance(o, BaseException)]
            if retry_unknown:
                assert failures == []
            else:
                assert failures
                assert all(isinstance(o, beanstalkt.UnexpectedResponse) for o in failures)
            assert all(
                o.server == address_of(beanstalkd) for o in outcomes if isinstance(o, PoolJobRef)
            )
            server = pool.server_set.get(garbage)
            assert not server.live and server.liveness.failures >= 1
            # Out with backoff: the next puts all go to the good server.
            later = await asyncio.wait_for(
                asyncio.gather(*(pool.put(b"later") for _ in range(10))), HANG
            )
            assert {ref.server for ref in later} == {address_of(beanstalkd)}


# --------------------------------------------------------------------------
# Nothing waits for ever, by default.


async def test_a_producer_with_its_server_down_gets_not_connected_within_the_default_bound(
    beanstalkd: BeanstalkdServer,
) -> None:
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port)
    await client.connect()
    beanstalkd.kill()
    await asyncio.wait_for(_until(client.closed), HANG)
    with pytest.raises(NotConnected, match=f"within {DEFAULT_DISCONNECTED_TIMEOUT}s"):
        await asyncio.wait_for(client.put(b"for a web handler"), HANG)
    await client.close()


async def test_a_pool_with_every_server_down_refuses_at_once(
    servers: list[BeanstalkdServer],
) -> None:
    async with Pool([address_of(s) for s in servers[:2]]) as pool:
        for server in servers[:2]:
            server.kill()
        await asyncio.wait_for(_until(lambda: not any(s.live for s in pool.servers)), HANG)
        with pytest.raises(beanstalkt.NoServerAvailable):
            await pool.put(b"nowhere")
        with pytest.raises(beanstalkt.NoServerAvailable):
            await pool.put_many([b"a", b"b"])


# --------------------------------------------------------------------------
# Oversized batches and single puts.


async def test_an_oversized_pool_batch_refuses_a_suffix(servers: list[BeanstalkdServer]) -> None:
    limit = 20 * COMMAND_SIZE
    addresses = [address_of(s) for s in servers]
    async with Pool(addresses, max_pending_bytes=limit) as pool:
        bodies = [b"%03d" % n + b"." * (BODY_SIZE - 3) for n in range(90)]
        results = await asyncio.wait_for(pool.put_many(bodies), HANG)
    refused = [n for n, r in enumerate(results) if isinstance(r, beanstalkt.BufferFull)]
    assert refused, "the batch is larger than the pool can hold"
    assert refused == list(range(refused[0], 90))  # a suffix, never a hole in the middle
    assert all(isinstance(r, PoolJobRef) for r in results[: refused[0]])
    assert "max_pending_bytes" in str(results[refused[0]])


async def test_an_oversized_client_batch_refuses_a_suffix(beanstalkd: BeanstalkdServer) -> None:
    body = b"x" * 60_000
    # Slices of 5 jobs (~256 KiB) and a last one of 1: the limit admits the
    # first slice, refuses the second, and must refuse the last one too,
    # which alone would fit.
    command = len(encode_put(body, DEFAULT_PRIORITY, 0, DEFAULT_TTR))
    limit = int(6.5 * command)
    async with beanstalkt.Client(
        beanstalkd.host, beanstalkd.port, max_pending_bytes=limit
    ) as client:
        results = await client.put_many([body] * 11)
    refused = [n for n, r in enumerate(results) if isinstance(r, beanstalkt.BufferFull)]
    assert refused == list(range(5, 11))


async def test_a_single_put_larger_than_the_bound_names_the_bound(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with beanstalkt.Client(
        beanstalkd.host, beanstalkd.port, max_pending_bytes=1000
    ) as client:
        with pytest.raises(
            beanstalkt.BufferFull, match="more than max_pending_bytes=1000"
        ) as caught:
            await client.put(b"x" * 1000)
        assert "unreachable" not in str(caught.value)
        assert await client.put(b"small") >= 1  # the connection is fine


# --------------------------------------------------------------------------
# References across restarts.


async def test_a_ref_from_before_a_no_binlog_restart_is_refused_not_acted_on(
    beanstalkd: BeanstalkdServer, beanstalkd_with_binlog: BeanstalkdServer
) -> None:
    plain, persistent = beanstalkd, beanstalkd_with_binlog
    async with Pool([address_of(plain), address_of(persistent)]) as pool:
        # Round-robin over two live servers: one job on each.
        refs = {ref.server: ref for ref in [await pool.put(b"mine"), await pool.put(b"mine")]}
        ref_plain, ref_persistent = refs[address_of(plain)], refs[address_of(persistent)]
        assert ref_plain.pid == pool.server_set.get(address_of(plain)).pid is not None
        for server in (plain, persistent):
            server.restart()
        await asyncio.wait_for(
            _until(lambda: all(s.live and s.restarts == 1 for s in pool.server_set.servers)),
            HANG,
        )
        # Without a binlog the job is gone, and a stranger's job gets its id.
        async with beanstalkt.Client(plain.host, plain.port) as raw:
            assert await raw.put(b"a stranger's job") == ref_plain.id
            with pytest.raises(StaleJobRef, match="restarted without a binlog"):
                await pool.delete(ref_plain)
            with pytest.raises(StaleJobRef):
                await pool.peek(ref_plain)
            assert (await raw.peek(ref_plain.id)).body == b"a stranger's job"
        # With a binlog the job survived under its id: the ref is still good.
        assert (await pool.peek(ref_persistent)).body == b"mine"
        await pool.delete(ref_persistent)
        # A ref read back from text carries no pid: it acts on the bare id (see the guide).
        assert PoolJobRef.parse(str(ref_plain)).pid is None


# --------------------------------------------------------------------------
# Dropped SYNs: a host that is powered off.

SYN_SCRIPT = textwrap.dedent(
    """
    import asyncio, subprocess, sys, time
    from beanstalkt import Pool
    from beanstalkt.testing import BeanstalkdServer
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    good = BeanstalkdServer().start()
    dropped = 11399
    subprocess.run(
        ["iptables", "-A", "INPUT", "-p", "tcp", "--dport", str(dropped), "-j", "DROP"], check=True
    )
    async def main():
        started = time.monotonic()
        pool = Pool([f"127.0.0.1:{dropped}", f"127.0.0.1:{good.port}"])
        await asyncio.wait_for(pool.connect(), 120)
        connected = time.monotonic() - started
        ref = await asyncio.wait_for(pool.put(b"job"), 30)
        print("connected after %.1f s; live %s; put on %s" % (
            connected, [s.live for s in pool.servers], ref.server == f"127.0.0.1:{good.port}"))
        await pool.close()
    try:
        asyncio.run(main())
    finally:
        good.stop()
    """
)


def test_pool_connect_returns_as_soon_as_one_server_answers_when_another_drops_syns() -> None:
    for tool in ("unshare", "ip", "iptables"):
        assert shutil.which(tool), (
            f"{tool} is missing: apt-get install -y util-linux iproute2 iptables"
        )
    completed = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", SYN_SCRIPT],
        capture_output=True,
        text=True,
        timeout=150,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert completed.returncode == 0, completed.stderr
    output = completed.stdout.strip()
    assert output.startswith("connected after"), output
    assert output.endswith("live [False, True]; put on True"), output
    seconds = float(output.split()[2])
    # The kernel's SYN retries would take 135 s; the pool returns at once.
    assert seconds < 30, output


async def test_withdraw_takes_back_what_was_never_written(beanstalkd: BeanstalkdServer) -> None:
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port, disconnected_timeout=None)
    await client.connect()
    beanstalkd.kill()
    await asyncio.wait_for(_until(client.closed), HANG)
    single = client.put(b"waiting")
    # A batch of several slices, all waiting for the connection.
    batch = client.put_many([b"x" * 100_000] * 8)
    assert client.pending_bytes > 800_000
    assert client.withdraw(single, "server left rotation") == 1
    assert client.withdraw(batch) >= 2
    with pytest.raises(NotConnected, match="not sent: server left rotation"):
        await single
    results = await batch
    assert all(isinstance(result, NotConnected) for result in results)
    assert client.pending_bytes == 0
    beanstalkd.start()
    await asyncio.wait_for(client.connect(), HANG)
    assert (await client.stats())["current-jobs-ready"] == 0  # nothing was sent after all
    written = client.put(b"written at once")  # nothing owed: written at the call
    assert client.withdraw(written) == 0
    assert await written >= 1
    await client.close()


@pytest.mark.parametrize("kill_after", [PER_SLICE, 2 * PER_SLICE + 1])
async def test_put_many_cut_by_kill_9_with_retry_unknown_loses_nothing(
    servers: list[BeanstalkdServer], kill_after: int
) -> None:
    total = 30_000
    bodies = [b"job-%06d-" % number + b"." * (BODY_SIZE - 11) for number in range(total)]
    async with KillingProxy(servers[0], kill_after) as proxy:
        addresses = [f"127.0.0.1:{proxy.port}", *(address_of(s) for s in servers[1:])]
        async with Pool(addresses, retry_unknown=True) as pool:
            results = await asyncio.wait_for(pool.put_many(bodies, tube="batch"), HANG)
            assert proxy.killed.is_set()
            servers[0].start()
            stored = [inventory(server) for server in servers]
    by_address = dict(zip(addresses, stored, strict=True))
    # Every job acknowledged, each where its ref says; the unknown outcomes that
    # had landed on the killed server are the only possible second copies.
    assert all(isinstance(result, PoolJobRef) for result in results)
    for body, result in zip(bodies, results, strict=True):
        assert isinstance(result, PoolJobRef)
        assert by_address[result.server][result.id] == body
    copies = _copies(bodies, stored)
    assert set(copies) == set(bodies)
    twice = {body for body, count in copies.items() if count > 1}
    assert max(copies.values()) <= 2
    assert all(body in stored[0].values() for body in twice)


async def test_a_blocking_reserve_on_a_pool_client_does_not_make_its_server_look_frozen(
    beanstalkd: BeanstalkdServer,
) -> None:
    address = address_of(beanstalkd)
    async with Pool([address], probe_interval=0.1, probe_timeout=0.3) as pool:
        client = pool.clients[address]
        waiting = client.reserve()  # the probes queue behind it on the same connection
        await asyncio.sleep(1.5)  # five probe timeouts: long enough to be dropped, if it were
        assert pool.servers[0].live
        assert not waiting.done()
        async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as producer:
            await producer.put(b"at last")
        job = await asyncio.wait_for(waiting, HANG)
        assert job.body == b"at last"
        await client.delete(job)

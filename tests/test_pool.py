"""beanstalkt.Pool over three real beanstalkd servers (binlog on).

Servers are killed and restarted under the pool; waits are event-driven (the
pool's state callbacks) with generous bounds, never timing assertions. One
hand-written proxy stands in for what a real server cannot do on demand: store
a put, then lose the connection before the reply arrives.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator, Callable
from typing import Any, Optional

import pytest

from beanstalkt import (
    Client,
    ConnectionLost,
    NoServerAvailable,
    NotConnected,
    NotFound,
    Pool,
    PoolJobRef,
    ServerState,
    parse_address,
)
from beanstalkt.address import format_address
from beanstalkt.testing import BeanstalkdServer, free_port

from .cli_runner import cli, environment

# Generous bound on waiting for the pool to notice a server leave or come back
# (it takes about one reconnect interval, 1 s); hitting it is a failure.
STATE_WAIT = 15.0


def address_of(server: BeanstalkdServer) -> str:
    return f"{server.host}:{server.port}"


@pytest.fixture
async def pool(servers: list[BeanstalkdServer]) -> AsyncIterator[Pool]:
    async with Pool([address_of(server) for server in servers]) as connected:
        yield connected


async def wait_state(pool: Pool, address: str, live: bool) -> None:
    """Wait until the pool reports ``address`` live (or down)."""
    changed = asyncio.Event()

    def on_change(changed_address: str, now_live: bool) -> None:
        if changed_address == address and now_live is live:
            changed.set()

    pool.add_state_callback(on_change)
    try:
        if ServerState(address, live) not in pool.servers:
            await asyncio.wait_for(changed.wait(), STATE_WAIT)
    finally:
        pool.remove_state_callback(on_change)


async def ready_jobs(server: BeanstalkdServer) -> int:
    async with Client(server.host, server.port) as client:
        return (await client.stats())["current-jobs-ready"]


# --------------------------------------------------------------------------
# Addresses.


def test_parse_address() -> None:
    assert parse_address("example.com:11301") == ("example.com", 11301)
    assert parse_address("example.com") == ("example.com", 11300)
    assert parse_address("[::1]:11302") == ("::1", 11302)
    assert parse_address("unix:/run/beanstalkd.sock") == ("unix:/run/beanstalkd.sock", 0)
    assert format_address("::1", 11302) == "[::1]:11302"
    for bad in ("", ":11300", "host:", "host:0", "host:70000", "host:x", "::1:11300", "unix:"):
        with pytest.raises(ValueError):
            parse_address(bad)


def test_bad_pool_arguments_fail_before_connecting() -> None:
    with pytest.raises(ValueError, match="at least one server"):
        Pool([])
    with pytest.raises(ValueError, match="listed twice"):
        Pool(["127.0.0.1:11300", "127.0.0.1"])
    with pytest.raises(TypeError, match="not one string"):
        Pool("127.0.0.1:11300")
    with pytest.raises(TypeError, match="host="):
        Pool(["127.0.0.1:11300"], host="elsewhere")
    assert str(PoolJobRef("127.0.0.1:11300", 7)) == "127.0.0.1:11300 7"
    assert PoolJobRef.parse("127.0.0.1:11300 7") == PoolJobRef("127.0.0.1:11300", 7)
    assert repr(PoolJobRef("h:1", 2)) == "PoolJobRef(server='h:1', id=2, pid=None)"


async def test_bad_put_arguments_raise_before_sending(pool: Pool) -> None:
    with pytest.raises(ValueError):
        pool.put(b"x", priority=-1)
    with pytest.raises(TypeError):
        pool.put("text without an encoding")
    with pytest.raises(TypeError, match="key must be"):
        pool.put(b"x", key=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        pool.put_many([b"ok", b"x"], tube="bad name!")
    with pytest.raises(TypeError, match="PoolJobRef"):
        pool.delete(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a server of this pool"):
        pool.peek(PoolJobRef("127.0.0.1:1", 1))
    assert (await pool.stats()).total["total-jobs"] == 0


# --------------------------------------------------------------------------
# Routing.


async def test_round_robin_spreads_evenly(pool: Pool, servers: list[BeanstalkdServer]) -> None:
    refs = await asyncio.gather(*(pool.put(b"job %d" % n, tube="even") for n in range(30)))
    assert collections.Counter(ref.server for ref in refs) == {
        address_of(server): 10 for server in servers
    }
    batch = await pool.put_many([b"batch %d" % n for n in range(31)], tube="even")
    assert all(isinstance(ref, PoolJobRef) for ref in batch)
    assert sorted(collections.Counter(ref.server for ref in batch).values()) == [10, 10, 11]  # type: ignore[union-attr]
    for server in servers:
        async with Client(server.host, server.port) as client:
            assert (await client.stats_tube("even"))["current-jobs-ready"] in (20, 21)
    first: Any = batch[0]
    job = await pool.peek(first)
    assert job.body == b"batch 0"
    assert (await pool.stats_job(first))["tube"] == "even"
    await pool.delete(first)
    with pytest.raises(NotFound):
        await pool.peek(first)


async def test_key_is_stable_and_moves_only_when_its_server_dies(
    pool: Pool, servers: list[BeanstalkdServer]
) -> None:
    keys = [f"customer-{n}" for n in range(60)]

    async def placement() -> dict[str, str]:
        refs = await asyncio.gather(*(pool.put(b"k", key=key) for key in keys))
        return {key: ref.server for key, ref in zip(keys, refs, strict=True)}

    before = await placement()
    assert await placement() == before
    assert set(before.values()) == {address_of(server) for server in servers}

    victim = servers[0]
    victim.kill()
    await wait_state(pool, address_of(victim), False)
    during = await placement()
    for key in keys:
        if before[key] == address_of(victim):
            assert during[key] != address_of(victim)
        else:
            assert during[key] == before[key]  # untouched by another server's death
    assert await placement() == during  # stable while the server stays away

    victim.start()
    await wait_state(pool, address_of(victim), True)
    assert await placement() == before  # back where they were

    key_batch = await pool.put_many([b"a", b"b", b"c"], key="customer-1")
    assert {ref.server for ref in key_batch} == {before["customer-1"]}  # type: ignore[union-attr]


# --------------------------------------------------------------------------
# Failover.


async def test_puts_after_a_server_died_all_succeed_elsewhere(
    pool: Pool, servers: list[BeanstalkdServer]
) -> None:
    victim, survivors = servers[0], servers[1:]
    early = await asyncio.gather(*(pool.put(b"early %d" % n) for n in range(30)))
    victim.kill()
    await wait_state(pool, address_of(victim), False)
    assert pool.servers == [
        ServerState(address_of(victim), False),
        *(ServerState(address_of(server), True) for server in survivors),
    ]
    # Many producers at once, single puts and batches, none of which may fail.
    singles = [pool.put(b"late %d" % n, key=(f"k{n}" if n % 2 else None)) for n in range(200)]
    batches = [pool.put_many([b"late batch %d" % n] * 10) for n in range(10)]
    late = list(await asyncio.gather(*singles))
    for results in await asyncio.gather(*batches):
        late.extend(results)  # type: ignore[arg-type]
    assert all(isinstance(ref, PoolJobRef) for ref in late)
    assert address_of(victim) not in {ref.server for ref in late}
    assert sum([await ready_jobs(server) for server in survivors]) == 20 + 300
    for ref in late[:5]:
        assert (await pool.peek(ref)).body.startswith(b"late")

    victim.start()  # the binlog brings its early jobs back
    await wait_state(pool, address_of(victim), True)
    mine = [ref for ref in early if ref.server == address_of(victim)]
    assert len(mine) == 10
    for ref in mine:
        assert (await pool.peek(ref)).body.startswith(b"early")
    refs = await asyncio.gather(*(pool.put(b"again") for _ in range(3)))
    assert {ref.server for ref in refs} == {address_of(server) for server in servers}


async def test_puts_in_flight_when_a_server_dies_land_or_say_connection_lost(
    pool: Pool, servers: list[BeanstalkdServer]
) -> None:
    victim = servers[0]
    in_flight = [pool.put(b"in flight %d" % n) for n in range(600)]
    victim.kill()
    outcomes = await asyncio.gather(*in_flight, return_exceptions=True)
    victim.start()
    await wait_state(pool, address_of(victim), True)
    lost = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert all(isinstance(error, ConnectionLost) for error in lost)
    for ref in outcomes:
        if isinstance(ref, PoolJobRef):
            assert (await pool.peek(ref)).body.startswith(b"in flight")
    stored = sum([await ready_jobs(server) for server in servers])
    acknowledged = len(outcomes) - len(lost)
    # Every acknowledged job is stored; a job that failed may exist (unknown outcome).
    assert acknowledged <= stored <= len(outcomes)
    print(f"{acknowledged} acknowledged, {len(lost)} unknown, {stored} stored")


class LosingProxy:
    """Forwards to a real server, but the first ``put`` it sees is stored and
    its reply withheld: the connection is dropped instead (outcome unknown)."""

    def __init__(self, upstream: BeanstalkdServer) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.trapped = 0
        self._server: Optional[asyncio.base_events.Server] = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.upstream.host, self.upstream.port)
        relay = asyncio.ensure_future(self._relay(up_reader, writer))
        try:
            while data := await reader.read(65536):
                if self.trapped == 0 and data.startswith(b"put "):
                    self.trapped += 1
                    up_writer.write(data)
                    await up_reader.readline()  # INSERTED: the job exists
                    break
                up_writer.write(data)
        finally:
            relay.cancel()
            writer.close()
            up_writer.close()

    @staticmethod
    async def _relay(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while data := await source.read(65536):
            sink.write(data)


@pytest.mark.parametrize("retry_unknown", [False, True])
async def test_unknown_outcome_fails_or_is_retried_on_request(
    servers: list[BeanstalkdServer], retry_unknown: bool
) -> None:
    proxy = LosingProxy(servers[0])
    await proxy.start()
    addresses = [f"127.0.0.1:{proxy.port}", *(address_of(server) for server in servers[1:])]
    try:
        async with Pool(addresses, retry_unknown=retry_unknown) as pool:
            # Round-robin starts with the first server: the proxy.
            if retry_unknown:
                ref = await pool.put(b"precious")
                assert ref.server in addresses[1:]
                assert (await pool.peek(ref)).body == b"precious"
            else:
                with pytest.raises(ConnectionLost, match="unknown"):
                    await pool.put(b"precious")
            assert proxy.trapped == 1
            # Written before the connection died: the job is there, and with
            # retry_unknown it is there twice (a duplicate, not a loss).
            stats = await pool.stats()
            assert (await ready_jobs(servers[0])) == 1
            assert sum([await ready_jobs(server) for server in servers]) == (
                2 if retry_unknown else 1
            )
            assert isinstance(stats.per_server[addresses[0]], (dict, NotConnected))
            await wait_state(pool, addresses[0], True)  # the client reconnects; re-admitted
    finally:
        await proxy.stop()


async def test_starting_with_a_server_down_admits_it_later(
    servers: list[BeanstalkdServer],
) -> None:
    late = BeanstalkdServer(binlog=True)  # a port, no process yet
    addresses = [address_of(server) for server in servers[:2]] + [address_of(late)]
    try:
        async with Pool(addresses) as pool:
            assert pool.servers[2] == ServerState(address_of(late), False)
            refs = await asyncio.gather(*(pool.put(b"early") for _ in range(10)))
            assert address_of(late) not in {ref.server for ref in refs}
            stats = await pool.stats()
            assert isinstance(stats.per_server[address_of(late)], NotConnected)
            assert stats.total["current-jobs-ready"] == 10
            late.start()
            await wait_state(pool, address_of(late), True)
            refs = await asyncio.gather(*(pool.put(b"later") for _ in range(3)))
            assert {ref.server for ref in refs} == set(addresses)
            # Once admitted, it is an ordinary member: lost and re-admitted.
            late.restart()
            await wait_state(pool, address_of(late), True)
    finally:
        late.stop()


async def test_no_server_at_all(servers: list[BeanstalkdServer]) -> None:
    nobody = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    with pytest.raises(NoServerAvailable, match="no server answered"):
        await Pool(nobody).connect()
    async with Pool([address_of(servers[0])], disconnected_timeout=0) as pool:
        servers[0].kill()
        await wait_state(pool, address_of(servers[0]), False)
        with pytest.raises(NoServerAvailable):
            await pool.put(b"nowhere")
        with pytest.raises(NoServerAvailable):
            await pool.put_many([b"nowhere"])
        with pytest.raises(NoServerAvailable):
            await pool.stats()


# --------------------------------------------------------------------------
# Aggregates.


async def test_aggregates_are_the_sums_of_the_servers(
    pool: Pool, servers: list[BeanstalkdServer]
) -> None:
    await asyncio.gather(*(pool.put(b"now", tube="agg") for _ in range(7)))
    await asyncio.gather(*(pool.put(b"later", delay=3600, tube="agg") for _ in range(5)))
    await pool.put_json({"n": 1}, tube="other")
    stats = await pool.stats()
    assert set(stats.per_server) == {address_of(server) for server in servers}
    for field in ("current-jobs-ready", "current-jobs-delayed", "total-jobs", "cmd-put"):
        assert stats.total[field] == sum(s[field] for s in stats.per_server.values())  # type: ignore[index]
    assert stats.total["current-jobs-ready"] == 8
    assert stats.total["current-jobs-delayed"] == 5
    assert "pid" not in stats.total and "version" not in stats.total

    tube = await pool.stats_tube("agg")
    assert tube.total["total-jobs"] == 12
    assert tube.total["current-jobs-delayed"] == 5
    other = await pool.stats_tube("other")
    assert other.total["total-jobs"] == 1
    assert sum(isinstance(value, NotFound) for value in other.per_server.values()) == 2
    with pytest.raises(NotFound):
        await pool.stats_tube("nowhere")

    tubes = await pool.list_tubes()
    assert tubes.tubes == ["agg", "default", "other"]

    kicked = await pool.kick(100, tube="agg")
    assert kicked.total == 5 == sum(kicked.per_server.values())  # type: ignore[arg-type]
    assert (await pool.stats_tube("agg")).total["current-jobs-ready"] == 12

    servers[2].kill()
    await wait_state(pool, address_of(servers[2]), False)
    partial = await pool.stats()
    assert isinstance(partial.per_server[address_of(servers[2])], NotConnected)
    assert partial.total["current-jobs-ready"] == sum(
        s["current-jobs-ready"] for s in partial.per_server.values() if isinstance(s, dict)
    )


# --------------------------------------------------------------------------
# Many coroutines at once.


async def test_many_coroutines_share_one_pool(pool: Pool, servers: list[BeanstalkdServer]) -> None:
    async def producer(number: int) -> list[PoolJobRef]:
        refs = []
        for sequence in range(10):
            refs.append(await pool.put(b"%d:%d" % (number, sequence), key=f"p{number}"))
        return refs

    results = await asyncio.gather(*(producer(number) for number in range(100)))
    for refs in results:
        assert len({ref.server for ref in refs}) == 1  # one key, one server...
        ids = [ref.id for ref in refs]
        assert ids == sorted(ids)  # ...in the order put
    assert sum([await ready_jobs(server) for server in servers]) == 1000

    # A cancelled put takes its client put with it.
    cancelled = pool.put(b"cancelled")
    cancelled.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await cancelled
    assert await pool.put(b"after") is not None


# --------------------------------------------------------------------------
# The command line.


def run_cli(*args: str, env: Optional[dict[str, str]] = None) -> subprocess.CompletedProcess[str]:
    """``python -m beanstalkt.cmd ARGS``, in this process, with only ``env``'s BEANSTALKD_*."""
    return cli(None, *args, env=environment(None, **(env or {})))


def test_cli_with_two_servers(servers: list[BeanstalkdServer]) -> None:
    first, second = (address_of(server) for server in servers[:2])
    flags = ["--server", first, "--server", second]
    placed = []
    for _ in range(16):  # a random server per run: both used (all on one: p = 3e-5)
        result = run_cli(*flags, "put", "--use", "clitube", "hello")
        assert result.returncode == 0, result.stderr
        placed.append(PoolJobRef.parse(result.stdout))
    assert {ref.server for ref in placed} == {first, second}
    keyed = {PoolJobRef.parse(run_cli(*flags, "put", "-k", "k1", "x").stdout) for _ in range(3)}
    assert len({ref.server for ref in keyed}) == 1

    stats = json.loads(run_cli(*flags, "stats").stdout)
    assert stats["total"]["current-jobs-ready"] == 19
    assert stats["total"]["current-jobs-ready"] == sum(
        each["current-jobs-ready"] for each in stats["servers"].values()
    )
    assert set(stats["servers"]) == {first, second}
    tube = json.loads(run_cli(*flags, "stats-tube", "clitube").stdout)
    assert tube["total"]["total-jobs"] == 16
    assert tube["servers"][first]["total-jobs"] == sum(ref.server == first for ref in placed)
    listing = json.loads(run_cli(*flags, "list").stdout)
    assert listing["total"] == ["clitube", "default"]

    env = {"BEANSTALKD_SERVERS": f"{first},{second}"}
    delayed = run_cli("put", "--use", "clitube", "--delay", "3600", "x", env=env)
    assert delayed.returncode == 0, delayed.stderr
    kicked = json.loads(run_cli("kick", "--use", "clitube", "--bound", "10", env=env).stdout)
    assert kicked["total"] == 1

    # One server: the single-server output, unchanged.
    single = run_cli("--server", first, "put", "one")
    assert single.stdout.strip().isdigit()
    refused = run_cli(*flags, "peek", "1")
    assert refused.returncode == 2
    assert "one server" in refused.stderr


# --------------------------------------------------------------------------
# The soak.


@pytest.mark.slow
async def test_soak_each_server_killed_and_restarted_under_load(
    servers: list[BeanstalkdServer], report: Callable[[str], None]
) -> None:
    total_puts = 20_000
    producers = 8
    acknowledged: list[PoolJobRef] = []
    bodies: dict[PoolJobRef, bytes] = {}
    unknown = 0
    other_failures: list[BaseException] = []
    pool = Pool([address_of(server) for server in servers])
    await pool.connect()
    stop_killing = asyncio.Event()

    async def produce(number: int) -> None:
        nonlocal unknown
        per_producer = total_puts // producers
        for start in range(0, per_producer, 50):
            payloads = [b"%d-%d" % (number, start + offset) for offset in range(50)]
            outcomes = await asyncio.gather(
                *(pool.put(payload) for payload in payloads), return_exceptions=True
            )
            for payload, outcome in zip(payloads, outcomes, strict=True):
                if isinstance(outcome, PoolJobRef):
                    acknowledged.append(outcome)
                    bodies[outcome] = payload
                elif isinstance(outcome, ConnectionLost):
                    unknown += 1
                else:
                    other_failures.append(outcome)

    async def kill_each_in_turn() -> None:
        for server in servers:
            await asyncio.sleep(0.2)
            # In a thread: the producers keep going while the process dies.
            await asyncio.to_thread(server.kill)
            await wait_state(pool, address_of(server), False)
            await asyncio.sleep(0.2)
            await asyncio.to_thread(server.start)
            await wait_state(pool, address_of(server), True)
        stop_killing.set()

    try:
        await asyncio.gather(kill_each_in_turn(), *(produce(n) for n in range(producers)))
        stored = (await pool.stats()).total["current-jobs-ready"]
        by_server: dict[str, list[PoolJobRef]] = collections.defaultdict(list)
        for ref in acknowledged:
            by_server[ref.server].append(ref)
        missing = 0
        for refs in by_server.values():
            jobs = await asyncio.gather(*(pool.peek(ref) for ref in refs), return_exceptions=True)
            for ref, job in zip(refs, jobs, strict=True):
                if isinstance(job, BaseException) or job.body != bodies[ref]:
                    missing += 1
    finally:
        await pool.close()
    report(
        f"soak: {total_puts} puts, {len(acknowledged)} acknowledged, {unknown} unknown outcome "
        f"(ConnectionLost), {stored} stored, {missing} lost, "
        f"{stored - len(acknowledged)} unknown-outcome jobs that landed"
    )
    assert stop_killing.is_set()
    assert other_failures == []
    assert missing == 0
    assert len(acknowledged) + unknown == total_puts
    assert len(acknowledged) <= stored <= total_puts

"""The server layer: backoff and liveness as values (no event loop), then real servers."""

from __future__ import annotations

import asyncio
import os
import random
import signal

import pytest

from beanstalkt.backoff import DEFAULT_BACKOFF, Backoff
from beanstalkt.servers import Action, Liveness, NoServerAvailable, ServerSet
from beanstalkt.testing import BeanstalkdServer, free_port

from .fake_server import FakeServer

HANG = 30.0  # a bound far above any honest wait: a test that reaches it has hung


# ----------------------------------------------------------------------
# Backoff: pure values.


def test_backoff_without_jitter_doubles_up_to_the_cap() -> None:
    policy = Backoff(base=0.5, cap=8.0, jitter=0.0)
    assert [policy.delay(n) for n in range(0, 8)] == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert policy.delay(10_000) == 8.0  # no overflow for a server down for weeks


def test_backoff_jitter_stays_within_its_band_and_follows_the_seed() -> None:
    policy = Backoff(base=1.0, cap=16.0, jitter=0.5)
    first = [policy.delay(n, random.Random(42)) for n in range(1, 7)]
    again = [policy.delay(n, random.Random(42)) for n in range(1, 7)]
    assert first == again
    draw = random.Random(42).random()
    assert first[2] == pytest.approx(4.0 * 0.5 + 4.0 * 0.5 * draw)
    for n, value in enumerate(first, start=1):
        ceiling = min(16.0, 2.0 ** (n - 1))
        assert ceiling / 2 <= value <= ceiling


def test_full_jitter_spreads_a_herd() -> None:
    policy = Backoff(base=1.0, cap=1.0, jitter=1.0)
    rng = random.Random(7)
    delays = [policy.delay(1, rng) for _ in range(500)]
    # 500 workers that lost one server come back spread over the second, not at once.
    assert min(delays) < 0.05 and max(delays) > 0.95
    assert len({round(delay, 3) for delay in delays}) > 300


def test_backoff_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="base"):
        Backoff(base=0)
    with pytest.raises(ValueError, match="cap"):
        Backoff(base=2, cap=1)
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter=1.5)
    assert Backoff(0.25, 10.0, 0.5) == DEFAULT_BACKOFF


# ----------------------------------------------------------------------
# Liveness: pure decisions over counts and timestamps.

EXACT = Backoff(base=1.0, cap=8.0, jitter=0.0)


def test_a_new_server_is_connected_at_once_and_live_only_once_it_answered() -> None:
    state = Liveness(EXACT, probe_interval=1.0, probe_timeout=3.0)
    assert state.next_step(100.0).action is Action.CONNECT
    state.connection_made(100.0)
    assert not state.live  # a TCP connect proves nothing
    assert state.next_step(100.0).action is Action.PROBE
    state.probe_sent(100.0)
    assert state.next_step(101.0) == (Action.WAIT, 103.0)
    assert state.probe_answered(100.5) is True
    assert state.live and state.settled()
    assert state.next_step(101.0) == (Action.WAIT, 101.5)
    assert state.next_step(101.5).action is Action.PROBE


def test_an_unanswered_probe_drops_the_server_after_probe_timeout_of_silence() -> None:
    state = Liveness(EXACT, probe_interval=1.0, probe_timeout=3.0)
    state.connection_made(0.0)
    state.probe_sent(0.0)
    state.probe_answered(0.1)
    state.probe_sent(1.1)
    # Replies keep arriving (a long batch ahead of the probe): not overdue.
    assert state.next_step(4.0, last_received=3.9) == (Action.WAIT, 6.9)
    assert state.next_step(6.9, last_received=3.9).action is Action.DROP
    assert state.connection_lost(6.9) is True
    assert not state.live and state.failures == 1
    # The client reconnects by itself; the layer waits for it.
    assert state.next_step(7.0) == (Action.WAIT, float("inf"))
    state.connection_made(7.2)
    # Re-admission waits for the backoff (1 s after the first failure), then a probe.
    assert state.next_step(7.2) == (Action.WAIT, 7.9)
    assert state.next_step(7.9).action is Action.PROBE


def test_failures_in_a_row_back_off_and_a_long_healthy_spell_resets_the_count() -> None:
    state = Liveness(EXACT, probe_interval=1.0, probe_timeout=3.0)
    for now in (0.0, 1.0, 3.0, 7.0):
        assert state.next_step(now).action is Action.CONNECT
        state.connect_failed(now)
    assert state.failures == 4 and state.retry_at == 7.0 + 8.0
    assert state.settled() and not state.live
    state.connection_made(15.0)
    state.probe_sent(15.0)
    state.probe_answered(15.1)
    # Garbage after 2 s of life: still the same streak (a server that answers
    # probes and fails every command keeps its long delay).
    state.connection_lost(17.0)
    assert state.failures == 5 and state.retry_at == 17.0 + 8.0
    state.connection_made(25.0)
    state.probe_sent(25.0)
    state.probe_answered(25.0)
    # Live for longer than the cap: the next failure starts a new streak.
    state.connection_lost(40.0)
    assert state.failures == 1 and state.retry_at == 41.0


def test_a_probe_answered_for_a_lost_connection_admits_nothing() -> None:
    state = Liveness(EXACT)
    state.connection_made(0.0)
    state.probe_sent(0.0)
    state.connection_lost(0.5)
    assert state.probe_answered(0.6) is False
    assert not state.live


# ----------------------------------------------------------------------
# ServerSet against real servers (and fakes for what a real one cannot do).


async def _eventually(condition: object, bound: float = HANG) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    while not condition():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def test_the_same_server_written_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="listed twice"):
        ServerSet(["localhost", "localhost:11300"])
    with pytest.raises(ValueError, match="listed twice"):
        ServerSet([("127.0.0.1", 5), "127.0.0.1:5"])
    with pytest.raises(TypeError, match="one string"):
        ServerSet("localhost:11300")


async def test_start_returns_with_the_answering_servers_live_and_records_their_pids(
    servers: list[BeanstalkdServer],
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    addresses = [f"127.0.0.1:{server.port}" for server in servers] + [dead]
    changes: list[tuple[str, bool]] = []
    async with ServerSet(addresses) as server_set:
        server_set.add_listener(lambda server, live: changes.append((server.address, live)))
        await _eventually(lambda: len(server_set.live) == 3)
        assert [server.address for server in server_set.live] == addresses[:3]
        assert [s.pid for s in server_set.live] == [server.process.pid for server in servers]  # type: ignore[union-attr]
        assert not server_set.get(dead).live
        assert server_set.get(dead).liveness.failures >= 1
        # Any spelling finds the server.
        assert server_set.get(f"127.0.0.1:{servers[0].port}") is server_set.servers[0]
        servers[1].kill()
        await _eventually(lambda: (addresses[1], False) in changes)
        assert len(server_set.live) == 2
        servers[1].start()
        await _eventually(lambda: server_set.servers[1].live)
        assert server_set.servers[1].pid == servers[1].process.pid  # type: ignore[union-attr]
        assert server_set.servers[1].restarts == 1
        assert changes == [(addresses[1], False), (addresses[1], True)]


async def test_start_fails_fast_when_every_server_refuses() -> None:
    server_set = ServerSet([f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"])
    with pytest.raises(NoServerAvailable, match="no server answered"):
        await asyncio.wait_for(server_set.start(), HANG)
    assert server_set.closed


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
    await reader.read()  # accepts, reads, never answers: a hung server


async def test_a_listener_that_never_answers_is_never_live_and_start_ends_at_its_bound() -> None:
    async with FakeServer(_silent) as fake:
        server_set = ServerSet([f"127.0.0.1:{fake.port}"], probe_timeout=0.5, start_timeout=2.0)
        with pytest.raises(NoServerAvailable, match="left a probe unanswered"):
            await asyncio.wait_for(server_set.start(), HANG)
        assert fake.connections >= 1


async def test_a_silent_listener_beside_a_healthy_server_keeps_out_of_rotation(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with (
        FakeServer(_silent) as fake,
        ServerSet(
            [f"127.0.0.1:{fake.port}", f"127.0.0.1:{beanstalkd.port}"],
            probe_interval=0.2,
            probe_timeout=0.5,
        ) as server_set,
    ):
        assert [server.address for server in server_set.live] == [f"127.0.0.1:{beanstalkd.port}"]
        await _eventually(lambda: fake.connections >= 2)  # dropped, tried again
        assert not server_set.servers[0].live


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
    await reader.readline()
    writer.write(b"HELLO THERE\r\n")
    await writer.drain()
    await reader.read()


async def test_a_garbage_speaking_address_is_never_live_and_is_retried_with_backoff() -> None:
    async with FakeServer(_garbage) as fake:
        server_set = ServerSet(
            [f"127.0.0.1:{fake.port}"], backoff=Backoff(base=0.2, cap=0.4, jitter=0.0)
        )
        with pytest.raises(NoServerAvailable):
            await asyncio.wait_for(server_set.start(), HANG)


async def test_a_frozen_server_drops_out_and_comes_back_when_it_answers(
    beanstalkd: BeanstalkdServer,
) -> None:
    assert beanstalkd.process is not None
    pid = beanstalkd.process.pid
    async with ServerSet(
        [f"127.0.0.1:{beanstalkd.port}"], probe_interval=0.2, probe_timeout=0.5
    ) as server_set:
        server = server_set.servers[0]
        assert server.live and server.pid == pid
        os.kill(pid, signal.SIGSTOP)
        try:
            await _eventually(lambda: not server.live)
        finally:
            os.kill(pid, signal.SIGCONT)
        await _eventually(lambda: server.live)
        assert server.restarts == 0  # the same process: not a restart


async def test_new_client_has_the_set_options(beanstalkd: BeanstalkdServer) -> None:
    server_set = ServerSet([f"127.0.0.1:{beanstalkd.port}"], encoding="utf-8", stall_timeout=3.0)
    client = server_set.new_client("127.0.0.1", beanstalkd.port)
    assert client._connection.stall_timeout == 3.0
    async with client:
        await client.put("text")
        job = await client.reserve(timeout=0)
        assert job.body == "text"


def test_a_probe_refused_by_a_full_client_is_no_verdict() -> None:
    state = Liveness(EXACT, probe_interval=1.0, probe_timeout=3.0)
    state.connection_made(0.0)
    state.probe_sent(0.0)
    state.probe_answered(0.0)
    state.probe_sent(1.0)
    state.probe_refused(1.0)  # BufferFull: nothing was sent
    assert state.live
    # Not overdue later, however quiet the connection: the next probe is due instead.
    assert state.next_step(10.0, last_received=0.0).action is Action.PROBE


def test_times_take_timedeltas_and_start_stays_bounded_without_a_connect_timeout() -> None:
    import datetime

    server_set = ServerSet(
        ["127.0.0.1:1"],
        connect_timeout=datetime.timedelta(seconds=2),
        probe_timeout=datetime.timedelta(milliseconds=500),
    )
    assert server_set.start_timeout == 2.5 and server_set.probe_timeout == 0.5
    unbounded = ServerSet(["127.0.0.1:1"], connect_timeout=None)
    assert unbounded.start_timeout == 5.0 + 3.0  # the OS's connect limit does not leak into start()
    with pytest.raises(ValueError):
        ServerSet(["127.0.0.1:1"], probe_interval=0)

"""Reconnect, session restore, and the fate of in-flight commands (real beanstalkd, killed)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest

import beanstalkt
from beanstalkt.testing import BeanstalkdServer

from .fake_server import FakeServer, answer_puts_properly

# Generous bound against hangs; the behaviour under test takes ~1-2 s.
HANG = 15


async def wait_until_connected(client: beanstalkt.Client, limit: float = HANG) -> float:
    """Seconds until ``client`` is connected again (fails the test past ``limit``)."""
    started = time.monotonic()
    while client.closed():
        assert time.monotonic() - started < limit, "client did not reconnect"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def total_connections(server: BeanstalkdServer) -> int:
    async with beanstalkt.Client(server.host, server.port) as probe:
        stats = await probe.stats()
    return stats["total-connections"]


async def test_reconnects_after_kill_and_restores_session(
    beanstalkd_with_binlog: BeanstalkdServer,
) -> None:
    server = beanstalkd_with_binlog
    client = beanstalkt.Client(server.host, server.port)
    reconnects = []
    client.set_reconnect_callback(lambda: reconnects.append(time.monotonic()))
    await client.connect()
    await client.use("orders")
    await client.watch("orders")
    await client.ignore("default")
    kept_id = await client.put(b"before the crash")

    server.kill()
    # The client notices the dead socket and starts retrying by itself.
    while not client.closed():
        await asyncio.sleep(0.01)
    during_outage = client.put(b"during the outage")
    server.start()
    # A job in an ignored tube must not be reserved after the restore.
    async with beanstalkt.Client(server.host, server.port) as other:
        default_job = await other.put(b"in default")

    assert await wait_until_connected(client) < 3
    outage_id = await asyncio.wait_for(during_outage, HANG)

    assert reconnects and len(reconnects) == 1
    assert await client.list_tube_used() == "orders"
    assert await client.list_tubes_watched() == ["orders"]
    assert (await client.stats_job(outage_id))["tube"] == "orders"
    job = await client.reserve(timeout=0)
    assert job == {"id": kept_id, "body": b"before the crash"}  # survived via the binlog
    await client.delete(job.id)
    job = await client.reserve(timeout=0)
    assert job.id == outage_id
    await client.delete(job.id)
    with pytest.raises(beanstalkt.TimedOut):
        await client.reserve(timeout=0)
    assert (await client.stats_job(default_job))["state"] == "ready"
    await client.close()


async def test_blocking_reserve_fails_promptly_when_server_dies(
    beanstalkd: BeanstalkdServer,
) -> None:
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port)
    await client.connect()
    reserve = client.reserve()
    await asyncio.sleep(0.1)
    assert not reserve.done()
    beanstalkd.kill()
    with pytest.raises(beanstalkt.ConnectionLost) as raised:
        await asyncio.wait_for(reserve, 2)
    assert isinstance(raised.value, ConnectionError)
    assert raised.value.command == "reserve"
    beanstalkd.start()
    await wait_until_connected(client)
    job_id = await client.put(b"after")
    assert (await client.reserve(timeout=0)).id == job_id
    await client.close()


async def test_close_during_outage_stops_all_attempts(beanstalkd: BeanstalkdServer) -> None:
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port, reconnect_interval=0.1)
    await client.connect()
    beanstalkd.kill()
    while not client.closed():
        await asyncio.sleep(0.01)
    waiting = client.put(b"never sent")
    await asyncio.sleep(0.3)  # a few failed attempts
    await client.close()
    with pytest.raises(beanstalkt.NotConnected):
        await waiting
    beanstalkd.start()
    before = await total_connections(beanstalkd)
    await asyncio.sleep(0.6)  # six retry intervals: any attempt would show
    assert await total_connections(beanstalkd) == before + 1  # only the second probe
    with pytest.raises(beanstalkt.NotConnected):
        await client.put(b"after close")


async def test_commands_in_flight_each_complete_or_fail_with_connection_lost(
    beanstalkd: BeanstalkdServer,
) -> None:
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port)
    await client.connect()
    bodies = [b"job-%d" % i for i in range(20000)]
    puts = [client.put(body) for body in bodies]
    await asyncio.sleep(0)  # let the first flush reach the socket
    beanstalkd.kill()
    results = await asyncio.wait_for(asyncio.gather(*puts, return_exceptions=True), HANG)
    ids = [r for r in results if isinstance(r, int)]
    failures = [r for r in results if not isinstance(r, int)]
    assert all(isinstance(f, beanstalkt.ConnectionLost) for f in failures), failures[:3]
    # Completed ones are exactly a prefix, in order: no reply went to the wrong command.
    assert results[: len(ids)] == list(range(1, len(ids) + 1))
    assert failures, "the kill should have caught some puts in flight"
    await client.close()


async def test_unsent_commands_wait_and_go_out_after_reconnect(
    beanstalkd_with_binlog: BeanstalkdServer,
) -> None:
    server = beanstalkd_with_binlog
    client = beanstalkt.Client(server.host, server.port, reconnect_interval=0.2)
    await client.connect()
    server.kill()
    while not client.closed():
        await asyncio.sleep(0.01)
    queued = [client.put(b"queued-%d" % i) for i in range(100)]
    await asyncio.sleep(0.5)
    assert not any(f.done() for f in queued)
    server.start()
    ids = await asyncio.wait_for(asyncio.gather(*queued), HANG)
    assert ids == sorted(ids) and len(set(ids)) == 100
    for index, job_id in enumerate(ids):
        assert (await client.peek(job_id)).body == b"queued-%d" % index
    await client.close()


async def test_unsent_reservation_commands_are_not_replayed_after_a_drop(
    beanstalkd: BeanstalkdServer,
) -> None:
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port, reconnect_interval=0.1)
    await client.connect()
    await client.put(b"job")
    job = await client.reserve(timeout=0)
    connection = client._connection
    written = client.put(b"written")  # nothing owed: written at once
    deleting = client.delete(job.id)  # queued behind it, not yet written
    touching = client.touch(job.id)
    queued_put = client.put(b"queued")
    assert connection.pipeline.unsent_tokens() == [deleting, touching, queued_put]
    # The connection ends before the loop turn that would flush the queue.
    assert connection._stream is not None
    connection._drop(connection._stream, "simulated drop")
    for future in (written, deleting, touching):
        with pytest.raises(beanstalkt.ConnectionLost):
            await future
    with pytest.raises(beanstalkt.ConnectionLost, match="reservation ended"):
        await deleting
    # An ordinary command queued with them waits and goes out after the reconnect.
    queued_id = await asyncio.wait_for(queued_put, HANG)
    assert (await client.peek(queued_id)).body == b"queued"
    # The job was released by the server with its reservation, not deleted.
    assert (await client.stats_job(job.id))["state"] == "ready"
    await client.close()


async def test_disconnected_timeout_bounds_the_wait(beanstalkd: BeanstalkdServer) -> None:
    client = beanstalkt.Client(
        beanstalkd.host, beanstalkd.port, reconnect_interval=0.2, disconnected_timeout=0.3
    )
    await client.connect()
    beanstalkd.kill()
    while not client.closed():
        await asyncio.sleep(0.01)
    started = time.monotonic()
    with pytest.raises(beanstalkt.NotConnected, match=r"within 0\.3s"):
        await asyncio.wait_for(client.put(b"x"), HANG)
    assert time.monotonic() - started < 5
    beanstalkd.start()
    await wait_until_connected(client)
    assert await client.put(b"y") >= 1
    await client.close()


async def test_first_connect_fails_fast_and_does_not_retry() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    client = beanstalkt.Client("127.0.0.1", port)
    with pytest.raises(beanstalkt.ConnectFailed, match=f"127.0.0.1:{port}") as raised:
        await asyncio.wait_for(client.connect(), HANG)
    assert isinstance(raised.value, ConnectionError)
    # The OS's reason, not Tornado's generic "Stream is closed".
    assert "Connection refused" in str(raised.value)
    assert "Stream is closed" not in str(raised.value)
    assert client.closed()
    with pytest.raises(beanstalkt.NotConnected):
        await client.put(b"x")


async def test_connect_timeout_is_honoured() -> None:
    # A listener whose backlog is full: the kernel drops further SYNs, so
    # connecting hangs until the client's own timeout.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler = socket.create_connection(("127.0.0.1", port))
        try:
            client = beanstalkt.Client("127.0.0.1", port, connect_timeout=0.3)
            started = time.monotonic()
            with pytest.raises(beanstalkt.ConnectFailed, match="timed out"):
                await asyncio.wait_for(client.connect(), HANG)
            assert time.monotonic() - started < 5
        finally:
            filler.close()


async def test_garbage_reply_fails_pending_and_reconnects() -> None:
    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int
    ) -> None:
        if index == 0:
            await reader.readline()
            writer.write(b"HELLO WORLD\r\nINSERTED 1\r\n")
            await writer.drain()
            await reader.read()  # until the client hangs up
        else:
            await answer_puts_properly(reader, writer)

    async with FakeServer(script) as fake:
        client = beanstalkt.Client("127.0.0.1", fake.port, reconnect_interval=0.1)
        await client.connect()
        first, second = client.put(b"a"), client.put(b"b")
        for future in (first, second):
            with pytest.raises(beanstalkt.UnexpectedResponse, match="out of sync"):
                await asyncio.wait_for(future, HANG)
        await wait_until_connected(client)
        assert await asyncio.wait_for(client.put(b"c"), HANG) == 1
        assert fake.connections == 2
        await client.close()


async def test_replies_before_garbage_in_the_same_read_are_delivered() -> None:
    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int
    ) -> None:
        if index == 0:
            for _ in range(3):
                await reader.readline()
                await reader.readline()  # the body line
            # One segment: a good reply, then garbage.
            writer.write(b"INSERTED 7\r\nHELLO WORLD\r\n")
            await writer.drain()
            await reader.read()
        else:
            await answer_puts_properly(reader, writer)

    async with FakeServer(script) as fake:
        client = beanstalkt.Client("127.0.0.1", fake.port, reconnect_interval=0.1)
        await client.connect()
        first, second, third = client.put(b"a"), client.put(b"b"), client.put(b"c")
        # The server did run the first put: its id is not thrown away.
        assert await asyncio.wait_for(first, HANG) == 7
        for future in (second, third):
            with pytest.raises(beanstalkt.UnexpectedResponse, match="out of sync"):
                await asyncio.wait_for(future, HANG)
        await wait_until_connected(client)
        assert await asyncio.wait_for(client.put(b"d"), HANG) == 1
        await client.close()


async def test_damaged_job_body_fails_that_reserve_only() -> None:
    # What beanstalkd sends for a job whose binlog record a crash cut short.
    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int
    ) -> None:
        assert (await reader.readline()).startswith(b"reserve-with-timeout")
        writer.write(b"RESERVED 42 5\r\n" + b"\x00" * 7)
        await writer.drain()
        await answer_puts_properly(reader, writer)

    async with FakeServer(script) as fake:
        client = beanstalkt.Client("127.0.0.1", fake.port)
        await client.connect()
        with pytest.raises(beanstalkt.BadJob) as raised:
            await asyncio.wait_for(client.reserve(timeout=0), HANG)
        assert raised.value.job_id == 42
        # The stream is still in sync: same connection, next reply to the next command.
        assert await asyncio.wait_for(client.put(b"next"), HANG) == 1
        assert fake.connections == 1 and not client.closed()
        await client.close()


async def test_stalled_server_is_treated_as_lost() -> None:
    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int
    ) -> None:
        if index == 0:
            await reader.readline()
            writer.write(b"INSERT")  # half a reply, then silence
            await writer.drain()
            await asyncio.sleep(HANG)
        else:
            await answer_puts_properly(reader, writer)

    async with FakeServer(script) as fake:
        client = beanstalkt.Client(
            "127.0.0.1", fake.port, stall_timeout=0.3, reconnect_interval=0.1
        )
        await client.connect()
        started = time.monotonic()
        with pytest.raises(beanstalkt.ConnectionLost, match="sent nothing for"):
            await asyncio.wait_for(client.put(b"a"), HANG)
        assert time.monotonic() - started < 5
        await wait_until_connected(client)
        assert await asyncio.wait_for(client.put(b"b"), HANG) == 1
        await client.close()


async def test_stall_guard_leaves_blocking_reserve_alone(beanstalkd: BeanstalkdServer) -> None:
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port, stall_timeout=0.2)
    await client.connect()
    reserve = client.reserve(timeout=1)  # silent for a second, by design
    with pytest.raises(beanstalkt.TimedOut):
        await asyncio.wait_for(reserve, HANG)
    blocking = client.reserve()
    await asyncio.sleep(0.8)
    assert not blocking.done() and not client.closed()
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as producer:
        job_id = await producer.put(b"finally")
    assert (await asyncio.wait_for(blocking, HANG)).id == job_id
    await client.close()


async def test_server_closing_mid_body_fails_and_recovers() -> None:
    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int
    ) -> None:
        if index == 0:
            await reader.readline()
            writer.write(b"RESERVED 7 100\r\nonly part of the bo")
            await writer.drain()
            return  # closes the connection mid-body
        while True:
            line = await reader.readline()
            if not line:
                return
            if line.startswith(b"reserve"):
                writer.write(b"RESERVED 8 4\r\nbody\r\n")
            await writer.drain()

    async with FakeServer(script) as fake:
        client = beanstalkt.Client("127.0.0.1", fake.port, reconnect_interval=0.1)
        await client.connect()
        with pytest.raises(beanstalkt.ConnectionLost, match="outcome of 'reserve' unknown"):
            await asyncio.wait_for(client.reserve(), HANG)
        await wait_until_connected(client)
        job = await asyncio.wait_for(client.reserve(), HANG)
        assert job == {"id": 8, "body": b"body"}
        await client.close()


async def test_reconnect_is_logged(
    beanstalkd: BeanstalkdServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="beanstalkt")
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port, reconnect_interval=0.1)
    await client.connect()
    beanstalkd.kill()
    while not client.closed():
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.25)
    beanstalkd.start()
    await wait_until_connected(client)
    messages = [record.getMessage() for record in caplog.records if record.name == "beanstalkt"]
    assert any("lost" in message and "reconnecting" in message for message in messages)
    assert any("reconnect attempt" in message for message in messages)
    assert any("reconnected to" in message for message in messages)
    await client.close()


async def test_async_reconnect_callback_runs(beanstalkd: BeanstalkdServer) -> None:
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port, reconnect_interval=0.1)
    seen: list[str] = []

    async def on_reconnect() -> None:
        seen.append(await client.list_tube_used())

    client.set_reconnect_callback(on_reconnect)
    await client.connect()
    await client.use("restored")
    beanstalkd.kill()
    while not client.closed():
        await asyncio.sleep(0.01)
    beanstalkd.start()
    await wait_until_connected(client)
    for _ in range(200):
        if seen:
            break
        await asyncio.sleep(0.01)
    assert seen == ["restored"]
    await client.close()


async def test_half_closed_socket_is_treated_as_lost() -> None:
    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int
    ) -> None:
        if index == 0:
            await reader.readline()
            writer.write_eof()  # the server stops sending but keeps reading
            await reader.read()
        else:
            await answer_puts_properly(reader, writer)

    async with FakeServer(script) as fake:
        client = beanstalkt.Client("127.0.0.1", fake.port, reconnect_interval=0.1)
        await client.connect()
        with pytest.raises(beanstalkt.ConnectionLost, match="closed by the server"):
            await asyncio.wait_for(client.put(b"a"), HANG)
        await wait_until_connected(client)
        assert await asyncio.wait_for(client.put(b"b"), HANG) == 1
        await client.close()


async def test_connect_while_reconnecting_waits_for_the_reconnect(
    beanstalkd: BeanstalkdServer,
) -> None:
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port, reconnect_interval=0.1)
    await client.connect()
    beanstalkd.kill()
    while not client.closed():
        await asyncio.sleep(0.01)
    reconnected = client.connect()
    await asyncio.sleep(0.3)
    assert not reconnected.done()
    beanstalkd.start()
    await asyncio.wait_for(reconnected, HANG)
    assert not client.closed()
    await client.close()


async def test_connect_again_right_after_close_during_connect(
    beanstalkd: BeanstalkdServer,
) -> None:
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port)
    first = client.connect()
    await client.close()
    second = client.connect()  # a new attempt while the first is still under way
    queued = client.put(b"after the second connect")
    with pytest.raises(beanstalkt.NotConnected, match="closed while connecting"):
        await asyncio.wait_for(first, HANG)
    await asyncio.wait_for(second, HANG)
    job_id = await asyncio.wait_for(queued, HANG)
    assert (await client.peek(job_id)).body == b"after the second connect"
    assert not client.closed()
    await client.close()

"""Pipelining against a real beanstalkd: order, mixed replies, and what goes over the wire.

A small asyncio TCP proxy sits between client and server where the test needs
to see (or reshape) the byte stream: it records every read it makes, and can
forward the server's replies one byte at a time or all in one write.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, Optional

import pytest

import beanstalkt
from beanstalkt.protocol import Reply, ReplyParser
from beanstalkt.testing import BeanstalkdServer

# Bound against hangs only; nothing here asserts on durations.
HANG = 15


class Proxy:
    """A TCP proxy in front of beanstalkd that records what it reads in each direction.

    ``mode`` shapes the server-to-client direction:

    * ``"forward"``: every read is written on at once;
    * ``"trickle"``: one byte per write, with a drain and loop turns after each;
    * ``"coalesce"``: replies are held until the held bytes end with
      ``release_marker``, then written in one go.
    """

    def __init__(
        self,
        upstream: BeanstalkdServer,
        mode: str = "forward",
        release_marker: Optional[bytes] = None,
    ) -> None:
        assert mode in ("forward", "trickle", "coalesce")
        assert (mode == "coalesce") == (release_marker is not None)
        self.upstream = upstream
        self.mode = mode
        self.release_marker = release_marker
        self.port = 0
        # (direction, bytes of one read): "c2s" client to server, "s2c" back.
        self.events: list[tuple[str, bytes]] = []
        self.client_writes = 0  # writes made towards the client
        self._server: Optional[asyncio.AbstractServer] = None
        self._tasks: list[asyncio.Task[None]] = []
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.upstream.host, self.upstream.port)
        self._writers += [writer, up_writer]
        self._tasks.append(asyncio.ensure_future(self._client_to_server(reader, up_writer)))
        self._tasks.append(asyncio.ensure_future(self._server_to_client(up_reader, writer)))

    async def _client_to_server(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            data = await reader.read(1 << 20)
            if not data:
                writer.close()
                return
            self.events.append(("c2s", data))
            writer.write(data)
            await writer.drain()

    async def _server_to_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        held = b""
        while True:
            data = await reader.read(1 << 20)
            if not data:
                writer.close()
                return
            self.events.append(("s2c", data))
            if self.mode == "forward":
                await self._write(writer, data)
            elif self.mode == "trickle":
                for index in range(len(data)):
                    await self._write(writer, data[index : index + 1])
                    # Let the client read (and parse) this byte on its own.
                    for _ in range(3):
                        await asyncio.sleep(0)
            else:
                held += data
                assert self.release_marker is not None
                if held.endswith(self.release_marker):
                    await self._write(writer, held)
                    held = b""

    async def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        self.client_writes += 1
        writer.write(data)
        await writer.drain()

    def sent_by_client(self) -> bytes:
        return b"".join(data for direction, data in self.events if direction == "c2s")


def command_ends(stream: bytes) -> list[int]:
    """Offsets just past each complete command in a client-to-server byte stream."""
    ends: list[int] = []
    position = 0
    while True:
        line_end = stream.find(b"\r\n", position)
        if line_end < 0:
            return ends
        words = stream[position:line_end].split()
        position = line_end + 2
        if words[0] == b"put":
            position += int(words[4]) + 2
            if position > len(stream):
                return ends
        ends.append(position)


@pytest.fixture
def fed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the chunks the client's reply parsers are fed during the test."""
    sizes: list[int] = []
    original_feed = ReplyParser.feed

    def recording_feed(self: ReplyParser, data: bytes) -> list[Reply]:
        sizes.append(len(data))
        return original_feed(self, data)

    monkeypatch.setattr(ReplyParser, "feed", recording_feed)
    return sizes


# ----------------------------------------------------------------------
# Order and reply matching.


async def test_ten_thousand_gathered_puts_get_increasing_ids_in_issue_order(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        ids = await asyncio.wait_for(
            asyncio.gather(*[client.put(b"x%d" % i) for i in range(10000)]), HANG
        )
        assert len(ids) == 10000
        assert all(earlier < later for earlier, later in itertools.pairwise(ids))
        sample = [*range(0, 10000, 613), 9999]
        jobs = await asyncio.gather(*[client.peek(ids[i]) for i in sample])
        for i, job in zip(sample, jobs, strict=True):
            assert job == {"id": ids[i], "body": b"x%d" % i}
        stats = await client.stats()
        assert stats["current-jobs-ready"] == 10000
        assert stats["cmd-put"] == 10000


async def test_mixed_pipelined_burst_matches_every_reply_despite_failures(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        # All issued in one burst; nothing is awaited until the end. A fresh
        # server numbers jobs from 1.
        burst: list[tuple[str, asyncio.Future[Any]]] = [
            ("put one", client.put(b"one")),
            ("use mixed", client.use("mixed")),
            ("peek missing", client.peek(999999)),
            ("put two", client.put(b"two\r\nwith CRLF")),
            ("stats-tube mixed", client.stats_tube("mixed")),
            ("delete missing", client.delete(999999)),
            ("watch mixed", client.watch("mixed")),
            ("reserve first", client.reserve(timeout=0)),
            ("stats-tube missing", client.stats_tube("no-such-tube")),
            ("delete 1", client.delete(1)),
            ("peek 2", client.peek(2)),
            ("peek 1 deleted", client.peek(1)),
            ("list-tubes", client.list_tubes()),
            ("kick", client.kick(5)),
            ("reserve second", client.reserve(timeout=0)),
            ("reserve none", client.reserve(timeout=0)),
            ("ignore last-but-one", client.ignore("default")),
            ("ignore last", client.ignore("mixed")),
            ("list-tube-used", client.list_tube_used()),
            ("list-tubes-watched", client.list_tubes_watched()),
            ("stats-job 2", client.stats_job(2)),
            ("release 2", client.release(2, priority=7)),
            ("touch missing", client.touch(424242)),
            ("peek-ready", client.peek_ready()),
            ("stats", client.stats()),
        ]
        results = await asyncio.wait_for(
            asyncio.gather(*[future for _, future in burst], return_exceptions=True), HANG
        )
        got: dict[str, Any] = dict(zip([name for name, _ in burst], results, strict=True))

    assert got["put one"] == 1
    assert got["use mixed"] == "mixed"
    assert isinstance(got["peek missing"], beanstalkt.NotFound)
    assert "peek 999999" in str(got["peek missing"])
    assert got["put two"] == 2
    assert isinstance(got["stats-tube mixed"], dict)
    assert got["stats-tube mixed"]["name"] == "mixed"
    assert got["stats-tube mixed"]["current-jobs-ready"] == 1
    assert isinstance(got["delete missing"], beanstalkt.NotFound)
    assert got["watch mixed"] == 2
    assert got["reserve first"] == beanstalkt.Job(1, b"one")
    assert isinstance(got["stats-tube missing"], beanstalkt.NotFound)
    assert got["delete 1"] is None
    assert got["peek 2"] == beanstalkt.Job(2, b"two\r\nwith CRLF")
    assert isinstance(got["peek 1 deleted"], beanstalkt.NotFound)
    assert got["list-tubes"] == ["default", "mixed"]
    assert got["kick"] == 0
    assert got["reserve second"] == beanstalkt.Job(2, b"two\r\nwith CRLF")
    assert isinstance(got["reserve none"], beanstalkt.TimedOut)
    assert got["ignore last-but-one"] == 1
    assert isinstance(got["ignore last"], beanstalkt.NotIgnored)
    assert got["list-tube-used"] == "mixed"
    assert got["list-tubes-watched"] == ["mixed"]
    assert got["stats-job 2"]["state"] == "reserved"
    assert got["stats-job 2"]["tube"] == "mixed"
    assert got["release 2"] is None
    assert isinstance(got["touch missing"], beanstalkt.NotFound)
    assert got["peek-ready"] == beanstalkt.Job(2, b"two\r\nwith CRLF")
    assert got["stats"]["cmd-put"] == 2
    assert got["stats"]["cmd-peek"] == 3
    assert got["stats"]["current-jobs-ready"] == 1
    # The session followed the successful replies only.
    assert client.using == "mixed"
    assert client.watching == ["mixed"]


async def test_replies_after_a_failed_burst_still_match_on_the_same_client(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        failures = [client.peek(900000 + i) for i in range(200)]
        job_id = client.put(b"after the failures")
        outcomes = await asyncio.gather(*failures, return_exceptions=True)
        assert all(isinstance(outcome, beanstalkt.NotFound) for outcome in outcomes)
        assert [str(outcome) for outcome in outcomes[:2]] == [
            "NOT_FOUND in reply to 'peek 900000'",
            "NOT_FOUND in reply to 'peek 900001'",
        ]
        assert (await client.peek(await job_id)).body == b"after the failures"
        assert client.in_flight == 0


# ----------------------------------------------------------------------
# What goes over the wire.


async def test_a_thousand_unawaited_puts_reach_the_server_in_few_reads(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with Proxy(beanstalkd) as proxy, beanstalkt.Client("127.0.0.1", proxy.port) as client:
        futures = [client.put(b"p%d" % i) for i in range(1000)]
        ids = await asyncio.wait_for(asyncio.gather(*futures), HANG)
        assert ids == list(range(1, 1001))

        stream = proxy.sent_by_client()
        ends = command_ends(stream)
        assert len(ends) == 1000
        assert ends[-1] == len(stream)

        # Commands complete in each client-to-server read, and how many had
        # arrived before the proxy read the server's first reply.
        per_read = []
        offset = 0
        before_first_reply: Optional[int] = None
        for direction, data in proxy.events:
            if direction == "s2c":
                if before_first_reply is None:
                    before_first_reply = sum(1 for end in ends if end <= offset)
                continue
            start, offset = offset, offset + len(data)
            per_read.append(sum(1 for end in ends if start < end <= offset))
        # A lock-step client would show one command per read and 1 here.
        assert max(per_read) >= 900, per_read
        assert len(per_read) <= 3, per_read
        assert before_first_reply is not None
        assert before_first_reply >= 999, (before_first_reply, per_read)


async def test_trickled_replies_one_byte_at_a_time_are_parsed(
    beanstalkd: BeanstalkdServer, fed: list[int]
) -> None:
    body = b"RESERVED 1 5\r\nline two\r\n\r\nINSERTED 3\r\n"
    async with (
        Proxy(beanstalkd, mode="trickle") as proxy,
        beanstalkt.Client("127.0.0.1", proxy.port) as client,
    ):
        puts = [client.put(b"job %d" % i) for i in range(20)]
        tricky = client.put(body, priority=0)
        reserved = client.reserve(timeout=0)
        stats = client.stats()
        missing = client.peek(777777)
        tubes = client.list_tubes()
        results = await asyncio.wait_for(
            asyncio.gather(*puts, tricky, reserved, stats, missing, tubes, return_exceptions=True),
            HANG,
        )
        assert results[:21] == list(range(1, 22))
        assert results[21] == beanstalkt.Job(21, body)
        server_stats = results[22]
        assert isinstance(server_stats, dict)
        assert server_stats["cmd-put"] == 21
        assert server_stats["current-jobs-reserved"] == 1
        assert server_stats["version"] == "1.12"
        assert isinstance(server_stats["rusage-utime"], float)
        assert isinstance(server_stats["draining"], bool)
        assert isinstance(results[23], beanstalkt.NotFound)
        assert results[24] == ["default"]
        # Every reply byte really was written on its own.
        reply_bytes = sum(len(data) for direction, data in proxy.events if direction == "s2c")
        assert proxy.client_writes == reply_bytes > 1000
        # ... and reached the client's parser mostly on its own too.
        assert sum(fed) == reply_bytes
        assert len(fed) > reply_bytes // 2, sorted(fed)[-10:]
        await client.delete(21)
        assert client.in_flight == 0


async def test_coalesced_replies_in_one_write_are_all_matched(
    beanstalkd: BeanstalkdServer, fed: list[int]
) -> None:
    marker = b"USING coalesce-end\r\n"
    body = b"a body\r\nwith OK 12\r\nlines"
    async with (
        Proxy(beanstalkd, mode="coalesce", release_marker=marker) as proxy,
        beanstalkt.Client("127.0.0.1", proxy.port) as client,
    ):
        # connect() sent nothing, so the first write the proxy makes is the burst's.
        puts = [client.put(b"c%d" % i) for i in range(300)]
        tricky = client.put(body, priority=0)
        reserved = client.reserve(timeout=0)
        stats = client.stats()
        stats_tube = client.stats_tube("default")
        missing = client.delete(888888)
        tubes = client.list_tubes_watched()
        peeked = client.peek(1)
        end = client.use("coalesce-end")
        results: list[Any] = await asyncio.wait_for(
            asyncio.gather(
                *puts,
                tricky,
                reserved,
                stats,
                stats_tube,
                missing,
                tubes,
                peeked,
                end,
                return_exceptions=True,
            ),
            HANG,
        )
        assert proxy.client_writes == 1
        # The client parsed (nearly) all of it from one read.
        assert max(fed) > sum(fed) // 2, fed
        assert results[:301] == list(range(1, 302))
        assert results[301] == beanstalkt.Job(301, body)
        assert results[302]["cmd-put"] == 301
        assert results[303]["name"] == "default"
        assert results[303]["current-jobs-ready"] == 300
        assert isinstance(results[304], beanstalkt.NotFound)
        assert results[305] == ["default"]
        assert results[306] == beanstalkt.Job(1, b"c0")
        assert results[307] == "coalesce-end"
        assert client.using == "coalesce-end"


# ----------------------------------------------------------------------
# The one catch: a blocking reserve holds its connection.


async def wait_for_waiting_workers(client: beanstalkt.Client, count: int) -> None:
    """Round trips on ``client`` until the server reports ``count`` waiting reserves."""
    for _ in range(1000):
        if (await client.stats())["current-waiting"] == count:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"the server never saw {count} waiting reserve(s)")


async def test_blocking_reserve_holds_its_connection_so_later_commands_on_it_wait(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with (
        beanstalkt.Client(beanstalkd.host, beanstalkd.port) as worker,
        beanstalkt.Client(beanstalkd.host, beanstalkd.port) as other,
    ):
        reserved = worker.reserve()
        queued_behind = worker.list_tube_used()
        await wait_for_waiting_workers(other, 1)
        # More round trips on the other connection while the worker's commands wait.
        for _ in range(20):
            stats = await other.stats()
        assert stats["current-waiting"] == 1
        # The server has not even run the command queued behind the reserve.
        assert stats["cmd-list-tube-used"] == 0
        assert not reserved.done()
        assert not queued_behind.done()
        assert worker.in_flight == 2

        job_id = await other.put(b"release the worker")
        job = await asyncio.wait_for(reserved, HANG)
        assert job == beanstalkt.Job(job_id, b"release the worker")
        assert await asyncio.wait_for(queued_behind, HANG) == "default"
        assert (await other.stats())["cmd-list-tube-used"] == 1
        await worker.delete(job.id)


async def test_blocking_reserve_does_not_block_commands_on_a_second_client(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with (
        beanstalkt.Client(beanstalkd.host, beanstalkd.port, watch="work") as worker,
        beanstalkt.Client(beanstalkd.host, beanstalkd.port) as producer,
    ):
        reserved = worker.reserve()
        ids = await asyncio.wait_for(
            asyncio.gather(*[producer.put(b"elsewhere %d" % i) for i in range(50)]), HANG
        )
        assert (await producer.peek(ids[-1])).body == b"elsewhere 49"
        assert await producer.list_tubes() == ["default", "work"]
        await wait_for_waiting_workers(producer, 1)
        assert (await producer.stats_tube("work"))["current-waiting"] == 1
        assert not reserved.done()

        await producer.use("work")
        job_id = await producer.put(b"for the worker")
        job = await asyncio.wait_for(reserved, HANG)
        assert job == beanstalkt.Job(job_id, b"for the worker")
        await worker.delete(job.id)


@pytest.mark.parametrize("count", [1, 2, 300])
async def test_reserve_with_timeout_polls_do_not_hold_the_connection(
    beanstalkd: BeanstalkdServer, count: int
) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        polls = [client.reserve(timeout=0) for _ in range(count)]
        after = client.put(b"after the polls")
        outcomes = await asyncio.wait_for(asyncio.gather(*polls, return_exceptions=True), HANG)
        assert all(isinstance(outcome, beanstalkt.TimedOut) for outcome in outcomes)
        assert await after == 1


async def test_a_cancelled_future_does_not_desynchronise_later_replies(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        first = client.put(b"first")
        dropped = client.stats()
        dropped.cancel()
        peeked = client.peek(1)
        assert await first == 1
        assert (await peeked).body == b"first"
        assert dropped.cancelled()
        assert client.in_flight == 0


async def test_pipelined_bodies_larger_than_one_read_are_reassembled() -> None:
    sizes = [300_000, 1, 700_000, 0, 262_144, 262_145]
    with BeanstalkdServer(max_job_size=1 << 20) as server:
        async with beanstalkt.Client(server.host, server.port) as client:
            bodies = [bytes([65 + n % 26]) * size + b"\r\n" for n, size in enumerate(sizes)]
            ids = await asyncio.wait_for(asyncio.gather(*map(client.put, bodies)), HANG)
            jobs = await asyncio.wait_for(asyncio.gather(*map(client.peek, ids)), HANG)
            assert [job.body for job in jobs] == bodies
            reserved = [client.reserve(timeout=0) for _ in sizes]
            assert [job.body for job in await asyncio.gather(*reserved)] == bodies

"""The tube page's next jobs, live over the WebSocket, against a real beanstalkd.

A tube page's tab asks ``/live`` for one tube; the console then peeks at the
head of that tube's ready, delayed and buried queues after each poll and
sends a job again only when the head changed (its age as a small tick).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Optional

import pytest
import tornado.httpserver
import tornado.testing
import tornado.websocket

import beanstalkt
from beanstalkt.ops.web import heads as live_module
from beanstalkt.ops.web.app import ConsoleOptions, make_app
from beanstalkt.ops.web.guard import ConsoleHTTPServer
from beanstalkt.ops.web.live import LiveServers
from beanstalkt.testing import BeanstalkdServer

from .test_web_handlers import SCRIPT_BODY, bury_one, put_in

#: Seconds a test waits for the page's view to show a change (the console polls every 0.2 s).
WAIT = 20.0


class Tab:
    """A tube page's live feed: what it was last told of each queue's head."""

    def __init__(self, socket: tornado.websocket.WebSocketClientConnection) -> None:
        self.socket = socket
        self.heads: dict[str, Optional[dict[str, Any]]] = {}
        self.messages: list[dict[str, Any]] = []

    async def read(self) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.socket.read_message(), WAIT)
        assert raw is not None, "the console closed the feed"
        message: dict[str, Any] = json.loads(raw)
        self.messages.append(message)
        for state, job in message.get("jobs", []):
            self.heads[state] = job
        return message

    async def until(self, check: Callable[[Tab], bool], what: str) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            message = await self.read()
            if check(self):
                return message
        raise AssertionError(f"not seen within {WAIT} s: {what}; last heads {self.heads}")

    def head_id(self, state: str) -> Optional[int]:
        job = self.heads.get(state)
        return None if job is None else int(job["id"])


class Running:
    def __init__(self, monitor: LiveServers, base: str) -> None:
        self.monitor = monitor
        self.base = base

    async def tab(self, tube: str, server: int = 0) -> Tab:
        socket = await tornado.websocket.websocket_connect(
            self.base.replace("http://", "ws://") + "/live"
        )
        tab = Tab(socket)
        assert (await tab.read())["type"] == "hello"
        socket.write_message(json.dumps({"tube": [server, tube]}))
        return tab


@pytest.fixture
def server() -> Iterator[BeanstalkdServer]:
    with BeanstalkdServer() as running:
        yield running


@pytest.fixture
async def client(server: BeanstalkdServer) -> AsyncIterator[beanstalkt.Client]:
    async with beanstalkt.Client(server.host, server.port) as connected:
        yield connected


RECORDS: dict[int, dict[str, Any]] = {}


async def reader(_server: Any, tube: str) -> dict[int, dict[str, Any]]:
    """A failure-record store of the test's: what ``RECORDS`` holds."""
    return {job_id: record for job_id, record in RECORDS.items() if record["tube"] == tube}


async def start(server: BeanstalkdServer, options: ConsoleOptions) -> AsyncIterator[Running]:
    monitor = LiveServers([(server.host, server.port)], interval=0.2)
    http = ConsoleHTTPServer(make_app(monitor, options, failure_reader=reader))
    sock, port = tornado.testing.bind_unused_port()
    http.add_sockets([sock])
    monitor.start()
    await monitor.first_poll()
    try:
        yield Running(monitor, f"http://127.0.0.1:{port}")
    finally:
        http.stop()
        await monitor.stop()
        RECORDS.clear()


@pytest.fixture
async def console(server: BeanstalkdServer) -> AsyncIterator[Running]:
    async for running in start(server, ConsoleOptions()):
        yield running


@pytest.fixture
async def read_only(server: BeanstalkdServer) -> AsyncIterator[Running]:
    async for running in start(server, ConsoleOptions(read_only=True)):
        yield running


async def test_next_jobs_follow_put_bury_kick_and_delete(
    console: Running, client: beanstalkt.Client
) -> None:
    tab = await console.tab("heads")
    try:
        ready_id = await put_in(client, "heads", SCRIPT_BODY, priority=7)
        await tab.until(lambda t: t.head_id("ready") == ready_id, "the put job as next ready")
        job = tab.heads["ready"]
        assert job is not None
        assert (job["state"], job["tube"], job["pri"]) == ("ready", "heads", 7)
        assert type(job["age"]) is int
        # The body is data in the message, never markup: the page puts it in with textContent.
        assert job["body"] == {
            "kind": "text",
            "text": SCRIPT_BODY.decode(),
            "info": f"text, {len(SCRIPT_BODY)} bytes",
        }
        delayed_id = await put_in(client, "heads", b"later", delay=3600)
        await tab.until(lambda t: t.head_id("delayed") == delayed_id, "the delayed job")
        buried_id = await bury_one(client, "heads", b"broken")
        await tab.until(lambda t: t.head_id("buried") == buried_id, "the buried job")
        buried = tab.heads["buried"]
        assert buried is not None and buried["buries"] == 1
        assert buried["failure"] is None
        assert "No failure record" in buried["failure_note"]
        assert tab.head_id("ready") == ready_id  # the older job is still next

        await client.kick_job(buried_id)
        await tab.until(lambda t: t.heads.get("buried", 0) is None, "the kicked job leaves buried")
        await client.delete(ready_id)
        await tab.until(lambda t: t.head_id("ready") == buried_id, "the kicked job is next ready")
        await client.delete(buried_id)
        await client.delete(delayed_id)
        await tab.until(
            lambda t: t.heads.get("ready", 0) is None and t.heads.get("delayed", 0) is None,
            "deleted jobs vanish",
        )
    finally:
        tab.socket.close()


async def test_an_unchanged_head_is_not_sent_again_only_its_age(
    console: Running, client: beanstalkt.Client
) -> None:
    job_id = await put_in(client, "ticking", b"x" * 5000)
    tab = await console.tab("ticking")
    try:
        await tab.until(lambda t: t.head_id("ready") == job_id, "the job")
        sent = tab.heads["ready"]
        assert sent is not None
        # A long body is cut for the live page (the job page shows all of it).
        assert len(sent["body"]["text"]) == live_module.LIVE_BODY_CHARS
        assert sent["body"]["info"] == "text, 5,000 bytes (truncated)"
        message = await tab.read()
        for _ in range(20):
            if "ticks" in message:
                break
            message = await tab.read()
        assert message["jobs"] == []
        assert [tick[:2] for tick in message["ticks"]] == [["ready", job_id]]
    finally:
        tab.socket.close()


async def test_the_buried_head_shows_its_failure_record(
    console: Running, client: beanstalkt.Client
) -> None:
    tab = await console.tab("failing")
    try:
        job_id = await put_in(client, "failing", b"mail")
        RECORDS[job_id] = {
            "id": job_id,
            "tube": "failing",
            "error": "SMTPError: <img src=x onerror=alert(1)>",
            "attempts": 3,
            "failed_at": "2026-12-04T20:00:00Z",
            "worker": {"host": "mail-1", "pid": 77},
            "traceback": "Traceback ...",
        }
        await client.reserve_job(job_id)
        await client.bury(job_id)
        await tab.until(lambda t: t.head_id("buried") == job_id, "the buried job")
        buried = tab.heads["buried"]
        assert buried is not None
        assert buried["failure"] == {
            "error": "SMTPError: <img src=x onerror=alert(1)>",
            "attempts": "3",
            "failed_at": "2026-12-04T20:00:00Z",
            "host": "mail-1",
            "pid": "77",
            "traceback": "Traceback ...",
        }
    finally:
        tab.socket.close()


async def test_only_tubes_an_open_tube_page_shows_are_peeked(
    console: Running, client: beanstalkt.Client
) -> None:
    live = console.monitor.servers[0]
    await put_in(client, "unseen", b"job")
    overview = await tornado.websocket.websocket_connect(
        console.base.replace("http://", "ws://") + "/live"
    )
    await overview.read_message()
    await overview.read_message()
    assert live.watched == {} and live.heads == {}
    overview.close()

    first, second = await console.tab("seen"), await console.tab("seen")
    await first.until(lambda t: "ready" in t.heads, "the heads of the watched tube")
    await second.until(lambda t: "ready" in t.heads, "the heads for the second tab")
    assert live.watched == {"seen": 2} and set(live.heads) == {"seen"}
    first.socket.close()
    await second.read()
    await second.read()
    assert live.watched == {"seen": 1}
    second.socket.write_message(json.dumps({"sort": "name"}))  # back to the overview
    for _ in range(50):
        await second.read()
        if not live.watched:
            break
    assert live.watched == {} and live.heads == {}
    second.socket.close()


async def test_more_watched_tubes_than_the_cap_get_counts_only(
    console: Running, client: beanstalkt.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live_module, "MAX_WATCHED_TUBES", 1)
    await put_in(client, "capped-a", b"a")
    await put_in(client, "capped-b", b"b")
    first = await console.tab("capped-a")
    await first.until(lambda t: "ready" in t.heads, "the first tube's heads")
    second = await console.tab("capped-b")
    message = await second.until(
        lambda t: t.messages[-1].get("row") is not None, "the second tube's counts"
    )
    assert message["jobs_live"] is False and "jobs" not in message
    assert message["row"]["ready"] == 1
    first.socket.close()
    second.socket.close()


async def test_a_read_only_console_sends_the_same_next_jobs(
    read_only: Running, client: beanstalkt.Client
) -> None:
    job_id = await put_in(client, "ro", b"look")
    tab = await read_only.tab("ro")
    try:
        await tab.until(lambda t: t.head_id("ready") == job_id, "the job")
    finally:
        tab.socket.close()


async def test_the_largest_next_jobs_message_stays_under_64_kib(
    console: Running, client: beanstalkt.Client
) -> None:
    # The worst case: three heads with bodies that JSON escapes six-fold (non-ASCII text),
    # all sent at once, and a buried one with the longest failure record.
    body = ("\u2028" * 3000).encode("utf-8")
    tab = await console.tab("largest")
    try:
        ready_id = await put_in(client, "largest", body)
        delayed_id = await put_in(client, "largest", body, delay=3600)
        buried_id = await put_in(client, "largest", body)
        RECORDS[buried_id] = {
            "id": buried_id,
            "tube": "largest",
            "error": "\u2028" * 50_000,
            "attempts": "9" * 1000,
            "failed_at": "\u2028" * 1000,
            "worker": {"host": "\u2028" * 1000, "pid": "\u2028" * 1000},
            "traceback": "\u2028" * 50_000 + "Error: the end",
        }
        await client.reserve_job(buried_id)
        await client.bury(buried_id)
        await tab.until(
            lambda t: (
                [t.head_id(state) for state in ("ready", "delayed", "buried")]
                == [ready_id, delayed_id, buried_id]
            ),
            "all three heads",
        )
        buried = tab.heads["buried"]
        assert buried is not None and buried["failure"]["traceback"].endswith("Error: the end")
        # A fresh tab gets all three at once.
        fresh = await console.tab("largest")
        await fresh.until(lambda t: t.head_id("buried") == buried_id, "the heads, at once")
        sizes = [len(json.dumps(message)) for message in tab.messages + fresh.messages]
        assert any(len(m.get("jobs", [])) == 3 for m in fresh.messages)
        assert max(sizes) < 64 << 10, max(sizes)
        fresh.socket.close()
    finally:
        tab.socket.close()


async def test_a_failure_reader_that_never_answers_costs_a_note_not_the_server(
    console: Running, client: beanstalkt.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live_module, "FAILURE_READ_TIMEOUT", 0.5)
    never = asyncio.Event()

    async def stuck(_server: Any, _tube: str) -> dict[int, dict[str, Any]]:
        await never.wait()
        return {}

    console.monitor.servers[0].next_jobs.failure_reader = stuck
    monkeypatch.setattr(
        console.monitor.servers[0].next_jobs, "watch", _keeping_reader(console, stuck)
    )
    tab = await console.tab("stuck")
    try:
        job_id = await bury_one(client, "stuck", b"x")
        await tab.until(lambda t: t.head_id("buried") == job_id, "the buried job")
        buried = tab.heads["buried"]
        assert buried is not None
        assert buried["failure_note"] == (
            "The failure records could not be read: no answer in time."
        )
        assert console.monitor.servers[0].up
    finally:
        tab.socket.close()


def _keeping_reader(console: Running, reader: Any) -> Callable[..., bool]:
    """``NextJobs.watch`` that keeps the test's reader (the app passes its own)."""
    next_jobs = console.monitor.servers[0].next_jobs
    original = type(next_jobs).watch

    def watch(tube: str, _failure_reader: Any = None) -> bool:
        return original(next_jobs, tube, reader)

    return watch

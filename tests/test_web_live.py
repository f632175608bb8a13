"""The console's polling against a server that misbehaves and then recovers (a fake server).

A real beanstalkd never lists a tube name the client refuses nor sends a
counter that is not a number; the fake here does, then turns sane, and the
console must show the reason, keep trying and come back by itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from beanstalkt.ops.web.live import HISTORY_POINTS, Monitor, backoff_delay
from beanstalkt.ops.web.view import DEFAULT_LIMIT, View

from .fake_server import FakeServer, MisbehavingStats


async def test_bad_replies_are_the_servers_error_and_polling_resumes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = MisbehavingStats()
    async with FakeServer(fake.script) as server:
        monitor = Monitor([("127.0.0.1", server.port)], interval=0.05)
        watched = monitor.servers[0]
        # The server set proves the server live (its stats probe is fine); polls by hand first.
        await monitor.server_set.start(wait=False)
        assert watched.member is not None
        assert await monitor.server_set.wait_for(watched.member, 30)
        with caplog.at_level(logging.WARNING, logger="beanstalkt.web"):
            for _ in range(3):
                assert await watched.poll_once() is False
        assert not watched.up
        assert watched.snapshot["error"] == (
            "bad reply: stats-tube default: current-jobs-ready is 'lots', not a count"
        )
        down_lines = [r for r in caplog.records if "is down" in r.getMessage()]
        assert len(down_lines) == 1  # logged once, not at every attempt
        fake.mode = "bad-stats"
        assert await watched.poll_once() is False
        assert "uptime is 'soon'" in watched.snapshot["error"]

        # The polling loop keeps trying, with backoff, and comes back once the server is sane.
        fake.mode = "sane"
        monitor.start()
        try:
            for _ in range(400):
                if watched.up:
                    break
                await asyncio.sleep(0.05)
            assert watched.up, watched.snapshot
        finally:
            await monitor.stop()
        assert [row["name"] for row in watched.snapshot["tubes"]] == ["default"]
        assert watched.snapshot["warnings"] == [
            "1 tube not shown: names the client refuses ('bad name!')"
        ]
        assert any("answers again" in r.getMessage() for r in caplog.records)


def test_backoff_doubles_up_to_a_cap() -> None:
    assert [backoff_delay(0.5, n) for n in range(7)] == [0.5, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0]


def fake_stats(n: int, poll: int) -> dict[str, Any]:
    return {
        "current-jobs-ready": 10_000 + poll,
        "current-jobs-buried": n,
        "total-jobs": 1_000_000 + poll,
        "cmd-delete": poll,
        "current-jobs-reserved": 3,
        "current-watching": 2,
        "current-waiting": 1,
    }


def test_the_worst_update_of_5000_busy_tubes_stays_under_64_kib() -> None:
    """Every tube changing at every poll, a full history, long names: the cap bounds it."""
    monitor = Monitor([("127.0.0.1", 1)], interval=1.0, history_seconds=60)
    watched = monitor.servers[0]
    names = [f"tube-with-a-long-descriptive-name-{n:05d}" for n in range(5000)]
    server_stats = {"current-jobs-ready": 1, "cmd-put": 1, "max-job-size": 65535}
    for poll in range(HISTORY_POINTS + 2):
        tubes = {name: fake_stats(n, poll) for n, name in enumerate(names)}
        ages = {name: 86_400 + poll for name in names}
        watched._record(1000.0 + poll, server_stats, tubes, ages, [])  # type: ignore[arg-type]
    assert len(watched.sample_times) == HISTORY_POINTS
    sent: dict[str, Any] = {}
    first = watched.tab_message(View(), sent)
    assert first is not None and len(first["order"]) == DEFAULT_LIMIT
    assert len(first["history"]["tubes"]) == DEFAULT_LIMIT
    first_bytes = len(json.dumps(first, separators=(",", ":")))
    poll = HISTORY_POINTS + 2
    tubes = {name: fake_stats(n, poll) for n, name in enumerate(names)}
    watched._record(1000.0 + poll, server_stats, tubes, {}, [])  # type: ignore[arg-type]
    update = watched.tab_message(View(), sent)
    assert update is not None and len(update["rows"]) == DEFAULT_LIMIT  # all changed
    update_bytes = len(json.dumps(update, separators=(",", ":")))
    assert first_bytes < 64 * 1024, first_bytes
    assert update_bytes < 64 * 1024, update_bytes
    # The whole overview (the API) is what a tab would get without the cap.
    everything = len(json.dumps(monitor.overview()))
    assert everything > 20 * first_bytes


async def test_stop_ends_polling_even_when_a_cancellation_is_swallowed() -> None:
    """asyncio.wait_for (before 3.12) may swallow a cancel: stop() must still end the loop."""
    monitor = Monitor([("127.0.0.1", 1)], interval=0.01)
    watched = monitor.servers[0]
    swallowed = 0

    async def poll_that_swallows() -> bool:
        nonlocal swallowed
        try:
            await asyncio.sleep(10)  # where the task is when stop() comes
        except asyncio.CancelledError:
            swallowed += 1  # as wait_for does when its inner call finishes at that moment
        return True

    watched.poll_once = poll_that_swallows  # type: ignore[method-assign]
    monitor.start()
    await asyncio.sleep(0.05)
    await asyncio.wait_for(monitor.stop(), 30)
    assert watched._task is None and swallowed >= 1


async def test_a_server_talking_garbage_is_down_until_it_is_sane() -> None:
    """Garbage drops the connection (the server layer); the console says so and comes back."""
    fake = MisbehavingStats("garbage", bad_name=False)
    async with FakeServer(fake.script) as server:
        monitor = Monitor([("127.0.0.1", server.port)], interval=0.05)
        watched = monitor.servers[0]
        monitor.start()
        try:
            await monitor.first_poll()
            assert not watched.up
            assert watched.snapshot["error"], watched.snapshot
            fake.mode = "sane"
            for _ in range(600):  # the server layer's reconnect backoff is at most 10 s
                if watched.up:
                    break
                await asyncio.sleep(0.05)
            assert watched.up, watched.snapshot
            assert [row["name"] for row in watched.snapshot["tubes"]] == ["default"]
        finally:
            await monitor.stop()

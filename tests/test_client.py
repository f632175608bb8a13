"""The Client against a real beanstalkd: every command, every failure reply, callbacks,
job styles, bodies, argument checks, constructor options, properties and connecting.

Every test talks to a throwaway beanstalkd (the ``beanstalkd`` fixture, or a
``BeanstalkdServer`` started here with special options).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from tornado.ioloop import IOLoop

import beanstalkt
from beanstalkt import (
    BeanstalkConnectionError,
    BeanstalkException,
    CommandFailed,
    ConnectFailed,
    ConnectionLost,
    DeadlineSoon,
    Job,
    JobTooBig,
    NotConnected,
    NotFound,
    NotIgnored,
    TimedOut,
    UnexpectedResponse,
)
from beanstalkt.testing import BeanstalkdServer, free_port

# Bound against hangs; nothing here should come near it.
HANG = 10.0
UNKNOWN_ID = 987_654
MAX_UINT32 = 2**32 - 1
MAX_JOB_ID = 2**64 - 1

Callback = Callable[[Any], None]
Command = Callable[[beanstalkt.Client], object]


@contextlib.asynccontextmanager
async def connected(server: BeanstalkdServer, **options: Any) -> AsyncIterator[beanstalkt.Client]:
    client = beanstalkt.Client(server.address, server.port, **options)
    await asyncio.wait_for(client.connect(), HANG)
    try:
        yield client
    finally:
        await client.close()


async def via_callback(start: Callable[[Callback], asyncio.Future[Any]]) -> Any:
    """Run a command with ``callback=``; return what the callback got.

    Also checks that the callback was called exactly once and agrees with the
    future the method returned.
    """
    loop = asyncio.get_running_loop()
    calls: list[Any] = []
    called: asyncio.Future[None] = loop.create_future()

    def callback(value: Any = None) -> None:
        calls.append(value)
        if not called.done():
            called.set_result(None)

    returned = start(callback)
    await asyncio.wait_for(called, HANG)
    await asyncio.wait([returned], timeout=HANG)
    await asyncio.sleep(0.01)  # a second (wrong) call would land by now
    assert len(calls) == 1
    error = returned.exception()
    if error is not None:
        assert calls[0] is error
    else:
        assert calls[0] == returned.result()
    return calls[0]


# Counters a refused command would have moved had any byte reached the server.
def sent_counters(stats: dict[str, Any]) -> dict[str, Any]:
    keys = [k for k in stats if k.startswith("cmd-") and k != "cmd-stats"]
    keys += ["total-jobs", "current-tubes", "current-jobs-ready", "current-producers"]
    return {key: stats[key] for key in keys}


@contextlib.asynccontextmanager
async def nothing_sent(client: beanstalkt.Client) -> AsyncIterator[None]:
    """Assert the body sends nothing: no reply owed, server counters unchanged.

    The ``stats`` after the body goes over the same connection, so anything the
    body had sent would have been processed before it.
    """
    before = sent_counters(dict(await client.stats()))
    yield
    assert client.in_flight == 0
    after = sent_counters(dict(await client.stats()))
    assert after == before


# --------------------------------------------------------------------------
# Success replies and their types.


async def test_put_returns_int_ids_in_order(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        first = await client.put(b"one")
        second = await client.put(b"two")
        assert type(first) is int and type(second) is int
        assert (first, second) == (1, 2)
        stats = await client.stats_tube("default")
        assert stats["current-jobs-ready"] == 2


async def test_put_sends_priority_delay_and_ttr(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        job_id = await client.put(b"x", priority=7, delay=30, ttr=45)
        stats = await client.stats_job(job_id)
        assert (stats["pri"], stats["delay"], stats["ttr"], stats["state"]) == (
            7,
            30,
            45,
            "delayed",
        )


async def test_put_defaults_match_seed_readme(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        job_id = await client.put(b"x")
        stats = await client.stats_job(job_id)
        assert (stats["pri"], stats["delay"], stats["ttr"]) == (2**31, 0, 120)
        assert beanstalkt.DEFAULT_PRIORITY == 2**31
        assert beanstalkt.DEFAULT_TTR == 120


async def test_put_accepts_the_extreme_argument_values(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        urgent = await client.put(b"a", priority=0, ttr=MAX_UINT32)
        lazy = await client.put(b"b", priority=MAX_UINT32, delay=MAX_UINT32)
        assert (await client.stats_job(urgent))["pri"] == 0
        assert (await client.stats_job(urgent))["ttr"] == MAX_UINT32
        assert (await client.stats_job(lazy))["pri"] == MAX_UINT32
        assert (await client.stats_job(lazy))["delay"] == MAX_UINT32


async def test_use_returns_str_and_put_goes_to_that_tube(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        used = await client.use("orders")
        assert used == "orders" and type(used) is str
        job_id = await client.put(b"x")
        assert (await client.stats_job(job_id))["tube"] == "orders"
        assert await client.list_tube_used() == "orders"


async def test_reserve_without_timeout_returns_job(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        job_id = await client.put(b"work")
        job = await asyncio.wait_for(client.reserve(), HANG)
        assert isinstance(job, Job)
        assert (job.id, job.body) == (job_id, b"work")
        assert (await client.stats_job(job_id))["state"] == "reserved"


async def test_reserve_timeout_zero_returns_ready_job(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        job_id = await client.put(b"work")
        job = await client.reserve(timeout=0)
        assert isinstance(job, Job) and job.id == job_id


async def test_blocking_reserve_waits_for_a_job_put_later(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as worker, connected(beanstalkd) as producer:
        reserving = worker.reserve(timeout=5)
        await asyncio.sleep(0.2)
        assert not reserving.done()
        job_id = await producer.put(b"late")
        job = await asyncio.wait_for(reserving, HANG)
        assert (job.id, job.body) == (job_id, b"late")


async def test_reserve_job_takes_a_job_by_id_from_any_tube(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        await client.use("elsewhere")
        ready = await client.put(b"ready")
        delayed = await client.put(b"delayed", delay=60)
        job = await client.reserve_job(ready)
        assert isinstance(job, Job)
        assert (job.id, job.body) == (ready, b"ready")
        job = await client.reserve_job(delayed)
        assert (job.id, job.body) == (delayed, b"delayed")
        await client.bury(delayed)
        job = await client.reserve_job(delayed)  # a buried job, too
        assert job.id == delayed
        assert (await client.stats_job(delayed))["state"] == "reserved"


async def test_delete_returns_none_and_removes_the_job(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        ready = await client.put(b"ready")
        reserved = await client.put(b"reserved")
        assert await client.delete(ready) is None
        job = await client.reserve(timeout=0)
        assert job.id == reserved
        assert await client.delete(reserved) is None
        assert (await client.stats())["current-jobs-ready"] == 0
        with pytest.raises(NotFound):
            await client.peek(ready)


async def test_release_with_priority_and_delay(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        job_id = await client.put(b"x", priority=100)
        await client.reserve(timeout=0)
        assert await client.release(job_id) is None
        stats = await client.stats_job(job_id)
        assert (stats["state"], stats["pri"], stats["releases"]) == ("ready", 2**31, 1)
        await client.reserve(timeout=0)
        assert await client.release(job_id, priority=5, delay=60) is None
        stats = await client.stats_job(job_id)
        assert (stats["state"], stats["pri"], stats["delay"]) == ("delayed", 5, 60)


async def test_bury_with_priority(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        job_id = await client.put(b"x")
        await client.reserve(timeout=0)
        assert await client.bury(job_id, priority=3) is None
        stats = await client.stats_job(job_id)
        assert (stats["state"], stats["pri"], stats["buries"]) == ("buried", 3, 1)
        assert (await client.peek_buried()).id == job_id


async def test_touch_restarts_the_ttr(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        job_id = await client.put(b"x", ttr=2)
        await client.reserve(timeout=0)
        await asyncio.sleep(1.2)
        assert await client.touch(job_id) is None
        await asyncio.sleep(1.2)  # 2.4 s after reserving: past the original TTR
        stats = await client.stats_job(job_id)
        assert (stats["state"], stats["timeouts"]) == ("reserved", 0)


async def test_watch_and_ignore_return_the_watch_count(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        count = await client.watch("a")
        assert count == 2 and type(count) is int
        assert await client.watch("b") == 3
        assert await client.watch("b") == 3  # already watched
        count = await client.ignore("default")
        assert count == 2 and type(count) is int
        assert await client.ignore("not-watched") == 2
        assert sorted(await client.list_tubes_watched()) == ["a", "b"]


async def test_peek_commands_return_jobs_without_reserving(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        ready = await client.put(b"ready")
        delayed = await client.put(b"delayed", delay=60)
        buried = await client.put(b"to bury")
        await client.reserve_job(buried)
        await client.bury(buried)

        job = await client.peek(delayed)
        assert isinstance(job, Job) and (job.id, job.body) == (delayed, b"delayed")
        job = await client.peek_ready()
        assert isinstance(job, Job) and (job.id, job.body) == (ready, b"ready")
        job = await client.peek_delayed()
        assert isinstance(job, Job) and (job.id, job.body) == (delayed, b"delayed")
        job = await client.peek_buried()
        assert isinstance(job, Job) and (job.id, job.body) == (buried, b"to bury")
        assert (await client.stats_job(ready))["state"] == "ready"


async def test_peek_ready_delayed_buried_look_at_the_used_tube(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with connected(beanstalkd) as client:
        await client.put(b"in default")
        await client.use("other")
        with pytest.raises(NotFound):
            await client.peek_ready()
        other = await client.put(b"in other")
        assert (await client.peek_ready()).id == other


async def test_kick_bound_kicks_buried_first_then_delayed(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        buried = [await client.put(b"b%d" % n) for n in range(3)]
        delayed = await client.put(b"d", delay=60)
        for _ in buried:
            job = await client.reserve(timeout=0)
            await client.bury(job.id)
        kicked = await client.kick(2)
        assert kicked == 2 and type(kicked) is int
        assert await client.kick(10) == 1  # only buried jobs while there are any
        assert (await client.stats_job(delayed))["state"] == "delayed"
        assert await client.kick() == 1  # default bound 1, now the delayed job
        assert (await client.stats_job(delayed))["state"] == "ready"
        assert await client.kick(5) == 0
        assert all([(await client.stats_job(i))["state"] == "ready" for i in buried])


async def test_kick_job_moves_buried_or_delayed_job(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        delayed = await client.put(b"d", delay=60)
        buried = await client.put(b"b")
        await client.reserve_job(buried)
        await client.bury(buried)
        assert await client.kick_job(delayed) is None
        assert await client.kick_job(buried) is None
        assert (await client.stats_job(delayed))["state"] == "ready"
        assert (await client.stats_job(buried))["kicks"] == 1
        with pytest.raises(NotFound):
            await client.kick_job(delayed)  # ready now: nothing to kick


async def test_stats_job_is_a_typed_dict(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        await client.use("123")  # a tube name that looks like a number stays text
        job_id = await client.put(b"x", priority=9, ttr=30)
        stats = await client.stats_job(job_id)
        assert isinstance(stats, dict)
        assert stats["id"] == job_id
        assert stats["tube"] == "123"
        assert (stats["state"], stats["pri"], stats["ttr"]) == ("ready", 9, 30)
        for key in ("id", "pri", "age", "delay", "ttr", "time-left", "file"):
            assert type(stats[key]) is int, key
        for key in ("reserves", "timeouts", "releases", "buries", "kicks"):
            assert type(stats[key]) is int, key  # type: ignore[literal-required]
        assert type(stats["tube"]) is str and type(stats["state"]) is str


async def test_stats_tube_is_a_typed_dict(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        await client.use("42")
        await client.put(b"x", priority=10)
        stats = await client.stats_tube("42")
        assert isinstance(stats, dict)
        assert stats["name"] == "42" and type(stats["name"]) is str
        assert stats["current-jobs-ready"] == 1
        assert stats["current-jobs-urgent"] == 1
        assert stats["total-jobs"] == 1
        assert stats["current-using"] == 1
        for key, value in stats.items():
            if key != "name":
                assert type(value) is int, key


async def test_stats_is_a_typed_dict(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd, encoding="utf-8") as client:
        await client.put("x")
        stats = await client.stats()
        assert isinstance(stats, dict)
        assert stats["cmd-put"] == 1 and stats["total-jobs"] == 1
        assert stats["current-connections"] == 1
        assert stats["pid"] == beanstalkd.process.pid  # type: ignore[union-attr]
        assert type(stats["version"]) is str and stats["version"]
        assert type(stats["rusage-utime"]) is float
        assert type(stats["rusage-stime"]) is float
        assert type(stats["draining"]) is bool and stats["draining"] is False
        for key in ("id", "hostname", "os", "platform"):
            assert type(stats.get(key, "")) is str, key
        texts = {"version", "id", "hostname", "os", "platform", "draining"}
        for key, value in stats.items():
            if key not in texts and not key.startswith("rusage-"):
                assert type(value) is int, key


async def test_list_commands(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        await client.use("7")
        await client.watch("w")
        tubes = await client.list_tubes()
        assert isinstance(tubes, list)
        assert sorted(tubes) == ["7", "default", "w"]
        assert all(type(tube) is str for tube in tubes)
        used = await client.list_tube_used()
        assert used == "7" and type(used) is str
        watched = await client.list_tubes_watched()
        assert sorted(watched) == ["default", "w"]
        assert all(type(tube) is str for tube in watched)


async def test_pause_tube_sets_pause_and_holds_back_reserve(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd, use="paused", watch="paused") as client:
        job_id = await client.put(b"p")
        assert await client.pause_tube("paused", 1) is None
        stats = await client.stats_tube("paused")
        assert stats["pause"] == 1
        assert 0 <= stats["pause-time-left"] <= 1
        assert stats["cmd-pause-tube"] == 1
        with pytest.raises(TimedOut):
            await client.reserve(timeout=0)
        started = time.monotonic()
        job = await asyncio.wait_for(client.reserve(timeout=5), HANG)
        assert job.id == job_id
        assert time.monotonic() - started >= 0.5  # the pause (1 s) held it back


# --------------------------------------------------------------------------
# Failure replies.

NOT_FOUND_COMMANDS: dict[str, Command] = {
    "delete": lambda c: c.delete(UNKNOWN_ID),
    "release": lambda c: c.release(UNKNOWN_ID),
    "bury": lambda c: c.bury(UNKNOWN_ID),
    "touch": lambda c: c.touch(UNKNOWN_ID),
    "peek": lambda c: c.peek(UNKNOWN_ID),
    "peek-ready": lambda c: c.peek_ready(),
    "peek-delayed": lambda c: c.peek_delayed(),
    "peek-buried": lambda c: c.peek_buried(),
    "kick-job": lambda c: c.kick_job(UNKNOWN_ID),
    "stats-job": lambda c: c.stats_job(UNKNOWN_ID),
    "stats-tube": lambda c: c.stats_tube("no-such-tube"),
    "pause-tube": lambda c: c.pause_tube("no-such-tube", 1),
    "reserve-job": lambda c: c.reserve_job(UNKNOWN_ID),
    "peek max id": lambda c: c.peek(MAX_JOB_ID),
}


@pytest.mark.parametrize("name", list(NOT_FOUND_COMMANDS))
async def test_not_found(beanstalkd: BeanstalkdServer, name: str) -> None:
    async with connected(beanstalkd) as client:
        with pytest.raises(NotFound) as caught:
            await NOT_FOUND_COMMANDS[name](client)  # type: ignore[misc]
        error = caught.value
        assert isinstance(error, CommandFailed) and isinstance(error, BeanstalkException)
        assert error.status == "NOT_FOUND"
        assert error.command.startswith(name.split()[0])
        assert "NOT_FOUND" in str(error)
        assert await client.put(b"still usable") == 1


@pytest.mark.parametrize("command", ["release", "bury", "touch"])
async def test_not_found_for_a_job_not_reserved_by_this_connection(
    beanstalkd: BeanstalkdServer, command: str
) -> None:
    async with connected(beanstalkd) as client, connected(beanstalkd) as other:
        ready = await client.put(b"ready")
        taken = await client.put(b"taken")
        await other.reserve_job(taken)
        for job_id in (ready, taken):
            with pytest.raises(NotFound):
                await getattr(client, command)(job_id)
        assert (await client.stats_job(taken))["state"] == "reserved"


async def test_ignore_the_only_watched_tube_is_not_ignored(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        with pytest.raises(NotIgnored) as caught:
            await client.ignore("default")
        assert isinstance(caught.value, CommandFailed)
        assert caught.value.status == "NOT_IGNORED"
        assert caught.value.command == "ignore default"
        assert client.watching == ["default"]
        assert await client.list_tubes_watched() == ["default"]


async def test_job_too_big_with_the_default_limit(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        with pytest.raises(JobTooBig) as caught:
            await client.put(b"x" * 65536)
        assert isinstance(caught.value, CommandFailed)
        assert caught.value.status == "JOB_TOO_BIG"
        assert await client.put(b"x" * 65535) == 1


async def test_max_job_size_boundary_and_connection_stays_usable() -> None:
    limit = 300_000  # more than one 256 KiB read
    body = bytes(n * 7 % 256 for n in range(limit))
    with BeanstalkdServer(max_job_size=limit) as server:
        async with connected(server) as client:
            assert (await client.stats())["max-job-size"] == limit
            job_id = await client.put(body)
            with pytest.raises(JobTooBig) as caught:
                await client.put(body + b"!")
            assert caught.value.status == "JOB_TOO_BIG"
            after = await client.put(b"next")
            assert after == job_id + 1
            job = await client.reserve(timeout=0)
            assert (job.id, job.body) == (job_id, body)
            job = await client.reserve(timeout=0)
            assert (job.id, job.body) == (after, b"next")
            assert (await client.stats())["total-jobs"] == 2


async def test_reserve_timeout_zero_times_out(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        with pytest.raises(TimedOut) as caught:
            await client.reserve(timeout=0)
        assert isinstance(caught.value, BeanstalkException)
        assert caught.value.status == "TIMED_OUT"
        assert caught.value.command == "reserve-with-timeout 0"
        assert await client.put(b"x") == 1


async def test_reserve_positive_timeout_times_out(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        started = time.monotonic()
        with pytest.raises(TimedOut):
            await asyncio.wait_for(client.reserve(timeout=0.2), HANG)  # rounded up to 1 s
        assert 0.5 <= time.monotonic() - started < HANG


async def test_deadline_soon_when_reserving_again_within_the_last_second(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with connected(beanstalkd) as client:
        job_id = await client.put(b"x", ttr=1)
        await client.reserve(timeout=0)
        with pytest.raises(DeadlineSoon) as caught:
            await client.reserve(timeout=5)
        assert caught.value.status == "DEADLINE_SOON"
        assert caught.value.command == "reserve-with-timeout 5"
        assert await client.delete(job_id) is None


async def test_deadline_soon_ends_a_blocking_reserve(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        job_id = await client.put(b"x", ttr=2)
        await client.reserve(timeout=0)
        started = time.monotonic()
        with pytest.raises(DeadlineSoon):
            await asyncio.wait_for(client.reserve(), HANG)
        assert time.monotonic() - started >= 0.5  # sent when the last second began
        await client.touch(job_id)
        assert await client.delete(job_id) is None


async def test_failures_in_a_pipeline_keep_replies_in_order(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        results = await asyncio.gather(
            client.delete(UNKNOWN_ID),
            client.put(b"a"),
            client.ignore("default"),
            client.reserve(timeout=0),
            client.reserve(timeout=0),
            client.list_tube_used(),
            return_exceptions=True,
        )
        assert isinstance(results[0], NotFound)
        assert results[1] == 1
        assert isinstance(results[2], NotIgnored)
        assert results[3] == {"id": 1, "body": b"a"}
        assert isinstance(results[4], TimedOut)
        assert results[5] == "default"


# --------------------------------------------------------------------------
# Callbacks.


async def test_every_command_calls_back_with_its_result(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        assert await via_callback(lambda cb: client.use("cb", callback=cb)) == "cb"
        assert await via_callback(lambda cb: client.watch("cb", callback=cb)) == 2
        assert await via_callback(lambda cb: client.ignore("default", callback=cb)) == 1
        job_id = await via_callback(lambda cb: client.put(b"body", 5, 0, 60, callback=cb))
        assert job_id == 1
        second = await via_callback(lambda cb: client.put(b"second", callback=cb))
        assert await via_callback(lambda cb: client.peek(job_id, callback=cb)) == {
            "id": job_id,
            "body": b"body",
        }
        assert (await via_callback(lambda cb: client.peek_ready(callback=cb))).id == job_id
        job = await via_callback(lambda cb: client.reserve(callback=cb))
        assert isinstance(job, Job) and job.id == job_id
        assert await via_callback(lambda cb: client.touch(job_id, callback=cb)) is None
        assert await via_callback(lambda cb: client.release(job_id, 5, 60, callback=cb)) is None
        assert (await via_callback(lambda cb: client.peek_delayed(callback=cb))).id == job_id
        job = await via_callback(lambda cb: client.reserve(timeout=0, callback=cb))
        assert job.id == second
        assert await via_callback(lambda cb: client.bury(second, 1, callback=cb)) is None
        assert (await via_callback(lambda cb: client.peek_buried(callback=cb))).id == second
        assert await via_callback(lambda cb: client.kick(5, callback=cb)) == 1
        assert await via_callback(lambda cb: client.kick_job(job_id, callback=cb)) is None
        job = await via_callback(lambda cb: client.reserve_job(job_id, callback=cb))
        assert job.id == job_id
        stats_job = await via_callback(lambda cb: client.stats_job(job_id, callback=cb))
        assert stats_job["state"] == "reserved"
        assert await via_callback(lambda cb: client.delete(job_id, callback=cb)) is None
        stats_tube = await via_callback(lambda cb: client.stats_tube("cb", callback=cb))
        assert stats_tube["name"] == "cb"
        assert (await via_callback(lambda cb: client.stats(callback=cb)))["cmd-delete"] == 1
        assert sorted(await via_callback(lambda cb: client.list_tubes(callback=cb))) == [
            "cb",
            "default",
        ]
        assert await via_callback(lambda cb: client.list_tube_used(callback=cb)) == "cb"
        assert await via_callback(lambda cb: client.list_tubes_watched(callback=cb)) == ["cb"]
        assert await via_callback(lambda cb: client.pause_tube("cb", 0, callback=cb)) is None


FAILING_WITH_CALLBACK: dict[str, tuple[Callable[[beanstalkt.Client, Callback], Any], type]] = {
    "delete": (lambda c, cb: c.delete(UNKNOWN_ID, callback=cb), NotFound),
    "release": (lambda c, cb: c.release(UNKNOWN_ID, callback=cb), NotFound),
    "bury": (lambda c, cb: c.bury(UNKNOWN_ID, callback=cb), NotFound),
    "touch": (lambda c, cb: c.touch(UNKNOWN_ID, callback=cb), NotFound),
    "peek": (lambda c, cb: c.peek(UNKNOWN_ID, callback=cb), NotFound),
    "peek_ready": (lambda c, cb: c.peek_ready(callback=cb), NotFound),
    "peek_delayed": (lambda c, cb: c.peek_delayed(callback=cb), NotFound),
    "peek_buried": (lambda c, cb: c.peek_buried(callback=cb), NotFound),
    "kick_job": (lambda c, cb: c.kick_job(UNKNOWN_ID, callback=cb), NotFound),
    "stats_job": (lambda c, cb: c.stats_job(UNKNOWN_ID, callback=cb), NotFound),
    "stats_tube": (lambda c, cb: c.stats_tube("nope", callback=cb), NotFound),
    "pause_tube": (lambda c, cb: c.pause_tube("nope", 1, callback=cb), NotFound),
    "reserve_job": (lambda c, cb: c.reserve_job(UNKNOWN_ID, callback=cb), NotFound),
    "ignore": (lambda c, cb: c.ignore("default", callback=cb), NotIgnored),
    "reserve": (lambda c, cb: c.reserve(timeout=0, callback=cb), TimedOut),
    "put": (lambda c, cb: c.put(b"x" * 70_000, callback=cb), JobTooBig),
}


@pytest.mark.parametrize("name", list(FAILING_WITH_CALLBACK))
async def test_failure_calls_back_with_the_exception_instance(
    beanstalkd: BeanstalkdServer, name: str
) -> None:
    command, expected = FAILING_WITH_CALLBACK[name]
    async with connected(beanstalkd) as client:
        error = await via_callback(lambda cb: command(client, cb))
        assert isinstance(error, expected)
        assert isinstance(error, BeanstalkException) and error.status


async def test_fire_and_forget_with_callback_still_sends(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        got: list[Any] = []
        client.put(b"fire", callback=got.append)
        client.use("later", callback=got.append)
        client.put(b"forget", callback=got.append)
        while len(got) < 3:
            await asyncio.sleep(0.01)
        assert got == [1, "later", 2]
        assert (await client.stats_job(2))["tube"] == "later"


async def test_fire_and_forget_without_callback_still_sends(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client, connected(beanstalkd) as observer:
        client.put(b"not awaited")
        client.use("other")
        # A later reply on the same connection means the earlier commands ran.
        assert await client.list_tube_used() == "other"
        assert (await observer.stats_tube("default"))["current-jobs-ready"] == 1
        assert (await observer.peek_ready()).body == b"not awaited"


async def test_connect_and_close_take_positional_callbacks(beanstalkd: BeanstalkdServer) -> None:
    loop = asyncio.get_running_loop()
    events: list[str] = []
    done: asyncio.Future[None] = loop.create_future()
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port)

    def put() -> None:
        events.append("connected")
        client.put(b"x", callback=lambda job_id: close(job_id))

    def close(job_id: int) -> None:
        events.append(f"put {job_id}")
        client.close(stop)

    def stop() -> None:
        events.append("closed")
        done.set_result(None)

    returned = client.connect(put)
    await asyncio.wait_for(done, HANG)
    assert events == ["connected", "put 1", "closed"]
    assert returned.done() and returned.result() is None
    assert client.closed()


async def test_connect_callback_receives_connect_failed() -> None:
    client = beanstalkt.Client("127.0.0.1", free_port())
    error = await via_callback(client.connect)
    assert isinstance(error, ConnectFailed)


def test_seed_readme_callback_chain(beanstalkd: BeanstalkdServer) -> None:
    """The seed README's example, as written, with the server's address."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    output: list[str] = []
    try:
        ioloop = IOLoop.current()

        def show(msg: str, value: Any, cb: Callable[[], None]) -> None:
            output.append(msg % value)
            cb()

        def stop() -> None:
            client.close(ioloop.stop)

        def put() -> None:
            client.put(
                b"A job to work on",
                callback=lambda s: show("Queued a job with id %d", s, reserve),
            )

        def reserve() -> None:
            client.reserve(callback=lambda s: show("Reserved job %s", s, lambda: delete(s["id"])))

        def delete(job_id: int) -> None:
            client.delete(job_id, callback=lambda s: show("Deleted job with id %d", job_id, stop))

        client = beanstalkt.Client(beanstalkd.host, beanstalkd.port)
        client.connect(put)
        guard = ioloop.call_later(HANG, ioloop.stop)
        ioloop.start()
        ioloop.remove_timeout(guard)
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    assert len(output) == 3, output
    assert output[0] == "Queued a job with id 1"
    assert output[1].startswith("Reserved job ") and "A job to work on" in output[1]
    assert output[2] == "Deleted job with id 1"
    assert client.closed()


# --------------------------------------------------------------------------
# Jobs: object and mapping style, encodings.


async def test_job_attribute_and_mapping_access(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        job_id = await client.put(b"payload")
        job = await client.reserve(timeout=0)
        assert job.id == job["id"] == job_id
        assert job.body == job["body"] == b"payload"
        assert job == {"id": job_id, "body": b"payload"}
        assert sorted(job) == ["body", "id"]
        assert repr(job) == f"Job(id={job_id}, body=b'payload')"
        copy = pickle.loads(pickle.dumps(job))
        assert type(copy) is Job and copy == job and copy.body == b"payload"


async def test_default_client_gives_bytes_bodies(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        await client.put(b"caf\xc3\xa9")
        assert (await client.peek_ready()).body == b"caf\xc3\xa9"
        job = await client.reserve(timeout=0)
        assert type(job.body) is bytes and job.body == "café".encode()


async def test_bytes_subclass_body_accepted(beanstalkd: BeanstalkdServer) -> None:
    class Payload(bytes):
        pass

    async with connected(beanstalkd) as client:
        job_id = await client.put(Payload(b"sub\x00class"))
        assert (await client.reserve(timeout=0)) == {"id": job_id, "body": b"sub\x00class"}


async def test_default_client_accepts_bytearray_and_memoryview(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with connected(beanstalkd) as client:
        await client.put(bytearray(b"array"))
        await client.put(memoryview(b"view"))
        assert (await client.reserve(timeout=0)).body == b"array"
        assert (await client.reserve(timeout=0)).body == b"view"


async def test_utf8_client_puts_and_gets_str_bodies(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd, encoding="utf-8") as client:
        job_id = await client.put("héllo ✓")
        peeked = await client.peek(job_id)
        assert type(peeked.body) is str and peeked.body == "héllo ✓"
        job = await client.reserve(timeout=0)
        assert type(job.body) is str and job.body == "héllo ✓"
        assert repr(job) == f"Job(id={job_id}, body='héllo ✓')"
        assert (await client.stats_job(job_id))["id"] == job_id
    async with connected(beanstalkd) as raw:
        await raw.put("héllo ✓".encode())
        assert (await raw.reserve(timeout=0)).body == "héllo ✓".encode()


async def test_utf8_client_still_accepts_bytes_bodies(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd, encoding="utf-8") as client:
        job_id = await client.put("ü".encode())
        job = await client.reserve_job(job_id)
        assert job.body == "ü"


async def test_utf8_client_reserving_undecodable_body_raises_and_stays_usable(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with connected(beanstalkd, encoding="utf-8") as client:
        job_id = await client.put(b"\xff\xfe")
        with pytest.raises(UnexpectedResponse) as raised:
            await client.reserve(timeout=0)
        assert isinstance(raised.value, beanstalkt.UndecodableBody)
        # The exception names the job it could not decode, so it can be dealt with.
        assert raised.value.job_id == job_id
        assert raised.value.body == b"\xff\xfe"
        assert (await client.stats_job(job_id))["state"] == "reserved"
        assert await client.bury(raised.value.job_id) is None
        assert (await client.stats_job(job_id))["state"] == "buried"
        assert await client.delete(job_id) is None
        assert await client.put("ok") == job_id + 1


# --------------------------------------------------------------------------
# Bodies.


async def test_every_byte_value_and_crlf_round_trip(beanstalkd: BeanstalkdServer) -> None:
    body = bytes(range(256)) + b"\r\n\r\nINSERTED 99\r\n" + bytes(range(255, -1, -1)) + b"\r\n"
    async with connected(beanstalkd) as client:
        job_id = await client.put(body)
        assert (await client.peek(job_id)).body == body
        job = await client.reserve(timeout=0)
        assert job.body == body and len(job.body) == len(body)
        assert (await client.stats_job(job_id))["state"] == "reserved"


async def test_empty_body(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        job_id = await client.put(b"")
        assert await client.peek(job_id) == {"id": job_id, "body": b""}
        job = await client.reserve(timeout=0)
        assert (job.id, job.body) == (job_id, b"")
        assert await client.put(b"after") == job_id + 1
    async with connected(beanstalkd, encoding="utf-8") as text:
        text_id = await text.put("")
        assert (await text.reserve_job(text_id)).body == ""


# --------------------------------------------------------------------------
# Bad input: refused before any byte is sent.

BAD_TUBE_NAMES = [
    "",
    "-leading-hyphen",
    "has space",
    "tab\tname",
    "line\nfeed",
    "carriage\rreturn",
    "inject\r\nput 0 0 1 1",
    "nul\x00",
    "star*",
    "colon:",
    "ümlaut",
    "a" * 201,
]


@pytest.mark.parametrize("name", BAD_TUBE_NAMES, ids=[repr(n[:20]) for n in BAD_TUBE_NAMES])
async def test_invalid_tube_name_refused_before_sending(
    beanstalkd: BeanstalkdServer, name: str
) -> None:
    commands: list[Callable[[], object]] = [
        lambda: client.use(name),
        lambda: client.watch(name),
        lambda: client.ignore(name),
        lambda: client.stats_tube(name),
        lambda: client.pause_tube(name, 1),
    ]
    async with connected(beanstalkd) as client:
        async with nothing_sent(client):
            for command in commands:
                with pytest.raises(ValueError):
                    command()
        assert await client.use("good") == "good"
        assert await client.watch("good") == 2
        assert client.using == "good"
        assert client.watching == ["default", "good"]


@pytest.mark.parametrize("name", [b"bytes", None, 5])
async def test_non_str_tube_name_is_a_type_error(beanstalkd: BeanstalkdServer, name: Any) -> None:
    async with connected(beanstalkd) as client:
        async with nothing_sent(client):
            for method in (client.use, client.watch, client.ignore, client.stats_tube):
                with pytest.raises(TypeError):
                    method(name)
        assert await client.list_tube_used() == "default"


async def test_longest_tube_name_and_every_allowed_character_accepted(
    beanstalkd: BeanstalkdServer,
) -> None:
    longest = "a" * 200
    alphabet = "AZaz09-+/;.$_()"
    async with connected(beanstalkd) as client:
        assert await client.use(longest) == longest
        assert await client.watch(alphabet) == 2
        assert (await client.stats_tube(longest))["name"] == longest
        assert alphabet in await client.list_tubes()


@pytest.mark.parametrize(
    "body", [42, {"a": 1}, None, "text without encoding", ["list"], 1.5], ids=repr
)
async def test_non_bytes_body_is_a_type_error(beanstalkd: BeanstalkdServer, body: Any) -> None:
    async with connected(beanstalkd) as client:
        async with nothing_sent(client):
            with pytest.raises(TypeError):
                client.put(body)
        assert await client.put(b"valid") == 1


@pytest.mark.parametrize("body", [42, {"a": 1}, None], ids=repr)
async def test_utf8_client_still_refuses_non_text_bodies(
    beanstalkd: BeanstalkdServer, body: Any
) -> None:
    async with connected(beanstalkd, encoding="utf-8") as client:
        async with nothing_sent(client):
            with pytest.raises(TypeError):
                client.put(body)
        assert await client.put("valid") == 1


OUT_OF_RANGE: dict[str, Command] = {
    "put priority -1": lambda c: c.put(b"x", priority=-1),
    "put priority 2**32": lambda c: c.put(b"x", priority=2**32),
    "put delay -1": lambda c: c.put(b"x", delay=-1),
    "put delay 2**32": lambda c: c.put(b"x", delay=2**32),
    "put ttr -1": lambda c: c.put(b"x", ttr=-1),
    "put ttr 2**32": lambda c: c.put(b"x", ttr=2**32),
    "release priority -1": lambda c: c.release(1, priority=-1),
    "release priority 2**32": lambda c: c.release(1, priority=2**32),
    "release delay -1": lambda c: c.release(1, delay=-1),
    "release delay 2**32": lambda c: c.release(1, delay=2**32),
    "bury priority -1": lambda c: c.bury(1, priority=-1),
    "bury priority 2**32": lambda c: c.bury(1, priority=2**32),
    "kick bound -1": lambda c: c.kick(-1),
    "kick bound 2**32": lambda c: c.kick(2**32),
    "pause_tube delay -1": lambda c: c.pause_tube("default", -1),
    "pause_tube delay 2**32": lambda c: c.pause_tube("default", 2**32),
    "reserve timeout -1": lambda c: c.reserve(timeout=-1),
    "reserve timeout 2**32": lambda c: c.reserve(timeout=2**32),
    "reserve timeout nan": lambda c: c.reserve(timeout=float("nan")),
    "reserve timeout inf": lambda c: c.reserve(timeout=float("inf")),
    "reserve timeout -inf": lambda c: c.reserve(timeout=float("-inf")),
    **{
        f"{command} id {job_id}": (
            # (mypy cannot type a lambda with bound defaults)
            lambda c, command=command, job_id=job_id: getattr(c, command)(job_id)  # type: ignore[misc]
        )
        for command in (
            "delete",
            "release",
            "bury",
            "touch",
            "peek",
            "kick_job",
            "stats_job",
            "reserve_job",
        )
        for job_id in (0, -1, 2**64)
    },
}


@pytest.mark.parametrize("case", list(OUT_OF_RANGE))
async def test_out_of_range_number_is_a_value_error_before_sending(
    beanstalkd: BeanstalkdServer, case: str
) -> None:
    async with connected(beanstalkd) as client:
        job_id = await client.put(b"x")
        await client.reserve(timeout=0)
        async with nothing_sent(client):
            with pytest.raises(ValueError):
                OUT_OF_RANGE[case](client)
        assert await client.touch(job_id) is None
        assert await client.put(b"y") == job_id + 1


WRONG_TYPE: dict[str, Command] = {
    "put priority True": lambda c: c.put(b"x", priority=True),
    "put priority 1.0": lambda c: c.put(b"x", priority=1.0),  # type: ignore[arg-type]
    "put delay '1'": lambda c: c.put(b"x", delay="1"),  # type: ignore[arg-type]
    "put ttr None": lambda c: c.put(b"x", ttr=None),  # type: ignore[arg-type]
    "delete '1'": lambda c: c.delete("1"),  # type: ignore[arg-type]
    "peek 1.0": lambda c: c.peek(1.0),  # type: ignore[arg-type]
    "stats_job None": lambda c: c.stats_job(None),  # type: ignore[arg-type]
    "kick '5'": lambda c: c.kick("5"),  # type: ignore[arg-type]
    "reserve timeout '1'": lambda c: c.reserve(timeout="1"),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("timeout", [float("nan"), float("inf")])
async def test_non_finite_reserve_timeout_says_what_is_accepted(
    beanstalkd: BeanstalkdServer, timeout: float
) -> None:
    async with connected(beanstalkd) as client:
        with pytest.raises(
            ValueError,
            match=r"timeout must be a finite number of seconds from 0 to 2147483647, not ",
        ):
            client.reserve(timeout=timeout)


@pytest.mark.parametrize("case", list(WRONG_TYPE))
async def test_wrong_argument_type_is_a_type_error_before_sending(
    beanstalkd: BeanstalkdServer, case: str
) -> None:
    async with connected(beanstalkd) as client:
        async with nothing_sent(client):
            with pytest.raises(TypeError):
                WRONG_TYPE[case](client)
        assert await client.put(b"ok") == 1


async def test_largest_job_id_is_sent_and_answered_not_found(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with connected(beanstalkd) as client:
        before = (await client.stats())["cmd-delete"]
        with pytest.raises(NotFound):
            await client.delete(MAX_JOB_ID)
        assert (await client.stats())["cmd-delete"] == before + 1


async def test_reserve_fractional_timeout_is_rounded_up(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        with pytest.raises(TimedOut) as caught:
            await asyncio.wait_for(client.reserve(timeout=0.01), HANG)
        assert caught.value.command == "reserve-with-timeout 1"


async def test_reserve_negative_fractional_timeout_is_refused(
    beanstalkd: BeanstalkdServer,
) -> None:
    # reserve(timeout=-1) is a ValueError; -0.5 must not slip through as a poll.
    async with connected(beanstalkd) as client, nothing_sent(client):
        with pytest.raises(ValueError):
            client.reserve(timeout=-0.5)


# --------------------------------------------------------------------------
# Constructor options.


async def test_constructor_use_is_applied_on_connect(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd, use="jobs") as client:
        assert client.using == "jobs"
        assert await client.list_tube_used() == "jobs"
        assert await client.list_tubes_watched() == ["default"]  # use= leaves watch alone
        job_id = await client.put(b"x")
        assert (await client.stats_job(job_id))["tube"] == "jobs"


async def test_constructor_watch_str_replaces_default(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd, watch="emails") as client:
        assert client.watching == ["emails"]
        assert await client.list_tubes_watched() == ["emails"]
        assert await client.list_tube_used() == "default"  # watch= leaves use alone


async def test_constructor_watch_list_replaces_default_which_is_ignored(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with connected(beanstalkd, watch=["a", "b"]) as client, connected(beanstalkd) as other:
        assert client.watching == ["a", "b"]
        assert sorted(await client.list_tubes_watched()) == ["a", "b"]
        await other.put(b"in default")
        await other.use("b")
        in_b = await other.put(b"in b")
        assert (await client.reserve(timeout=0)).id == in_b
        with pytest.raises(TimedOut):
            await client.reserve(timeout=0)


async def test_constructor_watch_list_keeps_default_when_listed(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with connected(beanstalkd, watch=["default", "a"]) as client:
        assert client.watching == ["default", "a"]
        assert sorted(await client.list_tubes_watched()) == ["a", "default"]


async def test_constructor_watch_accepts_any_iterable_and_drops_duplicates(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with connected(beanstalkd, watch=("x", "x", "y"), use="x") as client:
        assert client.watching == ["x", "y"]
        assert sorted(await client.list_tubes_watched()) == ["x", "y"]
    async with connected(beanstalkd, watch=(name for name in ["g"])) as client:
        assert await client.list_tubes_watched() == ["g"]


@pytest.mark.parametrize(
    "options",
    [{"watch": []}, {"watch": ["ok", "bad name"]}, {"watch": "-x"}, {"use": "bad name"}],
    ids=["watch-empty", "watch-bad-in-list", "watch-bad-str", "use-bad"],
)
def test_constructor_rejects_bad_use_and_watch(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        beanstalkt.Client("127.0.0.1", 1, **options)


async def test_constructor_takes_seed_positional_arguments(beanstalkd: BeanstalkdServer) -> None:
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port, 5.0, IOLoop.current())
    await client.connect()
    try:
        assert await client.put(b"x") == 1
    finally:
        await client.close()


# --------------------------------------------------------------------------
# Properties.


async def test_using_takes_effect_at_the_call_watching_follows_the_server(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with connected(beanstalkd) as client:
        assert client.using == "default"
        assert client.watching == ["default"]
        using = client.use("u")
        assert client.using == "u"  # commands issued from now on act on "u"
        assert await using == "u"
        watching = client.watch("w")
        assert client.watching == ["default"]  # not confirmed by the server yet
        await watching
        assert client.using == "u"
        assert client.watching == ["default", "w"]
        await client.ignore("default")
        assert client.watching == ["w"]
        with pytest.raises(NotIgnored):
            await client.ignore("w")
        assert client.watching == ["w"]
        assert isinstance(client.watching, list)
        client.watching.append("not really")  # a copy
        assert client.watching == ["w"]


async def test_in_flight_counts_unanswered_commands(beanstalkd: BeanstalkdServer) -> None:
    async with connected(beanstalkd) as client:
        assert client.in_flight == 0
        futures: list[asyncio.Future[Any]] = [
            client.use("other"),
            client.put(b"x"),
            client.peek(UNKNOWN_ID),
        ]
        assert client.in_flight == 3
        await asyncio.gather(*futures, return_exceptions=True)
        assert client.in_flight == 0
        reserving = client.reserve()  # watches "default", which is empty
        await asyncio.sleep(0.05)
        assert client.in_flight == 1  # a blocking reserve is still owed
        async with connected(beanstalkd) as other:
            await other.put(b"y")
        await asyncio.wait_for(reserving, HANG)
        assert client.in_flight == 0


async def test_address_closed_and_repr(beanstalkd: BeanstalkdServer) -> None:
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port)
    assert client.address == f"{beanstalkd.host}:{beanstalkd.port}"
    assert client.closed()
    await client.connect()
    assert not client.closed()
    assert client.address in repr(client)
    await client.close()
    assert client.closed()
    await client.close()  # twice is fine
    assert client.closed()


async def test_async_with_connects_and_closes(beanstalkd: BeanstalkdServer) -> None:
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port)
    async with client as entered:
        assert entered is client
        assert not client.closed()
        assert await client.put(b"x") == 1
    assert client.closed()


async def test_async_with_closes_on_error(beanstalkd: BeanstalkdServer) -> None:
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port)
    with pytest.raises(NotFound):
        async with client:
            await client.delete(UNKNOWN_ID)
    assert client.closed()


# --------------------------------------------------------------------------
# Connecting.


async def test_connect_refused_fails_fast_naming_the_address() -> None:
    port = free_port()
    client = beanstalkt.Client("127.0.0.1", port)
    started = time.monotonic()
    with pytest.raises(ConnectFailed) as caught:
        await asyncio.wait_for(client.connect(), HANG)
    assert time.monotonic() - started < 5
    error = caught.value
    assert isinstance(error, BeanstalkConnectionError)
    assert isinstance(error, ConnectionError)
    assert f"127.0.0.1:{port}" in str(error)
    assert client.closed()


@pytest.fixture
def unaccepting_port() -> Iterator[int]:
    """A listening TCP port whose accept queue is full: new connects hang."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port: int = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.settimeout(0.2)
            fillers.append(filler)
            try:
                filler.connect(("127.0.0.1", port))
            except TimeoutError:  # TimeoutError from Python 3.10 on
                break
        else:
            pytest.fail("could not fill the accept queue of a listening socket")
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_connect_timeout_is_honoured(unaccepting_port: int) -> None:
    client = beanstalkt.Client("127.0.0.1", unaccepting_port, connect_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(ConnectFailed) as caught:
        await asyncio.wait_for(client.connect(), HANG)
    assert time.monotonic() - started < 5
    assert f"127.0.0.1:{unaccepting_port}" in str(caught.value)
    assert "timed out" in str(caught.value)
    assert client.closed()


async def test_unix_socket_put_and_reserve() -> None:
    with tempfile.TemporaryDirectory(prefix="bt-") as directory:
        path = os.path.join(directory, "beanstalkd.sock")
        with BeanstalkdServer(unix_socket=path) as server:
            assert server.address == f"unix:{path}"
            client = beanstalkt.Client(host="unix:" + path)
            assert client.address == f"unix:{path}"
            async with client:
                job_id = await client.put(b"over a unix socket")
                job = await client.reserve(timeout=0)
                assert (job.id, job.body) == (job_id, b"over a unix socket")
                assert await client.delete(job_id) is None


async def test_unix_socket_missing_path_is_connect_failed() -> None:
    with tempfile.TemporaryDirectory(prefix="bt-") as directory:
        path = os.path.join(directory, "nobody.sock")
        client = beanstalkt.Client(host="unix:" + path)
        with pytest.raises(ConnectFailed) as caught:
            await asyncio.wait_for(client.connect(), HANG)
        assert path in str(caught.value)


# --------------------------------------------------------------------------
# Before connect and after close.


async def test_commands_issued_while_connecting_are_sent_once_connected(
    beanstalkd: BeanstalkdServer,
) -> None:
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="early")
    connecting = client.connect()
    await asyncio.sleep(0)  # the connection attempt is under way
    assert client.closed()
    putting = client.put(b"queued before the connection was up")
    used = client.list_tube_used()
    await asyncio.wait_for(connecting, HANG)
    try:
        assert await asyncio.wait_for(putting, HANG) == 1
        assert await used == "early"  # the session was restored first
        assert (await client.peek(1)).body == b"queued before the connection was up"
    finally:
        await client.close()


async def test_commands_issued_in_the_same_turn_as_connect_wait_for_it(
    beanstalkd: BeanstalkdServer,
) -> None:
    # connect() has been called: a command right after it must not fail with
    # "not connected; call connect() first" just because the connect task has
    # not had its first step yet.
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port)
    connecting = client.connect()
    putting = client.put(b"right after connect()")
    await asyncio.wait_for(connecting, HANG)
    try:
        assert await asyncio.wait_for(putting, HANG) == 1
    finally:
        await client.close()


async def test_commands_waiting_for_a_failing_connect_fail_with_connect_failed() -> None:
    client = beanstalkt.Client("127.0.0.1", free_port())
    connecting = client.connect()
    await asyncio.sleep(0)  # the connection attempt is under way
    putting = client.put(b"x")
    with pytest.raises(ConnectFailed):
        await asyncio.wait_for(connecting, HANG)
    with pytest.raises(ConnectFailed):
        await asyncio.wait_for(putting, HANG)


async def test_connect_can_be_retried_after_it_failed() -> None:
    port = free_port()
    client = beanstalkt.Client("127.0.0.1", port)
    with pytest.raises(ConnectFailed):
        await asyncio.wait_for(client.connect(), HANG)
    with BeanstalkdServer(port=port):
        await asyncio.wait_for(client.connect(), HANG)
        try:
            assert not client.closed()
            assert await client.put(b"x") == 1
        finally:
            await client.close()


async def test_commands_before_connect_fail_with_not_connected() -> None:
    client = beanstalkt.Client("127.0.0.1", free_port())
    with pytest.raises(NotConnected) as caught:
        await client.put(b"x")
    assert isinstance(caught.value, ConnectionError)
    assert "connect()" in str(caught.value)


async def test_commands_after_close_fail_with_not_connected(beanstalkd: BeanstalkdServer) -> None:
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port)
    await client.connect()
    await client.put(b"x")
    await client.close()
    for command in (client.put(b"y"), client.reserve(timeout=0), client.stats()):
        with pytest.raises(NotConnected) as caught:
            await command
        assert "closed" in str(caught.value)
    error = await via_callback(lambda cb: client.delete(1, callback=cb))
    assert isinstance(error, NotConnected)
    async with connected(beanstalkd) as observer:
        assert (await observer.stats())["cmd-put"] == 1


async def test_close_while_connecting_fails_the_connect_with_not_connected(
    beanstalkd: BeanstalkdServer,
) -> None:
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port)
    connecting = client.connect()
    await asyncio.sleep(0)  # the connection attempt is under way
    await client.close()
    with pytest.raises(NotConnected):
        await asyncio.wait_for(connecting, HANG)
    assert client.closed()
    with pytest.raises(NotConnected):
        await client.put(b"x")


async def test_connect_again_after_close(beanstalkd: BeanstalkdServer) -> None:
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="kept")
    await client.connect()
    await client.close()
    await asyncio.wait_for(client.connect(), HANG)
    try:
        assert not client.closed()
        assert await client.list_tube_used() == "kept"
    finally:
        await client.close()


async def test_close_fails_an_outstanding_reserve_with_connection_lost(
    beanstalkd: BeanstalkdServer,
) -> None:
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port)
    await client.connect()
    reserving = client.reserve()
    await asyncio.sleep(0.05)
    await client.close()
    with pytest.raises(ConnectionLost):
        await asyncio.wait_for(reserving, HANG)

"""Producer helpers against a real beanstalkd: JSON bodies, named priorities, schedule_at."""

from __future__ import annotations

import asyncio
import datetime
import json
import time

import pytest

import beanstalkt
from beanstalkt.producer import Priority, delay_until, encode_json
from beanstalkt.testing import BeanstalkdServer
from beanstalkt.worker import ReservedJob, Worker


def test_encode_json_is_compact_utf8() -> None:
    assert encode_json({"to": "zoë@example.com", "n": [1, 2]}) == (
        '{"to":"zoë@example.com","n":[1,2]}'.encode()
    )


def test_priority_levels_are_ordered_and_plain_ints() -> None:
    assert Priority.CRITICAL < Priority.HIGH < Priority.NORMAL < Priority.LOW <= 2**32 - 1
    assert Priority.NORMAL == beanstalkt.DEFAULT_PRIORITY
    assert Priority.HIGH < 1024  # the server counts it as urgent
    assert Priority["LOW"] == Priority.LOW


def test_delay_until_rounds_up_and_never_goes_negative() -> None:
    now = datetime.datetime.now(datetime.timezone.utc)
    assert delay_until(now + datetime.timedelta(seconds=90.2)) in (91, 90)
    assert delay_until(now - datetime.timedelta(days=1)) == 0
    # A naive datetime is local time.
    assert 3599 <= delay_until(datetime.datetime.now() + datetime.timedelta(hours=1)) <= 3600


async def test_put_json_round_trip(beanstalkd: BeanstalkdServer) -> None:
    data = {"to": "ada@example.com", "subject": "Welcome", "tags": ["new", "ë"]}
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, watch="emails") as client:
        job_id = await client.put_json(data, tube="emails", priority=Priority.HIGH, ttr=60)
        assert client.using == "default"  # tube= is for this job only
        second = await client.put_json([1, 2, 3], delay=0, tube="emails")
        job = await client.reserve(timeout=0)
        assert job.id == job_id
        assert json.loads(job.body) == data
        stats = await client.stats_job(job_id)
        assert (stats["tube"], stats["pri"], stats["ttr"]) == ("emails", Priority.HIGH, 60)
        await client.delete(job_id)
        job = await client.reserve(timeout=0)
        assert (job.id, json.loads(job.body)) == (second, [1, 2, 3])
        await client.delete(job.id)


async def test_put_json_to_several_tubes_pipelined(beanstalkd: BeanstalkdServer) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        ids = await asyncio.gather(
            *[client.put_json({"n": n}, tube=f"tube{n % 3}") for n in range(30)]
        )
        tubes = await asyncio.gather(*[client.stats_job(job_id) for job_id in ids])
        assert [stats["tube"] for stats in tubes] == [f"tube{n % 3}" for n in range(30)]


async def test_named_priorities_decide_the_order(beanstalkd: BeanstalkdServer) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        for level in (Priority.LOW, Priority.NORMAL, Priority.CRITICAL, Priority.HIGH):
            await client.put_json(level.name, priority=level)
        await client.put(b'"DEFAULT"')  # no priority: the same as NORMAL, put later
        order = []
        for _ in range(5):
            job = await client.reserve(timeout=0)
            order.append(json.loads(job.body))
            await client.delete(job.id)
        assert order == ["CRITICAL", "HIGH", "NORMAL", "DEFAULT", "LOW"]
        assert (await client.stats())["current-jobs-urgent"] == 0


async def test_schedule_at_is_a_delayed_put(beanstalkd: BeanstalkdServer) -> None:
    in_an_hour = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        later = await client.schedule_at(in_an_hour, b"report", tube="reports", ttr=30)
        stats = await client.stats_job(later)
        assert (stats["state"], stats["tube"], stats["ttr"]) == ("delayed", "reports", 30)
        assert 3590 <= stats["delay"] <= 3600
        past = datetime.datetime.now() - datetime.timedelta(minutes=5)
        now_id = await client.schedule_at(past, b"overdue", priority=Priority.CRITICAL)
        stats = await client.stats_job(now_id)
        assert (stats["state"], stats["delay"], stats["tube"]) == ("ready", 0, "default")
        soon = datetime.datetime.now() + datetime.timedelta(seconds=1)
        soon_id = await client.schedule_at(soon, b"soon")
        assert (await client.stats_job(soon_id))["delay"] in (1, 2)


async def test_schedule_at_and_put_json_feed_a_worker(beanstalkd: BeanstalkdServer) -> None:
    received: list[object] = []

    async def handle(job: ReservedJob) -> None:
        received.append(job.json())

    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="mixed") as client:
        when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)
        await client.schedule_at(when, encode_json({"kind": "scheduled"}))
        await client.put_json({"kind": "now"})
        async with Worker({"mixed": handle}, host=beanstalkd.host, port=beanstalkd.port):
            deadline = time.monotonic() + 30
            while len(received) < 2:
                assert time.monotonic() < deadline, "jobs not handled"
                await asyncio.sleep(0.02)
    assert received == [{"kind": "now"}, {"kind": "scheduled"}]


async def test_put_json_refuses_what_json_cannot_encode(beanstalkd: BeanstalkdServer) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        with pytest.raises(TypeError):
            client.put_json({"when": datetime.datetime.now()})
        with pytest.raises(ValueError):
            client.put_json({}, tube="bad name")
        assert (await client.stats())["total-jobs"] == 0


async def test_any_job_reads_its_json_body(beanstalkd: BeanstalkdServer) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        job_id = await client.put_json({"to": "ada", "n": [1, 2]})
        assert (await client.peek(job_id)).json() == {"to": "ada", "n": [1, 2]}
        assert (await client.reserve(timeout=0)).json() == {"to": "ada", "n": [1, 2]}

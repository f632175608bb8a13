"""put_many against a real server: slices, per-job results, back-pressure, cancellation."""

from __future__ import annotations

import asyncio

import pytest

import beanstalkt
from beanstalkt.testing import BeanstalkdServer


async def test_a_large_batch_goes_in_slices_and_resolves_in_order(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        bodies = [b"%06d" % n + b"x" * 10_000 for n in range(300)]  # about 3 MB: 12 slices
        ids = await client.put_many(bodies, tube="big")
        assert ids == list(range(1, 301))
        assert isinstance(ids[150], int)
        assert (await client.peek(ids[150])).body == bodies[150]
        assert (await client.stats_tube("big"))["current-jobs-ready"] == 300
        assert await client.put_many([]) == []


async def test_each_job_gets_its_own_failure(beanstalkd: BeanstalkdServer) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        results = await client.put_many([b"ok", b"x" * 70_000, b"ok too"])  # max-job-size 65535
        assert results[0] == 1 and results[2] == 2
        assert isinstance(results[1], beanstalkt.JobTooBig)


async def test_slices_past_max_pending_bytes_fail_alone(beanstalkd: BeanstalkdServer) -> None:
    async with beanstalkt.Client(
        beanstalkd.host, beanstalkd.port, max_pending_bytes=300_000
    ) as client:
        bodies = [b"y" * 10_000 for _ in range(100)]  # 4 slices of about 256 KB
        results = await client.put_many(bodies)
        stored = [result for result in results if isinstance(result, int)]
        refused = [result for result in results if isinstance(result, beanstalkt.BufferFull)]
        assert len(stored) + len(refused) == 100
        assert stored == list(range(1, len(stored) + 1)) and 0 < len(stored) < 100
        assert (await client.stats())["current-jobs-ready"] == len(stored)


async def test_a_cancelled_batch_sends_nothing_it_had_not_written(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        waiting = client.reserve(timeout=1)  # owed: the batch stays in the buffer
        batch = client.put_many([b"z" * 1000] * 100)  # below the early-write threshold
        batch.cancel()
        with pytest.raises(beanstalkt.TimedOut):
            await waiting
        await asyncio.sleep(0.05)
        assert (await client.stats())["cmd-put"] == 0

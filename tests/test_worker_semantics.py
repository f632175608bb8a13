"""Worker semantics against a real beanstalkd: idle cost, how attempts are counted, lazy stats.

The attempt count lives in the server (``1 + buries`` of the job), so that it
survives worker restarts; the first tests pin down the beanstalkd 1.12 facts
that choice relies on.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

import beanstalkt
from beanstalkt.testing import BeanstalkdServer
from beanstalkt.worker import Release, ReservedJob, Worker
from tests.test_worker import HANG, REPOSITORY, eventually, make_worker

IDLE_SECONDS = 1.5


def counters_of(stats: beanstalkt.StatsJob) -> tuple[int, int, int, int]:
    return stats["releases"], stats["buries"], stats["kicks"], stats["timeouts"]


# ----------------------------------------------------------------------
# The server facts the attempt count relies on.


async def test_server_facts_behind_the_attempt_count(beanstalkd: BeanstalkdServer) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="f", watch="f") as observer:
        job_id = await observer.put(b"x", priority=5)

        # A connection closed while it holds the reservation: ready again, no counter moved.
        holder = beanstalkt.Client(beanstalkd.host, beanstalkd.port, watch="f")
        await holder.connect()
        assert (await holder.reserve(timeout=0)).id == job_id
        await holder.close()
        await eventually(
            lambda: _state_is(observer, job_id, "ready"), "the job back to ready after the close"
        )
        stats = await observer.stats_job(job_id)
        assert (stats["reserves"], *counters_of(stats)) == (1, 0, 0, 0, 0)

        async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, watch="f") as worker:
            # bury + kick-job: buries and kicks grow, releases does not.
            await worker.reserve(timeout=0)
            await worker.bury(job_id, 5)
            await observer.kick_job(job_id)
            stats = await observer.stats_job(job_id)
            assert (stats["state"], *counters_of(stats)) == ("ready", 0, 1, 1, 0)

            # A failure's mark: bury, reserve-job, release with a delay, in one write.
            await worker.reserve(timeout=0)
            marked: list[asyncio.Future[Any]] = [
                worker.bury(job_id, 5),
                worker.reserve_job(job_id),
                worker.release(job_id, 5, 9),
            ]
            await asyncio.gather(*marked)
            stats = await observer.stats_job(job_id)
            assert (stats["state"], stats["delay"], stats["pri"]) == ("delayed", 9, 5)
            assert (stats["reserves"], *counters_of(stats)) == (4, 1, 2, 1, 0)

            # A plain release moves releases only.
            await worker.reserve_job(job_id)
            await worker.release(job_id, 5, 0)
            stats = await observer.stats_job(job_id)
            assert (stats["state"], *counters_of(stats)) == ("ready", 2, 2, 1, 0)


async def _state_is(client: beanstalkt.Client, job_id: int, state: str) -> bool:
    return (await client.stats_job(job_id))["state"] == state


# ----------------------------------------------------------------------
# An idle worker does not poll.


async def _reserves(client: beanstalkt.Client) -> int:
    stats = await client.stats()
    return stats["cmd-reserve"] + stats["cmd-reserve-with-timeout"]


async def _waiting(client: beanstalkt.Client, count: int) -> bool:
    return (await client.stats())["current-waiting"] == count


@pytest.mark.parametrize("per_connection, connections", [(1, 4), (8, 1)])
async def test_idle_worker_with_reserve_timeout_zero_does_not_spin(
    beanstalkd: BeanstalkdServer, per_connection: int, connections: int
) -> None:
    worker = make_worker(
        beanstalkd,
        {"idle": _noop},
        concurrency=4,
        reserve_timeout=0,
        slots_per_connection=per_connection,
    )
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client, worker:
        await eventually(lambda: _waiting(client, connections), "the reserves waiting")
        before = await _reserves(client)
        await asyncio.sleep(IDLE_SECONDS)
        after = await _reserves(client)
        # Each connection asks at most once a second (it spun at ~10,000/s per slot).
        assert after - before <= connections * (IDLE_SECONDS + 1)
        # And it still works the moment a job comes.
        await client.use("idle")
        await client.put(b"x")
        await eventually(lambda: worker.counters()["idle"]["done"] == 1, "the job done")


async def test_shared_connection_with_a_busy_slot_polls_gently_and_picks_up_new_jobs(
    beanstalkd: BeanstalkdServer,
) -> None:
    gate = asyncio.Event()
    handled: list[bytes] = []

    async def handle(job: ReservedJob) -> None:
        if job.body == b"long":
            await gate.wait()
        handled.append(bytes(job.body))

    worker = make_worker(beanstalkd, {"mix": handle}, concurrency=4, slots_per_connection=4)
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="mix") as client, worker:
        await client.put(b"long")
        await eventually(lambda: worker.counters()["mix"]["in_progress"] == 1, "the long job")
        # The tube is empty and one job runs: the connection must not wait on the
        # server (the long job's touches would queue behind), so one slot polls.
        before = await _reserves(client)
        await asyncio.sleep(IDLE_SECONDS)
        after = await _reserves(client)
        assert after - before <= IDLE_SECONDS / 0.1 + 4
        assert (await client.stats())["current-waiting"] == 0
        # New jobs are picked up while the long one still runs.
        for n in range(3):
            await client.put(b"short %d" % n)
        await eventually(lambda: len(handled) == 3, "three short jobs handled")
        assert worker.counters()["mix"]["in_progress"] == 1
        gate.set()
        await eventually(lambda: worker.counters()["mix"]["done"] == 4, "all done")
    assert handled[-1] == b"long"


async def test_long_job_on_a_shared_connection_is_touched_while_its_siblings_idle(
    beanstalkd: BeanstalkdServer,
) -> None:
    async def handle(job: ReservedJob) -> None:
        await asyncio.sleep(2.5)

    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="touchy") as client:
        job_id = await client.put(b"x", ttr=1)
        worker = make_worker(beanstalkd, {"touchy": handle}, concurrency=3)
        waiting_while_it_ran = []
        async with worker:
            await eventually(lambda: worker.counters()["touchy"]["in_progress"] == 1, "running")
            await asyncio.sleep(0.5)  # the idle siblings settle
            # No reserve waits on the server in front of the job's touches.
            waiting_while_it_ran.append((await client.stats())["current-waiting"])
            await eventually(lambda: worker.counters()["touchy"]["done"] == 1, "the job done")
        stats = await client.stats()
        with pytest.raises(beanstalkt.NotFound):
            await client.stats_job(job_id)
    assert (stats["job-timeouts"], stats["cmd-delete"]) == (0, 1)
    assert waiting_while_it_ran == [0]
    assert stats["cmd-touch"] >= 2  # every 0.5 s; the TTR never ran out
    assert worker.counters()["touchy"]["lost"] == 0


async def test_command_line_with_reserve_timeout_zero_does_not_spin(
    beanstalkd: BeanstalkdServer,
) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "beanstalkt.worker",
            "tests.test_worker:noop_handler",
            "--port",
            str(beanstalkd.port),
            "--tube",
            "idle",
            "--concurrency",
            "4",
            "--reserve-timeout",
            "0",
            "--slots-per-connection",
            "1",
        ],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
            await eventually(lambda: _waiting(client, 4), "four reserves waiting")
            before = await _reserves(client)
            await asyncio.sleep(IDLE_SECONDS)
            after = await _reserves(client)
            assert after - before <= 4 * (IDLE_SECONDS + 1)
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.get_running_loop().run_in_executor(
            None, lambda: process.communicate(timeout=HANG)
        )
        assert process.returncode == 0, output.decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def _noop(job: ReservedJob) -> None:
    return None


# ----------------------------------------------------------------------
# Only failures count as attempts.


async def test_releases_by_the_handler_do_not_use_up_attempts(beanstalkd: BeanstalkdServer) -> None:
    attempts: list[int] = []

    async def handle(job: ReservedJob) -> Any:
        await job.load_stats()
        attempts.append(job.attempt)
        if len(attempts) <= 3:
            return Release()  # e.g. rate limited: not a failure
        raise RuntimeError("a real failure")

    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="rel") as client:
        job_id = await client.put(b"x", priority=42)
        worker = make_worker(beanstalkd, {"rel": handle}, max_attempts=2, backoff_base=0)
        async with worker:
            await eventually(lambda: worker.counters()["rel"]["buried"] == 1, "the job buried")
        stats = await client.stats_job(job_id)
    # Three releases, then failure 1 (retried) and failure 2 (buried): max_attempts=2.
    assert attempts == [1, 1, 1, 1, 2]
    assert (stats["state"], stats["pri"]) == ("buried", 42)
    assert (stats["releases"], stats["buries"]) == (4, 2)
    counters = worker.counters()["rel"]
    assert (counters["released"], counters["failed"], counters["retried"]) == (3, 2, 1)


async def test_hand_backs_at_shutdown_do_not_use_up_attempts(beanstalkd: BeanstalkdServer) -> None:
    started = asyncio.Event()

    async def stuck(job: ReservedJob) -> None:
        started.set()
        await asyncio.sleep(HANG)

    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="deploy") as client:
        job_id = await client.put(b"x")
        # Three deploys, each stopping a worker in the middle of the job.
        for _ in range(3):
            started.clear()
            worker = make_worker(beanstalkd, {"deploy": stuck}, grace_period=0)
            await worker.start()
            await asyncio.wait_for(started.wait(), HANG)
            await asyncio.wait_for(worker.stop(), HANG)
            assert worker.counters()["deploy"]["released"] == 1
        assert (await client.stats_job(job_id))["releases"] == 3

        # Its first real failure is attempt 1 of 2: retried, not buried.
        attempts: list[int] = []

        async def fails(job: ReservedJob) -> None:
            await job.load_stats()
            attempts.append(job.attempt)
            raise RuntimeError("boom")

        # (No jitter: the delay is asserted exactly.)
        worker = make_worker(
            beanstalkd, {"deploy": fails}, max_attempts=2, backoff_base=60, backoff_jitter=0
        )
        async with worker:
            await eventually(lambda: worker.counters()["deploy"]["retried"] == 1, "a retry")
        stats = await client.stats_job(job_id)
    assert attempts == [1]
    assert (stats["state"], stats["delay"], stats["buries"]) == ("delayed", 60, 1)


async def test_attempts_survive_a_worker_restart(beanstalkd: BeanstalkdServer) -> None:
    attempts: list[int] = []

    async def fails(job: ReservedJob) -> None:
        await job.load_stats()
        attempts.append(job.attempt)
        raise RuntimeError("boom")

    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="again") as client:
        job_id = await client.put(b"x")
        for expected in (1, 2, 3):
            # A new worker each time: nothing but the server remembers the failures.
            worker = make_worker(beanstalkd, {"again": fails}, max_attempts=3, backoff_base=60)
            async with worker:
                await eventually(_acknowledged_once(worker, "again"), f"attempt {expected}")
            assert len(attempts) == expected
            if expected < 3:
                await client.kick_job(job_id)  # delayed 60 s: ready now (kicks do not count)
        stats = await client.stats_job(job_id)
    assert attempts == [1, 2, 3]
    assert (stats["state"], stats["buries"]) == ("buried", 3)


def _acknowledged_once(worker: Worker, tube: str) -> Callable[[], bool]:
    def check() -> bool:
        counters = worker.counters()[tube]
        return counters["retried"] + counters["buried"] == 1

    return check


# ----------------------------------------------------------------------
# Stats are read only when needed.


async def test_no_stats_job_per_job_with_one_tube(beanstalkd: BeanstalkdServer) -> None:
    seen: list[tuple[str, bool]] = []

    async def handle(job: ReservedJob) -> None:
        seen.append((job.tube, job.stats_loaded))

    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="fast") as client:
        await asyncio.gather(*[client.put(b"%d" % n) for n in range(30)])
        async with make_worker(beanstalkd, {"fast": handle}, concurrency=3) as worker:
            await eventually(lambda: worker.counters()["fast"]["done"] == 30, "30 jobs done")
        stats = await client.stats()
    assert seen == [("fast", False)] * 30
    assert stats["cmd-stats-job"] == 0
    assert stats["cmd-delete"] == 30


async def test_stats_in_a_handler(beanstalkd: BeanstalkdServer) -> None:
    seen: list[tuple[int, int, int]] = []
    errors: list[str] = []

    async def handle(job: ReservedJob) -> None:
        try:
            job.attempt  # noqa: B018 - reading it must fail clearly
        except RuntimeError as exc:
            errors.append(str(exc))
        stats = await job.load_stats()
        assert stats is job.stats and stats["id"] == job.id
        seen.append((job.priority, job.ttr, job.attempt))

    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="lazy") as client:
        await client.put(b"x", priority=7, ttr=30)
        async with make_worker(beanstalkd, {"lazy": handle}) as worker:
            await eventually(lambda: worker.counters()["lazy"]["done"] == 1, "the job done")
    assert seen == [(7, 30, 1)]
    assert len(errors) == 1 and "await job.load_stats()" in errors[0]


async def test_prefetch_stats_reads_them_before_the_handler(beanstalkd: BeanstalkdServer) -> None:
    seen: list[tuple[int, int, int]] = []

    def handle(job: ReservedJob) -> None:  # a thread handler: it cannot await
        seen.append((job.priority, job.ttr, job.attempt))

    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="pre") as client:
        for priority in (3, 4):
            await client.put(b"x", priority=priority, ttr=20)
        worker = make_worker(beanstalkd, {"pre": handle}, prefetch_stats=True)
        async with worker:
            await eventually(lambda: worker.counters()["pre"]["done"] == 2, "two jobs done")
        assert (await client.stats())["cmd-stats-job"] == 2
    assert seen == [(3, 20, 1), (4, 20, 1)]


def test_reserved_job_made_by_hand() -> None:
    job = ReservedJob(1, b'{"a": 1}', "t", {"pri": 9, "ttr": 0, "buries": 2})
    assert (job.priority, job.ttr, job.attempt, job.json()) == (9, 1, 3, {"a": 1})
    assert job == {"id": 1, "body": b'{"a": 1}'}
    assert repr(job) == "ReservedJob(id=1, tube='t', attempt=3)"
    bare = ReservedJob(2, b"x", "t")
    assert repr(bare) == "ReservedJob(id=2, tube='t')"
    with pytest.raises(RuntimeError, match="load_stats"):
        bare.priority  # noqa: B018
    with pytest.raises(RuntimeError, match="not reserved by a worker"):
        asyncio.run(bare.load_stats())


def test_worker_refuses_bad_timeouts() -> None:
    with pytest.raises(ValueError):
        Worker({"t": _noop}, reserve_timeout=-1)
    with pytest.raises(ValueError):
        Worker({"t": _noop}, reserve_timeout=float("inf"))
    with pytest.raises(ValueError):
        Worker({"t": _noop}, grace_period=float("nan"))

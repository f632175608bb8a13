"""Periodic tasks: once per tick across workers, the seeding lock, and a worker killed mid-tick."""

from __future__ import annotations

import asyncio
import datetime
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import beanstalkt
from beanstalkt.tasks import Middleware, TaskMessage, Tasks
from beanstalkt.tasks.periodic import (
    Cron,
    Interval,
    Periodic,
    ensure_tick,
    home_server,
    next_tick,
    tick_tube,
)
from beanstalkt.testing import BeanstalkdServer
from beanstalkt.worker.failures import read_failures

from .test_worker import HANG, REPOSITORY, eventually

EVERY = 2  # seconds between ticks in the tests (beanstalkd delays are whole seconds)


def test_interval_times_are_aligned_so_every_worker_computes_the_same() -> None:
    five = Interval(datetime.timedelta(minutes=5))
    assert five.next_after(0) == 300
    assert five.next_after(299.9) == 300
    assert five.next_after(300) == 600  # strictly after
    with pytest.raises(ValueError, match="at least one second"):
        Interval(datetime.timedelta(milliseconds=500))


def test_a_late_tick_skips_the_missed_ones_and_none_fires_early() -> None:
    every = Interval(datetime.timedelta(seconds=10))
    assert next_tick(every, due=100, now=100.5) == 110
    assert next_tick(every, due=100, now=109.9) == 110
    assert next_tick(every, due=100, now=135) == 140  # 110, 120, 130 were missed


def test_cron_expressions_through_cronsim() -> None:
    cron = Cron("*/5 * * * *")
    start = datetime.datetime(2026, 12, 4, 18, 2, 30, tzinfo=datetime.timezone.utc).timestamp()
    upcoming = datetime.datetime.fromtimestamp(cron.next_after(start), datetime.timezone.utc)
    assert upcoming == datetime.datetime(2026, 12, 4, 18, 5, tzinfo=datetime.timezone.utc)
    with pytest.raises(ValueError, match="cron expression 'every day'"):
        Cron("every day")


def test_tick_tubes_are_valid_and_distinct() -> None:
    assert tick_tube("tasks.periodic.app.sweep") == "tasks.periodic.app.sweep"
    odd = tick_tube("tasks.periodic.app.<locals>.sweep")
    assert odd.startswith("tasks.periodic.app._locals_.sweep.") and len(odd) < 200
    assert odd != tick_tube("tasks.periodic.app._locals_.sweep")
    long = tick_tube("x" * 300, ".lock")
    assert len(long) <= 200 and long.endswith(".lock")
    servers = ["a:1", "b:1", "c:1"]
    assert home_server("sweep", servers) == home_server("sweep", list(reversed(servers)))


async def tick_jobs(client: beanstalkt.Client, tube: str) -> int:
    try:
        stats = await client.stats_tube(tube)
    except beanstalkt.NotFound:
        return 0
    return (
        stats["current-jobs-ready"] + stats["current-jobs-delayed"] + stats["current-jobs-reserved"]
    )


async def test_workers_seeding_together_put_exactly_one_tick(beanstalkd: BeanstalkdServer) -> None:
    periodic = Periodic(
        "app.sweep", Interval(datetime.timedelta(hours=1)), "tasks.periodic.app.sweep"
    )
    clients = [beanstalkt.Client(beanstalkd.host, beanstalkd.port) for _ in range(12)]
    try:
        for client in clients:
            await client.connect()
        for _round in range(3):  # and again later: the tick exists, nothing is added
            outcomes = await asyncio.gather(
                *(ensure_tick(client, periodic, ttr=60) for client in clients)
            )
            assert outcomes.count(True) == (1 if _round == 0 else 0)
            assert await tick_jobs(clients[0], periodic.tube) == 1
        # The lock leaves nothing behind.
        with pytest.raises(beanstalkt.NotFound):
            await clients[0].peek_ready(tube=periodic.lock_tube)
        tick = await clients[0].peek_delayed(tube=periodic.tube)
        stats = await clients[0].stats_job(tick.id)
        assert 0 < stats["delay"] <= 3600
    finally:
        for client in clients:
            await client.close()


async def test_a_dead_contenders_lock_ticket_is_removed_when_stale(
    beanstalkd: BeanstalkdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from beanstalkt.tasks import periodic as periodic_module

    monkeypatch.setattr(periodic_module, "LOCK_STALE_SECONDS", 1)
    periodic = Periodic("app.stale", Interval(datetime.timedelta(hours=1)), "tasks.periodic.stale")
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        await client.put(b"lock", priority=0, tube=periodic.lock_tube)  # its owner died
        assert await asyncio.wait_for(ensure_tick(client, periodic, ttr=60), HANG)
        assert await tick_jobs(client, periodic.tube) == 1


class TickLog(Middleware):
    """Records which tick each run was for, and the server of its job."""

    def __init__(self) -> None:
        self.runs: list[tuple[float, str]] = []

    def before_run(self, message: TaskMessage) -> None:
        assert message.job is not None
        self.runs.append((float(message.headers["tick"]), message.job.server or ""))


async def test_three_workers_run_each_tick_exactly_once(beanstalkd: BeanstalkdServer) -> None:
    log = TickLog()
    tasks = Tasks(host=beanstalkd.host, port=beanstalkd.port, middleware=[log])
    ran_at: list[float] = []

    @tasks.periodic(every=datetime.timedelta(seconds=EVERY), name="sweep")
    async def sweep() -> None:
        ran_at.append(time.time())

    workers = [tasks.worker(concurrency=2, grace_period=1) for _ in range(3)]
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        await asyncio.gather(*(worker.start() for worker in workers))  # together
        try:
            tube = tasks.schedules["sweep"].tube
            assert await tick_jobs(client, tube) == 1
            await eventually(lambda: len(log.runs) >= 4, "four ticks", limit=HANG)
        finally:
            await asyncio.gather(*(worker.stop() for worker in workers))
        ticks = [tick for tick, _ in log.runs]
        assert len(ticks) == len(set(ticks)), f"a tick ran twice: {ticks}"
        # In tick order, on the schedule's times. (A tick more than an interval
        # late would skip the missed ones: a loaded machine may show gaps.)
        assert ticks == sorted(ticks)
        assert all(tick % EVERY == 0 for tick in ticks)
        assert all(at >= tick for at, tick in zip(ran_at, ticks, strict=True))  # never early
        # Each run deleted its tick, and the chain goes on: one next tick.
        done = sum(worker.counters()[tube]["done"] for worker in workers)
        assert done == len(ticks)
        assert await tick_jobs(client, tube) == 1


APP = """
import os, pathlib, time
from datetime import timedelta
from beanstalkt.tasks import Middleware, Tasks

LOG = pathlib.Path(os.environ["TICK_LOG"])


class Log(Middleware):
    def before_run(self, message):
        with LOG.open("a") as f:
            f.write(f"start {message.headers['tick']} {os.getpid()}\\n")

    def after_run(self, message, result):
        with LOG.open("a") as f:
            f.write(f"end {message.headers['tick']} {os.getpid()}\\n")


tasks = Tasks(host=os.environ["TICK_HOST"], port=int(os.environ["TICK_PORT"]), middleware=[Log()])


@tasks.periodic(every=timedelta(seconds=EVERY), name="report")
def report() -> None:
    if os.environ.get("TICK_HANG"):
        time.sleep(600)  # killed while here
"""


def start_worker(tmp_path: Path, server: BeanstalkdServer, hang: bool) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(tmp_path), REPOSITORY]),
        TICK_LOG=str(tmp_path / "ticks.log"),
        TICK_HOST=server.host,
        TICK_PORT=str(server.port),
    )
    env.pop("TICK_HANG", None)
    if hang:
        env["TICK_HANG"] = "1"
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "beanstalkt.worker",
            "--tasks",
            "tick_app:tasks",
            "--host",
            server.host,
            "--port",
            str(server.port),
            "--grace-period",
            "1",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def log_lines(tmp_path: Path) -> list[list[str]]:
    path = tmp_path / "ticks.log"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


async def test_a_worker_killed_mid_tick_runs_that_tick_again_and_the_chain_goes_on(
    beanstalkd: BeanstalkdServer, tmp_path: Path
) -> None:
    (tmp_path / "tick_app.py").write_text(APP.replace("EVERY", str(EVERY)))
    doomed = start_worker(tmp_path, beanstalkd, hang=True)
    survivor = None
    try:
        await eventually(lambda: len(log_lines(tmp_path)) == 1, "the first tick started")
        doomed.kill()  # SIGKILL mid-tick: no shutdown code runs
        doomed.wait(HANG)
        (_, killed_tick, killed_pid) = log_lines(tmp_path)[0]
        survivor = start_worker(tmp_path, beanstalkd, hang=False)
        await eventually(
            lambda: sum(line[0] == "end" for line in log_lines(tmp_path)) >= 3,
            "three ticks finished by the survivor",
        )
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(HANG) == 0
        lines = log_lines(tmp_path)
        starts = [float(tick) for kind, tick, _ in lines if kind == "start"]
        ends = [float(tick) for kind, tick, _ in lines if kind == "end"]
        # The killed tick ran again, whole, in the survivor: twice in all.
        assert starts.count(float(killed_tick)) == 2
        assert ends.count(float(killed_tick)) == 1
        assert all(pid != killed_pid for kind, _, pid in lines[1:])
        # Every later tick ran once, in order, on the schedule's times.
        later = [tick for tick in ends if tick != float(killed_tick)]
        assert len(later) == len(set(later)) >= 2
        assert later == sorted(later) and later[0] > float(killed_tick)
        assert all((tick - float(killed_tick)) % EVERY == 0 for tick in later)
        async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
            assert await tick_jobs(client, "tasks.periodic.report") == 1
    finally:
        for process in (doomed, survivor):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(HANG)


async def test_a_schedule_survives_a_binlog_restart_without_doubling(
    beanstalkd_with_binlog: BeanstalkdServer,
) -> None:
    server = beanstalkd_with_binlog
    tasks = Tasks(host=server.host, port=server.port)

    @tasks.periodic(cron="0 3 * * *", name="nightly")  # 03:00 UTC, through cronsim
    async def nightly() -> None: ...

    tube = tasks.schedules["nightly"].tube
    worker = tasks.worker()
    await worker.start()
    try:
        async with beanstalkt.Client(server.host, server.port) as client:
            delayed = await client.peek_delayed(tube=tube)
        server.restart()
        async with beanstalkt.Client(server.host, server.port) as client:
            assert (await client.peek_delayed(tube=tube)).id == delayed.id  # from the binlog
            await eventually(lambda: worker_connected(worker), "the worker back")
            await worker.ensure_ticks()  # what each worker does every minute
            assert await tick_jobs(client, tube) == 1
            stats = await client.stats_job(delayed.id)
            due = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
                seconds=stats["time-left"]
            )
            assert (due.hour, due.minute) in ((3, 0), (2, 59))
    finally:
        await worker.stop()


def worker_connected(worker: beanstalkt.Worker) -> bool:
    return all(server.live for server in worker.servers)


async def test_a_tick_that_is_not_one_is_buried_with_a_record(beanstalkd: BeanstalkdServer) -> None:
    tasks = Tasks(host=beanstalkd.host, port=beanstalkd.port)

    @tasks.periodic(every=datetime.timedelta(hours=1), name="hourly")
    async def hourly() -> None: ...

    tube = tasks.schedules["hourly"].tube
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        bogus = await client.put(b'{"v": 1, "id": "t", "name": "hourly"}', priority=0, tube=tube)
        worker = tasks.worker()
        async with worker:
            await eventually(lambda: worker.counters()[tube]["buried"] == 1, "the burial")
        assert (await client.stats_job(bogus))["state"] == "buried"
        (record,) = await read_failures(client, tube)  # the engine's record
        assert (record["id"], record["error"]) == (bogus, "Bury: not a tick of hourly")
        assert await tick_jobs(client, tube) == 1  # the real tick, put at start


async def test_over_a_pool_a_schedule_lives_on_one_server(servers: list[BeanstalkdServer]) -> None:
    addresses = [f"{server.host}:{server.port}" for server in servers]
    log = TickLog()
    tasks = Tasks(servers=addresses, middleware=[log])

    @tasks.periodic(every=datetime.timedelta(seconds=EVERY), name="pooled.sweep")
    async def sweep() -> None: ...

    tube = tasks.schedules["pooled.sweep"].tube
    home = home_server("pooled.sweep", addresses)
    workers = [tasks.worker(concurrency=2, grace_period=1) for _ in range(2)]
    await asyncio.gather(*(worker.start() for worker in workers))
    try:
        await eventually(lambda: len(log.runs) >= 2, "two ticks")
    finally:
        await asyncio.gather(*(worker.stop() for worker in workers))
    ticks = [tick for tick, _ in log.runs]
    assert len(ticks) == len(set(ticks)) and ticks == sorted(ticks)
    assert {where for _, where in log.runs} == {home}
    for server, address in zip(servers, addresses, strict=True):
        async with beanstalkt.Client(server.host, server.port) as client:
            assert await tick_jobs(client, tube) == (1 if address == home else 0)


async def test_a_tick_lost_with_a_restart_without_binlog_comes_back(
    beanstalkd: BeanstalkdServer,
) -> None:
    tasks = Tasks(host=beanstalkd.host, port=beanstalkd.port)

    @tasks.periodic(every=datetime.timedelta(hours=1), name="hourly.report")
    async def report() -> None: ...

    tube = tasks.schedules["hourly.report"].tube
    workers = [tasks.worker(reseed_interval=0.5) for _ in range(3)]
    await asyncio.gather(*(worker.start() for worker in workers))
    try:
        beanstalkd.restart()  # no binlog: every job is gone, the tick too
        async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
            await eventually(lambda: tick_jobs_equal(client, tube, 1), "the tick put again")
            for _ in range(3):  # the three workers' next checks add nothing
                await asyncio.sleep(0.5)
                assert await tick_jobs(client, tube) == 1
    finally:
        await asyncio.gather(*(worker.stop() for worker in workers))


async def tick_jobs_equal(client: beanstalkt.Client, tube: str, count: int) -> bool:
    return await tick_jobs(client, tube) == count


async def test_a_tick_past_its_time_limit_is_cut_neither_retried_nor_buried(
    beanstalkd: BeanstalkdServer,
) -> None:
    errors: list[BaseException] = []

    class Errors(Middleware):
        def on_run_error(self, message: TaskMessage, error: BaseException) -> None:
            errors.append(error)

    tasks = Tasks(host=beanstalkd.host, port=beanstalkd.port, middleware=[Errors()])

    @tasks.periodic(every=datetime.timedelta(seconds=1), name="stuck", time_limit=0.3)
    async def stuck() -> None:
        await asyncio.sleep(HANG)

    tube = tasks.schedules["stuck"].tube
    worker = tasks.worker(grace_period=1)
    assert worker.policy(tube).time_limit == 0.3  # the task's, enforced by the engine
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        async with worker:
            await eventually(lambda: worker.counters()[tube]["done"] >= 1, "a tick cut and done")
        assert isinstance(errors[0], beanstalkt.worker.TimeLimitExceeded)
        counters = worker.counters()[tube]
        assert (counters["buried"], counters["failed"]) == (0, 0)
        assert await read_failures(client, tube) == []
        assert await tick_jobs(client, tube) == 1  # the chain goes on

"""The taskiq broker: labels onto beanstalkd; taskiq's own `taskiq worker` on a real server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import beanstalkt
from beanstalkt.taskiq import BeanstalkBroker, label_settings
from beanstalkt.testing import BeanstalkdServer

from .test_worker import HANG, REPOSITORY, eventually


def test_labels_map_onto_beanstalkd_settings() -> None:
    assert label_settings({}, "taskiq", 100, 60) == ("taskiq", 100, 0, 60)
    assert label_settings({"priority": 0, "delay": 1.2, "ttr": 5, "tube": "x"}, "t", 9, 9) == (
        "x",
        0,
        2,  # whole seconds, rounded up: never early
        5,
    )
    assert label_settings({"priority": "7"}, "t", 1, 1)[1] == 7  # labels may travel as text
    with pytest.raises(ValueError, match="priority"):
        label_settings({"priority": -1}, "t", 1, 1)
    with pytest.raises(ValueError, match="tube name"):
        label_settings({"tube": "no spaces"}, "t", 1, 1)


async def test_kick_puts_with_the_labels_as_beanstalkd_settings(
    beanstalkd: BeanstalkdServer,
) -> None:
    broker = BeanstalkBroker(host=beanstalkd.host, port=beanstalkd.port)

    @broker.task(priority=3, ttr=30, tube="reports")
    async def report(n: int) -> int:
        return n

    @broker.task
    async def plain() -> None: ...

    await broker.startup()
    try:
        async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
            await report.kiq(1)
            await report.kicker().with_labels(delay=60, priority=0).kiq(2)
            await plain.kiq()
            ready = await client.peek_ready(tube="reports")
            stats = await client.stats_job(ready.id)
            assert (stats["tube"], stats["pri"], stats["ttr"], stats["state"]) == (
                "reports",
                3,
                30,
                "ready",
            )
            delayed = await client.peek_delayed(tube="reports")
            stats = await client.stats_job(delayed.id)
            assert (stats["pri"], stats["delay"], stats["state"]) == (0, 60, "delayed")
            default = await client.stats_job((await client.peek_ready(tube="taskiq")).id)
            assert (default["pri"], default["ttr"]) == (beanstalkt.DEFAULT_PRIORITY, 120)
    finally:
        await broker.shutdown()


async def test_listen_acks_by_delete_and_releases_the_unacknowledged_at_shutdown(
    servers: list[BeanstalkdServer],
) -> None:
    addresses = [f"{server.host}:{server.port}" for server in servers]
    broker = BeanstalkBroker(servers=addresses, reserve_timeout=1)
    clients = [beanstalkt.Client(server.host, server.port) for server in servers]
    for client in clients:
        await client.connect()
    try:
        for index, client in enumerate(clients):  # one job on each server
            await client.put(b"job %d" % index, priority=5, tube="taskiq")
        stream = broker.listen()
        got = [await asyncio.wait_for(stream.__anext__(), HANG) for _ in range(3)]
        assert sorted(message.data for message in got) == [b"job 0", b"job 1", b"job 2"]
        await got[0].ack()  # type: ignore[misc]
        assert broker.held == 2
        await broker.shutdown()
        totals = [await client.stats_tube("taskiq") for client in clients]
        assert sum(stats["current-jobs-ready"] for stats in totals) == 2
        assert sum(stats["current-jobs-reserved"] for stats in totals) == 0
        assert sum(stats["cmd-delete"] for stats in totals) == 1
        released = [await client.peek_ready(tube="taskiq") for client in clients[1:]]
        for client, job in zip(clients[1:], released, strict=True):
            assert (await client.stats_job(job.id))["pri"] == 5  # its own priority kept
    finally:
        for client in clients:
            await client.close()


APP = """
import asyncio, os, pathlib
from beanstalkt.taskiq import BeanstalkBroker

LOG = pathlib.Path(os.environ["TASKIQ_LOG"])
broker = BeanstalkBroker(host=os.environ["TASKIQ_HOST"], port=int(os.environ["TASKIQ_PORT"]))


def note(text):
    with LOG.open("a") as f:
        f.write(text + "\\n")


@broker.task(task_name="work", ttr=2)
async def work(n: int, seconds: float) -> int:
    note(f"start {n}")
    await asyncio.sleep(seconds)
    note(f"end {n}")
    return n
"""


def start_taskiq_worker(tmp_path: Path, server: BeanstalkdServer) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(tmp_path), REPOSITORY]),
        TASKIQ_LOG=str(tmp_path / "taskiq.log"),
        TASKIQ_HOST=server.host,
        TASKIQ_PORT=str(server.port),
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "taskiq",
            "worker",
            "taskiq_app:broker",
            "--workers",
            "1",
            "--max-async-tasks",
            "4",
            "--wait-tasks-timeout",
            "0.5",
            "--no-configure-logging",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def notes(tmp_path: Path) -> list[str]:
    path = tmp_path / "taskiq.log"
    return path.read_text().splitlines() if path.exists() else []


async def test_taskiq_worker_runs_touches_and_leaves_nothing_reserved_on_sigterm(
    beanstalkd: BeanstalkdServer, tmp_path: Path
) -> None:
    (tmp_path / "taskiq_app.py").write_text(APP)
    # The producer's side: the same task name, as a web process would declare it.
    producer = BeanstalkBroker(host=beanstalkd.host, port=beanstalkd.port)

    @producer.task(task_name="work", ttr=2)
    async def work(n: int, seconds: float) -> int:
        raise AssertionError("runs in the worker only")

    await producer.startup()
    worker = start_taskiq_worker(tmp_path, beanstalkd)
    try:
        async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
            # One task outlives its 2 s TTR: the listener's touches keep it reserved.
            await work.kiq(0, 3.5)
            await eventually(lambda: "end 0" in notes(tmp_path), "the long task finished")
            assert notes(tmp_path) == ["start 0", "end 0"]  # run once, not handed out again
            await eventually(
                lambda: tube_empty(client, "taskiq"), "the finished task deleted (acked)"
            )
            # Now tasks in flight at SIGTERM: two running, more waiting.
            for n in range(1, 7):
                await work.kiq(n, 30)
            await eventually(
                lambda: sum(line.startswith("start") for line in notes(tmp_path)) >= 3,
                "tasks running",
            )
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(HANG) == 0
            assert worker.stderr is not None
            assert b"Traceback" not in worker.stderr.read()
            stats = await client.stats_tube("taskiq")
            assert stats["current-jobs-reserved"] == 0
            assert stats["current-jobs-ready"] == 6  # each back for another worker
            assert not any(line.startswith("end") and line != "end 0" for line in notes(tmp_path))
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(HANG)
        await producer.shutdown()


async def tube_empty(client: beanstalkt.Client, tube: str) -> bool:
    stats = await client.stats_tube(tube)
    return stats["current-jobs-ready"] + stats["current-jobs-reserved"] == 0

"""The Worker over several beanstalkd servers (``Worker(servers=[...])``), three real ones.

Every server runs with a binlog, so a killed server brings its jobs back when
restarted. Waits are event-driven or polled with generous bounds (hitting one
is a failure), never timing assertions.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
from collections.abc import Callable
from typing import Any, Optional

import pytest

import beanstalkt
from beanstalkt import Client, Pool, PoolJobRef
from beanstalkt.testing import BeanstalkdServer
from beanstalkt.worker import ReservedJob, Worker, WorkerServer, main

from .test_pool import address_of
from .test_worker import eventually

# Generous bound against hangs; every wait below normally takes well under a second or two.
HANG = 30.0


async def put_on(server: BeanstalkdServer, tube: str, bodies: list[bytes]) -> list[int]:
    async with Client(server.host, server.port) as client:
        await client.use(tube)
        return list(await asyncio.gather(*(client.put(body, ttr=2) for body in bodies)))


async def tube_stats(server: BeanstalkdServer, tube: str) -> dict[str, Any]:
    async with Client(server.host, server.port) as client:
        try:
            return dict(await client.stats_tube(tube))
        except beanstalkt.NotFound:
            return {}


async def jobs_left(server: BeanstalkdServer, tube: str) -> int:
    stats = await tube_stats(server, tube)
    return sum(
        stats.get(f"current-jobs-{state}", 0)
        for state in ("ready", "reserved", "delayed", "buried")
    )


def pooled(servers: list[BeanstalkdServer], handlers: dict[str, Any], **options: Any) -> Worker:
    return Worker(handlers, servers=[address_of(server) for server in servers], **options)


# ----------------------------------------------------------------------
# Configuration.


def test_bad_pooled_configuration_fails_before_connecting() -> None:
    async def handler(job: ReservedJob) -> None:
        return None

    with pytest.raises(TypeError, match="not one string"):
        Worker({"t": handler}, servers="127.0.0.1:11300")
    with pytest.raises(TypeError, match="not both"):
        Worker({"t": handler}, servers=["127.0.0.1:11300"], host="127.0.0.1")
    with pytest.raises(ValueError, match="listed twice"):
        Worker({"t": handler}, servers=["127.0.0.1:11300", "127.0.0.1"])
    with pytest.raises(ValueError, match="at least one server"):
        Worker({"t": handler}, servers=[])
    with pytest.raises(ValueError, match="port"):
        Worker({"t": handler}, servers=["127.0.0.1:0"])
    # Nothing is connected before start(): no server to report yet.
    assert Worker({"t": handler}, host="127.0.0.1").servers == []


# ----------------------------------------------------------------------
# Consuming from every server.


async def test_jobs_on_every_server_are_handled_and_acknowledged_where_reserved(
    servers: list[BeanstalkdServer],
) -> None:
    seen: list[tuple[Optional[str], int, bytes]] = []

    async def handler(job: ReservedJob) -> None:
        seen.append((job.server, job.id, job.body))
        await asyncio.sleep(0.001)

    for server in servers:
        await put_on(server, "all", [f"{address_of(server)} {n}".encode() for n in range(40)])
    worker = pooled(servers, {"all": handler}, concurrency=6)
    async with worker:
        await eventually(lambda: len(seen) >= 120, "120 jobs handled")
        await eventually(lambda: worker.counters()["all"]["done"] == 120, "120 deletes confirmed")
        assert [(each.address, each.live) for each in worker.servers] == [
            (address_of(server), True) for server in servers
        ]
        assert [each.reserved for each in worker.servers] == [40, 40, 40]
    assert len(seen) == 120
    # Each job says where it came from, and it came from there.
    for server_address, _job_id, body in seen:
        assert body.decode().split(" ")[0] == server_address
    assert len({body for _, _, body in seen}) == 120
    counters = worker.counters()["all"]
    assert (counters["done"], counters["lost"], counters["failed"]) == (120, 0, 0)
    for server in servers:
        # Deleted on the server that handed each job out: 40 deletes each, none refused.
        stats = await tube_stats(server, "all")
        assert stats.get("cmd-delete", 0) == 40 or stats == {}
        async with Client(server.host, server.port) as client:
            overall = await client.stats()
            assert overall["cmd-delete"] == 40
            assert overall["total-jobs"] == 40
            assert overall["current-jobs-reserved"] == 0
        assert await jobs_left(server, "all") == 0


async def test_two_empty_servers_and_one_full_drain_the_full_one_with_every_slot(
    servers: list[BeanstalkdServer],
) -> None:
    full, empty = servers[0], servers[1:]
    await put_on(full, "drain", [b"j %d" % n for n in range(600)])
    origins: collections.Counter[Optional[str]] = collections.Counter()
    every_slot_on_full = asyncio.Event()
    worker: Optional[Worker] = None

    async def handler(job: ReservedJob) -> None:
        assert worker is not None
        origins[job.server] += 1
        # The first handlers wait (bounded) until every slot has come over:
        # the backlog outlasts the empty servers' waiting reserves whatever
        # the machine's speed. Should the slots never come, this fails.
        if worker.servers[0].slots == 8:
            every_slot_on_full.set()
        await asyncio.wait_for(every_slot_on_full.wait(), HANG)

    # Slots start spread over the three servers (3 + 3 + 2).
    worker = pooled(servers, {"drain": handler}, concurrency=8)
    async with worker:
        await asyncio.wait_for(every_slot_on_full.wait(), HANG)  # all 8 slots were there
        await eventually(lambda: worker.counters()["drain"]["done"] == 600, "the full one drained")
        reserved = [each.reserved for each in worker.servers]
        # Nothing left anywhere: the idle slots spread out again, one waiting reserve each.
        await eventually(
            lambda: all(each.slots >= 1 for each in worker.servers), "slots spread out again"
        )
    assert worker.counters()["drain"]["failed"] == 0
    assert origins == {address_of(full): 600}
    assert reserved == [600, 0, 0]
    assert await jobs_left(full, "drain") == 0
    for server in empty:
        assert await jobs_left(server, "drain") == 0


async def test_a_server_down_at_start_is_admitted_when_it_comes_up_with_its_binlog(
    servers: list[BeanstalkdServer],
) -> None:
    victim, others = servers[0], servers[1:]
    await put_on(victim, "late", [b"from the binlog %d" % n for n in range(20)])
    victim.kill()
    handled: list[tuple[Optional[str], bytes]] = []

    async def handler(job: ReservedJob) -> None:
        handled.append((job.server, job.body))

    worker = pooled(servers, {"late": handler}, concurrency=4)
    async with worker:
        # start() returns once one server is ready; the other live one follows.
        await eventually(
            lambda: [each.live for each in worker.servers] == [False, True, True],
            "the two live servers ready",
        )
        for server in others:
            await put_on(server, "late", [b"live %d" % n for n in range(30)])
        await eventually(lambda: len(handled) >= 60, "the live servers' jobs handled")
        victim.start()
        await eventually(lambda: len(handled) >= 80, "the restarted server's jobs handled")
        assert worker.servers[0].live
    assert collections.Counter(server for server, _ in handled) == {
        address_of(victim): 20,
        address_of(others[0]): 30,
        address_of(others[1]): 30,
    }
    assert sorted(body for server, body in handled if server == address_of(victim)) == sorted(
        b"from the binlog %d" % n for n in range(20)
    )
    assert worker.counters()["late"]["done"] == 80
    for server in servers:
        assert await jobs_left(server, "late") == 0


async def test_a_killed_server_does_not_stop_the_others_and_its_jobs_come_back(
    servers: list[BeanstalkdServer],
) -> None:
    victim, others = servers[0], servers[1:]
    held = asyncio.Event()
    release_held = asyncio.Event()
    handled: list[tuple[Optional[str], bytes]] = []
    holding = 0

    async def handler(job: ReservedJob) -> None:
        nonlocal holding
        if job.body.startswith(b"hold") and not release_held.is_set():
            holding += 1
            if holding == 3:
                held.set()
            await release_held.wait()
        handled.append((job.server, job.body))

    await put_on(victim, "kill", [b"hold %d" % n for n in range(3)])
    worker = pooled(servers, {"kill": handler}, concurrency=6)
    async with worker:
        await asyncio.wait_for(held.wait(), HANG)  # three jobs reserved on the victim
        victim.kill()
        await eventually(lambda: not worker.servers[0].live, "the victim seen down")
        for server in others:
            await put_on(server, "kill", [b"meanwhile %d" % n for n in range(50)])
        await eventually(lambda: len(handled) >= 100, "the other servers' jobs handled")
        release_held.set()  # the held handlers finish: their acknowledgements cannot be made
        await eventually(lambda: worker.counters()["kill"]["lost"] == 3, "3 reservations lost")
        victim.start()  # from its binlog: the three jobs are ready again
        await eventually(lambda: len(handled) >= 106, "the victim's jobs handled again")
        await eventually(lambda: worker.counters()["kill"]["done"] == 103, "deletes confirmed")
    by_server = collections.Counter(server for server, _ in handled)
    assert by_server == {
        address_of(victim): 6,
        address_of(others[0]): 50,
        address_of(others[1]): 50,
    }
    counters = worker.counters()["kill"]
    assert (counters["done"], counters["lost"]) == (103, 3)
    for server in servers:
        assert await jobs_left(server, "kill") == 0


async def test_stopping_a_pooled_worker_drains_in_flight_handlers_and_loses_nothing(
    servers: list[BeanstalkdServer],
) -> None:
    started = 0
    finished: list[bytes] = []
    all_started = asyncio.Event()

    async def handler(job: ReservedJob) -> None:
        nonlocal started
        started += 1
        if started == 6:
            all_started.set()
        await asyncio.sleep(0.2)
        finished.append(job.body)

    for server in servers:
        await put_on(
            server, "stop", [b"%s %d" % (address_of(server).encode(), n) for n in range(10)]
        )
    worker = pooled(servers, {"stop": handler}, concurrency=6, grace_period=HANG)
    await worker.start()
    await asyncio.wait_for(all_started.wait(), HANG)
    await asyncio.wait_for(worker.stop(), HANG)
    counters = worker.counters()["stop"]
    # Every handler that started finished and was acknowledged; nothing is left reserved.
    assert counters["done"] == len(finished) == started
    assert counters["lost"] == 0 and counters["in_progress"] == 0
    left = 0
    for server in servers:
        stats = await tube_stats(server, "stop")
        assert stats["current-jobs-reserved"] == 0
        left += stats["current-jobs-ready"]
    assert left + len(finished) == 30


async def test_a_job_still_running_at_the_end_of_the_grace_period_goes_back_to_its_server(
    servers: list[BeanstalkdServer],
) -> None:
    async def handler(job: ReservedJob) -> None:
        await asyncio.sleep(HANG)

    await put_on(servers[1], "cancel", [b"x"])
    worker = pooled(servers, {"cancel": handler}, concurrency=3, grace_period=0)
    task = asyncio.ensure_future(worker.run())
    await eventually(lambda: worker.counters()["cancel"]["in_progress"] == 1, "the job running")
    await asyncio.wait_for(worker.stop(), HANG)
    await asyncio.wait_for(task, HANG)
    stats = await tube_stats(servers[1], "cancel")
    assert (stats["current-jobs-reserved"], stats["current-jobs-ready"]) == (0, 1)
    assert worker.counters()["cancel"]["released"] == 1


# ----------------------------------------------------------------------
# Command line, in this process (its handler stops it with SIGTERM).

_CLI_SEEN: list[tuple[Optional[str], bytes]] = []
_CLI_EXPECTED = 0


async def cli_handler(job: ReservedJob) -> None:
    """The handler ``main`` loads: records the job, stops the worker after the last one."""
    _CLI_SEEN.append((job.server, job.body))
    if len(_CLI_SEEN) == _CLI_EXPECTED:
        os.kill(os.getpid(), signal.SIGTERM)


def _run_cli(servers: list[BeanstalkdServer], argv: list[str], per_server: int) -> None:
    global _CLI_EXPECTED
    _CLI_SEEN.clear()
    _CLI_EXPECTED = per_server * len(servers)

    async def fill() -> None:
        for server in servers:
            await put_on(server, "cli", [address_of(server).encode()] * per_server)

    asyncio.run(fill())
    assert main(["tests.test_pool_worker:cli_handler", "--tube", "cli", *argv]) == 0
    assert collections.Counter(server for server, _ in _CLI_SEEN) == {
        address_of(server): per_server for server in servers
    }
    assert all(server == body.decode() for server, body in _CLI_SEEN)


def test_command_line_reserves_from_every_server_given(
    servers: list[BeanstalkdServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BEANSTALKD_SERVERS", raising=False)
    argv = [word for server in servers for word in ("--server", address_of(server))]
    _run_cli(servers, [*argv, "--concurrency", "4"], per_server=5)


def test_command_line_reads_beanstalkd_servers(
    servers: list[BeanstalkdServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BEANSTALKD_SERVERS", ", ".join(address_of(server) for server in servers))
    monkeypatch.setenv("BEANSTALKD_HOST", "192.0.2.1")  # ignored: the list wins
    _run_cli(servers, ["--concurrency", "3"], per_server=4)


def test_command_line_one_server_and_host_port_still_work(
    servers: list[BeanstalkdServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BEANSTALKD_SERVERS", raising=False)
    one = servers[:1]
    _run_cli(one, ["--server", address_of(one[0])], per_server=3)
    monkeypatch.setenv("BEANSTALKD_SERVERS", "127.0.0.1:1,127.0.0.1:2")  # ignored: --host given
    _run_cli(one, ["--host", one[0].host, "--port", str(one[0].port)], per_server=3)


def test_command_line_refuses_bad_server_arguments(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = "tests.test_pool_worker:cli_handler"
    with pytest.raises(SystemExit) as exited:
        main([handler, "--server", "127.0.0.1:11300", "--host", "127.0.0.1"])
    assert exited.value.code == 2
    assert "not both" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([handler, "--server", "127.0.0.1:99999"])
    assert "--server" in capsys.readouterr().err
    monkeypatch.setenv("BEANSTALKD_SERVERS", "a:1,b:x")
    with pytest.raises(SystemExit):
        main([handler])
    assert "BEANSTALKD_SERVERS" in capsys.readouterr().err


# ----------------------------------------------------------------------
# Soak: a pooled producer and two pooled workers while each server in turn
# is killed (SIGKILL) and restarted from its binlog.

SOAK_JOBS = 100_000


@pytest.mark.slow
async def test_soak_100k_jobs_two_pooled_workers_servers_killed_in_turn(
    servers: list[BeanstalkdServer], report: Callable[[str], None]
) -> None:
    addresses = [address_of(server) for server in servers]
    delivered: collections.Counter[bytes] = collections.Counter()

    async def handler(job: ReservedJob) -> None:
        delivered[job.body] += 1

    put_bodies: set[bytes] = set()
    workers = [
        Worker({"soak": handler}, servers=addresses, concurrency=40, reserve_timeout=1)
        for _ in range(2)
    ]
    async with Pool(addresses, use="soak", retry_unknown=True) as pool:

        async def produce() -> None:
            batch = 500
            for start in range(0, SOAK_JOBS, batch):
                bodies = [b"%d" % n for n in range(start, min(SOAK_JOBS, start + batch))]
                for _attempt in range(100):
                    try:
                        results = await asyncio.wait_for(pool.put_many(bodies, ttr=5), HANG)
                    except beanstalkt.NoServerAvailable:
                        await asyncio.sleep(0.1)
                        continue
                    retry = []
                    for body, result in zip(bodies, results, strict=True):
                        if isinstance(result, PoolJobRef):
                            put_bodies.add(body)
                        else:
                            retry.append(body)
                    bodies = retry
                    if not bodies:
                        break
                    await asyncio.sleep(0.1)
                assert not bodies, "puts kept failing"

        async def chaos() -> None:
            for server in servers:
                await asyncio.sleep(1.0)
                server.kill()
                await asyncio.sleep(0.5)
                server.start()

        for worker in workers:
            await worker.start()
        try:
            await asyncio.wait_for(asyncio.gather(produce(), chaos()), 120)

            async def settled() -> bool:
                left = sum([await jobs_left(server, "soak") for server in servers])
                return left == 0 and len(delivered) >= len(put_bodies)

            await eventually(settled, "every job delivered", limit=90)
        finally:
            for worker in workers:
                await asyncio.wait_for(worker.stop(), HANG)
    left_bodies: set[bytes] = set()
    for server in servers:  # whatever is still in a server (nothing, normally)
        async with Client(server.host, server.port) as client:
            await client.watch("soak")
            while True:
                try:
                    job = await client.reserve(timeout=0)
                except beanstalkt.TimedOut:
                    break
                left_bodies.add(job.body)
                await client.delete(job.id)
    duplicates = sum(count - 1 for count in delivered.values())
    lost = put_bodies - set(delivered) - left_bodies
    report(
        f"soak: put {len(put_bodies)}, delivered {len(delivered)}, duplicates {duplicates}, "
        f"left in servers {len(left_bodies)}, lost {len(lost)}; "
        f"per worker and server: {[[tuple(s) for s in w.servers] for w in workers]}"
    )
    assert len(put_bodies) == SOAK_JOBS
    assert not lost
    assert isinstance(workers[0].servers[0], WorkerServer)

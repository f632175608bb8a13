"""The production worker against a real beanstalkd: outcomes, retries, TTR, shutdown, restarts."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Union

import pytest

import beanstalkt
from beanstalkt.testing import BeanstalkdServer
from beanstalkt.worker import (
    Bury,
    Delete,
    Release,
    ReservedJob,
    Worker,
    buried_tubes,
)

# Generous bound against hangs; nothing below should take more than a few seconds.
HANG = 30
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


async def eventually(
    condition: Callable[[], Union[bool, Awaitable[bool]]], what: str, limit: float = HANG
) -> None:
    """Poll ``condition`` (plain or async) until it holds; fail the test after ``limit`` s."""
    deadline = time.monotonic() + limit
    while True:
        outcome = condition()
        if not isinstance(outcome, bool):
            outcome = await outcome
        if outcome:
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def make_worker(server: BeanstalkdServer, handlers: dict[str, Any], **options: Any) -> Worker:
    options.setdefault("reserve_timeout", 1)
    return Worker(handlers, host=server.host, port=server.port, **options)


async def tube_is_empty(client: beanstalkt.Client, tube: str) -> bool:
    try:
        stats = await client.stats_tube(tube)
    except beanstalkt.NotFound:
        return True  # the server drops tubes nobody uses and no job is in
    return all(
        stats[key] == 0
        for key in (
            "current-jobs-ready",
            "current-jobs-reserved",
            "current-jobs-delayed",
            "current-jobs-buried",
        )
    )


# Handlers for the command-line tests (imported by ``python -m beanstalkt.worker``).


async def slow_handler(job: ReservedJob) -> None:
    await asyncio.sleep(120)


async def noop_handler(job: ReservedJob) -> None:
    return None


# ----------------------------------------------------------------------
# Outcomes.


async def test_successful_jobs_are_deleted(beanstalkd: BeanstalkdServer) -> None:
    seen: list[tuple[int, Any, str, int]] = []

    async def handle(job: ReservedJob) -> None:
        seen.append((job.id, job.json(), job.tube, job.attempt))

    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="emails") as client:
        ids = [await client.put_json({"n": n}) for n in range(20)]
        worker = make_worker(beanstalkd, {"emails": handle}, concurrency=4, prefetch_stats=True)
        async with worker:
            await eventually(lambda: worker.counters()["emails"]["done"] == 20, "20 jobs done")
        assert sorted(job_id for job_id, _, _, _ in seen) == ids
        assert sorted(body["n"] for _, body, _, _ in seen) == list(range(20))
        assert {(tube, attempt) for _, _, tube, attempt in seen} == {("emails", 1)}
        assert await tube_is_empty(client, "emails")
        assert (await client.stats_tube("emails"))["cmd-delete"] == 20
    assert worker.counters() == {
        "emails": {
            "done": 20,
            "failed": 0,
            "retried": 0,
            "released": 0,
            "buried": 0,
            "lost": 0,
            "timed_out": 0,
            "in_progress": 0,
        }
    }


async def test_job_whose_body_is_not_text_is_buried_without_running(
    beanstalkd: BeanstalkdServer, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    async def handle(job: ReservedJob) -> None:
        seen.append(job.body)

    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="texts") as client:
        bad_id = await client.put(b"\xff\xfe not utf-8", priority=7)
        await client.put(b"fine")
        with caplog.at_level(logging.ERROR, logger="beanstalkt.worker"):
            worker = make_worker(beanstalkd, {"texts": handle}, encoding="utf-8")
            async with worker:
                await eventually(
                    lambda: (
                        worker.counters()["texts"]["done"] == 1
                        and worker.counters()["texts"]["buried"] == 1
                    ),
                    "one job done, one buried",
                )
        assert seen == ["fine"]
        stats = await client.stats_job(bad_id)
        assert (stats["state"], stats["pri"]) == ("buried", 7)
        assert (await client.peek_buried()).body == b"\xff\xfe not utf-8"
    assert f"job {bad_id} (tube texts) buried without running it" in caplog.text


async def test_plain_function_handlers_run_in_threads(beanstalkd: BeanstalkdServer) -> None:
    threads: list[str] = []

    def handle(job: ReservedJob) -> None:
        threads.append(threading.current_thread().name)

    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="sync") as client:
        for n in range(5):
            await client.put(b"%d" % n)
        async with make_worker(beanstalkd, {"sync": handle}, concurrency=2) as worker:
            await eventually(lambda: worker.counters()["sync"]["done"] == 5, "5 jobs done")
        assert await tube_is_empty(client, "sync")
    assert len(threads) == 5
    assert all(name.startswith("beanstalkt-worker") for name in threads)


async def test_failure_then_success_is_retried_with_backoff(beanstalkd: BeanstalkdServer) -> None:
    attempts: list[int] = []

    async def flaky(job: ReservedJob) -> None:
        await job.load_stats()
        attempts.append(job.attempt)
        if job.attempt == 1:
            raise ConnectionRefusedError("smtp down")

    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="flaky") as client:
        job_id = await client.put(b"mail")
        async with make_worker(beanstalkd, {"flaky": flaky}, backoff_base=1) as worker:
            await eventually(lambda: worker.counters()["flaky"]["retried"] == 1, "a retry")
            stats = await client.stats_job(job_id)
            # A failure is marked with a bury before its release (attempt = 1 + buries).
            assert (stats["state"], stats["delay"], stats["releases"]) == ("delayed", 1, 1)
            assert stats["buries"] == 1
            await eventually(lambda: worker.counters()["flaky"]["done"] == 1, "the job done")
        assert await tube_is_empty(client, "flaky")
    assert attempts == [1, 2]
    counters = worker.counters()["flaky"]
    assert (counters["failed"], counters["retried"], counters["buried"]) == (1, 1, 0)


async def test_always_failing_job_is_buried_after_max_attempts(
    beanstalkd: BeanstalkdServer, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[int] = []

    async def broken(job: ReservedJob) -> None:
        await job.load_stats()
        attempts.append(job.attempt)
        raise ValueError(f"cannot parse {job.body!r}")

    caplog.set_level(logging.WARNING, logger="beanstalkt.worker")
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="reports") as client:
        job_id = await client.put(b"garbage", priority=77)
        observed: set[tuple[str, int]] = set()
        worker = make_worker(
            beanstalkd,
            {"reports": broken},
            max_attempts=3,
            backoff_base=1,
            backoff_factor=2,
            backoff_max=60,
        )
        await worker.start()

        async def buried() -> bool:
            stats = await client.stats_job(job_id)
            observed.add((stats["state"], stats["delay"]))
            return stats["state"] == "buried"

        await eventually(buried, "the job buried")
        await worker.stop()
        stats = await client.stats_job(job_id)
        assert await buried_tubes(client) == {"reports": 1}
        assert await buried_tubes(client, ["reports", "default"]) == {"reports": 1}

    # Backoff: base 1 s after the first failure, times 2 after the second.
    assert {("delayed", 1), ("delayed", 2)} <= observed
    # Two retries, each bury + reserve-job + release; then the final burial.
    assert (stats["releases"], stats["buries"], stats["reserves"]) == (2, 3, 5)
    assert stats["pri"] == 77  # the priority survives releases and the burial
    assert attempts == [1, 2, 3]
    counters = worker.counters()["reports"]
    assert (counters["failed"], counters["retried"], counters["buried"]) == (3, 2, 1)
    assert counters["done"] == 0
    burial = [r for r in caplog.records if "burying" in r.getMessage()]
    assert len(burial) == 1
    assert burial[0].levelno == logging.ERROR
    message = burial[0].getMessage()
    assert f"job {job_id}" in message and "reports" in message
    assert "ValueError" in message and "cannot parse" in message


async def test_backoff_delay_grows_and_is_capped() -> None:
    worker = Worker({"t": noop_handler}, backoff_base=1.5, backoff_factor=3, backoff_max=20)
    assert [worker.backoff_delay(n) for n in range(1, 6)] == [2, 5, 14, 20, 20]
    assert Worker({"t": noop_handler}).backoff_delay(10_000) == 3600


async def test_handler_can_release_bury_or_delete_explicitly(beanstalkd: BeanstalkdServer) -> None:
    async def decide(job: ReservedJob) -> Any:
        what = job.body
        if what == b"release":
            await job.load_stats()
            if job.attempt == 1:
                raise Release(delay=60, priority=5)
            return None
        if what == b"bury":
            raise Bury("needs a human", priority=9)
        if what == b"delete":
            raise Delete("obsolete")
        return Bury("returned, not raised")

    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="choose") as client:
        ids = {name: await client.put(name.encode()) for name in ("release", "bury", "delete")}
        ids["returned"] = await client.put(b"returned")
        async with make_worker(beanstalkd, {"choose": decide}, concurrency=4) as worker:
            await eventually(
                lambda: sum(worker.counters()["choose"].values()) == 4, "four outcomes"
            )
        released = await client.stats_job(ids["release"])
        assert (released["state"], released["delay"], released["pri"]) == ("delayed", 60, 5)
        assert released["releases"] == 1
        buried = await client.stats_job(ids["bury"])
        assert (buried["state"], buried["pri"]) == ("buried", 9)
        assert (await client.stats_job(ids["returned"]))["state"] == "buried"
        with pytest.raises(beanstalkt.NotFound):
            await client.stats_job(ids["delete"])
    counters = worker.counters()["choose"]
    assert (counters["released"], counters["buried"], counters["done"]) == (1, 2, 1)
    assert counters["failed"] == 0  # asking for an outcome is not a failure


# ----------------------------------------------------------------------
# TTR.


@pytest.mark.parametrize("ttr", [1, 2])
async def test_long_job_is_touched_and_not_run_twice(
    beanstalkd: BeanstalkdServer, ttr: int
) -> None:
    runs: list[int] = []
    seen_by_handler: list[beanstalkt.StatsJob] = []
    ttr_seen: list[int] = []

    async def long_job(job: ReservedJob) -> None:
        runs.append(job.id)
        assert not job.stats_loaded  # nothing read from the server for a job just started
        await asyncio.sleep(ttr * 1.75)
        # The worker read the stats itself, to learn the TTR of a job running this long.
        ttr_seen.append(job.ttr)
        async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as observer:
            seen_by_handler.append(await observer.stats_job(job.id))

    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="long") as client:
        job_id = await client.put(b"render", ttr=ttr)
        # Two slots: a second one would get the job if its TTR ran out.
        async with make_worker(beanstalkd, {"long": long_job}, concurrency=2) as worker:
            await eventually(lambda: worker.counters()["long"]["done"] == 1, "the job done")
        assert (await client.stats_tube("long"))["cmd-delete"] == 1
    assert runs == [job_id]
    assert ttr_seen == [ttr]
    (stats,) = seen_by_handler
    assert (stats["state"], stats["timeouts"], stats["reserves"]) == ("reserved", 0, 1)


async def test_deadline_soon_on_reserve_does_not_stop_the_worker(
    beanstalkd: BeanstalkdServer,
) -> None:
    # A client handed over while it holds a reservation: the slot's reserves
    # get DEADLINE_SOON until the server takes that job back, then work on.
    held = beanstalkt.Client(beanstalkd.host, beanstalkd.port, watch="soon", use="soon")
    await held.connect()
    held_id = await held.put(b"held", ttr=2)
    assert (await held.reserve(timeout=0)).id == held_id
    with pytest.raises(beanstalkt.DeadlineSoon):
        await held.reserve(timeout=2)
    factory_calls = [held]
    handled: list[int] = []

    async def handle(job: ReservedJob) -> None:
        handled.append(job.id)

    worker = Worker({"soon": handle}, client_factory=factory_calls.pop, reserve_timeout=1)
    async with worker:
        await eventually(lambda: handled == [held_id], "the held job handled")
        await eventually(lambda: worker.counters()["soon"]["done"] == 1, "the job deleted")
        other_id = await held.put(b"next")
        await eventually(lambda: handled == [held_id, other_id], "a later job handled")
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        assert await tube_is_empty(client, "soon")


# ----------------------------------------------------------------------
# Concurrency and tubes.


async def test_three_tubes_three_handlers_concurrency_eight(beanstalkd: BeanstalkdServer) -> None:
    gate = asyncio.Event()
    handled: dict[str, list[bytes]] = {"emails": [], "images": [], "reports": []}

    def handler_for(tube: str) -> Callable[[ReservedJob], Awaitable[None]]:
        async def handle(job: ReservedJob) -> None:
            assert job.tube == tube
            await gate.wait()
            handled[tube].append(bytes(job.body))

        return handle

    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        for tube in handled:
            await client.use(tube)
            await asyncio.gather(*[client.put(f"{tube}-{n}".encode()) for n in range(50)])
        await client.use("default")
        await client.put(b"not watched")
        worker = make_worker(beanstalkd, {t: handler_for(t) for t in handled}, concurrency=8)
        async with worker:

            def in_progress() -> int:
                return sum(c["in_progress"] for c in worker.counters().values())

            await eventually(lambda: in_progress() == 8, "eight jobs running")
            # A full worker holds exactly the jobs it runs, not more.
            stats = await client.stats()
            assert stats["current-jobs-reserved"] == 8
            assert stats["current-jobs-ready"] == 151 - 8
            gate.set()
            await eventually(
                lambda: sum(c["done"] for c in worker.counters().values()) == 150, "all done"
            )
            assert in_progress() == 0
        for tube, bodies in handled.items():
            assert sorted(bodies) == sorted(f"{tube}-{n}".encode() for n in range(50))
            assert await tube_is_empty(client, tube)
        assert (await client.stats_tube("default"))["current-jobs-ready"] == 1


# ----------------------------------------------------------------------
# Shutdown.


async def test_stop_lets_running_jobs_finish_within_the_grace_period(
    beanstalkd: BeanstalkdServer,
) -> None:
    started = asyncio.Event()
    finished: list[int] = []

    async def slowish(job: ReservedJob) -> None:
        started.set()
        await asyncio.sleep(1)
        finished.append(job.id)

    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="grace") as client:
        ids = [await client.put(b"x") for _ in range(3)]
        worker = make_worker(beanstalkd, {"grace": slowish}, concurrency=3, grace_period=20)
        await worker.start()
        await eventually(lambda: worker.counters()["grace"]["in_progress"] == 3, "3 running")
        more = await client.put(b"put after the stop began")
        await asyncio.wait_for(worker.stop(), HANG)
        assert sorted(finished) == ids
        assert worker.counters()["grace"]["done"] == 3
        stats = await client.stats_job(more)
        assert (stats["state"], stats["reserves"]) == ("ready", 0)  # never taken
        assert (await client.stats())["current-jobs-reserved"] == 0


@pytest.mark.parametrize("kind", ["async", "thread"])
async def test_stop_releases_jobs_unfinished_after_the_grace_period(
    beanstalkd: BeanstalkdServer, kind: str
) -> None:
    cancelled: list[int] = []
    unblock = threading.Event()

    async def stuck_coroutine(job: ReservedJob) -> None:
        try:
            await asyncio.sleep(120)
        except asyncio.CancelledError:
            cancelled.append(job.id)
            raise

    def stuck_function(job: ReservedJob) -> None:
        unblock.wait(HANG)

    handler = stuck_coroutine if kind == "async" else stuck_function
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="stuck") as client:
        ids = [await client.put(b"x", priority=100 + n) for n in range(2)]
        worker = make_worker(beanstalkd, {"stuck": handler}, concurrency=2, grace_period=0.5)
        await worker.start()
        await eventually(lambda: worker.counters()["stuck"]["in_progress"] == 2, "2 running")
        await asyncio.wait_for(worker.stop(), HANG)
        unblock.set()
        for n, job_id in enumerate(ids):
            stats = await client.stats_job(job_id)
            # Back to ready at once, with its priority, for another worker.
            assert (stats["state"], stats["delay"], stats["pri"]) == ("ready", 0, 100 + n)
            assert stats["releases"] == 1
        counters = worker.counters()["stuck"]
        assert (counters["released"], counters["done"], counters["failed"]) == (2, 0, 0)
        assert counters["in_progress"] == 0
    if kind == "async":
        assert sorted(cancelled) == ids


@pytest.mark.parametrize("per_connection, waiting", [(1, 4), (2, 2), (8, 1)])
async def test_stop_is_not_delayed_by_a_pending_reserve(
    beanstalkd: BeanstalkdServer, per_connection: int, waiting: int
) -> None:
    # A reserve that would wait two minutes: stop() must cut it short.
    worker = make_worker(
        beanstalkd,
        {"idle": noop_handler},
        concurrency=4,
        reserve_timeout=120,
        slots_per_connection=per_connection,
    )
    await worker.start()
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        # One reserve waits on each idle connection (the other slots wait for it).
        await eventually(
            lambda: _waiting(client, "idle", waiting), "reserves waiting on the server"
        )
        await asyncio.wait_for(worker.stop(), HANG)

        async def only_this_client_left() -> bool:
            stats = await client.stats()
            return (stats["current-waiting"], stats["current-connections"]) == (0, 1)

        await eventually(only_this_client_left, "the worker's connections closed")
        # Nothing is reserved by a closed worker afterwards.
        job_id = await client.put(b"after the stop")
        assert (await client.stats_job(job_id))["state"] == "ready"


async def _waiting(client: beanstalkt.Client, tube: str, count: int) -> bool:
    return (await client.stats_tube(tube))["current-waiting"] == count


async def test_stop_from_a_signal(beanstalkd: BeanstalkdServer) -> None:
    worker = make_worker(beanstalkd, {"signals": noop_handler})
    await worker.start()
    worker.install_signal_handlers([signal.SIGUSR1])
    os.kill(os.getpid(), signal.SIGUSR1)
    await asyncio.wait_for(worker.run(), HANG)
    assert worker.stopping


# ----------------------------------------------------------------------
# Restarts.


async def test_worker_survives_a_server_restart(
    beanstalkd_with_binlog: BeanstalkdServer,
) -> None:
    server = beanstalkd_with_binlog
    runs: Counter[bytes] = Counter()

    async def handle(job: ReservedJob) -> None:
        await asyncio.sleep(0.2)
        runs[bytes(job.body)] += 1

    client = beanstalkt.Client(server.host, server.port, use="restart", reconnect_interval=0.2)
    await client.connect()
    bodies = [b"%d" % n for n in range(100)]
    await asyncio.gather(*[client.put(body) for body in bodies])
    worker = Worker(
        {"restart": handle},
        client_factory=lambda: beanstalkt.Client(server.host, server.port, reconnect_interval=0.2),
        concurrency=4,
    )
    async with worker:
        counters = worker.counters
        await eventually(
            lambda: (
                counters()["restart"]["done"] >= 10 and counters()["restart"]["in_progress"] == 4
            ),
            "work under way",
        )
        server.restart()
        await eventually(lambda: set(runs) == set(bodies), "every job handled")
        await eventually(lambda: tube_is_empty(client, "restart"), "the tube empty")
        # And it keeps working on new jobs.
        late = await client.put(b"late")
        await eventually(lambda: runs[b"late"] == 1, "a job put after the restart")
        assert (await client.stats_tube("restart"))["cmd-delete"] >= 1
        with pytest.raises(beanstalkt.NotFound):
            await client.stats_job(late)
    await client.close()
    final = worker.counters()["restart"]
    print(f"\nrestart: {final}, {sum(runs.values()) - len(runs)} jobs run twice")
    # The jobs running when the server died were lost, not counted done...
    assert final["lost"] >= 1
    # ...and ran again. (A delete the server executed just before dying counts
    # as lost too: its reply never came.)
    assert final["done"] <= len(bodies) + 1 <= final["done"] + final["lost"]
    assert final["failed"] == final["buried"] == final["in_progress"] == 0


# ----------------------------------------------------------------------
# The command line.


def _start_cli(server: BeanstalkdServer, *arguments: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "beanstalkt.worker", "--port", str(server.port), *arguments],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


async def test_sigterm_to_a_command_line_worker_leaves_nothing_reserved(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        await client.use("sig")
        slow_ids = [await client.put(b"slow") for _ in range(3)]
        await client.use("quick")
        await asyncio.gather(*[client.put(b"quick") for _ in range(10)])
        process = _start_cli(
            beanstalkd,
            "tests.test_worker:slow_handler",
            "--tube",
            "sig",
            "--tube",
            "quick=tests.test_worker:noop_handler",
            "--concurrency",
            "4",
            "--grace-period",
            "1",
        )
        try:

            async def settled() -> bool:
                sig = await client.stats_tube("sig")
                quick = await client.stats_tube("quick")
                return sig["current-jobs-reserved"] == 3 and quick["cmd-delete"] == 10

            await eventually(settled, "3 slow jobs running and 10 quick ones done")
            process.send_signal(signal.SIGTERM)
            output, _ = await asyncio.get_running_loop().run_in_executor(
                None, lambda: process.communicate(timeout=HANG)
            )
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        log = output.decode()
        assert process.returncode == 0, log
        assert "SIGTERM: stopping" in log
        assert "releasing 3 unfinished job(s)" in log
        stats = await client.stats()
        assert stats["current-jobs-reserved"] == 0
        for job_id in slow_ids:
            job = await client.stats_job(job_id)
            assert (job["state"], job["releases"]) == ("ready", 1)
        assert await tube_is_empty(client, "quick")


def test_command_line_rejects_a_bad_handler_spec() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "beanstalkt.worker", "no_colon_here"],
        cwd=REPOSITORY,
        capture_output=True,
        timeout=HANG,
    )
    assert result.returncode != 0
    assert b"module:function" in result.stderr


# ----------------------------------------------------------------------
# Observability.


async def test_counters_are_logged_at_intervals(
    beanstalkd: BeanstalkdServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="beanstalkt.worker")
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="logged") as client:
        await client.put(b"x")
        async with make_worker(beanstalkd, {"logged": noop_handler}, stats_interval=0.1):

            def logged() -> bool:
                return any("logged: done=1" in r.getMessage() for r in caplog.records)

            await eventually(logged, "a counters line")


async def test_buried_tubes_reports_only_tubes_with_buried_jobs(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, watch="smoke") as client:
        assert await buried_tubes(client) == {}
        await client.use("smoke")
        for _ in range(2):
            await client.put(b"x")
            await client.bury((await client.reserve(timeout=0)).id)
        await client.use("clean")
        await client.put(b"fine")
        assert await buried_tubes(client) == {"smoke": 2}
        assert await buried_tubes(client, ["clean", "no-such-tube"]) == {}


def test_worker_refuses_bad_configuration() -> None:
    with pytest.raises(ValueError):
        Worker({})
    with pytest.raises(ValueError):
        Worker({"bad name!": noop_handler})
    with pytest.raises(TypeError):
        Worker({"t": "not callable"})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        Worker({"t": noop_handler}, concurrency=0)
    with pytest.raises(ValueError):
        Worker({"t": noop_handler}, touch_fraction=1.5)
    with pytest.raises(ValueError):
        Release(delay=-1)


# ----------------------------------------------------------------------
# Soak.

SOAK_JOBS = 50_000
SOAK_WORKERS = 4


@pytest.mark.slow
async def test_soak_50k_jobs_through_four_workers(beanstalkd: BeanstalkdServer) -> None:
    handled: Counter[int] = Counter()

    async def handle(job: ReservedJob) -> None:
        handled[int(job.body)] += 1

    workers = [
        make_worker(beanstalkd, {"soak": handle}, concurrency=16) for _ in range(SOAK_WORKERS)
    ]
    started = time.monotonic()
    for worker in workers:
        await worker.start()
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="soak") as producer:
        batch = 2_000
        for first in range(0, SOAK_JOBS, batch):
            await asyncio.gather(
                *[producer.put(b"%d" % seq) for seq in range(first, first + batch)]
            )
        put_done = time.monotonic()
        await eventually(lambda: len(handled) == SOAK_JOBS, "every job handled", limit=120)
        await eventually(lambda: tube_is_empty(producer, "soak"), "the tube empty")
        elapsed = time.monotonic() - started
        for worker in workers:
            await worker.stop()
        deleted = (await producer.stats_tube("soak"))["cmd-delete"]
    per_worker = [w.counters()["soak"]["done"] for w in workers]
    duplicates = sum(handled.values()) - len(handled)
    print(
        f"\nworker soak: {SOAK_JOBS} jobs put in {put_done - started:.1f}s, "
        f"{len(handled)} handled ({duplicates} twice), {deleted} deleted, "
        f"per worker {per_worker}, {elapsed:.1f}s ({SOAK_JOBS / elapsed:.0f} jobs/s)"
    )
    assert set(handled) == set(range(SOAK_JOBS))
    assert sum(per_worker) == deleted == SOAK_JOBS
    assert all(done > 0 for done in per_worker)
    for worker in workers:
        counters = worker.counters()["soak"]
        assert counters["lost"] == counters["failed"] == counters["in_progress"] == 0


def test_handler_actions_live_in_the_worker_module_only() -> None:
    # Beside beanstalkt.Buried (the server's reply), a top-level Bury would be misread.
    import beanstalkt.worker

    for name in ("Release", "Bury", "Delete", "JobAction"):
        assert not hasattr(beanstalkt, name)
        assert name not in beanstalkt.__all__
        assert issubclass(getattr(beanstalkt.worker, name), beanstalkt.worker.JobAction)
    assert beanstalkt.WorkerServer is beanstalkt.worker.WorkerServer

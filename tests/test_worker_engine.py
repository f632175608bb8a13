"""The worker engine: its pure decisions (no event loop), time limits, failure records,
per-tube policies, burst mode, /healthz and --processes, against real beanstalkd servers."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple, Optional

import pytest

import beanstalkt
from beanstalkt.testing import BeanstalkdServer
from beanstalkt.worker import (
    Bury,
    ReservedJob,
    TimeLimitExceeded,
    TubePolicy,
    Worker,
    build_parser,
    scheduling,
)
from beanstalkt.worker.failures import (
    CREATED_TOLERANCE,
    MAX_TRACEBACK,
    matches,
    read_failures,
    record_body,
    record_tube,
)
from beanstalkt.worker.policy import POLICY_FIELDS, resolve
from beanstalkt.worker.supervisor import child_command, restart_delay

from .cli_runner import cli, environment
from .test_worker import eventually, make_worker, tube_is_empty

# ----------------------------------------------------------------------
# Pure decisions: values in, values out, no event loop.


class _Site(NamedTuple):
    has_work: bool = False
    slots: int = 0
    looked_at: float = -math.inf
    live: bool = True


def test_next_site_stays_with_one_server_and_moves_off_a_dead_connection() -> None:
    assert scheduling.next_site([_Site(slots=4)], 0, True, True, 100.0, 1.0) is None
    # Its connection down, one server: another connection of the same server.
    assert scheduling.next_site([_Site(slots=4)], 0, False, False, 100.0, 1.0) == (0, False)
    # Every server down: nowhere to go.
    assert scheduling.next_site([_Site(live=False)], 0, False, False, 100.0, 1.0) is None
    # Down: to a live server with work first, then the one with fewest slots.
    sites = [_Site(slots=3, live=False), _Site(slots=1), _Site(slots=5, has_work=True)]
    assert scheduling.next_site(sites, 0, False, False, 100.0, 1.0) == (2, False)
    sites = [_Site(slots=3, live=False), _Site(slots=4), _Site(slots=2)]
    assert scheduling.next_site(sites, 0, False, False, 100.0, 1.0) == (2, False)


def test_next_site_follows_work_spreads_idle_slots_and_visits_forgotten_servers() -> None:
    now = 100.0
    seen = now - 0.5
    # Empty here, a backlog there: go there (the one with fewer slots).
    sites = [
        _Site(slots=2, looked_at=seen),
        _Site(slots=5, has_work=True),
        _Site(slots=1, has_work=True),
    ]
    assert scheduling.next_site(sites, 0, True, True, now, 1.0) == (2, False)
    # Empty everywhere: spread out, only when two or more slots fewer.
    sites = [_Site(slots=4, looked_at=seen), _Site(slots=2, looked_at=seen)]
    assert scheduling.next_site(sites, 0, True, True, now, 1.0) == (1, False)
    sites = [_Site(slots=3, looked_at=seen), _Site(slots=2, looked_at=seen)]
    assert scheduling.next_site(sites, 0, True, True, now, 1.0) is None
    # A dead server is never a target.
    sites = [_Site(slots=4, looked_at=seen), _Site(slots=0, has_work=True, live=False)]
    assert scheduling.next_site(sites, 0, True, True, now, 1.0) is None
    # Busy here: stay, unless a server had no slot and no look for a reserve timeout.
    sites = [_Site(slots=4, looked_at=seen), _Site(slots=0, looked_at=now - 0.2)]
    assert scheduling.next_site(sites, 0, True, False, now, 1.0) is None
    sites = [_Site(slots=4, looked_at=seen), _Site(slots=0, looked_at=now - 5)]
    assert scheduling.next_site(sites, 0, True, False, now, 1.0) == (1, True)


def test_backoff_jitter_and_retry_decisions() -> None:
    assert [scheduling.backoff_delay(n, 1.5, 3, 20) for n in range(1, 6)] == [2, 5, 14, 20, 20]
    assert scheduling.backoff_delay(10_000, 1, 2, 3600) == 3600
    assert scheduling.backoff_delay(3, 0, 2, 3600) == 0  # base 0: at once
    # Jitter only shortens, in whole seconds, never below (1 - jitter) of the delay.
    assert scheduling.jittered(100, 0.25, 0.0) == 100
    assert scheduling.jittered(100, 0.25, 0.999) == 76
    assert {scheduling.jittered(100, 0.25, n / 100) for n in range(100)} == set(range(76, 101))
    assert scheduling.jittered(100, 0.0, 0.9) == 100
    assert scheduling.jittered(1, 0.25, 0.9) == 1  # short delays round back to themselves
    assert scheduling.jittered(0, 0.5, 0.9) == 0
    assert scheduling.after_failure(1, 3) == "retry"
    assert scheduling.after_failure(3, 3) == "bury"
    assert scheduling.after_failure(4, 3) == "bury"  # kicked after its last attempt
    assert scheduling.overdue(10.0, 1.0, 11.0) and not scheduling.overdue(10.0, 1.0, 10.9)
    assert not scheduling.overdue(0.0, None, 1e9)
    assert scheduling.placement(5, 2, 2) == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 0)]
    assert scheduling.lanes_needed(10, 8) == 2


def test_policies_resolve_over_the_workers_defaults_from_one_table() -> None:
    async def handle(job: ReservedJob) -> None:
        return None

    defaults = {field.name: field.default for field in POLICY_FIELDS}
    own = resolve(TubePolicy(handle, max_attempts=9, time_limit=math.inf, concurrency=2), defaults)
    assert (own.max_attempts, own.time_limit, own.concurrency) == (9, None, 2)
    assert own.backoff_base == defaults["backoff_base"]
    shared = resolve(handle, defaults)
    assert shared.time_limit == defaults["time_limit"] and shared.concurrency is None
    with pytest.raises(ValueError, match="jitter"):
        resolve(TubePolicy(handle, backoff_jitter=2), defaults)
    with pytest.raises(ValueError, match="time_limit"):
        Worker({"t": handle}, time_limit=0)
    with pytest.raises(ValueError, match="concurrency"):
        TubePolicy(handle, concurrency=0)
    # The command line's -h comes from the same table: every default written once.
    text = build_parser().format_help()
    for field in POLICY_FIELDS:
        assert "--" + field.name.replace("_", "-") in text
        assert f"(default: {field.default:g}" in " ".join(text.split())
    worker = Worker({"t": handle, "u": TubePolicy(handle, backoff_base=7)})
    assert worker.backoff_delay(1) == 1 and worker.backoff_delay(1, "u") == 7


def test_failure_records_are_bounded_and_know_their_job() -> None:
    error = "ValueError: " + "x" * 5000
    body = record_body(7, "emails", 30, error, 3, "frame\n" * 2000, now=1_000_000.0)
    record = json.loads(body)
    assert len(body) < 8192
    assert record["error"].startswith("ValueError: x") and len(record["error"]) == 1000
    assert len(record["traceback"]) == MAX_TRACEBACK
    assert (record["id"], record["attempts"], record["created"]) == (7, 3, 1_000_000.0 - 30)
    assert record["failed_at"] == "1970-01-12T13:46:40Z"
    assert record["worker"]["pid"] == os.getpid()
    same = {"tube": "emails", "age": 60}
    assert matches(record, same, now=1_000_030.0)
    # Another tube, or a job of the same id created at another time, is not it.
    assert not matches(record, {**same, "tube": "other"}, now=1_000_030.0)
    assert not matches(record, same, now=1_000_030.0 + CREATED_TOLERANCE + 1)
    assert record_tube("emails") == "emails.failures"
    assert record_tube("x" * 195) is None  # the record tube's name would be too long


def test_supervisor_pure_parts() -> None:
    assert [restart_delay(n) for n in (1, 2, 3, 6, 20)] == [1, 2, 4, 30, 30]
    assert child_command(["m:f", "--processes", "3", "--burst", "--processes=2"])[-2:] == [
        "m:f",
        "--burst",
    ]


# ----------------------------------------------------------------------
# Time limits.


async def test_async_handler_past_its_time_limit_is_retried_then_buried_and_work_goes_on(
    beanstalkd: BeanstalkdServer,
) -> None:
    ran: list[bytes] = []

    async def handle(job: ReservedJob) -> None:
        ran.append(bytes(job.body))
        if job.body == b"hang":
            await asyncio.Event().wait()  # never returns

    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="limits") as client:
        hung = await client.put(b"hang")
        worker = make_worker(
            beanstalkd, {"limits": handle}, time_limit=1, max_attempts=2, backoff_base=0
        )
        async with worker:
            await eventually(
                lambda: worker.counters()["limits"]["buried"] == 1, "the hung job buried", 60
            )
            after = await client.put(b"after")
            await eventually(lambda: worker.counters()["limits"]["done"] == 1, "the next job done")
        stats = await client.stats_job(hung)
        assert stats["state"] == "buried" and stats["buries"] == 2
        assert await tube_is_empty(client, "limits") is False  # the buried one stays
        with pytest.raises(beanstalkt.NotFound):
            await client.stats_job(after)
        (record,) = await read_failures(client, "limits")
    counters = worker.counters()["limits"]
    assert (counters["timed_out"], counters["failed"], counters["retried"]) == (2, 2, 1)
    assert ran == [b"hang", b"hang", b"after"]
    assert record["id"] == hung and record["attempts"] == 2
    assert record["error"].startswith("TimeLimitExceeded: ")
    assert TimeLimitExceeded.__name__ in record["traceback"]


async def test_thread_handler_past_its_time_limit_is_abandoned_and_the_next_jobs_run(
    beanstalkd: BeanstalkdServer,
) -> None:
    release = threading.Event()
    ran: list[bytes] = []

    def handle(job: ReservedJob) -> None:
        ran.append(bytes(job.body))
        if job.body == b"hang":
            release.wait(120)  # a thread nobody can stop

    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="threads") as client:
        hung = await client.put(b"hang")
        # One slot, one thread: an abandoned thread must not starve the next jobs.
        worker = make_worker(
            beanstalkd, {"threads": handle}, time_limit=1, max_attempts=2, backoff_base=0
        )
        try:
            async with worker:
                await eventually(
                    lambda: worker.counters()["threads"]["buried"] == 1, "the job buried", 60
                )
                for n in range(3):
                    await client.put(b"next %d" % n)
                await eventually(
                    lambda: worker.counters()["threads"]["done"] == 3, "the next jobs done"
                )
        finally:
            release.set()
        assert (await client.stats_job(hung))["state"] == "buried"
    assert worker._threads_abandoned == 2
    counters = worker.counters()["threads"]
    assert (counters["timed_out"], counters["buried"]) == (2, 1)
    assert ran[:2] == [b"hang", b"hang"] and sorted(ran[2:]) == [b"next 0", b"next 1", b"next 2"]


# ----------------------------------------------------------------------
# Failure records.


async def _fail_once_buried(server: BeanstalkdServer, tube: str, body: bytes) -> int:
    async def broken(job: ReservedJob) -> None:
        raise ValueError(f"cannot parse {bytes(job.body)!r}")

    async with beanstalkt.Client(server.host, server.port, use=tube) as client:
        job_id = await client.put(body)
        async with make_worker(server, {tube: broken}, max_attempts=1) as worker:
            await eventually(lambda: worker.counters()[tube]["buried"] == 1, "the job buried")
            await eventually(lambda: _has_record(client, tube), "its failure record written")
    return job_id


async def _has_record(client: beanstalkt.Client, tube: str) -> bool:
    try:
        stats = await client.stats_tube(tube + ".failures")
    except beanstalkt.NotFound:
        return False
    return bool(stats["current-jobs-ready"])


async def test_failure_record_survives_restarts_follows_a_kick_and_goes_with_its_job(
    beanstalkd_with_binlog: BeanstalkdServer,
) -> None:
    server = beanstalkd_with_binlog
    job_id = await _fail_once_buried(server, "reports", b"garbage")
    client = beanstalkt.Client(server.host, server.port)
    await client.connect()
    (record,) = await read_failures(client, "reports")
    assert (record["id"], record["state"], record["attempts"]) == (job_id, "buried", 1)
    assert record["error"] == "ValueError: cannot parse b'garbage'"
    assert "Traceback (most recent call last)" in record["traceback"]
    assert record["worker"]["pid"] == os.getpid()
    # A worker on the tube never reserves the record.
    async with make_worker(server, {"reports": _never}) as worker:
        await asyncio.sleep(0.3)
    assert worker.counters()["reports"]["done"] == 0
    # A server restart with its binlog: the job and its record both come back.
    await client.close()
    server.restart()
    client = beanstalkt.Client(server.host, server.port)
    await client.connect()
    (again,) = await read_failures(client, "reports")
    assert again == record
    # A kick: the record follows the job (listed with its new state).
    await client.kick_job(job_id)
    (kicked,) = await read_failures(client, "reports")
    assert (kicked["id"], kicked["state"]) == (job_id, "ready")
    # The job deleted: its record goes (swept by the next reader).
    await client.delete(job_id)
    assert await read_failures(client, "reports") == []
    assert await _record_count(client, "reports") == 0
    await client.close()


async def _never(job: ReservedJob) -> None:
    raise AssertionError("no job should run")


async def test_failures_command_prints_retries_and_purges(beanstalkd: BeanstalkdServer) -> None:
    first = await _fail_once_buried(beanstalkd, "mail", b"one")
    second = await _fail_once_buried(beanstalkd, "mail", b"two")
    shown = await asyncio.to_thread(cli, beanstalkd, "mail", module="beanstalkt.cli.failures")
    assert shown.returncode == 0, shown.stderr
    listed = json.loads(shown.stdout)
    assert [entry["id"] for entry in listed] == [first, second]
    assert listed[0]["error"] == "ValueError: cannot parse b'one'"
    assert {"attempts", "failed_at", "server", "traceback", "worker"} <= set(listed[0])
    # The same through `beanstalkt failures`.
    assert (
        json.loads((await asyncio.to_thread(cli, beanstalkd, "failures", "mail")).stdout) == listed
    )
    retried = await asyncio.to_thread(
        cli, beanstalkd, "mail", "--retry", module="beanstalkt.cli.failures"
    )
    assert retried.returncode == 0
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        assert (await client.stats_job(first))["state"] == "ready"
        assert (
            json.loads(
                (
                    await asyncio.to_thread(
                        cli, beanstalkd, "mail", module="beanstalkt.cli.failures"
                    )
                ).stdout
            )
            == []
        )
        again = json.loads(
            (
                await asyncio.to_thread(
                    cli, beanstalkd, "mail", "--all", module="beanstalkt.cli.failures"
                )
            ).stdout
        )
        assert [entry["state"] for entry in again] == ["ready", "ready"]
        # Bury them again by hand, then purge: jobs and records gone.
        for job_id in (first, second):
            await client.watch("mail")
            job = await client.reserve_job(job_id)
            await client.bury(job)
        purged = await asyncio.to_thread(
            cli, beanstalkd, "mail", "--purge", module="beanstalkt.cli.failures"
        )
        assert purged.returncode == 0
        for job_id in (first, second):
            with pytest.raises(beanstalkt.NotFound):
                await client.stats_job(job_id)
        assert await _record_count(client, "mail") == 0
    bad = await asyncio.to_thread(cli, beanstalkd, "-bad", module="beanstalkt.cli.failures")
    assert bad.returncode == 2


async def test_bury_action_and_bad_job_burials_are_recorded_and_counted_in_metrics(
    beanstalkd: BeanstalkdServer,
) -> None:
    import prometheus_client

    from beanstalkt.ops.metrics import WorkerMetrics

    async def handle(job: ReservedJob) -> None:
        raise Bury("the address is on the blocklist")

    metrics = WorkerMetrics(registry=prometheus_client.CollectorRegistry())
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="b") as client:
        asked = await client.put(b"\xff not text")
        told = await client.put(b"fine")
        worker = make_worker(beanstalkd, {"b": handle}, encoding="utf-8", metrics=metrics)
        async with worker:
            await eventually(lambda: worker.counters()["b"]["buried"] == 2, "both buried")
            await eventually(lambda: _records(client, "b", 2), "both failure records written")
        records = {r["id"]: r for r in await read_failures(client, "b")}
    assert records[told]["error"] == "Bury: the address is on the blocklist"
    assert records[asked]["error"].startswith("UndecodableBody: ")  # a BadJob
    # Issue 20: the bad job's burial reaches Prometheus too (one mutator).
    assert (
        metrics.registry.get_sample_value("beanstalkt_worker_jobs_buried_total", {"tube": "b"}) == 2
    )


async def _records(client: beanstalkt.Client, tube: str, count: int) -> bool:
    return await _record_count(client, tube) == count


async def _record_count(client: beanstalkt.Client, tube: str) -> int:
    try:
        stats = await client.stats_tube(tube + ".failures")
    except beanstalkt.NotFound:
        return 0  # the server drops an empty tube nobody uses
    return stats["current-jobs-ready"] + stats["current-jobs-reserved"]


# ----------------------------------------------------------------------
# Per-tube policies.


async def test_two_tubes_with_their_own_policies_in_one_worker(
    beanstalkd: BeanstalkdServer,
) -> None:
    running = {"capped": 0, "free": 0}
    most = {"capped": 0, "free": 0}
    gate = asyncio.Event()
    attempts: dict[str, list[int]] = {"capped": [], "free": []}

    async def handle(job: ReservedJob) -> None:
        running[job.tube] += 1
        most[job.tube] = max(most[job.tube], running[job.tube])
        try:
            if job.body == b"fail":
                await job.load_stats()
                attempts[job.tube].append(job.attempt)
                raise RuntimeError("always")
            await gate.wait()
        finally:
            running[job.tube] -= 1

    worker = make_worker(
        beanstalkd,
        {
            "capped": TubePolicy(handle, concurrency=2, max_attempts=1),
            "free": TubePolicy(handle, max_attempts=3, backoff_base=0),
        },
        concurrency=6,
    )
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client, worker:
        for tube in ("capped", "free"):
            await client.put(b"fail", tube=tube)
            for n in range(8):
                await client.put(b"%d" % n, tube=tube)
        await eventually(lambda: running["capped"] == 2 and running["free"] == 6, "slots full")
        await asyncio.sleep(0.3)
        assert most["capped"] == 2  # never more than its own slots
        gate.set()
        await eventually(
            lambda: (
                worker.counters()["capped"]["done"] == 8 and worker.counters()["free"]["done"] == 8
            ),
            "every job done",
        )
        await eventually(
            lambda: (
                worker.counters()["free"]["buried"] == 1
                and worker.counters()["capped"]["buried"] == 1
            ),
            "the failing jobs buried",
        )
    assert attempts == {"capped": [1], "free": [1, 2, 3]}
    assert worker.policy("capped").concurrency == 2 and worker.policy("free").max_attempts == 3


# ----------------------------------------------------------------------
# Burst mode.


async def test_burst_mode_runs_what_is_ready_and_returns(beanstalkd: BeanstalkdServer) -> None:
    done: list[bytes] = []

    async def handle(job: ReservedJob) -> None:
        done.append(bytes(job.body))

    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="batch") as client:
        for n in range(30):
            await client.put(b"%d" % n)
        worker = make_worker(beanstalkd, {"batch": handle}, concurrency=4)
        await asyncio.wait_for(worker.run_burst(), 60)
        assert worker.stopping
        assert sorted(done) == sorted(b"%d" % n for n in range(30))
        assert await tube_is_empty(client, "batch")


def _handler_module(tmp_path: Path, body: str) -> dict[str, str]:
    (tmp_path / "burst_jobs.py").write_text(textwrap.dedent(body))
    return {"PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}


async def test_burst_command_exits_0_with_the_queue_empty(
    beanstalkd: BeanstalkdServer, tmp_path: Path
) -> None:
    extra = _handler_module(tmp_path, "async def handle(job):\n    return None\n")
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="nightly") as client:
        for n in range(10):
            await client.put(b"%d" % n)
        finished = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "beanstalkt.worker",
                "burst_jobs:handle",
                "--tube",
                "nightly",
                "--burst",
            ],
            env=environment(beanstalkd, **extra),
            capture_output=True,
            timeout=60,
        )
        assert finished.returncode == 0, finished.stderr
        assert await tube_is_empty(client, "nightly")


# ----------------------------------------------------------------------
# /healthz and the metrics options.


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def test_healthz_is_200_while_a_server_is_live_503_while_none_is(
    beanstalkd: BeanstalkdServer,
) -> None:
    import prometheus_client

    from beanstalkt.ops.metrics import WorkerMetrics

    metrics = WorkerMetrics(registry=prometheus_client.CollectorRegistry())
    worker = Worker(
        {"h": _never},
        host=beanstalkd.host,
        port=beanstalkd.port,
        metrics=metrics,
        client_options={"reconnect_interval": 0.2},
    )
    async with worker:
        port = metrics.serve(0, health=worker.healthy)
        url = f"http://127.0.0.1:{port}/healthz"
        assert await asyncio.to_thread(_get, url) == (200, "ok\n")
        beanstalkd.kill()
        await eventually(lambda: not worker.healthy(), "no server live")
        status, text = await asyncio.to_thread(_get, url)
        assert status == 503 and "no beanstalkd server is live" in text
        assert (await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics"))[0] == 200
        beanstalkd.start()
        await eventually(worker.healthy, "the server back", 30)
        assert (await asyncio.to_thread(_get, url))[0] == 200
        metrics.stop_serving()


def test_metrics_port_out_of_range_or_in_use_is_one_clear_line(tmp_path: Path) -> None:
    extra = _handler_module(tmp_path, "async def handle(job):\n    return None\n")
    command = [sys.executable, "-m", "beanstalkt.worker", "burst_jobs:handle"]
    env = environment(None, **extra)
    bad = subprocess.run(
        [*command, "--metrics-port", "70000"], env=env, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "--metrics-port" in bad.stderr and "Traceback" not in bad.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        used = taken.getsockname()[1]
        busy = subprocess.run(
            [*command, "--metrics-port", str(used)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert busy.returncode == 1 and "Traceback" not in busy.stderr
    assert f"cannot listen on 127.0.0.1:{used}" in busy.stderr


# ----------------------------------------------------------------------
# --processes.


async def _reserved_now(client: beanstalkt.Client) -> int:
    return (await client.stats())["current-jobs-reserved"]


@pytest.fixture
def supervised(beanstalkd: BeanstalkdServer, tmp_path: Path) -> Iterator[dict[str, str]]:
    yield _handler_module(
        tmp_path,
        """
        import asyncio, os
        async def handle(job):
            with open(os.environ["JOB_LOG"], "a") as log:
                log.write(f"{os.getpid()} {job.body.decode()}\\n")
            await asyncio.sleep(0.5)
        """,
    )


async def test_processes_stop_gracefully_on_sigterm_and_a_killed_child_is_restarted(
    beanstalkd: BeanstalkdServer, supervised: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "jobs.log"
    log.touch()
    env = environment(beanstalkd, JOB_LOG=str(log), **supervised)
    parent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "beanstalkt.worker",
            "burst_jobs:handle",
            "--tube",
            "many",
            "--processes",
            "2",
            "--concurrency",
            "2",
            "--grace-period",
            "10",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="many") as client:
            for n in range(200):
                await client.put(b"%d" % n)

            def pids() -> set[int]:
                return {int(line.split()[0]) for line in log.read_text().splitlines()}

            await eventually(lambda: len(pids()) == 2, "both children working", 60)
            victim = min(pids())
            os.kill(victim, signal.SIGKILL)
            await eventually(lambda: len(pids()) == 3, "a new child in its place", 60)
            assert await _reserved_now(client) > 0  # jobs in flight
            parent.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(parent.wait, 60)
            _out, err = parent.communicate()
            assert code == 0, err.decode()
            assert await _reserved_now(client) == 0  # nothing left reserved
            assert b"restarting it" in err
            stats = await client.stats_tube("many")
            assert stats["current-jobs-reserved"] == 0
            assert stats["current-jobs-ready"] + stats["cmd-delete"] == 200
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


# ----------------------------------------------------------------------
# Servers that accept and never answer (issue 19).


async def test_start_does_not_wait_on_a_listener_that_never_answers(
    beanstalkd: BeanstalkdServer,
) -> None:
    done: list[bytes] = []

    async def handle(job: ReservedJob) -> None:
        done.append(bytes(job.body))

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # connects succeed (the backlog), nothing ever answers
        mute = f"127.0.0.1:{silent.getsockname()[1]}"
        healthy = f"{beanstalkd.host}:{beanstalkd.port}"
        async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="live") as client:
            for n in range(20):
                await client.put(b"%d" % n)
            worker = Worker({"live": handle}, servers=[mute, healthy], concurrency=4)
            await asyncio.wait_for(worker.start(), 30)  # bounded, never for ever
            try:
                await eventually(lambda: len(done) == 20, "the healthy server's jobs run")
                assert [(each.address, each.live) for each in worker.servers] == [
                    (mute, False),
                    (healthy, True),
                ]
                assert worker.healthy()
            finally:
                await asyncio.wait_for(worker.stop(), 60)


async def test_a_frozen_server_keeps_no_slot_and_the_others_jobs_run(
    servers: list[BeanstalkdServer],
) -> None:
    frozen, healthy = servers[0], servers[1]
    done: list[tuple[Optional[str], bytes]] = []

    async def handle(job: ReservedJob) -> None:
        done.append((job.server, bytes(job.body)))

    worker = Worker(
        {"f": handle},
        servers=[f"{s.host}:{s.port}" for s in (frozen, healthy)],
        concurrency=4,
    )
    async with worker:
        await eventually(lambda: all(each.live for each in worker.servers), "both live")
        assert frozen.process is not None
        frozen.process.send_signal(signal.SIGSTOP)
        try:
            await eventually(lambda: not worker.servers[0].live, "the frozen one out", 60)
            async with beanstalkt.Client(healthy.host, healthy.port, use="f") as client:
                for n in range(20):
                    await client.put(b"%d" % n)
                await eventually(lambda: len(done) == 20, "the healthy server's jobs run", 60)
            await eventually(lambda: worker.servers[0].slots == 0, "no slot on the frozen one", 60)
        finally:
            frozen.process.send_signal(signal.SIGCONT)
    assert {server for server, _ in done} == {f"{healthy.host}:{healthy.port}"}


# ----------------------------------------------------------------------
# The worker's buried count after kills (issue 19).


def _buried_at_least(worker: Worker, count: int) -> Any:
    return lambda: worker.counters()["k"]["buried"] >= count


async def test_the_buried_count_agrees_with_the_server_after_kills(
    beanstalkd_with_binlog: BeanstalkdServer, report: Any
) -> None:
    server = beanstalkd_with_binlog

    async def broken(job: ReservedJob) -> None:
        raise ValueError("always")

    async with beanstalkt.Client(server.host, server.port, use="k") as client:
        await asyncio.gather(*[client.put(b"%d" % n) for n in range(3000)])
    worker = Worker(
        {"k": broken},
        host=server.host,
        port=server.port,
        concurrency=50,
        max_attempts=1,
        client_options={"reconnect_interval": 0.1},
    )

    async def settled() -> bool:
        async with beanstalkt.Client(server.host, server.port) as client:
            stats = await client.stats_tube("k")
        left = stats["current-jobs-ready"] + stats["current-jobs-reserved"]
        return left == 0 and not worker._background

    async with worker:
        for kills in range(3):
            await eventually(_buried_at_least(worker, 500 * (kills + 1)), "burials under way")
            server.kill()  # -9, mid-burial
            server.start()
        await eventually(settled, "every job buried, every lost reply asked about", 120)
    async with beanstalkt.Client(server.host, server.port) as client:
        on_server = (await client.stats_tube("k"))["current-jobs-buried"]
    counters = worker.counters()["k"]
    report(
        f"buried on the server {on_server}, counted {counters['buried']}, lost {counters['lost']}"
    )
    assert on_server == 3000
    assert counters["buried"] == on_server


# ----------------------------------------------------------------------
# The retry sequence cut by a connection loss (issue 19).


class _CuttingProxy:
    """A TCP proxy to a beanstalkd that drops the connection right after a chosen reply, once."""

    def __init__(self, upstream: BeanstalkdServer, after: bytes) -> None:
        self.upstream = upstream
        self.after = after
        self.cut = False
        # What the clients sent, every connection one after the other.
        self.sent = b""
        self.server: Optional[asyncio.AbstractServer] = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.upstream.host, self.upstream.port)

        async def pump(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, watch: bool
        ) -> None:
            while data := await source.read(65536):
                if not watch:
                    self.sent += data
                if watch and not self.cut and self.after in data:
                    end = data.index(self.after) + len(self.after)
                    sink.write(data[:end])
                    self.cut = True
                    break
                sink.write(data)
            for each in (writer, up_writer):
                each.close()

        await asyncio.gather(
            pump(reader, up_writer, False), pump(up_reader, writer, True), return_exceptions=True
        )

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_the_retry_sequence_cut_after_its_bury_is_never_replayed(
    beanstalkd: BeanstalkdServer,
) -> None:
    attempts: list[int] = []

    seen: list[tuple[int, int, int]] = []  # reserves, releases, buries

    async def flaky(job: ReservedJob) -> None:
        stats = await job.load_stats()
        attempts.append(job.attempt)
        seen.append((stats["reserves"], stats["releases"], stats["buries"]))
        if job.attempt == 1:
            raise RuntimeError("first time")

    proxy = _CuttingProxy(beanstalkd, b"BURIED\r\n")
    port = await proxy.start()
    try:
        async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="cut") as client:
            job_id = await client.put(b"x")
            worker = Worker(
                {"cut": flaky},
                host="127.0.0.1",
                port=port,
                backoff_base=0,
                client_options={"reconnect_interval": 0.1},
            )
            async with worker:
                await eventually(lambda: proxy.cut, "the connection cut after the bury")
                await eventually(lambda: worker.counters()["cut"]["done"] == 1, "the job done")
            with pytest.raises(beanstalkt.NotFound):
                await client.stats_job(job_id)
    finally:
        proxy.close()
    # The bury, reserve-job and release went out in one write, before the
    # cut; the reserve-job was never sent again on the new connection.
    assert attempts == [1, 2]
    assert proxy.sent.count(b"reserve-job ") == 1
    assert seen[-1][1:] == (1, 1)  # released once, buried once: one failure marked


def test_every_counted_event_reaches_the_metrics() -> None:
    import prometheus_client

    from beanstalkt.ops.metrics import WorkerMetrics
    from beanstalkt.worker import TubeCounters

    metrics = WorkerMetrics(registry=prometheus_client.CollectorRegistry())
    counters = TubeCounters("t", metrics)
    for name in ("retried", "buried", "released", "lost", "timed_out", "buried"):
        counters.add(name)
    sample = metrics.registry.get_sample_value
    for metric, value in (
        ("retried", 1),
        ("buried", 2),
        ("released", 1),
        ("lost", 1),
        ("timed_out", 1),
    ):
        assert sample(f"beanstalkt_worker_jobs_{metric}_total", {"tube": "t"}) == value
    assert counters.as_dict()["buried"] == 2 and counters.in_progress == 0


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie has stopped working


async def test_children_stop_by_themselves_when_the_supervisor_is_killed(
    beanstalkd: BeanstalkdServer, supervised: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "jobs.log"
    log.touch()
    env = environment(beanstalkd, JOB_LOG=str(log), **supervised)
    parent = subprocess.Popen(
        [sys.executable, "-m", "beanstalkt.worker", "burst_jobs:handle", "--tube", "orphans",
         "--processes", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="orphans") as client:
        for n in range(100):
            await client.put(b"%d" % n)

        def pids() -> set[int]:
            return {int(line.split()[0]) for line in log.read_text().splitlines()}

        await eventually(lambda: len(pids()) == 2, "both children working", 60)
        parent.kill()
        parent.wait()
        await eventually(lambda: not any(_alive(pid) for pid in pids()), "the children gone", 60)
        assert await _reserved_now(client) == 0


# ----------------------------------------------------------------------
# The command line's policies, and failures over several servers.


async def test_policy_option_applies_per_tube_and_refuses_what_it_cannot_be(
    beanstalkd: BeanstalkdServer, tmp_path: Path
) -> None:
    extra = _handler_module(tmp_path, "async def fails(job):\n    raise ValueError('no')\n")
    command = [sys.executable, "-m", "beanstalkt.worker", "burst_jobs:fails"]
    env = environment(beanstalkd, **extra)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args], env=env, capture_output=True, text=True, timeout=60
        )

    for bad in ("strict:bogus=1", "strict", "other:max_attempts=1", "strict:time_limit=-1"):
        refused = await asyncio.to_thread(run, "--tube", "strict", "--policy", bad)
        assert refused.returncode == 2, (bad, refused.stderr)
        assert "--policy" in refused.stderr and "Traceback" not in refused.stderr
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        strict = await client.put(b"x", tube="strict")
        lenient = await client.put(b"y", tube="lenient")
        done = await asyncio.to_thread(
            run, "--tube", "strict", "--tube", "lenient", "--burst", "--backoff-base", "60",
            "--policy", "strict:max_attempts=1",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        # strict: buried at its first failure; lenient: retried, delayed 45-60 s (jitter).
        assert (await client.stats_job(strict))["state"] == "buried"
        stats = await client.stats_job(lenient)
        assert (stats["state"], stats["buries"]) == ("delayed", 1)
        assert 45 <= stats["delay"] <= 60


async def test_failures_command_reads_every_server(servers: list[BeanstalkdServer]) -> None:
    first, second = servers[0], servers[1]
    one = await _fail_once_buried(first, "multi", b"on the first")
    two = await _fail_once_buried(second, "multi", b"on the second")
    env = environment(None)
    shown = await asyncio.to_thread(
        cli,
        None,
        "multi",
        "--server",
        f"{first.host}:{first.port}",
        "--server",
        f"{second.host}:{second.port}",
        module="beanstalkt.cli.failures",
        env=env,
    )
    assert shown.returncode == 0, shown.stderr
    listed = {(entry["server"], entry["id"]) for entry in json.loads(shown.stdout)}
    assert listed == {(f"{first.host}:{first.port}", one), (f"{second.host}:{second.port}", two)}

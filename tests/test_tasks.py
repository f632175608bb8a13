"""Typed tasks on a real beanstalkd: defer, worker, results, failures, the envelope on the wire."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from typing import Any, Optional

import pytest

import beanstalkt
from beanstalkt.tasks import (
    EnvelopeError,
    ResultTimeout,
    TaskFailed,
    Tasks,
)
from beanstalkt.tasks.envelope import decode
from beanstalkt.testing import BeanstalkdServer
from beanstalkt.worker.failures import read_failures

from .test_worker import HANG, eventually


def make_tasks(server: BeanstalkdServer, **options: Any) -> Tasks:
    return Tasks(host=server.host, port=server.port, **options)


def fast_worker(tasks: Tasks, **options: Any) -> beanstalkt.Worker:
    """A tasks worker that retries failures at once (no backoff delay)."""
    options.setdefault("backoff_base", 0)
    options.setdefault("grace_period", 1)
    return tasks.worker(**options)


async def jobs_in(client: beanstalkt.Client, tube: str) -> dict[str, int]:
    try:
        stats: dict[str, Any] = dict(await client.stats_tube(tube))
    except beanstalkt.NotFound:
        return {"ready": 0, "delayed": 0, "reserved": 0, "buried": 0}
    return {
        state: int(stats[f"current-jobs-{state}"])
        for state in ("ready", "delayed", "reserved", "buried")
    }


async def test_defer_run_and_result_for_several_argument_shapes(
    beanstalkd: BeanstalkdServer,
) -> None:
    tasks = make_tasks(beanstalkd)

    @tasks.task(tube="math", results=True)
    async def add(a: int, b: int) -> int:
        return a + b

    @tasks.task(tube="math", results=True)
    async def describe(
        name: str, *tags: str, scores: Optional[dict[str, float]] = None, **extra: Any
    ) -> dict[str, Any]:
        return {"name": name, "tags": list(tags), "scores": scores, "extra": extra}

    @tasks.task(tube="other", results=True)
    async def nothing() -> None:
        return None

    @tasks.task(tube="other", results=True)
    def blocking(text: str) -> str:  # a plain function: run in a thread
        assert threading.current_thread() is not threading.main_thread()
        return text.upper()

    async with tasks:
        worker = fast_worker(tasks, concurrency=4)
        await worker.start()
        try:
            assert await (await add.defer(2, 3)).result(timeout=HANG) == 5
            assert await (await add.defer(a=-1, b=1)).result(timeout=HANG) == 0
            described = await (
                await describe.defer("ada", "x", "y", scores={"m": 1.5}, lang="en", n=None)
            ).result(timeout=HANG)
            assert described == {
                "name": "ada",
                "tags": ["x", "y"],
                "scores": {"m": 1.5},
                "extra": {"lang": "en", "n": None},
            }
            assert await (await nothing.defer()).result(timeout=HANG) is None
            assert await (await blocking.defer("shout")).result(timeout=HANG) == "SHOUT"
            # Many at once, answered by the right refs.
            refs = await asyncio.gather(*(add.defer(i, i) for i in range(40)))
            results = await asyncio.gather(*(ref.result(timeout=HANG) for ref in refs))
            assert results == [2 * i for i in range(40)]
        finally:
            await worker.stop()
        async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
            for tube in ("math", "other", tasks.reply_tube):
                assert await jobs_in(client, tube) == {
                    "ready": 0,
                    "delayed": 0,
                    "reserved": 0,
                    "buried": 0,
                }


async def test_envelope_is_plain_json_with_the_documented_fields(
    beanstalkd: BeanstalkdServer,
) -> None:
    tasks = make_tasks(beanstalkd)

    @tasks.task(tube="emails", priority=512, ttr=60)
    async def send_welcome(to: str, name: str) -> None: ...

    @tasks.task(tube="emails", results=True, name="emails.count")
    async def count() -> int:
        return 1

    async with tasks, beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        ref = await send_welcome.options(headers={"request-id": "r-1"}).defer(
            "ada@example.com", name="Ada"
        )
        assert isinstance(ref.job, int)
        job = await client.peek(ref.job)
        data = json.loads(job.body)  # what any consumer, in any language, reads
        assert data["v"] == 1
        assert data["id"] == ref.id and len(ref.id) == 32
        assert data["name"] == (
            "tests.test_tasks.test_envelope_is_plain_json_with_the_documented_fields"
            ".<locals>.send_welcome"
        )
        assert data["args"] == ["ada@example.com"]
        assert data["kwargs"] == {"name": "Ada"}
        assert data["attempts"] == 0
        assert data["headers"] == {"request-id": "r-1"}
        assert data["reply_to"] is None
        assert data["enqueued_at"].endswith("Z")
        stats = await client.stats_job(ref.job)
        assert (stats["tube"], stats["pri"], stats["ttr"]) == ("emails", 512, 60)

        other = await count.defer()
        assert isinstance(other.job, int)
        data = json.loads((await client.peek(other.job)).body)
        assert data["name"] == "emails.count"
        assert data["reply_to"] == tasks.reply_tube

        # And an envelope written by hand (another language's producer) decodes.
        hand_written = {"v": 1, "id": "x1", "name": "emails.count", "args": [], "kwargs": {}}
        assert decode(json.dumps(hand_written).encode()).name == "emails.count"


async def test_arguments_json_cannot_carry_are_refused_before_anything_is_sent(
    beanstalkd: BeanstalkdServer,
) -> None:
    import datetime

    tasks = make_tasks(beanstalkd)

    @tasks.task(tube="strict")
    async def store(value: Any) -> None: ...

    async with tasks, beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        for bad, says in [
            (datetime.date(2026, 1, 1), "args[0] is a date"),
            ({1: "int key"}, "args[0] has a non-string key 1"),
            (float("nan"), "args[0] is nan"),
            ([b"bytes"], "args[0][0] is a bytes"),
            ({"a": {1, 2}}, "args[0]['a'] is a set"),
        ]:
            with pytest.raises(
                EnvelopeError, match=r"task .*store' cannot be sent as JSON: " + re.escape(says)
            ):
                await store.defer(bad)
        with pytest.raises(ValueError, match="priority"):
            await store.options(priority=-1).defer(1)
        assert await jobs_in(client, "strict") == {
            "ready": 0,
            "delayed": 0,
            "reserved": 0,
            "buried": 0,
        }
        await store.defer((1, 2))  # a tuple goes as a list; the connection still works
        assert (await jobs_in(client, "strict"))["ready"] == 1


async def test_garbage_and_unknown_tasks_are_buried_once_with_a_failure_record(
    beanstalkd: BeanstalkdServer,
) -> None:
    tasks = make_tasks(beanstalkd)

    @tasks.task(tube="jobs")
    async def known() -> None: ...

    async with tasks, beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        garbage = await client.put(b"\xff not json", tube="jobs")
        wrong_version = await client.put(b'{"v": 2, "id": "a", "name": "x"}', tube="jobs")
        unknown = await client.put(
            json.dumps({"v": 1, "id": "u1", "name": "nobody.has.this", "args": []}).encode(),
            tube="jobs",
        )
        mismatch = await client.put(
            json.dumps({"v": 1, "id": "m1", "name": known.name, "args": [1, 2]}).encode(),
            tube="jobs",
        )
        worker = fast_worker(tasks, max_attempts=5)
        async with worker:
            await eventually(
                lambda: worker.counters()["jobs"]["buried"] == 4, "four burials confirmed"
            )
        for job_id in (garbage, wrong_version, unknown, mismatch):
            stats = await client.stats_job(job_id)
            assert stats["state"] == "buried"
            assert stats["reserves"] == 1  # tried once, never retried
        # One record each, the engine's (in jobs.failures), with the reason.
        by_job = {record["id"]: record for record in await read_failures(client, "jobs")}
        assert set(by_job) == {garbage, wrong_version, unknown, mismatch}
        assert all(record["state"] == "buried" for record in by_job.values())
        assert by_job[mismatch]["error"].startswith(
            f"Bury: arguments do not match task {known.name}"
        )
        assert by_job[garbage]["error"].startswith("Bury: not a task envelope: not JSON")
        assert "not json" in by_job[garbage]["error"]  # the start of the body
        assert "version 2 is not 1" in by_job[wrong_version]["error"]
        assert by_job[unknown]["error"] == "Bury: unknown task 'nobody.has.this'"
        assert all(record["tube"] == "jobs" for record in by_job.values())
        # Nothing else was recorded anywhere: no second record of the tasks' own.
        assert "tasks.failures" not in await client.list_tubes()
        assert (await jobs_in(client, "jobs.failures"))["ready"] == 4


async def test_last_failure_is_the_result_and_buries_with_a_record(
    beanstalkd: BeanstalkdServer,
) -> None:
    tasks = make_tasks(beanstalkd)
    runs: list[int] = []

    @tasks.task(tube="flaky", results=True, max_attempts=3)
    async def always_fails(x: int) -> int:
        runs.append(x)
        raise ValueError(f"bad {x}")

    @tasks.task(tube="flaky", results=True, max_attempts=3)
    async def fails_once(x: int) -> int:
        runs.append(-x)
        if runs.count(-x) == 1:
            raise RuntimeError("first time")
        return x * 10

    async with tasks, beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        worker = fast_worker(tasks)
        async with worker:
            ref = await always_fails.defer(7)
            with pytest.raises(TaskFailed) as failed:
                await ref.result(timeout=HANG)
            assert (failed.value.type, failed.value.message) == ("ValueError", "bad 7")
            assert runs == [7, 7, 7]  # three attempts, then buried
            assert await (await fails_once.defer(4)).result(timeout=HANG) == 40
            await eventually(
                lambda: worker.counters()["flaky"]["buried"] == 1, "the burial confirmed"
            )
        assert isinstance(ref.job, int)
        stats = await client.stats_job(ref.job)
        # Buried by the third failure (each failure marks the job with a bury).
        assert (stats["state"], stats["buries"]) == ("buried", 3)
        # The engine's record: the error itself, with its traceback.
        (record,) = await read_failures(client, "flaky")
        assert (record["id"], record["attempts"], record["state"]) == (ref.job, 3, "buried")
        assert record["error"] == "ValueError: bad 7"
        assert "raise ValueError" in record["traceback"]
        assert "tasks.failures" not in await client.list_tubes()


async def test_time_limit_is_the_engines_and_the_last_cut_is_the_result(
    beanstalkd: BeanstalkdServer,
) -> None:
    tasks = make_tasks(beanstalkd)
    cancelled = asyncio.Event()
    runs: list[str] = []

    @tasks.task(tube="slow", results=True, max_attempts=1, time_limit=0.2)
    async def sleepy() -> str:
        try:
            await asyncio.sleep(HANG)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "woke"

    @tasks.task(tube="slow.twice", results=True, max_attempts=2, time_limit=0.5)
    async def slow_once() -> str:
        runs.append("run")
        if len(runs) == 1:
            await asyncio.sleep(HANG)  # cut: a failure, retried
        return "second time"

    @tasks.task(tube="slow.thread", results=True, max_attempts=1, time_limit=0.3)
    def blocks(seconds: float) -> str:  # a thread: abandoned, not stopped
        threading.Event().wait(seconds)
        return "late"

    async with tasks, beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        worker = fast_worker(tasks, concurrency=3)
        async with worker:
            assert worker.policy("slow").time_limit == 0.2  # the engine's, per tube
            ref = await sleepy.defer()
            with pytest.raises(TaskFailed) as failed:
                await ref.result(timeout=HANG)
            assert await (await slow_once.defer()).result(timeout=HANG) == "second time"
            threaded = await blocks.defer(3)
            with pytest.raises(TaskFailed) as thread_failed:
                await threaded.result(timeout=HANG)
            await eventually(
                lambda: worker.counters()["slow.thread"]["buried"] == 1, "the burial confirmed"
            )
        assert failed.value.type == "beanstalkt.worker.actions.TimeLimitExceeded"
        assert "past its time limit of 0.2s" in failed.value.message
        assert thread_failed.value.type == "beanstalkt.worker.actions.TimeLimitExceeded"
        assert cancelled.is_set()
        assert runs == ["run", "run"]
        counters = worker.counters()
        assert (counters["slow"]["timed_out"], counters["slow.twice"]["timed_out"]) == (1, 1)
        (record,) = await read_failures(client, "slow")
        assert record["id"] == ref.job and record["error"].startswith("TimeLimitExceeded")
        assert await read_failures(client, "slow.twice") == []  # it succeeded the second time


async def test_each_task_tube_gets_its_tasks_policy_and_the_backoff_is_theirs(
    beanstalkd: BeanstalkdServer,
) -> None:
    import datetime
    import math

    tasks = make_tasks(beanstalkd)

    @tasks.task(
        tube="patient",
        max_attempts=4,
        time_limit=datetime.timedelta(minutes=2),
        backoff_base=3600,
        backoff_max=7200,
        backoff_jitter=0,
    )
    async def fails(x: int) -> None:
        raise RuntimeError(f"no {x}")

    @tasks.task(tube="patient", max_attempts=4, time_limit=120, backoff_base=3600,
                backoff_max=datetime.timedelta(hours=2), backoff_jitter=0.0)  # fmt: skip
    async def same_policy() -> None: ...

    @tasks.task(tube="unlimited", time_limit=math.inf)
    async def forever() -> None: ...

    @tasks.task(tube="defaults")
    async def plain() -> None: ...

    worker = tasks.worker(time_limit=30, backoff_base=5, backoff_jitter=0.5)
    patient = worker.policy("patient")
    assert (patient.max_attempts, patient.time_limit) == (4, 120.0)
    assert (patient.backoff_base, patient.backoff_max, patient.backoff_jitter) == (3600, 7200, 0)
    assert worker.policy("unlimited").time_limit is None  # no limit at all
    defaults = worker.policy("defaults")  # what a task leaves out is the worker's
    assert (defaults.max_attempts, defaults.time_limit) == (5, 30.0)
    assert (defaults.backoff_base, defaults.backoff_jitter) == (5.0, 0.5)

    async with tasks, beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        ref = await fails.defer(1)
        job_id = ref.job
        assert isinstance(job_id, int)
        async with worker:
            await eventually(lambda: worker.counters()["patient"]["failed"] == 1, "a failure")
            await eventually(lambda: job_delayed(client, job_id), "the retry, delayed")
        stats = await client.stats_job(job_id)
        # The task's backoff (3600 s, no jitter), not the worker's 5 s.
        assert (stats["state"], stats["delay"], stats["buries"]) == ("delayed", 3600, 1)


async def job_delayed(client: beanstalkt.Client, job_id: int) -> bool:
    return (await client.stats_job(job_id))["state"] == "delayed"


def test_tasks_sharing_a_tube_must_agree_on_its_policy(beanstalkd: BeanstalkdServer) -> None:
    import datetime

    tasks = make_tasks(beanstalkd)

    @tasks.task(tube="shared", max_attempts=3, time_limit=60)
    async def first() -> None: ...

    async def second() -> None: ...

    cases: list[tuple[dict[str, Any], str]] = [
        ({"max_attempts": 3}, "time_limit=None (it has 60.0)"),
        ({"max_attempts": 4, "time_limit": 60}, "max_attempts=4 (it has 3)"),
        ({"max_attempts": 3, "time_limit": 60, "backoff_base": 1}, "backoff_base=1.0"),
        ({"max_attempts": 3, "time_limit": 60, "backoff_jitter": 0}, "backoff_jitter=0"),
    ]
    for options, says in cases:
        with pytest.raises(ValueError, match=re.escape(says)) as refused:
            tasks.task(tube="shared", name="second", **options)(second)
        assert "shares tube 'shared' with task" in str(refused.value)
        assert "tubes of their own" in str(refused.value)
    assert "second" not in tasks.registry  # refused: not half registered
    # The same values (a timedelta is its seconds) are accepted; another tube is free.
    tasks.task(tube="shared", name="second", max_attempts=3,
               time_limit=datetime.timedelta(minutes=1))(second)  # fmt: skip
    tasks.task(tube="elsewhere", name="third", max_attempts=1)(second)
    assert tasks.worker().policy("shared").max_attempts == 3
    with pytest.raises(ValueError, match="time_limit"):
        tasks.task(tube="bad", name="bad", time_limit=0)(second)
    with pytest.raises(ValueError, match="backoff_jitter"):
        tasks.task(tube="bad", name="bad", backoff_jitter=2)(second)
    with pytest.raises(TypeError, match="backoff_base"):
        tasks.task(tube="bad", name="bad", backoff_base="soon")(second)  # type: ignore[call-overload]


async def test_an_envelope_with_attempts_used_up_is_buried_once_by_the_tasks_count(
    beanstalkd: BeanstalkdServer,
) -> None:
    tasks = make_tasks(beanstalkd)

    @tasks.task(tube="counted", max_attempts=3, name="counted.fails")
    async def fails() -> None:
        raise ValueError("still broken")

    async with tasks, beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        # Two attempts were made before this job was put (another producer's retry).
        body = {"v": 1, "id": "c1", "name": "counted.fails", "attempts": 2}
        job_id = await client.put(json.dumps(body).encode(), tube="counted")
        worker = fast_worker(tasks)
        async with worker:
            await eventually(lambda: worker.counters()["counted"]["buried"] == 1, "the burial")
        stats = await client.stats_job(job_id)
        assert (stats["state"], stats["reserves"]) == ("buried", 1)  # never retried
        (record,) = await read_failures(client, "counted")
        assert record["error"] == "Bury: failed on attempt 3 of 3: ValueError: still broken"


async def test_a_result_not_awaited_in_time_is_deleted_when_it_comes(
    beanstalkd: BeanstalkdServer,
) -> None:
    tasks = make_tasks(beanstalkd)

    @tasks.task(tube="late", results=True)
    async def answer() -> int:
        return 42

    async with tasks, beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        ref = await answer.defer()
        with pytest.raises(ResultTimeout):
            await ref.result(timeout=0.1)  # no worker yet
        assert isinstance(ref.job, int)
        async with fast_worker(tasks):
            await eventually(lambda: tube_gone_or_empty(client, "late"), "the task run and deleted")
            # The reply came (somebody listens) and was deleted on arrival.
            await eventually(
                lambda: reply_tube_empty(client, tasks.reply_tube), "the reply deleted"
            )
        with pytest.raises(ResultTimeout):
            await ref.result(timeout=0)


async def tube_gone_or_empty(client: beanstalkt.Client, tube: str) -> bool:
    return not any((await jobs_in(client, tube)).values())


async def reply_tube_empty(client: beanstalkt.Client, tube: str) -> bool:
    stats = await client.stats_tube(tube)
    return (
        int(stats["total-jobs"]) == 1
        and int(stats["current-jobs-ready"]) == 0
        and not int(stats["current-jobs-reserved"])
    )


async def test_result_is_delivered_once_across_a_worker_restart(
    beanstalkd: BeanstalkdServer,
) -> None:
    tasks = make_tasks(beanstalkd)
    started = asyncio.Event()
    runs = 0

    @tasks.task(tube="restart", results=True)
    async def slow_first(x: int) -> int:
        nonlocal runs
        runs += 1
        if runs == 1:
            started.set()
            await asyncio.sleep(HANG)  # the first worker is stopped while here
        return x + 1

    async with tasks, beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        ref = await slow_first.defer(1)
        first = fast_worker(tasks, grace_period=0)
        await first.start()
        await asyncio.wait_for(started.wait(), HANG)
        await first.stop()  # the unfinished job is released for another worker
        assert (await client.stats_job(ref.job))["state"] == "ready"  # type: ignore[arg-type]
        async with fast_worker(tasks):
            assert await ref.result(timeout=HANG) == 2
            assert runs == 2
            # A second reply for the same task (a worker that died after
            # replying, before deleting) finds nobody waiting: deleted, not delivered.
            await client.put(
                json.dumps({"v": 1, "id": ref.id, "ok": True, "value": 99}).encode(),
                tube=tasks.reply_tube,
            )
            await eventually(
                lambda: replies_seen(client, tasks.reply_tube, 2), "the duplicate deleted"
            )
        assert await ref.result(timeout=0) == 2


async def replies_seen(client: beanstalkt.Client, tube: str, total: int) -> bool:
    stats = await client.stats_tube(tube)
    return (
        int(stats["total-jobs"]) == total
        and not int(stats["current-jobs-ready"])
        and not int(stats["current-jobs-reserved"])
    )


async def test_no_reply_is_left_behind_when_the_producer_has_gone(
    beanstalkd: BeanstalkdServer,
) -> None:
    producer = make_tasks(beanstalkd)
    consumer = make_tasks(beanstalkd)  # the same task, in a worker process

    @producer.task(tube="gone", results=True, name="gone.square")
    async def square(x: int) -> int:
        return x * x

    @consumer.task(tube="gone", results=True, name="gone.square")
    async def square_in_worker(x: int) -> int:
        return x * x

    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        ref = await square.defer(3)
        reply_tube = producer.reply_tube
        await producer.close()  # the producer goes away; its reply tube is unwatched
        async with fast_worker(consumer) as worker:
            await eventually(lambda: worker.counters()["gone"]["done"] == 1, "the task run")
        assert not any((await jobs_in(client, reply_tube)).values())
        assert ref.id


async def test_per_call_options_map_onto_beanstalkd(beanstalkd: BeanstalkdServer) -> None:
    tasks = make_tasks(beanstalkd)

    @tasks.task(tube="mail", priority=512, ttr=60, delay=0)
    async def send(to: str) -> None: ...

    async with tasks, beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        ref = await send.options(delay=3600, priority=1, ttr=5, id="my-own-id").defer("a@b")
        stats = await client.stats_job(ref.job)  # type: ignore[arg-type]
        assert (stats["state"], stats["pri"], stats["ttr"], stats["delay"]) == (
            "delayed",
            1,
            5,
            3600,
        )
        assert ref.id == "my-own-id"
        plain = await send.defer("c@d")
        stats = await client.stats_job(plain.job)  # type: ignore[arg-type]
        assert (stats["state"], stats["pri"], stats["ttr"]) == ("ready", 512, 60)


def test_defer_sync_from_plain_code_uses_one_background_loop(beanstalkd: BeanstalkdServer) -> None:
    tasks = make_tasks(beanstalkd)

    @tasks.task(tube="sync", results=True)
    async def double(x: int) -> int:
        return 2 * x

    refs = []
    try:
        # As a Django or Flask view would: from several threads, no loop of their own.
        def view(x: int) -> None:
            refs.append(double.defer_sync(x))

        threads = [threading.Thread(target=view, args=(i,)) for i in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(HANG)
        assert len(refs) == 5
        assert len({id(tasks._sync_loop)}) == 1 and tasks._sync_thread is not None

        async def work() -> list[int]:
            async with fast_worker(tasks):
                # The refs live on the background loop: read them from there.
                return await asyncio.gather(
                    *(asyncio.to_thread(ref.result_sync, HANG) for ref in refs)
                )

        assert sorted(asyncio.run(work())) == [0, 2, 4, 6, 8]
    finally:
        tasks.close_sync()
    assert tasks._sync_loop is None


async def test_defer_sync_refuses_a_running_loop(beanstalkd: BeanstalkdServer) -> None:
    tasks = make_tasks(beanstalkd)

    @tasks.task(tube="sync")
    async def noop() -> None: ...

    with pytest.raises(RuntimeError, match="use await defer"):
        noop.defer_sync()


async def test_tasks_over_a_pool_route_by_key_and_return_results(
    servers: list[BeanstalkdServer],
) -> None:
    addresses = [f"{server.host}:{server.port}" for server in servers]
    tasks = Tasks(servers=addresses)

    @tasks.task(tube="pooled", results=True)
    async def where(n: int) -> int:
        return n

    async with tasks:
        keyed = [await where.options(key="customer-7").defer(i) for i in range(6)]
        assert len({ref.job.server for ref in keyed}) == 1  # type: ignore[union-attr]
        spread = [await where.defer(i) for i in range(6)]
        assert len({ref.job.server for ref in spread}) == 3  # type: ignore[union-attr]
        async with fast_worker(tasks, concurrency=3):
            values = await asyncio.gather(*(ref.result(timeout=HANG) for ref in keyed + spread))
        assert values == list(range(6)) * 2


def test_registry_refuses_what_would_fail_later(beanstalkd: BeanstalkdServer) -> None:
    tasks = make_tasks(beanstalkd)

    @tasks.task(name="one")
    async def one() -> None: ...

    with pytest.raises(ValueError, match="already registered"):
        tasks.task(name="one")(one.function)
    with pytest.raises(ValueError, match="tube name"):
        tasks.task(tube="bad tube")(one.function)
    with pytest.raises(ValueError, match="max_attempts"):
        tasks.task(name="two", max_attempts=0)(one.function)
    with pytest.raises(TypeError, match="one of"):
        Tasks(host="localhost", servers=["localhost:11300"])
    with pytest.raises(ValueError, match="already registered"):
        tasks.task(name="one")(one.function)


async def test_tasks_over_a_given_client_and_a_cancelled_wait_for_a_result(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        tasks = Tasks(client=client)

        @tasks.task(tube="given", results=True)
        async def triple(x: int) -> int:
            return 3 * x

        async with tasks:
            ref = await triple.defer(3)
            waiting = asyncio.ensure_future(ref.result(timeout=HANG))
            await asyncio.sleep(0)
            waiting.cancel()  # the caller gave up waiting, not the result
            with pytest.raises(asyncio.CancelledError):
                await waiting
            async with fast_worker(tasks):
                assert await ref.result(timeout=HANG) == 9
        assert not client.closed()  # a given client stays the caller's
        assert not any((await jobs_in(client, "given")).values())


def test_defer_sync_is_bounded_when_no_server_answers() -> None:
    from beanstalkt.testing import free_port

    tasks = Tasks(host="127.0.0.1", port=free_port(), sync_timeout=5)

    @tasks.task(tube="nowhere")
    async def lost() -> None: ...

    try:
        with pytest.raises(beanstalkt.ConnectFailed):
            lost.defer_sync()  # nothing listens: a clear error, at once
    finally:
        tasks.close_sync()


async def test_results_come_back_across_a_beanstalkd_restart(
    beanstalkd_with_binlog: BeanstalkdServer,
) -> None:
    server = beanstalkd_with_binlog
    tasks = make_tasks(server)

    @tasks.task(tube="durable", results=True)
    async def echo(text: str) -> str:
        return text

    async with tasks:
        before = await echo.defer("put before the restart")
        server.restart()  # the job is in the binlog; every connection is cut
        async with fast_worker(tasks):
            # The producer and the result listener reconnect by themselves.
            after = await echo.defer("put after the restart")
            assert await after.result(timeout=HANG) == "put after the restart"
            assert await before.result(timeout=HANG) == "put before the restart"


async def test_a_time_limit_passing_while_the_result_waits_for_a_listener_is_no_failure(
    beanstalkd: BeanstalkdServer,
) -> None:
    producer = make_tasks(beanstalkd)
    consumer = make_tasks(beanstalkd)
    runs: list[int] = []

    @producer.task(tube="quick", results=True, name="quick.double", time_limit=0.5)
    async def double(x: int) -> int:
        return 2 * x

    @consumer.task(tube="quick", results=True, name="quick.double", time_limit=0.5)
    async def double_in_worker(x: int) -> int:
        runs.append(x)
        return 2 * x

    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        ref = await double.defer(4)
        await producer.close()  # nobody listens: the reply waits REPLY_GRACE (5 s) > 0.5 s
        async with fast_worker(consumer) as worker:
            await eventually(lambda: worker.counters()["quick"]["done"] == 1, "the task done")
        counters = worker.counters()["quick"]
        assert (counters["failed"], counters["timed_out"], counters["buried"]) == (0, 0, 0)
        assert runs == [4]  # run once: the task had finished when the limit passed
        with pytest.raises(beanstalkt.NotFound):
            await client.stats_job(ref.job)  # type: ignore[arg-type]

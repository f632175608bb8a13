"""Durations: one rule (``protocol.check_seconds``) for every duration that goes on the wire.

A put's ``delay`` and ``ttr``, a release's ``delay``, ``pause_tube``'s delay
and a reserve timeout take an ``int``, a ``float`` holding whole seconds or a
``datetime.timedelta``. beanstalkd counts in whole seconds: a fraction is
refused before any byte is sent (a reserve timeout, a bound on a wait, rounds
up instead). The pure rule first, then what a real server records for each
command, then the refusals on a client that never connected (so each one can
only come from the check).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import Callable
from typing import Any

import pytest

import beanstalkt
from beanstalkt.protocol import MAX_RESERVE_TIMEOUT, MAX_UINT32, check_interval, check_seconds
from beanstalkt.testing import BeanstalkdServer
from beanstalkt.worker import Release, ReservedJob, Worker

HANG = 30.0  # only a guard against a hung test; the waits end on events
MINUTE = datetime.timedelta(minutes=1)

# --------------------------------------------------------------------------
# The rule.


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0),
        (7, 7),
        (MAX_UINT32, MAX_UINT32),
        (7.0, 7),
        (0.0, 0),
        (datetime.timedelta(0), 0),
        (datetime.timedelta(seconds=90), 90),
        (datetime.timedelta(days=2, hours=1), 2 * 86_400 + 3600),
        (datetime.timedelta(milliseconds=3000), 3),
        (datetime.timedelta(seconds=MAX_UINT32), MAX_UINT32),
    ],
)
def test_whole_seconds_in_any_spelling_are_accepted(value: object, seconds: int) -> None:
    result = check_seconds("delay", value)
    assert (result, type(result)) == (seconds, int)


@pytest.mark.parametrize(
    "value",
    [0.5, 1.5, 59.999, datetime.timedelta(milliseconds=1500), datetime.timedelta(microseconds=1)],
)
def test_a_fraction_of_a_second_is_refused_naming_the_value(value: object) -> None:
    with pytest.raises(ValueError) as caught:
        check_seconds("ttr", value)
    assert str(caught.value) == (
        f"ttr must be whole seconds (beanstalkd counts in seconds), not {value!r}"
    )


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(0.001, 1), (1.5, 2), (2.0, 2), (datetime.timedelta(milliseconds=1), 1), (0, 0)],
)
def test_round_up_turns_a_fraction_into_the_next_second(value: object, seconds: int) -> None:
    assert check_seconds("timeout", value, round_up=True) == seconds


@pytest.mark.parametrize(
    "value",
    [-1, -0.5, -1.0, datetime.timedelta(seconds=-1), datetime.timedelta(microseconds=-1)],
)
def test_negative_durations_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match=r"delay must be between 0 and 4294967295 seconds"):
        check_seconds("delay", value)
    with pytest.raises(ValueError, match="between 0 and"):
        check_seconds("timeout", value, round_up=True)


@pytest.mark.parametrize(
    "value", [MAX_UINT32 + 1, float(2**32), datetime.timedelta(seconds=2**32), 1e300]
)
def test_durations_above_the_bound_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match=r"between 0 and 4294967295 seconds, not "):
        check_seconds("delay", value)


def test_the_bound_is_per_command_and_applies_after_rounding_up() -> None:
    assert check_seconds("timeout", MAX_RESERVE_TIMEOUT, MAX_RESERVE_TIMEOUT) == 2**31 - 1
    with pytest.raises(ValueError, match="between 0 and 2147483647 seconds, not 2147483648"):
        check_seconds("timeout", 2**31, MAX_RESERVE_TIMEOUT)
    with pytest.raises(ValueError, match=r"not 2147483646\.5"):
        check_seconds("timeout", 2**31 - 1.5, MAX_RESERVE_TIMEOUT - 1, round_up=True)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_are_refused(value: float) -> None:
    with pytest.raises(ValueError, match="delay must be a finite number of seconds"):
        check_seconds("delay", value)


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(True, "bool"), ("5", "str"), (None, "NoneType"), (b"5", "bytes"), ([5], "list")],
)
def test_other_types_are_refused(value: object, type_name: str) -> None:
    with pytest.raises(TypeError) as caught:
        check_seconds("delay", value)
    assert str(caught.value) == (
        f"delay must be a number of seconds (int, float or timedelta), not {type_name}"
    )


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(0, 0.0), (2, 2.0), (0.25, 0.25), (datetime.timedelta(milliseconds=1500), 1.5)],
)
def test_the_clients_own_times_take_the_same_spellings_and_fractions(
    value: object, seconds: float
) -> None:
    assert check_interval("connect_timeout", value) == seconds


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (-1, ValueError),
        (datetime.timedelta(seconds=-1), ValueError),
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        ("1", TypeError),
        (True, TypeError),
    ],
)
def test_the_clients_own_times_refuse_what_is_no_time(value: object, error: type) -> None:
    with pytest.raises(error, match="stall_timeout must be a"):
        check_interval("stall_timeout", value)
    with pytest.raises(error, match="stall_timeout must be a"):
        beanstalkt.Client("127.0.0.1", 1, stall_timeout=value)  # type: ignore[call-overload]


# --------------------------------------------------------------------------
# What a real server records.


async def test_a_client_with_timedelta_timeouts_connects_and_works(
    beanstalkd: BeanstalkdServer,
) -> None:
    second = datetime.timedelta(seconds=1)
    async with beanstalkt.Client(
        beanstalkd.host,
        beanstalkd.port,
        connect_timeout=5 * second,
        reconnect_interval=second / 10,
        disconnected_timeout=5 * second,
        stall_timeout=30 * second,
    ) as client:
        job_id = await client.put(b"x")
        reconnected = asyncio.Event()
        client.set_reconnect_callback(reconnected.set)
        beanstalkd.restart()
        # A command in flight when the server went may fail (outcome unknown);
        # the client reconnects by itself, reconnect_interval after the loss.
        with contextlib.suppress(beanstalkt.ConnectionLost):
            await asyncio.wait_for(client.stats(), HANG)
        await asyncio.wait_for(reconnected.wait(), HANG)
        with pytest.raises(beanstalkt.NotFound):
            await client.stats_job(job_id)  # a server without binlog forgot it
    async with beanstalkt.Pool(
        [f"{beanstalkd.host}:{beanstalkd.port}"], reconnect_interval=second
    ) as pool:
        assert isinstance((await pool.put(b"y")).id, int)


async def test_put_delay_and_ttr_as_timedelta_and_float(beanstalkd: BeanstalkdServer) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        job_id = await client.put(b"x", delay=2 * MINUTE, ttr=30.0)
        stats = await client.stats_job(job_id)
        assert (stats["state"], stats["delay"], stats["ttr"]) == ("delayed", 120, 30)
        (batch_id,) = await client.put_many([b"y"], delay=MINUTE, ttr=datetime.timedelta(hours=1))
        assert isinstance(batch_id, int)
        stats = await client.stats_job(batch_id)
        assert (stats["delay"], stats["ttr"]) == (60, 3600)
        json_id = await client.put_json({"a": 1}, delay=5.0, ttr=MINUTE)
        assert (await client.stats_job(json_id))["ttr"] == 60


async def test_release_pause_and_reserve_timeout_as_timedelta(
    beanstalkd: BeanstalkdServer,
) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        job_id = await client.put(b"x")
        job = await client.reserve(timeout=datetime.timedelta(0))
        assert job.id == job_id
        await client.release(job, delay=MINUTE)
        assert (await client.stats_job(job_id))["delay"] == 60
        await client.pause_tube("default", datetime.timedelta(seconds=30))
        assert (await client.stats_tube("default"))["pause"] == 30
        with pytest.raises(beanstalkt.TimedOut):
            # 0.2 s rounds up to a one-second wait: the server answers TIMED_OUT.
            await asyncio.wait_for(client.reserve(timeout=0.2), HANG)


async def test_pool_put_takes_the_same_durations(beanstalkd: BeanstalkdServer) -> None:
    async with beanstalkt.Pool([f"{beanstalkd.host}:{beanstalkd.port}"]) as pool:
        ref = await pool.put(b"x", delay=MINUTE, ttr=45.0)
        with pytest.raises(ValueError, match="ttr must be whole seconds"):
            pool.put(b"x", ttr=0.5)
        with pytest.raises(ValueError, match="delay must be whole seconds"):
            pool.put_many([b"x"], delay=datetime.timedelta(milliseconds=10))
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        stats = await client.stats_job(ref.id)
    assert (stats["delay"], stats["ttr"]) == (60, 45)


async def test_worker_release_and_reserve_timeout_take_a_timedelta(
    beanstalkd: BeanstalkdServer,
) -> None:
    assert Release(delay=datetime.timedelta(minutes=2)).delay == 120
    assert Release(delay=3.0).delay == 3
    with pytest.raises(ValueError, match="delay must be whole seconds"):
        Release(delay=0.5)
    with pytest.raises(ValueError, match="reserve_timeout must be between 0 and 2147483647"):
        Worker({"t": print}, reserve_timeout=2**31)
    released = asyncio.Event()

    async def handler(job: ReservedJob) -> None:
        released.set()
        raise Release(delay=MINUTE)

    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="t") as client:
        job_id = await client.put(b"x")
        worker = Worker(
            {"t": handler},
            host=beanstalkd.host,
            port=beanstalkd.port,
            reserve_timeout=datetime.timedelta(seconds=1),
        )
        await worker.start()
        try:
            await asyncio.wait_for(released.wait(), HANG)
        finally:
            await worker.stop()
        stats = await client.stats_job(job_id)
    assert (stats["state"], stats["delay"]) == ("delayed", 60)


async def test_the_workers_own_times_take_a_timedelta(beanstalkd: BeanstalkdServer) -> None:
    worker = Worker(
        {"t": print},
        host=beanstalkd.host,
        port=beanstalkd.port,
        grace_period=datetime.timedelta(seconds=5),
        backoff_base=datetime.timedelta(seconds=10),
        backoff_max=datetime.timedelta(minutes=1),
        stats_interval=datetime.timedelta(hours=1),
    )
    assert (worker.grace_period, worker.stats_interval) == (5.0, 3600.0)
    assert [worker.backoff_delay(n) for n in (1, 2, 3, 4)] == [10, 20, 40, 60]
    await worker.start()
    await asyncio.wait_for(worker.stop(grace_period=datetime.timedelta(0)), HANG)
    for option in ("grace_period", "backoff_base", "backoff_max", "stats_interval"):
        with pytest.raises(ValueError, match=f"{option} must be a finite, non-negative"):
            options: dict[str, Any] = {option: datetime.timedelta(seconds=-1)}
            Worker({"t": print}, **options)


# --------------------------------------------------------------------------
# Refused before a byte is sent.

REFUSALS: list[tuple[str, Callable[[beanstalkt.Client[bytes]], Any], str]] = [
    ("put delay", lambda c: c.put(b"x", delay=1.5), "delay must be whole seconds"),
    ("put ttr", lambda c: c.put(b"x", ttr=MINUTE / 7), "ttr must be whole seconds"),
    ("put_many", lambda c: c.put_many([b"x"], ttr=0.25), "ttr must be whole seconds"),
    ("put_json", lambda c: c.put_json(1, delay=-MINUTE), "delay must be between 0"),
    ("release", lambda c: c.release(1, delay=0.5), "delay must be whole seconds"),
    ("pause", lambda c: c.pause_tube("t", 2.5), "delay must be whole seconds"),
    (
        "reserve above 2**31-1",
        lambda c: c.reserve(timeout=2**31),
        "timeout must be between 0 and 2147483647 seconds, not 2147483648",
    ),
    (
        "reserve timedelta above 2**31-1",
        lambda c: c.reserve(timeout=datetime.timedelta(days=30_000)),
        "timeout must be between 0 and 2147483647 seconds",
    ),
    ("reserve nan", lambda c: c.reserve(timeout=float("nan")), "finite number of seconds"),
]


@pytest.mark.parametrize(
    ("call", "message"), [(r[1], r[2]) for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
async def test_a_bad_duration_is_refused_before_anything_is_sent(
    call: Callable[[beanstalkt.Client[bytes]], Any], message: str
) -> None:
    client = beanstalkt.Client("127.0.0.1", 1)  # never connected
    try:
        with pytest.raises(ValueError, match=message):
            call(client)
        assert (client.in_flight, client.pending_bytes) == (0, 0)
    finally:
        await client.close()


async def test_the_connection_stays_usable_after_a_refusal(beanstalkd: BeanstalkdServer) -> None:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        with pytest.raises(ValueError):
            client.reserve(timeout=MAX_RESERVE_TIMEOUT + 1)
        with pytest.raises(ValueError):
            client.put(b"x", delay=0.5)
        job_id = await client.put(b"x", delay=0.0)
        assert (await client.reserve(timeout=0)).id == job_id
        stats = await client.stats()
    # Nothing of the refused commands reached the server.
    assert (stats["cmd-put"], stats["cmd-reserve-with-timeout"]) == (1, 1)

"""The client's declared types hold: statically (mypy reads this file in CI) and at run time.

``Client()`` is a ``Client[bytes]`` and ``Client(encoding=...)`` a
``Client[str]``, so ``job.body`` needs no narrowing; each command method
declares what its future resolves to, and the run-time test below checks
every declaration against what a real beanstalkd's reply turns into.
"""

from __future__ import annotations

import types
import typing
from typing import TYPE_CHECKING, Any, Union

import beanstalkt
from beanstalkt import Client, Job, Stats, StatsJob, StatsTube
from beanstalkt.testing import BeanstalkdServer

if TYPE_CHECKING:
    from typing_extensions import assert_type


async def _checked_by_mypy_only(raw: Client[bytes], text: Client[str]) -> None:
    """Never run: mypy fails CI if a type here is not what it says."""
    assert_type(Client(), Client[bytes])
    assert_type(Client(encoding="utf-8"), Client[str])
    job = await raw.reserve()
    assert_type(job, Job[bytes])
    assert_type(job.body, bytes)
    assert_type((await text.reserve(timeout=0)).body, str)
    assert_type((await text.peek(1)).body, str)
    assert_type(await raw.put(b"x"), int)
    await text.put("text bodies need an encoding")
    await text.put(b"bytes always work")
    await raw.put("no encoding, no str")  # type: ignore[arg-type]
    assert_type(await raw.stats_job(job), StatsJob)
    assert_type(await raw.stats_tube("default"), StatsTube)
    assert_type(await raw.stats(), Stats)
    assert_type(await raw.list_tubes(), list[str])
    assert_type(await raw.list_tube_used(), str)
    assert_type(await raw.delete(job), None)
    assert_type(await raw.kick(5), int)
    assert_type(await raw.watch("a"), int)
    async with Client() as scoped:
        assert_type(scoped, Client[bytes])


def _declared_result(method: Any) -> Any:
    """``T`` of a command method's declared ``Future[T]``."""
    hints = typing.get_type_hints(method, vars(beanstalkt.client))
    (result,) = typing.get_args(hints["return"])
    return result


def _matches(value: object, declared: Any) -> bool:
    """Whether ``value`` is of the declared type (TypedDicts are dicts at run time)."""
    if declared is None or declared is type(None):
        return value is None
    origin = typing.get_origin(declared)
    if origin in (Union, types.UnionType):
        return any(_matches(value, arm) for arm in typing.get_args(declared))
    if origin is list:
        (item,) = typing.get_args(declared)
        return isinstance(value, list) and all(_matches(each, item) for each in value)
    if origin is Job:
        (body_type,) = typing.get_args(declared)
        return isinstance(value, Job) and _matches(value.body, body_type)
    if typing.is_typeddict(declared):
        keys = typing.get_type_hints(declared)
        return isinstance(value, dict) and all(
            key in keys and _matches(field, keys[key]) for key, field in value.items()
        )
    if isinstance(declared, typing.TypeVar):
        # BodyT: bytes for a client without encoding (checked by the test).
        return isinstance(value, bytes)
    return isinstance(value, declared)


async def test_every_command_resolves_to_its_declared_type(beanstalkd: BeanstalkdServer) -> None:
    async with Client(beanstalkd.host, beanstalkd.port) as client:
        first = await client.put(b"one", ttr=30)
        second = await client.put(b"two", delay=3600)
        await client.put(b"three")
        reserved = await client.reserve(timeout=0)
        assert reserved.id == first
        buried = await client.reserve(timeout=0)
        calls: dict[str, Any] = {
            "bury": client.bury(buried),  # first: commands run in the order issued
            "put": client.put(b"four"),
            "put_json": client.put_json({"n": 1}),
            "use": client.use("default"),
            "touch": client.touch(reserved),
            "watch": client.watch("other"),
            "ignore": client.ignore("other"),
            "peek": client.peek(second),
            "peek_ready": client.peek_ready(),
            "peek_delayed": client.peek_delayed(),
            "peek_buried": client.peek_buried(),
            "stats_job": client.stats_job(second),
            "stats_tube": client.stats_tube("default"),
            "stats": client.stats(),
            "list_tubes": client.list_tubes(),
            "list_tube_used": client.list_tube_used(),
            "list_tubes_watched": client.list_tubes_watched(),
            "pause_tube": client.pause_tube("default", 0),
            "yaml": client.yaml("stats-tube", "default"),
            "kick_job": client.kick_job(buried.id),
            "kick": client.kick(1),
            "release": client.release(reserved),
            "reserve_job": client.reserve_job(second),
        }
        results = {name: await future for name, future in calls.items()}
        # Issued after the ones above are answered (they need the job free again).
        later: dict[str, Any] = {"delete": client.delete(second)}
        later["reserve"] = client.reserve(timeout=0)
        later["put_many"] = client.put_many([b"a", b"b"])
        results.update({name: await future for name, future in later.items()})
    mismatched = {
        name: (type(value).__name__, _declared_result(getattr(Client, name)))
        for name, value in results.items()
        if not _matches(value, _declared_result(getattr(Client, name)))
    }
    assert mismatched == {}
    # Every command method was checked, so a new one cannot slip past.
    commands = {
        name
        for name, member in vars(Client).items()
        if callable(member)
        and not name.startswith("_")
        and name
        not in {
            "connect",
            "close",
            "closed",
            "batch",
            "sequence",  # a block like batch, not a command
            "withdraw",  # takes back a command: no reply of its own
            "abort",  # ends the connection: no command
            "set_reconnect_callback",
            "set_disconnect_callback",
        }
        and name != "schedule_at"  # a put with a delay: put's result, checked above
    }
    assert commands == set(results)


async def test_a_str_client_puts_and_gets_text(beanstalkd: BeanstalkdServer) -> None:
    async with Client(beanstalkd.host, beanstalkd.port, encoding="utf-8") as client:
        await client.put("héllo")
        job = await client.reserve(timeout=0)
        assert job.body == "héllo"
        assert _matches(job, Job[str])
        await client.delete(job)

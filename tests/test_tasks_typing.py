"""The tasks' declared types hold under mypy (CI runs it on this file): defer has the
task's parameters, result() its return type."""

from __future__ import annotations

from typing import TYPE_CHECKING

from beanstalkt.tasks import BoundTask, Task, TaskRef, Tasks

if TYPE_CHECKING:
    from typing_extensions import assert_type

tasks = Tasks(host="localhost", port=11300)


@tasks.task(tube="math", results=True)
async def add(a: int, b: int) -> int:
    return a + b


@tasks.task(tube="emails", priority=512, ttr=60, max_attempts=5, time_limit=30)
async def send_welcome(to: str, name: str) -> None: ...


@tasks.task
async def bare(flag: bool = False) -> str:
    return str(flag)


@tasks.task(tube="threads")
def plain(count: int) -> list[int]:
    return list(range(count))


async def _checked_by_mypy_only() -> None:
    """Never run: mypy fails CI if a type here is not what it says."""
    typed: Task[..., int] = add  # R is the return type, not a coroutine
    wrong: Task[..., str] = add  # type: ignore[assignment]
    del typed, wrong
    ref = await add.defer(2, 3)
    assert_type(ref, TaskRef[int])
    assert_type(await ref.result(timeout=10), int)
    assert_type(await (await add.defer(a=1, b=2)).result(), int)
    bound: BoundTask[..., int] = add.options(delay=5, key="k")
    del bound
    assert_type(await add.options(priority=1).defer(1, 2), TaskRef[int])
    assert_type(add.defer_sync(1, 2).result_sync(5), int)
    assert_type(await send_welcome.defer("ada@example.com", name="Ada"), TaskRef[None])
    assert_type(await (await bare.defer()).result(), str)
    assert_type(await (await plain.defer(3)).result(), list[int])
    await add.defer("2", 3)  # type: ignore[arg-type]
    await add.defer(1)  # type: ignore[call-arg]
    await send_welcome.defer("a", nme="Ada")  # type: ignore[call-arg]
    await add.options(delay=1).defer(1, "x")  # type: ignore[arg-type]
    text: str = await ref.result()  # type: ignore[assignment]
    del text


def test_registered_tasks_keep_their_names_and_settings() -> None:
    assert add.name == "tests.test_tasks_typing.add" and add.results
    assert (send_welcome.tube, send_welcome.priority, send_welcome.ttr) == ("emails", 512, 60)
    assert (send_welcome.max_attempts, send_welcome.time_limit) == (5, 30)
    assert bare.tube == "default" and not bare.results
    assert not plain.is_async and add.is_async
    assert sorted(tasks.tubes) == ["default", "emails", "math", "threads"]

"""Typed tasks on beanstalkd: defer a function call, run it in a worker, await its result.

::

    from datetime import timedelta
    from beanstalkt.tasks import Tasks

    tasks = Tasks(host="localhost", port=11300)

    @tasks.task(tube="math", results=True)
    async def add(a: int, b: int) -> int:
        return a + b

    ref = await add.defer(2, 3)          # type-checked against add's parameters
    assert await ref.result(timeout=10) == 5

    @tasks.periodic(every=timedelta(minutes=5))
    async def sweep() -> None: ...

    worker = tasks.worker(concurrency=8)   # or: python -m beanstalkt.worker --tasks myapp:tasks

The job body is a documented, versioned JSON envelope
(:mod:`beanstalkt.tasks.envelope`); results come back through a reply tube per
producer (:mod:`beanstalkt.tasks.results`); periodic tasks keep their schedule
in beanstalkd (:mod:`beanstalkt.tasks.periodic`); middleware hooks around
defer and run (:mod:`beanstalkt.tasks.middleware`). See the Tasks guide.
"""

from .envelope import VERSION, Envelope, EnvelopeError
from .middleware import Middleware, TaskMessage
from .periodic import Cron, Interval
from .registry import BoundTask, CallOptions, JobLocation, Task, TaskRef, Tasks, UnknownTask
from .results import ResultTimeout, TaskFailed
from .runner import TasksWorker

__all__ = [
    "VERSION",
    "BoundTask",
    "CallOptions",
    "Cron",
    "Envelope",
    "EnvelopeError",
    "Interval",
    "JobLocation",
    "Middleware",
    "ResultTimeout",
    "Task",
    "TaskFailed",
    "TaskMessage",
    "TaskRef",
    "Tasks",
    "TasksWorker",
    "UnknownTask",
]

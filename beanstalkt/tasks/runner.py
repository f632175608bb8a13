"""Running tasks: the Worker handler that dispatches envelopes, and the tasks' Worker.

:class:`TasksWorker` is a :class:`beanstalkt.worker.Worker` whose handlers
are one :class:`TaskRunner` method per task tube and per tick tube, each tube
with a :class:`~beanstalkt.worker.TubePolicy` made from its tasks' options
(``max_attempts``, ``time_limit``, ``backoff_*``; the tasks of one tube agree
on them, see :meth:`~beanstalkt.tasks.Tasks.task`). For each job the runner

* decodes the envelope: a body that is not one, or that names a task this
  registry does not know, is buried at once (:class:`~beanstalkt.worker.Bury`:
  the engine logs it and puts its failure record in ``<tube>.failures``;
  never retried, another attempt would fail the same way);
* runs the task function (``async def`` in the worker's task, a plain function
  in a thread), between the middleware's ``before_run`` and ``after_run`` /
  ``on_run_error`` hooks; the engine enforces the tube's ``time_limit``;
* on success, sends the result to the envelope's ``reply_to``; the job is
  deleted;
* on failure (an exception, or the time limit), lets the engine retry it
  with the tube's backoff, unless this was the task's ``max_attempts``-th
  attempt: then it sends the failure as the result and the engine buries
  the job, with its failure record (the error and its traceback).

Failure records are the engine's alone: read them with
:func:`beanstalkt.worker.failures.read_failures` or ``beanstalkt failures TUBE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional, Union

from ..cli.common import import_object
from ..client import Client
from ..errors import BeanstalkException, NotFound
from ..pool import Pool
from ..protocol import Seconds
from ..worker import Bury, JobAction, ReservedJob, TimeLimitExceeded, TubePolicy, Worker
from ..worker.failures import describe
from .envelope import (
    Envelope,
    EnvelopeError,
    decode,
    encode_failure,
    encode_result,
    error_name,
    preview,
)
from .middleware import TaskMessage, run_after, run_before
from .periodic import Periodic, ensure_tick, home_server, schedule_next, tick_time

if TYPE_CHECKING:
    from .registry import Task, Tasks

logger = logging.getLogger("beanstalkt.tasks")

# Replies are put most urgent, and with a short TTR: a listener that dies
# holding one hands it back quickly.
_REPLY_PRIORITY = 0
_REPLY_TTR = 30
#: Seconds a worker waits for somebody to watch a reply tube before it drops the
#: reply (a producer's listener reconnecting after a beanstalkd restart comes
#: back within a second or two).
REPLY_GRACE = 5.0
_REPLY_LOOK_AGAIN = 0.25
#: How often each worker makes sure every schedule still has its tick.
RESEED_INTERVAL = 60.0


async def call_task(task: Task[Any, Any], envelope: Envelope) -> Any:
    """Call the task function with the envelope's arguments (a plain function in a thread).

    No time limit here: the engine cuts the handler short (see the module).
    """
    if task.is_async:
        return await task.function(*envelope.args, **envelope.kwargs)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        None, functools.partial(task.function, *envelope.args, **envelope.kwargs)
    )


def tube_policy(handler: Any, task: Task[Any, Any]) -> TubePolicy:
    """The :class:`~beanstalkt.worker.TubePolicy` of ``task``'s tube (None: the worker's)."""
    return TubePolicy(handler, **task.policy_settings)


def _forget_cancellation() -> None:
    """The engine's cancellation (a time limit) was handled here: forget it (3.11+ counts them)."""
    task = asyncio.current_task()
    uncancel = getattr(task, "uncancel", None)
    if uncancel is not None:
        uncancel()


class TaskRunner:
    """The handlers of a :class:`TasksWorker`: tasks and ticks."""

    def __init__(self, tasks: Tasks) -> None:
        self.tasks = tasks
        # Replies go to the server that handed out the job.
        self.connections: Union[Client[bytes], Pool, None] = None
        # The worker running these handlers: it tells a time-limit cut from a stop.
        self.worker: Optional[TasksWorker] = None

    def client_for(self, job: ReservedJob) -> Optional[Client[Any]]:
        """The connected client of the server ``job`` came from."""
        connections = self.connections
        if isinstance(connections, Pool):
            return None if job.server is None else connections.client(job.server)
        return connections

    def time_limit_error(self, job: ReservedJob) -> Optional[TimeLimitExceeded]:
        """The error of a run the engine cut short for its time limit (``None``: another cut)."""
        worker = self.worker
        if worker is None or worker.cut_reason(job) != "time_limit":
            return None
        limit = worker.policy(job.tube).time_limit
        return TimeLimitExceeded(f"the task ran past its time limit of {limit:g}s")

    async def run_job(self, job: ReservedJob) -> None:
        """The handler of every task tube."""
        envelope = await self._envelope(job)
        try:
            task = self.tasks.get(envelope.name)
        except LookupError:
            reason = f"unknown task {envelope.name!r}"
            await self._reply_failure(job, envelope, "UnknownTask", reason)
            raise Bury(reason) from None
        try:
            task.signature.bind(*envelope.args, **envelope.kwargs)
        except TypeError as exc:
            # Another attempt would fail the same way: no retries.
            reason = f"arguments do not match task {task.name}: {exc}"
            await self._reply_failure(job, envelope, "TypeError", reason)
            raise Bury(reason) from None
        message = TaskMessage(envelope, job.tube, job=job)
        try:
            await run_before(self.tasks.middleware, "before_run", message)
            result = await call_task(task, envelope)
        except JobAction:
            raise  # the task decided its job's fate (Release, Bury, Delete)
        except asyncio.CancelledError:
            cut = self.time_limit_error(job)
            if cut is None:
                raise  # a stop (the job is handed back), not a failure
            # A failure like any other; re-raised, the engine sees its cut.
            await self._failed(job, task, message, cut, cancelled=True)
            raise
        except Exception as error:
            await self._failed(job, task, message, error)
            raise
        # The task itself has run: a cut from now on (its time limit passing while
        # the reply waits for a listener, or a stop) must not run it again. The
        # hooks run in this task (a middleware's context variables stay its own).
        try:
            await run_after(self.tasks.middleware, "after_run", message, result)
        except asyncio.CancelledError:
            if not self._forgive_cut(job):
                raise
            logger.warning("task %s %s: its after_run hooks were cut short", task.name, envelope.id)
        if task.results and envelope.reply_to is not None:
            try:
                body = encode_result(envelope.id, result)
            except EnvelopeError as exc:
                logger.error("task %s %s: %s", task.name, envelope.id, exc)
                body = encode_failure(envelope.id, "EnvelopeError", str(exc))
            sending = asyncio.ensure_future(self._reply(job, envelope.reply_to, body))
            try:
                await asyncio.shield(sending)
            except asyncio.CancelledError:
                if not self._forgive_cut(job):
                    sending.cancel()
                    raise
                await sending  # bounded: the reply's grace, then one put

    def _forgive_cut(self, job: ReservedJob) -> bool:
        """After the task has run: True (and the cancellation forgotten) for the engine's cut.

        The handler then returns, and the job is deleted. False for any other
        cancellation (the worker's own tasks being cancelled).
        """
        if self.worker is None or self.worker.cut_reason(job) is None:
            return False
        _forget_cancellation()
        return True

    async def _envelope(self, job: ReservedJob) -> Envelope:
        try:
            return decode(job.body)
        except EnvelopeError as exc:
            raise Bury(f"not a task envelope: {exc} (body {preview(job.body, 60)!r})") from None

    async def _failed(
        self,
        job: ReservedJob,
        task: Task[Any, Any],
        message: TaskMessage,
        error: Exception,
        cancelled: bool = False,
    ) -> None:
        """A failed run: the last attempt replies the failure; the engine retries or buries.

        Returns for the caller to re-raise (the engine then retries with the
        tube's backoff, or buries at its ``max_attempts`` with its failure
        record), or raises :class:`Bury` when the task's count (the envelope's
        ``attempts`` plus the job's) is used up before the engine's.
        """
        try:
            await job.load_stats()
        except BeanstalkException:
            return  # reservation lost: the engine counts it, the server hands it out again
        attempt = message.envelope.attempts + job.attempt
        message.attempt = attempt
        await run_after(self.tasks.middleware, "on_run_error", message, error)
        if attempt < task.max_attempts:
            return
        envelope = message.envelope
        await self._reply_failure(job, envelope, error_name(error), str(error))
        if job.attempt >= task.max_attempts:
            return  # the engine buries it too, recording this very error
        if cancelled:
            _forget_cancellation()  # settled by the Bury, not as a cut
        raise Bury(
            f"failed on attempt {attempt} of {task.max_attempts}: {describe(error)}"
        ) from error

    async def _reply_failure(
        self, job: ReservedJob, envelope: Envelope, error_type: str, text: str
    ) -> None:
        if envelope.reply_to is not None:
            await self._reply(job, envelope.reply_to, encode_failure(envelope.id, error_type, text))

    async def _reply(self, job: ReservedJob, tube: str, body: bytes) -> None:
        """Put a reply, unless nobody watches ``tube`` for ``REPLY_GRACE`` seconds.

        Nobody watching means the producer is gone, or its listener is
        reconnecting (a beanstalkd restart cut every connection): it gets the
        grace period to come back before the reply is dropped.
        """
        client = self.client_for(job)
        if client is None:
            return
        deadline = time.monotonic() + REPLY_GRACE
        while True:
            try:
                watching = (await client.stats_tube(tube))["current-watching"]
            except NotFound:
                watching = 0
            if watching:
                await client.put(body, priority=_REPLY_PRIORITY, ttr=_REPLY_TTR, tube=tube)
                return
            if time.monotonic() >= deadline:
                logger.info("job %d: nobody listens on reply tube %s; no reply sent", job.id, tube)
                return
            await asyncio.sleep(_REPLY_LOOK_AGAIN)

    def tick_handler(self, periodic: Periodic) -> Any:
        """The handler of ``periodic``'s tick tube."""

        async def run_tick(job: ReservedJob) -> None:
            await self.run_tick(periodic, job)

        return run_tick

    async def run_tick(self, periodic: Periodic, job: ReservedJob) -> None:
        """Schedule the next tick (unless it exists), run the task, and return (delete)."""
        envelope = await self._envelope(job)
        due = tick_time(envelope)
        client = self.client_for(job)
        task = self.tasks.get(periodic.name)
        if due is None or client is None:
            reason = f"not a tick of {periodic.name}"
            if client is not None:
                # Buried, it would leave the chain without a tick: put the next
                # one as for a tick due now (unless the tube holds one).
                await schedule_next(client, periodic, time.time(), task.ttr)
            raise Bury(reason)
        await schedule_next(client, periodic, due, task.ttr)
        message = TaskMessage(envelope, job.tube, job=job)
        try:
            await run_before(self.tasks.middleware, "before_run", message)
            result = await call_task(task, envelope)
        except asyncio.CancelledError:
            cut = self.time_limit_error(job)
            if cut is None:
                raise  # a stop: the tick is handed back, for another worker
            # A tick is never retried, nor buried: the next one comes on schedule.
            _forget_cancellation()
            logger.error("periodic %s: the tick of %s failed: %s", periodic.name, due, cut)
            await run_after(self.tasks.middleware, "on_run_error", message, cut)
            return
        except Exception as error:
            # A tick is never retried: the next one comes on schedule.
            logger.exception("periodic %s: the tick of %s failed", periodic.name, due)
            await run_after(self.tasks.middleware, "on_run_error", message, error)
            return
        await run_after(self.tasks.middleware, "after_run", message, result)


class TasksWorker(Worker):
    """A :class:`~beanstalkt.worker.Worker` of a :class:`~beanstalkt.tasks.Tasks`.

    Made by :meth:`Tasks.worker`: it watches every task tube and every tick
    tube; :meth:`start` also makes sure each periodic task has its tick (and
    does again every ``reseed_interval`` seconds).
    """

    def __init__(
        self,
        tasks: Tasks,
        *,
        concurrency: int = 1,
        reseed_interval: float = RESEED_INTERVAL,
        **options: Any,
    ) -> None:
        if not tasks.registry:
            raise ValueError("these tasks have no task to run")
        self.tasks = tasks
        self.runner = TaskRunner(tasks)
        self.runner.worker = self
        handlers: dict[str, Any] = {}
        for task in tasks.registry.values():
            # The tasks of one tube agree on these (Tasks.task refuses otherwise).
            handlers[task.tube] = tube_policy(self.runner.run_job, task)
        for periodic in tasks.schedules.values():
            task = tasks.get(periodic.name)
            # Ticks are never retried (run_tick returns): only the time limit is the task's.
            handlers[periodic.tube] = TubePolicy(
                self.runner.tick_handler(periodic), time_limit=task.time_limit
            )
        location = {
            key: options[key] for key in ("servers", "host", "port") if options.get(key) is not None
        }
        if not location:
            location = tasks.worker_location()
            if "client_factory" not in options:
                options.update(location)
        elif "servers" not in location:
            default = tasks.worker_location()
            location.setdefault("host", default.get("host", "localhost"))
            location.setdefault("port", default.get("port", 11300))
        # Where replies and ticks are put: the servers worked on.
        self.location = location
        options.setdefault("ssl", tasks.ssl)
        self._reply_ssl = options["ssl"]
        super().__init__(handlers, concurrency=concurrency, **options)
        self.reseed_interval = reseed_interval
        self._reseeding: Optional[asyncio.Task[None]] = None

    def cut_reason(self, job: ReservedJob) -> Optional[str]:
        """Why the engine cuts ``job``'s handler short: ``"time_limit"``, ``"stop"`` or None."""
        for runner in self._runners:
            for slot in runner.slots:
                if slot.job is job:
                    return slot.cut
        return None

    async def start(self) -> None:
        """Connect, make sure every schedule has its tick, and start working."""
        location = self.location
        self.runner.connections = (
            Pool(location["servers"], ssl=self._reply_ssl)
            if "servers" in location
            else Client(location["host"], location["port"], ssl=self._reply_ssl)
        )
        try:
            await self.runner.connections.connect()
            await super().start()
            if self.tasks.schedules:
                await self.ensure_ticks()
                self._reseeding = asyncio.ensure_future(self._reseed())
        except BaseException:
            await self.runner.connections.close()
            raise

    async def ensure_ticks(self) -> None:
        """Put the first tick of every schedule that has none (see the periodic module)."""
        connections = self.runner.connections
        for periodic in self.tasks.schedules.values():
            ttr = self.tasks.get(periodic.name).ttr
            if isinstance(connections, Pool):
                address = home_server(periodic.name, list(self.location["servers"]))
                client: Optional[Client[Any]] = connections.client(address)
            else:
                client = connections
            if client is None or client.closed():
                continue
            try:
                await ensure_tick(client, periodic, ttr)
            except (BeanstalkException, RuntimeError) as exc:
                logger.warning("periodic %s: tick not checked: %s", periodic.name, exc)

    async def _reseed(self) -> None:
        while True:
            await asyncio.sleep(self.reseed_interval)
            await self.ensure_ticks()

    async def stop(self, grace_period: Optional[Seconds] = None) -> None:
        """Stop as :meth:`Worker.stop`, then close the connections replies were put on."""
        if self._reseeding is not None:
            self._reseeding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reseeding
            self._reseeding = None
        await super().stop(grace_period)
        if self.runner.connections is not None:
            await self.runner.connections.close()


def load_tasks(spec: str) -> Tasks:
    """Import ``"package.module:attribute"`` naming a :class:`~beanstalkt.tasks.Tasks`."""
    from .registry import Tasks

    target = import_object(spec, "--tasks", "module:attribute")
    if not isinstance(target, Tasks):
        raise TypeError(f"{spec} is not a beanstalkt.tasks.Tasks but {type(target).__name__}")
    return target


def tasks_worker(spec: str) -> Callable[..., Worker]:
    """What the worker command line makes its Worker with, given ``--tasks module:attr``.

    Called as ``Worker`` is, ``(handlers, **options)``: the handlers (none)
    and each tube's policy are the tasks' own (``max_attempts`` always;
    ``time_limit`` and ``backoff_*`` where a task gives them, else the command
    line's ``--time-limit``, ``--backoff-*``); every other option (servers,
    concurrency, grace period...) is the command line's.
    """
    tasks = load_tasks(spec)

    def make(handlers: Any, **options: Any) -> Worker:
        if handlers:
            raise ValueError("--tasks runs the tasks' own handlers: give no handler or tube")
        return tasks.worker(**options)

    return make

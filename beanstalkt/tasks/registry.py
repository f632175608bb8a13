"""``Tasks``: the registry of typed tasks, and deferring them."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import functools
import inspect
import threading
import uuid
import weakref
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Generic,
    Optional,
    ParamSpec,
    Protocol,
    TypeVar,
    Union,
    cast,
    overload,
)

from ..address import format_address, parse_address
from ..client import Client
from ..connection import SSLOption
from ..pool import Key, Pool, PoolJobRef
from ..protocol import (
    DEFAULT_PRIORITY,
    DEFAULT_TTR,
    MAX_UINT32,
    Seconds,
    check_integer,
    check_tube_name,
)
from .envelope import Envelope, EnvelopeError, check_arguments
from .middleware import Middleware, TaskMessage, run_after, run_before
from .periodic import Cron, Interval, Periodic, Schedule, tick_tube
from .policy import POLICY_OPTIONS, check_policy_options, check_shared_tube
from .results import ResultListener, ResultTimeout, TaskFailed, drain, new_reply_tube

if TYPE_CHECKING:
    from ..worker import Worker
    from .runner import TasksWorker

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

#: Where ``defer`` puts a task: a job id (one server) or a :class:`~beanstalkt.PoolJobRef`.
JobLocation = Union[int, PoolJobRef]

# How long defer_sync and result_sync wait for the background loop to answer,
# beyond the call's own bounds (a connect, a put).
_SYNC_MARGIN = 30.0


class UnknownTask(LookupError):
    """An envelope names a task this registry does not have."""


@dataclass(frozen=True)
class CallOptions:
    """Per-call options of :meth:`Task.options` (``None``: the task's own)."""

    delay: Optional[int] = None
    priority: Optional[int] = None
    ttr: Optional[int] = None
    key: Optional[Key] = None
    headers: Mapping[str, str] = field(default_factory=dict)
    id: Optional[str] = None


class TaskRef(Generic[R_co]):
    """A deferred task: its ``id``, where its job is, and (``results=True``) its result.

    :ivar id: the task id (the envelope's ``id``).
    :ivar name: the task's name.
    :ivar tube: the tube its job was put in.
    :ivar job: the job id, or with ``Tasks(servers=...)`` a
        :class:`~beanstalkt.PoolJobRef` (server and id).
    """

    def __init__(
        self,
        tasks: Tasks,
        id: str,
        name: str,
        tube: str,
        job: JobLocation,
        future: Optional[asyncio.Future[Any]] = None,
        listener: Optional[ResultListener] = None,
    ) -> None:
        self.id = id
        self.name = name
        self.tube = tube
        self.job = job
        self._tasks = tasks
        self._future = future
        self._listener = listener
        if listener is not None:
            # A ref dropped unawaited frees its slot: its reply will be deleted.
            weakref.finalize(self, listener.forget, id)

    def __repr__(self) -> str:
        return f"<TaskRef {self.name} id={self.id} job={self.job}>"

    async def result(self, timeout: Optional[float] = None) -> R_co:
        """The task's return value, once the worker has sent it.

        Raises :class:`TaskFailed` (its ``type`` and ``message``) when the
        task failed on its last attempt, and :class:`ResultTimeout` after
        ``timeout`` seconds without a reply (``None``: wait as long as it
        takes). After a timeout the result is given up: a reply that comes
        later is deleted. Only tasks made with ``results=True`` have results.
        """
        future = self._future
        if future is None:
            raise RuntimeError(f"task {self.name} was not made with results=True")
        try:
            reply = await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            if self._listener is not None:
                self._listener.forget(self.id)
            raise ResultTimeout(f"no result for task {self.id} within {timeout}s") from None
        except asyncio.CancelledError:
            if future.cancelled():
                raise ResultTimeout(f"task {self.id}: the result was given up") from None
            raise
        if not reply.ok:
            raise TaskFailed(self.id, reply.error_type, reply.error_message)
        return cast(R_co, reply.value)

    def result_sync(self, timeout: float) -> R_co:
        """:meth:`result` from plain (thread) code, for a ref made by ``defer_sync``."""
        return self._tasks._run_sync(self.result(timeout), timeout)


class Task(Generic[P, R]):
    """A task function registered in a :class:`Tasks`; made by ``@tasks.task(...)``.

    Calling it calls the function itself, here and now. :meth:`defer` puts
    it in beanstalkd for a worker, with the function's parameters (checked
    by type checkers) and returns a :class:`TaskRef` typed with its return
    type.
    """

    def __init__(
        self,
        tasks: Tasks,
        function: Callable[..., Any],
        *,
        name: str,
        tube: str,
        priority: int,
        ttr: int,
        delay: int,
        max_attempts: int,
        time_limit: Optional[float],
        results: bool,
        backoff_base: Optional[float] = None,
        backoff_max: Optional[float] = None,
        backoff_jitter: Optional[float] = None,
    ) -> None:
        self.tasks = tasks
        self.function = function
        self.name = name
        self.tube = tube
        self.priority = priority
        self.ttr = ttr
        self.delay = delay
        self.max_attempts = max_attempts
        #: Seconds a run may take (``None``: the worker's ``time_limit``; ``math.inf``: none).
        self.time_limit = time_limit
        #: Retry delays (``None``: the worker's), see :class:`~beanstalkt.worker.TubePolicy`.
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.backoff_jitter = backoff_jitter
        self.results = results
        #: Whether the function is ``async def`` (else it runs in a thread).
        self.is_async = inspect.iscoroutinefunction(function)
        #: The function's signature: a worker checks an envelope's arguments against it.
        self.signature = inspect.signature(function)
        functools.update_wrapper(self, function)

    def __repr__(self) -> str:
        return f"<Task {self.name} tube={self.tube}>"

    @property
    def policy_settings(self) -> dict[str, Any]:
        """The task's options that make its tube's :class:`~beanstalkt.worker.TubePolicy`.

        ``max_attempts``, ``time_limit``, ``backoff_base``, ``backoff_max``,
        ``backoff_jitter`` (``None``: the worker's), in seconds.
        """
        return {option: getattr(self, option) for option in POLICY_OPTIONS}

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Call the function directly (a coroutine, for an ``async def`` task)."""
        return self.function(*args, **kwargs)

    async def defer(self, *args: P.args, **kwargs: P.kwargs) -> TaskRef[R]:
        """Put the task in its tube, to be run by a worker; its :class:`TaskRef`.

        The arguments must be plain JSON (``EnvelopeError`` otherwise, before
        anything is sent). Connects on first use.
        """
        return await self.tasks._defer(self, args, kwargs, _NO_OPTIONS)

    def defer_sync(self, *args: P.args, **kwargs: P.kwargs) -> TaskRef[R]:
        """:meth:`defer` from plain code (a Django or Flask view); blocks until the put is done.

        The put runs on the :class:`Tasks`' background event loop (one thread
        for the process, started on first use): no event loop per call.
        """
        return self.tasks._run_sync(self.tasks._defer(self, args, kwargs, _NO_OPTIONS), None)

    def options(
        self,
        *,
        delay: Optional[int] = None,
        priority: Optional[int] = None,
        ttr: Optional[int] = None,
        key: Optional[Key] = None,
        headers: Optional[Mapping[str, str]] = None,
        id: Optional[str] = None,
    ) -> BoundTask[P, R]:
        """This task with per-call options: ``task.options(delay=60).defer(...)``.

        ``delay``, ``priority`` and ``ttr`` are beanstalkd's; ``key`` routes
        over a pool (the same key, the same server, while it lives); ``headers``
        are added to the envelope; ``id`` sets the task id.
        """
        for option, value in (("delay", delay), ("priority", priority), ("ttr", ttr)):
            if value is not None:
                check_integer(option, value, 0, MAX_UINT32)
        return BoundTask(self, CallOptions(delay, priority, ttr, key, dict(headers or {}), id))


class BoundTask(Generic[P, R]):
    """A :class:`Task` with per-call options (from :meth:`Task.options`)."""

    def __init__(self, task: Task[P, R], options: CallOptions) -> None:
        self.task = task
        self.call_options = options

    async def defer(self, *args: P.args, **kwargs: P.kwargs) -> TaskRef[R]:
        """As :meth:`Task.defer`, with these options."""
        return await self.task.tasks._defer(self.task, args, kwargs, self.call_options)

    def defer_sync(self, *args: P.args, **kwargs: P.kwargs) -> TaskRef[R]:
        """As :meth:`Task.defer_sync`, with these options."""
        tasks = self.task.tasks
        return tasks._run_sync(tasks._defer(self.task, args, kwargs, self.call_options), None)


_NO_OPTIONS = CallOptions()


@dataclass
class _Side:
    """What a :class:`Tasks` opened on one event loop."""

    producer: Union[Client[bytes], Pool, None] = None
    connecting: Optional[asyncio.Future[Union[Client[bytes], Pool]]] = None
    listener: Optional[ResultListener] = None


class _TaskDecorator(Protocol):
    @overload
    def __call__(self, function: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
    @overload
    def __call__(self, function: Callable[P, R], /) -> Task[P, R]: ...


class Tasks:
    """A registry of tasks on beanstalkd, and the producer that defers them.

    :param host: beanstalkd host (default: the :class:`~beanstalkt.Client`
        default), with ``port``.
    :param port: beanstalkd port.
    :param servers: several servers (``"host:port"``): tasks are put through
        a :class:`~beanstalkt.Pool` (``.options(key=...)`` routes), and the
        worker reserves from all of them.
    :param client: an existing :class:`~beanstalkt.Client` (bytes bodies) to
        put through; the worker and the result listener connect to its
        address.
    :param tube: the tube of tasks that name none (default ``"default"``).
    :param middleware: :class:`~beanstalkt.tasks.Middleware` instances, in order.
    :param reply_tube: this producer's reply tube (default: a new random
        ``tasks.reply.<hex>`` per process); see the results module.
    :param periodic_prefix: the tick tubes' prefix (``tasks.periodic.``).
    :param ssl: ``True`` or an :class:`ssl.SSLContext`, for beanstalkd behind a
        TLS terminator (the producer, the result listener, the worker).
    :param sync_timeout: seconds ``defer_sync`` may take (connecting
        included) before it raises :class:`ResultTimeout`.

    A ``Tasks`` belongs to the event loop it first connects on (``defer_sync``
    uses a background loop of its own). It is an async context manager;
    :meth:`close` closes its connections.
    """

    def __init__(
        self,
        *,
        host: Optional[str] = None,
        port: Optional[int] = None,
        servers: Optional[Sequence[str]] = None,
        client: Optional[Client[bytes]] = None,
        tube: str = "default",
        middleware: Iterable[Middleware] = (),
        reply_tube: Optional[str] = None,
        periodic_prefix: str = "tasks.periodic.",
        ssl: SSLOption = None,
        sync_timeout: float = 30.0,
    ) -> None:
        given = sum(x is not None for x in (servers, client)) + (
            host is not None or port is not None
        )
        if given > 1:
            raise TypeError("give one of servers=, host=/port= or client=")
        if isinstance(servers, str):
            raise TypeError("servers must be a list of addresses, not one string")
        self._servers: Optional[list[str]] = None
        if servers is not None:
            self._servers = [format_address(*parse_address(text)) for text in servers]
            if not self._servers:
                raise ValueError("servers must name at least one server")
        self._host = host
        self._port = port
        self._given_client = client
        check_tube_name(tube)
        self.tube = tube
        self.middleware: list[Middleware] = list(middleware)
        if reply_tube is not None:
            check_tube_name(reply_tube)
        self.reply_tube = reply_tube or new_reply_tube()
        self.periodic_prefix = periodic_prefix
        #: TLS for every connection these tasks open (``True`` or an ``ssl.SSLContext``).
        self.ssl = ssl
        if not 0 < sync_timeout < float("inf"):
            raise ValueError("sync_timeout must be a positive number of seconds")
        #: Seconds ``defer_sync`` waits for its put (it then raises ``TimeoutError``).
        self.sync_timeout = sync_timeout
        #: Every registered task by name.
        self.registry: dict[str, Task[Any, Any]] = {}
        #: Every periodic schedule by task name.
        self.schedules: dict[str, Periodic] = {}
        # What this registry opened, per event loop: the caller's, and the
        # background loop of defer_sync (a client belongs to one loop).
        self._sides: dict[asyncio.AbstractEventLoop, _Side] = {}
        self._sync_loop: Optional[asyncio.AbstractEventLoop] = None
        self._sync_thread: Optional[threading.Thread] = None
        self._sync_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<beanstalkt.tasks.Tasks {len(self.registry)} tasks>"

    # ------------------------------------------------------------------
    # Registering.

    @overload
    def task(self, function: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
    @overload
    def task(
        self,
        /,
        *,
        name: Optional[str] = None,
        tube: Optional[str] = None,
        priority: int = DEFAULT_PRIORITY,
        ttr: int = DEFAULT_TTR,
        delay: int = 0,
        max_attempts: int = 5,
        time_limit: Optional[Seconds] = None,
        backoff_base: Optional[Seconds] = None,
        backoff_max: Optional[Seconds] = None,
        backoff_jitter: Optional[float] = None,
        results: bool = False,
    ) -> _TaskDecorator: ...
    def task(
        self,
        function: Optional[Callable[..., Any]] = None,
        /,
        *,
        name: Optional[str] = None,
        tube: Optional[str] = None,
        priority: int = DEFAULT_PRIORITY,
        ttr: int = DEFAULT_TTR,
        delay: int = 0,
        max_attempts: int = 5,
        time_limit: Optional[Seconds] = None,
        backoff_base: Optional[Seconds] = None,
        backoff_max: Optional[Seconds] = None,
        backoff_jitter: Optional[float] = None,
        results: bool = False,
    ) -> Any:
        """Register a task: ``@tasks.task`` or ``@tasks.task(tube="emails", ...)``.

        :param name: the name the envelope carries (default
            ``module.qualname`` of the function, e.g. ``myapp.tasks.send_welcome``;
            renaming or moving the function renames the task: jobs already
            queued under the old name are then buried as unknown).
        :param tube: the beanstalkd tube, verbatim (default: the registry's).
        :param priority: beanstalkd priority, 0 most urgent.
        :param ttr: beanstalkd time to run (the worker touches long runs).
        :param delay: default seconds before a deferred job is ready.
        :param max_attempts: the failure of this attempt buries the job (the
            engine's failure record) and is sent as the result.
        :param time_limit: seconds (or a ``timedelta``) a run may take; the
            engine cuts a longer one short, a failure
            (:class:`~beanstalkt.worker.TimeLimitExceeded`). ``None``: the
            worker's (600 s by default); ``math.inf``: no limit.
        :param backoff_base: with ``backoff_max`` (seconds) and ``backoff_jitter``:
            the retry delays, as the worker's (``None``: the worker's).
        :param results: the worker sends the return value (or the last
            failure) to the producer's reply tube; see :meth:`TaskRef.result`.
        :raises ValueError: an option out of range, or policy options other than
            another task's of this ``tube`` (see :mod:`beanstalkt.tasks.policy`).
        """

        def register(target: Callable[..., Any]) -> Task[Any, Any]:
            return self._register(
                target,
                name=name,
                tube=tube,
                priority=priority,
                ttr=ttr,
                delay=delay,
                max_attempts=max_attempts,
                time_limit=time_limit,
                backoff_base=backoff_base,
                backoff_max=backoff_max,
                backoff_jitter=backoff_jitter,
                results=results,
            )

        if function is not None:
            return register(function)
        return register

    def _register(self, function: Callable[..., Any], **settings: Any) -> Task[Any, Any]:
        if not callable(function):
            raise TypeError(f"a task must be a function, not {function!r}")
        name = settings.pop("name") or f"{function.__module__}.{function.__qualname__}"
        tube = settings.pop("tube") or self.tube
        check_tube_name(tube)
        check_integer("priority", settings["priority"], 0, MAX_UINT32)
        check_integer("ttr", settings["ttr"], 0, MAX_UINT32)
        check_integer("delay", settings["delay"], 0, MAX_UINT32)
        check_integer("max_attempts", settings["max_attempts"], 1, MAX_UINT32)
        check_policy_options(settings)
        if name in self.registry:
            raise ValueError(f"a task named {name!r} is already registered")
        check_shared_tube(self.registry.values(), name, tube, settings)
        task: Task[Any, Any] = Task(self, function, name=name, tube=tube, **settings)
        self.registry[name] = task
        return task

    def periodic(
        self,
        *,
        every: Optional[datetime.timedelta] = None,
        cron: Optional[str] = None,
        tz: Optional[datetime.tzinfo] = None,
        name: Optional[str] = None,
        tube: Optional[str] = None,
        time_limit: Optional[Seconds] = None,
        ttr: int = DEFAULT_TTR,
    ) -> _TaskDecorator:
        """Register a task run once per tick by one of the workers: ``every=`` or ``cron=``.

        ``every``: a :class:`datetime.timedelta` of at least a second (ticks
        aligned on its multiples since the epoch); ``cron``: a five-field
        expression, in UTC unless ``tz`` is given (needs the ``cron``
        extra). The function takes no arguments. It is also a task (deferred
        by hand in ``tube``, with the task defaults: ``max_attempts=5``, the
        worker's backoff). The tick tube is ``periodic_prefix + name``; a
        tick is never retried (see :mod:`beanstalkt.tasks.periodic`).
        ``time_limit`` is as for :meth:`task`, for ticks and runs by hand.
        """
        if (every is None) == (cron is None):
            raise TypeError("give exactly one of every= or cron=")
        schedule: Schedule = Interval(every) if every is not None else Cron(cast(str, cron), tz)

        def register(function: Callable[..., Any]) -> Task[Any, Any]:
            task = self._register(
                function,
                name=name,
                tube=tube,
                priority=DEFAULT_PRIORITY,
                ttr=ttr,
                delay=0,
                max_attempts=5,
                time_limit=time_limit,
                backoff_base=None,
                backoff_max=None,
                backoff_jitter=None,
                results=False,
            )
            self.schedules[task.name] = Periodic(
                task.name, schedule, tick_tube(self.periodic_prefix + task.name)
            )
            return task

        return cast(_TaskDecorator, register)

    def get(self, name: str) -> Task[Any, Any]:
        """The task registered as ``name``; :class:`UnknownTask` if none."""
        try:
            return self.registry[name]
        except KeyError:
            raise UnknownTask(f"no task named {name!r}") from None

    @property
    def tubes(self) -> list[str]:
        """Every tube a worker of these tasks watches: the tasks' and the tick tubes."""
        tubes = dict.fromkeys(task.tube for task in self.registry.values())
        tubes.update(dict.fromkeys(periodic.tube for periodic in self.schedules.values()))
        return list(tubes)

    # ------------------------------------------------------------------
    # Where the servers are.

    def addresses(self) -> list[str]:
        """The servers' addresses, ``host:port`` (or ``unix:/path``)."""
        if self._servers is not None:
            return list(self._servers)
        if self._given_client is not None:
            return [self._given_client.address]
        client: Client[bytes] = Client() if self._host is None else Client(self._host)
        host, port = parse_address(client.address)
        if self._port is not None:
            port = self._port
        return [format_address(host, port)]

    def worker_location(self) -> dict[str, Any]:
        """``Worker`` arguments naming these servers (``host``/``port`` or ``servers``)."""
        addresses = self.addresses()
        if len(addresses) == 1 and self._servers is None:
            host, port = parse_address(addresses[0])
            return {"host": host, "port": port}
        return {"servers": addresses}

    def _new_producer(self) -> Union[Client[bytes], Pool]:
        if self._servers is not None:
            return Pool(self._servers, ssl=self.ssl)
        if self._given_client is not None:
            return self._given_client
        location = self.worker_location()
        return Client(location["host"], location["port"], ssl=self.ssl)

    def _side(self) -> _Side:
        loop = asyncio.get_running_loop()
        side = self._sides.get(loop)
        if side is None:
            side = self._sides[loop] = _Side()
        return side

    async def producer(self) -> Union[Client[bytes], Pool]:
        """The connected client (or pool) tasks are put through; connects on first use."""
        side = self._side()
        if side.producer is not None:
            return side.producer
        if side.connecting is None:
            side.connecting = asyncio.ensure_future(self._connect(side))
        connecting = side.connecting
        try:
            return await asyncio.shield(connecting)
        except BaseException:
            if connecting.done() and side.connecting is connecting:
                side.connecting = None  # the next defer tries again
            raise

    async def _connect(self, side: _Side) -> Union[Client[bytes], Pool]:
        producer = self._new_producer()
        await producer.connect()
        side.producer = producer
        return producer

    async def _results(self) -> ResultListener:
        side = self._side()
        if side.listener is None:
            side.listener = ResultListener(self.reply_tube, self._listener_worker)
        await side.listener.start()
        return side.listener

    def _listener_worker(self, handlers: dict[str, Any]) -> Worker:
        from ..worker import Worker

        return Worker(
            handlers, **self.worker_location(), ssl=self.ssl, concurrency=2, reserve_timeout=1
        )

    # ------------------------------------------------------------------
    # Deferring.

    async def _defer(
        self,
        task: Task[Any, Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: CallOptions,
    ) -> TaskRef[Any]:
        check_arguments(task.name, args, kwargs)
        envelope = Envelope(
            name=task.name,
            args=list(args),
            kwargs=dict(kwargs),
            id=options.id or uuid.uuid4().hex,
            headers=dict(options.headers),
        )
        message = TaskMessage(
            envelope,
            task.tube,
            priority=task.priority if options.priority is None else options.priority,
            delay=task.delay if options.delay is None else options.delay,
            ttr=task.ttr if options.ttr is None else options.ttr,
        )
        try:
            await run_before(self.middleware, "before_defer", message)
            if task.results:
                envelope.reply_to = self.reply_tube
            body = envelope.encode()
            producer = await self.producer()
            future = listener = None
            if task.results:
                # Listening before the put: a quick result must find the tube watched.
                listener = await self._results()
                future = listener.expect(envelope.id)
            try:
                job = await self._put(producer, message, body, options.key)
            except BaseException:
                if listener is not None:
                    listener.forget(envelope.id)
                raise
        except Exception as error:
            await run_after(self.middleware, "on_defer_error", message, error)
            raise
        ref: TaskRef[Any] = TaskRef(self, envelope.id, task.name, task.tube, job, future, listener)
        await run_after(self.middleware, "after_defer", message, job)
        return ref

    @staticmethod
    async def _put(
        producer: Union[Client[bytes], Pool], message: TaskMessage, body: bytes, key: Optional[Key]
    ) -> JobLocation:
        if isinstance(producer, Pool):
            return await producer.put(
                body, message.priority, message.delay, message.ttr, tube=message.tube, key=key
            )
        # One server: a key has nowhere else to route to, and is accepted so that
        # the same code runs against one server and against a pool.
        return await producer.put(
            body, message.priority, message.delay, message.ttr, tube=message.tube
        )

    # ------------------------------------------------------------------
    # Plain (thread) callers.

    def _background_loop(self) -> asyncio.AbstractEventLoop:
        with self._sync_lock:
            if self._sync_loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                thread = threading.Thread(target=run, name="beanstalkt-tasks", daemon=True)
                thread.start()
                ready.wait()
                self._sync_loop, self._sync_thread = loop, thread
            return self._sync_loop

    def _run_sync(self, coroutine: Coroutine[Any, Any, R], timeout: Optional[float]) -> R:
        """Run ``coroutine`` on the background loop; wait ``timeout`` (+ a margin) at most.

        ``timeout=None``: :attr:`sync_timeout` (a ``defer_sync``).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coroutine.close()
            raise RuntimeError("defer_sync/result_sync are for plain code: use await defer() here")
        loop = self._background_loop()
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        bound = self.sync_timeout if timeout is None else timeout + _SYNC_MARGIN
        try:
            return future.result(bound)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise ResultTimeout(f"no answer from beanstalkd within {bound}s") from None

    # ------------------------------------------------------------------
    # Life cycle.

    def worker(self, concurrency: int = 1, **options: Any) -> TasksWorker:
        """A :class:`~beanstalkt.worker.Worker` for every task's tube and every tick tube.

        ``options`` are the Worker's (``grace_period``, ``backoff_base``,
        ``time_limit``, ``slots_per_connection``, ``metrics``...). Each task
        tube gets a :class:`~beanstalkt.worker.TubePolicy` from its tasks'
        options: ``max_attempts`` is always the task's own, ``time_limit``
        and ``backoff_*`` the task's where it gives one, else these. ``await
        worker.start()`` also makes sure every periodic task has its tick.
        """
        from .runner import TasksWorker

        return TasksWorker(self, concurrency=concurrency, **options)

    async def close(self) -> None:
        """Close what this event loop opened: the producer, the result listener.

        The listener's reply tube is emptied first (replies nobody will
        read). What ``defer_sync`` opened is closed by :meth:`close_sync`.
        """
        side = self._sides.pop(asyncio.get_running_loop(), None)
        if side is None:
            return
        if side.connecting is not None and not side.connecting.done():
            side.connecting.cancel()
        producer, listener = side.producer, side.listener
        if listener is not None:
            if isinstance(producer, Pool):
                await listener.close()
                for client in producer.clients.values():
                    if not client.closed():
                        await drain(client, listener.tube)
            else:
                await listener.close(producer)
        if producer is not None and producer is not self._given_client:
            await producer.close()

    def close_sync(self) -> None:
        """Close what ``defer_sync`` opened, and stop its background loop."""
        with self._sync_lock:
            loop, self._sync_loop = self._sync_loop, None
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.close(), loop).result(_SYNC_MARGIN)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if self._sync_thread is not None:
                self._sync_thread.join(_SYNC_MARGIN)
                self._sync_thread = None

    async def __aenter__(self) -> Tasks:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        await self.close()


__all__ = [
    "BoundTask",
    "CallOptions",
    "EnvelopeError",
    "JobLocation",
    "ResultTimeout",
    "Task",
    "TaskFailed",
    "TaskRef",
    "Tasks",
    "UnknownTask",
]

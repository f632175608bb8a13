"""Middleware around defer and run: order, headers in the envelope, an OpenTelemetry propagator."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from opentelemetry import context, propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

import beanstalkt
from beanstalkt.tasks import Middleware, TaskFailed, TaskMessage, Tasks
from beanstalkt.testing import BeanstalkdServer

from .test_worker import HANG, REPOSITORY


class Recorder(Middleware):
    """Writes each hook call, with what it saw, to a shared list."""

    def __init__(self, name: str, events: list[tuple[str, ...]]) -> None:
        self.name = name
        self.events = events

    def before_defer(self, message: TaskMessage) -> None:
        message.headers[f"seen-by-{self.name}"] = "yes"
        self.events.append((self.name, "before_defer"))

    async def after_defer(self, message: TaskMessage, job: Any) -> None:  # async hooks too
        self.events.append((self.name, "after_defer"))

    def on_defer_error(self, message: TaskMessage, error: BaseException) -> None:
        self.events.append((self.name, "on_defer_error", type(error).__name__))

    def before_run(self, message: TaskMessage) -> None:
        self.events.append((self.name, "before_run", message.headers.get("seen-by-a", "")))

    def after_run(self, message: TaskMessage, result: Any) -> None:
        self.events.append((self.name, "after_run", repr(result)))

    def on_run_error(self, message: TaskMessage, error: BaseException) -> None:
        self.events.append((self.name, "on_run_error", str(error), str(message.attempt)))


async def test_hooks_run_in_order_and_headers_travel_in_the_envelope(
    beanstalkd: BeanstalkdServer,
) -> None:
    events: list[tuple[str, ...]] = []
    tasks = Tasks(
        host=beanstalkd.host,
        port=beanstalkd.port,
        middleware=[Recorder("a", events), Recorder("b", events)],
    )

    @tasks.task(tube="mw", results=True)
    async def echo(x: int) -> int:
        events.append(("task", "run"))
        return x

    @tasks.task(tube="mw.broken", results=True, max_attempts=2)
    async def broken() -> None:
        raise RuntimeError("nope")

    async with tasks, tasks.worker(backoff_base=0):
        ref = await echo.defer(5)
        assert await ref.result(timeout=HANG) == 5
        assert events == [
            ("a", "before_defer"),
            ("b", "before_defer"),
            ("b", "after_defer"),
            ("a", "after_defer"),
            ("a", "before_run", "yes"),
            ("b", "before_run", "yes"),
            ("task", "run"),
            ("b", "after_run", "5"),
            ("a", "after_run", "5"),
        ]
        events.clear()
        with pytest.raises(TaskFailed):
            await (await broken.defer()).result(timeout=HANG)
        errors = [event for event in events if event[1] == "on_run_error"]
        assert errors == [
            ("b", "on_run_error", "nope", "1"),
            ("a", "on_run_error", "nope", "1"),
            ("b", "on_run_error", "nope", "2"),
            ("a", "on_run_error", "nope", "2"),
        ]


async def test_a_before_defer_hook_that_raises_sends_nothing(beanstalkd: BeanstalkdServer) -> None:
    events: list[tuple[str, ...]] = []

    class Refuse(Middleware):
        def before_defer(self, message: TaskMessage) -> None:
            raise PermissionError("not today")

    tasks = Tasks(
        host=beanstalkd.host, port=beanstalkd.port, middleware=[Recorder("a", events), Refuse()]
    )

    @tasks.task(tube="refused")
    async def anything() -> None: ...

    async with tasks, beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        with pytest.raises(PermissionError, match="not today"):
            await anything.defer()
        assert events == [("a", "before_defer"), ("a", "on_defer_error", "PermissionError")]
        with pytest.raises(beanstalkt.NotFound):
            await client.stats_tube("refused")  # no job was ever put there


class Tracing(Middleware):
    """An OpenTelemetry propagator: a producer span per defer, a consumer span per run.

    The trace context travels in the envelope's headers (W3C ``traceparent``).
    """

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    def before_defer(self, message: TaskMessage) -> None:
        span = self.tracer.start_span(f"defer {message.name}", kind=SpanKind.PRODUCER)
        message.state["span"] = span
        propagate.inject(message.headers, context=trace.set_span_in_context(span))

    def after_defer(self, message: TaskMessage, job: Any) -> None:
        message.state["span"].set_attribute("messaging.message.id", message.id)
        message.state["span"].end()

    def on_defer_error(self, message: TaskMessage, error: BaseException) -> None:
        span = message.state.get("span")
        if span is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR))
            span.end()

    def before_run(self, message: TaskMessage) -> None:
        parent = propagate.extract(message.headers)
        span = self.tracer.start_span(f"run {message.name}", context=parent, kind=SpanKind.CONSUMER)
        message.state["span"] = span
        message.state["token"] = context.attach(trace.set_span_in_context(span))

    def after_run(self, message: TaskMessage, result: Any) -> None:
        context.detach(message.state["token"])
        message.state["span"].end()

    def on_run_error(self, message: TaskMessage, error: BaseException) -> None:
        if "span" not in message.state:
            return
        context.detach(message.state["token"])
        message.state["span"].record_exception(error)
        message.state["span"].set_status(Status(StatusCode.ERROR))
        message.state["span"].end()


async def test_opentelemetry_trace_context_crosses_the_queue(beanstalkd: BeanstalkdServer) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("beanstalkt.tasks")
    tasks = Tasks(host=beanstalkd.host, port=beanstalkd.port, middleware=[Tracing(tracer)])

    @tasks.task(tube="traced", results=True)
    async def charge(amount: int) -> int:
        # Spans the task makes are children of the run span.
        with tracer.start_as_current_span("charge the card"):
            return amount

    async with tasks, tasks.worker():
        with tracer.start_as_current_span("POST /checkout") as request:
            ref = await charge.defer(42)
        assert await ref.result(timeout=HANG) == 42
    spans = {span.name: span for span in exporter.get_finished_spans()}
    name = charge.name
    assert set(spans) == {"POST /checkout", f"defer {name}", f"run {name}", "charge the card"}
    trace_id = request.get_span_context().trace_id
    assert {span.context.trace_id for span in spans.values()} == {trace_id}
    defer, run = spans[f"defer {name}"], spans[f"run {name}"]
    assert defer.parent is not None and defer.parent.span_id == request.get_span_context().span_id
    assert run.parent is not None and run.parent.span_id == defer.context.span_id
    inner = spans["charge the card"]
    assert inner.parent is not None and inner.parent.span_id == run.context.span_id
    assert (defer.kind, run.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)
    assert defer.attributes is not None and defer.attributes["messaging.message.id"] == ref.id


def test_the_worker_command_line_refuses_what_is_not_a_tasks_object() -> None:
    for arguments, says in [
        (["--tasks", "os:path"], "os:path is not a beanstalkt.tasks.Tasks"),
        (["--tasks", "nocolon"], "--tasks must look like module:attribute"),
        ([], "give a handler (module:function) or --tasks module:attr"),
        (["--tasks", "a:b", "--tube", "x"], "give no handler or --tube"),
    ]:
        finished = subprocess.run(
            [sys.executable, "-m", "beanstalkt.worker", *arguments],
            capture_output=True,
            text=True,
            cwd=REPOSITORY,
            timeout=HANG,
        )
        assert finished.returncode == 2
        assert says in finished.stderr

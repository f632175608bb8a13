"""Worker metrics: every recording method, read back from the registry and over HTTP.

(The worker calls these methods once it is wired to them; here they are
driven directly.)
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import tornado.httpclient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from beanstalkt.ops.metrics import WorkerMetrics

PREFIX = "beanstalkt_worker"


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    sample = registry.get_sample_value(f"{PREFIX}_{name}", labels)
    assert sample is not None, f"no sample {name} {labels}"
    return sample


def test_a_run_with_successes_failures_retries_and_a_burial(registry: CollectorRegistry) -> None:
    metrics = WorkerMetrics(registry)
    for seconds in (0.02, 0.3, 7.0):
        metrics.job_done("emails", seconds)
    metrics.job_failed("emails", 0.5)
    metrics.job_retried("emails")
    metrics.job_failed("emails", 40.0)
    metrics.job_buried("emails")
    metrics.job_released("reports")
    metrics.queue_latency("emails", 0)
    metrics.queue_latency("emails", 3)
    metrics.queue_latency("reports", 120)
    metrics.touched("reports")
    metrics.touched("reports")
    metrics.reserve_timed_out("emails")
    metrics.reconnected()

    assert value(registry, "jobs_done_total", tube="emails") == 3
    assert value(registry, "jobs_failed_total", tube="emails") == 2
    assert value(registry, "jobs_retried_total", tube="emails") == 1
    assert value(registry, "jobs_buried_total", tube="emails") == 1
    assert value(registry, "jobs_released_total", tube="reports") == 1
    assert value(registry, "touches_total", tube="reports") == 2
    assert value(registry, "reserve_timeouts_total", tube="emails") == 1
    assert value(registry, "reconnects_total") == 1
    # Series exist only for the tubes that saw the event.
    assert registry.get_sample_value(f"{PREFIX}_jobs_done_total", {"tube": "reports"}) is None

    done = {"tube": "emails", "outcome": "done"}
    assert value(registry, "handler_duration_seconds_count", **done) == 3
    assert value(registry, "handler_duration_seconds_sum", **done) == pytest.approx(7.32)
    assert value(registry, "handler_duration_seconds_bucket", le="0.05", **done) == 1
    assert value(registry, "handler_duration_seconds_bucket", le="0.5", **done) == 2
    assert value(registry, "handler_duration_seconds_bucket", le="10.0", **done) == 3
    failed = {"tube": "emails", "outcome": "failed"}
    assert value(registry, "handler_duration_seconds_count", **failed) == 2
    assert value(registry, "handler_duration_seconds_bucket", le="30.0", **failed) == 1
    assert value(registry, "handler_duration_seconds_bucket", le="60.0", **failed) == 2

    assert value(registry, "queue_latency_seconds_bucket", tube="emails", le="0.0") == 1
    assert value(registry, "queue_latency_seconds_bucket", tube="emails", le="5.0") == 2
    assert value(registry, "queue_latency_seconds_sum", tube="reports") == 120
    assert value(registry, "queue_latency_seconds_bucket", tube="reports", le="60.0") == 0


def test_two_workers_need_two_registries(registry: CollectorRegistry) -> None:
    WorkerMetrics(registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        WorkerMetrics(registry)
    other = WorkerMetrics(registry, namespace="second_worker")
    other.reconnected()
    assert registry.get_sample_value("second_worker_reconnects_total") == 1


async def test_serve_exposes_the_registry(registry: CollectorRegistry) -> None:
    metrics = WorkerMetrics(registry)
    metrics.job_done("emails", 0.1)
    port = metrics.serve(0, "127.0.0.1")
    try:
        with pytest.raises(RuntimeError, match="already serving"):
            metrics.serve(0, "127.0.0.1")
        response = await tornado.httpclient.AsyncHTTPClient().fetch(
            f"http://127.0.0.1:{port}/metrics"
        )
    finally:
        metrics.stop_serving()
    families = {f.name: f for f in text_string_to_metric_families(response.body.decode())}
    assert families[f"{PREFIX}_jobs_done"].type == "counter"
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for s in families[f"{PREFIX}_jobs_done"].samples}  # fmt: skip
    assert samples[(f"{PREFIX}_jobs_done_total", (("tube", "emails"),))] == 1


def test_importing_the_worker_does_not_load_prometheus_client() -> None:
    code = (
        "import sys, beanstalkt, beanstalkt.worker\n"
        "assert 'prometheus_client' not in sys.modules\n"
        "assert 'beanstalkt.ops.metrics' not in sys.modules\n"
        "assert 'beanstalkt.metrics' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

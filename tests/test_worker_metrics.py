"""The Worker's Prometheus metrics, read back from the registry after a real run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import beanstalkt
from beanstalkt.ops.metrics import WorkerMetrics
from beanstalkt.testing import BeanstalkdServer, free_port
from beanstalkt.worker import Release, ReservedJob, Worker

from .test_worker import eventually


async def test_a_run_with_successes_failures_a_retry_a_release_and_a_burial(
    beanstalkd: BeanstalkdServer,
) -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    released_once: set[int] = set()

    async def handler(job: ReservedJob) -> object:
        if job.body == b"fail":
            raise ValueError("always")
        if job.body == b"release" and job.id not in released_once:
            released_once.add(job.id)
            return Release()
        return None

    worker = Worker(
        {"m": handler},
        host=beanstalkd.host,
        port=beanstalkd.port,
        max_attempts=2,
        backoff_base=0,
        metrics=metrics,
    )

    def value(name: str, **labels: str) -> float:
        sample = registry.get_sample_value(f"beanstalkt_worker_{name}", {"tube": "m", **labels})
        return sample or 0.0

    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
        for body in (b"ok", b"ok", b"fail", b"release"):
            await client.put(body, tube="m")
        await worker.start()
        try:
            await eventually(
                lambda: value("jobs_buried_total") == 1 and value("jobs_done_total") == 3,
                "three jobs done and one buried",
            )
        finally:
            await worker.stop()
    assert value("jobs_done_total") == 3  # two "ok", and "release" at its second run
    assert value("jobs_failed_total") == 2  # "fail" at attempts 1 and 2
    assert value("jobs_retried_total") == 1
    assert value("jobs_buried_total") == 1
    assert value("jobs_released_total") == 1
    assert value("handler_duration_seconds_count", outcome="done") == 3
    assert value("handler_duration_seconds_count", outcome="failed") == 2
    # One latency per reservation: 4 jobs, "fail" and "release" twice each.
    await eventually(
        lambda: value("queue_latency_seconds_count") == 6, "the latency of every reservation"
    )
    assert worker.counters()["m"]["done"] == 3


HANDLER = textwrap.dedent(
    """
    async def handle(job):
        return None
    """
)


def test_the_worker_cli_serves_metrics_on_a_port(
    beanstalkd: BeanstalkdServer, tmp_path: Path
) -> None:
    (tmp_path / "metrics_jobs.py").write_text(HANDLER)
    port = free_port()

    async def put() -> None:
        async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
            await client.put(b"one", tube="work")

    asyncio.run(put())
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "beanstalkt.worker",
            "metrics_jobs:handle",
            "--tube",
            "work",
            "--metrics-port",
            str(port),
        ],
        # The server from the environment, as `beanstalkt` reads it too.
        env={
            **os.environ,
            "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.getcwd()}",
            "BEANSTALKD_HOST": beanstalkd.host,
            "BEANSTALKD_PORT": str(beanstalkd.port),
        },
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        done = 0.0
        while done < 1:
            assert time.monotonic() < deadline, "no metrics served"
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    text = r.read().decode()
            except OSError:
                time.sleep(0.1)
                continue
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == "beanstalkt_worker_jobs_done_total":
                        done = sample.value
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err


def test_the_worker_cli_refuses_a_bad_port_in_the_environment() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "beanstalkt.worker", "x:y"],
        env={**os.environ, "BEANSTALKD_PORT": "eleven"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert finished.returncode == 2
    assert "BEANSTALKD_PORT='eleven'" in finished.stderr

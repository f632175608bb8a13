"""The Prometheus exporter, scraped over HTTP and parsed with prometheus_client's own parser.

The servers are real beanstalkd processes with known contents; the numbers
the exporter shows are compared with what ``stats`` / ``stats-tube`` /
``stats-job`` say. Only the server that accepts and never answers is fake.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import tornado.httpclient
import tornado.httpserver
import tornado.netutil
from prometheus_client.parser import text_string_to_metric_families

import beanstalkt
from beanstalkt.ops import exporter, monitor
from beanstalkt.ops.exporter import Exporter, make_app
from beanstalkt.testing import BeanstalkdServer, free_port

from .doc_sources import DOCS, section_text
from .fake_server import FakeServer, MisbehavingStats

OPERATIONS_GUIDE = DOCS / "guides" / "operations.rst"
# A scrape that takes longer than this has hung: the guard, not a speed assertion.
HANG_GUARD = 30.0

Labels = frozenset[tuple[str, str]]


class Scrape:
    """One parsed ``/metrics`` page: sample values by name and labels, and the family types."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, Labels], float] = {}
        self.types: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                assert key not in self.samples, f"duplicate sample {key}"
                self.samples[key] = sample.value

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def labels_of(self, name: str, label: str, **fixed: str) -> set[str]:
        """The values ``label`` takes in samples of ``name`` that have the ``fixed`` labels."""
        found = set()
        for sample_name, labels in self.samples:
            label_map = dict(labels)
            if sample_name == name and all(label_map.get(k) == v for k, v in fixed.items()):
                found.add(label_map[label])
        return found


@contextlib.asynccontextmanager
async def serving(
    servers: list[str], **options: object
) -> AsyncIterator[Callable[[], Awaitable[Scrape]]]:
    """An exporter on a free loopback port; yields a function that scrapes it once."""
    instance = Exporter(servers, **options)  # type: ignore[arg-type]
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    http = tornado.httpserver.HTTPServer(make_app(instance))
    http.add_sockets(sockets)
    url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/metrics"
    client = tornado.httpclient.AsyncHTTPClient()

    async def scrape() -> Scrape:
        response = await asyncio.wait_for(client.fetch(url, request_timeout=0), HANG_GUARD)
        assert response.code == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        return Scrape(response.body.decode())

    try:
        yield scrape
    finally:
        http.stop()
        await instance.close()


def address(server: BeanstalkdServer) -> str:
    return f"{server.host}:{server.port}"


async def fill(server: BeanstalkdServer) -> None:
    """Known contents: 'emails' holds every job state, 'reports' is paused."""
    async with beanstalkt.Client(server.host, server.port, use="emails") as producer:
        for body in (b"one", b"two", b"three", b"four"):
            await producer.put(body)
        await producer.put(b"urgent", priority=5)
        await producer.put(b"later", delay=3600)
        await producer.use("reports")
        await producer.put(b"report")
        await producer.pause_tube("reports", 600)
    async with beanstalkt.Client(server.host, server.port, watch="emails") as worker:
        urgent = await worker.reserve(timeout=0)
        assert urgent.body == b"urgent"
        await worker.bury(urgent.id)
        second = await worker.reserve(timeout=0)
        await worker.delete(second.id)


async def test_metrics_equal_the_server_stats(beanstalkd: BeanstalkdServer) -> None:
    await fill(beanstalkd)
    server = address(beanstalkd)
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, watch="emails") as holder:
        reserved = await holder.reserve(timeout=0)  # one job stays reserved during the scrape
        async with serving([server]) as scrape:
            metrics = await scrape()
            # Read on the holder's connection while the exporter's are still
            # open, so that the connection counts are the scrape's.
            tubes = {
                name: await holder.stats_tube(name) for name in ("default", "emails", "reports")
            }
            stats = await holder.stats()
        assert reserved.body == b"two"

    assert metrics.value("beanstalkd_up", server=server) == 1
    assert metrics.value("beanstalkd_tubes_dropped", server=server) == 0
    assert metrics.labels_of("beanstalkd_tube_current_jobs", "tube") == set(tubes)
    for name, tube in tubes.items():
        labels = {"server": server, "tube": name}
        for state in exporter.JOB_STATES:
            assert (
                metrics.value("beanstalkd_tube_current_jobs", state=state, **labels)
                == tube[f"current-jobs-{state}"]  # type: ignore[literal-required]
            )
        for spec in exporter.TUBE_METRICS:
            sample = spec.name + ("_total" if spec.counter else "")
            assert metrics.value(sample, **labels) == tube[spec.key], spec.key  # type: ignore[literal-required]
    emails = {"server": server, "tube": "emails"}
    # Spelled out once, so a mistake shared by the exporter and stats-tube cannot hide:
    assert [
        metrics.value("beanstalkd_tube_current_jobs", state=state, **emails)
        for state in ("ready", "reserved", "delayed", "buried")
    ] == [2, 1, 1, 1]
    assert metrics.value("beanstalkd_tube_jobs_total", **emails) == 6
    assert metrics.value("beanstalkd_tube_deletes_total", **emails) == 1
    reports = {"server": server, "tube": "reports"}
    assert metrics.value("beanstalkd_tube_pause_seconds", **reports) == 600
    assert 0 < metrics.value("beanstalkd_tube_pause_time_left_seconds", **reports) <= 600
    # The exporter's peek connection went back to 'default' after peeking:
    # 'emails' is used by nobody and watched only by the holder.
    assert metrics.value("beanstalkd_tube_current_using", **emails) == 0
    assert metrics.value("beanstalkd_tube_current_watching", **emails) == 1

    for state in exporter.JOB_STATES:
        assert (
            metrics.value("beanstalkd_current_jobs", server=server, state=state)
            == (
                stats[f"current-jobs-{state}"]  # type: ignore[literal-required]
            )
        )
    assert metrics.value("beanstalkd_jobs_total", server=server) == stats["total-jobs"] == 7
    assert metrics.value("beanstalkd_commands_total", server=server, command="put") == 7
    assert metrics.value("beanstalkd_commands_total", server=server, command="bury") == 1
    assert metrics.value("beanstalkd_current_tubes", server=server) == stats["current-tubes"]
    assert metrics.value("beanstalkd_max_job_size_bytes", server=server) == stats["max-job-size"]
    assert metrics.value("beanstalkd_uptime_seconds", server=server) <= stats["uptime"]
    info = metrics.labels_of("beanstalkd_info", "version", server=server)
    assert info == {stats["version"]}
    assert metrics.types["beanstalkd_jobs"] == "counter"
    assert metrics.types["beanstalkd_current_jobs"] == "gauge"


async def test_oldest_ready_age_is_the_head_job_age(beanstalkd: BeanstalkdServer) -> None:
    server = address(beanstalkd)
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="old") as producer:
        old_id = await producer.put(b"waiting since the start")
        await producer.use("fresh")
        await producer.put(b"not urgent", priority=100)
        await asyncio.sleep(1.1)  # ages are whole seconds: let the first jobs reach 1
        urgent_id = await producer.put(b"urgent, so first in line", priority=1)
        await producer.use("empty")
        empty_id = await producer.put(b"gone")
        await producer.delete(empty_id)
        old_before = (await producer.stats_job(old_id))["age"]
        urgent_before = (await producer.stats_job(urgent_id))["age"]
        async with serving([server]) as scrape:
            metrics = await scrape()
        old_after = (await producer.stats_job(old_id))["age"]
        urgent_after = (await producer.stats_job(urgent_id))["age"]

    def age(tube: str) -> float:
        return metrics.value("beanstalkd_tube_oldest_ready_age_seconds", server=server, tube=tube)

    assert 1 <= old_before <= age("old") <= old_after
    # The head of 'fresh' is the urgent job, put last: its age, not the older job's.
    assert urgent_before <= age("fresh") <= urgent_after
    assert age("fresh") < old_before
    assert age("empty") == 0


async def test_dead_server_is_up_0_and_the_scrape_succeeds(beanstalkd: BeanstalkdServer) -> None:
    live, dead = address(beanstalkd), f"127.0.0.1:{free_port()}"
    async with serving([live, dead], timeout=10) as scrape:
        metrics = await scrape()
        assert metrics.value("beanstalkd_up", server=live) == 1
        assert metrics.value("beanstalkd_up", server=dead) == 0
        # Nothing else is invented for the dead server.
        assert metrics.labels_of("beanstalkd_current_jobs", "server") == {live}
        again = await scrape()  # the failed connect is tried again, and fails again
        assert again.value("beanstalkd_up", server=dead) == 0


async def test_stalled_server_does_not_hang_the_scrape(beanstalkd: BeanstalkdServer) -> None:
    async def never_answer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int
    ) -> None:
        await reader.read()  # accept, read everything, say nothing

    async with FakeServer(never_answer) as silent:
        live, stalled = address(beanstalkd), f"127.0.0.1:{silent.port}"
        async with serving([live, stalled], timeout=0.5) as scrape:
            for _ in range(3):  # each scrape is bounded, also with commands left owed
                metrics = await scrape()
                assert metrics.value("beanstalkd_up", server=live) == 1
                assert metrics.value("beanstalkd_up", server=stalled) == 0
                assert metrics.value("beanstalkd_scrape_duration_seconds", server=stalled) > 0
            # The silent connection is dropped (the probe went unanswered) and
            # tried again: it never holds up a scrape, and no peek connection is
            # opened to a server that never answered.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + HANG_GUARD
            while silent.connections < 2:
                assert loop.time() < deadline, "the silent server was never tried again"
                await asyncio.sleep(0.05)


async def test_one_server_written_two_ways_is_refused() -> None:
    with pytest.raises(ValueError, match="listed twice"):
        Exporter(["localhost", "localhost:11300"])


async def test_a_frozen_server_is_up_0_within_the_timeout_and_up_again_after(
    beanstalkd: BeanstalkdServer,
) -> None:
    server = address(beanstalkd)
    assert beanstalkd.process is not None
    async with serving([server], timeout=1.0) as scrape:
        assert (await scrape()).value("beanstalkd_up", server=server) == 1
        os.kill(beanstalkd.process.pid, signal.SIGSTOP)
        try:
            for _ in range(3):  # each scrape ends, bounded by the timeout
                assert (await scrape()).value("beanstalkd_up", server=server) == 0
        finally:
            os.kill(beanstalkd.process.pid, signal.SIGCONT)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HANG_GUARD
        while (await scrape()).value("beanstalkd_up", server=server) == 0:
            assert loop.time() < deadline, "the exporter never saw the server again"
            await asyncio.sleep(0.1)


async def test_tube_cap_and_allow_list(beanstalkd: BeanstalkdServer) -> None:
    server = address(beanstalkd)
    names = ["jobs-a", "jobs-b", "jobs-c", "jobs-d", "mail"]
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as producer:
        for name in names:
            await producer.use(name)
            await producer.put(name.encode())
        async with serving([server], max_tubes=2) as scrape:
            capped = await scrape()
        async with serving([server], tubes=["jobs-*", "default"], max_tubes=3) as scrape:
            selected = await scrape()
        async with serving([server], tubes=["mail", "nonexistent"]) as scrape:
            exact = await scrape()
        async with serving([server], max_tubes=0) as scrape:
            none = await scrape()

    tubes = "beanstalkd_tube_current_jobs"
    # All six tubes (with 'default'), sorted by name: the first two are kept.
    assert capped.labels_of(tubes, "tube") == {"default", "jobs-a"}
    assert capped.labels_of("beanstalkd_tube_jobs_total", "tube") == {"default", "jobs-a"}
    assert capped.value("beanstalkd_tubes_dropped", server=server) == 4
    # Server totals still cover every tube.
    assert capped.value("beanstalkd_current_jobs", server=server, state="ready") == 5
    assert selected.labels_of(tubes, "tube") == {"default", "jobs-a", "jobs-b"}
    assert selected.value("beanstalkd_tubes_dropped", server=server) == 2  # jobs-c, jobs-d
    assert exact.labels_of(tubes, "tube") == {"mail"}
    assert exact.value("beanstalkd_tubes_dropped", server=server) == 0
    assert none.labels_of(tubes, "tube") == set()
    assert none.value("beanstalkd_tubes_dropped", server=server) == 6


async def test_concurrent_scrapes_agree(beanstalkd: BeanstalkdServer) -> None:
    server = address(beanstalkd)
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as producer:
        for index in range(8):
            await producer.use(f"tube-{index}")
            for _ in range(index + 1):
                await producer.put(b"x")
    async with serving([server]) as scrape:
        results = await asyncio.gather(*(scrape() for _ in range(20)))
    for metrics in results:
        for index in range(8):
            ready = metrics.value(
                "beanstalkd_tube_current_jobs", server=server, tube=f"tube-{index}", state="ready"
            )
            assert ready == index + 1
            assert (
                metrics.value(
                    "beanstalkd_tube_oldest_ready_age_seconds", server=server, tube=f"tube-{index}"
                )
                >= 0
            )


async def test_server_restart_goes_down_then_up(beanstalkd: BeanstalkdServer) -> None:
    server = address(beanstalkd)
    async with serving([server], timeout=2) as scrape:
        assert (await scrape()).value("beanstalkd_up", server=server) == 1
        beanstalkd.kill()
        assert (await scrape()).value("beanstalkd_up", server=server) == 0
        beanstalkd.start()
        # The clients reconnect by themselves (every second): wait for it.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HANG_GUARD
        while (await scrape()).value("beanstalkd_up", server=server) == 0:
            assert loop.time() < deadline, "the exporter never reconnected"
            await asyncio.sleep(0.2)
        metrics = await scrape()
        assert metrics.value("beanstalkd_tube_current_jobs", server=server, tube="default",
                             state="ready") == 0  # fmt: skip


def test_the_operations_guide_documents_every_metric(beanstalkd: BeanstalkdServer) -> None:
    async def names() -> set[str]:
        async with serving([address(beanstalkd)]) as scrape:
            return set((await scrape()).types)

    exported = asyncio.run(names())
    section = section_text(OPERATIONS_GUIDE, "Prometheus exporter")
    documented = {  # the first cell of each row of the metrics table
        name.removesuffix("_total")
        for name in re.findall(r"^   \* - ``(beanstalkd_[a-z_]+)``$", section, re.M)
    }
    assert exported == documented


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-tubes", "-1"], "--max-tubes: expected a whole number"),
        (["--timeout", "0"], "--timeout: expected a positive number"),
        (["--listen", "localhost"], "--listen: --listen 'localhost': give a port"),
        (["--server", "host:99999"], "the port must be a number from 1 to 65535"),
        (["--tubes", "ok,bad name"], "--tubes:"),
        (["--tubes", "ok,,more"], "a tube pattern must not be empty"),
    ],
)
def test_bad_arguments_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exporter.main(argv) == 2
    assert message in capsys.readouterr().err


def test_python_m_exporter_serves_until_sigterm(beanstalkd: BeanstalkdServer) -> None:
    for command in (["beanstalkt.exporter"], ["beanstalkt.cmd", "exporter"]):
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", *command, "--listen", f"127.0.0.1:{port}",
             "--server", address(beanstalkd), "--timeout", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            text = _fetch_when_listening(f"http://127.0.0.1:{port}/metrics", process)
        finally:
            process.send_signal(signal.SIGTERM)
            _, errors = process.communicate(timeout=HANG_GUARD)
        assert process.returncode == 0, errors
        assert Scrape(text).value("beanstalkd_up", server=address(beanstalkd)) == 1
        assert f"serving metrics on http://127.0.0.1:{port}/metrics" in errors


def _fetch_when_listening(url: str, process: subprocess.Popen[str]) -> str:
    """GET ``url`` once the process listens (it may still be starting)."""
    for _attempt in range(300):
        assert process.poll() is None, process.communicate()
        try:
            with urllib.request.urlopen(url, timeout=HANG_GUARD) as response:
                return str(response.read().decode())
        except ConnectionRefusedError:
            pass
        except urllib.error.URLError as exc:
            if not isinstance(exc.reason, ConnectionRefusedError):
                raise
        time.sleep(0.05)
    raise AssertionError(f"nothing listened on {url}")


def test_plain_import_does_not_load_prometheus_client() -> None:
    code = (
        "import sys, beanstalkt, beanstalkt.cmd, beanstalkt.monitor, beanstalkt.top\n"
        "assert 'prometheus_client' not in sys.modules, 'prometheus_client was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=_environment())


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("BEANSTALKD_")}


@pytest.mark.parametrize(
    ("command", "prefix"),
    [
        (["-m", "beanstalkt.exporter"], "beanstalkt exporter:"),
        (["-m", "beanstalkt.exporter", "-h"], "beanstalkt exporter:"),
        (["-m", "beanstalkt.ops.exporter", "-h"], "beanstalkt exporter:"),
        (["-m", "beanstalkt.cmd", "exporter", "-h"], "beanstalkt:"),
    ],
)
def test_without_the_metrics_extra_the_exporter_says_so_in_one_line(
    tmp_path: Path, command: list[str], prefix: str
) -> None:
    """Every way to start the exporter, without prometheus_client: one line, no traceback."""
    # A prometheus_client that cannot be imported, ahead of the installed one.
    (tmp_path / "prometheus_client").mkdir()
    (tmp_path / "prometheus_client" / "__init__.py").write_text(
        "raise ImportError('No module named prometheus_client')\n"
    )
    environment = {**_environment(), "PYTHONPATH": str(tmp_path)}
    finished = subprocess.run(
        [sys.executable, *command], capture_output=True, text=True, env=environment, timeout=60
    )
    expected = f"{prefix} the exporter needs prometheus_client: pip install 'beanstalkt[metrics]'\n"
    assert (finished.returncode, finished.stdout, finished.stderr) == (1, "", expected)


# ----------------------------------------------------------------------
# A bad tube costs that tube, never the whole server (ops.monitor).


def test_refused_names_are_split_off_and_named() -> None:
    names = ["emails", "bad name!", "jobs-1", "ünïcode", "x" * 201, "-dash", "bad name!"]
    accepted, refused = monitor.split_refused(names)
    assert accepted == ["emails", "jobs-1"]
    assert refused == sorted({"'bad name!'", "'ünïcode'", "'-dash'", monitor.shown_name("x" * 201)})
    assert monitor.shown_name("x" * 201) == "'" + "x" * 56 + "..."  # cut to 60 characters
    # Only what the selection would take is named.
    assert monitor.split_refused(names, ["jobs-*", "bad*"]) == (accepted, ["'bad name!'"])


def test_a_tube_reply_error_names_the_bad_counters() -> None:
    assert monitor.tube_error({"name": "t", "current-jobs-ready": 3, "total-jobs": 5}) is None
    assert monitor.tube_error({"name": "t", "newer-key": "text"}) is None  # not a known counter
    assert monitor.tube_error({"current-jobs-ready": "lots"}) == (
        "current-jobs-ready is 'lots', not a whole number"
    )
    assert monitor.tube_error({"total-jobs": -1, "pause": True}) == (
        "total-jobs is -1, pause is True, not whole numbers"
    )
    assert monitor.tube_error(["a"]) == "the reply is a list, not a mapping"


async def test_a_snapshot_leaves_out_refused_names_and_marks_bad_counters() -> None:
    fake = MisbehavingStats("bad-counter", bad_name=True)
    async with FakeServer(fake.script) as server:
        watcher = monitor.ServerWatcher(f"127.0.0.1:{server.port}", timeout=HANG_GUARD)
        try:
            bad = await watcher.snapshot()
            assert bad.refused_tubes == ("'bad name!'",)
            assert [tube.name for tube in bad.tubes] == ["default"]
            (default,) = bad.tubes
            assert default.error == "current-jobs-ready is 'lots', not a whole number"
            assert default.stats["total-jobs"] == 3 and default.oldest_ready_age is None
            assert bad.bad_tubes == (default,)
            fake.mode, fake.bad_name = "sane", False  # same connections, sane answers
            sane = await watcher.snapshot()
            assert (sane.refused_tubes, sane.bad_tubes) == ((), ())
            assert [(t.name, t.error, t.oldest_ready_age) for t in sane.tubes] == [
                ("default", None, 0)
            ]
        finally:
            await watcher.close()


async def test_the_exporter_counts_refused_and_unreadable_tubes_and_logs_them_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = MisbehavingStats("bad-counter", bad_name=True)
    async with FakeServer(fake.script) as server:
        name = f"127.0.0.1:{server.port}"
        async with serving([name], timeout=HANG_GUARD) as scrape:
            with caplog.at_level(logging.WARNING, logger="beanstalkt.exporter"):
                first, second = await scrape(), await scrape()
            for metrics in (first, second):
                assert metrics.value("beanstalkd_up", server=name) == 1
                assert metrics.value("beanstalkd_tubes_refused", server=name) == 1
                assert metrics.value("beanstalkd_tubes_unreadable", server=name) == 1
                # The bad counter gives no sample (no invented 0; the fake sends no
                # other state), the sane one does.
                assert metrics.labels_of("beanstalkd_tube_current_jobs", "state") == set()
                assert metrics.value("beanstalkd_tube_jobs_total", server=name, tube="default") == 3
                assert metrics.labels_of("beanstalkd_tube_jobs_total", "tube") == {"default"}
            said = [r.getMessage() for r in caplog.records if r.name == "beanstalkt.exporter"]
            assert said == [
                f"{name}: tube name 'bad name!' refused by the client's rules, left out",
                f"{name}: bad reply for tube default: current-jobs-ready is 'lots', "
                "not a whole number",
            ]
            fake.mode, fake.bad_name = "sane", False
            sane = await scrape()
            assert sane.value("beanstalkd_tubes_refused", server=name) == 0
            assert sane.value("beanstalkd_tubes_unreadable", server=name) == 0
            assert (
                sane.value(
                    "beanstalkd_tube_current_jobs", server=name, tube="default", state="ready"
                )
                == 0
            )

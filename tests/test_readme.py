"""The README's Python example runs, as written, against a real beanstalkd.

The README is the front page: its Python blocks are the quick start, a
Tornado application and a Worker in one service, and the pool example of
"Scaling out", run against three servers. It runs in an interpreter of
its own whose ``Client`` defaults point at the test's throwaway server, on a
free port instead of 8888; the test sends it the request the README shows,
waits for the worker's line, stops it with SIGTERM as a service manager would,
and checks what the server saw. The examples that used to be here live in the
documentation now and run in ``tests/test_docs.py``.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import beanstalkt
from beanstalkt.testing import BeanstalkdServer, free_port

from .doc_sources import README, blocks, section_block

# Points Client's default host and port at the test server, nothing else.
PRELUDE = """\
import os, beanstalkt
_defaults = beanstalkt.Client.__init__.__defaults__
beanstalkt.Client.__init__.__defaults__ = (
    os.environ["TEST_BEANSTALKD_HOST"], int(os.environ["TEST_BEANSTALKD_PORT"])
) + _defaults[2:]
"""

# Only a guard against a hung example; the waits below end on events.
HANG_GUARD = 30.0


def test_every_python_example_of_the_readme_is_run_here() -> None:
    python = [block for block in blocks(README) if block.language == "python"]
    assert [block.code for block in python] == [
        section_block(README, "Quick start", "python"),
        section_block(README, "Scaling out", "python"),
    ]


def wait_until_listening(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while True:
        assert process.poll() is None, process.communicate()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, "the quick start never listened"
            time.sleep(0.02)


def test_quick_start_queues_a_signup_and_works_it(
    beanstalkd: BeanstalkdServer, tmp_path: Path
) -> None:
    code = section_block(README, "Quick start", "python")
    port = free_port()
    assert ".listen(8888)" in code
    process = subprocess.Popen(
        [sys.executable, "-c", PRELUDE + code.replace(".listen(8888)", f".listen({port})")],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
            "TEST_BEANSTALKD_HOST": beanstalkd.host,
            "TEST_BEANSTALKD_PORT": str(beanstalkd.port),
        },
    )
    # A hung example is killed, so that the reads below end.
    guard = threading.Timer(HANG_GUARD, process.kill)
    guard.start()
    try:
        wait_until_listening(port, process)
        # What the README's curl line sends.
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/signup", data=b"ada@example.com", method="POST"
        )
        with urllib.request.urlopen(request, timeout=HANG_GUARD) as response:
            assert response.read() == b'{"queued": 1}'
        assert process.stdout is not None
        line = process.stdout.readline()  # blocks until the worker prints
        assert line == "sending the welcome mail to ada@example.com\n"
        process.send_signal(signal.SIGTERM)
        rest, errors = process.communicate(timeout=HANG_GUARD)
    finally:
        guard.cancel()
        process.kill()
    assert (process.returncode, rest) == (0, ""), errors

    async def server_stats() -> beanstalkt.Stats:
        async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
            return await client.stats()

    stats = asyncio.run(server_stats())
    # One job put, worked and deleted: nothing left ready, reserved or buried
    # (the emails tube itself is gone: beanstalkd drops an empty, unwatched tube).
    assert (stats["total-jobs"], stats["cmd-put"], stats["cmd-delete"]) == (1, 1, 1)
    assert (stats["current-jobs-ready"], stats["current-jobs-reserved"]) == (0, 0)
    assert stats["current-jobs-buried"] == 0


def test_scaling_out_spreads_by_key_and_the_pooled_worker_drains_every_server() -> None:
    code = section_block(README, "Scaling out", "python")
    servers = [BeanstalkdServer().start() for _ in range(3)]
    try:
        finished = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=HANG_GUARD,
            env={
                "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
                "BEANSTALKD_SERVERS": ",".join(f"{s.host}:{s.port}" for s in servers),
            },
        )
        assert finished.returncode == 0, finished.stderr
        printed = sorted(finished.stdout.splitlines())
        assert printed == [f"resized photo-{n}.jpg" for n in range(4)]

        async def totals() -> list[tuple[int, int, int]]:
            counts = []
            for server in servers:
                async with beanstalkt.Client(server.host, server.port) as client:
                    stats = await client.stats()
                counts.append((stats["cmd-put"], stats["cmd-delete"], stats["total-jobs"]))
            return counts

        counts = asyncio.run(totals())
    finally:
        for server in servers:
            server.stop()
    # Every job deleted on the server it was put on (where the key sent it).
    assert all(put == deleted == jobs for put, deleted, jobs in counts)
    assert sum(put for put, _, _ in counts) == 4


def test_the_quick_start_saved_as_a_module_runs_from_the_shell_worker(
    beanstalkd: BeanstalkdServer, tmp_path: Path
) -> None:
    """As the README says: saved as myapp/jobs.py, its handler runs under the shell's worker.

    The worker imports ``myapp.jobs``; the ``__main__`` guard keeps that import
    from starting the web application and a worker of its own.
    """
    package = tmp_path / "myapp"
    package.mkdir()
    (package / "__init__.py").touch()
    (package / "jobs.py").write_text(section_block(README, "Quick start", "python"))
    process = subprocess.Popen(
        [sys.executable, "-m", "beanstalkt.worker", "myapp.jobs:send_email", "--tube", "emails"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
            "PYTHONPATH": str(tmp_path),
            "BEANSTALKD_SERVERS": f"{beanstalkd.host}:{beanstalkd.port}",
        },
    )
    guard = threading.Timer(HANG_GUARD, process.kill)
    guard.start()
    try:

        async def put() -> int:
            async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
                return await client.put(b"ada@example.com", tube="emails")

        asyncio.run(put())
        assert process.stdout is not None
        line = process.stdout.readline()  # blocks until the handler prints
        assert line == "sending the welcome mail to ada@example.com\n"
        process.send_signal(signal.SIGTERM)
        rest, errors = process.communicate(timeout=HANG_GUARD)
    finally:
        guard.cancel()
        process.kill()
    # One worker ran (the shell's), and stopped on the one SIGTERM: no web
    # application or second worker started by the import.
    assert (process.returncode, rest) == (0, ""), errors
    assert "8888" not in errors

"""The command line client, as users run it: ``python -m beanstalkt.cmd ARGS``.

Every test talks to a real beanstalkd (the ``beanstalkd`` fixture), found
through ``BEANSTALKD_HOST``/``BEANSTALKD_PORT``, so the command lines read
exactly like the documentation's. Most run ``cmd.main`` in this process with
their own environment and standard streams; the guide's session, signals, pipes and
a few others run the real command in a subprocess. What the server holds
afterwards is checked with the library itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.metadata
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

import beanstalkt
from beanstalkt.cli import main as cmd
from beanstalkt.testing import BeanstalkdServer, free_port

from .cli_runner import cli, environment
from .doc_sources import DOCS, section_block
from .fake_server import FakeServer

EXIT_FAILED, EXIT_USAGE, EXIT_CANNOT_CONNECT, EXIT_INTERRUPTED = 1, 2, 3, 130

COMMANDS = [
    "put",
    "reserve",
    "reserve-job",
    "delete",
    "peek",
    "peek-ready",
    "peek-delayed",
    "peek-buried",
    "kick",
    "kick-job",
    "stats-job",
    "stats-tube",
    "stats",
    "list",
    "list-tubes",
    "pause",
    "pause-tube",
]


@pytest.fixture(autouse=True)
def _no_stray_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """In-process runs must not see a developer's own BEANSTALKD_* settings."""
    for name in ("BEANSTALKD_HOST", "BEANSTALKD_PORT"):
        monkeypatch.delenv(name, raising=False)
    yield


def ok(server: Optional[BeanstalkdServer], *args: str, **kw: Any) -> str:
    """Run a command that must succeed; return its stdout."""
    result = cli(server, *args, **kw)
    assert (result.returncode, result.stderr) == (0, "")
    return result.stdout


def fails(server: Optional[BeanstalkdServer], status: int, *args: str, **kw: Any) -> str:
    """Run a command that must fail with ``status``; return its one-line stderr."""
    result = cli(server, *args, **kw)
    assert result.returncode == status, result.stderr
    assert result.stdout == ""
    if status != EXIT_USAGE:  # argparse prints the usage line first
        assert result.stderr.count("\n") == 1
    return result.stderr


def library(server: BeanstalkdServer, call: Callable[[beanstalkt.Client], Awaitable[Any]]) -> Any:
    """Ask the server something through the library, on a connection of its own."""

    async def run() -> Any:
        async with beanstalkt.Client(server.address, server.port) as client:
            return await call(client)

    return asyncio.run(run())


def wait_for_waiting_worker(server: BeanstalkdServer, worker: subprocess.Popen[str]) -> None:
    """Return once ``worker`` is blocked in ``reserve`` (asked of the server, not guessed)."""
    while library(server, lambda client: client.stats())["current-waiting"] != 1:
        assert worker.poll() is None, worker.communicate()


def popen(server: BeanstalkdServer, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "beanstalkt.cmd", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(server),
    )


# --------------------------------------------------------------------------
# The original README's examples, verbatim.


def test_seed_readme_put_then_reserve_delete(beanstalkd: BeanstalkdServer) -> None:
    assert ok(beanstalkd, "put", "A job to work on") == "1\n"
    assert ok(beanstalkd, "reserve", "delete") == '{\n  "body": "A job to work on",\n  "id": 1\n}\n'
    assert fails(beanstalkd, EXIT_FAILED, "peek", "1") == "beanstalkt: job 1 not found\n"


# The shell session of the command line guide (docs/guides/command-line.rst,
# "A session"), run line by line: "$ " lines through bash, stdout and stderr
# compared with the lines that follow. (tests/test_docs.py leaves it to this test.)


def guide_session() -> str:
    """The console session in the command line guide's "A session" section, as written."""
    return section_block(DOCS / "guides" / "command-line.rst", "A session", "console")


def test_guide_session(beanstalkd: BeanstalkdServer, tmp_path: Path) -> None:
    # `python` in the examples is this interpreter.
    # A wrapper, not a symlink: a symlinked venv interpreter would lose the venv.
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    env = environment(beanstalkd, PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    steps = guide_session().split("$ ")[1:]
    for step in steps:
        command, _, expected = step.partition("\n")
        finished = subprocess.run(
            ["bash", "-c", command],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=30,
        )
        assert finished.stdout.decode() == expected, command


# --------------------------------------------------------------------------
# put


def test_put_flags_short_and_long(beanstalkd: BeanstalkdServer) -> None:
    assert ok(beanstalkd, "put", "x", "-p", "5", "-u", "emails", "-d", "100", "-t", "30") == "1\n"
    assert ok(
        beanstalkd, "put", "y", "--priority", "6", "--use", "emails", "--delay", "0", "--ttr", "7"
    ) == ("2\n")
    first = library(beanstalkd, lambda client: client.stats_job(1))
    assert (first["tube"], first["state"], first["pri"], first["delay"], first["ttr"]) == (
        "emails",
        "delayed",
        5,
        100,
        30,
    )
    second = library(beanstalkd, lambda client: client.stats_job(2))
    assert (second["tube"], second["state"], second["pri"], second["ttr"]) == (
        "emails",
        "ready",
        6,
        7,
    )


def test_put_defaults(beanstalkd: BeanstalkdServer) -> None:
    ok(beanstalkd, "put", "x")
    stats = library(beanstalkd, lambda client: client.stats_job(1))
    assert (stats["tube"], stats["pri"], stats["delay"], stats["ttr"]) == (
        "default",
        beanstalkt.DEFAULT_PRIORITY,
        0,
        beanstalkt.DEFAULT_TTR,
    )


def test_put_body_from_stdin_multiline_and_binary(beanstalkd: BeanstalkdServer) -> None:
    text = "first line\r\nsecond line\n\nnon-ASCII: héllo ✓\n"
    binary = bytes(range(256)) + b"\r\n"
    assert ok(beanstalkd, "put", "-", stdin=text.encode("utf-8")) == "1\n"
    # End to end, as a user's shell runs it: raw bytes through a real pipe.
    assert ok(beanstalkd, "put", "-", "-u", "bin", stdin=binary, in_subprocess=True) == "2\n"
    assert ok(beanstalkd, "put", "-", stdin=b"") == "3\n"
    # Bodies arrive byte for byte.
    assert library(beanstalkd, lambda client: client.peek(1)).body == text.encode("utf-8")
    assert library(beanstalkd, lambda client: client.peek(2)).body == binary
    assert library(beanstalkd, lambda client: client.peek(3)).body == b""
    # And print back: text as text, binary as base64 with a flag.
    assert json.loads(ok(beanstalkd, "peek", "1")) == {"body": text, "id": 1}
    assert "héllo ✓" in ok(beanstalkd, "peek", "1")  # readable, not \\u-escaped
    printed = json.loads(ok(beanstalkd, "peek", "2"))
    assert printed == {
        "body": base64.b64encode(binary).decode("ascii"),
        "body_encoding": "base64",
        "id": 2,
    }
    assert base64.b64decode(printed["body"]) == binary
    assert json.loads(ok(beanstalkd, "peek", "3")) == {"body": "", "id": 3}


def test_put_body_from_argument_is_utf8_and_may_start_with_a_hyphen(
    beanstalkd: BeanstalkdServer,
) -> None:
    ok(beanstalkd, "put", "héllo ✓")
    ok(beanstalkd, "put", "--", "-not-an-option")
    assert library(beanstalkd, lambda client: client.peek(1)).body == "héllo ✓".encode()
    assert library(beanstalkd, lambda client: client.peek(2)).body == b"-not-an-option"


def test_put_refused_by_the_server() -> None:
    with BeanstalkdServer(max_job_size=10) as server:
        message = fails(server, EXIT_FAILED, "put", "x" * 11)
        assert message == (
            "beanstalkt: job too big: the body is 11 bytes, more than the server's max-job-size\n"
        )
        assert server.process is not None
        server.process.send_signal(signal.SIGUSR1)  # beanstalkd's drain mode
        while not library(server, lambda client: client.stats())["draining"]:
            pass
        message = fails(server, EXIT_FAILED, "put", "x")
        assert message == "beanstalkt: the server is draining: it accepts no new jobs\n"


def test_put_from_a_huge_stdin_reads_only_max_job_size_plus_one() -> None:
    with BeanstalkdServer(max_job_size=1024) as server:
        command = subprocess.Popen(
            [sys.executable, "-m", "beanstalkt.cmd", "put", "-"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=environment(server),
        )  # fmt: skip
        assert command.stdin is not None
        written = 0
        chunk = b"x" * (1 << 20)
        try:
            while written < 256 << 20:  # 256 MiB, unless the command stops reading first
                command.stdin.write(chunk)
                written += len(chunk)
            command.stdin.close()
        except BrokenPipeError:
            pass
        out, err = command.communicate(timeout=60)
        assert out == b""
        assert command.returncode == EXIT_FAILED
        assert err.decode() == (
            "beanstalkt: job too big: stdin holds more than the server's max-job-size of "
            "1,024 bytes (put - reads at most 1,025)\n"
        )
        assert written < 64 << 20  # it hung up long before the end
        assert library(server, lambda client: client.stats())["total-jobs"] == 0


def test_put_from_a_closed_stdin_says_so(beanstalkd: BeanstalkdServer) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "beanstalkt.cmd", "put", "-"],
        capture_output=True, text=True, env=environment(beanstalkd), timeout=60,
        preexec_fn=lambda: os.close(0),
    )  # fmt: skip
    assert result.returncode == EXIT_FAILED
    assert result.stderr == (
        "beanstalkt: put -: stdin is closed; pipe the body in or give it as an argument\n"
    )


# --------------------------------------------------------------------------
# reserve and reserve-job


def test_reserve_release_keeps_the_priority_unless_told(beanstalkd: BeanstalkdServer) -> None:
    ok(beanstalkd, "put", "job", "-p", "7")
    assert json.loads(ok(beanstalkd, "reserve", "release", "-t", "0")) == {"body": "job", "id": 1}
    stats = library(beanstalkd, lambda client: client.stats_job(1))
    assert (stats["state"], stats["pri"], stats["releases"]) == ("ready", 7, 1)

    ok(beanstalkd, "reserve", "release", "-t", "0", "-p", "3", "-d", "50")
    stats = library(beanstalkd, lambda client: client.stats_job(1))
    assert (stats["state"], stats["pri"], stats["delay"]) == ("delayed", 3, 50)


def test_reserve_bury_then_kick(beanstalkd: BeanstalkdServer) -> None:
    ok(beanstalkd, "put", "one", "-p", "4")
    ok(beanstalkd, "put", "two")
    ok(beanstalkd, "reserve", "bury", "--timeout", "0")
    ok(beanstalkd, "reserve", "bury", "--timeout", "0", "--priority", "9")
    first = library(beanstalkd, lambda client: client.stats_job(1))
    second = library(beanstalkd, lambda client: client.stats_job(2))
    assert (first["state"], first["pri"]) == ("buried", 4)
    assert (second["state"], second["pri"]) == ("buried", 9)

    assert json.loads(ok(beanstalkd, "peek-buried")) == {"body": "one", "id": 1}
    assert ok(beanstalkd, "kick") == "1\n"  # the bound defaults to 1
    assert ok(beanstalkd, "kick", "-b", "10") == "1\n"
    assert ok(beanstalkd, "kick", "--bound", "10") == "0\n"
    assert library(beanstalkd, lambda client: client.stats_job(2))["state"] == "ready"


def test_reserve_watch_and_ignore(beanstalkd: BeanstalkdServer) -> None:
    ok(beanstalkd, "put", "for a", "-u", "a")
    ok(beanstalkd, "put", "for b", "-u", "b")
    ok(beanstalkd, "put", "for default")
    # Only tube a and b watched: the default tube's job stays.
    assert json.loads(ok(beanstalkd, "reserve", "delete", "-t", "0", "-w", "a", "-i")) == {
        "body": "for a",
        "id": 1,
    }
    assert json.loads(
        ok(beanstalkd, "reserve", "delete", "-t", "0", "--watch", "a", "--watch", "b", "-i")
    ) == {"body": "for b", "id": 2}
    assert (
        fails(beanstalkd, EXIT_FAILED, "reserve", "delete", "-t", "0", "-w", "b", "-i")
        == "beanstalkt: no job reserved within 0 s in tube(s) b (timed out)\n"
    )
    # -w adds to the default tube unless -i.
    assert json.loads(ok(beanstalkd, "reserve", "delete", "-t", "0", "-w", "a")) == {
        "body": "for default",
        "id": 3,
    }


def test_reserve_timeout(beanstalkd: BeanstalkdServer) -> None:
    assert (
        fails(beanstalkd, EXIT_FAILED, "reserve", "delete", "-t", "1")
        == "beanstalkt: no job reserved within 1 s in tube(s) default (timed out)\n"
    )


def test_reserve_without_timeout_waits_for_a_job(beanstalkd: BeanstalkdServer) -> None:
    worker = popen(beanstalkd, "reserve", "delete")
    wait_for_waiting_worker(beanstalkd, worker)
    ok(beanstalkd, "put", "late job")
    stdout, stderr = worker.communicate(timeout=30)
    assert (worker.returncode, json.loads(stdout), stderr) == (
        0,
        {"body": "late job", "id": 1},
        "",
    )
    assert library(beanstalkd, lambda client: client.stats())["current-jobs-ready"] == 0


def test_reserve_interrupted(beanstalkd: BeanstalkdServer) -> None:
    worker = popen(beanstalkd, "reserve", "delete")
    wait_for_waiting_worker(beanstalkd, worker)
    worker.send_signal(signal.SIGINT)
    stdout, stderr = worker.communicate(timeout=30)
    assert (worker.returncode, stdout, stderr) == (
        EXIT_INTERRUPTED,
        "",
        "beanstalkt: interrupted\n",
    )


def test_reserve_connection_lost(beanstalkd: BeanstalkdServer) -> None:
    worker = popen(beanstalkd, "reserve", "delete")
    wait_for_waiting_worker(beanstalkd, worker)
    beanstalkd.kill()
    stdout, stderr = worker.communicate(timeout=30)
    assert (worker.returncode, stdout) == (EXIT_CANNOT_CONNECT, "")
    assert stderr.startswith(f"beanstalkt: connection to {beanstalkd.host}:{beanstalkd.port} lost")
    assert stderr.count("\n") == 1 and "Traceback" not in stderr


def test_reserve_job(beanstalkd: BeanstalkdServer) -> None:
    for body in ("a", "b", "c"):
        ok(beanstalkd, "put", body, "-p", "8", "-u", "elsewhere")
    assert json.loads(ok(beanstalkd, "reserve-job", "2", "delete")) == {"body": "b", "id": 2}
    ok(beanstalkd, "reserve-job", "1", "bury")
    ok(beanstalkd, "reserve-job", "3", "release", "-d", "60", "-p", "2")
    assert fails(beanstalkd, EXIT_FAILED, "reserve-job", "2", "delete") == (
        "beanstalkt: job 2 not found, or it is reserved already\n"
    )
    first = library(beanstalkd, lambda client: client.stats_job(1))
    third = library(beanstalkd, lambda client: client.stats_job(3))
    assert (first["state"], first["pri"]) == ("buried", 8)
    assert (third["state"], third["pri"], third["delay"]) == ("delayed", 2, 60)


# --------------------------------------------------------------------------
# delete, peek, kick-job


def test_delete(beanstalkd: BeanstalkdServer) -> None:
    ok(beanstalkd, "put", "x")
    assert ok(beanstalkd, "delete", "1") == ""
    assert fails(beanstalkd, EXIT_FAILED, "delete", "1") == (
        "beanstalkt: job 1 not found, or it is reserved by another client\n"
    )


def test_peek_commands(beanstalkd: BeanstalkdServer) -> None:
    ok(beanstalkd, "put", "ready one", "-u", "t")
    ok(beanstalkd, "put", "delayed one", "-u", "t", "-d", "100")
    assert json.loads(ok(beanstalkd, "peek", "2")) == {"body": "delayed one", "id": 2}
    assert json.loads(ok(beanstalkd, "peek-ready", "-u", "t")) == {"body": "ready one", "id": 1}
    assert json.loads(ok(beanstalkd, "peek-delayed", "--use", "t")) == {
        "body": "delayed one",
        "id": 2,
    }
    assert fails(beanstalkd, EXIT_FAILED, "peek-buried", "-u", "t") == (
        "beanstalkt: no buried job in tube 't'\n"
    )
    assert fails(beanstalkd, EXIT_FAILED, "peek-ready") == (
        "beanstalkt: no ready job in tube 'default'\n"
    )
    assert fails(beanstalkd, EXIT_FAILED, "peek-delayed") == (
        "beanstalkt: no delayed job in tube 'default'\n"
    )


def test_kick_delayed_jobs_and_kick_job(beanstalkd: BeanstalkdServer) -> None:
    for _ in range(3):
        ok(beanstalkd, "put", "later", "-u", "t", "-d", "100")
    assert ok(beanstalkd, "kick", "-u", "t", "-b", "2") == "2\n"
    assert ok(beanstalkd, "kick") == "0\n"  # the default tube has none
    assert ok(beanstalkd, "kick-job", "3") == ""
    assert library(beanstalkd, lambda client: client.stats_job(3))["state"] == "ready"
    assert fails(beanstalkd, EXIT_FAILED, "kick-job", "3") == (
        "beanstalkt: job 3 not found, or it is neither buried nor delayed\n"
    )


# --------------------------------------------------------------------------
# stats, lists, pause


def test_stats_are_typed_json(beanstalkd: BeanstalkdServer) -> None:
    ok(beanstalkd, "put", "x", "-u", "t")
    stats = json.loads(ok(beanstalkd, "stats"))
    assert stats["total-jobs"] == 1 and stats["current-jobs-ready"] == 1
    assert isinstance(stats["rusage-utime"], float)
    assert stats["draining"] is False
    assert isinstance(stats["version"], str) and isinstance(stats["pid"], int)

    job = json.loads(ok(beanstalkd, "stats-job", "1"))
    assert (job["id"], job["tube"], job["state"], job["pri"]) == (
        1,
        "t",
        "ready",
        beanstalkt.DEFAULT_PRIORITY,
    )
    tube = json.loads(ok(beanstalkd, "stats-tube", "t"))
    assert (tube["name"], tube["current-jobs-ready"], tube["pause"]) == ("t", 1, 0)
    assert fails(beanstalkd, EXIT_FAILED, "stats-job", "9") == "beanstalkt: job 9 not found\n"
    assert fails(beanstalkd, EXIT_FAILED, "stats-tube", "nope") == (
        "beanstalkt: tube 'nope' not found\n"
    )


def test_stats_tube_of_every_tube(beanstalkd: BeanstalkdServer) -> None:
    ok(beanstalkd, "put", "x", "-u", "123")  # a numeric name stays a string key
    every = json.loads(ok(beanstalkd, "stats-tube"))
    assert list(every) == ["default", "123"]
    assert every["123"]["name"] == "123" and every["123"]["current-jobs-ready"] == 1
    assert every["default"]["current-jobs-ready"] == 0


def test_raw_stats_are_the_servers_yaml(beanstalkd: BeanstalkdServer) -> None:
    ok(beanstalkd, "put", "x", "-u", "t")

    def server_says(line: bytes) -> bytes:
        """The data of the server's ``OK <bytes>`` reply to ``line``, read off a plain socket."""
        with socket.create_connection((beanstalkd.host, beanstalkd.port)) as sock:
            sock.sendall(line)
            data = b""
            while b"\r\n" not in data:
                data += sock.recv(65536)
            header, _, rest = data.partition(b"\r\n")
            size = int(header.split()[1])
            while len(rest) < size + 2:
                rest += sock.recv(65536)
        return rest[:size]

    # Tube and job stats do not change by being read: byte-for-byte equal.
    assert ok(beanstalkd, "stats-tube", "t", "--raw") == server_says(b"stats-tube t\r\n").decode()
    raw_job = ok(beanstalkd, "stats-job", "1", "--raw")
    assert raw_job.startswith("---\nid: 1\ntube: t\nstate: ready\n")
    every = ok(beanstalkd, "stats-tube", "--raw")
    assert (
        every
        == (server_says(b"stats-tube default\r\n") + server_says(b"stats-tube t\r\n")).decode()
    )
    raw_stats = ok(beanstalkd, "stats", "--raw")
    assert raw_stats.startswith("---\ncurrent-jobs-urgent: ")
    assert "\nversion: " in raw_stats and raw_stats.endswith("\n")
    assert fails(beanstalkd, EXIT_FAILED, "stats-tube", "nope", "--raw") == (
        "beanstalkt: tube 'nope' not found\n"
    )
    assert fails(beanstalkd, EXIT_FAILED, "stats-job", "9", "--raw") == (
        "beanstalkt: job 9 not found\n"
    )


def test_list_and_list_tubes(beanstalkd: BeanstalkdServer) -> None:
    ok(beanstalkd, "put", "x", "-u", "emails")
    assert json.loads(ok(beanstalkd, "list")) == ["default", "emails"]
    assert ok(beanstalkd, "list-tubes") == ok(beanstalkd, "list")


def test_pause_and_pause_tube(beanstalkd: BeanstalkdServer) -> None:
    ok(beanstalkd, "put", "x", "-u", "t")
    assert ok(beanstalkd, "pause", "t", "-d", "100") == ""
    assert library(beanstalkd, lambda client: client.stats_tube("t"))["pause"] == 100
    assert ok(beanstalkd, "pause-tube", "t", "--delay", "0") == ""
    assert library(beanstalkd, lambda client: client.stats_tube("t"))["pause"] == 0
    assert fails(beanstalkd, EXIT_FAILED, "pause", "nope") == "beanstalkt: tube 'nope' not found\n"


# --------------------------------------------------------------------------
# Where the server is


def test_environment_and_flags(beanstalkd: BeanstalkdServer) -> None:
    dead_port = str(free_port())
    # The environment is read when no flag is given ...
    assert ok(None, "put", "x", env=environment(beanstalkd)) == "1\n"
    # ... and flags win over it, both ways.
    pointed_away = environment(None, BEANSTALKD_HOST="127.0.0.1", BEANSTALKD_PORT=dead_port)
    assert (
        ok(
            None,
            "--host",
            beanstalkd.host,
            "--port",
            str(beanstalkd.port),
            "put",
            "y",
            env=pointed_away,
        )
        == "2\n"
    )
    message = fails(
        None, EXIT_CANNOT_CONNECT, "--port", dead_port, "stats", env=environment(beanstalkd)
    )
    assert message == (
        f"beanstalkt: cannot connect to beanstalkd at {beanstalkd.host}:{dead_port}: "
        "Connection refused\n"
    )
    bad = fails(None, EXIT_USAGE, "stats", env=environment(None, BEANSTALKD_PORT="eleven"))
    assert "BEANSTALKD_PORT='eleven': port must be an integer, not 'eleven'" in bad


def test_default_address_is_localhost_11300() -> None:
    result = cli(None, "stats", env=environment(None))
    if result.returncode == EXIT_CANNOT_CONNECT:  # no beanstalkd on the default port here
        assert result.stderr == (
            "beanstalkt: cannot connect to beanstalkd at localhost:11300: Connection refused\n"
        )
    else:  # a local beanstalkd answered
        assert result.returncode == 0 and "uptime" in json.loads(result.stdout)


def test_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "beanstalkd.sock")
    with BeanstalkdServer(unix_socket=path) as server:
        env = environment(None)
        assert ok(None, "--host", f"unix:{path}", "put", "over unix", env=env) == "1\n"
        assert json.loads(ok(None, "--host", f"unix:{path}", "peek", "1", env=env))["body"] == (
            "over unix"
        )
        assert "total-jobs: 1\n" in ok(None, "--host", f"unix:{path}", "stats", "--raw", env=env)
        assert server.running
    missing = str(tmp_path / "missing.sock")
    for raw in ([], ["--raw"]):
        assert fails(None, EXIT_CANNOT_CONNECT, "--host", f"unix:{missing}", "stats", *raw) == (
            f"beanstalkt: cannot connect to beanstalkd at unix:{missing}: "
            "No such file or directory\n"
        )


def test_cannot_connect() -> None:
    port = str(free_port())
    expected = f"beanstalkt: cannot connect to beanstalkd at 127.0.0.1:{port}: Connection refused\n"
    env = environment(None, BEANSTALKD_HOST="127.0.0.1", BEANSTALKD_PORT=port)
    for args in (["put", "x"], ["reserve", "delete"], ["stats"], ["stats", "--raw"]):
        assert fails(None, EXIT_CANNOT_CONNECT, *args, env=env) == expected
    unknown = fails(None, EXIT_CANNOT_CONNECT, "--host", "host.invalid", "stats")
    assert unknown.startswith("beanstalkt: cannot connect to beanstalkd at host.invalid:11300: ")


async def run_against_fake(server: FakeServer, *args: str) -> tuple[int, str, str]:
    """Run the CLI against a scripted server that lives in this test's event loop."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "beanstalkt.cmd",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment(None, BEANSTALKD_HOST="127.0.0.1", BEANSTALKD_PORT=str(server.port)),
    )
    stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_not_a_beanstalkd_server() -> None:
    async def web_server(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int
    ) -> None:
        await reader.readline()
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await reader.read()

    async with FakeServer(web_server) as server:
        for raw in ([], ["--raw"]):
            status, stdout, stderr = await run_against_fake(server, "stats", *raw)
            assert (status, stdout) == (EXIT_FAILED, "")
            assert stderr.startswith(f"beanstalkt: reply from 127.0.0.1:{server.port} out of sync")
            assert "HTTP/1.1 400 Bad Request" in stderr and stderr.count("\n") == 1


async def test_server_hangs_up() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await reader.readline()

    async with FakeServer(hang_up) as server:
        for raw in ([], ["--raw"]):
            status, stdout, stderr = await run_against_fake(server, "stats", *raw)
            assert (status, stdout) == (EXIT_CANNOT_CONNECT, "")
            assert stderr.startswith(f"beanstalkt: connection to 127.0.0.1:{server.port} lost")
            assert stderr.count("\n") == 1 and "Traceback" not in stderr


def test_output_closed_early(beanstalkd: BeanstalkdServer) -> None:
    # As with `beanstalkt stats | head -1` when head has gone: no traceback.
    process = subprocess.Popen(
        [sys.executable, "-m", "beanstalkt.cmd", "stats-tube"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(beanstalkd),
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    assert process.wait(timeout=30) == EXIT_FAILED
    assert process.stderr.read() == b""
    process.stderr.close()


# --------------------------------------------------------------------------
# Usage errors: exit status 2, the library's own words, before any connection.


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["put", "x", "-u", "a b"], "tube name 'a b' has characters outside A-Za-z0-9-+/;.$_()"),
        (["stats-tube", "-bad"], "unrecognized arguments: -bad"),
        (["pause", "x" * 201], "tube name is 201 bytes long; the limit is 200"),
        (["reserve", "delete", "-w", "é"], "tube name 'é' has characters outside"),
        (["put", "x", "-p", "4294967296"], "priority must be between 0 and 4294967295"),
        (["put", "x", "-d", "-1"], "delay must be between 0 and 4294967295, not -1"),
        (["put", "x", "-t", "lots"], "ttr must be an integer, not 'lots'"),
        (["peek", "0"], "job id must be between 1 and 18446744073709551615, not 0"),
        (["kick", "-b", "-5"], "bound must be between 0 and 4294967295, not -5"),
        (["reserve", "delete", "-t", "-1"], "timeout must be between 0 and 4294967295, not -1"),
        (["--port", "70000", "stats"], "port must be between 1 and 65535, not 70000"),
        (["reserve", "delete", "-i"], "-i/--ignore-default needs at least one -w/--watch TUBE"),
        (["reserve", "bury", "-d", "5"], "-d/--delay applies only to release"),
        (["reserve-job", "1", "delete", "-p", "5"], "-p/--priority applies only to release and"),
        (["reserve", "keep"], "invalid choice: 'keep'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
        (["put"], "the following arguments are required: BODY"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    # No server at all: a usage error must be found before connecting.
    env = environment(None, BEANSTALKD_HOST="127.0.0.1", BEANSTALKD_PORT=str(free_port()))
    stderr = fails(None, EXIT_USAGE, *args, env=env)
    assert stderr.startswith("usage: python -m beanstalkt.cmd")
    assert message in stderr.splitlines()[-1]


# --------------------------------------------------------------------------
# Help


def test_help_of_the_program_and_the_seed_examples() -> None:
    for args in (["-h"], ["put", "-h"], ["reserve", "-h"]):
        result = cli(None, *args)
        assert (result.returncode, result.stderr) == (0, "")
        assert result.stdout.startswith("usage: python -m beanstalkt.cmd")
    program = cli(None, "--help").stdout
    for command in COMMANDS:
        assert f"\n    {command}" in program
    for line in (
        "BEANSTALKD_HOST",
        "BEANSTALKD_PORT",
        "exit status:",
        "  1    the command failed",
        "  2    usage error",
        "  3    cannot connect to beanstalkd",
        '"body_encoding": "base64"',
    ):
        assert line in program
    version = cli(None, "--version", in_subprocess=True).stdout  # the real program name
    assert version == f"python -m beanstalkt.cmd {beanstalkt.__version__}\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd.main([command, "-h"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: beanstalkt {command} ")
    assert "exit status:" in out and "BEANSTALKD_PORT" in out


def test_every_argument_of_every_command_is_explained() -> None:
    parser = cmd.build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert sorted(commands.choices) == sorted(COMMANDS)
    for action in parser._actions:
        assert action.help, action.option_strings
    for name, sub in commands.choices.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest}"


# --------------------------------------------------------------------------
# The entry point, in-process


def test_console_script_entry_point(
    beanstalkd: BeanstalkdServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    distribution = importlib.metadata.distribution("beanstalkt")
    (entry_point,) = [
        ep
        for ep in distribution.entry_points
        if ep.group == "console_scripts" and ep.name == "beanstalkt"
    ]
    assert entry_point.load() is cmd.main

    address = ["--host", beanstalkd.host, "--port", str(beanstalkd.port)]
    assert cmd.main([*address, "put", "in process", "-p", "1"]) == 0
    assert capsys.readouterr() == ("1\n", "")
    assert cmd.main([*address, "reserve", "delete", "-t", "0"]) == 0
    assert json.loads(capsys.readouterr().out) == {"body": "in process", "id": 1}
    assert cmd.main([*address, "peek", "1"]) == EXIT_FAILED
    assert capsys.readouterr() == ("", "beanstalkt: job 1 not found\n")

    monkeypatch.setenv("BEANSTALKD_HOST", beanstalkd.host)
    monkeypatch.setenv("BEANSTALKD_PORT", str(free_port()))
    assert cmd.main(["stats"]) == EXIT_CANNOT_CONNECT
    assert "cannot connect to beanstalkd at" in capsys.readouterr().err
    assert cmd.main(["stats-job", "x"]) == EXIT_USAGE
    assert "job id must be an integer, not 'x'" in capsys.readouterr().err


def test_console_script_on_path(beanstalkd: BeanstalkdServer) -> None:
    # The installed `beanstalkt` script runs the same main().
    script = Path(sys.executable).parent / "beanstalkt"
    assert script.exists(), "install the package (pip install -e .) to get the console script"
    result = subprocess.run(
        [str(script), "put", "from the script"],
        capture_output=True,
        text=True,
        env=environment(beanstalkd),
        timeout=30,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "1\n", "")


def test_closed_stdout_is_a_clean_error_and_nothing_is_done(beanstalkd: BeanstalkdServer) -> None:
    finished = subprocess.run(
        f"{shlex.quote(sys.executable)} -m beanstalkt.cmd put 'never put' >&-",
        shell=True,
        capture_output=True,
        env=environment(beanstalkd),
        timeout=30,
    )
    assert finished.returncode == 1
    assert finished.stderr.decode() == "beanstalkt: standard output is closed; nothing was done\n"
    assert json.loads(ok(beanstalkd, "stats"))["total-jobs"] == 0


def test_the_seed_module_path_is_the_command_line() -> None:
    import beanstalkt.cmd

    assert beanstalkt.cmd.main is cmd.main

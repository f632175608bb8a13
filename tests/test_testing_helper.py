"""beanstalkt.testing: throwaway servers, the binary lookup, and the pytest fixtures."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Union

import pytest

import beanstalkt
from beanstalkt.testing import (
    INSTALL_HINT,
    BeanstalkdNotFound,
    BeanstalkdServer,
    find_beanstalkd,
    free_port,
)

REAL_BINARY = find_beanstalkd()
HINT = "apt-get install -y beanstalkd"


def stats_over_socket(family: socket.AddressFamily, target: Union[str, tuple[str, int]]) -> bytes:
    """Send ``stats`` with a bare socket; return the reply's first line."""
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(target)
        sock.sendall(b"stats\r\n")
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            assert chunk, "connection closed before a reply"
            reply += chunk
        return reply.split(b"\r\n", 1)[0]


def refuses_connections(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(5)
        return sock.connect_ex(("127.0.0.1", port)) != 0


async def put_and_peek(server: BeanstalkdServer, body: bytes) -> int:
    async with beanstalkt.Client(server.address, server.port) as client:
        job_id = await client.put(body)
        assert (await client.peek(job_id)).body == body
        return job_id


# ----------------------------------------------------------------------
# BeanstalkdServer


def test_server_starts_on_a_free_port_and_stop_stops_it() -> None:
    server = BeanstalkdServer()
    assert not server.running
    assert server.binlog_dir is None
    assert server.port > 0
    assert refuses_connections(server.port)
    assert server.start() is server
    try:
        assert server.running
        assert server.process is not None
        assert server.command()[0] == REAL_BINARY
        assert stats_over_socket(socket.AF_INET, (server.host, server.port)).startswith(b"OK ")
    finally:
        server.stop()
    assert not server.running
    assert server.process is None
    assert refuses_connections(server.port)
    server.stop()  # twice is harmless


def test_two_servers_get_different_ports() -> None:
    with BeanstalkdServer() as first, BeanstalkdServer() as second:
        assert first.port != second.port
        assert first.running and second.running


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_start_fails_loudly_when_the_port_is_taken() -> None:
    # Something else already listens on the port: start() must not mistake it
    # for the beanstalkd it launched (which exits with "Address already in use").
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        server = BeanstalkdServer(port)
        try:
            with pytest.raises(RuntimeError, match="in use"):
                server.start(timeout=5)
        finally:
            server.stop()


def test_a_port_picked_here_but_taken_meanwhile_is_replaced() -> None:
    # Another process grabs the free port between free_port() and the launch
    # (parallel test runs): the server moves to another free port by itself.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        server = BeanstalkdServer()
        server.port = taken
        try:
            server.start(timeout=5)
            assert server.running and server.port != taken
            with socket.create_connection((server.host, server.port), timeout=5) as sock:
                sock.sendall(b"list-tube-used\r\n")
                assert sock.recv(100) == b"USING default\r\n"
        finally:
            server.stop()


async def test_stop_removes_the_temporary_binlog_dir() -> None:
    server = BeanstalkdServer(binlog=True)
    binlog_dir = server.binlog_dir
    assert binlog_dir is not None
    assert os.path.isdir(binlog_dir)
    assert ["-b", binlog_dir] == server.command()[-2:]
    server.start()
    try:
        await put_and_peek(server, b"persist-me-123")
        files = os.listdir(binlog_dir)
        assert any(name.startswith("binlog.") for name in files), files
        contents = b"".join(Path(binlog_dir, name).read_bytes() for name in files)
        assert b"persist-me-123" in contents
    finally:
        server.stop()
    assert not os.path.exists(binlog_dir)


async def test_a_given_binlog_dir_is_used_and_kept(tmp_path: Path) -> None:
    binlog_dir = tmp_path / "binlog"
    binlog_dir.mkdir()
    with BeanstalkdServer(binlog=str(binlog_dir)) as server:
        assert server.binlog_dir == str(binlog_dir)
        await put_and_peek(server, b"kept on disk")
    assert binlog_dir.is_dir()
    assert any(name.startswith("binlog.") for name in os.listdir(binlog_dir))
    # A new server on the same directory finds the job.
    with BeanstalkdServer(binlog=str(binlog_dir)) as again:
        async with beanstalkt.Client(again.host, again.port) as client:
            assert (await client.peek(1)).body == b"kept on disk"


async def test_restart_keeps_the_port_and_with_binlog_the_jobs() -> None:
    with BeanstalkdServer(binlog=True) as server:
        port = server.port
        assert server.process is not None
        old_pid = server.process.pid
        job_id = await put_and_peek(server, b"survives the restart")
        assert server.restart() is server
        assert server.port == port
        assert server.running
        assert server.process.pid != old_pid
        async with beanstalkt.Client(server.host, server.port) as client:
            assert (await client.peek(job_id)).body == b"survives the restart"
            assert (await client.stats())["pid"] == server.process.pid


async def test_restart_without_binlog_starts_empty() -> None:
    with BeanstalkdServer() as server:
        job_id = await put_and_peek(server, b"gone after the restart")
        server.restart()
        async with beanstalkt.Client(server.host, server.port) as client:
            with pytest.raises(beanstalkt.NotFound):
                await client.peek(job_id)


async def test_max_job_size_passes_z() -> None:
    with BeanstalkdServer(max_job_size=100) as server:
        assert server.command()[-2:] == ["-z", "100"]
        async with beanstalkt.Client(server.host, server.port) as client:
            assert (await client.stats())["max-job-size"] == 100
            assert await client.put(b"x" * 100) == 1
            with pytest.raises(beanstalkt.JobTooBig):
                await client.put(b"x" * 101)


def test_extra_args_are_appended() -> None:
    server = BeanstalkdServer(extra_args=["-V"], max_job_size=5)
    assert server.command()[-3:] == ["-z", "5", "-V"]


async def test_unix_socket_server(tmp_path: Path) -> None:
    path = str(tmp_path / "beanstalkd.sock")
    with BeanstalkdServer(unix_socket=path) as server:
        assert server.address == f"unix:{path}"
        assert server.command()[1:3] == ["-l", f"unix:{path}"]
        assert "-p" not in server.command()
        assert repr(server) == f"<BeanstalkdServer unix:{path} running>"
        assert stats_over_socket(socket.AF_UNIX, path).startswith(b"OK ")
        async with beanstalkt.Client(server.address) as client:
            assert client.address == f"unix:{path}"
            job_id = await client.put(b"over a unix socket")
            assert await client.reserve(timeout=0) == beanstalkt.Job(job_id, b"over a unix socket")
        server.restart()
        assert stats_over_socket(socket.AF_UNIX, path).startswith(b"OK ")
    assert not os.path.exists(path)
    assert repr(server) == f"<BeanstalkdServer unix:{path} stopped>"


def test_context_manager_starts_and_stops() -> None:
    server = BeanstalkdServer()
    with server as entered:
        assert entered is server
        assert server.running
        port = server.port
    assert not server.running
    assert refuses_connections(port)


def test_context_manager_stops_on_error() -> None:
    server = BeanstalkdServer(binlog=True)
    with pytest.raises(ZeroDivisionError), server:
        1 / 0  # noqa: B018
    assert not server.running
    assert server.binlog_dir is not None
    assert not os.path.exists(server.binlog_dir)


def test_repr() -> None:
    server = BeanstalkdServer(host="127.0.0.1")
    assert repr(server) == f"<BeanstalkdServer 127.0.0.1:{server.port} stopped>"
    with server:
        assert repr(server) == f"<BeanstalkdServer 127.0.0.1:{server.port} running>"
    assert repr(server) == f"<BeanstalkdServer 127.0.0.1:{server.port} stopped>"


def test_kill_and_terminate_end_the_process() -> None:
    with BeanstalkdServer() as server:
        process = server.process
        assert process is not None
        server.terminate()
        assert not server.running
        assert process.returncode is not None
        server.start()
        process = server.process
        assert process is not None
        server.kill()
        assert process.returncode == -9
        assert not server.running


# ----------------------------------------------------------------------
# Finding the binary


def test_find_beanstalkd_uses_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BEANSTALKD_BINARY", raising=False)
    monkeypatch.setenv("PATH", os.path.dirname(REAL_BINARY))
    assert find_beanstalkd() == REAL_BINARY


def test_find_beanstalkd_honours_the_env_var(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    renamed = tmp_path / "my-beanstalkd"
    renamed.symlink_to(REAL_BINARY)
    monkeypatch.setenv("BEANSTALKD_BINARY", str(renamed))
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    assert find_beanstalkd() == str(renamed)
    with BeanstalkdServer() as server:
        assert server.binary == str(renamed)
        assert server.command()[0] == str(renamed)
        assert server.running


def test_env_var_pointing_at_a_missing_file_fails_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Even with a beanstalkd on PATH: the configured binary wins, and is missing.
    monkeypatch.setenv("BEANSTALKD_BINARY", str(tmp_path / "no-such-beanstalkd"))
    with pytest.raises(BeanstalkdNotFound) as caught:
        find_beanstalkd()
    assert HINT in str(caught.value)
    with pytest.raises(BeanstalkdNotFound, match="apt-get install"):
        BeanstalkdServer().start()


def test_env_var_pointing_at_a_non_executable_file_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    not_executable = tmp_path / "beanstalkd"
    not_executable.write_text("#!/bin/sh\n")
    not_executable.chmod(0o644)
    monkeypatch.setenv("BEANSTALKD_BINARY", str(not_executable))
    with pytest.raises(BeanstalkdNotFound, match="apt-get install"):
        find_beanstalkd()


def test_env_var_pointing_at_a_directory_fails_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A directory is "executable" (searchable) to os.access, but it is no binary.
    monkeypatch.setenv("BEANSTALKD_BINARY", str(tmp_path))
    with pytest.raises(BeanstalkdNotFound, match="apt-get install"):
        find_beanstalkd()


def test_no_beanstalkd_on_path_fails_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("BEANSTALKD_BINARY", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BeanstalkdNotFound) as caught:
        BeanstalkdServer()
    assert str(caught.value) == INSTALL_HINT
    assert HINT in INSTALL_HINT
    assert "BEANSTALKD_BINARY" in INSTALL_HINT
    assert isinstance(caught.value, RuntimeError)


# ----------------------------------------------------------------------
# The pytest fixtures, from a user's own suite

USER_SUITE = """
import asyncio

import beanstalkt
from beanstalkt.testing import BeanstalkdServer

pytest_plugins = ["beanstalkt.testing"]

seen = []


def test_gets_a_running_server(beanstalkd):
    assert isinstance(beanstalkd, BeanstalkdServer)
    assert beanstalkd.running
    seen.append(beanstalkd)


def test_each_test_gets_a_fresh_server(beanstalkd):
    (previous,) = seen
    assert not previous.running
    assert beanstalkd is not previous

    async def main():
        async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
            job_id = await client.put(b"from a user's suite")
            return job_id, await client.reserve(timeout=0)

    job_id, job = asyncio.run(main())
    assert job_id == 1
    assert job.body == b"from a user's suite"


def test_binlog_fixture_survives_restart(beanstalkd_with_binlog):
    server = beanstalkd_with_binlog

    async def put():
        async with beanstalkt.Client(server.host, server.port) as client:
            return await client.put(b"durable")

    async def peek(job_id):
        async with beanstalkt.Client(server.host, server.port) as client:
            return (await client.peek(job_id)).body

    job_id = asyncio.run(put())
    server.restart()
    assert asyncio.run(peek(job_id)) == b"durable"
"""


def run_user_suite(
    tmp_path: Path, env_overrides: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "test_user_suite.py"
    path.write_text(textwrap.dedent(USER_SUITE))
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )


def test_fixtures_work_in_a_users_suite(tmp_path: Path) -> None:
    result = run_user_suite(tmp_path, {})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout, result.stdout


def test_fixtures_fail_loudly_without_beanstalkd(tmp_path: Path) -> None:
    result = run_user_suite(tmp_path, {"BEANSTALKD_BINARY": str(tmp_path / "missing")})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "3 errors" in result.stdout, result.stdout
    assert "skipped" not in result.stdout
    assert "BeanstalkdNotFound" in result.stdout
    assert HINT in result.stdout

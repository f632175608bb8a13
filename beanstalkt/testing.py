"""Throwaway beanstalkd servers for tests, demos and benchmarks.

::

    from beanstalkt.testing import BeanstalkdServer

    with BeanstalkdServer() as server:          # free loopback port
        client = beanstalkt.Client(server.host, server.port)

In a pytest suite, make the fixtures available from ``conftest.py``::

    pytest_plugins = ["beanstalkt.testing"]

    async def test_put(beanstalkd):              # a fresh server per test
        async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as client:
            ...

A missing ``beanstalkd`` binary is an error with the install hint, never a
silent skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import IO, Optional, Union

INSTALL_HINT = (
    "beanstalkd is not installed (or not on PATH). Install it, e.g. on Debian/Ubuntu: "
    "apt-get update && apt-get install -y beanstalkd; on macOS: brew install beanstalkd. "
    "Or set BEANSTALKD_BINARY to its path."
)


class BeanstalkdNotFound(RuntimeError):
    """The beanstalkd binary is missing."""


class _PortTaken(RuntimeError):
    """beanstalkd could not bind its port: something else listens there."""


def find_beanstalkd() -> str:
    """Path of the beanstalkd binary (``$BEANSTALKD_BINARY`` or PATH), or raise."""
    configured = os.environ.get("BEANSTALKD_BINARY")
    path = configured or shutil.which("beanstalkd")
    if not path or not os.path.isfile(path) or not os.access(path, os.X_OK):
        where = (
            f"BEANSTALKD_BINARY={configured!r} is not an executable file. " if configured else ""
        )
        raise BeanstalkdNotFound(where + INSTALL_HINT)
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class BeanstalkdServer:
    """A beanstalkd process on a loopback port (or a Unix socket), started and stopped here.

    :param port: TCP port; a free one by default. Kept across :meth:`restart`.
    :param binlog: ``True`` for a temporary binlog directory (removed on
        :meth:`stop`), a path for a given one, ``False`` for no persistence.
    :param max_job_size: the server's ``-z`` limit in bytes.
    :param unix_socket: listen on this Unix socket path instead of TCP.
    :param extra_args: more beanstalkd arguments.
    """

    def __init__(
        self,
        port: Optional[int] = None,
        *,
        host: str = "127.0.0.1",
        binlog: Union[bool, str] = False,
        max_job_size: Optional[int] = None,
        unix_socket: Optional[str] = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.binary = find_beanstalkd()
        self.host = host
        self.port = port if port is not None else free_port(host)
        # A port we picked may be taken by someone else before beanstalkd binds
        # it (tests running in parallel): then we pick another and try again.
        self._port_chosen_here = port is None and unix_socket is None
        self.unix_socket = unix_socket
        self.max_job_size = max_job_size
        self.extra_args = list(extra_args)
        self._own_binlog = binlog is True
        self.binlog_dir: Optional[str] = (
            tempfile.mkdtemp(prefix="beanstalkd-binlog-") if binlog is True else (binlog or None)
        )
        self.process: Optional[subprocess.Popen[bytes]] = None
        self._stderr: Optional[IO[bytes]] = None

    @property
    def address(self) -> str:
        """What to pass to ``Client(host=...)``: ``host`` or ``unix:/path``."""
        return f"unix:{self.unix_socket}" if self.unix_socket else self.host

    def command(self) -> list[str]:
        """The beanstalkd command line this server runs."""
        if self.unix_socket:
            args = [self.binary, "-l", f"unix:{self.unix_socket}"]
        else:
            args = [self.binary, "-l", self.host, "-p", str(self.port)]
        if self.binlog_dir:
            args += ["-b", self.binlog_dir]
        if self.max_job_size is not None:
            args += ["-z", str(self.max_job_size)]
        return args + self.extra_args

    def start(self, timeout: float = 10.0) -> BeanstalkdServer:
        """Start the process and wait until it accepts connections.

        Raises :class:`RuntimeError` (with beanstalkd's own message) when the
        process exits, e.g. because a port given by the caller is in use.
        """
        if self.running:
            return self
        for _attempt in range(5):
            try:
                return self._start_once(timeout)
            except _PortTaken:
                if not self._port_chosen_here:
                    raise
                self.port = free_port(self.host)
        return self._start_once(timeout)

    def _start_once(self, timeout: float) -> BeanstalkdServer:
        # A file, not a pipe: a chatty server must never block on a full pipe.
        stderr = self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
        process = self.process = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=stderr
        )
        deadline = time.monotonic() + timeout
        # Whoever answers must be *our* process: another server already on the
        # port would accept connections too, while ours exits on bind().
        while self._answering_pid() != process.pid:
            if process.poll() is not None:
                stderr.seek(0)
                message = stderr.read().decode(errors="replace").strip()
                self.process = None
                failure = _PortTaken if "Address already in use" in message else RuntimeError
                raise failure(f"beanstalkd exited with status {process.returncode}: {message}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"beanstalkd did not accept connections within {timeout}s")
            time.sleep(0.01)
        return self

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """Kill the process at once (``SIGKILL``), as a crash would."""
        self._end(signal.SIGKILL)

    def terminate(self) -> None:
        """Stop the process with ``SIGTERM`` and wait for it."""
        self._end(signal.SIGTERM)

    def restart(self, timeout: float = 10.0) -> BeanstalkdServer:
        """Kill the process and start a new one on the same address (and binlog)."""
        self.kill()
        return self.start(timeout)

    def stop(self) -> None:
        """Stop the process and remove the temporary binlog directory."""
        self.kill()
        if self._own_binlog and self.binlog_dir:
            shutil.rmtree(self.binlog_dir, ignore_errors=True)
        if self.unix_socket and os.path.exists(self.unix_socket):
            os.unlink(self.unix_socket)

    def _end(self, sig: signal.Signals) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
        process.wait(timeout=10)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _answering_pid(self) -> Optional[int]:
        """The ``pid`` in the ``stats`` of the server at our address, if one answers."""
        family = socket.AF_UNIX if self.unix_socket else socket.AF_INET
        target = self.unix_socket if self.unix_socket else (self.host, self.port)
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            try:
                sock.connect(target)
                sock.sendall(b"stats\r\n")
                reply = b""
                # "OK <bytes>\r\n" then the YAML body and its own "\r\n".
                while b"\r\n" not in reply or len(reply) < _framed_length(reply):
                    chunk = sock.recv(65536)
                    if not chunk:
                        return None
                    reply += chunk
            except (OSError, ValueError):
                return None
        for line in reply.split(b"\n"):
            if line.startswith(b"pid: "):
                return int(line[5:])
        return None

    def __enter__(self) -> BeanstalkdServer:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        where = self.address if self.unix_socket else f"{self.host}:{self.port}"
        return f"<BeanstalkdServer {where} {state}>"


def _framed_length(reply: bytes) -> int:
    """Total length of an ``OK <bytes>`` reply whose first line is in ``reply``."""
    header, _, _ = reply.partition(b"\r\n")
    words = header.split()
    if len(words) != 2 or words[0] != b"OK":
        raise ValueError(f"not a stats reply: {header!r}")
    return len(header) + 2 + int(words[1]) + 2


try:  # The fixtures exist only where pytest does; the rest needs no pytest.
    import pytest
except ImportError:  # pragma: no cover
    pass
else:

    @pytest.fixture
    def beanstalkd() -> Iterator[BeanstalkdServer]:
        """A fresh beanstalkd on a free loopback port, stopped after the test."""
        with BeanstalkdServer() as server:
            yield server

    @pytest.fixture
    def beanstalkd_with_binlog() -> Iterator[BeanstalkdServer]:
        """A fresh beanstalkd with a temporary binlog directory, for restart tests."""
        with BeanstalkdServer(binlog=True) as server:
            yield server

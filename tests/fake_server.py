"""A scripted loopback server for the failures a real beanstalkd cannot produce.

Each accepted connection is handed to a coroutine ``script(reader, writer,
index)`` (``index`` counts connections from 0), so one test can make the first
connection misbehave and the next one answer properly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class FakeServer:
    """An asyncio TCP server on 127.0.0.1 running ``script`` per connection."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> FakeServer:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self.connections
        self.connections += 1
        self._writers.append(writer)
        try:
            await self.script(reader, writer, index)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def answer_puts_properly(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Behave like beanstalkd for ``put`` (ids from 1) and ``use``/``watch``/``ignore``."""
    next_id = 1
    while True:
        line = await reader.readline()
        if not line:
            return
        words = line.split()
        if words[0] == b"put":
            await reader.readexactly(int(words[4]) + 2)
            writer.write(b"INSERTED %d\r\n" % next_id)
            next_id += 1
        elif words[0] == b"use":
            writer.write(b"USING " + words[1] + b"\r\n")
        elif words[0] in (b"watch", b"ignore"):
            writer.write(b"WATCHING 1\r\n")
        else:
            writer.write(b"UNKNOWN_COMMAND\r\n")
        await writer.drain()


def yaml_reply(lines: list[str]) -> bytes:
    """An ``OK <bytes>`` reply carrying a YAML document of ``lines``."""
    body = ("---\n" + "".join(line + "\n" for line in lines)).encode()
    return b"OK %d\r\n%s\r\n" % (len(body), body)


class MisbehavingStats:
    """A fake beanstalkd for the monitoring tools: ``stats``, ``list-tubes``, ``stats-tube``.

    ``mode`` says how it misbehaves now, and can change while clients stay
    connected: ``"garbage"`` (a reply word no command has), ``"bad-counter"``
    (``current-jobs-ready: lots``), ``"bad-stats"`` (``uptime: soon``) or
    ``"sane"``. With ``bad_name`` it also lists a tube name no client accepts
    (``bad name!``).
    """

    def __init__(self, mode: str = "bad-counter", bad_name: bool = True) -> None:
        self.mode = mode
        self.bad_name = bad_name

    def stats(self) -> bytes:
        uptime = "soon" if self.mode == "bad-stats" else "100"
        return yaml_reply(
            [f"uptime: {uptime}", "version: fake", "current-jobs-ready: 1", "max-job-size: 65535",
             "current-tubes: 2"]
        )  # fmt: skip

    def stats_tube(self, name: str) -> bytes:
        ready = "lots" if self.mode == "bad-counter" else "0"
        return yaml_reply([f"name: {name}", f"current-jobs-ready: {ready}", "total-jobs: 3"])

    async def script(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int
    ) -> None:
        """Answer one connection until it closes."""
        while line := await reader.readline():
            words = line.decode(errors="replace").split() or [""]
            if self.mode == "garbage":
                writer.write(b"HELLO THERE\r\n")
            elif words[0] == "stats":
                writer.write(self.stats())
            elif words[0] == "list-tubes":
                writer.write(yaml_reply(["- default", *(["- bad name!"] if self.bad_name else [])]))
            elif words[0] == "stats-tube":
                writer.write(self.stats_tube(words[1]))
            elif words[0] == "use":
                writer.write(b"USING " + words[1].encode() + b"\r\n")
            else:
                writer.write(b"UNKNOWN_COMMAND\r\n")
            await writer.drain()

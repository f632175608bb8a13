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

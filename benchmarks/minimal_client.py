"""The least a futures-based asyncio beanstalkd client can do: the benchmarks' yardstick.

Not part of beanstalkt, and not a client to use: no validation, no reconnects,
no timeouts, no cancellation rules, no YAML. What it does is what every
futures-based client must do at the very least, so beanstalkt's figures divided
by its figures say how much our safety and features cost, on any machine:

* one :class:`asyncio.Future` per command and a FIFO of them (replies come in
  order);
* the commands of one loop turn joined and written with one ``transport.write``;
* replies cut with ``bytes.find``; a ``RESERVED`` reply's body read by its length.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Optional

#: A reply: its first line (without CRLF) and, for ``RESERVED``/``FOUND``, the body.
Reply = tuple[bytes, Optional[bytes]]


class MinimalClient(asyncio.Protocol):
    """One connection; :meth:`send` returns the future of the command's reply."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._transport: Optional[asyncio.Transport] = None
        self._buffer = bytearray()
        self._waiters: deque[asyncio.Future[Reply]] = deque()
        self._outgoing: list[bytes] = []
        self._flush_scheduled = False

    @classmethod
    async def connect(cls, host: str, port: int) -> MinimalClient:
        """Open a connection to ``host:port``."""
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(cls, host, port)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """asyncio's callback: keep the transport."""
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def send(self, command: bytes) -> asyncio.Future[Reply]:
        """Queue ``command`` (CRLF included) for this loop turn's write."""
        future: asyncio.Future[Reply] = self._loop.create_future()
        self._waiters.append(future)
        self._outgoing.append(command)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        assert self._transport is not None
        self._transport.write(b"".join(self._outgoing))
        self._outgoing.clear()

    def data_received(self, data: bytes) -> None:
        """asyncio's callback: resolve the waiters whose replies are complete."""
        buffer = self._buffer
        buffer += data
        start = 0
        while self._waiters:
            end = buffer.find(b"\r\n", start)
            if end < 0:
                break
            line = bytes(buffer[start:end])
            body: Optional[bytes] = None
            if line.startswith((b"RESERVED ", b"FOUND ")):
                size = int(line.rsplit(b" ", 1)[1])
                body_end = end + 2 + size
                if len(buffer) < body_end + 2:
                    break
                body = bytes(buffer[end + 2 : body_end])
                start = body_end + 2
            else:
                start = end + 2
            self._waiters.popleft().set_result((line, body))
        del buffer[:start]

    def close(self) -> None:
        """Close the connection."""
        if self._transport is not None:
            self._transport.close()

    # The few commands the benchmarks use.

    async def use(self, tube: str) -> None:
        """``use``."""
        await self.send(b"use %s\r\n" % tube.encode())

    async def watch(self, tube: str) -> None:
        """``watch``."""
        await self.send(b"watch %s\r\n" % tube.encode())

    def put(self, body: bytes, priority: int = 2**31, ttr: int = 120) -> asyncio.Future[Reply]:
        """``put``: the future of its reply (``INSERTED <id>``), with no coroutine around it,
        as beanstalkt's own ``put`` returns a future."""
        return self.send(b"put %d 0 %d %d\r\n%s\r\n" % (priority, ttr, len(body), body))

    async def reserve(self, timeout: int = 0) -> Optional[tuple[int, bytes]]:
        """``reserve-with-timeout``; ``None`` on ``TIMED_OUT``."""
        line, body = await self.send(b"reserve-with-timeout %d\r\n" % timeout)
        if body is None:
            return None
        return int(line.split()[1]), body

    async def delete(self, job_id: int) -> None:
        """``delete``."""
        await self.send(b"delete %d\r\n" % job_id)

"""What beanstalkt relies on in Tornado beyond its documented API (see beanstalkt/_tornado.py).

If a Tornado upgrade breaks one of these, the client may still work, but
slower or noisier: these tests say which promise changed.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import warnings

from tornado.iostream import IOStream

from beanstalkt._tornado import current_asyncio_loop, start_read


async def stream_pair() -> tuple[IOStream, socket.socket]:
    """A connected IOStream and the plain socket at its other end."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    return IOStream(ours), theirs


async def test_a_read_with_bytes_waiting_returns_a_done_future() -> None:
    stream, peer = await stream_pair()
    try:
        peer.sendall(b"INSERTED 1\r\n")
        await asyncio.sleep(0.01)  # the bytes are in our socket's buffer now
        buffer = bytearray(1024)
        read = start_read(stream, buffer)
        assert read.done(), "read_into no longer reads inline: one loop turn per reply"
        assert bytes(buffer[: read.result()]) == b"INSERTED 1\r\n"
        pending = start_read(stream, buffer)
        assert not pending.done()  # nothing waiting: it completes later
        peer.sendall(b"x")
        assert await asyncio.wait_for(pending, 5) == 1
    finally:
        stream.close()
        peer.close()


def test_the_current_ioloop_names_the_asyncio_loop_it_will_run() -> None:
    from tornado.ioloop import IOLoop

    with warnings.catch_warnings():
        # Tornado on Python 3.12+ warns about IOLoop.current() with no running loop.
        warnings.simplefilter("ignore", DeprecationWarning)
        loop = current_asyncio_loop()
        ran_on: list[asyncio.AbstractEventLoop] = []

        def record() -> None:
            ran_on.append(asyncio.get_running_loop())
            IOLoop.current().stop()

        IOLoop.current().add_callback(record)
        IOLoop.current().start()
    assert ran_on == [loop]


async def test_closing_a_stream_fails_its_pending_read_quietly() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    stream, peer = await stream_pair()
    read = start_read(stream, bytearray(16))
    done = asyncio.Event()
    read.add_done_callback(lambda _future: done.set())
    stream.close()
    await asyncio.wait_for(done.wait(), 5)
    # Failed, and dropped unread (what the connection does with the read of a
    # stream it drops): nothing may be reported as never retrieved.
    assert "StreamClosedError" in repr(read)
    del read
    gc.collect()
    peer.close()
    assert reported == []

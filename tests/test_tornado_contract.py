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

from beanstalkt._tornado import current_asyncio_loop, reads_directly, start_read


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
        called: list[asyncio.Future[int]] = []
        read = start_read(stream, buffer, called.append)
        assert read.done(), "read_into no longer reads inline: one loop turn per reply"
        assert bytes(buffer[: read.result()]) == b"INSERTED 1\r\n"
        pending = start_read(stream, buffer, called.append)
        assert not pending.done()  # nothing waiting: it completes later
        peer.sendall(b"x")
        assert await asyncio.wait_for(pending, 5) == 1
        assert called == [pending]  # the inline read is not called back; the pending one is
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
    done = asyncio.Event()
    called: list[asyncio.Future[int]] = []

    def on_read(future: asyncio.Future[int]) -> None:
        called.append(future)
        done.set()

    read = start_read(stream, bytearray(16), on_read)
    stream.close()
    await asyncio.wait_for(done.wait(), 5)
    assert called == [read]
    # Failed, and dropped unread (what the connection does with the read of a
    # stream it drops): nothing may be reported as never retrieved.
    assert "StreamClosedError" in repr(read)
    del read
    gc.collect()
    peer.close()
    assert reported == []


async def test_a_pending_read_calls_back_from_the_event_handler_without_a_loop_turn() -> None:
    # The order of three callbacks shows it: ``send`` runs in loop iteration k
    # and queues ``mark`` for k+1; in k+1 the socket is readable (socketpair
    # delivers at once), so the stream's event handler runs after ``mark``,
    # which has queued ``later`` for k+2. Called from the handler, on_read comes
    # before ``later``; a plain future's done callback would come after it.
    loop = asyncio.get_running_loop()
    stream, peer = await stream_pair()
    order: list[str] = []
    finished = asyncio.Event()
    try:
        buffer = bytearray(64)

        def on_read(future: asyncio.Future[int]) -> None:
            order.append(f"read {future.result()}")
            # Tornado is done with the read: the next one may start right here.
            follow = start_read(stream, buffer, on_read)
            order.append("next done" if follow.done() else "next pending")
            finished.set()

        read = start_read(stream, buffer, on_read)
        assert not read.done()
        assert reads_directly(read), "Tornado keeps its pending read elsewhere now"

        def send() -> None:
            peer.sendall(b"DELETED\r\n")
            loop.call_soon(mark)

        def mark() -> None:
            order.append("mark")
            loop.call_soon(lambda: order.append("later"))

        loop.call_soon(send)
        await asyncio.wait_for(finished.wait(), 5)
        await asyncio.sleep(0)
        assert order == ["mark", "read 9", "next pending", "later"]
        assert bytes(buffer[:9]) == b"DELETED\r\n"
        peer.sendall(b"x")
    finally:
        stream.close()
        peer.close()


async def test_a_failing_read_callback_is_reported_and_leaves_the_stream_open() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    stream, peer = await stream_pair()
    try:

        def on_read(future: asyncio.Future[int]) -> None:
            raise RuntimeError("reader bug")

        read = start_read(stream, bytearray(16), on_read)
        peer.sendall(b"x")
        assert await asyncio.wait_for(read, 5) == 1
        assert [str(context["exception"]) for context in reported] == ["reader bug"]
        assert not stream.closed()
    finally:
        stream.close()
        peer.close()

"""Everything beanstalkt relies on in Tornado beyond its documented API, in one place.

The connection needs four behaviours Tornado has had since 5.0 but does not
promise in its documentation. Each is used only through this module, and
``tests/test_tornado_contract.py`` checks each one, so a Tornado release that
changes one fails loudly there instead of quietly slowing or breaking the
client:

1. :func:`start_read`: ``IOStream.read_into(buffer, partial=True)`` tries
   the socket at once and returns an **already-done** future when bytes were
   waiting. The reader handles such reads in a loop, without a loop turn each.
2. A read that has to wait is held in ``IOStream._read_future`` and resolved
   from the stream's event handler with ``set_result`` (``_finish_read``), or
   failed with ``set_exception`` when the stream closes (``_signal_closed``).
   :func:`start_read` puts a future of its own there, which calls the reader
   back at once instead of a loop turn later (asyncio runs a future's done
   callbacks with ``call_soon``): a lock-step caller's reply then costs the
   event-loop iterations of a bare ``await stream.read_into()`` loop, not one
   more. Should Tornado keep the read elsewhere, the reader gets the plain
   future's done callback: as correct, one loop turn slower per reply.
3. :func:`current_asyncio_loop`: ``IOLoop.current().asyncio_loop`` is the
   asyncio loop a not-yet-running Tornado IOLoop will run (the original
   beanstalkt's style: ``client.connect(cb); IOLoop.current().start()``).
4. Closing a stream fails its pending read future with ``StreamClosedError``
   (retrieved by Tornado: no "exception was never retrieved" noise), which is
   why the connection can drop a stream and forget its read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tornado.iostream import IOStream

#: Called with a read's future when it completes.
ReadCallback = Callable[["asyncio.Future[int]"], None]


_Future = asyncio.Future
_set_result = asyncio.Future.set_result
_set_exception = asyncio.Future.set_exception


class _DirectRead(_Future):  # type: ignore[type-arg]
    """A pending read's future that calls the reader back as it completes.

    A success comes from inside the stream's event handler, after Tornado has
    finished with the read (``_read_future`` cleared, its buffers restored), so
    the reader may start the next read from the callback. A failure (the stream
    closing) is called back from the loop, as a plain future's would be: the
    stream is in the middle of ``close()`` then.
    """

    # Set right after construction: no __init__ of our own (a Python frame per read).
    __slots__ = ("_on_read",)
    _on_read: ReadCallback

    def set_result(self, result: int) -> None:
        _set_result(self, result)
        try:
            self._on_read(self)
        except Exception as exc:
            # Reported as asyncio reports a failing callback; raised into
            # Tornado's event handler it would close the stream besides.
            self.get_loop().call_exception_handler(
                {"message": "beanstalkt read callback failed", "exception": exc, "future": self}
            )

    def set_exception(self, exception: object) -> None:
        _set_exception(self, exception)  # type: ignore[arg-type]
        loop = self.get_loop()
        if not loop.is_closed():  # a stream closed after its loop: nobody to tell
            loop.call_soon(self._on_read, self)


def start_read(stream: IOStream, buffer: bytearray, on_read: ReadCallback) -> asyncio.Future[int]:
    """Read into ``buffer`` whatever arrives; return the read's future.

    When bytes were waiting the future is already done and ``on_read`` is not
    called. Otherwise ``on_read(future)`` is called with the returned future
    when the read completes: straight from the stream's event handler when it
    succeeds, from the loop when it fails.
    """
    future: asyncio.Future[int] = stream.read_into(buffer, partial=True)  # type: ignore[assignment]
    if future.done():
        return future
    if getattr(stream, "_read_future", None) is future:
        # The plain future is dropped unresolved: nothing awaits it, and an
        # unresolved future is collected without a word.
        direct = _DirectRead(loop=future.get_loop())
        direct._on_read = on_read
        stream._read_future = direct
        return direct
    future.add_done_callback(on_read)
    return future


def reads_directly(future: asyncio.Future[int]) -> bool:
    """Whether a pending read from :func:`start_read` calls back without a loop turn."""
    return isinstance(future, _DirectRead)


def current_asyncio_loop() -> asyncio.AbstractEventLoop:
    """The asyncio loop of Tornado's current IOLoop (made current if there is none yet)."""
    from tornado.ioloop import IOLoop

    loop: asyncio.AbstractEventLoop = IOLoop.current().asyncio_loop  # type: ignore[attr-defined]
    return loop

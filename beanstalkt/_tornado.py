"""Everything beanstalkt relies on in Tornado beyond its documented API, in one place.

The connection needs three behaviours Tornado has had since 5.0 but does not
promise in its documentation. Each is used only through this module, and
``tests/test_tornado_contract.py`` checks each one, so a Tornado release that
changes one fails loudly there instead of quietly slowing or breaking the
client:

1. :func:`start_read`: ``IOStream.read_into(buffer, partial=True)`` tries
   the socket at once and returns an **already-done** future when bytes were
   waiting. The reader handles such reads in a loop, without a loop turn each.
2. :func:`current_asyncio_loop`: ``IOLoop.current().asyncio_loop`` is the
   asyncio loop a not-yet-running Tornado IOLoop will run (the original
   beanstalkt's style: ``client.connect(cb); IOLoop.current().start()``).
3. Closing a stream fails its pending read future with ``StreamClosedError``
   (retrieved by Tornado: no "exception was never retrieved" noise), which is
   why the connection can drop a stream and forget its read.
"""

from __future__ import annotations

import asyncio

from tornado.iostream import IOStream


def start_read(stream: IOStream, buffer: bytearray) -> asyncio.Future[int]:
    """Read into ``buffer`` whatever arrives; the future may already be done."""
    future: asyncio.Future[int] = stream.read_into(buffer, partial=True)  # type: ignore[assignment]
    return future


def current_asyncio_loop() -> asyncio.AbstractEventLoop:
    """The asyncio loop of Tornado's current IOLoop (made current if there is none yet)."""
    from tornado.ioloop import IOLoop

    loop: asyncio.AbstractEventLoop = IOLoop.current().asyncio_loop  # type: ignore[attr-defined]
    return loop

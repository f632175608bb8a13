"""Helpers of the I/O layer: TLS options, TCP keepalive, loss reasons, callbacks, delivery.

Kept apart from :mod:`beanstalkt.connection` so that the connection's own
module holds one thing, a connection's life; nothing here is public API.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import ssl as ssl_module
from asyncio.events import _get_running_loop
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional

from tornado.iostream import StreamClosedError

from ._tornado import current_asyncio_loop

if TYPE_CHECKING:
    from .connection import Keepalive, SSLOption
    from .pipeline import Event

logger = logging.getLogger("beanstalkt")


def ssl_context(option: SSLOption) -> Optional[ssl_module.SSLContext]:
    if option is None or option is False:
        return None
    if option is True:
        return ssl_module.create_default_context()
    if isinstance(option, ssl_module.SSLContext):
        return option
    raise TypeError(f"ssl must be True, False, None or an ssl.SSLContext, not {option!r}")


def set_keepalive(sock: socket.socket, keepalive: Keepalive) -> None:
    """Turn on TCP keepalive with ``keepalive``'s timings (where the OS lets us)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_KEEPIDLE", keepalive.idle),
        ("TCP_KEEPINTVL", keepalive.interval),
        ("TCP_KEEPCNT", keepalive.probes),
    ):
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, max(1, int(value)))
    user_timeout = getattr(socket, "TCP_USER_TIMEOUT", None)
    if user_timeout is not None:
        # Written data nobody acknowledges gives up after the same time.
        sock.setsockopt(socket.IPPROTO_TCP, user_timeout, int(keepalive.timeout * 1000))


def current_loop() -> asyncio.AbstractEventLoop:
    running = _get_running_loop()
    if running is not None:
        return running
    # Called before the loop runs (the original callback style:
    # client.connect(cb); IOLoop.current().start()): use Tornado's current loop.
    return current_asyncio_loop()


def reason_text(exc: BaseException) -> str:
    """A short, human reason for a connection error ("Connection refused", "timed out")."""
    if isinstance(exc, StreamClosedError) and exc.real_error is not None:
        # Tornado wraps the OS error ("Connection refused") in "Stream is closed".
        return reason_text(exc.real_error)
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timed out"
    if isinstance(exc, socket.gaierror) and exc.strerror:
        return exc.strerror
    if isinstance(exc, OSError) and exc.errno and not isinstance(exc, ssl_module.SSLError):
        # asyncio words a refusal "Connect call failed (...)"; the errno says it plainly.
        return os.strerror(exc.errno)
    text = str(exc)
    return text or type(exc).__name__


def run_callback(callback: Callable[..., Any], what: str, *args: Any) -> None:
    """Call a user's connection callback (plain or async); its failure is logged, not raised."""
    try:
        outcome = callback(*args)
    except Exception:
        logger.exception("%s callback failed", what)
        return
    if outcome is not None:
        task = asyncio.ensure_future(outcome)
        task.add_done_callback(functools.partial(log_callback_failure, what))


def log_callback_failure(what: str, future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("%s callback failed: %s", what, future.exception())


def deliver(events: list[Event]) -> None:
    """Resolve each caller's future with its result or exception (skipping those already done)."""
    for future, succeeded, value in events:
        if future.done():
            continue
        if succeeded:
            future.set_result(value)
        else:
            future.set_exception(value)


def completed() -> asyncio.Future[None]:
    """A future already done, made without a running loop (awaitable on any loop)."""
    loop = asyncio.new_event_loop()
    try:
        future: asyncio.Future[None] = loop.create_future()
        future.set_result(None)
    finally:
        loop.close()
    return future


def call_back(
    future: asyncio.Future[Any], callback: Callable[..., Any], with_result: bool = True
) -> None:
    """Call ``callback`` with the future's result, or its exception, when it is done."""

    def done(completed: asyncio.Future[Any]) -> None:
        if completed.cancelled():
            return
        error = completed.exception()
        if error is not None:
            callback(error)
        elif with_result:
            callback(completed.result())
        else:
            callback()

    future.add_done_callback(done)

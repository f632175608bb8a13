"""What keeps the console standing on a hostile network: pure checks and a guarded HTTP server.

* :func:`host_allowed` -- the ``Host`` allow-list against DNS rebinding: a page
  on ``http://rebind.example:8080`` whose name the attacker pointed at
  127.0.0.1 sends ``Host: rebind.example:8080`` and is refused.
* :func:`safe_next` -- the only redirect targets after sign-in are paths on
  this site.
* :class:`RateLimitedLog` -- one line per kind of trouble per period, however
  fast the trouble comes.
* :class:`ConsoleHTTPServer` -- Tornado's HTTP server with a cap on open
  connections: at the cap, the connection that has waited longest without
  sending a request header is closed to make room, so idle connections cannot
  starve a real request; ``accept()`` failing for lack of file descriptors
  pauses accepting for a moment (logged once per period) instead of spinning.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import resource
import socket
import time
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any, Optional

import tornado.httpserver
import tornado.httputil
import tornado.iostream
import tornado.web
from tornado.ioloop import IOLoop

log = logging.getLogger("beanstalkt.web")

#: Names always accepted in ``Host`` (IP literals are accepted too: see :func:`host_allowed`).
DEFAULT_ALLOWED_HOSTS = frozenset({"localhost"})
#: Seconds a connection may sit without a complete request header (also between requests).
IDLE_CONNECTION_TIMEOUT = 30.0
#: Seconds a request body may take to arrive.
BODY_TIMEOUT = 30.0
#: Largest request body read before the handler's checks (forms stream theirs; see app.py).
MAX_REQUEST_BODY = 16 << 10
#: Bytes buffered per connection by the I/O stream.
MAX_BUFFER_SIZE = 1 << 20
#: Seconds accepting pauses after ``accept()`` failed for lack of file descriptors.
ACCEPT_PAUSE = 0.25
_OUT_OF_DESCRIPTORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


def host_name(header: str) -> Optional[str]:
    """The host name of a ``Host`` header, lower case, without port, brackets or final dot.

    ``None`` when the header is not a well-formed ``host[:port]``.
    """
    text = header.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        name, rest = text[1:end], text[end + 1 :]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        return name or None
    name, colon, port = text.partition(":")
    if colon and not port.isdigit():
        return None  # a bare IPv6 address or garbage
    name = name[:-1] if name.endswith(".") else name
    return name or None


def host_allowed(header: Optional[str], allowed: Iterable[str]) -> bool:
    """True when a request's ``Host`` header names this console.

    Accepted: the names in ``allowed`` (``localhost``, the listen address and
    ``--allow-host`` names) and any IP address literal. An IP literal cannot be
    rebound: a browser sends ``Host: 10.0.0.5`` only to 10.0.0.5 itself, so a
    page of another site never gets that origin. A missing header (HTTP/1.0
    clients) is accepted: browsers always send one.
    """
    if header is None:
        return True
    name = host_name(header)
    if name is None:
        return False
    if name in {entry.lower().rstrip(".") for entry in allowed}:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def origin_allowed(origin: str, host_header: Optional[str], allowed: Iterable[str]) -> bool:
    """True when a WebSocket's ``Origin`` is this console's own origin.

    Same origin (``Origin``'s host and port equal the ``Host`` header) *and* an
    allowed host: a rebinding page has a matching pair, which the allow-list refuses.
    """
    parsed = urllib.parse.urlsplit(origin)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or host_header is None:
        return False
    return parsed.netloc.lower() == host_header.strip().lower() and host_allowed(
        host_header, allowed
    )


def safe_next(target: Optional[str]) -> str:
    """``target`` if it is a path on this site, else ``/``.

    Refused, as sent or percent-decoded: anything not starting with one ``/``
    (``//host``, ``/\\host``),
    any backslash, control character, space or non-ASCII character (browsers
    drop tabs and newlines, so ``/\\t/host`` would become ``//host``), a scheme
    or a host.
    """
    # Checked as sent and once percent-decoded: /%09/host, /%2F/host and /%5Chost are refused.
    for form in (target, urllib.parse.unquote(target or "")):
        if not form or not form.startswith("/") or form[1:2] in ("/", "\\"):
            return "/"
        if any(not 0x21 <= ord(char) <= 0x7E or char == "\\" for char in form):
            return "/"
        parts = urllib.parse.urlsplit(form)
        if parts.scheme or parts.netloc:
            return "/"
    return target or "/"


class RateLimitedLog:
    """Log a kind of message at most once per ``period`` seconds, counting the rest.

    ``key`` groups messages; the next line logged for a key says how many were
    suppressed since the last one.
    """

    def __init__(
        self,
        logger: logging.Logger,
        period: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.period = period
        self.clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: Any) -> bool:
        """Log ``message % args`` unless ``key`` was logged less than ``period`` ago."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            message += " (%d more like this since the last report)"
            args = (*args, suppressed)
        self.logger.warning(message, *args)
        return True


def default_max_connections() -> int:
    """Open connections allowed: the file-descriptor limit less room for everything else."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 4096
    return max(16, min(4096, soft - 128))


class _HeaderWatch(tornado.httputil.HTTPMessageDelegate):
    """Passes a request through; tells its server when the request's header is complete."""

    def __init__(
        self, inner: tornado.httputil.HTTPMessageDelegate, on_headers: Callable[[], None]
    ) -> None:
        self.inner = inner
        self.on_headers = on_headers

    def headers_received(
        self,
        start_line: tornado.httputil.RequestStartLine | tornado.httputil.ResponseStartLine,
        headers: tornado.httputil.HTTPHeaders,
    ) -> Any:
        self.on_headers()
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Any:
        return self.inner.data_received(chunk)

    def finish(self) -> None:
        self.inner.finish()

    def on_connection_close(self) -> None:
        self.inner.on_connection_close()


class ConsoleHTTPServer(tornado.httpserver.HTTPServer):
    """An HTTP server that stays reachable under a flood of idle connections.

    At most ``max_connections`` connections are open. When a new one arrives
    at the cap, the connection that has waited longest for a request header
    (a new connection, or a keep-alive one between requests) is closed; when
    every connection is busy (a request in progress, a WebSocket), the new
    one is. ``idle_connection_timeout`` and ``body_timeout`` close slow
    senders in any case.
    """

    def initialize(  # type: ignore[override]
        self,
        request_callback: Any,
        max_connections: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("idle_connection_timeout", IDLE_CONNECTION_TIMEOUT)
        kwargs.setdefault("body_timeout", BODY_TIMEOUT)
        kwargs.setdefault("max_buffer_size", MAX_BUFFER_SIZE)
        kwargs.setdefault("max_body_size", MAX_REQUEST_BODY)
        super().initialize(request_callback, **kwargs)
        self.max_connections = max_connections or default_max_connections()
        self.log = RateLimitedLog(log)
        # Insertion order is age: the first waiting stream is the oldest idle one.
        self._open: dict[tornado.iostream.IOStream, None] = {}
        self._waiting: dict[tornado.iostream.IOStream, None] = {}

    @property
    def open_connections(self) -> int:
        """Connections open now (closed ones are noticed at the next accept)."""
        self._prune()
        return len(self._open)

    def _prune(self) -> None:
        for stream in [stream for stream in self._open if stream.closed()]:
            del self._open[stream]
            self._waiting.pop(stream, None)

    def handle_stream(self, stream: tornado.iostream.IOStream, address: tuple[Any, ...]) -> None:
        if len(self._open) >= self.max_connections:
            self._prune()
        if len(self._open) >= self.max_connections:
            victim = next(iter(self._waiting), None)
            if victim is None:
                self.log.warning(
                    "refused", "%d connections open, all busy: refused a new one", len(self._open)
                )
                stream.close()
                return
            self.log.warning(
                "evicted",
                "%d connections open: closed the longest idle one to make room",
                len(self._open),
            )
            del self._waiting[victim]
            del self._open[victim]
            victim.close()
        self._open[stream] = None
        self._waiting[stream] = None
        super().handle_stream(stream, address)

    def start_request(
        self, server_conn: object, request_conn: tornado.httputil.HTTPConnection
    ) -> tornado.httputil.HTTPMessageDelegate:
        delegate = super().start_request(server_conn, request_conn)
        stream = getattr(request_conn, "stream", None)
        if stream is None:
            return delegate
        # Waiting for a (next) request header: evictable, and now the youngest.
        self._waiting.pop(stream, None)
        if stream in self._open:
            self._waiting[stream] = None
        return _HeaderWatch(delegate, lambda: self._waiting.pop(stream, None))

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = self._accept_on(sock)

    def _accept_on(self, sock: socket.socket) -> Callable[[], None]:
        """Accept connections on ``sock`` (Tornado's loop, plus a pause when out of fds)."""
        loop = IOLoop.current()
        state = {"removed": False, "listening": True}

        def ready(_fd: Any, _events: int) -> None:
            for _ in range(128):  # let other callbacks run between bursts
                if state["removed"]:
                    return
                try:
                    connection, address = sock.accept()
                except BlockingIOError:
                    return
                except ConnectionAbortedError:
                    continue
                except OSError as error:
                    if error.errno not in _OUT_OF_DESCRIPTORS:
                        raise
                    self.log.warning(
                        "accept",
                        "cannot accept a connection: %s; pausing %g s",
                        error,
                        ACCEPT_PAUSE,
                    )
                    self._make_room()
                    loop.remove_handler(sock)
                    state["listening"] = False
                    loop.call_later(ACCEPT_PAUSE, resume)
                    return
                self._handle_connection(connection, address)

        def resume() -> None:
            if not state["removed"] and not state["listening"]:
                state["listening"] = True
                loop.add_handler(sock, ready, IOLoop.READ)

        def remove() -> None:
            state["removed"] = True
            if state["listening"]:
                loop.remove_handler(sock)

        loop.add_handler(sock, ready, IOLoop.READ)
        return remove

    def _make_room(self) -> None:
        self._prune()
        victim = next(iter(self._waiting), None)
        if victim is not None:
            del self._waiting[victim]
            self._open.pop(victim, None)
            victim.close()


@tornado.web.stream_request_body
class ForeignHostHandler(tornado.web.RequestHandler):
    """Every request whose ``Host`` is not this console's: 421, no page, no token, no body read.

    This is the DNS-rebinding guard: a hostile page whose own name now
    resolves to this machine gets nothing it could read or submit.
    """

    def set_default_headers(self) -> None:
        # Plain text, no policy: what a rebinding page's own script could do does not depend
        # on this answer's headers, and the tests run that script here.
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")

    def check_xsrf_cookie(self) -> None:
        pass  # refused anyway, before any token matters

    def prepare(self) -> None:
        self.set_status(421, "Misdirected Request")
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(
            "This console does not answer to that host name. Use its address, or start it "
            "with --allow-host NAME.\n"
        )

    def data_received(self, chunk: bytes) -> None:
        pass


class ConsoleApplication(tornado.web.Application):
    """The console's routes behind the ``Host`` allow-list, checked before any routing."""

    def find_handler(
        self, request: tornado.httputil.HTTPServerRequest, **kwargs: Any
    ) -> tornado.web._HandlerDelegate:
        # settings["console_options"] is app.ConsoleOptions: its allowed_hosts.
        allowed: frozenset[str] = self.settings["console_options"].allowed_hosts
        if not host_allowed(request.headers.get("Host"), allowed):
            return self.get_handler_delegate(request, ForeignHostHandler)
        return super().find_handler(request, **kwargs)


def log_request(handler: tornado.web.RequestHandler) -> None:
    """The access log line: method, path without the query, status, time, client.

    The query is left out on purpose: it is where a careless link carries
    credentials, and an access log is read by more people than the console.
    """
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    request = handler.request
    logging.getLogger("tornado.access").log(
        level,
        "%d %s %s (%s) %.1fms",
        status,
        request.method,
        request.path,
        request.remote_ip,
        1000.0 * request.request_time(),
    )


__all__ = [
    "DEFAULT_ALLOWED_HOSTS",
    "ConsoleApplication",
    "ForeignHostHandler",
    "MAX_REQUEST_BODY",
    "ConsoleHTTPServer",
    "RateLimitedLog",
    "default_max_connections",
    "host_allowed",
    "host_name",
    "log_request",
    "origin_allowed",
    "safe_next",
]

"""The Tornado application of the web console: pages, actions, live feed, access checks.

Every page and action goes through :class:`BaseHandler`, which checks access
(token or basic auth, when configured), adds strict security headers and turns
every failure into a short message page with a 4xx/5xx status (never a
traceback). Every action is a POST checked by Tornado's XSRF protection and
refused outright in read-only mode.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import os
import secrets
import urllib.parse
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Optional

import tornado.httputil
import tornado.web
import tornado.websocket

from ... import (
    DEFAULT_PRIORITY,
    DEFAULT_TTR,
    BeanstalkConnectionError,
    BeanstalkException,
    Draining,
    Job,
    JobTooBig,
    NotFound,
    StatsJob,
)
from ...models import Body
from ...protocol import MAX_UINT32
from ._tube_ops import MAX_BULK_DELETE
from .failures import FailureReader, attach_failure
from .guard import (
    DEFAULT_ALLOWED_HOSTS,
    ConsoleApplication,
    log_request,
    origin_allowed,
    safe_next,
)
from .live import LiveServer, Monitor, ServerDown
from .render import (
    BadInput,
    BodyView,
    check_tube,
    duration,
    parse_count,
    parse_job_id,
    view_body,
)
from .view import View, parse_view, select

log = logging.getLogger("beanstalkt.web")

HERE = os.path.dirname(os.path.abspath(__file__))
# Signed cookies use the *_secure_cookie names: Tornado before 6.3 has only those.
SESSION_COOKIE = "beanstalkt_session"
FLASH_COOKIE = "beanstalkt_flash"
#: Largest body of an action form other than put (a few fields and the XSRF token).
MAX_FORM_BODY = 16 << 10
#: beanstalkd's default max-job-size, assumed while the server's own is not known yet.
DEFAULT_MAX_JOB_SIZE = 65_535
#: Content-Security-Policy: only our own files, no inline script or style, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self' ws: wss:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(frozen=True)
class ConsoleOptions:
    """What the console allows and how it checks access."""

    read_only: bool = False
    token: Optional[str] = None
    basic_auth: Optional[tuple[str, str]] = None
    #: Host names accepted in the ``Host`` header besides IP literals (DNS rebinding guard).
    allowed_hosts: frozenset[str] = DEFAULT_ALLOWED_HOSTS
    #: Mark every cookie ``Secure`` (set when the console serves HTTPS, or sits behind a TLS proxy).
    secure_cookies: bool = False

    @property
    def needs_auth(self) -> bool:
        """True when a token or basic-auth credentials are configured."""
        return self.token is not None or self.basic_auth is not None


class Problem(tornado.web.HTTPError):
    """A failure to show the user: HTTP ``status``, a title and a one-paragraph message."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(status, reason=None)
        self.title = title
        self.message = message


@dataclass
class JobView:
    """A job as the tube and job pages show it."""

    id: int
    stats: Optional[StatsJob]
    view: BodyView
    #: Why the worker buried it (its failure record), when known.
    failure: Optional[dict[str, Any]] = None
    #: Why there is no failure record to show (empty when there is one or none was looked for).
    failure_note: str = ""


def tube_url(server: int, tube: str, action: str = "") -> str:
    """The path of a tube page (or of one of its actions); the name is fully escaped."""
    path = f"/server/{server}/tube/{urllib.parse.quote(tube, safe='')}"
    return f"{path}/{action}" if action else path


def job_url(server: int, job_id: int, action: str = "") -> str:
    """The path of a job page (or of one of its actions)."""
    path = f"/server/{server}/job/{job_id}"
    return f"{path}/{action}" if action else path


class BaseHandler(tornado.web.RequestHandler):
    """Access checks, security headers, message pages and helpers for every page."""

    #: Login and static pages skip the access check.
    requires_access = True

    @property
    def monitor(self) -> Monitor:
        """The live view of every server."""
        monitor: Monitor = self.settings["monitor"]
        return monitor

    @property
    def console_options(self) -> ConsoleOptions:
        """The console's options."""
        options: ConsoleOptions = self.settings["console_options"]
        return options

    def set_default_headers(self) -> None:
        self.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("Cache-Control", "no-store")

    def prepare(self) -> None:
        if self.requires_access:
            check_access(self)

    def get_template_namespace(self) -> dict[str, Any]:
        namespace = super().get_template_namespace()
        flash = self.get_secure_cookie(FLASH_COOKIE, max_age_days=1)
        if flash is not None:
            self.clear_cookie(FLASH_COOKIE, path="/")
        namespace.update(
            read_only=self.console_options.read_only,
            flash=flash.decode("utf-8", "replace") if flash else "",
            tube_url=tube_url,
            job_url=job_url,
            duration=duration,
        )
        return namespace

    def flash(self, message: str) -> None:
        """Show ``message`` once, on the next page (a signed cookie, so nobody can forge it)."""
        self.set_secure_cookie(
            FLASH_COOKIE,
            message,
            expires_days=None,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=cookies_secure(self),
        )

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, Problem):
            title, message = error.title, error.message
        elif isinstance(error, tornado.web.HTTPError):
            title = self._reason
            message = _http_error_message(status_code, error)
        else:
            title = "Internal error"
            message = "The console failed to handle this request; the details are in its log."
        if status_code == 401 and self.console_options.basic_auth is not None:
            self.set_header("WWW-Authenticate", 'Basic realm="beanstalkt web console"')
        if status_code == 401 and self.console_options.token is not None:
            self.render(
                "login.html", title=title, message=message, next_url=safe_next(self.request.path)
            )
            return
        self.render("message.html", status=status_code, title=title, message=message)

    def server(self, index: str) -> LiveServer:
        """The server numbered ``index`` in the console's list, or a 404 page."""
        servers = self.monitor.servers
        if not (index.isascii() and index.isdigit()) or int(index) >= len(servers):
            raise Problem(404, "Unknown server", f"There is no server number {index!r}.")
        return servers[int(index)]

    def argument(self, name: str, default: Optional[str] = None) -> str:
        """A form field, unstripped; a missing required one is a 400 page."""
        value = self.get_body_argument(name, default, strip=False)
        if value is None:
            raise Problem(400, "Missing field", f"The form field {name!r} is required.")
        return value


def _http_error_message(status_code: int, error: tornado.web.HTTPError) -> str:
    if status_code == 403 and "xsrf" in (error.log_message or "").lower():
        return (
            "This request was refused: it did not carry the console's XSRF token. "
            "Reload the page and try again."
        )
    if status_code == 404:
        return "There is no such page."
    if status_code == 405:
        return "This page does not accept that method (actions are POST forms)."
    return "The request could not be handled."


def check_access(handler: tornado.web.RequestHandler) -> None:
    """Let the request through, or raise a 401 :class:`Problem`.

    A valid token (``Authorization: Bearer`` or the login form) or basic-auth
    pair sets a signed session cookie, which is what the browser shows
    afterwards, the WebSocket included. Only headers are read: this runs
    before any request body. A token in the query string is never accepted
    (it would stay in logs and history); such a request is sent to the
    sign-in form without it.
    """
    options: ConsoleOptions = handler.settings["console_options"]
    if not options.needs_auth:
        return
    if handler.get_secure_cookie(SESSION_COOKIE, max_age_days=1) == b"ok":
        return
    header = handler.request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    accepted = False
    if options.token is not None:
        if "token" in handler.request.query_arguments and handler.request.method == "GET":
            # Out of the address bar and history: the browser keeps only the target.
            target = urllib.parse.quote(safe_next(handler.request.path), safe="/")
            handler.redirect("/login?next=" + target, status=303)
            raise tornado.web.Finish()
        offered = credentials if scheme.lower() == "bearer" else None
        accepted = offered is not None and _same(offered, options.token)
    elif options.basic_auth is not None and scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(credentials).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = password = ""
        expected_user, expected_password = options.basic_auth
        # Both compared, always: the time taken does not tell which one was wrong.
        user_ok = _same(user, expected_user)
        accepted = _same(password, expected_password) and user_ok
    if not accepted:
        raise Problem(
            401,
            "Sign in",
            "This console is protected: "
            + ("enter its access token." if options.token else "sign in with its user name."),
        )
    set_session(handler)


def _same(offered: str, expected: str) -> bool:
    return hmac.compare_digest(offered.encode("utf-8"), expected.encode("utf-8"))


def cookies_secure(handler: tornado.web.RequestHandler) -> bool:
    """True when cookies must be ``Secure``: served over HTTPS, or told so (TLS proxy)."""
    options: ConsoleOptions = handler.settings["console_options"]
    return options.secure_cookies or handler.request.protocol == "https"


def set_session(handler: tornado.web.RequestHandler) -> None:
    """Remember this browser as signed in (until it closes, or for a day at most)."""
    handler.set_secure_cookie(
        SESSION_COOKIE,
        "ok",
        expires_days=None,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=cookies_secure(handler),
    )


class FormHandler(BaseHandler):
    """A POST form whose body is read only after the access checks passed.

    Tornado reads a request body before ``prepare`` unless the handler streams
    it; these handlers do, so a request without credentials (or to a
    read-only console) is refused after its header, whatever ``Content-Length``
    it announces, and a body larger than :meth:`body_limit` is refused unread.
    The XSRF check needs the form's ``_xsrf`` field, so it runs once the body is in.
    """

    def body_limit(self, *args: str) -> int:
        """Most bytes this form's body may have."""
        return MAX_FORM_BODY

    def before_body(self) -> None:
        """More checks on the request's header, before its body is read."""

    def prepare(self) -> None:
        super().prepare()
        self.before_body()
        self._chunks: list[bytes] = []
        self._body_checked = False
        connection = self.request.connection
        if connection is not None and hasattr(connection, "set_max_body_size"):
            connection.set_max_body_size(self.body_limit(*self.path_args))

    def data_received(self, chunk: bytes) -> None:
        self._chunks.append(chunk)

    def check_xsrf_cookie(self) -> None:
        # Called by Tornado before prepare(), when the body is not read yet: later.
        if getattr(self, "_body_checked", False):
            super().check_xsrf_cookie()

    def read_form(self) -> None:
        """Parse the received body into the form fields, then check its XSRF token."""
        body = b"".join(self._chunks)
        self._chunks = []
        self.request.body = body
        tornado.httputil.parse_body_arguments(
            self.request.headers.get("Content-Type", ""),
            body,
            self.request.body_arguments,
            self.request.files,
            self.request.headers,
        )
        for name, values in self.request.body_arguments.items():
            self.request.arguments.setdefault(name, []).extend(values)
        self._body_checked = True
        self.check_xsrf_cookie()


@tornado.web.stream_request_body
class LoginHandler(FormHandler):
    """``GET/POST /login``: the token form (when the console uses a token).

    The token comes once, in the POST body; the answer is a redirect (303) to
    the page asked for, so the form's page never stays in the history.
    """

    requires_access = False

    def get(self) -> None:
        if self.console_options.token is None:
            self.redirect("/")
            return
        self.render(
            "login.html",
            title="Sign in",
            message="",
            next_url=safe_next(self.get_query_argument("next", "/")),
        )

    def post(self) -> None:
        self.read_form()
        if self.console_options.token is None:
            raise Problem(404, "No sign-in", "This console does not use an access token.")
        if not _same(self.argument("token"), self.console_options.token):
            raise Problem(401, "Wrong token", "That is not this console's access token.")
        set_session(self)
        # Only a path on this site: never an open redirect.
        self.redirect(safe_next(self.get_body_argument("next", "/")), status=303)


class OverviewHandler(BaseHandler):
    """``GET /``: every server and its tubes, problems first, updated live by ``console.js``."""

    def get(self) -> None:
        view = View()
        servers = []
        for server in self.monitor.servers:
            rows, matched = select(server.sorted_rows(view.sort), view)
            servers.append({**server.header(), "tubes": rows, "matched": matched})
        self.render("overview.html", servers=servers, limit=view.limit)


class OverviewJSONHandler(BaseHandler):
    """``GET /api/overview``: every server, every tube, and the history so far."""

    def get(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.write(json.dumps(self.monitor.overview()))


#: Messages a tab may leave unread before the console drops its feed.
MAX_UNSENT = 64


class LiveSocket(tornado.websocket.WebSocketHandler):
    """``/live``: a WebSocket sending every server's snapshot after each poll."""

    def prepare(self) -> None:
        check_access(self)

    def get_compression_options(self) -> dict[str, Any]:
        """Compress the feed (permessage-deflate): it is counts and names, no secret."""
        return {}

    def check_origin(self, origin: str) -> bool:
        """Only pages of this console, on an allowed host, may open the feed."""
        options: ConsoleOptions = self.settings["console_options"]
        return origin_allowed(origin, self.request.headers.get("Host"), options.allowed_hosts)

    @property
    def monitor(self) -> Monitor:
        """The live view of every server."""
        monitor: Monitor = self.settings["monitor"]
        return monitor

    def open(self, *args: str, **kwargs: str) -> None:
        self._unsent = 0
        self.view = View()
        self.sent: dict[int, dict[str, Any]] = {}
        self.send(self.monitor.hello())
        self._resend()
        self.monitor.subscribe(self.on_poll)

    def _resend(self) -> None:
        self.sent = {server.index: {} for server in self.monitor.servers}
        for server in self.monitor.servers:
            self.on_poll(server)

    def send(self, message: dict[str, Any]) -> None:
        """Send one message; a closed socket just stops listening.

        A tab that stops reading (a frozen browser, a stuck network) is
        dropped after :data:`MAX_UNSENT` messages, so its buffer cannot grow
        without bound; a live tab reconnects by itself.
        """
        if self._unsent >= MAX_UNSENT:
            self.monitor.unsubscribe(self.on_poll)
            self.close(1008, "too slow: messages not read")
            return
        try:
            written = self.write_message(json.dumps(message, separators=(",", ":")))
        except tornado.websocket.WebSocketClosedError:
            self.monitor.unsubscribe(self.on_poll)
            return
        self._unsent += 1
        written.add_done_callback(self._written)

    def _written(self, _future: Any) -> None:
        self._unsent -= 1

    def on_poll(self, server: LiveServer) -> None:
        """After a poll of ``server``: what changed in this tab's view of it."""
        message = server.tab_message(self.view, self.sent.setdefault(server.index, {}))
        if message is not None:
            self.send(message)

    def on_message(self, message: Any) -> None:
        """The tab's view: ``{"sort", "filter", "limit"}`` or ``{"tube": [server, name]}``."""
        try:
            self.view = parse_view(message if isinstance(message, str) else "")
        except ValueError as error:
            self.send({"type": "error", "message": str(error)})
            return
        self._resend()

    def on_close(self) -> None:
        self.monitor.unsubscribe(self.on_poll)


async def call(server: LiveServer, awaitable: Any, not_found: str) -> Any:
    """Await a client command; map the server's refusals to message pages."""
    try:
        return await awaitable
    except NotFound as error:
        raise Problem(404, "Not found", not_found) from error
    except JobTooBig as error:
        raise Problem(
            413, "Job too big", f"beanstalkd refused the body as too big ({error.status})."
        ) from error
    except Draining as error:
        raise Problem(503, "Draining", "beanstalkd is draining: it accepts no new jobs.") from error
    except BeanstalkConnectionError as error:
        server.connection_lost(error)
        raise Problem(
            503, "Server down", f"Lost the connection to {server.address}: {error}"
        ) from error
    except BeanstalkException as error:
        raise Problem(502, "Refused", f"beanstalkd answered {error}.") from error


def connected(server: LiveServer) -> Any:
    """The server's client and tube commands, or a 503 page."""
    try:
        return server.require()
    except ServerDown as error:
        raise Problem(503, "Server down", str(error)) from error


def tube_name(raw: str) -> str:
    """A tube name from a URL or a form, or a 400 page."""
    try:
        return check_tube(raw)
    except BadInput as error:
        raise Problem(400, "Invalid tube name", str(error)) from error


def job_id_of(raw: str) -> int:
    """A job id from a URL, or a 400 page."""
    try:
        return parse_job_id(raw)
    except BadInput as error:
        raise Problem(400, "Invalid job id", str(error)) from error


def count(handler: BaseHandler, field: str, what: str, default: int, low: int = 0) -> int:
    """A whole number from a form field, or a 400 page."""
    raw = handler.get_body_argument(field, None, strip=True)
    if raw is None or raw == "":
        return default
    try:
        return parse_count(what, raw, low)
    except BadInput as error:
        raise Problem(400, "Invalid number", str(error)) from error


async def job_view(server: LiveServer, job_id: int, body: Body) -> JobView:
    """A job's stats (``None`` if it went away meanwhile) and its body, ready to show."""
    client, _ = connected(server)
    try:
        stats: Optional[StatsJob] = await client.stats_job(job_id)
    except NotFound:
        stats = None
    raw = body if isinstance(body, bytes) else body.encode("utf-8")
    return JobView(job_id, stats, view_body(raw))


class TubeHandler(BaseHandler):
    """``GET /server/N/tube/NAME``: the tube's stats and its next ready, delayed, buried job."""

    async def get(self, index: str, raw_tube: str) -> None:
        server = self.server(index)
        tube = tube_name(raw_tube)
        client, ops = connected(server)
        stats = await call(server, client.stats_tube(tube), f"There is no tube {tube!r}.")
        jobs: list[tuple[str, Optional[JobView]]] = []
        for state, peek in (
            ("ready", ops.peek_ready),
            ("delayed", ops.peek_delayed),
            ("buried", ops.peek_buried),
        ):
            job = await call(server, _or_none(peek(tube)), "")
            view = None if job is None else await job_view(server, job.id, job.body)
            if view is not None:
                await attach_failure(self.settings.get("failure_reader"), server, view)
            jobs.append((state, view))
        self.render(
            "tube.html",
            server=server,
            tube=tube,
            stats=stats,
            jobs=jobs,
            max_job_size=server.max_job_size,
            default_priority=DEFAULT_PRIORITY,
            default_ttr=DEFAULT_TTR,
        )


async def _or_none(peeked: Awaitable[Job[bytes]]) -> Optional[Job[bytes]]:
    try:
        return await peeked
    except NotFound:  # no job in that state: a normal answer
        return None


class JobHandler(BaseHandler):
    """``GET /server/N/job/ID``: one job, whatever its tube and state."""

    async def get(self, index: str, raw_id: str) -> None:
        server = self.server(index)
        job_id = job_id_of(raw_id)
        client, _ = connected(server)
        job = await call(server, client.peek(job_id), f"There is no job {job_id}.")
        view = await job_view(server, job_id, job.body)
        await attach_failure(self.settings.get("failure_reader"), server, view)
        self.render("job.html", server=server, job=view)


class ActionHandler(FormHandler):
    """Base of every POST action: refused in read-only mode, redirects back with a message.

    Access and read-only mode are checked before the body is read; then the
    form and its XSRF token; then :meth:`act` runs.
    """

    def before_body(self) -> None:
        if self.console_options.read_only:
            raise Problem(
                403, "Read-only", "This console is read-only: it changes nothing on the servers."
            )

    async def post(self, index: str, target: str, action: str) -> None:
        self.read_form()
        await self.act(index, target, action)

    async def act(self, index: str, target: str, action: str) -> None:
        """Do ``action`` on server ``index``'s tube or job ``target`` (each subclass)."""
        raise NotImplementedError

    def done(self, message: str, url: str) -> None:
        """Show ``message`` on the page at ``url`` (a 303 redirect)."""
        self.flash(message)
        self.redirect(url, status=303)


@tornado.web.stream_request_body
class TubeActionHandler(ActionHandler):
    """``POST /server/N/tube/NAME/{kick,pause,put,delete-buried}``."""

    def body_limit(self, *args: str) -> int:
        """A put form may carry a whole job: the server's max-job-size, URL-encoded."""
        if len(args) == 3 and args[2] == "put":
            server = self.server(args[0])
            # Percent-encoding makes a byte at most three characters.
            return 3 * (server.max_job_size or DEFAULT_MAX_JOB_SIZE) + MAX_FORM_BODY
        return MAX_FORM_BODY

    async def act(self, index: str, raw_tube: str, action: str) -> None:
        server = self.server(index)
        tube = tube_name(raw_tube)
        client, ops = connected(server)
        here = tube_url(server.index, tube)
        if action == "kick":
            if self.get_body_argument("bound", "") == "all":
                # beanstalkd kicks buried jobs if there are any, else delayed ones.
                bound = MAX_UINT32
            else:
                bound = count(self, "bound", "The number of jobs to kick", 1, low=1)
            kicked = await call(server, ops.kick(tube, bound), f"There is no tube {tube!r}.")
            self.done(f"Kicked {kicked} job{'s' if kicked != 1 else ''} in {tube}.", here)
        elif action == "delete-buried":
            if self.get_body_argument("confirm", "", strip=True) != tube:
                raise Problem(
                    400,
                    "Not confirmed",
                    f"To delete the buried jobs of {tube}, type the tube's name in the form.",
                )
            wanted = min(
                count(self, "count", "The number of jobs", MAX_BULK_DELETE), MAX_BULK_DELETE
            )
            deleted = await call(server, ops.delete_buried(tube, wanted), "")
            left = (await call(server, client.stats_tube(tube), "")).get("current-jobs-buried", 0)
            self.done(
                f"Deleted {deleted} buried job{'s' if deleted != 1 else ''} of {tube}"
                + (f"; {left} still buried." if left else "."),
                here,
            )
        elif action == "pause":
            seconds = count(self, "delay", "The pause", 60)
            await call(server, client.pause_tube(tube, seconds), f"There is no tube {tube!r}.")
            self.done(f"Paused {tube} for {seconds} s." if seconds else f"Unpaused {tube}.", here)
        else:
            body = self.argument("body").encode("utf-8")
            limit = server.max_job_size
            if limit is not None and len(body) > limit:
                raise Problem(
                    413,
                    "Job too big",
                    f"The body is {len(body):,} bytes; this server accepts at most {limit:,}.",
                )
            priority = count(self, "priority", "The priority", DEFAULT_PRIORITY)
            delay = count(self, "delay", "The delay", 0)
            ttr = count(self, "ttr", "The TTR", DEFAULT_TTR, low=1)
            new_id = await call(server, ops.put(tube, body, priority, delay, ttr), "")
            self.done(f"Put job {new_id} into {tube}.", here)


@tornado.web.stream_request_body
class JobActionHandler(ActionHandler):
    """``POST /server/N/job/ID/{kick,delete,move}``; the form's ``back`` names the tube page."""

    async def act(self, index: str, raw_id: str, action: str) -> None:
        server = self.server(index)
        job_id = job_id_of(raw_id)
        client, ops = connected(server)
        back = self.get_body_argument("back", "", strip=False)
        here = tube_url(server.index, tube_name(back)) if back else "/"
        missing = f"There is no job {job_id} (or it is not in a state that allows this)."
        if action == "kick":
            await call(server, client.kick_job(job_id), missing)
            self.done(f"Kicked job {job_id}.", here)
        elif action == "delete":
            await call(server, client.delete(job_id), missing)
            self.done(f"Deleted job {job_id}.", here)
        else:
            target = tube_name(self.argument("tube").strip())
            if back and target == back:
                raise Problem(400, "Same tube", f"Job {job_id} is already in {target}.")
            new_id = await call(server, ops.move_job(job_id, target), missing)
            self.done(f"Moved job {job_id} to {target}; it is job {new_id} there.", here)


class NotFoundHandler(BaseHandler):
    """Every unknown path: a 404 message page."""

    def prepare(self) -> None:
        super().prepare()
        raise Problem(404, "Not found", "There is no such page.")


def make_app(
    monitor: Monitor,
    options: Optional[ConsoleOptions] = None,
    cookie_secret: Optional[str] = None,
    failure_reader: Optional[FailureReader] = None,
) -> tornado.web.Application:
    """The console's Tornado application, showing the servers of ``monitor``.

    ``failure_reader`` replaces ``failures.read_failure_records`` (tests, other record stores).
    """
    segment = r"([^/]+)"
    options = options or ConsoleOptions()
    return ConsoleApplication(
        [
            (r"/", OverviewHandler),
            (r"/login", LoginHandler),
            (r"/live", LiveSocket),
            (r"/api/overview", OverviewJSONHandler),
            (rf"/server/{segment}/tube/{segment}", TubeHandler),
            (
                rf"/server/{segment}/tube/{segment}/(kick|pause|put|delete-buried)",
                TubeActionHandler,
            ),
            (rf"/server/{segment}/job/{segment}", JobHandler),
            (rf"/server/{segment}/job/{segment}/(kick|delete|move)", JobActionHandler),
        ],
        default_handler_class=NotFoundHandler,
        template_path=os.path.join(HERE, "templates"),
        static_path=os.path.join(HERE, "static"),
        xsrf_cookies=True,
        xsrf_cookie_kwargs={
            "httponly": True,
            "samesite": "Strict",
            **({"secure": True} if options.secure_cookies else {}),
        },
        # A new secret per process: restarting the console signs everyone out.
        cookie_secret=cookie_secret or secrets.token_hex(32),
        autoescape="xhtml_escape",
        debug=False,
        serve_traceback=False,
        websocket_ping_interval=20,
        # The browser sends only small view settings; nothing else is accepted.
        websocket_max_message_size=4096,
        log_function=log_request,
        monitor=monitor,
        console_options=options,
        failure_reader=failure_reader,
    )


__all__ = ["MAX_UINT32", "ConsoleOptions", "Problem", "job_url", "make_app", "tube_url"]

"""The web console's endpoints, over real HTTP, against a real beanstalkd.

Each test starts the console's Tornado application on a free loopback port in
the test's own event loop, with a ``Monitor`` of one live server (the
``beanstalkd`` fixture) and one address where nothing listens.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from http.cookies import SimpleCookie
from typing import Any, Optional

import pytest
import tornado.httpclient
import tornado.httpserver
import tornado.testing
import tornado.websocket

import beanstalkt
from beanstalkt.ops.web import main as web_main
from beanstalkt.ops.web import parse_address
from beanstalkt.ops.web.app import ConsoleOptions, make_app
from beanstalkt.ops.web.guard import ConsoleHTTPServer
from beanstalkt.ops.web.live import Monitor
from beanstalkt.testing import BeanstalkdServer, free_port

SCRIPT_BODY = b"<script>document.title='owned'</script><b>x</b>"


class Session:
    """A tiny browser: keeps cookies, fetches pages, posts forms with or without XSRF."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies: dict[str, str] = {}
        self.http = tornado.httpclient.AsyncHTTPClient(force_instance=True)

    async def request(
        self,
        path: str,
        method: str = "GET",
        fields: Optional[dict[str, str]] = None,
        headers: Optional[dict[str, str]] = None,
    ) -> tornado.httpclient.HTTPResponse:
        all_headers = dict(headers or {})
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = urllib.parse.urlencode(fields or {}) if method == "POST" else None
        response = await self.http.fetch(
            self.base + path,
            method=method,
            body=body,
            headers=all_headers,
            follow_redirects=False,
            raise_error=False,
        )
        for header in response.headers.get_list("Set-Cookie"):
            cookie: SimpleCookie = SimpleCookie()
            cookie.load(header)
            for name, morsel in cookie.items():
                if morsel.value:
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
        return response

    async def get(self, path: str, **kwargs: Any) -> tornado.httpclient.HTTPResponse:
        return await self.request(path, **kwargs)

    async def post(
        self, path: str, fields: Optional[dict[str, str]] = None, xsrf: bool = True, **kwargs: Any
    ) -> tornado.httpclient.HTTPResponse:
        fields = dict(fields or {})
        if xsrf:
            fields["_xsrf"] = await self.xsrf_token()
        return await self.request(path, "POST", fields, **kwargs)

    async def xsrf_token(self) -> str:
        """The token a real page hands out (its form field; the cookie comes with it)."""
        page = await self.get("/server/0/tube/default")
        match = re.search(r'name="_xsrf" value="([^"]+)"', text(page))
        assert match, "the tube page carries no XSRF field"
        return match.group(1)

    def close(self) -> None:
        self.http.close()


class Console:
    """A running console: its monitor, an HTTP session and the live server's address."""

    def __init__(self, monitor: Monitor, session: Session, server: BeanstalkdServer) -> None:
        self.monitor = monitor
        self.session = session
        self.server = server

    async def refresh(self) -> None:
        """Poll every server now, so the next page shows the current counts."""
        for server in self.monitor.servers:
            await server.poll_once()


def text(response: tornado.httpclient.HTTPResponse) -> str:
    return (response.body or b"").decode("utf-8")


@pytest.fixture
def small_beanstalkd() -> Iterator[BeanstalkdServer]:
    """A beanstalkd that accepts bodies of at most 1 KiB."""
    with BeanstalkdServer(max_job_size=1024) as server:
        yield server


async def start_console(
    server: BeanstalkdServer, options: Optional[ConsoleOptions] = None
) -> tuple[Console, tornado.httpserver.HTTPServer]:
    dead = ("127.0.0.1", free_port())
    monitor = Monitor([(server.host, server.port), dead], interval=0.2)
    app = make_app(monitor, options)
    sock, port = tornado.testing.bind_unused_port()
    http = ConsoleHTTPServer(app)
    http.add_sockets([sock])
    monitor.start()
    await monitor.first_poll()
    return Console(monitor, Session(f"http://127.0.0.1:{port}"), server), http


@pytest.fixture
async def console(small_beanstalkd: BeanstalkdServer) -> AsyncIterator[Console]:
    running, http = await start_console(small_beanstalkd)
    yield running
    await stop_console(running, http)


async def stop_console(running: Console, http: tornado.httpserver.HTTPServer) -> None:
    running.session.close()
    http.stop()
    await running.monitor.stop()


@pytest.fixture
async def client(small_beanstalkd: BeanstalkdServer) -> AsyncIterator[beanstalkt.Client]:
    async with beanstalkt.Client(small_beanstalkd.host, small_beanstalkd.port) as connected:
        yield connected


async def put_in(client: beanstalkt.Client, tube: str, body: bytes, **kwargs: Any) -> int:
    await client.use(tube)
    job_id: int = await client.put(body, **kwargs)
    return job_id


async def bury_one(client: beanstalkt.Client, tube: str, body: bytes) -> int:
    """Put a job into ``tube`` and bury it; its id."""
    job_id = await put_in(client, tube, body)
    await client.reserve_job(job_id)
    await client.bury(job_id)
    return job_id


# ---------------------------------------------------------------------------
# Overview and live feed


async def test_overview_shows_every_tube_and_a_dead_server(
    console: Console, client: beanstalkt.Client
) -> None:
    await put_in(client, "emails", b"one")
    await put_in(client, "emails", b"two")
    await bury_one(client, "thumbnails", b"three")
    await console.refresh()
    page = await console.session.get("/")
    assert page.code == 200
    html = text(page)
    live, dead = console.monitor.servers
    assert f'<span class="address">{live.address}</span>' in html
    rows = dict(re.findall(r'<tr data-tube="([^"]+)"[^>]*>(.*?)</tr>', html, re.S))
    assert set(rows) == {"default", "emails", "thumbnails"}
    assert '<td data-field="ready">2</td>' in rows["emails"]
    assert '<td data-field="buried">1</td>' in rows["thumbnails"]
    assert 'href="/server/0/tube/emails"' in rows["emails"]
    down = html.split(f'<span class="address">{dead.address}</span>')[1]
    assert '<span class="state" data-field="state">down</span>' in down
    assert "Connection refused" in down


async def test_api_overview_is_json_with_totals_and_down_server(
    console: Console, client: beanstalkt.Client
) -> None:
    await put_in(client, "emails", b"one", delay=60)
    await console.refresh()
    response = await console.session.get("/api/overview")
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    data = json.loads(response.body)
    live, dead = data["servers"]
    assert live["up"] is True and dead["up"] is False
    assert live["totals"]["delayed"] == 1
    emails = next(tube for tube in live["tubes"] if tube["name"] == "emails")
    assert (emails["ready"], emails["delayed"], emails["total"]) == (0, 1, 1)
    # History points come every history_seconds / 60; the first poll made one.
    assert data["history"][0]["default"][-1][1:] == [0, 0]


async def test_live_feed_sends_new_counts_after_a_put(
    console: Console, client: beanstalkt.Client
) -> None:
    url = console.session.base.replace("http://", "ws://") + "/live"
    socket = await tornado.websocket.websocket_connect(url)
    try:
        hello = json.loads(await socket.read_message())  # type: ignore[arg-type]
        assert hello["type"] == "hello"
        assert [server["up"] for server in hello["servers"]] == [True, False]
        await put_in(client, "live-tube", b"job")
        while True:  # polls come every 0.2 s; wait for the one that saw the put
            message = json.loads(await socket.read_message())  # type: ignore[arg-type]
            assert message["type"] == "server"
            tubes = {tube["name"]: tube for tube in message["rows"]}
            if "live-tube" in tubes:
                break
        assert tubes["live-tube"]["ready"] == 1
        assert message["order"][0] == "live-tube"  # problems first: the one with a ready job
        # Deltas: once its rate and age settle, the row is named in the order but not re-sent
        # (the age grows by a second every fifth poll).
        for _ in range(50):
            message = json.loads(await socket.read_message())  # type: ignore[arg-type]
            if message["server"]["index"] == 0 and "live-tube" not in {
                tube["name"] for tube in message["rows"]
            }:
                break
        else:
            raise AssertionError("every message re-sent the unchanged row")
        assert "live-tube" in message["order"]
    finally:
        socket.close()


async def test_rates_are_jobs_per_second_between_polls(
    console: Console, client: beanstalkt.Client
) -> None:
    live = console.monitor.servers[0]
    await live.poll_once()
    await asyncio.gather(*(put_in(client, "rated", b"x") for _ in range(5)))
    await live.poll_once()
    # The tube is new in this poll: no rate for it yet, but the server-wide one counts.
    assert live.snapshot["put_rate"] > 0
    rated = next(tube for tube in live.snapshot["tubes"] if tube["name"] == "rated")
    assert rated["put_rate"] is None


# ---------------------------------------------------------------------------
# Tube and job pages


async def test_tube_page_shows_next_jobs_with_stats_and_safe_bodies(
    console: Console, client: beanstalkt.Client
) -> None:
    ready_id = await put_in(client, "page", b'{"to": "ada", "tags": [1, 2]}', priority=7, ttr=30)
    delayed_id = await put_in(client, "page", b"\x00\x01binary\xff", delay=120)
    buried_id = await bury_one(client, "page", SCRIPT_BODY)
    page = await console.session.get("/server/0/tube/page")
    assert page.code == 200
    html = text(page)
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    panels = dict(re.findall(r'<article class="job" data-state="(\w+)"(.*?)</article>', html, re.S))
    assert f'data-job="{ready_id}"' in panels["ready"]
    assert '<td data-field="pri">7</td>' in panels["ready"]
    assert '<td data-field="ttr">30 s</td>' in panels["ready"]
    assert "JSON, 29 bytes" in panels["ready"]
    assert "{\n  &quot;to&quot;: &quot;ada&quot;,\n  &quot;tags&quot;: [\n" in panels["ready"]
    assert f'data-job="{delayed_id}"' in panels["delayed"]
    assert "binary, shown as hex, 9 bytes" in panels["delayed"]
    assert "00 01 62 69 6e 61 72 79 ff" in panels["delayed"]
    assert '<th>delay left</th><td data-field="time-left">' in panels["delayed"]
    assert f'data-job="{buried_id}"' in panels["buried"]
    assert '<td data-field="buries">1</td>' in panels["buried"]
    assert (
        "&lt;script&gt;document.title=&#x27;owned&#x27;&lt;/script&gt;&lt;b&gt;x&lt;/b&gt;"
        in (panels["buried"])
    )
    assert "<script>document.title" not in html
    assert "<b>x</b>" not in html
    # Kick is offered for the delayed and buried job, not for the ready one.
    assert 'data-action="kick-job"' not in panels["ready"]
    assert 'data-action="kick-job"' in panels["buried"]


async def test_tube_page_of_an_empty_tube_says_so(console: Console) -> None:
    page = await console.session.get("/server/0/tube/default")
    assert page.code == 200
    for state in ("ready", "delayed", "buried"):
        assert f"No {state} job." in text(page)


async def test_tube_commands_leave_the_console_connection_on_default(
    console: Console, client: beanstalkt.Client
) -> None:
    await put_in(client, "visited", b"x")
    await client.use("default")
    assert (await console.session.get("/server/0/tube/visited")).code == 200
    live_client, _ = console.monitor.servers[0].require()
    assert await live_client.list_tube_used() == "default"


async def test_job_page_shows_any_job(console: Console, client: beanstalkt.Client) -> None:
    job_id = await put_in(client, "jobs", "héllo wörld".encode())
    page = await console.session.get(f"/server/0/job/{job_id}")
    assert page.code == 200
    assert "héllo wörld" in text(page)
    assert "text, 13 bytes" in text(page)
    assert 'href="/server/0/tube/jobs"' in text(page)


async def test_tube_names_with_slashes_and_dollars_round_trip(
    console: Console, client: beanstalkt.Client
) -> None:
    await put_in(client, "a/b$(c)", b"odd")
    await console.refresh()
    overview = text(await console.session.get("/"))
    assert 'href="/server/0/tube/a%2Fb%24%28c%29"' in overview
    page = await console.session.get("/server/0/tube/a%2Fb%24%28c%29")
    assert page.code == 200
    assert 'data-tube="a/b$(c)"' in text(page)


@pytest.mark.parametrize(
    ("path", "status", "phrase"),
    [
        ("/server/0/tube/nosuchtube", 404, "There is no tube &#x27;nosuchtube&#x27;."),
        ("/server/0/tube/-bad", 400, "does not start with a hyphen"),
        ("/server/0/tube/" + "x" * 201, 400, "at most 200 characters"),
        ("/server/0/tube/sp%20ace", 400, "uses only the characters"),
        ("/server/7/tube/default", 404, "There is no server number &#x27;7&#x27;."),
        ("/server/0/job/abc", 400, "A job id is a whole number from 1 to"),
        ("/server/0/job/0", 400, "A job id is a whole number from 1 to"),
        ("/server/0/job/999999", 404, "There is no job 999999."),
        ("/server/1/tube/default", 503, "is down"),
        ("/no/such/page", 404, "There is no such page."),
    ],
)
async def test_bad_requests_get_a_message_page(
    console: Console, path: str, status: int, phrase: str
) -> None:
    response = await console.session.get(path)
    assert response.code == status
    html = text(response)
    assert phrase in html
    assert f'<span class="status">{status}</span>' in html
    assert "Traceback" not in html


# ---------------------------------------------------------------------------
# Actions


async def test_kick_n_buried_jobs(console: Console, client: beanstalkt.Client) -> None:
    ids = [await bury_one(client, "kicks", b"job %d" % n) for n in range(3)]
    response = await console.session.post("/server/0/tube/kicks/kick", {"bound": "2"})
    assert response.code == 303
    assert response.headers["Location"] == "/server/0/tube/kicks"
    states = [(await client.stats_job(job_id))["state"] for job_id in ids]
    assert states == ["ready", "ready", "buried"]
    # The next page shows what happened, once.
    page = text(await console.session.get("/server/0/tube/kicks"))
    assert '<p class="flash" role="status">Kicked 2 jobs in kicks.</p>' in page
    assert "Kicked 2 jobs" not in text(await console.session.get("/server/0/tube/kicks"))


async def test_kick_delete_and_move_one_job(console: Console, client: beanstalkt.Client) -> None:
    buried = await bury_one(client, "one", b"buried")
    doomed = await put_in(client, "one", b"doomed")
    moving = await put_in(client, "one", b"moving", priority=42, ttr=17, delay=300)

    kicked = await console.session.post(f"/server/0/job/{buried}/kick", {"back": "one"})
    assert kicked.code == 303
    assert (await client.stats_job(buried))["state"] == "ready"

    deleted = await console.session.post(f"/server/0/job/{doomed}/delete", {"back": "one"})
    assert deleted.code == 303
    with pytest.raises(beanstalkt.NotFound):
        await client.peek(doomed)

    moved = await console.session.post(
        f"/server/0/job/{moving}/move", {"back": "one", "tube": "elsewhere"}
    )
    assert moved.code == 303
    with pytest.raises(beanstalkt.NotFound):
        await client.peek(moving)
    await client.use("elsewhere")
    new = await client.peek_delayed()
    assert new.body == b"moving" and new.id != moving
    stats = await client.stats_job(new.id)
    assert (stats["tube"], stats["pri"], stats["ttr"], stats["state"]) == (
        "elsewhere",
        42,
        17,
        "delayed",
    )
    assert 290 <= stats["time-left"] <= 300  # the delay it had left, not a new one
    flash = text(await console.session.get("/server/0/tube/one"))
    assert f"Moved job {moving} to elsewhere; it is job {new.id} there." in flash


async def test_move_to_the_same_tube_or_a_bad_name_is_refused(
    console: Console, client: beanstalkt.Client
) -> None:
    job_id = await put_in(client, "stay", b"x")
    same = await console.session.post(
        f"/server/0/job/{job_id}/move", {"back": "stay", "tube": "stay"}
    )
    assert same.code == 400
    bad = await console.session.post(
        f"/server/0/job/{job_id}/move", {"back": "stay", "tube": "a b"}
    )
    assert bad.code == 400
    assert (await client.stats_job(job_id))["state"] == "ready"


async def test_pause_tube(console: Console, client: beanstalkt.Client) -> None:
    await put_in(client, "paused", b"x")
    response = await console.session.post("/server/0/tube/paused/pause", {"delay": "120"})
    assert response.code == 303
    stats = await client.stats_tube("paused")
    assert stats["pause"] == 120
    assert stats["pause-time-left"] > 100


async def test_put_a_job(console: Console, client: beanstalkt.Client) -> None:
    body = "line one\r\n  <i>two</i> ü"
    response = await console.session.post(
        "/server/0/tube/puts/put", {"body": body, "priority": "5", "delay": "0", "ttr": "9"}
    )
    assert response.code == 303
    await client.use("puts")
    job = await client.peek_ready()
    assert job.body == body.encode("utf-8")  # unstripped, verbatim
    stats = await client.stats_job(job.id)
    assert (stats["pri"], stats["ttr"]) == (5, 9)


async def test_put_with_defaults_and_delay(console: Console, client: beanstalkt.Client) -> None:
    response = await console.session.post("/server/0/tube/puts/put", {"body": "x", "delay": "30"})
    assert response.code == 303
    await client.use("puts")
    job = await client.peek_delayed()
    stats = await client.stats_job(job.id)
    assert (stats["pri"], stats["ttr"], stats["delay"]) == (
        beanstalkt.DEFAULT_PRIORITY,
        beanstalkt.DEFAULT_TTR,
        30,
    )


@pytest.mark.parametrize(
    ("path", "fields", "status", "phrase"),
    [
        ("/server/0/tube/t/put", {"body": "x" * 1025}, 413, "at most 1,024"),
        ("/server/0/tube/t/put", {"body": "x", "priority": "high"}, 400, "The priority must be"),
        ("/server/0/tube/t/put", {"body": "x", "ttr": "0"}, 400, "The TTR must be"),
        ("/server/0/tube/t/put", {"body": "x", "delay": "-1"}, 400, "The delay must be"),
        ("/server/0/tube/t/put", {"body": "x", "priority": str(2**32)}, 400, "from 0 to"),
        ("/server/0/tube/t/put", {}, 400, "The form field &#x27;body&#x27; is required."),
        ("/server/0/tube/t/kick", {"bound": "0"}, 400, "The number of jobs to kick"),
        ("/server/0/tube/nosuch/pause", {"delay": "5"}, 404, "There is no tube"),
        ("/server/0/job/12x/delete", {}, 400, "A job id is a whole number from 1 to"),
        ("/server/0/job/4242/delete", {}, 404, "There is no job 4242"),
        ("/server/0/job/4242/kick", {}, 404, "There is no job 4242"),
        ("/server/1/tube/t/put", {"body": "x"}, 503, "is down"),
    ],
)
async def test_bad_actions_get_a_message_page(
    console: Console, path: str, fields: dict[str, str], status: int, phrase: str
) -> None:
    response = await console.session.post(path, fields)
    assert response.code == status
    assert phrase in text(response)
    assert "Traceback" not in text(response)


async def test_post_without_xsrf_is_refused(console: Console, client: beanstalkt.Client) -> None:
    job_id = await put_in(client, "forged", b"x")
    response = await console.session.post(f"/server/0/job/{job_id}/delete", xsrf=False)
    assert response.code == 403
    assert "XSRF token" in text(response)
    # A token that does not match the cookie is refused too.
    await console.session.xsrf_token()
    forged = await console.session.request(
        f"/server/0/job/{job_id}/delete", "POST", {"_xsrf": "2|00|00|0"}
    )
    assert forged.code == 403
    assert (await client.stats_job(job_id))["state"] == "ready"


async def test_actions_need_post(console: Console, client: beanstalkt.Client) -> None:
    job_id = await put_in(client, "getter", b"x")
    response = await console.session.get(f"/server/0/job/{job_id}/delete")
    assert response.code == 405
    assert (await client.stats_job(job_id))["state"] == "ready"


# ---------------------------------------------------------------------------
# Read-only mode and access control


async def test_read_only_hides_and_refuses_every_action(
    small_beanstalkd: BeanstalkdServer, client: beanstalkt.Client
) -> None:
    job_id = await bury_one(client, "ro", SCRIPT_BODY)
    running, http = await start_console(small_beanstalkd, ConsoleOptions(read_only=True))
    try:
        session = running.session
        page = text(await session.get("/server/0/tube/ro"))
        assert "read-only" in page
        assert f'data-job="{job_id}"' in page
        assert 'method="post"' not in page
        assert "data-action" not in page
        # A token from the login-free page is all a forger could get; it changes nothing.
        token = re.search(r'name="_xsrf" value="([^"]+)"', page)
        assert token is None
        await session.get("/")  # no forms anywhere: fabricate a matching cookie + field
        session.cookies["_xsrf"] = "forged-token"
        for path, fields in [
            (f"/server/0/job/{job_id}/kick", {}),
            (f"/server/0/job/{job_id}/delete", {}),
            (f"/server/0/job/{job_id}/move", {"tube": "x"}),
            ("/server/0/tube/ro/kick", {"bound": "5"}),
            ("/server/0/tube/ro/pause", {"delay": "5"}),
            ("/server/0/tube/ro/put", {"body": "x"}),
        ]:
            response = await session.request(path, "POST", {**fields, "_xsrf": "forged-token"})
            assert response.code == 403, path
            assert "This console is read-only" in text(response)
        assert (await client.stats_job(job_id))["state"] == "buried"
        assert (await client.stats_tube("ro"))["total-jobs"] == 1
    finally:
        await stop_console(running, http)


async def test_token_is_required_and_sets_a_session(small_beanstalkd: BeanstalkdServer) -> None:
    running, http = await start_console(small_beanstalkd, ConsoleOptions(token="s3cret"))
    try:
        session = running.session
        denied = await session.get("/")
        assert denied.code == 401
        assert 'action="/login"' in text(denied)
        assert (await session.get("/api/overview")).code == 401
        assert (await session.get("/", headers={"Authorization": "Bearer wrong"})).code == 401
        bearer = await session.get("/api/overview", headers={"Authorization": "Bearer s3cret"})
        assert bearer.code == 200
        # The bearer request signed this session in: the cookie alone now works.
        assert "beanstalkt_session" in session.cookies
        assert (await session.get("/")).code == 200

        fresh = Session(session.base)
        try:
            # A token in the URL is never taken; the answer drops it from the address bar.
            dropped = await fresh.get("/?token=s3cret")
            assert dropped.code == 303
            assert dropped.headers["Location"] == "/login?next=/"
            assert "beanstalkt_session" not in fresh.cookies
            login_page = text(await fresh.get("/login"))
            xsrf = re.search(r'name="_xsrf" value="([^"]+)"', login_page)
            assert xsrf
            wrong = await fresh.request(
                "/login", "POST", {"_xsrf": xsrf.group(1), "token": "nope", "next": "/"}
            )
            assert wrong.code == 401
            right = await fresh.request(
                "/login", "POST", {"_xsrf": xsrf.group(1), "token": "s3cret", "next": "//evil"}
            )
            assert right.code == 303
            assert right.headers["Location"] == "/"
            assert (await fresh.get("/server/0/tube/default")).code == 200
        finally:
            fresh.close()

        url = session.base.replace("http://", "ws://") + "/live"
        with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
            await tornado.websocket.websocket_connect(url)
        assert refused.value.code == 401
    finally:
        await stop_console(running, http)


async def test_basic_auth(small_beanstalkd: BeanstalkdServer) -> None:
    running, http = await start_console(
        small_beanstalkd, ConsoleOptions(basic_auth=("ops", "pa:ss"))
    )
    try:
        session = running.session
        denied = await session.get("/")
        assert denied.code == 401
        assert denied.headers["WWW-Authenticate"] == 'Basic realm="beanstalkt web console"'

        def basic(user: str, password: str) -> dict[str, str]:
            pair = base64.b64encode(f"{user}:{password}".encode()).decode()
            return {"Authorization": f"Basic {pair}"}

        assert (await session.get("/", headers=basic("ops", "wrong"))).code == 401
        assert (await session.get("/", headers=basic("root", "pa:ss"))).code == 401
        assert (await session.get("/", headers={"Authorization": "Basic !!"})).code == 401
        assert (await session.get("/", headers=basic("ops", "pa:ss"))).code == 200
        assert (await session.get("/server/0/tube/default")).code == 200  # session cookie
    finally:
        await stop_console(running, http)


# ---------------------------------------------------------------------------
# Command line


@pytest.mark.parametrize(
    ("text_", "expected"),
    [
        ("localhost:11300", ("localhost", 11300)),
        ("10.0.0.1", ("10.0.0.1", 11300)),
        ("[::1]:1234", ("::1", 1234)),
        ("::1", ("::1", 11300)),
        ("unix:/run/beanstalkd.sock", ("unix:/run/beanstalkd.sock", 0)),
    ],
)
def test_parse_address(text_: str, expected: tuple[str, int]) -> None:
    assert parse_address(text_, 11300) == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["--listen", "host:notaport"],
        ["--server", "host:70000"],
        ["--basic-auth", "nopassword"],
        ["--token", "a", "--basic-auth", "u:p"],
        ["--interval", "0"],
        ["--bogus"],
        ["--allow-host", "a b"],
        ["--allow-host", "evil.example/path"],
        ["--https-key", "key.pem"],
        ["--https-cert", "/nonexistent/cert.pem"],
        ["--max-connections", "0"],
    ],
)
def test_command_line_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert web_main(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_beanstalkt_web_dispatches_to_the_console(capsys: pytest.CaptureFixture[str]) -> None:
    from beanstalkt.cli.main import main as cmd_main

    assert cmd_main(["web", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: beanstalkt web")


# ---------------------------------------------------------------------------
# Bulk actions


async def test_kick_all_buried_jobs(console: Console, client: beanstalkt.Client) -> None:
    for n in range(5):
        await bury_one(client, "kick-all", b"%d" % n)
    await put_in(client, "kick-all", b"later", delay=600)
    page = text(await console.session.get("/server/0/tube/kick-all"))
    assert 'data-action="kick-all"' in page
    done = await console.session.post("/server/0/tube/kick-all/kick", {"bound": "all"})
    assert done.code == 303
    stats = await client.stats_tube("kick-all")
    # beanstalkd kicks buried jobs when there are any: the delayed one stays.
    assert (stats["current-jobs-buried"], stats["current-jobs-ready"]) == (0, 5)
    assert stats["current-jobs-delayed"] == 1
    again = text(await console.session.get(done.headers["Location"]))
    assert "Kicked 5 jobs in kick-all." in again


async def test_delete_buried_needs_the_tube_name_and_leaves_other_jobs(
    console: Console, client: beanstalkt.Client
) -> None:
    buried = [await bury_one(client, "purge", b"%d" % n) for n in range(4)]
    ready = await put_in(client, "purge", b"keep")
    page = text(await console.session.get("/server/0/tube/purge"))
    assert 'id="delete-buried-form"' in page and "Delete all 4 buried jobs" in page
    for confirm in ("", "PURGE", "other"):
        refused = await console.session.post(
            "/server/0/tube/purge/delete-buried", {"confirm": confirm, "count": "4"}
        )
        assert refused.code == 400 and "type the tube" in text(refused)
    assert (await client.stats_tube("purge"))["current-jobs-buried"] == 4
    # A count below the number buried deletes that many, oldest first, and says what is left.
    some = await console.session.post(
        "/server/0/tube/purge/delete-buried", {"confirm": "purge", "count": "3"}
    )
    assert some.code == 303
    assert "Deleted 3 buried jobs of purge; 1 still buried." in text(
        await console.session.get(some.headers["Location"])
    )
    rest = await console.session.post(
        "/server/0/tube/purge/delete-buried", {"confirm": "purge", "count": "10"}
    )
    assert "Deleted 1 buried job of purge." in text(
        await console.session.get(rest.headers["Location"])
    )
    for job_id in buried:
        with pytest.raises(beanstalkt.NotFound):
            await client.stats_job(job_id)
    assert (await client.stats_job(ready))["state"] == "ready"

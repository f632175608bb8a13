"""The web console on a hostile network, over real HTTP against a real beanstalkd.

DNS rebinding (foreign ``Host``), cross-origin WebSockets, bodies refused
before they are read, idle-connection floods, the token kept out of logs and
URLs, and the sign-in redirect. The flood test runs the console as its own
process with a 1,024 file-descriptor limit, as a default Linux account has.
"""

from __future__ import annotations

import asyncio
import html as html_module
import importlib
import json
import os
import re
import resource
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import tornado.httpclient
import tornado.httpserver
import tornado.testing
import tornado.websocket

import beanstalkt
from beanstalkt.ops.web import app as app_module
from beanstalkt.ops.web.app import ConsoleOptions, make_app
from beanstalkt.ops.web.guard import ConsoleHTTPServer
from beanstalkt.ops.web.live import Monitor
from beanstalkt.testing import BeanstalkdServer, free_port

from .test_web_handlers import Console, Session, bury_one, put_in, start_console, stop_console, text

MIB = 1 << 20


@pytest.fixture
def beanstalkd() -> Iterator[BeanstalkdServer]:
    with BeanstalkdServer() as server:
        yield server


@pytest.fixture
async def client(beanstalkd: BeanstalkdServer) -> AsyncIterator[beanstalkt.Client]:
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port) as connected:
        yield connected


def port_of(console: Console) -> int:
    return int(console.session.base.rsplit(":", 1)[1])


def rss_bytes() -> int:
    """This process's resident memory now (the console runs in it)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def raw_exchange(
    port: int, head: bytes, body_bytes: int = 0, timeout: float = 30.0
) -> tuple[bytes, int]:
    """Send ``head`` and then up to ``body_bytes`` of body while reading the answer.

    Returns the answer (until the server closes or 30 s pass) and how many
    body bytes were written before the server stopped taking them.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    sent = 0

    async def push() -> None:
        nonlocal sent
        chunk = b"x" * (256 << 10)
        try:
            while sent < body_bytes:
                writer.write(chunk[: body_bytes - sent])
                await writer.drain()
                sent += min(len(chunk), body_bytes - sent)
        except (ConnectionError, OSError):
            pass

    pusher = asyncio.ensure_future(push())
    try:
        answer = await asyncio.wait_for(reader.read(65536), timeout)
    finally:
        pusher.cancel()
        writer.close()
    return answer, sent


def post_head(path: str, length: int, host: str = "127.0.0.1", extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded"
        f"\r\nContent-Length: {length}\r\n{extra}\r\n"
    ).encode()


# ---------------------------------------------------------------------------
# DNS rebinding: the Host allow-list and the WebSocket origin check


async def test_a_foreign_host_gets_no_page_no_token_and_cannot_act(
    beanstalkd: BeanstalkdServer, client: beanstalkt.Client
) -> None:
    running, http = await start_console(beanstalkd)
    try:
        job_id = await bury_one(client, "victim", b"keep me")
        session = running.session
        foreign = {"Host": f"rebind.example:{port_of(running)}"}
        page = await session.get("/", headers=foreign)
        assert page.code == 421
        assert "_xsrf" not in text(page) and "victim" not in text(page)
        assert "Set-Cookie" not in page.headers
        api = await session.get("/api/overview", headers=foreign)
        assert api.code == 421 and b"victim" not in api.body
        # Even with a valid XSRF pair taken from the real page, a foreign Host cannot act.
        token = await session.xsrf_token()
        deleted = await session.request(
            f"/server/0/job/{job_id}/delete", "POST", {"_xsrf": token}, headers=foreign
        )
        assert deleted.code == 421
        assert (await client.stats_job(job_id))["state"] == "buried"
        # The same requests under the console's own names work.
        for host in ("localhost", "127.0.0.1", "[::1]", f"localhost:{port_of(running)}"):
            assert (await session.get("/", headers={"Host": host})).code == 200, host
        for bad in ("rebind.example", "127.0.0.1.rebind.example", "localhost.evil", "::1", "a:b"):
            assert (await session.get("/", headers={"Host": bad})).code == 421, bad
    finally:
        await stop_console(running, http)


async def test_allow_host_adds_a_name(beanstalkd: BeanstalkdServer) -> None:
    options = ConsoleOptions(allowed_hosts=frozenset({"localhost", "queue-console.internal"}))
    running, http = await start_console(beanstalkd, options)
    try:
        ok = await running.session.get("/", headers={"Host": "Queue-Console.Internal:8080"})
        assert ok.code == 200
        assert (await running.session.get("/", headers={"Host": "other.internal"})).code == 421
    finally:
        await stop_console(running, http)


async def test_the_live_feed_refuses_foreign_hosts_and_origins(
    beanstalkd: BeanstalkdServer,
) -> None:
    running, http = await start_console(beanstalkd)
    try:
        port = port_of(running)
        url = f"ws://127.0.0.1:{port}/live"

        async def opens(headers: dict[str, str]) -> int:
            request = tornado.httpclient.HTTPRequest(url, headers=headers)
            try:
                socket_ = await tornado.websocket.websocket_connect(request)
            except tornado.httpclient.HTTPClientError as error:
                return error.code
            message = await socket_.read_message()
            socket_.close()
            assert message is not None and '"hello"' in message
            return 101

        assert await opens({}) == 101  # no Origin: not a browser
        assert await opens({"Origin": f"http://127.0.0.1:{port}"}) == 101
        assert await opens({"Origin": "http://attacker.example"}) == 403
        assert await opens({"Origin": f"http://localhost:{port}"}) == 403  # not the same origin
        assert await opens({"Origin": "null"}) == 403
        rebound = f"rebind.example:{port}"
        assert await opens({"Host": rebound, "Origin": f"http://{rebound}"}) == 421
    finally:
        await stop_console(running, http)


# ---------------------------------------------------------------------------
# Bodies: nothing read before the access checks, nothing larger than the route takes


async def test_a_64_mib_post_without_credentials_is_refused_before_its_body(
    beanstalkd: BeanstalkdServer,
) -> None:
    running, http = await start_console(beanstalkd, ConsoleOptions(token="s3cret"))
    try:
        port = port_of(running)
        # Not one byte of body sent: the answer can only come from the header.
        answer, _ = await raw_exchange(port, post_head("/server/0/tube/default/put", 64 * MIB))
        assert answer.startswith(b"HTTP/1.1 401"), answer[:100]
        before = rss_bytes()
        outcomes = await asyncio.gather(
            *(
                raw_exchange(port, post_head("/server/0/tube/default/put", 64 * MIB), 64 * MIB)
                for _ in range(4)
            )
        )
        for answer, sent in outcomes:
            assert answer.startswith(b"HTTP/1.1 401"), answer[:100]
            assert sent < 64 * MIB  # the console hung up instead of reading it all
        # Four bodies of 64 MiB would be 256 MiB; the console kept none of them.
        assert rss_bytes() - before < 48 * MIB
        login, _ = await raw_exchange(port, post_head("/login", 64 * MIB), 64 * MIB)
        assert login.startswith(b"HTTP/1.1 400"), login[:100]  # larger than a sign-in form
    finally:
        await stop_console(running, http)


async def test_read_only_refuses_before_the_body_and_forms_have_a_size_limit(
    beanstalkd: BeanstalkdServer,
) -> None:
    running, http = await start_console(beanstalkd, ConsoleOptions(read_only=True))
    try:
        answer, _ = await raw_exchange(
            port_of(running), post_head("/server/0/tube/default/put", 64 * MIB)
        )
        assert answer.startswith(b"HTTP/1.1 403"), answer[:100]
    finally:
        await stop_console(running, http)
    running, http = await start_console(beanstalkd)
    try:
        port = port_of(running)
        # A kick form is a few fields: 1 MiB is refused unread (Tornado answers 400).
        answer, _ = await raw_exchange(port, post_head("/server/0/tube/default/kick", MIB), MIB)
        assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
        # A put may carry a whole job: up to the server's max-job-size (65,535), URL-encoded.
        big = 3 * 65_535 + (16 << 10) + 1
        answer, _ = await raw_exchange(port, post_head("/server/0/tube/default/put", big), big)
        assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
        answer, _ = await raw_exchange(port, post_head("/nowhere", MIB), MIB)
        assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
    finally:
        await stop_console(running, http)


async def test_a_put_of_a_job_near_max_job_size_still_works(
    beanstalkd: BeanstalkdServer, client: beanstalkt.Client
) -> None:
    running, http = await start_console(beanstalkd)
    try:
        body = "é" * 30_000  # 60,000 bytes of UTF-8, 180,000 characters URL-encoded
        done = await running.session.post("/server/0/tube/big/put", {"body": body})
        assert done.code == 303
        job = await client.peek_ready(tube="big")
        assert job.body == body.encode("utf-8")
    finally:
        await stop_console(running, http)


# ---------------------------------------------------------------------------
# The token: sent once, never in a URL or a log


async def test_sign_in_by_form_redirects_and_query_tokens_are_not_accepted(
    beanstalkd: BeanstalkdServer,
) -> None:
    running, http = await start_console(beanstalkd, ConsoleOptions(token="s3cret"))
    try:
        session = running.session
        dropped = await session.get("/server/0/tube/default?token=s3cret&x=1")
        assert dropped.code == 303
        assert dropped.headers["Location"] == "/login?next=/server/0/tube/default"
        assert "beanstalkt_session" not in session.cookies  # not signed in by the URL
        login = text(await session.get(dropped.headers["Location"]))
        assert 'name="next" value="/server/0/tube/default"' in login
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', login)
        assert xsrf
        for target, expected in [
            ("/server/0/tube/default", "/server/0/tube/default"),
            ("/\\evil.example", "/"),
            ("/\t/evil.example", "/"),
            ("//evil.example", "/"),
            ("https://evil.example/", "/"),
            ("/%09/evil.example", "/"),
            ("/%5Cevil.example", "/"),
            ("/server/0/tube/a%2Fb", "/server/0/tube/a%2Fb"),
        ]:
            signed_in = await session.request(
                "/login", "POST", {"_xsrf": xsrf.group(1), "token": "s3cret", "next": target}
            )
            assert signed_in.code == 303, target
            assert signed_in.headers["Location"] == expected, target
            assert "s3cret" not in signed_in.headers["Location"]
        assert (await session.get("/")).code == 200
        fresh = Session(session.base)
        try:
            form = text(await fresh.get("/login?next=/%09/evil.example"))
            assert 'name="next" value="/"' in form
        finally:
            fresh.close()
    finally:
        await stop_console(running, http)


async def test_session_cookies_are_secure_over_https(
    beanstalkd: BeanstalkdServer, tmp_path: Path
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(str(cert), str(key))
    monitor = Monitor([(beanstalkd.host, beanstalkd.port)], interval=0.2)
    app = make_app(monitor, ConsoleOptions(token="s3cret"))
    sock, port = tornado.testing.bind_unused_port()
    http = ConsoleHTTPServer(app, ssl_options=server_context)
    http.add_sockets([sock])
    monitor.start()
    fetcher = tornado.httpclient.AsyncHTTPClient(force_instance=True)
    try:
        response = await fetcher.fetch(
            f"https://127.0.0.1:{port}/api/overview",
            headers={"Authorization": "Bearer s3cret"},
            ca_certs=str(cert),
        )
        cookies = response.headers.get_list("Set-Cookie")
        session = [c for c in cookies if c.startswith("beanstalkt_session=")]
        assert session and "Secure" in session[0] and "HttpOnly" in session[0]
    finally:
        fetcher.close()
        http.stop()
        await monitor.stop()


# ---------------------------------------------------------------------------
# The console as its own process: idle floods and what reaches its log


class ConsoleProcess:
    """``python -m beanstalkt.web`` with 1,024 file descriptors, its log in a file."""

    def __init__(self, server: BeanstalkdServer, log_path: Path, *args: str) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.log_file = open(log_path, "wb")  # noqa: SIM115 -- closed in stop()

        def limit_descriptors() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

        self.process = subprocess.Popen(
            [sys.executable, "-m", "beanstalkt.web", "--listen", f"127.0.0.1:{self.port}",
             "--server", f"{server.host}:{server.port}", *args],
            stdout=self.log_file, stderr=subprocess.STDOUT, preexec_fn=limit_descriptors,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if b"web console on" in log_path.read_bytes():
                return
            assert self.process.poll() is None, log_path.read_text()
            time.sleep(0.05)
        raise AssertionError("the console did not start: " + log_path.read_text())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log_file.close()


@pytest.mark.parametrize("cap", ["default", "above the descriptor limit"])
def test_1100_idle_connections_do_not_starve_a_signed_in_request(
    beanstalkd: BeanstalkdServer, tmp_path: Path, cap: str
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    # Above the limit, accept() itself fails (EMFILE): accepting pauses and makes room.
    extra = ["--max-connections", "5000"] if cap != "default" else []
    console = ConsoleProcess(beanstalkd, tmp_path / "console.log", "--token", "s3cret", *extra)
    idle: list[socket.socket] = []
    try:
        for _ in range(1100):
            sock = socket.create_connection(("127.0.0.1", console.port), timeout=30)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the end
            idle.append(sock)
        for _attempt in range(3):
            started = time.monotonic()
            with socket.create_connection(("127.0.0.1", console.port), timeout=60) as sock:
                sock.sendall(
                    b"GET /api/overview HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Authorization: Bearer s3cret\r\nConnection: close\r\n\r\n"
                )
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
            assert time.monotonic() - started < 60  # a bound for 'not starved', not a speed test
        sock = socket.create_connection(("127.0.0.1", console.port), timeout=30)
        sock.sendall(b"GET /?token=s3cret HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        redirect = sock.recv(65536)
        sock.close()
        assert redirect.startswith(b"HTTP/1.1 303"), redirect[:200]
        assert b"s3cret" not in redirect
    finally:
        for sock in idle:
            sock.close()
        console.stop()
    log = console.log()
    assert "s3cret" not in log
    assert log.count("Too many open files") <= 5, log[-2000:]
    if cap == "default":
        # At the cap (1,024 less 128) idle connections were closed for the newcomers, and
        # said so in a few lines, not one per connection.
        assert 1 <= log.count("closed the longest idle one") <= 5, log[-2000:]
    else:
        assert 1 <= log.count("cannot accept a connection") <= 5, log[-2000:]
    assert "GET /api/overview" in log  # the access log is on, with paths


async def test_put_and_kick_still_work_with_streamed_forms(
    beanstalkd: BeanstalkdServer, client: beanstalkt.Client
) -> None:
    running, http = await start_console(beanstalkd)
    try:
        await put_in(client, "t", b"x")
        done = await running.session.post("/server/0/tube/t/put", {"body": "hello"})
        assert done.code == 303
        assert (await client.stats_tube("t"))["current-jobs-ready"] == 2
        forged = await running.session.request("/server/0/tube/t/put", "POST", {"body": "x"})
        assert forged.code == 403 and "XSRF" in text(forged)
        assert (await client.stats_tube("t"))["current-jobs-ready"] == 2
    finally:
        await stop_console(running, http)


async def test_job_ids_out_of_the_protocol_range_are_400(beanstalkd: BeanstalkdServer) -> None:
    running, http = await start_console(beanstalkd)
    try:
        for raw in ("99999999999999999999", "18446744073709551616", "0", "1" * 400):
            page = await running.session.get(f"/server/0/job/{raw}")
            assert page.code == 400, raw
            assert "Invalid job id" in text(page)
        assert (await running.session.get("/server/0/job/18446744073709551615")).code == 404
    finally:
        await stop_console(running, http)


# ---------------------------------------------------------------------------
# The buried job's failure reason (the worker's failure records)


async def console_with_reader(
    beanstalkd: BeanstalkdServer, reader: Any
) -> tuple[Console, tornado.httpserver.HTTPServer]:
    monitor = Monitor([(beanstalkd.host, beanstalkd.port)], interval=0.2)
    app = make_app(monitor, ConsoleOptions(), failure_reader=reader)
    sock, port = tornado.testing.bind_unused_port()
    http = ConsoleHTTPServer(app)
    http.add_sockets([sock])
    monitor.start()
    await monitor.first_poll()
    return Console(monitor, Session(f"http://127.0.0.1:{port}"), beanstalkd), http


async def test_a_buried_job_shows_why_it_failed(
    beanstalkd: BeanstalkdServer, client: beanstalkt.Client
) -> None:
    job_id = await bury_one(client, "failing", b"payload")
    asked: list[str] = []

    async def reader(server: Any, tube: str) -> dict[int, dict[str, Any]]:
        asked.append(tube)
        return {
            job_id: {
                "id": job_id,
                "tube": tube,
                "error": "ValueError: <script>alert(1)</script> bad address",
                "traceback": "Traceback (most recent call last):\n  ...\nValueError",
                "attempts": 5,
                "failed_at": "2026-12-04T20:00:00Z",
                "worker": {"host": "web-1", "pid": 4242},
            }
        }

    running, http = await console_with_reader(beanstalkd, reader)
    try:
        for path in ("/server/0/tube/failing", f"/server/0/job/{job_id}"):
            html = text(await running.session.get(path))
            assert "Why it was buried" in html, path
            assert "ValueError: &lt;script&gt;alert(1)&lt;/script&gt; bad address" in html
            assert "after 5 attempt(s), at 2026-12-04T20:00:00Z, by web-1 (pid 4242)" in html
        assert asked == ["failing", "failing"]
    finally:
        await stop_console(running, http)

    async def broken(server: Any, tube: str) -> dict[int, dict[str, Any]]:
        raise OSError("records unreachable")

    running, http = await console_with_reader(beanstalkd, broken)
    try:
        html = text(await running.session.get("/server/0/tube/failing"))
        assert "The failure records could not be read: OSError." in html
        assert f'data-job="{job_id}"' in html  # the job itself is still shown
    finally:
        await stop_console(running, http)


async def test_the_default_reader_uses_the_worker_records_when_installed(
    beanstalkd: BeanstalkdServer, client: beanstalkt.Client
) -> None:
    """With the worker's failure records, the default reader shows them; without, it says so."""
    job_id = await bury_one(client, "recorded", b"payload")
    age = (await client.stats_job(job_id))["age"]
    record = {
        "beanstalkt_failure": 1, "id": job_id, "tube": "recorded",
        "created": round(time.time() - age, 3), "error": "KeyError: 'to'",
        "traceback": "", "attempts": 3, "failed_at": "2026-12-04T20:00:00Z",
        "worker": {"host": "w", "pid": 1},
    }  # fmt: skip
    await put_in(client, "recorded.failures", json.dumps(record).encode())
    running, http = await console_with_reader(beanstalkd, None)
    try:
        html = text(await running.session.get("/server/0/tube/recorded"))
        try:
            importlib.import_module("beanstalkt.worker.failures")
        except ImportError:
            assert "This beanstalkt writes no failure records." in html
        else:
            assert "KeyError: 'to'" in html_module.unescape(html)
            assert "after 3 attempt(s)" in html
    finally:
        await stop_console(running, http)


async def test_a_tab_that_stops_reading_is_dropped(
    beanstalkd: BeanstalkdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages a tab does not take are not buffered for ever: after 64, the feed closes."""
    running, http = await start_console(beanstalkd)
    try:
        pending: list[asyncio.Future[None]] = []

        def never_written(self: Any, message: Any, binary: bool = False) -> asyncio.Future[None]:
            pending.append(asyncio.get_running_loop().create_future())
            return pending[-1]

        monkeypatch.setattr(app_module.LiveSocket, "write_message", never_written)
        url = running.session.base.replace("http://", "ws://") + "/live"
        feed = await tornado.websocket.websocket_connect(url)
        assert await asyncio.wait_for(feed.read_message(), 60) is None  # closed by the console
        assert feed.close_code == 1008
        assert len(pending) == app_module.MAX_UNSENT
    finally:
        await stop_console(running, http)

"""The web console in a real browser: headless Chromium driven by Selenium.

One beanstalkd, one console (plus a read-only one) and one browser are shared
by the whole module; each test uses tubes of its own. The consoles run in a
thread with their own event loop, because Selenium's calls block. A screenshot
of the overview is saved to ``test-artifacts/web-overview.png``.

``scripts/setup.sh test`` installs Debian's ``chromium`` and
``chromium-driver``; where they could not be installed, these tests skip and
say so.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Optional, TypeVar

import pytest
import tornado.httpserver
import tornado.testing
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

import beanstalkt
from beanstalkt.ops.web.app import ConsoleOptions, make_app
from beanstalkt.ops.web.guard import ConsoleHTTPServer
from beanstalkt.ops.web.live import Monitor
from beanstalkt.testing import BeanstalkdServer, free_port

T = TypeVar("T")
ARTIFACTS = str(Path(__file__).resolve().parent.parent / "test-artifacts")
HOSTILE_BODY = b"<script>window.pwned = 1</script><b>x</b><img src=x onerror=window.pwned=2>"
WAIT = 10  # seconds Selenium waits for a condition; the console polls every 0.2 s


def find_browser() -> tuple[str, str]:
    """Paths of chromium and chromedriver; a loud failure saying what is missing.

    Never a skip: a browser test that did not run must not read as passed.
    """
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        missing = " and ".join(
            name for name, path in (("chromium", browser), ("chromedriver", driver)) if not path
        )
        pytest.fail(
            f"{missing} not installed: browser tests need Debian's chromium and chromium-driver "
            "(scripts/setup.sh test installs them with apt-get; that failed or was not run)"
        )
    return browser, driver


class Consoles:
    """A normal and a read-only console on one event loop in a thread of their own."""

    def __init__(self, server: BeanstalkdServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.dead_address = f"127.0.0.1:{free_port()}"
        self.urls: dict[str, str] = {}
        self.stoppers: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self.client: beanstalkt.Client = self.run(self._start())

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the consoles' loop and return its result."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout=30)

    async def _start(self) -> beanstalkt.Client:
        host, port = self.dead_address.split(":")
        for name, options in (("rw", ConsoleOptions()), ("ro", ConsoleOptions(read_only=True))):
            monitor = Monitor(
                [(self.server.host, self.server.port), (host, int(port))], interval=0.2
            )
            http = ConsoleHTTPServer(make_app(monitor, options))
            sock, http_port = tornado.testing.bind_unused_port()
            http.add_sockets([sock])
            monitor.start()
            await monitor.first_poll()
            self.urls[name] = f"http://127.0.0.1:{http_port}"
            self.stoppers.append(self._stopper(http, monitor))
        client = beanstalkt.Client(self.server.host, self.server.port)
        await client.connect()
        return client

    def extra(
        self,
        server: BeanstalkdServer,
        options: Optional[ConsoleOptions] = None,
        failure_reader: Any = None,
        **monitor_options: Any,
    ) -> tuple[str, Monitor]:
        """Start one more console on this loop for ``server``; its URL and monitor."""

        async def start() -> tuple[str, Monitor]:
            monitor = Monitor([(server.host, server.port)], **monitor_options)
            app = make_app(monitor, options or ConsoleOptions(), failure_reader=failure_reader)
            http = ConsoleHTTPServer(app)
            sock, http_port = tornado.testing.bind_unused_port()
            http.add_sockets([sock])
            monitor.start()
            await monitor.first_poll()
            self.stoppers.append(self._stopper(http, monitor))
            return f"http://127.0.0.1:{http_port}", monitor

        return self.run(start())

    @staticmethod
    def _stopper(
        http: tornado.httpserver.HTTPServer, monitor: Monitor
    ) -> Callable[[], Coroutine[Any, Any, None]]:
        async def stop() -> None:
            http.stop()
            await monitor.stop()

        return stop

    def command(self, call: Callable[[beanstalkt.Client], Any]) -> Any:
        """Run ``call(client)`` on the consoles' loop (the client is not thread-safe)."""

        async def run() -> Any:
            return await call(self.client)

        return self.run(run())

    def put(self, tube: str, body: bytes, **kwargs: Any) -> int:
        """Put a job into ``tube`` from a client of the test (not the console's)."""

        async def put() -> int:
            await self.client.use(tube)
            job_id: int = await self.client.put(body, **kwargs)
            return job_id

        return self.run(put())

    def bury(self, tube: str, body: bytes) -> int:
        """Put a job into ``tube`` and bury it."""
        job_id = self.put(tube, body)
        self.command(lambda client: client.reserve_job(job_id))
        self.command(lambda client: client.bury(job_id))
        return job_id

    def close(self) -> None:
        async def stop_all() -> None:
            self.client.close()
            for stop in self.stoppers:
                await stop()

        self.run(stop_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    chromium, chromedriver = find_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in CI containers
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        # A rebinding attacker's name, already pointing at this machine.
        "--host-resolver-rules=MAP rebind.example 127.0.0.1",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def consoles() -> Iterator[Consoles]:
    with BeanstalkdServer() as server:
        running = Consoles(server)
        try:
            yield running
        finally:
            running.close()


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], Any], what: str) -> Any:
    # The live feed replaces elements as it redraws: a stale one is read again.
    return WebDriverWait(
        driver, WAIT, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)
    ).until(condition, message=what)


def cell(driver: WebDriver, server: int, tube: str, field: str) -> Optional[str]:
    """The text of one overview cell, or None while its row does not exist."""
    value: Optional[str] = driver.execute_script(
        "var s = document.querySelector('section.server[data-server=\"' + arguments[0] + '\"]');"
        "if (!s) return null;"
        "var rows = s.querySelectorAll('tbody tr');"
        "for (var i = 0; i < rows.length; i++) {"
        "  if (rows[i].getAttribute('data-tube') === arguments[1]) {"
        "    return rows[i].querySelector('[data-field=\"' + arguments[2] + '\"]').textContent;"
        "  }"
        "}"
        "return null;",
        server,
        tube,
        field,
    )
    return value


def test_overview_table_and_dead_server(browser: WebDriver, consoles: Consoles) -> None:
    for n in range(2):
        consoles.put("b-alpha", b"alpha %d" % n)
    consoles.bury("b-beta", b"beta")
    consoles.put("b-beta", b"later", delay=600)
    browser.get(consoles.urls["rw"] + "/")
    wait_for(browser, lambda d: cell(d, 0, "b-alpha", "ready") == "2", "alpha shows 2 ready")
    wait_for(browser, lambda d: cell(d, 0, "b-beta", "buried") == "1", "beta shows 1 buried")
    assert cell(browser, 0, "b-beta", "delayed") == "1"
    assert cell(browser, 0, "b-beta", "total") == "2"
    headers = [
        th.text
        for th in browser.find_elements(By.CSS_SELECTOR, "section.server thead tr:first-child th")
    ]
    assert headers[:12] == [
        "TUBE",
        "READY",
        "RESERVED",
        "DELAYED",
        "BURIED",
        "OLDEST",
        "WATCHING",
        "WAITING",
        "PAUSED",
        "TOTAL",
        "PUT/S",
        "DELETE/S",
    ]
    link = browser.find_element(By.CSS_SELECTOR, 'tr[data-tube="b-alpha"] a')
    assert link.get_attribute("href") == consoles.urls["rw"] + "/server/0/tube/b-alpha"

    dead = browser.find_element(By.CSS_SELECTOR, 'section.server[data-server="1"]')
    assert "down" in (dead.get_attribute("class") or "").split()
    assert dead.find_element(By.CSS_SELECTOR, '[data-field="state"]').text == "down"
    assert consoles.dead_address in dead.text
    assert "Connection refused" in dead.text
    wait_for(browser, lambda d: d.find_element(By.ID, "live-status").text == "● live", "live")

    os.makedirs(ARTIFACTS, exist_ok=True)
    assert browser.save_screenshot(os.path.join(ARTIFACTS, "web-overview.png"))


def test_counts_change_without_reload(browser: WebDriver, consoles: Consoles) -> None:
    browser.get(consoles.urls["rw"] + "/")
    wait_for(browser, lambda d: d.find_element(By.ID, "live-status").text == "● live", "live")
    browser.execute_script("window.notReloaded = true;")
    for n in range(3):
        consoles.put("b-gamma", b"gamma %d" % n)
    wait_for(browser, lambda d: cell(d, 0, "b-gamma", "ready") == "3", "gamma shows 3 ready")
    consoles.put("b-gamma", b"gamma 3")
    consoles.bury("b-gamma", b"gamma buried")
    wait_for(browser, lambda d: cell(d, 0, "b-gamma", "ready") == "4", "gamma shows 4 ready")
    wait_for(browser, lambda d: cell(d, 0, "b-gamma", "buried") == "1", "gamma shows 1 buried")
    # A value that changed stands out (highlighted); one that did not, does not.
    classes = browser.execute_script(
        'var row = document.querySelector(\'section[data-server="0"] tr[data-tube="b-gamma"]\');'
        "return [row.querySelector('[data-field=\"ready\"]').className,"
        "        row.querySelector('[data-field=\"reserved\"]').className];"
    )
    assert classes == ["changed", ""]
    assert browser.execute_script("return window.notReloaded;") is True
    # The row's chart has a ready and a buried line drawn from the live feed (read
    # again while the feed redraws it under us).

    def chart_drawn(driver: WebDriver) -> bool:
        lines = driver.find_elements(By.CSS_SELECTOR, 'tr[data-tube="b-gamma"] td.chart polyline')
        kinds = [line.get_attribute("class") for line in lines]
        return kinds == ["ready", "buried"] and (
            len((lines[0].get_attribute("points") or "").split()) >= 2
        )

    wait_for(browser, chart_drawn, "the chart draws a ready and a buried line")


def test_tube_page_shows_a_hostile_body_as_inert_text(
    browser: WebDriver, consoles: Consoles
) -> None:
    job_id = consoles.put("b-xss", HOSTILE_BODY)
    browser.get(consoles.urls["rw"] + "/server/0/tube/b-xss")
    panel = browser.find_element(By.CSS_SELECTOR, 'article.job[data-state="ready"]')
    assert panel.get_attribute("data-job") == str(job_id)
    body = panel.find_element(By.CSS_SELECTOR, 'pre[data-field="body"]')
    assert body.get_attribute("textContent") == HOSTILE_BODY.decode()
    assert body.find_elements(By.CSS_SELECTOR, "*") == []  # no <b>, <script> or <img> made
    assert browser.execute_script("return window.pwned === undefined;") is True
    scripts = browser.find_elements(By.TAG_NAME, "script")
    assert [(s.get_attribute("src") or "").split("?")[0] for s in scripts] == [
        consoles.urls["rw"] + "/static/console.js"
    ]


def test_kick_a_buried_job_from_the_page(browser: WebDriver, consoles: Consoles) -> None:
    job_id = consoles.bury("b-kick", b"kick me")
    browser.get(consoles.urls["rw"] + "/server/0/tube/b-kick")
    panel = browser.find_element(By.CSS_SELECTOR, 'article.job[data-state="buried"]')
    assert panel.get_attribute("data-job") == str(job_id)
    panel.find_element(By.CSS_SELECTOR, 'button[data-action="kick-job"]').click()
    flash = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "p.flash"), "flash")
    assert flash[0].text == f"Kicked job {job_id}."
    assert consoles.command(lambda client: client.stats_job(job_id))["state"] == "ready"
    ready = browser.find_element(By.CSS_SELECTOR, 'article.job[data-state="ready"]')
    assert ready.get_attribute("data-job") == str(job_id)
    assert browser.find_element(By.CSS_SELECTOR, 'article.job[data-state="buried"]').text.endswith(
        "No buried job."
    )


def test_read_only_shows_no_write_controls_and_refuses_a_forged_post(
    browser: WebDriver, consoles: Consoles
) -> None:
    job_id = consoles.bury("b-ro", b"stay buried")
    browser.get(consoles.urls["ro"] + "/server/0/tube/b-ro")
    assert browser.find_element(By.CSS_SELECTOR, ".badge.read-only").text == "read-only"
    panel = browser.find_element(By.CSS_SELECTOR, 'article.job[data-state="buried"]')
    assert panel.get_attribute("data-job") == str(job_id)
    assert browser.find_elements(By.CSS_SELECTOR, 'form[method="post"]') == []
    assert browser.find_elements(By.CSS_SELECTOR, "[data-action]") == []
    assert browser.find_elements(By.TAG_NAME, "textarea") == []
    # A form forged in the page (no XSRF token to be had) is refused.
    browser.execute_script(
        "var form = document.createElement('form');"
        "form.method = 'post'; form.action = arguments[0];"
        "document.body.appendChild(form); form.submit();",
        f"/server/0/job/{job_id}/kick",
    )
    wait_for(browser, lambda d: "403" in d.title or d.find_elements(By.ID, "message-text"), "403")
    assert browser.find_element(By.CSS_SELECTOR, ".status").text == "403"
    assert consoles.command(lambda client: client.stats_job(job_id))["state"] == "buried"


def test_post_without_xsrf_is_refused_in_the_browser(
    browser: WebDriver, consoles: Consoles
) -> None:
    job_id = consoles.put("b-xsrf", b"keep me")
    browser.get(consoles.urls["rw"] + "/server/0/tube/b-xsrf")
    browser.execute_script(
        "var form = document.querySelector('form[action$=\"/delete\"]');"
        "form.removeAttribute('data-confirm');"
        "form.querySelector('input[name=_xsrf]').remove();"
        "HTMLFormElement.prototype.submit.call(form);"
    )
    wait_for(browser, lambda d: d.find_elements(By.ID, "message-text"), "message page")
    assert browser.find_element(By.CSS_SELECTOR, ".status").text == "403"
    assert "XSRF token" in browser.find_element(By.ID, "message-text").text
    assert consoles.command(lambda client: client.stats_job(job_id))["state"] == "ready"


# ---------------------------------------------------------------------------
# A hostile network and hostile producers


def page_fetch(driver: WebDriver, method: str, path: str) -> dict[str, Any]:
    """``fetch(path)`` from the current page's origin: its status and whether it leaked a token."""
    result: dict[str, Any] = driver.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "fetch(arguments[1], {method: arguments[0], credentials: 'include'})"
        "  .then(function (r) { return r.text().then(function (t) {"
        "    done({status: r.status, token: t.indexOf('_xsrf') >= 0, text: t}); }); })"
        "  .catch(function (e) { done({status: 0, token: false, text: String(e)}); });",
        method,
        path,
    )
    return result


def page_websocket(driver: WebDriver, url: str) -> dict[str, Any]:
    """Open a WebSocket from the current page: did it open, did a message come?"""
    result: dict[str, Any] = driver.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "var outcome = {opened: false, messages: 0};"
        "var ws = new WebSocket(arguments[0]);"
        "ws.onopen = function () { outcome.opened = true; };"
        "ws.onmessage = function () { outcome.messages += 1; };"
        "ws.onclose = function () { done(outcome); };"
        "setTimeout(function () { ws.close(); }, 3000);",
        url,
    )
    return result


def test_a_rebinding_page_gets_nothing_and_cannot_act(
    browser: WebDriver, consoles: Consoles
) -> None:
    job_id = consoles.bury("b-rebind", b"the attacker wants this gone")
    port = consoles.urls["rw"].rsplit(":", 1)[1]
    # The attacker's page, once its name points here, has the origin http://rebind.example:PORT.
    browser.get(f"http://rebind.example:{port}/")
    assert "does not answer to that host name" in browser.find_element(By.TAG_NAME, "body").text
    assert browser.find_elements(By.TAG_NAME, "form") == []
    page = page_fetch(browser, "GET", "/server/0/tube/b-rebind")
    assert page["status"] == 421 and not page["token"] and "b-rebind" not in page["text"]
    posted = page_fetch(browser, "POST", f"/server/0/job/{job_id}/delete")
    assert posted["status"] == 421
    feed = page_websocket(browser, f"ws://rebind.example:{port}/live")
    assert feed == {"opened": False, "messages": 0}
    assert consoles.command(lambda client: client.stats_job(job_id))["state"] == "buried"


def test_a_page_of_another_origin_cannot_open_the_feed(
    browser: WebDriver, consoles: Consoles
) -> None:
    browser.get(consoles.urls["ro"] + "/")  # another origin: another port
    target = consoles.urls["rw"].replace("http://", "ws://") + "/live"
    assert page_websocket(browser, target) == {"opened": False, "messages": 0}
    own = consoles.urls["ro"].replace("http://", "ws://") + "/live"
    outcome = page_websocket(browser, own)
    assert outcome["opened"] and outcome["messages"] >= 1


def test_prototype_named_tubes_show_like_any_other_and_the_feed_goes_on(
    browser: WebDriver, consoles: Consoles
) -> None:
    console_log: Callable[[str], list[dict[str, Any]]] = browser.get_log  # type: ignore[attr-defined]
    console_log("browser")  # what earlier tests left
    names = ["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf"]
    for name in names:
        consoles.put(name, b"x")
    browser.get(consoles.urls["rw"] + "/")
    for name in names:

        def shows_one(driver: WebDriver, name: str = name) -> bool:
            return cell(driver, 0, name, "ready") == "1"

        wait_for(browser, shows_one, name)
    # The feed goes on: counts keep changing, a new tube still appears.
    consoles.put("constructor", b"y")
    consoles.put("b-after-proto", b"z")
    wait_for(browser, lambda d: cell(d, 0, "constructor", "ready") == "2", "constructor: 2")
    wait_for(browser, lambda d: cell(d, 0, "b-after-proto", "ready") == "1", "new row appears")
    assert browser.find_element(By.ID, "live-status").text == "● live"
    errors = [
        entry
        for entry in console_log("browser")
        if entry.get("level") == "SEVERE" and "Failed to load resource" not in entry["message"]
    ]
    assert errors == []
    for name in names:
        consoles.run(drain(consoles.client, name))


async def drain(client: beanstalkt.Client, tube: str) -> None:
    """Delete every ready job of ``tube`` (so later tests see a clean overview)."""
    while True:
        try:
            job = await client.peek_ready(tube=tube)
        except beanstalkt.NotFound:
            return
        await client.delete(job.id)


def test_sort_and_filter_put_problems_first(browser: WebDriver, consoles: Consoles) -> None:
    consoles.put("b-sort-many", b"1")
    consoles.put("b-sort-many", b"2")
    consoles.bury("b-sort-buried", b"3")
    browser.get(consoles.urls["rw"] + "/")
    wait_for(browser, lambda d: cell(d, 0, "b-sort-buried", "buried") == "1", "buried row")

    def order(driver: WebDriver) -> list[str]:
        rows = driver.find_elements(By.CSS_SELECTOR, 'section[data-server="0"] tbody tr')
        return [row.get_attribute("data-tube") or "" for row in rows]

    filter_box = browser.find_element(By.ID, "filter")
    filter_box.send_keys("B-SORT")  # any case
    # Problems first: the tube with a buried job above the one with more ready jobs.
    wait_for(browser, lambda d: order(d) == ["b-sort-buried", "b-sort-many"], "filtered")
    Select(browser.find_element(By.ID, "sort")).select_by_value("ready")
    wait_for(browser, lambda d: order(d) == ["b-sort-many", "b-sort-buried"], "by ready")
    Select(browser.find_element(By.ID, "sort")).select_by_value("name")
    wait_for(browser, lambda d: order(d) == ["b-sort-buried", "b-sort-many"], "by name")
    totals = browser.find_element(By.CSS_SELECTOR, 'section[data-server="0"] thead tr.totals')
    assert "(2 of 2 matching shown)" in (totals.get_attribute("textContent") or "")


def test_the_tube_page_updates_live(browser: WebDriver, consoles: Consoles) -> None:
    consoles.put("b-tube-live", b"first")
    browser.get(consoles.urls["rw"] + "/server/0/tube/b-tube-live")
    browser.execute_script("window.notReloaded = true;")

    def ready(driver: WebDriver) -> str:
        return str(
            driver.find_element(
                By.CSS_SELECTOR, 'table.tube-stats td[data-field="current-jobs-ready"]'
            ).text
        )

    assert ready(browser) == "1"
    wait_for(browser, lambda d: "live" in d.find_element(By.ID, "tube-live").text, "live")
    consoles.put("b-tube-live", b"second")
    consoles.bury("b-tube-live", b"third")
    wait_for(browser, lambda d: ready(d) == "2", "ready count updated")
    wait_for(
        browser,
        lambda d: (
            d.find_element(
                By.CSS_SELECTOR, 'table.tube-stats td[data-field="current-jobs-buried"]'
            ).text
            == "1"
        ),
        "buried count updated",
    )
    assert "reload" not in browser.find_element(By.ID, "tube-live").text
    assert browser.execute_script("return window.notReloaded;") is True


def panel_job(driver: WebDriver, state: str) -> Optional[str]:
    """The id the tube page shows as the next ``state`` job (None: "No ... job.")."""
    value: Optional[str] = driver.find_element(
        By.CSS_SELECTOR, f'article.job[data-state="{state}"]'
    ).get_attribute("data-job")
    return value


def test_the_tube_page_shows_each_next_job_live(browser: WebDriver, consoles: Consoles) -> None:
    first = consoles.put("b-heads", b"first", priority=1)  # the tube exists: its page opens
    browser.get(consoles.urls["rw"] + "/server/0/tube/b-heads")
    browser.execute_script("window.notReloaded = true;")
    assert panel_job(browser, "ready") == str(first)
    wait_for(browser, lambda d: "live" in d.find_element(By.ID, "tube-live").text, "live")
    consoles.command(lambda client: client.delete(first))
    wait_for(browser, lambda d: panel_job(d, "ready") is None, "the deleted job vanishes")

    hostile = consoles.put("b-heads", HOSTILE_BODY, priority=3)
    wait_for(browser, lambda d: panel_job(d, "ready") == str(hostile), "the put job shows")
    panel = browser.find_element(By.CSS_SELECTOR, 'article.job[data-state="ready"]')
    body = panel.find_element(By.CSS_SELECTOR, 'pre[data-field="body"]')
    assert body.get_attribute("textContent") == HOSTILE_BODY.decode()
    assert body.find_elements(By.CSS_SELECTOR, "*") == []  # the <script> stays text
    assert panel.find_element(By.CSS_SELECTOR, '[data-field="pri"]').text == "3"
    link = panel.find_element(By.CSS_SELECTOR, '[data-field="id"] a')
    assert (link.get_attribute("href") or "").endswith(f"/server/0/job/{hostile}")
    assert panel.find_elements(By.CSS_SELECTOR, 'button[data-action="delete-job"]')

    delayed = consoles.put("b-heads", b"later", delay=3600)
    wait_for(browser, lambda d: panel_job(d, "delayed") == str(delayed), "the delayed job")
    buried = consoles.bury("b-heads", b"broken")
    wait_for(browser, lambda d: panel_job(d, "buried") == str(buried), "the buried job")
    buried_panel = browser.find_element(By.CSS_SELECTOR, 'article.job[data-state="buried"]')
    assert buried_panel.find_elements(By.CSS_SELECTOR, 'button[data-action="kick-job"]')

    consoles.command(lambda client: client.kick_job(buried))
    wait_for(browser, lambda d: panel_job(d, "buried") is None, "the kicked job leaves")
    assert browser.find_element(By.CSS_SELECTOR, 'article.job[data-state="buried"]').text.endswith(
        "No buried job."
    )
    consoles.command(lambda client: client.delete(hostile))
    wait_for(browser, lambda d: panel_job(d, "ready") == str(buried), "the kicked job is next")
    consoles.command(lambda client: client.delete(buried))
    consoles.command(lambda client: client.delete(delayed))
    wait_for(
        browser,
        lambda d: panel_job(d, "ready") is None and panel_job(d, "delayed") is None,
        "the deleted jobs vanish",
    )
    assert browser.execute_script("return window.notReloaded && window.pwned === undefined;")


def test_a_live_drawn_job_can_be_deleted_from_the_page(
    browser: WebDriver, consoles: Consoles
) -> None:
    consoles.put("b-live-act", b"first")
    browser.get(consoles.urls["rw"] + "/server/0/tube/b-live-act")
    wait_for(browser, lambda d: "live" in d.find_element(By.ID, "tube-live").text, "live")
    job_id = consoles.put("b-live-act", b"delete me", priority=0)
    wait_for(browser, lambda d: panel_job(d, "ready") == str(job_id), "the job shows")
    # A job still shown is updated in place: what someone types into its form stays.
    move = browser.find_element(
        By.CSS_SELECTOR, 'article.job[data-state="ready"] input[name="tube"]'
    )
    move.send_keys("half-typed")
    box = browser.find_element(By.ID, "tube-jobs")
    seen = int(box.get_attribute("data-jobs-updates") or 0)
    wait_for(
        browser,
        lambda d: int(box.get_attribute("data-jobs-updates") or 0) >= seen + 5,
        "five more live updates",
    )
    assert move.get_attribute("value") == "half-typed"
    browser.execute_script("window.confirm = function () { return true; };")
    browser.find_element(
        By.CSS_SELECTOR, 'article.job[data-state="ready"] button[data-action="delete-job"]'
    ).click()
    flash = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "p.flash"), "flash")
    assert flash[0].text == f"Deleted job {job_id}."


def test_read_only_live_jobs_have_no_controls(browser: WebDriver, consoles: Consoles) -> None:
    consoles.put("b-ro-live", b"first")
    browser.get(consoles.urls["ro"] + "/server/0/tube/b-ro-live")
    wait_for(browser, lambda d: "live" in d.find_element(By.ID, "tube-live").text, "live")
    job_id = consoles.bury("b-ro-live", b"look only")
    wait_for(browser, lambda d: panel_job(d, "buried") == str(job_id), "the buried job shows")
    assert browser.find_elements(By.CSS_SELECTOR, "article.job form, article.job button") == []


def test_the_badge_goes_stale_when_updates_stop(browser: WebDriver, consoles: Consoles) -> None:
    with BeanstalkdServer() as server:
        url, monitor = consoles.extra(server, interval=0.2, poll_timeout=1.0)
        browser.get(url + "/")
        wait_for(browser, lambda d: d.find_element(By.ID, "live-status").text == "● live", "live")
        # Polling stops (as if the loop were stuck) while the page's socket stays open.
        for watched in monitor.servers:
            consoles.run(watched.stop())
        WebDriverWait(browser, 60, poll_frequency=0.2).until(
            lambda d: d.find_element(By.ID, "live-status").text.startswith("○ stale"),
            message="the badge says stale",
        )
        section = browser.find_element(By.CSS_SELECTOR, 'section.server[data-server="0"]')
        assert "stale" in (section.get_attribute("class") or "").split()
        assert section.find_element(By.CSS_SELECTOR, '[data-field="state"]').text == "stale"


def test_5000_tubes_stay_small_on_the_wire_and_cheap_to_draw(
    browser: WebDriver, consoles: Consoles, report: Callable[[str], None]
) -> None:
    with BeanstalkdServer() as server:

        async def fill() -> None:
            async with beanstalkt.Client(server.host, server.port) as client:
                for start in range(0, 5000, 500):
                    await asyncio.gather(
                        *(
                            client.put(b"x" * (n % 7), tube=f"t{n:04d}")
                            for n in range(start, start + 500)
                        )
                    )
                for n in range(0, 5000, 250):  # a few problems to put first
                    job = await client.reserve_job((await client.peek_ready(tube=f"t{n:04d}")).id)
                    await client.bury(job.id)

        consoles.run(fill())
        url, _ = consoles.extra(server, interval=0.5, history_seconds=30)
        browser.get(url + "/")
        wait_for(
            browser,
            lambda d: (
                int(d.find_element(By.TAG_NAME, "body").get_attribute("data-updates") or 0) >= 8
            ),
            "eight updates",
        )
        body = browser.find_element(By.TAG_NAME, "body")
        rows = browser.find_elements(By.CSS_SELECTOR, 'section[data-server="0"] tbody tr')
        assert len(rows) == 100  # the cap: problems first, the rest counted
        assert rows[0].get_attribute("data-tube") == "t0000"  # buried: first
        totals = browser.find_element(By.CSS_SELECTOR, 'section[data-server="0"] thead tr.totals')
        assert "(100 of 5001 shown)" in (totals.get_attribute("textContent") or "")  # + default
        max_bytes = int(body.get_attribute("data-max-bytes") or 0)
        assert 0 < max_bytes < 64 * 1024
        max_ms = float(body.get_attribute("data-max-update-ms") or 0)
        report(
            f"5,000 tubes: largest feed message {max_bytes:,} bytes, longest update "
            f"{max_ms:.1f} ms of main-thread time over {body.get_attribute('data-updates')} updates"
        )


def test_a_buried_job_shows_why_it_failed(browser: WebDriver, consoles: Consoles) -> None:
    job_id = consoles.bury("b-failed", b"payload")

    async def reader(server: Any, tube: str) -> dict[int, dict[str, Any]]:
        return {
            job_id: {
                "id": job_id,
                "tube": tube,
                "error": "SMTPRecipientsRefused: <img src=x onerror=window.pwned=3>",
                "traceback": "Traceback (most recent call last):\n  File 'send.py'\nSMTPError",
                "attempts": 5,
                "failed_at": "2026-12-04T20:00:00Z",
                "worker": {"host": "mail-1", "pid": 77},
            }
        }

    url, _ = consoles.extra(consoles.server, interval=0.2, failure_reader=reader)
    browser.get(url + "/server/0/tube/b-failed")
    panel = browser.find_element(By.CSS_SELECTOR, 'article.job[data-state="buried"]')
    assert panel.get_attribute("data-job") == str(job_id)
    failure = panel.find_element(By.CSS_SELECTOR, "section.failure")
    assert failure.find_element(By.CSS_SELECTOR, '[data-field="failure-error"]').text == (
        "SMTPRecipientsRefused: <img src=x onerror=window.pwned=3>"
    )
    assert "after 5 attempt(s), at 2026-12-04T20:00:00Z, by mail-1 (pid 77)" in failure.text
    assert failure.find_elements(By.TAG_NAME, "img") == []
    assert browser.execute_script("return window.pwned === undefined;") is True


def test_a_job_buried_while_the_page_is_open_shows_why(
    browser: WebDriver, consoles: Consoles
) -> None:
    records: dict[int, dict[str, Any]] = {}

    async def reader(server: Any, tube: str) -> dict[int, dict[str, Any]]:
        return dict(records)

    url, _ = consoles.extra(consoles.server, interval=0.2, failure_reader=reader)
    consoles.put("b-failed-live", b"first")
    browser.get(url + "/server/0/tube/b-failed-live")
    wait_for(browser, lambda d: "live" in d.find_element(By.ID, "tube-live").text, "live")
    job_id = consoles.put("b-failed-live", b"payload")
    records[job_id] = {
        "id": job_id,
        "error": "TimeoutError: <img src=x onerror=window.pwned=4>",
        "attempts": 2,
        "failed_at": "2026-12-04T20:30:00Z",
        "worker": {"host": "mail-2", "pid": 78},
    }
    consoles.command(lambda client: client.reserve_job(job_id))
    consoles.command(lambda client: client.bury(job_id))
    wait_for(browser, lambda d: panel_job(d, "buried") == str(job_id), "the buried job shows")
    panel = browser.find_element(By.CSS_SELECTOR, 'article.job[data-state="buried"]')
    failure = panel.find_element(By.CSS_SELECTOR, "section.failure")
    assert failure.find_element(By.CSS_SELECTOR, '[data-field="failure-error"]').text == (
        "TimeoutError: <img src=x onerror=window.pwned=4>"
    )
    assert "after 2 attempt(s), at 2026-12-04T20:30:00Z, by mail-2 (pid 78)" in failure.text
    assert failure.find_elements(By.TAG_NAME, "img") == []
    assert browser.execute_script("return window.pwned === undefined;") is True

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
from selenium.webdriver.support.ui import WebDriverWait

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
    """Paths of chromium and chromedriver, or skip saying what is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        missing = " and ".join(
            name for name, path in (("chromium", browser), ("chromedriver", driver)) if not path
        )
        pytest.skip(
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
    ):
        options.add_argument(argument)
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
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "section.server thead th")]
    assert headers[:9] == [
        "TUBE",
        "READY",
        "RESERVED",
        "DELAYED",
        "BURIED",
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

"""Take docs/images/web-console.png: the real console, in headless Chromium, on a busy server.

    .venv/bin/python scripts/web_console_screenshot.py [OUTPUT.png]

Starts a beanstalkd and a console (plus a second server address where nothing
listens), fills a few dozen tubes the way a day on call looks (a tube with
buried jobs, a backlog that grows, a paused tube, delayed retries), lets the
charts gather a minute of history while producers and workers run, and saves
the overview. Needs beanstalkd, chromium and chromedriver (scripts/setup.sh).
"""

from __future__ import annotations

import asyncio
import random
import shutil
import sys
import threading
import time
from pathlib import Path

import tornado.testing
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

import beanstalkt
from beanstalkt.ops.web.app import ConsoleOptions, make_app
from beanstalkt.ops.web.guard import ConsoleHTTPServer
from beanstalkt.ops.web.live import Monitor
from beanstalkt.testing import BeanstalkdServer, free_port

TUBES = ["emails", "thumbnails", "invoices", "webhooks", "search-index", "reports", "sms"]
TUBES += [f"tenant-{n:02d}.sync" for n in range(1, 12)]


async def workload(server: BeanstalkdServer, stop: asyncio.Event) -> None:
    rng = random.Random(7)
    async with beanstalkt.Client(server.host, server.port) as client:
        for tube in TUBES:
            for _ in range(rng.randrange(0, 6)):
                await client.put(b'{"id": 1}', tube=tube)
        for _ in range(7):  # the problem on call: buried jobs in one tube
            job_id = await client.put(b'{"to": "nobody@example"}', tube="emails")
            await client.reserve_job(job_id)
            await client.bury(job_id)
        for _ in range(3):
            job_id = await client.put(b"{}", tube="webhooks")
            await client.reserve_job(job_id)
            await client.bury(job_id)
        for _ in range(12):
            await client.put(b"retry", delay=600, tube="sms")
        await client.put(b"monthly", tube="reports")
        await client.pause_tube("reports", 3600)
        async with beanstalkt.Client(server.host, server.port) as worker:
            await worker.watch("thumbnails")
            await worker.ignore("default")
            while not stop.is_set():
                # A backlog that grows (invoices) and one that is drained (thumbnails).
                for _ in range(rng.randrange(1, 4)):
                    await client.put(b'{"invoice": 1}', tube="invoices")
                await client.put(b"img", tube="thumbnails")
                if rng.random() < 0.8:
                    job = await worker.reserve(timeout=0)
                    await worker.delete(job)
                await asyncio.sleep(0.5)


def main() -> int:
    output = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images/web-console.png")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        print("chromium and chromedriver are needed (scripts/setup.sh test)", file=sys.stderr)
        return 1
    with BeanstalkdServer() as server:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        stop = asyncio.Event()
        running: list[asyncio.Future[None]] = []

        async def start() -> str:
            monitor = Monitor(
                [(server.host, server.port), ("127.0.0.1", free_port())],
                interval=1.0,
                history_seconds=60,
            )
            http = ConsoleHTTPServer(make_app(monitor, ConsoleOptions()))
            sock, port = tornado.testing.bind_unused_port()
            http.add_sockets([sock])
            monitor.start()
            running.append(asyncio.ensure_future(workload(server, stop)))
            await monitor.first_poll()
            return f"http://127.0.0.1:{port}/"

        url = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,1150",
                         "--hide-scrollbars"):  # fmt: skip
            options.add_argument(argument)
        browser = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
        try:
            browser.get(url)
            time.sleep(65)  # a minute of history for the charts
            browser.save_screenshot(str(output))
        finally:
            browser.quit()
            loop.call_soon_threadsafe(stop.set)
            time.sleep(1)
    print(f"saved {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

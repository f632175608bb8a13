"""Every Python example in README.md runs, as written, against a real beanstalkd.

The examples use the default address (localhost:11300); each runs in its own
interpreter whose ``Client`` defaults point at the test's throwaway server.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from beanstalkt.testing import BeanstalkdServer

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)

# Points Client's default host and port at the test server, nothing else.
PRELUDE = """\
import os, beanstalkt
_defaults = beanstalkt.Client.__init__.__defaults__
beanstalkt.Client.__init__.__defaults__ = (
    os.environ["TEST_BEANSTALKD_HOST"], int(os.environ["TEST_BEANSTALKD_PORT"])
) + _defaults[2:]
"""

# The web-handler example only defines an app; serve it and send it a request.
DRIVE_WEB_APP = """
import asyncio, tornado.httpclient, tornado.testing

async def _drive():
    app = await make_app()
    sock, port = tornado.testing.bind_unused_port()
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets([sock])
    response = await tornado.httpclient.AsyncHTTPClient().fetch(
        f"http://127.0.0.1:{port}/signup", method="POST", body=b"ada@example.com")
    print(response.body.decode())
    async with beanstalkt.Client(watch="emails") as worker:
        print("job body:", (await worker.reserve(timeout=0)).body)
    server.stop()

import tornado.httpserver
asyncio.run(_drive())
"""

EXPECTED = {
    "SignupHandler": ['{"queued": 1}', "job body: b'ada@example.com'"],
    "async def work(": ["working on b'welcome mail for ada@example.com'"],
    "def show(": [
        "Queued a job with id 1",
        "Reserved job Job(id=1, body=b'A job to work on')",
        "Deleted job with id 1",
    ],
    "gather(": ["10000 jobs queued"],
    "BeanstalkdServer(": ["127.0.0.1"],
    "send_email": ["sending Welcome to ada@example.com", "'done': 1,"],
    "beanstalkt.Pool(": ["put job 1 on 127.0.0.1:"],
}


def test_readme_has_the_examples() -> None:
    assert len(BLOCKS) == len(EXPECTED)


def marker_of(block: str) -> str:
    return next(marker for marker in EXPECTED if marker in block)


@pytest.mark.parametrize("block", BLOCKS, ids=[marker_of(b).strip("(: ") for b in BLOCKS])
def test_readme_example_runs(block: str, beanstalkd: BeanstalkdServer) -> None:
    marker = marker_of(block)
    source = PRELUDE + block + (DRIVE_WEB_APP if marker == "SignupHandler" else "")
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
            "TEST_BEANSTALKD_HOST": beanstalkd.host,
            "TEST_BEANSTALKD_PORT": str(beanstalkd.port),
            "BEANSTALKD_SERVERS": f"{beanstalkd.host}:{beanstalkd.port}",
        },
    )
    assert result.returncode == 0, result.stderr
    for expected in EXPECTED[marker]:
        assert expected in result.stdout, (result.stdout, result.stderr)

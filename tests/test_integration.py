"""The client inside the programs it is made for: a Tornado web app, plain asyncio, run_sync."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import tornado.httpclient
import tornado.httpserver
import tornado.testing
import tornado.web

import beanstalkt
from beanstalkt.testing import BeanstalkdServer

HANG = 15


class QueueHandler(tornado.web.RequestHandler):
    async def post(self) -> None:
        job_id = await self.application.client.put(self.request.body)  # type: ignore[attr-defined]
        self.write(str(job_id))


class TubeHandler(tornado.web.RequestHandler):
    async def get(self, tube: str) -> None:
        stats = await self.application.client.stats_tube(tube)  # type: ignore[attr-defined]
        self.write({"ready": stats["current-jobs-ready"]})


async def test_tornado_handler_puts_the_request_body_as_a_job(
    beanstalkd: BeanstalkdServer,
) -> None:
    app = tornado.web.Application([(r"/jobs", QueueHandler), (r"/tubes/(.+)", TubeHandler)])
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port, use="web")
    await client.connect()
    app.client = client  # type: ignore[attr-defined]
    sock, port = tornado.testing.bind_unused_port()
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets([sock])
    http = tornado.httpclient.AsyncHTTPClient(force_instance=True)
    try:
        response = await http.fetch(
            f"http://127.0.0.1:{port}/jobs", method="POST", body=b"signup ada@example.com"
        )
        assert response.code == 200
        job_id = int(response.body)

        # Concurrent requests share the one pipelined connection.
        responses = await asyncio.wait_for(
            asyncio.gather(
                *[
                    http.fetch(f"http://127.0.0.1:{port}/jobs", method="POST", body=b"req %d" % n)
                    for n in range(25)
                ]
            ),
            HANG,
        )
        ids = [int(r.body) for r in responses]
        assert len(set(ids)) == 25
        assert job_id not in ids

        tube = await http.fetch(f"http://127.0.0.1:{port}/tubes/web")
        assert tube.body == b'{"ready": 26}'
    finally:
        http.close()
        server.stop()
        await server.close_all_connections()
        await client.close()

    # The jobs are in the server, in the used tube, with the request bodies.
    async with beanstalkt.Client(beanstalkd.host, beanstalkd.port, watch="web") as check:
        assert await check.peek(job_id) == beanstalkt.Job(job_id, b"signup ada@example.com")
        bodies = {(await check.peek(i)).body for i in ids}
        assert bodies == {b"req %d" % n for n in range(25)}
        assert (await check.stats_job(job_id))["tube"] == "web"
        assert (await check.reserve(timeout=0)).id == job_id


def server_args(server: BeanstalkdServer) -> list[str]:
    return [server.host, str(server.port)]


def run_program(source: str, server: BeanstalkdServer) -> subprocess.CompletedProcess[str]:
    """Run ``source`` in a fresh interpreter with the server's address as argv[1:3]."""
    return subprocess.run(
        [
            sys.executable,
            "-W",
            "default",
            # Python 3.12+ warns about the seed's own IOLoop.current() before a loop
            # runs; that is Tornado's and the user's business, not the client's.
            "-W",
            "ignore:There is no current event loop:DeprecationWarning",
            "-c",
            textwrap.dedent(source),
            *server_args(server),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_clean_run(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 0, result.stderr
    # No leaked sockets, un-awaited coroutines or destroyed pending tasks.
    assert result.stderr == "", result.stderr
    for line in expected:
        assert line in result.stdout, result.stdout


# No Tornado in sight: the user's program is plain asyncio.
PLAIN_ASYNCIO = """
import asyncio
import sys

import beanstalkt


async def main(host, port):
    async with beanstalkt.Client(host, port, use="plain") as producer:
        job_id = await producer.put(b"from asyncio.run")
    async with beanstalkt.Client(host, port, watch="plain") as worker:
        job = await worker.reserve(timeout=1)
        assert job.id == job_id and job.body == b"from asyncio.run", job
        await worker.delete(job.id)
        stats = await worker.stats_tube("plain")
        print("done", job_id, stats["cmd-delete"], stats["current-jobs-ready"])


asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def test_plain_asyncio_run_program(beanstalkd: BeanstalkdServer) -> None:
    assert_clean_run(run_program(PLAIN_ASYNCIO, beanstalkd), "done 1 1 0")


RUN_SYNC = """
import sys

import tornado.ioloop

import beanstalkt

# Created at import time, outside any running loop, as in the original README.
client = beanstalkt.Client(sys.argv[1], int(sys.argv[2]))


async def main():
    await client.connect()
    job_id = await client.put(b"from run_sync")
    job = await client.reserve(timeout=1)
    assert job == {"id": job_id, "body": b"from run_sync"}, job
    await client.delete(job["id"])
    print("deleted", job_id, (await client.stats())["current-jobs-ready"])
    await client.close()


tornado.ioloop.IOLoop.current().run_sync(main)
"""


def test_tornado_run_sync_program(beanstalkd: BeanstalkdServer) -> None:
    assert_clean_run(run_program(RUN_SYNC, beanstalkd), "deleted 1 0")


RUN_SYNC_CALLBACKS = """
import sys

import tornado.ioloop

import beanstalkt

client = beanstalkt.Client(sys.argv[1], int(sys.argv[2]))


def main():
    done = tornado.ioloop.IOLoop.current().asyncio_loop.create_future()

    def put():
        client.put(b"callback job", callback=reserve)

    def reserve(job_id):
        print("queued", job_id)
        client.reserve(timeout=1, callback=delete)

    def delete(job):
        print("reserved", job["body"])
        client.delete(job["id"], callback=lambda _: client.peek(job["id"], callback=finish))

    def finish(error):
        print("after delete:", type(error).__name__)
        client.close(lambda: done.set_result(None))

    client.connect(put)
    return done


tornado.ioloop.IOLoop.current().run_sync(main)
"""


def test_tornado_run_sync_program_in_callback_style(beanstalkd: BeanstalkdServer) -> None:
    assert_clean_run(
        run_program(RUN_SYNC_CALLBACKS, beanstalkd),
        "queued 1",
        "reserved b'callback job'",
        "after delete: NotFound",
    )

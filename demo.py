"""The put -> reserve -> delete walk-through of the original beanstalkt, in async/await.

    python demo.py [--host HOST] [--port PORT]

Runs on Tornado's IOLoop. When no beanstalkd answers at HOST:PORT (default
localhost:11300), it starts a throwaway one on a free loopback port.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
from collections.abc import Iterator

import tornado.ioloop

import beanstalkt
from beanstalkt.testing import BeanstalkdServer

DEMO_TUBE = "beanstalkt-demo"


async def walk_through(host: str, port: int) -> None:
    """Put a job, reserve it and delete it, printing each step."""
    # A tube of its own, so the demo never takes a real job from a shared server.
    async with beanstalkt.Client(host, port, use=DEMO_TUBE, watch=DEMO_TUBE) as client:
        job_id = await client.put(b"A job to work on")
        print(f"Queued a job with id {job_id}")
        job = await client.reserve(timeout=5)
        print(f"Reserved job {job}")
        await client.delete(job.id)
        print(f"Deleted job with id {job.id}")


@contextlib.contextmanager
def server_at(host: str, port: int) -> Iterator[tuple[str, int]]:
    """Yield a reachable beanstalkd address: the given one, or a throwaway server's."""
    if _reachable(host, port):
        yield host, port
        return
    print(f"No beanstalkd at {host}:{port}; starting a throwaway one")
    with BeanstalkdServer() as server:
        print(f"Started beanstalkd on {server.host}:{server.port}")
        yield server.host, server.port


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def main() -> None:
    """Parse the address, find or start a server, run the walk-through on Tornado's IOLoop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=11300)
    args = parser.parse_args()
    with server_at(args.host, args.port) as (host, port):
        tornado.ioloop.IOLoop.current().run_sync(lambda: walk_through(host, port))


if __name__ == "__main__":
    main()

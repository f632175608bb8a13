"""A module-scoped client used by tests that each get their own event loop.

The pattern a pytest user writes first: one client for the module, function-
scoped loops (pytest-asyncio's default). The client belongs to the loop it
connected on; in another test's loop it says so clearly, leaves nothing
owed, and works again after ``close()`` + ``connect()``. The tests run in
file order.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import beanstalkt
from beanstalkt.testing import BeanstalkdServer


@pytest.fixture(scope="module")
def server() -> Iterator[BeanstalkdServer]:
    with BeanstalkdServer() as started:
        yield started


@pytest.fixture(scope="module")
def shared_client(server: BeanstalkdServer) -> beanstalkt.Client:
    return beanstalkt.Client(server.host, server.port)


async def test_first_loop_connects_and_puts(shared_client: beanstalkt.Client) -> None:
    await shared_client.connect()
    assert await shared_client.put(b"from the first loop") == 1


async def test_next_loop_gets_a_clear_error_then_reconnects(
    shared_client: beanstalkt.Client,
) -> None:
    with pytest.raises(beanstalkt.WrongEventLoop, match="belongs to the event loop"):
        shared_client.put(b"stray")
    assert shared_client.in_flight == 0
    await shared_client.close()
    await shared_client.connect()
    assert await shared_client.put(b"A") == 2
    assert await shared_client.put(b"B") == 3
    assert (await shared_client.stats_tube("default"))["current-jobs-ready"] == 3
    assert (await shared_client.peek(2)).body == b"A"


async def test_a_loop_after_a_clean_close_just_connects(shared_client: beanstalkt.Client) -> None:
    await shared_client.close()  # still connected on the previous test's (closed) loop
    await shared_client.connect()
    assert (await shared_client.peek(3)).body == b"B"
    await shared_client.close()

"""set_disconnect_callback / set_reconnect_callback: told when the server goes and comes back."""

from __future__ import annotations

import asyncio
import logging

import pytest

import beanstalkt
from beanstalkt.testing import BeanstalkdServer

HANG = 10.0  # a deadline for waits that must not hang; never reached when things work


async def test_told_of_each_loss_and_return_in_order(beanstalkd: BeanstalkdServer) -> None:
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port, reconnect_interval=0.1)
    events: list[str] = []
    lost = asyncio.Event()
    back = asyncio.Event()

    def on_disconnect(reason: str) -> None:
        # Called once reconnecting has started: the client says it is not connected.
        events.append(f"lost closed={client.closed()} {reason}")
        lost.set()

    async def on_reconnect() -> None:
        events.append(f"back used={await client.list_tube_used()}")
        back.set()

    client.set_disconnect_callback(on_disconnect)
    client.set_reconnect_callback(on_reconnect)
    await client.connect()
    await client.use("kept")
    for _ in range(2):
        lost.clear()
        back.clear()
        beanstalkd.kill()
        await asyncio.wait_for(lost.wait(), HANG)
        beanstalkd.start()
        await asyncio.wait_for(back.wait(), HANG)
    address = f"{beanstalkd.host}:{beanstalkd.port}"
    expected_loss = f"lost closed=True connection to {address} lost: closed by the server"
    assert events == [expected_loss, "back used=kept"] * 2
    # close() is not a loss: no call.
    await client.close()
    await asyncio.sleep(0)
    assert len(events) == 4


async def test_a_failing_callback_is_logged_not_raised(
    beanstalkd: BeanstalkdServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = beanstalkt.Client(beanstalkd.host, beanstalkd.port, reconnect_interval=0.1)
    called = asyncio.Event()

    async def broken(reason: str) -> None:
        called.set()
        raise RuntimeError("bug in the callback")

    client.set_disconnect_callback(broken)
    await client.connect()
    with caplog.at_level(logging.ERROR, logger="beanstalkt"):
        beanstalkd.kill()
        await asyncio.wait_for(called.wait(), HANG)
        beanstalkd.start()
        # The client itself carries on: it reconnects and works (and meanwhile the
        # callback task's failure was logged).
        assert await asyncio.wait_for(client.put(b"still works"), HANG) > 0
    assert "disconnect callback failed: bug in the callback" in caplog.text
    client.set_disconnect_callback(None)
    await client.close()

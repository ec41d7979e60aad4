"""The broadcast family, on a single node, a cluster and sentinel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from taskiq.message import TaskiqMessage

from taskiq_redis_lua import (
    PubSubBroker,
    local_redis,
)
from taskiq_redis_lua.local_redis import LocalTopology
from taskiq_redis_lua.pubsub import _PubSubBroker

from .building import PUBSUB
from .listening import Listen, send

MakeBroker = Callable[..., _PubSubBroker]


@pytest.fixture
async def make_broker(
    topology: LocalTopology, unique: str
) -> AsyncIterator[MakeBroker]:
    built: list[_PubSubBroker] = []

    def make(**options: Any) -> _PubSubBroker:
        broker = PUBSUB.build(topology, **{"queue_name": unique, **options})
        built.append(broker)
        return broker

    yield make
    for broker in built:
        await broker.shutdown()


def value(broker: _PubSubBroker, data: bytes) -> Any:
    return broker.formatter.loads(data).args[0]


async def subscribed(*listeners: Any) -> None:
    """Give fresh listeners the moment they need to subscribe."""
    for listener in listeners:
        assert await listener.gets_nothing_for(0.3)


async def test_every_subscriber_gets_every_message(
    make_broker: MakeBroker, listen: Listen
) -> None:
    first, second = listen(make_broker()), listen(make_broker())
    await subscribed(first, second)
    sender = make_broker()
    await send(sender, "to all")
    for listener in (first, second):
        assert value(sender, await listener.next()) == "to all"


async def test_the_queue_name_label_picks_the_channel(
    make_broker: MakeBroker, listen: Listen, unique: str
) -> None:
    here = listen(make_broker())
    there = listen(make_broker(queue_name=f"{unique}-other"))
    await subscribed(here, there)
    sender = make_broker()
    await send(sender, "other channel", queue_name=f"{unique}-other")
    assert value(sender, await there.next()) == "other channel"
    assert await here.gets_nothing_for(0.5)


async def test_a_message_published_before_anyone_listens_is_gone(
    make_broker: MakeBroker, listen: Listen
) -> None:
    sender = make_broker()
    await send(sender, "too early")
    late = listen(make_broker())
    assert await late.gets_nothing_for(0.8)


async def test_closing_a_listener_is_prompt(
    make_broker: MakeBroker, listen: Listen
) -> None:
    listener = listen(make_broker())
    await subscribed(listener)
    started = time.monotonic()
    await listener.close()
    assert time.monotonic() - started < 5  # not a blocking read's socket timeout


async def test_a_subscriber_comes_back_after_a_redis_restart(
    tmp_path: Path, unique: str
) -> None:
    server = local_redis.start_server(tmp_path)
    url = f"redis://127.0.0.1:{server.port}"
    broker = PubSubBroker(url, queue_name=unique)
    stream = broker.listen()
    received = asyncio.ensure_future(anext(stream))
    try:
        await asyncio.sleep(0.3)
        server.kill()
        await asyncio.sleep(1.0)
        server = local_redis.start_server(tmp_path, port=server.port)
        sender = PubSubBroker(url, queue_name=unique)
        message = TaskiqMessage(
            task_id="1", task_name="echo", labels={}, args=["back"], kwargs={}
        )
        deadline = time.monotonic() + 15
        while not received.done() and time.monotonic() < deadline:
            await sender.kick(sender.formatter.dumps(message))  # until resubscribed
            await asyncio.sleep(0.2)
        await sender.shutdown()
        assert value(broker, await asyncio.wait_for(received, 1)) == "back"
    finally:
        received.cancel()
        await asyncio.gather(received, return_exceptions=True)
        await stream.aclose()
        await broker.shutdown()
        server.stop()

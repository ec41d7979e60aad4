"""What only the list queue does (priorities, blocking waits, its keys), on a single
node, a cluster and sentinel. What both queue families promise is in
test_reliable_queue.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from taskiq.message import TaskiqMessage

from taskiq_redis_lua import (
    ListQueueBroker,
    QueueMessage,
    local_redis,
)
from taskiq_redis_lua import topology as topo
from taskiq_redis_lua.list_queue import _ListQueue
from taskiq_redis_lua.local_redis import LocalTopology

from .building import LIST_QUEUE
from .listening import Listen, Listener, send
from .queue_scripts import Queue

MakeQueue = Callable[..., _ListQueue]


@pytest.fixture
async def make_queue(topology: LocalTopology, unique: str) -> AsyncIterator[MakeQueue]:
    """Build brokers on one fresh queue of the topology; shut them down afterwards."""
    built: list[_ListQueue] = []

    def make(**options: Any) -> _ListQueue:
        options.setdefault("queue_name", unique)
        broker = LIST_QUEUE.build(topology, **options)
        built.append(broker)
        return broker

    yield make
    for broker in built:
        await broker.shutdown()


@pytest.fixture
def raw(endpoint: topo.Endpoint, unique: str) -> Queue:
    """The queue's scripts called by hand: a worker that dies or stalls."""
    return Queue(endpoint, unique)


async def test_a_worker_of_slow_tasks_leaves_the_rest_of_the_queue_to_others(
    make_queue: MakeQueue, listen: Listen
) -> None:
    slow, idle = listen(make_queue()), listen(make_queue())
    for value in range(5):
        await send(make_queue(), value)
    await slow.next()  # and runs it for a while
    await asyncio.sleep(0.2)
    assert isinstance(await idle.next(timeout=2), QueueMessage)


async def test_a_busy_worker_takes_ever_larger_batches(
    make_queue: MakeQueue, listen: Listen, raw: Queue
) -> None:
    broker = make_queue(fetch_batch_size=50)
    await asyncio.gather(*(send(broker, value) for value in range(100)))
    listener = listen(broker)
    for _ in range(8):
        await listener.next()
    # Pops of 1, 2, 4 and 8: the worker now holds more than it was handed.
    assert await raw.client.zcard(raw.k.inflight) > 8


async def test_a_stale_ack_does_not_remove_the_redelivered_message(
    make_queue: MakeQueue, listen: Listen, raw: Queue
) -> None:
    broker = make_queue()
    await send(broker, "x")
    await raw.pop(lease_ms=200)  # a worker that stalls past its lease
    message = await listen(broker).next(timeout=3)
    assert await raw.ack(message.id, 1) == 0  # the stalled worker acks at last
    assert await raw.client.zscore(raw.k.inflight, message.id) is not None
    await message.ack()
    assert await raw.client.zcard(raw.k.inflight) == 0


async def test_higher_priority_first_and_arrival_order_within_a_priority(
    make_queue: MakeQueue, listen: Listen
) -> None:
    broker = make_queue()
    for value, priority in [
        ("low", -1),
        ("a", None),
        ("urgent", 9),
        ("b", 0),
        ("c", "0"),
    ]:
        labels = {} if priority is None else {"priority": priority}
        await send(broker, value, **labels)
    listener = listen(broker)
    order = [listener.value(await listener.next()) for _ in range(5)]
    assert order == ["urgent", "a", "b", "c", "low"]


async def test_a_delayed_message_arrives_at_its_due_time_without_a_wake_up(
    make_queue: MakeQueue, listen: Listen
) -> None:
    broker = make_queue(block_timeout=10)
    listener = listen(broker)
    assert await listener.gets_nothing_for(0.3)  # the worker is idle, blocked
    sent = time.monotonic()
    await send(broker, "later", delay=1.5)
    await send(broker, "now")
    assert listener.value(await listener.next()) == "now"
    message = await listener.next(timeout=5)
    late = time.monotonic() - sent - 1.5
    assert listener.value(message) == "later"
    assert -0.05 < late < 0.5


async def test_a_delayed_message_wakes_one_of_several_idle_workers_on_time(
    make_queue: MakeQueue, listen: Listen
) -> None:
    workers = [listen(make_queue(block_timeout=5)) for _ in range(3)]
    reads = [asyncio.ensure_future(worker.next(timeout=6)) for worker in workers]
    await asyncio.sleep(0.3)  # all three are idle, blocked on the marker
    sent = time.monotonic()
    await send(make_queue(), "later", delay=1.0)
    done, waiting = await asyncio.wait(reads, return_when=asyncio.FIRST_COMPLETED)
    late = time.monotonic() - sent - 1.0
    for read in waiting:
        read.cancel()
    assert len(done) == 1
    assert -0.05 < late < 0.5


async def test_a_dead_workers_message_goes_to_an_idle_worker_when_its_lease_ends(
    make_queue: MakeQueue, listen: Listen, raw: Queue
) -> None:
    broker = make_queue(block_timeout=5)
    workers = [listen(make_queue(block_timeout=5)) for _ in range(2)]
    reads = [asyncio.ensure_future(worker.next(timeout=6)) for worker in workers]
    await asyncio.sleep(0.3)  # both idle, blocked on the marker
    # A message queued without waking anyone, then taken by a worker that dies.
    message_id = "0000000000000001:0"
    payload = broker.formatter.dumps(
        TaskiqMessage(task_id="1", task_name="echo", labels={}, args=["x"], kwargs={})
    ).message
    await raw.client.hset(raw.k.msgs, message_id, payload)
    await raw.client.zadd(raw.k.ready, {message_id: 0})
    _, taken, _ = await raw.pop(lease_ms=1_000)
    assert [item[0] for item in taken] == [message_id]
    died = time.monotonic()
    done, waiting = await asyncio.wait(reads, return_when=asyncio.FIRST_COMPLETED)
    for read in waiting:
        read.cancel()
    (read,) = done
    assert read.result().delivery == 2
    assert 0.9 < time.monotonic() - died < 1.5


@pytest.mark.parametrize(
    "labels",
    [{"priority": "high"}, {"priority": 1.5}, {"priority": 2**40}],
)
async def test_a_bad_priority_label_is_refused_before_anything_is_stored(
    make_queue: MakeQueue, raw: Queue, labels: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="priority"):
        await send(make_queue(), "x", **labels)
    assert await raw.client.exists(raw.k.msgs, raw.k.queue) == 0


async def test_a_message_whose_payload_vanished_is_buried(
    make_queue: MakeQueue, listen: Listen, raw: Queue
) -> None:
    broker = make_queue()
    await send(broker, "lost", priority=1)  # waits with its payload in msgs
    await raw.client.delete(raw.k.msgs)
    await send(broker, "kept")
    listener = listen(broker)
    assert listener.value(await listener.next()) == "kept"
    assert [d.reason for d in await broker.list_dead()] == ["payload missing"]


async def test_an_idle_worker_blocks_instead_of_polling(
    tmp_path: Path, unique: str
) -> None:
    server = local_redis.start_server(tmp_path)
    broker = ListQueueBroker(
        f"redis://127.0.0.1:{server.port}", queue_name=unique, block_timeout=1
    )
    listener = Listener(broker)
    try:
        assert await listener.gets_nothing_for(0.5)
        before = await broker.endpoint.client.info("commandstats")
        assert await listener.gets_nothing_for(5)
        after = await broker.endpoint.client.info("commandstats")
    finally:
        await listener.close()
        await broker.shutdown()
        server.stop()

    def calls(stats: dict[str, Any], command: str) -> int:
        return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))

    waits = calls(after, "bzpopmin") - calls(before, "bzpopmin")
    looks = calls(after, "evalsha") - calls(before, "evalsha")
    assert 3 <= waits <= 6
    assert looks <= waits + 1  # on a single node each wait carries its pop


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"visibility_timeout": 0}, ValueError, "visibility_timeout"),
        ({"visibility_timeout": "30"}, ValueError, "visibility_timeout"),
        ({"visibility_timeout": 0.01}, ValueError, "at least 0.1"),
        ({"max_deliveries": 0}, ValueError, "max_deliveries"),
        ({"fetch_batch_size": 2.5}, ValueError, "fetch_batch_size"),
        ({"fetch_batch_size": 20_000}, ValueError, "at most 10000"),
        ({"max_dead_letters": -1}, ValueError, "max_dead_letters"),
        ({"block_timeout": -1}, ValueError, "block_timeout"),
        ({"block_timeout": 40}, ValueError, "socket_timeout"),
        ({"queue_name": ""}, ValueError, "queue_name"),
    ],
)
def test_bad_options_are_refused_naming_the_parameter(
    topology: LocalTopology,
    options: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        LIST_QUEUE.build(topology, **options)

"""The reliable list queue family, on a single node, a cluster and sentinel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import RedisCluster
from taskiq import BrokerMessage
from taskiq.message import TaskiqMessage

from taskiq_redis_lua import (
    ListQueueBroker,
    ListQueueClusterBroker,
    ListQueueSentinelBroker,
    QueueMessage,
    local_redis,
)
from taskiq_redis_lua import topology as topo
from taskiq_redis_lua.keys import list_queue_keys
from taskiq_redis_lua.list_queue import _ListQueue
from taskiq_redis_lua.local_redis import LocalTopology

from .listening import CountingFormatter, Listen, Listener, as_worker, send
from .queue_scripts import Queue

MakeQueue = Callable[..., _ListQueue]


def build_queue(target: LocalTopology, **options: Any) -> _ListQueue:
    """The list queue class of ``target``'s topology, built as a user would."""
    if target.kind == "single":
        return ListQueueBroker(target.url, **options)
    if target.kind == "cluster":
        return ListQueueClusterBroker(target.url, **options)
    return ListQueueSentinelBroker(target.sentinels, target.master_name, **options)


@pytest.fixture
async def make_queue(topology: LocalTopology, unique: str) -> AsyncIterator[MakeQueue]:
    """Build brokers on one fresh queue of the topology; shut them down afterwards."""
    built: list[_ListQueue] = []

    def make(**options: Any) -> _ListQueue:
        options.setdefault("queue_name", unique)
        broker = build_queue(topology, **options)
        built.append(broker)
        return broker

    yield make
    for broker in built:
        await broker.shutdown()


@pytest.fixture
def raw(endpoint: topo.Endpoint, unique: str) -> Queue:
    """The queue's scripts called by hand: a worker that dies or stalls."""
    return Queue(endpoint, unique)


async def test_one_message_reaches_exactly_one_of_two_listeners(
    make_queue: MakeQueue, listen: Listen
) -> None:
    first, second = listen(make_queue()), listen(make_queue())
    await send(make_queue(), "only")
    got = await asyncio.gather(first.next(2), second.next(2), return_exceptions=True)
    messages = [item for item in got if isinstance(item, QueueMessage)]
    assert len(messages) == 1
    assert [isinstance(item, TimeoutError) for item in got].count(True) == 1
    assert messages[0].delivery == 1


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


async def test_an_acked_message_leaves_no_trace(
    make_queue: MakeQueue, listen: Listen, endpoint: topo.Endpoint, unique: str
) -> None:
    broker = make_queue()
    listener = listen(broker)
    await send(broker, 1)
    message = await listener.next()
    await message.ack()
    keys = list_queue_keys(unique)
    for key in (keys.ready, keys.inflight, keys.msgs, keys.deliveries, keys.delayed):
        assert await endpoint.client.exists(key) == 0, key


async def test_an_unacked_message_returns_after_its_lease_as_delivery_two(
    make_queue: MakeQueue, listen: Listen, raw: Queue
) -> None:
    broker = make_queue()
    await send(broker, "again")
    _, taken, _ = await raw.pop(lease_ms=300)  # a worker takes it and dies
    message = await listen(broker).next(timeout=3)
    assert message.id == taken[0][0]
    assert message.delivery == 2


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


async def test_a_living_worker_keeps_its_long_task_from_being_redelivered(
    make_queue: MakeQueue, listen: Listen
) -> None:
    first = listen(make_queue(visibility_timeout=0.6))
    second = listen(make_queue(visibility_timeout=0.6))
    await send(make_queue(), "long")
    tries = {
        asyncio.ensure_future(first.next(3)): second,
        asyncio.ensure_future(second.next(3)): first,
    }
    done, waiting = await asyncio.wait(tries, return_when=asyncio.FIRST_COMPLETED)
    (winner,), (loser,) = done, waiting
    message = winner.result()
    loser.cancel()  # the losing listener keeps its own pending read
    assert await tries[winner].gets_nothing_for(2.5)  # four leases long
    await message.ack()


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


@pytest.mark.parametrize("delay", [1, 0.5, "0.5", "1"])
async def test_the_delay_label_takes_seconds_as_int_float_or_str(
    make_queue: MakeQueue, raw: Queue, delay: Any
) -> None:
    await send(make_queue(), "x", delay=delay)
    assert await raw.client.zcard(raw.k.delayed) == 1
    assert await raw.client.zcard(raw.k.ready) == 0


@pytest.mark.parametrize(
    "labels",
    [{"priority": "high"}, {"priority": 1.5}, {"delay": "soon"}, {"delay": -1}],
)
async def test_bad_labels_are_refused_before_anything_is_stored(
    make_queue: MakeQueue, raw: Queue, labels: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match=r"priority|delay"):
        await send(make_queue(), "x", **labels)
    assert await raw.client.exists(raw.k.msgs) == 0


async def test_the_queue_name_label_routes_to_another_queue(
    make_queue: MakeQueue, listen: Listen, unique: str
) -> None:
    sender = make_queue()
    await send(sender, "elsewhere", queue_name=f"{unique}-other")
    await send(sender, "here")
    here = listen(make_queue())
    other = listen(make_queue(queue_name=f"{unique}-other"))
    assert here.value(await here.next()) == "here"
    assert other.value(await other.next()) == "elsewhere"


async def test_a_message_whose_workers_keep_dying_becomes_a_dead_letter(
    make_queue: MakeQueue, listen: Listen, raw: Queue
) -> None:
    broker = make_queue(max_deliveries=2)
    await send(broker, "poison")
    for _ in range(2):
        _, taken, _ = await raw.pop(lease_ms=1, max_deliveries=2)
        assert taken
        await asyncio.sleep(0.01)
    listener = listen(broker)
    assert await listener.gets_nothing_for(0.5)
    assert await broker.count_dead() == 1
    (dead,) = await broker.list_dead()
    assert dead.deliveries == 3
    assert dead.reason == "delivered 2 times without an ack"
    assert broker.formatter.loads(dead.payload).args == ["poison"]
    assert await broker.requeue_dead() == 1
    message = await listener.next()
    assert (listener.value(message), message.delivery) == ("poison", 1)
    await message.ack()
    assert await broker.count_dead() == 0


async def test_dead_letters_can_be_requeued_by_id_and_purged(
    make_queue: MakeQueue, listen: Listen, raw: Queue
) -> None:
    broker = make_queue()
    for value in range(3):
        await send(broker, value)
    await raw.pop()
    inflight: Any = await raw.client.zrange(raw.k.inflight, 0, -1)
    for message_id in inflight:
        await raw.bury(message_id, 1, "by hand")
    dead = await broker.list_dead(limit=2, offset=1)
    assert [broker.formatter.loads(d.payload).args[0] for d in dead] == [1, 2]
    assert await broker.requeue_dead([dead[0].id]) == 1
    assert await broker.purge_dead() == 2
    assert await broker.count_dead() == 0
    listener = listen(broker)
    assert listener.value(await listener.next()) == 1
    assert await raw.client.hlen(raw.k.msgs) == 1


async def test_a_received_message_is_decoded_once_with_the_users_formatter(
    make_queue: MakeQueue, listen: Listen
) -> None:
    broker = as_worker(make_queue())
    counting = CountingFormatter(broker.formatter)
    broker.with_formatter(counting)
    await send(broker, "once")
    listener = listen(broker)
    message = await listener.next()
    assert listener.value(message) == "once"  # loaded as taskiq does
    assert counting.decoded == 1


async def test_an_undecodable_payload_is_buried_and_the_worker_goes_on(
    make_queue: MakeQueue, listen: Listen
) -> None:
    broker = as_worker(make_queue())
    await broker.kick(
        BrokerMessage(
            task_id="bad", task_name="echo", message=b"\xff not json", labels={}
        )
    )
    await send(broker, "good")
    listener = listen(broker)
    assert listener.value(await listener.next()) == "good"
    (dead,) = await broker.list_dead()
    assert dead.reason.startswith("undecodable payload")
    assert dead.payload == b"\xff not json"


async def test_a_message_whose_payload_vanished_is_buried(
    make_queue: MakeQueue, listen: Listen, raw: Queue
) -> None:
    broker = make_queue()
    await send(broker, "lost")
    await raw.client.delete(raw.k.msgs)
    await send(broker, "kept")
    listener = listen(broker)
    assert listener.value(await listener.next()) == "kept"
    assert [d.reason for d in await broker.list_dead()] == ["payload missing"]


async def test_a_worker_buries_tasks_it_does_not_know(
    make_queue: MakeQueue, listen: Listen
) -> None:
    broker = as_worker(make_queue())
    await broker.kick(
        broker.formatter.dumps(
            TaskiqMessage(task_id="1", task_name="nope", labels={}, args=[], kwargs={})
        )
    )
    await send(broker, "known")
    listener = listen(broker)
    assert listener.value(await listener.next()) == "known"
    assert [d.reason for d in await broker.list_dead()] == ["unknown task 'nope'"]


async def test_shutdown_returns_fetched_and_unfinished_messages_to_the_queue(
    make_queue: MakeQueue, listen: Listen, raw: Queue
) -> None:
    broker = make_queue(fetch_batch_size=5)
    for value in range(5):
        await send(broker, value)
    listener = listen(broker)
    first = await listener.next()
    await listener.close()  # taskiq stops listening: four were fetched, not handed over
    assert await raw.client.zcard(raw.k.ready) == 4
    await broker.shutdown()  # the one handed over was never acked: it counts
    assert await raw.client.zcard(raw.k.ready) == 5
    assert await raw.client.zcard(raw.k.inflight) == 0
    _, taken, _ = await raw.pop()
    assert [(message_id, delivery) for message_id, delivery, _ in taken][:2] == [
        (first.id, 2),
        (taken[1][0], 1),
    ]
    assert {delivery for _, delivery, _ in taken[1:]} == {1}


async def test_several_queues_of_a_cluster_live_in_their_own_slots(
    cluster_redis: LocalTopology, unique: str
) -> None:
    names = [f"{unique}-{n}" for n in range(6)] + [f"{{{unique}}}:jobs", f"{unique}}}b"]
    brokers = [build_queue(cluster_redis, queue_name=name) for name in names]
    try:
        for broker in brokers:
            await send(broker, broker.queue_name)
        for broker in brokers:
            message = await Listener(broker).next()
            assert broker.formatter.loads(message.data).args == [broker.queue_name]
            await message.ack()
        client = brokers[0].endpoint.client
        assert isinstance(client, RedisCluster)
        nodes = {client.get_node_from_key(list_queue_keys(n).ready) for n in names}
        assert len(nodes) == 3
    finally:
        for broker in brokers:
            await broker.shutdown()


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


async def test_an_idle_worker_still_wakes_for_work_after_script_flush(
    make_queue: MakeQueue, listen: Listen, endpoint: topo.Endpoint
) -> None:
    broker = make_queue(block_timeout=1)
    listener = listen(broker)
    assert await listener.gets_nothing_for(0.3)  # blocked, its pop loaded
    await endpoint.client.script_flush()
    await send(broker, "after flush")
    message = await listener.next(timeout=5)
    assert listener.value(message) == "after flush"


async def test_a_listener_rides_out_a_redis_restart(
    tmp_path: Path, unique: str
) -> None:
    server = local_redis.start_server(tmp_path)
    url = f"redis://127.0.0.1:{server.port}"
    broker = ListQueueBroker(url, queue_name=unique, block_timeout=0.5)
    listener = Listener(broker)
    try:
        assert await listener.gets_nothing_for(0.3)
        server.kill()
        assert await listener.gets_nothing_for(1.0)  # no crash while Redis is away
        server = local_redis.start_server(tmp_path, port=server.port)
        sender = ListQueueBroker(url, queue_name=unique)
        await send(sender, "after the restart")
        await sender.shutdown()
        assert listener.value(await listener.next(timeout=10)) == "after the restart"
    finally:
        await listener.close()
        await broker.shutdown()
        server.stop()


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
        build_queue(topology, **options)

"""The reliable queue's contract: what the list and the stream broker both promise.

Every test runs on both families and on a single node, a cluster and sentinel. What
only one family does is specified in test_list_queue.py and test_stream.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import RedisCluster
from taskiq import BrokerMessage
from taskiq.message import TaskiqMessage

from taskiq_redis_lua import local_redis
from taskiq_redis_lua import topology as topo
from taskiq_redis_lua.local_redis import LocalTopology
from taskiq_redis_lua.reliable import ReliableBroker, ReliableMessage

from .families import FAMILIES, LEASE, FamilyUnderTest, counts
from .listening import CountingFormatter, Listen, Listener, as_worker, send

Make = Callable[..., Awaitable[ReliableBroker]]


@pytest.fixture(params=sorted(FAMILIES))
def family(
    request: pytest.FixtureRequest, endpoint: topo.Endpoint, unique: str
) -> FamilyUnderTest:
    """Each family in turn, with a dead worker's view of the test's queue."""
    return FAMILIES[request.param](endpoint, unique)


@pytest.fixture
async def make(
    family: FamilyUnderTest, topology: LocalTopology, unique: str
) -> AsyncIterator[Make]:
    """Build started brokers on the test's queue; shut them down afterwards."""
    built: list[ReliableBroker] = []

    async def build(**options: Any) -> ReliableBroker:
        broker: ReliableBroker = family.classes.build(
            topology, **{"queue_name": unique, **family.defaults, **options}
        )
        built.append(broker)
        await broker.startup()
        return broker

    yield build
    for broker in built:
        await broker.shutdown()


async def test_one_message_reaches_exactly_one_of_two_listeners(
    make: Make, listen: Listen
) -> None:
    first, second = listen(await make()), listen(await make())
    await send(await make(), "only")
    got = await asyncio.gather(first.next(2), second.next(2), return_exceptions=True)
    messages = [item for item in got if isinstance(item, ReliableMessage)]
    assert len(messages) == 1
    assert [isinstance(item, TimeoutError) for item in got].count(True) == 1
    assert messages[0].delivery == 1


async def test_messages_arrive_in_the_order_they_were_kicked(
    make: Make, listen: Listen
) -> None:
    broker = await make()
    for value in range(5):
        await send(broker, value)
    listener = listen(broker)
    assert [listener.value(await listener.next()) for _ in range(5)] == [0, 1, 2, 3, 4]


async def test_an_acked_message_leaves_nothing_stored(
    make: Make, listen: Listen, family: FamilyUnderTest
) -> None:
    broker = await make()
    listener = listen(broker)
    await send(broker, 1)
    message = await listener.next()
    await message.ack()
    assert await family.leftovers() == {}


async def test_a_dead_workers_message_goes_to_another_worker_after_its_lease(
    make: Make, listen: Listen, family: FamilyUnderTest
) -> None:
    await send(await make(), "orphan")
    (taken,) = await family.die_holding()
    started = time.monotonic()
    message = await listen(await make()).next(timeout=5)
    assert (message.id, message.delivery) == (taken, 2)
    assert time.monotonic() - started > LEASE - 0.1  # not before the lease ended


async def test_a_living_worker_keeps_its_long_task_from_being_redelivered(
    make: Make, listen: Listen
) -> None:
    holder = listen(await make())
    await send(await make(), "long")
    message = await holder.next()
    other = listen(await make())
    assert await other.gets_nothing_for(4 * LEASE)
    await message.ack()


async def test_a_message_whose_workers_keep_dying_becomes_a_dead_letter(
    make: Make, listen: Listen, family: FamilyUnderTest
) -> None:
    broker = await make(max_deliveries=2)
    await send(broker, "poison")
    await family.deliver_and_die(2)
    listener = listen(await make(max_deliveries=2))
    assert await listener.gets_nothing_for(1.5)
    (dead,) = await broker.list_dead()
    assert (dead.deliveries, dead.reason) == (3, "delivered 2 times without an ack")
    assert broker.formatter.loads(dead.payload).args == ["poison"]
    assert await counts(broker) == (0, 0, 0)
    assert await broker.requeue_dead() == 1
    message = await listener.next()
    assert (listener.value(message), message.delivery) == ("poison", 1)
    await message.ack()
    assert await broker.count_dead() == 0


async def test_dead_letters_are_listed_in_pages_requeued_by_id_and_purged(
    make: Make, listen: Listen, family: FamilyUnderTest
) -> None:
    broker = await make()
    for value in range(3):
        await send(broker, value)
    await family.take_and_bury("by hand")
    dead = await broker.list_dead(limit=2, offset=1)
    assert [broker.formatter.loads(d.payload).args[0] for d in dead] == [1, 2]
    assert {d.reason for d in dead} == {"by hand"}
    assert await broker.requeue_dead([dead[0].id]) == 1
    assert await broker.purge_dead() == 2
    assert await broker.count_dead() == 0
    listener = listen(broker)
    assert listener.value(await listener.next()) == 1
    assert await listener.gets_nothing_for(0.3)


async def test_a_received_message_is_decoded_once_with_the_users_formatter(
    make: Make, listen: Listen
) -> None:
    broker = as_worker(await make())
    counting = CountingFormatter(broker.formatter)
    broker.with_formatter(counting)
    await send(broker, "once")
    listener = listen(broker)
    assert listener.value(await listener.next()) == "once"  # loaded as taskiq does
    assert counting.decoded == 1


async def test_an_undecodable_payload_is_buried_and_the_worker_goes_on(
    make: Make, listen: Listen
) -> None:
    broker = as_worker(await make())
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


async def test_a_worker_buries_tasks_it_does_not_know(
    make: Make, listen: Listen
) -> None:
    broker = as_worker(await make())
    await broker.kick(
        broker.formatter.dumps(
            TaskiqMessage(task_id="1", task_name="nope", labels={}, args=[], kwargs={})
        )
    )
    await send(broker, "known")
    listener = listen(broker)
    assert listener.value(await listener.next()) == "known"
    assert [d.reason for d in await broker.list_dead()] == ["unknown task 'nope'"]


async def test_outside_a_worker_unknown_tasks_are_passed_on(
    make: Make, listen: Listen
) -> None:
    broker = await make()
    await broker.kick(
        broker.formatter.dumps(
            TaskiqMessage(task_id="1", task_name="nope", labels={}, args=[], kwargs={})
        )
    )
    message = await listen(broker).next()
    assert broker.formatter.loads(message.data).task_name == "nope"


async def test_a_delayed_message_arrives_when_due(make: Make, listen: Listen) -> None:
    broker = await make()
    listener = listen(broker)
    assert await listener.gets_nothing_for(0.3)  # the worker is idle
    sent = time.monotonic()
    await send(broker, "later", delay=1.0)
    await send(broker, "now")
    assert listener.value(await listener.next()) == "now"
    message = await listener.next(timeout=5)
    late = time.monotonic() - sent - 1.0
    assert listener.value(message) == "later"
    assert -0.05 < late < 0.5


@pytest.mark.parametrize("delay", [1, 0.5, "0.5", "1"])
async def test_the_delay_label_takes_seconds_as_int_float_or_str(
    make: Make, delay: Any
) -> None:
    broker = await make()
    await send(broker, "x", delay=delay)
    assert await counts(broker) == (0, 1, 0)


@pytest.mark.parametrize("delay", ["soon", -1, float("nan")])
async def test_a_bad_delay_label_is_refused_before_anything_is_stored(
    make: Make, family: FamilyUnderTest, delay: Any
) -> None:
    with pytest.raises(ValueError, match="delay"):
        await send(await make(), "x", delay=delay)
    assert await family.leftovers() == {}


async def test_the_queue_name_label_routes_to_another_queue(
    make: Make, listen: Listen, unique: str
) -> None:
    sender = await make()
    await send(sender, "elsewhere", queue_name=f"{unique}-other")
    await send(sender, "here")
    here = listen(await make())
    other = listen(await make(queue_name=f"{unique}-other"))
    assert here.value(await here.next()) == "here"
    assert other.value(await other.next()) == "elsewhere"


async def test_closing_the_listener_hands_back_unstarted_messages_at_once(
    make: Make, listen: Listen, family: FamilyUnderTest
) -> None:
    broker = await make(**{family.fetch_size: 5}, **family.long_lease)
    for value in range(5):
        await send(broker, value)
    first = listen(broker)
    await first.next()
    await first.close()  # four were fetched but never handed to taskiq
    other = listen(await make(**family.long_lease))
    got = [await other.next(timeout=2) for _ in range(4)]
    assert sorted(other.value(m) for m in got) == [1, 2, 3, 4]
    assert {m.delivery for m in got} == {1}


async def test_shutdown_returns_an_unfinished_message_as_a_further_delivery(
    make: Make, listen: Listen, family: FamilyUnderTest
) -> None:
    broker = await make(**family.long_lease)
    await send(broker, "unfinished")
    listener = listen(broker)
    handed = await listener.next()
    await listener.close()
    await broker.shutdown()  # handed to taskiq and never acked: the delivery counts
    message = await listen(await make(**family.long_lease)).next(timeout=2)
    assert (message.id, message.delivery) == (handed.id, 2)


async def test_an_idle_worker_still_wakes_for_work_after_script_flush(
    make: Make, listen: Listen, endpoint: topo.Endpoint
) -> None:
    broker = await make()
    listener = listen(broker)
    assert await listener.gets_nothing_for(0.3)  # idle, its scripts loaded
    await endpoint.client.script_flush()
    await send(broker, "after flush")
    assert listener.value(await listener.next(timeout=5)) == "after flush"


@pytest.mark.parametrize("family_name", sorted(FAMILIES))
async def test_queues_of_a_cluster_spread_over_its_primaries(
    cluster_redis: LocalTopology, family_name: str, unique: str
) -> None:
    family = FAMILIES[family_name]
    names = [f"{unique}-{n}" for n in range(6)] + [f"{{{unique}}}:jobs", f"{unique}}}b"]
    brokers = [
        family.classes.build(cluster_redis, queue_name=name, **family.defaults)
        for name in names
    ]
    try:
        for broker in brokers:
            await broker.startup()
            await send(broker, broker.queue_name)
        for broker in brokers:
            listener = Listener(broker)
            message = await listener.next()
            assert listener.value(message) == broker.queue_name
            await message.ack()
            await listener.close()
        client = brokers[0].endpoint.client
        assert isinstance(client, RedisCluster)
        assert len({client.get_node_from_key(family.key_of(n)) for n in names}) == 3
    finally:
        for broker in brokers:
            await broker.shutdown()


@pytest.mark.parametrize("family_name", sorted(FAMILIES))
async def test_a_listener_rides_out_a_redis_restart(
    tmp_path: Path, unique: str, family_name: str
) -> None:
    server = local_redis.start_server(tmp_path)
    url = f"redis://127.0.0.1:{server.port}"
    family = FAMILIES[family_name]
    broker = family.classes.single(url, queue_name=unique, **family.defaults)
    await broker.startup()
    listener = Listener(broker)
    try:
        assert await listener.gets_nothing_for(0.3)
        server.kill()
        assert await listener.gets_nothing_for(1.0)  # no crash while Redis is away
        server = local_redis.start_server(tmp_path, port=server.port)
        sender = family.classes.single(url, queue_name=unique)
        await send(sender, "after the restart")
        await sender.shutdown()
        assert listener.value(await listener.next(timeout=10)) == "after the restart"
    finally:
        await listener.close()
        await broker.shutdown()
        server.stop()

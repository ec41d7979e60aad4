"""The stream queue family, on a single node, a cluster and sentinel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import RedisCluster
from taskiq import BrokerMessage

from taskiq_redis_lua import (
    RedisStreamBroker,
    RedisStreamClusterBroker,
    RedisStreamSentinelBroker,
    local_redis,
)
from taskiq_redis_lua import topology as topo
from taskiq_redis_lua.keys import stream_keys
from taskiq_redis_lua.local_redis import LocalTopology
from taskiq_redis_lua.stream import _StreamBroker

from .listening import CountingFormatter, Listen, Listener, as_worker, send
from .stream_scripts import Stream

MakeStream = Callable[..., _StreamBroker]
FAST: dict[str, Any] = {
    "idle_timeout": 600,
    "claim_interval": 0.1,
    "consumer_group_name": "g",
}


def build_stream(target: LocalTopology, **options: Any) -> _StreamBroker:
    """The stream broker class of ``target``'s topology, built as a user would."""
    if target.kind == "single":
        return RedisStreamBroker(target.url, **options)
    if target.kind == "cluster":
        return RedisStreamClusterBroker(target.url, **options)
    return RedisStreamSentinelBroker(target.sentinels, target.master_name, **options)


@pytest.fixture
async def make_stream(
    topology: LocalTopology, unique: str
) -> AsyncIterator[MakeStream]:
    """Build brokers on one fresh stream of the topology; shut them down afterwards."""
    built: list[_StreamBroker] = []

    async def make(**options: Any) -> _StreamBroker:
        options = {"queue_name": unique, **FAST, **options}
        broker = build_stream(topology, **options)
        built.append(broker)
        await broker.startup()
        return broker

    yield make  # type: ignore[misc]
    for broker in built:
        await broker.shutdown()


@pytest.fixture
def raw(endpoint: topo.Endpoint, unique: str) -> Stream:
    """The stream's scripts called by hand: a worker that dies or stalls."""
    return Stream(endpoint, unique)


async def test_acked_entries_leave_the_stream_empty(
    make_stream: Any, listen: Listen, raw: Stream
) -> None:
    broker = await make_stream()
    for value in range(3):
        await send(broker, value)
    listener = listen(broker)
    for expected in range(3):
        message = await listener.next()
        assert (listener.value(message), message.delivery) == (expected, 1)
        await message.ack()
    assert await raw.client.xlen(raw.k.stream) == 0
    assert await raw.client.xpending(raw.k.stream, "g") == {
        "pending": 0, "min": None, "max": None, "consumers": [],
    }  # fmt: skip


async def test_without_delete_on_ack_acked_entries_stay(
    make_stream: Any, listen: Listen, raw: Stream
) -> None:
    broker = await make_stream(delete_on_ack=False)
    await send(broker, "kept")
    await (await listen(broker).next()).ack()
    assert await raw.client.xlen(raw.k.stream) == 1


async def test_maxlen_trims_exactly_unless_approximate(
    make_stream: Any, raw: Stream
) -> None:
    broker = await make_stream(maxlen=5, approximate=False)
    for value in range(12):
        await send(broker, value)
    assert await raw.client.xlen(raw.k.stream) == 5


async def test_entries_kicked_before_any_worker_are_processed(
    topology: LocalTopology, make_stream: Any, listen: Listen, unique: str
) -> None:
    sender = build_stream(topology, queue_name=unique)  # no startup: no group yet
    for value in range(3):
        await send(sender, value)
    await sender.shutdown()
    listener = listen(await make_stream())
    assert [listener.value(await listener.next()) for _ in range(3)] == [0, 1, 2]


async def test_a_dead_consumers_entries_go_to_an_idle_worker(
    make_stream: Any, listen: Listen, raw: Stream
) -> None:
    broker = await make_stream()
    await send(broker, "orphan")
    (entry_id,) = await raw.read("killed-worker")
    started = time.monotonic()
    message = await listen(await make_stream()).next(timeout=5)
    waited = time.monotonic() - started
    assert (message.id, message.delivery) == (entry_id, 2)
    assert waited > 0.5  # not before idle_timeout (0.6 s); next() bounds the rest


async def test_the_claim_lock_of_a_killed_claimer_expires(
    make_stream: Any, listen: Listen, raw: Stream
) -> None:
    broker = await make_stream()
    await send(broker, "x")
    await raw.read("killed-worker")
    await raw.client.set(raw.k.lock, "a claimer that was killed", px=1500)
    listener = listen(await make_stream())
    # Claimable after idle_timeout (0.6 s), but the lock holds until 1.5 s.
    assert await listener.gets_nothing_for(1.2)
    message = await listener.next(timeout=3)
    assert message.delivery == 2


async def test_a_long_unacknowledged_lock_timeout_does_not_slow_recovery(
    make_stream: Any, listen: Listen, raw: Stream
) -> None:
    broker = await make_stream(unacknowledged_lock_timeout=30)
    await send(broker, "x")
    await raw.read("killed-worker")
    started = time.monotonic()
    message = await listen(await make_stream(unacknowledged_lock_timeout=30)).next()
    assert message.delivery == 2
    assert time.monotonic() - started < 10  # far below the 30 s lock timeout
    assert 0 <= await raw.client.pttl(raw.k.lock) <= 100  # one claim interval


async def test_a_busy_worker_leaves_orphans_to_idle_workers(
    make_stream: Any, listen: Listen, raw: Stream
) -> None:
    broker = await make_stream()
    await send(broker, "keeps the busy worker busy")
    busy = listen(await make_stream())
    message = await busy.next()
    assert busy.value(message) == "keeps the busy worker busy"  # then it works
    for value in range(3):  # orphaned while the worker is busy, however slow it was
        await send(broker, value)
    orphans = await raw.read("killed-worker")
    await asyncio.sleep(1.0)  # several claim intervals past idle_timeout
    for entry_id in orphans:
        assert await raw.deliveries(entry_id) == ("killed-worker", 1)
    idle = listen(await make_stream())
    got = [await idle.next() for _ in orphans]
    assert sorted(m.id for m in got) == sorted(orphans)
    await message.ack()


async def test_an_entry_delivered_too_often_becomes_a_dead_letter(
    make_stream: Any, listen: Listen, raw: Stream
) -> None:
    broker = await make_stream(max_deliveries=2)
    await send(broker, "poison")
    await raw.read("w1")
    await asyncio.sleep(0.02)
    await raw.claim("w2", min_idle_ms=10, lock_ms=1)  # delivery 2, then w2 dies too
    listener = listen(await make_stream(max_deliveries=2))
    assert await listener.gets_nothing_for(1.5)
    assert await broker.count_dead() == 1
    (dead,) = await broker.list_dead()
    assert (dead.deliveries, dead.reason) == (3, "delivered 2 times without an ack")
    assert broker.formatter.loads(dead.payload).args == ["poison"]
    assert await raw.client.xlen(raw.k.stream) == 0
    assert await broker.requeue_dead() == 1
    message = await listener.next()
    assert (listener.value(message), message.delivery) == ("poison", 1)
    await message.ack()
    assert await broker.count_dead() == 0


async def test_dead_letters_can_be_requeued_by_id_and_purged(
    make_stream: Any, listen: Listen, raw: Stream
) -> None:
    broker = await make_stream()
    for value in range(3):
        await send(broker, value)
    for entry_id in await raw.read("w1"):
        await raw.bury(entry_id, 1, "by hand", f"payload of {entry_id}")
    dead = await broker.list_dead(limit=2, offset=1)
    assert [d.reason for d in dead] == ["by hand", "by hand"]
    assert await broker.requeue_dead([dead[0].id]) == 1
    assert await broker.purge_dead() == 2
    assert await broker.count_dead() == 0
    assert await raw.client.xlen(raw.k.stream) == 1


async def test_a_received_message_is_decoded_once_with_the_users_formatter(
    make_stream: Any, listen: Listen
) -> None:
    broker = as_worker(await make_stream())
    counting = CountingFormatter(broker.formatter)
    broker.with_formatter(counting)
    await send(broker, "once")
    listener = listen(broker)
    message = await listener.next()
    assert listener.value(message) == "once"  # loaded as taskiq does
    assert counting.decoded == 1


async def test_an_undecodable_payload_is_buried_and_the_worker_goes_on(
    make_stream: Any, listen: Listen
) -> None:
    broker = as_worker(await make_stream())
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


async def test_a_living_worker_keeps_its_long_task(
    make_stream: Any, listen: Listen
) -> None:
    holder = listen(await make_stream())
    await send(await make_stream(), "long")
    message = await holder.next()
    other = listen(await make_stream())
    assert await other.gets_nothing_for(2.0)  # more than three idle timeouts
    await message.ack()


async def test_a_delayed_message_joins_the_stream_when_due(
    make_stream: Any, listen: Listen
) -> None:
    broker = await make_stream()
    listener = listen(broker)
    sent = time.monotonic()
    await send(broker, "later", delay=0.8)
    await send(broker, "now")
    assert listener.value(await listener.next()) == "now"
    assert listener.value(await listener.next(timeout=3)) == "later"
    assert 0.75 < time.monotonic() - sent < 0.8 + 0.1 + 0.4


async def test_closing_the_listener_hands_back_unstarted_entries_at_once(
    make_stream: Any, listen: Listen, raw: Stream
) -> None:
    broker = await make_stream(xread_count=5, idle_timeout=60_000)
    for value in range(5):
        await send(broker, value)
    first = listen(broker)
    await first.next()
    await first.close()  # four were read but never handed to taskiq
    other = listen(await make_stream(idle_timeout=60_000))
    got = [await other.next(timeout=2) for _ in range(4)]
    assert sorted(other.value(m) for m in got) == [1, 2, 3, 4]
    assert {m.delivery for m in got} == {1}


async def test_a_lost_group_is_created_again(
    make_stream: Any, listen: Listen, raw: Stream
) -> None:
    broker = await make_stream()
    listener = listen(broker)
    await send(broker, "before")
    await (await listener.next()).ack()
    await raw.client.delete(raw.k.stream)  # the group goes with the stream
    await asyncio.sleep(0.3)
    await send(broker, "after")
    assert listener.value(await listener.next(timeout=5)) == "after"


async def test_flushall_mid_run_recreates_the_group(
    tmp_path: Path, unique: str
) -> None:
    server = local_redis.start_server(tmp_path)
    url = f"redis://127.0.0.1:{server.port}"
    broker = RedisStreamBroker(url, queue_name=unique, **FAST)
    await broker.startup()
    listener = Listener(broker)
    try:
        await send(broker, "before")
        await (await listener.next()).ack()
        with server.client() as admin:
            admin.flushall()
        await asyncio.sleep(0.3)
        await send(broker, "after")
        assert listener.value(await listener.next(timeout=5)) == "after"
    finally:
        await listener.close()
        await broker.shutdown()
        server.stop()


async def test_every_group_gets_every_entry_and_it_goes_when_all_acked(
    make_stream: Any, listen: Listen, raw: Stream
) -> None:
    first = listen(await make_stream(consumer_group_name="first"))
    second = listen(await make_stream(consumer_group_name="second"))
    await send(await make_stream(consumer_group_name="first"), "both")
    one, two = await first.next(), await second.next()
    await one.ack()
    assert await raw.client.xlen(raw.k.stream) == 1
    await two.ack()
    assert await raw.client.xlen(raw.k.stream) == 0


async def test_the_value_of_an_additional_stream_is_where_its_group_starts(
    make_stream: Any, listen: Listen, unique: str, endpoint: topo.Endpoint
) -> None:
    extra = f"{unique}-from-now"
    await endpoint.client.xadd(extra, {b"data": b"old"})  # no group on it yet
    broker = await make_stream(additional_streams={extra: "$"})
    await send(broker, "new", queue_name=extra)
    listener = listen(broker)
    assert listener.value(await listener.next()) == "new"
    assert await listener.gets_nothing_for(0.5)  # "old" came before the group


async def test_a_dead_consumers_entries_on_an_additional_stream_are_taken_over(
    make_stream: Any, listen: Listen, unique: str, endpoint: topo.Endpoint
) -> None:
    extra = f"{unique}-extra"
    broker = await make_stream(additional_streams={extra: ">"})
    await send(broker, "orphan", queue_name=extra)
    dead = Stream(endpoint, extra)
    (entry_id,) = await dead.read("killed-worker")
    message = await listen(await make_stream(additional_streams={extra: ">"})).next()
    assert (message.id, message.queue, message.delivery) == (entry_id, extra, 2)


async def test_additional_streams_in_other_slots_are_read_too(
    make_stream: Any, listen: Listen, unique: str, topology: LocalTopology
) -> None:
    others = [f"{unique}-extra-{n}" for n in range(4)]
    broker = await make_stream(additional_streams=dict.fromkeys(others, ">"))
    for name in others:
        await send(broker, name, queue_name=name)
    listener = listen(broker)
    got = [await listener.next() for _ in others]
    assert sorted(listener.value(m) for m in got) == sorted(others)
    assert sorted(m.queue for m in got) == sorted(others)
    for message in got:
        await message.ack()
    client = broker.endpoint.client
    for name in others:
        assert await client.xlen(name) == 0
    if isinstance(client, RedisCluster):
        nodes = {client.get_node_from_key(stream_keys(n, "g").stream) for n in others}
        assert len(nodes) > 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"xread_block": 0}, "xread_block"),
        ({"xread_block": 60_000}, "socket_timeout"),
        ({"idle_timeout": -1}, "idle_timeout"),
        ({"unacknowledged_batch_size": 0}, "unacknowledged_batch_size"),
        ({"unacknowledged_lock_timeout": 0}, "unacknowledged_lock_timeout"),
        ({"xread_count": 0}, "xread_count"),
        ({"maxlen": 0}, "maxlen"),
        ({"max_deliveries": 0}, "max_deliveries"),
        ({"claim_interval": 0}, "claim_interval"),
        ({"queue_name": ""}, "queue_name"),
        ({"additional_streams": {"": ">"}}, "additional_streams"),
        ({"xread_block": 0}, "block forever"),
        ({"xread_count": 100_000}, "at most 10000"),
        ({"unacknowledged_batch_size": 10**9}, "at most 10000"),
        ({"consumer_name": ["w"]}, "consumer_name"),
        ({"consumer_id": "latest"}, "consumer_id must be a stream id"),
        ({"consumer_id": -1}, "consumer_id"),
        ({"additional_streams": ["other"]}, "additional_streams must map"),
        ({"additional_streams": {"other": "next"}}, r"additional_streams\['other'\]"),
        ({"mkstream": "no"}, "mkstream must be True or False"),
        ({"approximate": None}, "approximate"),
        ({"delete_on_ack": "false"}, "delete_on_ack"),
    ],
)
def test_bad_options_are_refused_naming_the_parameter(
    topology: LocalTopology, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_stream(topology, **options)


async def test_a_listener_rides_out_a_redis_restart(
    tmp_path: Path, unique: str
) -> None:
    server = local_redis.start_server(tmp_path)
    url = f"redis://127.0.0.1:{server.port}"
    broker = RedisStreamBroker(url, queue_name=unique, xread_block=500, **FAST)
    await broker.startup()
    listener = Listener(broker)
    try:
        assert await listener.gets_nothing_for(0.3)
        server.kill()
        assert await listener.gets_nothing_for(1.0)  # no crash while Redis is away
        server = local_redis.start_server(tmp_path, port=server.port)
        sender = RedisStreamBroker(url, queue_name=unique)
        await send(sender, "after the restart")
        await sender.shutdown()
        assert listener.value(await listener.next(timeout=10)) == "after the restart"
    finally:
        await listener.close()
        await broker.shutdown()
        server.stop()


async def test_entries_trimmed_while_pending_are_recorded_as_dead_letters(
    make_stream: Any, listen: Listen, raw: Stream
) -> None:
    broker = await make_stream(maxlen=1, approximate=False)
    await send(broker, "first")
    (lost,) = await raw.read("killed-worker")
    await send(broker, "second")  # trims "first" away while it is pending
    listener = listen(await make_stream())
    assert listener.value(await listener.next()) == "second"
    await asyncio.sleep(1.0)
    (dead,) = await broker.list_dead()
    assert dead.reason.startswith("deleted from the stream before it was acked")
    assert dead.payload == b""
    assert await raw.deliveries(lost) is None


def test_a_pool_too_small_for_the_reads_is_refused(single_redis: LocalTopology) -> None:
    with pytest.raises(ValueError, match="max_connection_pool_size must be at least 3"):
        RedisStreamBroker(single_redis.url, max_connection_pool_size=2)
    with pytest.raises(ValueError, match="at least 4"):
        RedisStreamBroker(
            single_redis.url, max_connection_pool_size=3, additional_streams={"b": ">"}
        )


@pytest.mark.parametrize(
    ("given", "named"), [(None, None), ("", None), (4242, "4242"), ("w-1", "w-1")]
)
def test_consumer_name_takes_what_taskiq_redis_took(
    single_redis: LocalTopology, given: Any, named: str | None
) -> None:
    broker = RedisStreamBroker(single_redis.url, consumer_name=given)
    if named is None:
        assert len(broker.consumer_name) == 36  # a fresh uuid
    else:
        assert broker.consumer_name == named

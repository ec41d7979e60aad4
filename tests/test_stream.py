"""What only the stream queue does (groups, trimming, claims, extra streams), on a
single node, a cluster and sentinel. What both queue families promise is in
test_reliable_queue.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import RedisCluster

from taskiq_redis_lua import (
    RedisStreamBroker,
    local_redis,
)
from taskiq_redis_lua import topology as topo
from taskiq_redis_lua.keys import stream_keys
from taskiq_redis_lua.local_redis import LocalTopology
from taskiq_redis_lua.stream import _StreamBroker

from .building import STREAM
from .listening import Listen, Listener, send
from .stream_scripts import Stream

MakeStream = Callable[..., _StreamBroker]
FAST: dict[str, Any] = {
    "idle_timeout": 600,
    "claim_interval": 0.1,
    "consumer_group_name": "g",
}


@pytest.fixture
async def make_stream(
    topology: LocalTopology, unique: str
) -> AsyncIterator[MakeStream]:
    """Build brokers on one fresh stream of the topology; shut them down afterwards."""
    built: list[_StreamBroker] = []

    async def make(**options: Any) -> _StreamBroker:
        options = {"queue_name": unique, **FAST, **options}
        broker = STREAM.build(topology, **options)
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
    sender = STREAM.build(topology, queue_name=unique)  # no startup: no group yet
    for value in range(3):
        await send(sender, value)
    await sender.shutdown()
    listener = listen(await make_stream())
    assert [listener.value(await listener.next()) for _ in range(3)] == [0, 1, 2]


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
        ({"consumer_idle_timeout": 0}, "consumer_idle_timeout"),
        ({"consumer_idle_timeout": "1h"}, "consumer_idle_timeout"),
    ],
)
def test_bad_options_are_refused_naming_the_parameter(
    topology: LocalTopology, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        STREAM.build(topology, **options)


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


async def test_workers_that_stop_cleanly_leave_no_consumers_behind(
    topology: LocalTopology, make_stream: Any, raw: Stream, unique: str
) -> None:
    sender = await make_stream()
    for cycle in range(30):
        worker = STREAM.build(topology, queue_name=unique, **FAST)
        await worker.startup()
        listener = Listener(worker)
        await send(sender, cycle)
        await send(sender, f"{cycle} for the next worker")  # fetched, given back
        await (await listener.next()).ack()
        await listener.close()
        await worker.shutdown()
    assert len(await raw.consumers()) <= 2  # given-back entries wait on "(released)"


async def test_a_killed_workers_consumer_goes_once_its_entries_are_taken_over(
    make_stream: Any, listen: Listen, raw: Stream
) -> None:
    await send(await make_stream(), "orphan")
    await raw.read("killed-worker")
    broker = await make_stream(consumer_idle_timeout=1000)
    listener = listen(broker)
    message = await listener.next(timeout=5)
    assert message.delivery == 2
    await message.ack()
    deadline = time.monotonic() + 5
    while "killed-worker" in await raw.consumers():
        assert time.monotonic() < deadline, await raw.consumers()
        assert await listener.gets_nothing_for(0.1)  # waiting for work, it claims
    assert broker.consumer_name in await raw.consumers()


async def test_a_consumer_that_holds_entries_is_kept_however_long_idle(
    make_stream: Any, listen: Listen, raw: Stream
) -> None:
    await send(await make_stream(), "held")
    await raw.read("slow-worker")
    listener = listen(await make_stream(idle_timeout=60_000, consumer_idle_timeout=1))
    assert await listener.gets_nothing_for(1.0)  # several claims with a sweep each
    assert (await raw.consumers())["slow-worker"] == 1

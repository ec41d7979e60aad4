"""A huge backlog stays cheap: with a million expired leases, due delayed messages
or idle pending entries, every script call does a bounded slice of the work and
Redis keeps answering others.

The backlog is planted with a throwaway Lua loop (much faster than a million kicks),
in the layout the scripts' headers describe. Then a real listener drains part of it;
``SLOWLOG`` must record no call slower than :data:`SLOW_MS`, where one pass over a
million entries takes seconds. Boundedness is judged on the server: a client's wall
clock would also measure how busy the machine is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis
from taskiq import AsyncBroker, TaskiqMessage

from taskiq_redis_lua import ListQueueBroker, RedisStreamBroker, local_redis
from taskiq_redis_lua.keys import list_queue_keys, stream_keys
from taskiq_redis_lua.local_redis import RedisProcess

from .listening import Listener

BACKLOG = 1_000_000
CHUNK = 100_000
DRAINED = 3_000
#: A call slower than this (ms) counts as unbounded; one pass over the backlog
#: takes seconds on any machine, a bounded call a few milliseconds.
SLOW_MS = 100

# Plants ARGV[2] entries from number ARGV[1] on. Each id gets a score of 1 (long
# past) in KEYS[1] and the payload ARGV[3] in KEYS[2]; KEYS[3], if given, gets a
# delivery count of 1 per id.
PLANT = """
local first, count = tonumber(ARGV[1]), tonumber(ARGV[2])
for batch = first, first + count - 1, 1000 do
  local scored, payloads, deliveries = {}, {}, {}
  for number = batch, math.min(batch + 999, first + count - 1) do
    local id = string.format("%016d:0", number)
    table.insert(scored, 1); table.insert(scored, id)
    table.insert(payloads, id); table.insert(payloads, ARGV[3])
    table.insert(deliveries, id); table.insert(deliveries, 1)
  end
  redis.call("ZADD", KEYS[1], unpack(scored))
  redis.call("HSET", KEYS[2], unpack(payloads))
  if KEYS[3] then redis.call("HSET", KEYS[3], unpack(deliveries)) end
end
return count
"""

# Adds ARGV[2] entries with payload ARGV[3] to stream KEYS[1], then has consumer
# "gone" of group ARGV[1] read them without ever acknowledging.
PLANT_PENDING = """
for _ = 1, tonumber(ARGV[2]) do
  redis.call("XADD", KEYS[1], "*", "data", ARGV[3])
end
redis.call("XREADGROUP", "GROUP", ARGV[1], "gone", "COUNT", ARGV[2],
  "STREAMS", KEYS[1], ">")
return 0
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    process = local_redis.start_server(tmp_path_factory.mktemp("backlog"))
    yield process
    process.stop()


@pytest.fixture
async def admin(server: RedisProcess) -> AsyncIterator[Redis]:
    client = Redis(host="127.0.0.1", port=server.port, socket_timeout=60)
    yield client
    await client.flushall(asynchronous=True)
    await client.aclose()


def payload(broker: AsyncBroker) -> bytes:
    message = TaskiqMessage(task_id="x", task_name="t", labels={}, args=[], kwargs={})
    return broker.formatter.dumps(message).message


async def plant(admin: Redis, script: str, keys: list[str], *args: Any) -> None:
    for first in range(0, BACKLOG, CHUNK):
        await admin.eval(script, len(keys), *keys, first, CHUNK, *args)


async def drain_in_bounded_calls(admin: Redis, broker: AsyncBroker) -> None:
    """Take and ack DRAINED messages, then shut the broker down; no call may be slow
    on the server meanwhile."""
    await admin.config_set("slowlog-log-slower-than", SLOW_MS * 1000)
    await admin.slowlog_reset()
    listener = Listener(broker)
    try:
        for _ in range(DRAINED // 100):  # acked as a worker does, many at a time
            taken = [await listener.next(timeout=30) for _ in range(100)]
            await asyncio.gather(*(message.ack() for message in taken))
    finally:
        await listener.close()
        await broker.shutdown()
    assert await slow_calls(admin) == []


async def slow_calls(admin: Redis) -> list[Any]:
    return [
        (entry["duration"], entry["command"]) for entry in await admin.slowlog_get(10)
    ]


async def test_a_million_expired_leases_are_reclaimed_in_bounded_slices(
    server: RedisProcess, admin: Redis
) -> None:
    broker = ListQueueBroker(f"redis://127.0.0.1:{server.port}", queue_name="big")
    keys = list_queue_keys("big")
    await plant(
        admin, PLANT, [keys.inflight, keys.msgs, keys.deliveries], payload(broker)
    )
    await admin.set(keys.seq, 2 * BACKLOG)
    await broker.startup()
    await drain_in_bounded_calls(admin, broker)
    assert (
        await admin.zcard(keys.inflight) + await admin.zcard(keys.ready)
        > BACKLOG - DRAINED - 1
    )


async def test_a_million_due_delayed_messages_are_promoted_in_bounded_slices(
    server: RedisProcess, admin: Redis
) -> None:
    broker = ListQueueBroker(f"redis://127.0.0.1:{server.port}", queue_name="later")
    keys = list_queue_keys("later")
    await plant(admin, PLANT, [keys.delayed, keys.msgs], payload(broker))
    await admin.set(keys.seq, 2 * BACKLOG)
    await broker.startup()
    await drain_in_bounded_calls(admin, broker)
    assert await admin.zcard(keys.delayed) > 0  # promoted a slice at a time


async def test_a_million_due_delayed_stream_messages_are_moved_in_bounded_slices(
    server: RedisProcess, admin: Redis
) -> None:
    broker = RedisStreamBroker(
        f"redis://127.0.0.1:{server.port}",
        queue_name="later-stream",
        claim_interval=0.05,
    )
    keys = stream_keys("later-stream", broker.consumer_group_name)
    await plant(admin, PLANT, [keys.delayed, keys.payloads], payload(broker))
    await broker.startup()
    await drain_in_bounded_calls(admin, broker)


async def test_a_million_idle_pending_entries_are_claimed_in_bounded_slices(
    server: RedisProcess, admin: Redis
) -> None:
    broker = RedisStreamBroker(
        f"redis://127.0.0.1:{server.port}",
        queue_name="abandoned",
        idle_timeout=1000,
        claim_interval=0.05,
    )
    await broker.startup()  # creates the group
    for _ in range(0, BACKLOG, CHUNK):
        await admin.eval(
            PLANT_PENDING,
            1,
            "abandoned",
            broker.consumer_group_name,
            CHUNK,
            payload(broker),
        )
    await asyncio.sleep(1.1)  # every entry is now idle longer than idle_timeout
    await drain_in_bounded_calls(admin, broker)
    pending = await admin.xpending("abandoned", broker.consumer_group_name)
    assert pending["pending"] > BACKLOG - DRAINED - 1

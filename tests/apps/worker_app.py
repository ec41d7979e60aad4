"""A taskiq app for tests that run the real `taskiq worker`.

The environment picks the broker family (TRL_FAMILY: list or stream), the
topology (TRL_KIND: single, cluster, sentinel; TRL_URL, TRL_SENTINELS as
host:port,..., TRL_MASTER), the queue (TRL_QUEUE), the lease (TRL_LEASE, seconds),
the socket timeout (TRL_SOCKET_TIMEOUT, seconds) and, with TRL_FORMATTER=zlib, a
formatter of the user's own whose bytes are not JSON.
"""

from __future__ import annotations

import asyncio
import os
import uuid
import zlib
from typing import Any

from taskiq import AsyncBroker, BrokerMessage, TaskiqFormatter, TaskiqScheduler
from taskiq.formatters.json_formatter import JSONFormatter
from taskiq.message import TaskiqMessage

from taskiq_redis_lua import (
    ListQueueBroker,
    ListQueueClusterBroker,
    ListQueueSentinelBroker,
    ListRedisClusterScheduleSource,
    ListRedisScheduleSource,
    ListRedisSentinelScheduleSource,
    RedisAsyncClusterResultBackend,
    RedisAsyncResultBackend,
    RedisAsyncSentinelResultBackend,
    RedisStreamBroker,
    RedisStreamClusterBroker,
    RedisStreamSentinelBroker,
)
from taskiq_redis_lua.backoff import RETRYABLE
from taskiq_redis_lua.keys import companion_key

FAMILY = os.environ.get("TRL_FAMILY", "list")
KIND = os.environ.get("TRL_KIND", "single")
URL = os.environ.get("TRL_URL", "redis://127.0.0.1:6379")
QUEUE = os.environ.get("TRL_QUEUE", "taskiq-test")
SENTINELS = [
    (host, int(port))
    for host, port in (
        item.rsplit(":", 1)
        for item in os.environ.get("TRL_SENTINELS", "").split(",")
        if item
    )
]
MASTER = os.environ.get("TRL_MASTER", "mymaster")
BROKERS: dict[str, tuple[Any, Any, Any]] = {
    "list": (ListQueueBroker, ListQueueClusterBroker, ListQueueSentinelBroker),
    "stream": (RedisStreamBroker, RedisStreamClusterBroker, RedisStreamSentinelBroker),
}
#: Seconds a message stays leased to a worker (TRL_LEASE; short, so tests of dead
#: workers run fast).
LEASE = float(os.environ.get("TRL_LEASE", "2"))
OPTIONS: dict[str, dict[str, Any]] = {
    "list": {"visibility_timeout": LEASE},
    "stream": {"idle_timeout": round(LEASE * 1000), "claim_interval": 0.5},
}
#: Extra connection options: the socket timeout (TRL_SOCKET_TIMEOUT, seconds).
CONNECTION: dict[str, Any] = {}
if os.environ.get("TRL_SOCKET_TIMEOUT"):
    CONNECTION["socket_timeout"] = float(os.environ["TRL_SOCKET_TIMEOUT"])
single, cluster, sentinel = BROKERS[FAMILY]
options = {"queue_name": QUEUE, **OPTIONS[FAMILY], **CONNECTION}

broker: AsyncBroker
source: Any
if KIND == "single":
    broker = single(URL, **options)
    results: Any = RedisAsyncResultBackend(URL, prefix_str=QUEUE, **CONNECTION)
    source = ListRedisScheduleSource(URL, prefix=QUEUE)
elif KIND == "cluster":
    broker = cluster(URL, **options)
    results = RedisAsyncClusterResultBackend(URL, prefix_str=QUEUE)
    source = ListRedisClusterScheduleSource(URL, prefix=QUEUE)
else:
    broker = sentinel(SENTINELS, MASTER, **options)
    results = RedisAsyncSentinelResultBackend(SENTINELS, MASTER, prefix_str=QUEUE)
    source = ListRedisSentinelScheduleSource(SENTINELS, MASTER, prefix=QUEUE)
broker = broker.with_result_backend(results)


class ZlibFormatter(TaskiqFormatter):
    """A user's formatter: taskiq's JSON, compressed (so not JSON on the wire)."""

    def dumps(self, message: TaskiqMessage) -> BrokerMessage:
        plain = JSONFormatter().dumps(message)
        return plain.model_copy(update={"message": zlib.compress(plain.message)})

    def loads(self, message: bytes) -> TaskiqMessage:
        return JSONFormatter().loads(zlib.decompress(message))


if os.environ.get("TRL_FORMATTER") == "zlib":
    broker = broker.with_formatter(ZlibFormatter())
scheduler = TaskiqScheduler(broker, [source])

EXECUTIONS = companion_key(QUEUE, "executions")
#: What the task's own note may meet while tests break Redis. redis-py's cluster
#: client can also fail with AttributeError while a dead node's connections close.
NOTE_ERRORS: tuple[type[Exception], ...] = (*RETRYABLE, AttributeError)


@broker.task(task_name="record")
async def record(number: int, pause: float = 0.0) -> int:
    """Sleep, note that this execution happened, return twice the number.

    Each execution notes a field of its own in a hash, so that a note sent again
    after a lost reply is not counted as a second execution.
    """
    await asyncio.sleep(pause)
    execution = f"{number}:{uuid.uuid4().hex}"
    for _ in range(300):  # the note must survive the outages that tests cause
        try:
            await results.endpoint.client.hset(EXECUTIONS, execution, 1)
            break
        except NOTE_ERRORS:
            await asyncio.sleep(0.1)
    return number * 2


class Opaque:
    """A value no JSON serializer can encode."""


@broker.task(task_name="unstorable")
async def unstorable() -> Any:
    """Return what the result backend cannot store."""
    return Opaque()

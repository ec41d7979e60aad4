"""A taskiq app on the list queue, for tests that run the real `taskiq worker`.

The environment picks the topology and the queue: TRL_KIND (single, cluster,
sentinel), TRL_URL, TRL_SENTINELS (host:port,...), TRL_MASTER, TRL_QUEUE.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from taskiq import AsyncBroker

from taskiq_redis_lua import (
    ListQueueBroker,
    ListQueueClusterBroker,
    ListQueueSentinelBroker,
    RedisAsyncClusterResultBackend,
    RedisAsyncResultBackend,
    RedisAsyncSentinelResultBackend,
)
from taskiq_redis_lua.keys import companion_key

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
QUEUE_OPTIONS: dict[str, Any] = {"visibility_timeout": 2.0}

broker: AsyncBroker
if KIND == "single":
    broker = ListQueueBroker(URL, queue_name=QUEUE, **QUEUE_OPTIONS)
    results: Any = RedisAsyncResultBackend(URL, prefix_str=QUEUE)
elif KIND == "cluster":
    broker = ListQueueClusterBroker(URL, queue_name=QUEUE, **QUEUE_OPTIONS)
    results = RedisAsyncClusterResultBackend(URL, prefix_str=QUEUE)
else:
    broker = ListQueueSentinelBroker(
        SENTINELS, MASTER, queue_name=QUEUE, **QUEUE_OPTIONS
    )
    results = RedisAsyncSentinelResultBackend(SENTINELS, MASTER, prefix_str=QUEUE)
broker = broker.with_result_backend(results)

EXECUTIONS = companion_key(QUEUE, "executions")


@broker.task(task_name="record")
async def record(number: int, pause: float = 0.0) -> int:
    """Sleep, note that this execution happened, return twice the number."""
    await asyncio.sleep(pause)
    await results.endpoint.client.rpush(EXECUTIONS, number)
    return number * 2

"""The demo's taskiq app: a list queue, a result backend and a schedule source.

`scripts/demo` points it at Redis with DEMO_REDIS_URL and a fresh DEMO_QUEUE.
"""

from __future__ import annotations

import asyncio
import os

from taskiq import TaskiqScheduler

from taskiq_redis_lua import (
    ListQueueBroker,
    ListRedisScheduleSource,
    RedisAsyncResultBackend,
)
from taskiq_redis_lua.keys import companion_key

URL = os.environ.get("DEMO_REDIS_URL", "redis://127.0.0.1:6379")
QUEUE = os.environ.get("DEMO_QUEUE", "demo")
RUNS = companion_key(QUEUE, "runs")  # a list of the numbers run, in order

results: RedisAsyncResultBackend[int] = RedisAsyncResultBackend(URL, prefix_str=QUEUE)
broker = ListQueueBroker(
    URL, queue_name=QUEUE, visibility_timeout=3
).with_result_backend(results)
source = ListRedisScheduleSource(URL, prefix=QUEUE)
scheduler = TaskiqScheduler(broker, [source])


@broker.task(task_name="square")
async def square(number: int, seconds: float = 0.0) -> int:
    """Take a while, note that this run happened, return the square."""
    await asyncio.sleep(seconds)
    await results.endpoint.client.rpush(RUNS, number)
    return number * number

"""The benchmark's taskiq app: one no-op task on the broker a variant names.

`scripts/bench.py` runs ``taskiq worker scripts.bench_app:broker`` with BENCH_*
variables (see :func:`settings_from_env`) and builds the same brokers in its own
process with :func:`build_broker`. In the worker, a :class:`Recorder` middleware
notes the time, the worker's CPU and Redis's CPU at the first task and at the Nth
saved one, and when each task was saved; then it writes a JSON report.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import time
import uuid
from collections.abc import AsyncGenerator, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import taskiq_redis
from taskiq import (
    AsyncBroker,
    AsyncResultBackend,
    AsyncTaskiqDecoratedTask,
    BrokerMessage,
    TaskiqMessage,
    TaskiqMiddleware,
    TaskiqResult,
)

import taskiq_redis_lua

VARIANTS = ("ours-list", "theirs-list", "ours-stream", "theirs-stream", "ceiling")
QUEUE = "bench"
TASK_NAME = "noop"


async def noop(i: int) -> int:
    """Do nothing: the benchmark measures what happens around a task."""
    return i


class CountingBackend(AsyncResultBackend[Any]):
    """A result backend that only counts the results it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.saved = 0

    async def set_result(self, task_id: str, result: TaskiqResult[Any]) -> None:
        """Count the result."""
        self.saved += 1

    async def is_result_ready(self, task_id: str) -> bool:
        """Say every result is ready."""
        return True

    async def get_result(
        self, task_id: str, with_logs: bool = False
    ) -> TaskiqResult[Any]:
        """Refuse: nothing is stored."""
        raise LookupError("the counting backend stores nothing")


class CeilingBroker(AsyncBroker):
    """An in-memory broker: listen() yields ``count`` ready messages, kick() counts."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count
        self.kicked = 0

    async def kick(self, message: BrokerMessage) -> None:
        """Count the message and drop it."""
        self.kicked += 1

    async def listen(self) -> AsyncGenerator[bytes, None]:
        """Yield pre-built messages for the no-op task, then wait forever."""
        messages = [
            self.formatter.dumps(
                TaskiqMessage(
                    task_id=uuid.uuid4().hex,
                    task_name=TASK_NAME,
                    labels={},
                    args=[i],
                    kwargs={},
                )
            ).message
            for i in range(self.count)
        ]
        for message in messages:
            yield message
        await asyncio.Event().wait()


def _backend(
    variant: str, url: str, result_ttl: int | None, ready_wait: float | None
) -> AsyncResultBackend[Any]:
    if variant == "ceiling":
        return CountingBackend()
    if variant.startswith("theirs"):
        return taskiq_redis.RedisAsyncResultBackend(url, result_ex_time=result_ttl)
    options: dict[str, Any] = {"result_ex_time": result_ttl}
    if ready_wait is not None:
        options["ready_wait"] = ready_wait
    return taskiq_redis_lua.RedisAsyncResultBackend(url, **options)


def build_broker(
    variant: str,
    url: str,
    *,
    results: bool,
    result_ttl: int | None = None,
    ready_wait: float | None = None,
    count: int = 0,
    **options: Any,
) -> AsyncBroker:
    """Return the variant's broker (with its result backend if ``results``).

    ``count`` is how many messages the ceiling broker yields; ``options`` go to
    the Redis broker's constructor.
    """
    brokers: dict[str, Any] = {
        "ours-list": taskiq_redis_lua.ListQueueBroker,
        "theirs-list": taskiq_redis.ListQueueBroker,
        "ours-stream": taskiq_redis_lua.RedisStreamBroker,
        "theirs-stream": taskiq_redis.RedisStreamBroker,
    }
    if variant == "ceiling":
        made: AsyncBroker = CeilingBroker(count)
    else:
        made = brokers[variant](url, queue_name=QUEUE, **options)
    if results:
        made = made.with_result_backend(_backend(variant, url, result_ttl, ready_wait))
    return made


def add_noop(
    target: AsyncBroker,
) -> AsyncTaskiqDecoratedTask[[int], Coroutine[Any, Any, int]]:
    """Register the no-op task on ``target`` and return it."""
    return target.task(task_name=TASK_NAME)(noop)


@dataclass
class Settings:
    """What the worker runs, read from the environment."""

    variant: str
    url: str
    results: bool
    result_ttl: int | None
    ready_wait: float | None
    total: int
    report: Path | None
    redis_cpu: bool
    #: Worker processes sharing the work: above one they meet in Redis to know
    #: when the last task is done (and the ceiling's each yield their share).
    workers: int = 1


def settings_from_env() -> Settings:
    """Read BENCH_VARIANT, _URL, _RESULTS, _RESULT_TTL, _READY_WAIT, _N, ..."""
    env = os.environ.get
    ttl = env("BENCH_RESULT_TTL", "")
    wait = env("BENCH_READY_WAIT", "")
    report = env("BENCH_REPORT", "")
    return Settings(
        variant=env("BENCH_VARIANT", "ceiling"),
        url=env("BENCH_URL", "redis://127.0.0.1:6379"),
        results=env("BENCH_RESULTS", "1") == "1",
        result_ttl=int(ttl) if ttl else None,
        ready_wait=float(wait) if wait else None,
        total=int(env("BENCH_N", "1000")),
        report=Path(report) if report else None,
        redis_cpu=env("BENCH_REDIS_CPU", "1") == "1",
        workers=int(env("BENCH_WORKERS", "1")),
    )


#: Keys the worker processes of one run meet at (several processes only).
_FIRST, _DONE = "bench:first", "bench:done"


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Recorder(TaskiqMiddleware):
    """Note time and CPU at the first task and at the last one; write a report."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings
        self.first: dict[str, float] | None = None
        self.stored: dict[str, float] = {}
        self._redis: aioredis.Redis | None = None

    async def _redis_cpu(self) -> float:
        """Return Redis's CPU seconds so far (0.0 if not asked to look)."""
        if not self.settings.redis_cpu:
            return 0.0
        if self._redis is None:
            self._redis = aioredis.Redis.from_url(self.settings.url)
        info = await self._redis.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    async def _mark(self, into: dict[str, float]) -> None:
        into["time"] = time.time()
        into["cpu"] = _cpu_seconds()
        into["redis_cpu"] = await self._redis_cpu()

    async def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        """Mark the start at the first task."""
        if self.first is None:
            self.first = {}
            await self._mark(self.first)
            if self.settings.workers > 1:  # the first of all processes counts
                await self._shared().set(_FIRST, self.first["time"], nx=True)
        return message

    def _shared(self) -> aioredis.Redis:
        if self._redis is None:
            self._redis = aioredis.Redis.from_url(self.settings.url)
        return self._redis

    async def post_save(
        self, message: TaskiqMessage, result: TaskiqResult[Any]
    ) -> None:
        """Note when the task's result was saved; report at the Nth one."""
        self.stored[message.task_id] = time.time()
        if self.settings.workers > 1:
            await self._report_shared()
            return
        if len(self.stored) == self.settings.total:
            last: dict[str, float] = {}
            await self._mark(last)
            self._write({"first": self.first, "last": last, "stored": self.stored})

    async def _report_shared(self) -> None:
        """With several processes: the one that saves the Nth result reports the
        time from the first task of any process (no CPU: it is split)."""
        shared = self._shared()
        if await shared.incr(_DONE) != self.settings.total:
            return
        first = float(await shared.get(_FIRST) or 0)
        stored = dict.fromkeys(range(self.settings.total), 0.0)
        self._write({"first": {"time": first}, "last": {"time": time.time()},
                     "stored": stored})  # fmt: skip

    def _write(self, report: dict[str, Any]) -> None:
        if self.settings.report is None:
            return
        partial = self.settings.report.with_suffix(".partial")
        partial.write_text(json.dumps(report))
        partial.replace(self.settings.report)


settings = settings_from_env()
broker = build_broker(
    settings.variant,
    settings.url,
    results=settings.results,
    result_ttl=settings.result_ttl,
    ready_wait=settings.ready_wait,
    count=settings.total // settings.workers,
).with_middlewares(Recorder(settings))
add_noop(broker)

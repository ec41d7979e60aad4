"""Prometheus metrics of queues and schedule sources, read from Redis at scrape time.

``QueueCollector`` is a ``prometheus_client`` collector (the optional extra
``metrics``). Each scrape runs one stats script per queue and per schedule source
(``lua/*/stats.lua``): counts, the age of the oldest waiting message, and totals
the queue scripts keep in Redis, so they are cluster-wide and outlive workers. It
talks to Redis from an event loop of its own, in a thread, over clients of its own
built like the ones of the brokers it watches, so ``collect()`` can be called from
any thread: prometheus_client's HTTP server, or a web app's handler.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import threading
from collections.abc import Coroutine, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from taskiq_redis_lua.list_queue import _ListQueue
from taskiq_redis_lua.schedule_source import _ScheduleSource
from taskiq_redis_lua.stats import ListQueueStats, ScheduleStats, StreamStats
from taskiq_redis_lua.stream import _StreamBroker

T = TypeVar("T")
logger = logging.getLogger("taskiq_redis_lua.metrics")
Target = _ListQueue | _StreamBroker | _ScheduleSource
Snapshot = ListQueueStats | StreamStats | ScheduleStats

_PREFIX = "taskiq_redis_"
_GAUGES = {
    "queue_ready": "Messages waiting to be handed out",
    "queue_delayed": "Messages waiting for their delay to end",
    "queue_in_flight": "Messages handed out and not yet acked",
    "queue_dead": "Dead letters kept",
    "queue_oldest_ready_age_seconds": "How long the oldest waiting message has waited",
    "queue_consumers": "Consumers in the stream's group",
}
_COUNTERS = {
    "queue_kicked": "Messages sent to the queue",
    "queue_acked": "Messages acknowledged",
    "queue_redelivered": "Messages handed out again (expired leases, take-overs)",
    "queue_dead_lettered": "Messages that became dead letters",
}


class _LoopThread:
    """An event loop running in a daemon thread, for calls from any thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="taskiq-redis-lua metrics", daemon=True
        )
        self.thread.start()

    def run(self, work: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(work, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()  # no scrape left behind, holding a connection
            raise

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


class QueueCollector(Collector):
    """Prometheus metrics of list queues, streams and schedule sources.

    Pass the brokers (every stream they read is reported) and schedule sources of
    your app. A scrape makes one script call per queue and per source.
    """

    def __init__(self, *targets: Target, timeout: float = 10.0) -> None:
        """Watch ``targets``; a scrape waits at most ``timeout`` seconds for Redis."""
        for target in targets:
            if not isinstance(target, _ListQueue | _StreamBroker | _ScheduleSource):
                raise TypeError(
                    "QueueCollector watches ListQueue*, RedisStream* brokers and"
                    f" ListRedis*ScheduleSource objects, got {type(target).__name__}"
                )
        self.targets = list(targets)
        self.timeout = timeout
        self._loop: _LoopThread | None = None
        self._pid = 0  # the process the loop runs in (a fork starts afresh)
        self._mirrors: list[Target] = []
        self._lock = threading.Lock()

    def describe(self) -> list[Any]:
        """Describe nothing up front: registering must not reach Redis."""
        return []

    def collect(self) -> Iterator[Any]:
        """Take one snapshot of every target and yield the metric families.

        A target that fails (Redis away, a refused command, a timeout) is left out
        and counted in ``taskiq_redis_scrape_errors``; the others are reported.
        """
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                self._loop, self._pid, self._mirrors = _LoopThread(), os.getpid(), []
            try:
                snapshots, failed = self._loop.run(self._snapshots(), self.timeout + 1)
            except TimeoutError:
                snapshots, failed = [], [_name(t) for t in self.targets]
        yield from metric_families(snapshots)
        errors = GaugeMetricFamily(
            _PREFIX + "scrape_errors",
            "Queues and schedule sources this scrape could not read",
        )
        errors.add_metric([], float(len(failed)))
        yield errors

    def close(self) -> None:
        """Close the collector's own connections and stop its thread."""
        with self._lock:
            if self._loop is None:
                return
            self._loop.run(self._close_mirrors(), self.timeout)
            self._loop.stop()
            self._loop = None

    async def _snapshots(self) -> tuple[list[Snapshot], list[str]]:
        if not self._mirrors:
            self._mirrors = [_mirror(target) for target in self.targets]
        taken: list[Snapshot] = []
        failed: list[str] = []
        for mirror in self._mirrors:
            try:
                taken.extend(await asyncio.wait_for(_stats(mirror), self.timeout))
            except Exception as error:  # noqa: BLE001 - one target must not hide all
                logger.warning("Metrics of %s: %r", _name(mirror), error)
                failed.append(_name(mirror))
        return taken, failed

    async def _close_mirrors(self) -> None:
        for mirror in self._mirrors:
            await mirror.endpoint.close()
        self._mirrors = []


async def _stats(target: Target) -> list[Snapshot]:
    if isinstance(target, _ScheduleSource):
        return [await target.stats()]
    return list(await target.stats())


def _name(target: Target) -> str:
    return target.prefix if isinstance(target, _ScheduleSource) else target.queue_name


def _mirror(target: Target) -> Target:
    """Return a copy of ``target`` that talks to Redis over clients of its own."""
    reopen = target.endpoint.reopen
    if reopen is None:
        raise ValueError(f"{type(target).__name__} cannot open a second connection")
    mirror = copy.copy(target)
    mirror.endpoint = reopen()
    return mirror


def metric_families(snapshots: Sequence[Snapshot]) -> Iterator[Any]:
    """Turn snapshots into Prometheus metric families."""
    queues = [s for s in snapshots if not isinstance(s, ScheduleStats)]
    sources = [s for s in snapshots if isinstance(s, ScheduleStats)]
    yield from _queue_families(queues)
    yield from _schedule_families(sources)


_LABELS = ["queue", "kind", "group"]


def _labels(snapshot: ListQueueStats | StreamStats) -> list[str]:
    """Return the label values (a list queue has an empty group: no such label)."""
    if isinstance(snapshot, StreamStats):
        return [snapshot.queue, "stream", snapshot.group]
    return [snapshot.queue, "list", ""]


def _gauge_values(snapshot: ListQueueStats | StreamStats) -> dict[str, float | None]:
    if isinstance(snapshot, StreamStats):
        return {
            "queue_ready": snapshot.lag
            if snapshot.lag is not None
            else snapshot.length - snapshot.pending,
            "queue_delayed": snapshot.delayed,
            "queue_in_flight": snapshot.pending,
            "queue_dead": snapshot.dead,
            "queue_oldest_ready_age_seconds": snapshot.oldest_ready_age or 0.0,
            "queue_consumers": len(snapshot.consumers),
        }
    return {
        "queue_ready": snapshot.ready,
        "queue_delayed": snapshot.delayed,
        "queue_in_flight": snapshot.in_flight,
        "queue_dead": snapshot.dead,
        "queue_oldest_ready_age_seconds": snapshot.oldest_ready_age or 0.0,
        "queue_consumers": None,  # a list queue has no consumers of record
    }


def _queue_families(queues: Iterable[ListQueueStats | StreamStats]) -> Iterator[Any]:
    queues = list(queues)
    for name, help_text in _GAUGES.items():
        family: Any = None
        for snapshot in queues:
            value = _gauge_values(snapshot)[name]
            if value is None:
                continue
            if family is None:
                family = GaugeMetricFamily(_PREFIX + name, help_text, labels=_LABELS)
            family.add_metric(_labels(snapshot), float(value))
        if family is not None:
            yield family
    for name, help_text in _COUNTERS.items():
        family = None
        for snapshot in queues:
            if family is None:
                family = CounterMetricFamily(_PREFIX + name, help_text, labels=_LABELS)
            total = getattr(snapshot.totals, name.removeprefix("queue_"))
            family.add_metric(_labels(snapshot), float(total))
        if family is not None:
            yield family


def _schedule_families(sources: Sequence[ScheduleStats]) -> Iterator[Any]:
    if not sources:
        return
    count = GaugeMetricFamily(
        _PREFIX + "schedules", "Schedules in the source", labels=["prefix"]
    )
    due = GaugeMetricFamily(
        _PREFIX + "schedule_next_time_due_seconds",
        "Seconds until the next time schedule is due (negative: overdue)",
        labels=["prefix"],
    )
    for source in sources:
        count.add_metric([source.prefix], float(source.schedules))
        if source.next_time_due is not None:
            due.add_metric([source.prefix], source.next_time_due)
    yield count
    yield due

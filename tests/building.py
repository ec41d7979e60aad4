"""Each family's three classes, built for a test topology the way a user builds them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from taskiq_redis_lua import (
    ListQueueBroker,
    ListQueueClusterBroker,
    ListQueueSentinelBroker,
    ListRedisClusterScheduleSource,
    ListRedisScheduleSource,
    ListRedisSentinelScheduleSource,
    PubSubBroker,
    PubSubClusterBroker,
    PubSubSentinelBroker,
    RedisAsyncClusterResultBackend,
    RedisAsyncResultBackend,
    RedisAsyncSentinelResultBackend,
    RedisClusterScheduleSource,
    RedisScheduleSource,
    RedisSentinelScheduleSource,
    RedisStreamBroker,
    RedisStreamClusterBroker,
    RedisStreamSentinelBroker,
)
from taskiq_redis_lua.list_queue import _ListQueue
from taskiq_redis_lua.local_redis import LocalTopology
from taskiq_redis_lua.pubsub import _PubSubBroker
from taskiq_redis_lua.result_backend import _ResultBackend
from taskiq_redis_lua.schedule_source import _ScheduleSource
from taskiq_redis_lua.stream import _StreamBroker

T = TypeVar("T")


@dataclass(frozen=True)
class Classes(Generic[T]):
    """The single-node, cluster and sentinel class of one family."""

    single: Callable[..., T]
    cluster: Callable[..., T]
    sentinel: Callable[..., T]

    def build(self, target: LocalTopology, **options: Any) -> T:
        """The class of ``target``'s topology, built as a user would."""
        if target.kind == "single":
            return self.single(target.url, **options)
        if target.kind == "cluster":
            return self.cluster(target.url, **options)
        return self.sentinel(target.sentinels, target.master_name, **options)


LIST_QUEUE: Classes[_ListQueue] = Classes(
    ListQueueBroker, ListQueueClusterBroker, ListQueueSentinelBroker
)
STREAM: Classes[_StreamBroker] = Classes(
    RedisStreamBroker, RedisStreamClusterBroker, RedisStreamSentinelBroker
)
PUBSUB: Classes[_PubSubBroker] = Classes(
    PubSubBroker, PubSubClusterBroker, PubSubSentinelBroker
)
RESULT_BACKEND: Classes[_ResultBackend[Any]] = Classes(
    RedisAsyncResultBackend,
    RedisAsyncClusterResultBackend,
    RedisAsyncSentinelResultBackend,
)
SCHEDULE_SOURCE: Classes[_ScheduleSource] = Classes(
    ListRedisScheduleSource,
    ListRedisClusterScheduleSource,
    ListRedisSentinelScheduleSource,
)
DEPRECATED_SCHEDULE_SOURCE: Classes[_ScheduleSource] = Classes(
    RedisScheduleSource, RedisClusterScheduleSource, RedisSentinelScheduleSource
)

"""Redis brokers, result backend and schedule sources for taskiq, on Lua scripts."""

from taskiq_redis_lua.dead_letters import DeadLetter
from taskiq_redis_lua.exceptions import (
    DuplicateExpireTimeSelectedError,
    ExpireTimeMustBeMoreThanZeroError,
    ResultDecodeError,
    ResultIsMissingError,
    ResultSerializationError,
    ScriptArgCountError,
    ScriptError,
    ScriptHeaderError,
    ScriptKeyCountError,
    ScriptReplyError,
    TaskIQRedisError,
)
from taskiq_redis_lua.list_queue import (
    ListQueueBroker,
    ListQueueClusterBroker,
    ListQueueSentinelBroker,
    QueueMessage,
)
from taskiq_redis_lua.pubsub import (
    PubSubBroker,
    PubSubClusterBroker,
    PubSubSentinelBroker,
)
from taskiq_redis_lua.result_backend import (
    RedisAsyncClusterResultBackend,
    RedisAsyncResultBackend,
    RedisAsyncSentinelResultBackend,
)
from taskiq_redis_lua.schedule_source import (
    ListRedisClusterScheduleSource,
    ListRedisScheduleSource,
    ListRedisSentinelScheduleSource,
    RedisClusterScheduleSource,
    RedisScheduleSource,
    RedisSentinelScheduleSource,
)
from taskiq_redis_lua.stats import (
    ConsumerStats,
    ListQueueStats,
    ScheduleStats,
    StreamStats,
    Totals,
)
from taskiq_redis_lua.stream import (
    RedisStreamBroker,
    RedisStreamClusterBroker,
    RedisStreamSentinelBroker,
    StreamMessage,
)

__all__ = [
    "ConsumerStats",
    "DeadLetter",
    "DuplicateExpireTimeSelectedError",
    "ExpireTimeMustBeMoreThanZeroError",
    "ListQueueBroker",
    "ListQueueClusterBroker",
    "ListQueueSentinelBroker",
    "ListQueueStats",
    "ListRedisClusterScheduleSource",
    "ListRedisScheduleSource",
    "ListRedisSentinelScheduleSource",
    "PubSubBroker",
    "PubSubClusterBroker",
    "PubSubSentinelBroker",
    "QueueMessage",
    "RedisAsyncClusterResultBackend",
    "RedisAsyncResultBackend",
    "RedisAsyncSentinelResultBackend",
    "RedisClusterScheduleSource",
    "RedisScheduleSource",
    "RedisSentinelScheduleSource",
    "RedisStreamBroker",
    "RedisStreamClusterBroker",
    "RedisStreamSentinelBroker",
    "ResultDecodeError",
    "ResultIsMissingError",
    "ResultSerializationError",
    "ScheduleStats",
    "ScriptArgCountError",
    "ScriptError",
    "ScriptHeaderError",
    "ScriptKeyCountError",
    "ScriptReplyError",
    "StreamMessage",
    "StreamStats",
    "TaskIQRedisError",
    "Totals",
]

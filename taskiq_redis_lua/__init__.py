"""Redis brokers, result backend and schedule sources for taskiq, on Lua scripts."""

from taskiq_redis_lua.exceptions import (
    DuplicateExpireTimeSelectedError,
    ExpireTimeMustBeMoreThanZeroError,
    ResultDecodeError,
    ResultIsMissingError,
    ResultSerializationError,
    ScriptError,
    ScriptHeaderError,
    ScriptKeyCountError,
    ScriptReplyError,
    TaskIQRedisError,
)
from taskiq_redis_lua.list_queue import (
    DeadLetter,
    ListQueueBroker,
    ListQueueClusterBroker,
    ListQueueSentinelBroker,
    QueueMessage,
)
from taskiq_redis_lua.result_backend import (
    RedisAsyncClusterResultBackend,
    RedisAsyncResultBackend,
    RedisAsyncSentinelResultBackend,
)

__all__ = [
    "DeadLetter",
    "DuplicateExpireTimeSelectedError",
    "ExpireTimeMustBeMoreThanZeroError",
    "ListQueueBroker",
    "ListQueueClusterBroker",
    "ListQueueSentinelBroker",
    "QueueMessage",
    "RedisAsyncClusterResultBackend",
    "RedisAsyncResultBackend",
    "RedisAsyncSentinelResultBackend",
    "ResultDecodeError",
    "ResultIsMissingError",
    "ResultSerializationError",
    "ScriptError",
    "ScriptHeaderError",
    "ScriptKeyCountError",
    "ScriptReplyError",
    "TaskIQRedisError",
]

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
from taskiq_redis_lua.result_backend import (
    RedisAsyncClusterResultBackend,
    RedisAsyncResultBackend,
    RedisAsyncSentinelResultBackend,
)

__all__ = [
    "DuplicateExpireTimeSelectedError",
    "ExpireTimeMustBeMoreThanZeroError",
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

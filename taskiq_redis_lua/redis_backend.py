"""taskiq-redis's module of this name, for imports from it: re-exports only."""

from taskiq_redis_lua.exceptions import (
    DuplicateExpireTimeSelectedError,
    ExpireTimeMustBeMoreThanZeroError,
    ResultIsMissingError,
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
    "ResultIsMissingError",
]

"""taskiq-redis's module of this name, for imports from it: re-exports only."""

from taskiq_redis_lua.list_queue import ListQueueClusterBroker
from taskiq_redis_lua.stream import RedisStreamClusterBroker

__all__ = ["ListQueueClusterBroker", "RedisStreamClusterBroker"]

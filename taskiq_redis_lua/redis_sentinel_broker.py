"""taskiq-redis's module of this name, for imports from it: re-exports only."""

from taskiq_redis_lua.list_queue import ListQueueSentinelBroker
from taskiq_redis_lua.pubsub import PubSubSentinelBroker
from taskiq_redis_lua.stream import RedisStreamSentinelBroker

__all__ = [
    "ListQueueSentinelBroker",
    "PubSubSentinelBroker",
    "RedisStreamSentinelBroker",
]

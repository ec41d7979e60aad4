"""taskiq-redis's module of this name, for imports from it: re-exports only."""

from taskiq_redis_lua.list_queue import ListQueueBroker
from taskiq_redis_lua.pubsub import PubSubBroker
from taskiq_redis_lua.stream import RedisStreamBroker

__all__ = ["ListQueueBroker", "PubSubBroker", "RedisStreamBroker"]

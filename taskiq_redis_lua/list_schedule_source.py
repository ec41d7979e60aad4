"""taskiq-redis's module of this name, for imports from it: re-exports only."""

from taskiq_redis_lua.schedule_source import ListRedisScheduleSource

__all__ = ["ListRedisScheduleSource"]

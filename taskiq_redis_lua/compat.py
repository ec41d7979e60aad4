"""The client attributes that taskiq-redis's classes expose, as read-only views.

taskiq-redis keeps its Redis client in public attributes that user code reaches
for: to share the pool, to run its own commands, to inspect a stream. Each public
class here takes the mixin of its topology, so those names keep working; they are
views of the one endpoint the object already uses, not second connections.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import ConnectionPool, Redis, RedisCluster, Sentinel

from taskiq_redis_lua.topology import Endpoint


class SingleNodeAttributes:
    """``connection_pool``: the pool of a single-node broker or schedule source."""

    endpoint: Endpoint

    @property
    def connection_pool(self) -> ConnectionPool:
        """The connection pool this object uses (share it, or build a client on it)."""
        return self.endpoint.node_client.connection_pool


class SingleNodeScheduleAttributes(SingleNodeAttributes):
    """Also ``_connection_pool``: where taskiq-redis's ListRedisScheduleSource keeps it.

    The only name under which that class offers its pool, so code reaches for it.
    """

    _connection_pool = SingleNodeAttributes.connection_pool


class SingleNodeResultAttributes:
    """``redis_pool``: the pool of the single-node result backend."""

    endpoint: Endpoint
    redis_pool = SingleNodeAttributes.connection_pool


class ClusterAttributes:
    """``redis``: the cluster client of every cluster class."""

    endpoint: Endpoint

    @property
    def redis(self) -> RedisCluster:
        """The Redis Cluster client this object uses."""
        return self.endpoint.cluster_client


class SentinelAttributes:
    """``sentinel``, ``master_name`` and ``_acquire_master_conn()`` of Sentinel classes.

    The client they lead to follows failovers: every new connection asks the
    sentinels for the current primary.
    """

    endpoint: Endpoint

    @property
    def sentinel(self) -> Sentinel:
        """The redis-py ``Sentinel`` that finds the primary."""
        if self.endpoint.sentinel is None:
            raise AttributeError("sentinel is the Sentinel of a sentinel class")
        return self.endpoint.sentinel

    @property
    def master_name(self) -> str:
        """The name under which the sentinels monitor the primary."""
        if self.endpoint.master_name is None:
            raise AttributeError("master_name belongs to a sentinel class")
        return self.endpoint.master_name

    @asynccontextmanager
    async def _acquire_master_conn(self) -> AsyncIterator[Redis]:
        """Yield a client bound to the current primary (this object's own client).

        It stays open afterwards: it is the client this object keeps using.
        """
        yield self.endpoint.node_client

"""Broadcast: every subscribed worker gets every message (PUBLISH / SUBSCRIBE).

Pub/sub has no storage and no acks: a message published while no worker listens,
or while a worker reconnects, is gone. Use it for work that every worker must do
(refresh a cache), not for work that must happen once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable
from functools import partial
from typing import Any

from taskiq import AsyncBroker, AsyncResultBackend, BrokerMessage

from taskiq_redis_lua import options, topology
from taskiq_redis_lua.backoff import RETRYABLE, Backoff, raise_if_cancelled
from taskiq_redis_lua.compat import (
    ClusterAttributes,
    SentinelAttributes,
    SingleNodeAttributes,
)

logger = logging.getLogger("taskiq_redis_lua.pubsub")

#: Seconds one wait for a message lasts before the loop looks around again.
_POLL_SECONDS = 1.0


class _PubSubBroker(AsyncBroker):
    """The broadcast broker. The public classes differ only in how they connect."""

    def __init__(
        self,
        connect: Callable[[], topology.Endpoint],
        *,
        queue_name: str,
        result_backend: AsyncResultBackend[Any] | None,
        task_id_generator: Callable[[], str] | None,
    ) -> None:
        super().__init__(
            result_backend=result_backend, task_id_generator=task_id_generator
        )
        self.queue_name = options.queue_name("queue_name", queue_name)
        self.endpoint = connect()

    async def shutdown(self) -> None:
        """Disconnect."""
        await super().shutdown()
        await self.endpoint.close()

    async def kick(self, message: BrokerMessage) -> None:
        """Publish the message to the channel (``queue_name`` label or the broker's)."""
        channel = message.labels.get("queue_name") or self.queue_name
        await self.endpoint.publish(
            options.queue_name("queue_name label", channel), message.message
        )

    async def listen(self) -> AsyncGenerator[bytes, None]:
        """Yield every message published to the channel; resubscribe after outages."""
        backoff = Backoff(f"subscribed to {self.queue_name}", logger)
        while True:
            try:
                async with self.endpoint.subscription(self.queue_name) as pubsub:
                    while True:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=_POLL_SECONDS
                        )
                        backoff.succeeded()
                        if message is not None and message["type"] == "message":
                            yield message["data"]
            except RETRYABLE as error:
                await backoff.failed(error)
            raise_if_cancelled()


class PubSubBroker(SingleNodeAttributes, _PubSubBroker):
    """Broadcast on a single Redis server."""

    def __init__(
        self,
        url: str,
        task_id_generator: Callable[[], str] | None = None,
        result_backend: AsyncResultBackend[Any] | None = None,
        queue_name: str = "taskiq",
        max_connection_pool_size: int | None = None,
        **connection_kwargs: Any,
    ) -> None:
        """Connect to ``url``; parameters as in taskiq-redis.

        :param queue_name: the channel to publish to and subscribe to.
        :param connection_kwargs: passed to redis-py's ``BlockingConnectionPool``.
        """
        super().__init__(
            partial(
                topology.single_node, url, max_connection_pool_size, connection_kwargs
            ),
            queue_name=queue_name,
            result_backend=result_backend,
            task_id_generator=task_id_generator,
        )


class PubSubClusterBroker(ClusterAttributes, _PubSubBroker):
    """Broadcast on a Redis Cluster (classic pub/sub, carried by the cluster bus)."""

    def __init__(
        self,
        url: str,
        queue_name: str = "taskiq",
        max_connection_pool_size: int = 2**31,
        *,
        result_backend: AsyncResultBackend[Any] | None = None,
        task_id_generator: Callable[[], str] | None = None,
        **connection_kwargs: Any,
    ) -> None:
        """Connect to the cluster ``url`` belongs to; see :class:`PubSubBroker`."""
        super().__init__(
            partial(
                topology.cluster,
                url,
                {"max_connections": max_connection_pool_size, **connection_kwargs},
            ),
            queue_name=queue_name,
            result_backend=result_backend,
            task_id_generator=task_id_generator,
        )


class PubSubSentinelBroker(SentinelAttributes, _PubSubBroker):
    """Broadcast on the primary that Redis Sentinel names."""

    def __init__(
        self,
        sentinels: list[tuple[str, int]],
        master_name: str,
        result_backend: AsyncResultBackend[Any] | None = None,
        task_id_generator: Callable[[], str] | None = None,
        queue_name: str = "taskiq",
        min_other_sentinels: int = 0,
        sentinel_kwargs: Any | None = None,
        **connection_kwargs: Any,
    ) -> None:
        """Connect through ``sentinels`` to ``master_name``.

        Other parameters as in :class:`PubSubBroker`.
        """
        super().__init__(
            partial(
                topology.sentinel,
                sentinels,
                master_name,
                min_other_sentinels,
                sentinel_kwargs,
                connection_kwargs,
            ),
            queue_name=queue_name,
            result_backend=result_backend,
            task_id_generator=task_id_generator,
        )

"""Building Redis clients: single node, Redis Cluster and Sentinel.

This is the only place that knows the topology. Every class gets an
:class:`Endpoint` from one of the three builders and from then on talks to
``endpoint.client`` without asking what is behind it.
"""

from __future__ import annotations

import contextlib
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, TypeAlias

from redis.asyncio import (
    BlockingConnectionPool,
    ConnectionPool,
    Redis,
    RedisCluster,
    Sentinel,
)
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import (
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisClusterException, ResponseError, TryAgainError

from taskiq_redis_lua import wire

Client: TypeAlias = "Redis | RedisCluster"
TopologyKind = Literal["single", "cluster", "sentinel"]

#: Seconds a reply may take before the connection counts as dead. redis-py 8
#: defaults to 5 s, which cuts blocking reads on an idle queue; our blocking calls
#: wait a few seconds at most, so 30 s only fires on a connection that is gone.
DEFAULT_SOCKET_TIMEOUT = 30.0


@dataclass
class Endpoint:
    """A Redis client and what must be closed with it."""

    client: Client
    kind: TopologyKind
    socket_timeout: float | None = DEFAULT_SOCKET_TIMEOUT
    max_connections: int | None = None
    #: The Sentinel client and the primary's name (Sentinel endpoints only).
    sentinel: Sentinel | None = None
    master_name: str | None = None
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    #: Builds another endpoint to the same servers with the same options (for use
    #: in another event loop, such as a metrics collector's).
    reopen: Callable[[], Endpoint] | None = None

    @property
    def node_client(self) -> Redis:
        """The client of the one server (single node, or Sentinel's primary)."""
        if isinstance(self.client, RedisCluster):
            raise AttributeError("a Redis Cluster client talks to many nodes")
        return self.client

    @property
    def cluster_client(self) -> RedisCluster:
        """The Redis Cluster client (cluster endpoints only)."""
        if not isinstance(self.client, RedisCluster):
            raise AttributeError("not a Redis Cluster endpoint")
        return self.client

    def require_connections(self, needed: int, why: str) -> None:
        """Refuse a pool cap below ``needed`` connections (per node on a cluster)."""
        if self.max_connections is not None and self.max_connections < needed:
            raise ValueError(
                f"max_connection_pool_size must be at least {needed}: {why}, got"
                f" {self.max_connections}",
            )

    async def close(self) -> None:
        """Close the client's connections (and the sentinel connections)."""
        await self.client.aclose()
        for close in self._closers:
            await close()

    async def publish(self, channel: str, message: bytes) -> int:
        """PUBLISH ``message``; a cluster passes it to every node over its bus."""
        if isinstance(self.client, RedisCluster):
            published: int = await self.client.execute_command(
                "PUBLISH", channel, message, target_nodes=RedisCluster.RANDOM
            )
            return published
        return int(await self.client.publish(channel, message))

    @asynccontextmanager
    async def subscription(self, channel: str) -> AsyncIterator[PubSub]:
        """Subscribe to ``channel`` (on any node of a cluster); unsubscribe after."""
        subscriber = await self._subscriber(channel)
        pubsub = subscriber.pubsub()
        try:
            await pubsub.subscribe(channel)
            yield pubsub
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
            if subscriber is not self.client:
                await subscriber.aclose()

    async def _subscriber(self, channel: str) -> Redis:
        if not isinstance(self.client, RedisCluster):
            return self.client
        await self.client.initialize()
        node = self.client.get_node_from_key(channel)
        if node is None:
            raise ConnectionError(f"no cluster node serves the slot of {channel!r}")
        pool = ConnectionPool(
            connection_class=node.connection_class,
            max_connections=2,
            **node.connection_kwargs,
        )
        return Redis.from_pool(pool)


async def pipeline(
    client: Client, commands: Sequence[wire.Command], *, client_retry: bool = True
) -> list[Any]:
    """Send ``commands`` in one pipeline (not a transaction); return replies in order.

    An error reply stands in place of its reply. A node client (single node,
    Sentinel's primary) takes the lean path, one write on one connection
    (:mod:`wire`), retried by the connection's policy unless ``client_retry`` is
    False. A cluster client routes each command by its slot (re-reading the slot
    map and trying again as redis-py does: routing, not waiting out an outage), and
    may return a dead node's connection error in place of that node's replies.
    """
    if not isinstance(client, RedisCluster):
        return await wire.exchange(client, commands, client_retry=client_retry)
    with slot_moves_as_try_again():
        if len(commands) == 1:  # one command needs no pipeline's bookkeeping
            try:
                return [await client.execute_command(*commands[0])]
            except ResponseError as error:
                return [error]
        pipe = client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        replies = await pipe.execute(raise_on_error=False)
    # A pipeline sends a redirected command again on its own, and keeps what that
    # raised in place of the reply.
    return [_slot_move_error(reply) or reply for reply in replies]


#: What redis-py's cluster client fails with when an ASK names a node it does not
#: know: the redirect's node is None where it sends ASKING or records the call.
_UNKNOWN_NODE = (
    "'NoneType' object has no attribute 'execute_command'",
    "'NoneType' object has no attribute 'connection_kwargs'",
)


def _slot_move_error(error: object) -> TryAgainError | None:
    """Return the TryAgainError that ``error`` stands for, if it is redis-py 4015."""
    if isinstance(error, AttributeError) and str(error) in _UNKNOWN_NODE:
        return TryAgainError(
            "a slot is moving to a node the cluster client does not know yet"
        )
    return None


@contextlib.contextmanager
def slot_moves_as_try_again() -> Iterator[None]:
    """Raise ``TryAgainError`` where redis-py fails on an ``ASK`` to a new node.

    redis-py (7, and 8 up to 8.2) follows an ``ASK`` redirect only to a node it
    already knows; a primary that has just joined and holds no slot yet is not among
    them, so while a slot moves to it the cluster client fails on None (redis-py
    issue 4015). Once the slot has moved, ``MOVED`` teaches the client the node;
    until then the callers' retries wait it out, as for a ``TRYAGAIN``.
    """
    try:
        yield
    except AttributeError as error:
        moving = _slot_move_error(error)
        if moving is None:
            raise
        raise moving from error


async def load_script(client: Client, body: bytes, keys: Sequence[str] = ()) -> str:
    """``SCRIPT LOAD`` ``body`` where calls on ``keys`` run; return its SHA1.

    That is the server, every primary of a cluster and, on a cluster, also the node
    that serves each key's slot by the client's newest view: after a failover the
    list of primaries may lag behind the node that answered ``NOSCRIPT``.
    """
    sha = await client.script_load(body)
    if isinstance(client, RedisCluster):
        with contextlib.suppress(RedisClusterException):  # a slot nobody serves yet
            nodes = {client.get_node_from_key(key) for key in keys}
            for node in nodes - {None}:
                await client.execute_command("SCRIPT LOAD", body, target_nodes=node)
    return sha.decode() if isinstance(sha, bytes) else str(sha)


def _connection_options(connection_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Return the caller's connection options with our deliberate defaults added."""
    options = dict(connection_kwargs)
    if options.get("decode_responses"):
        raise ValueError(
            "decode_responses=True is not supported: taskiq-redis-lua reads raw bytes"
            " and decodes them with its serializer",
        )
    options.pop("decode_responses", None)
    options.setdefault("socket_timeout", DEFAULT_SOCKET_TIMEOUT)
    options.setdefault("socket_keepalive", True)
    return options


def _with_retry(options: dict[str, Any]) -> dict[str, Any]:
    """Retry a failed command as redis-py does for a client that builds its own pool.

    That is 10 attempts with jittered back-off up to 1 s, unless the caller passed
    ``retry``. Connections of a pool we build would otherwise not retry at all:
    the first command after a Redis restart would fail on its stale connection.
    """
    options.setdefault(
        "retry", Retry(ExponentialWithJitterBackoff(base=0.01, cap=1.0), 10)
    )
    return options


def _check_url(url: str, parameter: str) -> None:
    schemes = ("redis://", "rediss://", "unix://")
    if not isinstance(url, str) or not url.startswith(schemes):
        raise ValueError(
            f"{parameter} must be a Redis URL starting with redis://, rediss:// or"
            f" unix://, got {url!r}",
        )


def single_node(
    url: str,
    max_connection_pool_size: int | None = None,
    connection_kwargs: Mapping[str, Any] | None = None,
    *,
    parameter: str = "url",
) -> Endpoint:
    """Connect to one Redis server through a ``BlockingConnectionPool``.

    As in taskiq-redis, ``max_connection_pool_size`` caps the pool (None: redis-py's
    default, 100 connections in redis-py 8)
    and extra keyword arguments such as ``timeout`` (seconds to wait for a free
    connection) go to the pool and its connections.
    """
    _check_url(url, parameter)
    if max_connection_pool_size is not None and (
        isinstance(max_connection_pool_size, bool)
        or not isinstance(max_connection_pool_size, int)
        or max_connection_pool_size <= 0
    ):
        raise ValueError(
            "max_connection_pool_size must be a positive number of connections or"
            f" None, got {max_connection_pool_size!r}",
        )
    options = _with_retry(_connection_options(connection_kwargs or {}))
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connection_pool_size, **options
    )
    return Endpoint(
        client=Redis.from_pool(pool),  # the client owns the pool and closes it
        kind="single",
        socket_timeout=pool.connection_kwargs.get("socket_timeout"),
        max_connections=max_connection_pool_size,
        reopen=partial(
            single_node,
            url,
            max_connection_pool_size,
            connection_kwargs,
            parameter=parameter,
        ),
    )


def cluster(
    url: str,
    connection_kwargs: Mapping[str, Any] | None = None,
    *,
    parameter: str = "url",
) -> Endpoint:
    """Connect to a Redis Cluster, discovering its nodes from the node in ``url``."""
    _check_url(url, parameter)
    options = _connection_options(connection_kwargs or {})
    client = RedisCluster.from_url(url, **options)
    return Endpoint(
        client=client,
        kind="cluster",
        socket_timeout=client.get_connection_kwargs().get("socket_timeout"),
        max_connections=options.get("max_connections"),
        reopen=partial(cluster, url, connection_kwargs, parameter=parameter),
    )


def _sentinel_address(address: Any) -> tuple[str, int]:
    """Return ``(host, port)``; a port given as digits (from a config file) is fine."""
    try:
        host, port = address
        if isinstance(port, str) and port.isdigit():
            port = int(port)
    except (TypeError, ValueError):
        port = None
    if not isinstance(port, int) or isinstance(port, bool):
        raise ValueError(f"sentinels must be (host, port) pairs, got {address!r}")
    return str(host), port


class _AsksSentinelsOnReconnect(SentinelManagedConnection):
    """A primary's connection that asks the sentinels where to go on every connect.

    redis-py 8.1 reconnects a connection dropped inside a command's retries straight
    to its last address. After a failover that is the demoted primary, so every
    retry met ``READONLY`` and the command failed although the sentinels already
    named the new primary.
    """

    _asking = False

    async def connect_to(self, address: Any) -> None:
        """Connect to ``address``, which the sentinels just named."""
        self._asking = True
        try:
            await super().connect_to(address)  # type: ignore[no-untyped-call,unused-ignore]
        finally:
            self._asking = False

    async def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        """Connect where the sentinels say, unless that was just asked."""
        if self._asking or self.is_connected:
            await super().connect_check_health(check_health, retry_socket_connect)
            return
        await self.connect()  # type: ignore[no-untyped-call,unused-ignore]


class _AsksSentinelsOnReconnectTLS(
    _AsksSentinelsOnReconnect, SentinelManagedSSLConnection
):
    """The same over TLS."""


def sentinel(
    sentinels: Sequence[tuple[str, int]],
    master_name: str,
    min_other_sentinels: int = 0,
    sentinel_kwargs: Mapping[str, Any] | None = None,
    connection_kwargs: Mapping[str, Any] | None = None,
) -> Endpoint:
    """Connect to the primary that the sentinels name ``master_name``.

    The client follows failovers: every new connection asks the sentinels for the
    current primary.
    """
    addresses = [_sentinel_address(address) for address in sentinels]
    if not addresses:
        raise ValueError("sentinels must list at least one (host, port) pair")
    if not master_name:
        raise ValueError("master_name must name the monitored primary")
    options = _with_retry(_connection_options(connection_kwargs or {}))
    watcher = Sentinel(  # type: ignore[no-untyped-call,unused-ignore]
        addresses,
        min_other_sentinels=min_other_sentinels,
        sentinel_kwargs=dict(sentinel_kwargs) if sentinel_kwargs is not None else None,
        **options,
    )
    # A connection_class of the caller's own wins (without the reconnect fix).
    connection_class = options.get("connection_class") or (
        _AsksSentinelsOnReconnectTLS
        if options.get("ssl")
        else _AsksSentinelsOnReconnect
    )
    client: Redis = watcher.master_for(master_name, connection_class=connection_class)

    async def close_sentinels() -> None:
        for connection in watcher.sentinels:
            await connection.aclose()

    return Endpoint(
        client=client,
        kind="sentinel",
        socket_timeout=options["socket_timeout"],
        sentinel=watcher,
        master_name=master_name,
        _closers=[close_sentinels],
        reopen=partial(
            sentinel,
            sentinels,
            master_name,
            min_other_sentinels,
            sentinel_kwargs,
            connection_kwargs,
        ),
    )

"""Building clients: pool semantics, deliberate timeouts, clear errors."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import redis.exceptions
from redis.asyncio import RedisCluster

from taskiq_redis_lua import local_redis
from taskiq_redis_lua import topology as topo
from taskiq_redis_lua.local_redis import LocalTopology

from .conftest import OpenEndpoint, connect


async def test_a_blocking_read_outlives_redis_py_default_socket_timeout(
    endpoint: topo.Endpoint, unique: str
) -> None:
    """redis-py 8 gives up on a reply after 5 s; an idle queue waits longer."""
    started = time.monotonic()
    assert await endpoint.client.blpop([unique], timeout=6) is None
    assert time.monotonic() - started >= 5.5


async def test_max_connection_pool_size_caps_the_pool_and_timeout_bounds_the_wait(
    single_redis: LocalTopology, unique: str
) -> None:
    endpoint = topo.single_node(single_redis.url, 1, {"timeout": 0.2})
    try:
        await _one_connection_only(endpoint.client, unique)
    finally:
        await endpoint.close()


async def _one_connection_only(client: topo.Client, unique: str) -> None:
    holder = asyncio.ensure_future(client.blpop([unique], timeout=1))
    await asyncio.sleep(0.05)
    with pytest.raises(
        redis.exceptions.ConnectionError, match="No connection available"
    ):
        await client.get(unique)
    assert await holder is None
    assert await client.get(unique) is None


async def test_connection_kwargs_reach_the_connections(
    topology: LocalTopology, open_endpoint: OpenEndpoint
) -> None:
    endpoint = open_endpoint(topology, client_name="taskiq-lua-test")
    assert await endpoint.client.client_getname() in (
        "taskiq-lua-test",
        b"taskiq-lua-test",
    )


async def test_the_sentinel_client_talks_to_the_primary(
    sentinel_redis: LocalTopology, unique: str, open_endpoint: OpenEndpoint
) -> None:
    endpoint = open_endpoint(sentinel_redis)
    await endpoint.client.set(unique, "written")
    replication = await endpoint.client.info("replication")
    assert replication["role"] == "master"
    assert replication["connected_slaves"] == 1


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: topo.single_node("127.0.0.1:6379"), "url must be a Redis URL"),
        (lambda: topo.cluster("http://127.0.0.1"), "url must be a Redis URL"),
        (lambda: topo.single_node("redis://h", 0), "max_connection_pool_size"),
        (
            lambda: topo.single_node("redis://h", None, {"decode_responses": True}),
            "raw bytes",
        ),
        (lambda: topo.sentinel([], "mymaster"), "at least one"),
        (lambda: topo.sentinel([("h", 26379)], ""), "master_name"),
    ],
)
def test_bad_connection_options_get_a_clear_error(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


async def test_closing_an_endpoint_closes_its_connections(
    topology: LocalTopology, unique: str, open_endpoint: OpenEndpoint
) -> None:
    watcher = open_endpoint(topology).client
    endpoint = connect(topology, client_name=unique)
    await endpoint.client.ping()
    await endpoint.client.set(unique, 1)

    async def named_clients() -> int:
        if isinstance(watcher, RedisCluster):
            per_node: Any = await watcher.client_list(
                target_nodes=RedisCluster.ALL_NODES
            )
            listing = [c for node in per_node.values() for c in node]
        else:
            listing = await watcher.client_list()
        return sum(1 for connection in listing if connection["name"] == unique)

    assert await named_clients() >= 1
    await endpoint.close()
    for _ in range(50):
        if await named_clients() == 0:
            break
        await asyncio.sleep(0.02)
    assert await named_clients() == 0


def fail_over_holding_writes(target: LocalTopology) -> None:
    """Promote the replica while the old primary holds its writers; then make the
    old primary a replica and release them, so their connections meet READONLY."""
    old, watcher = target.processes[0], target.processes[-1]
    deadline = time.monotonic() + 20
    with old.client() as primary, watcher.client() as sentinel:
        primary.execute_command("CLIENT", "PAUSE", 30_000, "WRITE")
        while True:
            try:
                sentinel.execute_command("SENTINEL", "FAILOVER", target.master_name)
                break
            except redis.exceptions.ResponseError:  # the replica is not seen yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        while True:
            address = sentinel.execute_command(
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", target.master_name
            )
            if int(address[1]) != old.port:
                break
            assert time.monotonic() < deadline, "the sentinel did not fail over"
            time.sleep(0.1)
        primary.replicaof(address[0].decode(), int(address[1]))
        primary.execute_command("CLIENT", "UNPAUSE")


async def test_a_sentinel_client_follows_a_failover_within_one_command(
    tmp_path: Path, unique: str
) -> None:
    target = local_redis.start_sentinel(tmp_path)
    try:
        endpoint = connect(target)
        await endpoint.client.set(unique, "before")  # a connection to the old primary
        await asyncio.to_thread(fail_over_holding_writes, target)
        await endpoint.client.set(unique, "after")  # retried on the new primary
        assert await endpoint.client.get(unique) == b"after"
        assert (await endpoint.client.info("replication"))["role"] == "master"
        await endpoint.close()
    finally:
        target.stop()

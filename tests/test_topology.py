"""Building clients: pool semantics, deliberate timeouts, clear errors."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.exceptions

from taskiq_redis_lua import topology as topo
from taskiq_redis_lua.local_redis import LocalTopology

from .conftest import connect


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
    client = endpoint.client
    holder = asyncio.ensure_future(client.blpop([unique], timeout=1))
    await asyncio.sleep(0.05)
    with pytest.raises(
        redis.exceptions.ConnectionError, match="No connection available"
    ):
        await client.get(unique)
    assert await holder is None
    assert await client.get(unique) is None
    await endpoint.close()


async def test_connection_kwargs_reach_the_connections(topology: LocalTopology) -> None:
    endpoint = connect(topology, client_name="taskiq-lua-test")
    assert await endpoint.client.client_getname() in (
        "taskiq-lua-test",
        b"taskiq-lua-test",
    )
    await endpoint.close()


async def test_the_sentinel_client_talks_to_the_primary(
    sentinel_redis: LocalTopology, unique: str
) -> None:
    endpoint = connect(sentinel_redis)
    await endpoint.client.set(unique, "written")
    replication = await endpoint.client.info("replication")
    assert replication["role"] == "master"
    await endpoint.close()


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

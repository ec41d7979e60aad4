"""Script calls packed by hand and sent on one connection of a single-node client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import cast

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from taskiq_redis_lua import topology as topo
from taskiq_redis_lua import wire
from taskiq_redis_lua.local_redis import LocalTopology

from .conftest import OpenEndpoint, connect

ECHO_ARGS = "return ARGV"
SPIN = """
local stop = tonumber(redis.call('TIME')[1]) * 1000000
  + tonumber(redis.call('TIME')[2]) + tonumber(ARGV[1])
local now = 0
repeat
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
until now >= stop
return ARGV[2]
"""


@pytest.fixture
async def plain(topology: LocalTopology) -> AsyncIterator[Redis]:
    """A single-node or Sentinel client on one connection (the cluster client
    keeps redis-py's pipeline, so it has no part here)."""
    if topology.kind == "cluster":
        pytest.skip("cluster clients route by slot through redis-py's pipeline")
    if topology.kind == "single":
        built = topo.single_node(topology.url, 1, {})
    else:
        built = connect(topology, max_connections=1)
    assert isinstance(built.client, Redis)
    yield built.client
    await built.close()


async def call(client: Redis, sha: str, *args: wire.Arg) -> list[object]:
    return await wire.exchange(client, [("EVALSHA", sha, 0, *args)])


async def test_arguments_reach_redis_as_redis_py_would_send_them(plain: Redis) -> None:
    sha = await plain.script_load(ECHO_ARGS)
    args: tuple[wire.Arg, ...] = ("naïve", b"\r\n\x00bytes", -42, 0.1, 1e20, "")
    (ours,) = await call(plain, sha, *args)
    theirs = await plain.evalsha(sha, 0, *args)
    assert ours == theirs
    assert ours == ["naïve".encode(), b"\r\n\x00bytes", b"-42", b"0.1", b"1e+20", b""]


async def test_replies_come_back_in_order_with_error_replies_in_place(
    plain: Redis,
) -> None:
    sha = await plain.script_load(ECHO_ARGS)
    commands: list[wire.Command] = [("EVALSHA", sha, 0, n) for n in range(50)]
    commands.insert(10, ("EVALSHA", sha, 0))
    commands.append(("EVALSHA", "0" * 40, 0))
    replies = await wire.exchange(plain, commands)
    assert replies[:10] == [[str(n).encode()] for n in range(10)]
    assert replies[10] == []
    assert replies[11:51] == [[str(n).encode()] for n in range(10, 50)]
    assert isinstance(replies[51], NoScriptError)


async def test_remembered_arguments_reach_redis_as_any_other(plain: Redis) -> None:
    sha = await plain.script_load(ECHO_ARGS)
    args: tuple[wire.Arg, ...] = ("kept", 7, "naïve", 7.0, 8)
    wire.remember("kept", 7, "naïve")
    (ours,) = await call(plain, sha, *args)
    assert ours == [b"kept", b"7", "naïve".encode(), b"7.0", b"8"]


@pytest.mark.parametrize("bad", [True, None, ["list"]])
async def test_an_argument_of_another_type_is_refused_before_sending(
    plain: Redis, bad: object
) -> None:
    with pytest.raises(TypeError, match="must be str, bytes, int or float"):
        wire.pack([("EVALSHA", "0" * 40, 0, cast(wire.Arg, bad))])


async def test_a_killed_connection_is_reopened_for_the_next_call(
    plain: Redis, topology: LocalTopology, open_endpoint: OpenEndpoint
) -> None:
    sha = await plain.script_load(ECHO_ARGS)
    assert await call(plain, sha, "before") == [[b"before"]]
    killer = open_endpoint(topology).client
    assert await killer.client_kill_filter(_type="normal", skipme=True) >= 1
    assert await call(plain, sha, "after") == [[b"after"]]


async def test_a_cancelled_call_never_leaves_its_reply_for_the_next_one(
    plain: Redis,
) -> None:
    spin = await plain.script_load(SPIN)
    slow = asyncio.create_task(call(plain, spin, 300_000, "late"))
    await asyncio.sleep(0.1)
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    await asyncio.sleep(0.3)  # the script ends; its reply must not be read as ours
    assert await call(plain, spin, 0, "mine") == [b"mine"]


async def test_an_error_reply_does_not_stop_the_replies_after_it(plain: Redis) -> None:
    sha = await plain.script_load("return redis.error_reply('TRL_NOPE ' .. ARGV[1])")
    echo = await plain.script_load(ECHO_ARGS)
    commands: list[wire.Command] = [("EVALSHA", sha, 0, "x"), ("EVALSHA", echo, 0, "y")]
    first, second = await wire.exchange(plain, commands)
    assert isinstance(first, ResponseError)
    assert "TRL_NOPE x" in str(first)
    assert second == [b"y"]


async def test_a_reply_slower_than_the_socket_timeout_fails_and_is_never_read_later(
    topology: LocalTopology, open_endpoint: OpenEndpoint
) -> None:
    if topology.kind == "cluster":
        pytest.skip("cluster clients route by slot through redis-py's pipeline")
    client = open_endpoint(topology, socket_timeout=0.2, retry=Retry(NoBackoff(), 0))
    assert isinstance(client.client, Redis)
    spin = await client.client.script_load(SPIN)
    began = asyncio.get_running_loop().time()
    with pytest.raises(RedisTimeoutError):
        await call(client.client, spin, 500_000, "late")
    assert asyncio.get_running_loop().time() - began < 0.45
    await asyncio.sleep(0.4)  # the script ends; its reply must not be read as ours
    assert await call(client.client, spin, 0, "mine") == [b"mine"]

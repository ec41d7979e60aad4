"""lua/result/*.lua through the registry, on every topology."""

from __future__ import annotations

import pytest

from taskiq_redis_lua import ScriptReplyError, scripts
from taskiq_redis_lua import topology as topo
from taskiq_redis_lua.keys import result_keys

SET = scripts.script("result/set")
TAKE = scripts.script("result/take")


async def test_set_stores_the_result_with_its_ttl_and_clears_progress(
    endpoint: topo.Endpoint, unique: str
) -> None:
    client = endpoint.client
    result, progress = result_keys("res", unique)
    await client.set(progress, "half way")
    assert await scripts.run(client, SET, [result, progress], ["done", 60_000]) == 1
    assert await client.get(result) == b"done"
    assert 59_000 < await client.pttl(result) <= 60_000
    assert await client.exists(progress) == 0


async def test_set_with_ttl_zero_keeps_the_result_without_expiry(
    endpoint: topo.Endpoint, unique: str
) -> None:
    client = endpoint.client
    result, progress = result_keys("res", unique)
    await scripts.run(client, SET, [result, progress], ["done", 0])
    assert await client.pttl(result) == -1


@pytest.mark.parametrize("ttl", ["-5", "1.5", "soon", ""])
async def test_set_refuses_a_ttl_that_is_not_whole_milliseconds(
    endpoint: topo.Endpoint, unique: str, ttl: str
) -> None:
    client = endpoint.client
    result, progress = result_keys("res", unique)
    with pytest.raises(ScriptReplyError, match="TRL_BADARG"):
        await scripts.run(client, SET, [result, progress], ["done", ttl])
    assert await client.exists(result) == 0


async def test_take_returns_the_result_and_deletes_it_with_its_progress(
    endpoint: topo.Endpoint, unique: str
) -> None:
    client = endpoint.client
    result, progress = result_keys(None, unique)
    await client.set(result, "done")
    await client.set(progress, "late progress")
    assert await scripts.run(client, TAKE, [result, progress]) == b"done"
    assert await client.exists(result, progress) == 0
    assert await scripts.run(client, TAKE, [result, progress]) is None


async def test_take_of_a_missing_result_leaves_the_progress(
    endpoint: topo.Endpoint, unique: str
) -> None:
    client = endpoint.client
    result, progress = result_keys(None, unique)
    await client.set(progress, "running")
    assert await scripts.run(client, TAKE, [result, progress]) is None
    assert await client.get(progress) == b"running"

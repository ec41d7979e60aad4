"""lua/result/*.lua through the registry, on every topology."""

from __future__ import annotations

import pytest

from taskiq_redis_lua import ScriptReplyError, scripts
from taskiq_redis_lua import topology as topo
from taskiq_redis_lua.keys import result_keys

SET = scripts.script("result/set")
TAKE = scripts.script("result/take")
WATCH = scripts.script("result/watch")


async def test_set_stores_the_result_with_its_ttl_and_clears_progress(
    endpoint: topo.Endpoint, unique: str
) -> None:
    client = endpoint.client
    both = result_keys("res", unique)
    result, progress = both.result, both.progress
    await client.set(progress, "half way")
    assert (
        await scripts.run(
            client,
            SET,
            {"result": result, "progress": progress, "watch": f"{result}:watch"},
            ["done", 60_000],
        )
        == 1
    )
    assert await client.get(result) == b"done"
    assert 59_000 < await client.pttl(result) <= 60_000
    assert await client.exists(progress) == 0


async def test_set_with_ttl_zero_keeps_the_result_without_expiry(
    endpoint: topo.Endpoint, unique: str
) -> None:
    client = endpoint.client
    both = result_keys("res", unique)
    result, progress = both.result, both.progress
    await scripts.run(
        client,
        SET,
        {"result": result, "progress": progress, "watch": f"{result}:watch"},
        ["done", 0],
    )
    assert await client.pttl(result) == -1


@pytest.mark.parametrize("ttl", ["-5", "1.5", "soon", ""])
async def test_set_refuses_a_ttl_that_is_not_whole_milliseconds(
    endpoint: topo.Endpoint, unique: str, ttl: str
) -> None:
    client = endpoint.client
    both = result_keys("res", unique)
    result, progress = both.result, both.progress
    with pytest.raises(ScriptReplyError, match="TRL_BADARG"):
        await scripts.run(
            client,
            SET,
            {"result": result, "progress": progress, "watch": f"{result}:watch"},
            ["done", ttl],
        )
    assert await client.exists(result) == 0


async def test_set_wakes_a_registered_waiter_and_leaves_no_watch_key_otherwise(
    endpoint: topo.Endpoint, unique: str
) -> None:
    client = endpoint.client
    both = result_keys("res", unique)
    result, progress = both.result, both.progress
    watch = f"{result}:watch"
    await scripts.run(
        client,
        SET,
        {"result": result, "progress": progress, "watch": watch},
        ["first", 0],
    )
    assert await client.exists(watch) == 0
    await client.delete(result)
    ready, after = await scripts.run(
        client, WATCH, {"result": result, "watch": watch}, [5_000]
    )
    assert ready == 0
    assert not await client.xread({watch: after}, count=1, block=1)
    await scripts.run(
        client,
        SET,
        {"result": result, "progress": progress, "watch": watch},
        ["again", 0],
    )
    assert await client.xread({watch: after}, count=1, block=1)
    entries = await client.xrange(watch) or []
    assert [fields for _, fields in entries] == [{b"ready": b"1"}]


async def test_watch_reports_a_stored_result_without_registering(
    endpoint: topo.Endpoint, unique: str
) -> None:
    client = endpoint.client
    result = result_keys("res", unique).result
    watch = f"{result}:watch"
    await client.set(result, "done")
    assert await scripts.run(
        client, WATCH, {"result": result, "watch": watch}, [5_000]
    ) == [1]
    assert await client.exists(watch) == 0


async def test_watchers_of_one_result_share_the_watch_key_for_the_longest_wait(
    endpoint: topo.Endpoint, unique: str
) -> None:
    client = endpoint.client
    result = result_keys("res", unique).result
    watch = f"{result}:watch"
    first = await scripts.run(
        client, WATCH, {"result": result, "watch": watch}, [5_000]
    )
    second = await scripts.run(
        client, WATCH, {"result": result, "watch": watch}, [20_000]
    )
    third = await scripts.run(
        client, WATCH, {"result": result, "watch": watch}, [1_000]
    )
    assert first == second == third
    assert await client.xlen(watch) == 1
    assert 19_000 < await client.pttl(watch) <= 20_000


@pytest.mark.parametrize("wait", ["0", "-5", "1.5", "soon"])
async def test_watch_refuses_a_wait_that_is_not_positive_whole_ms(
    endpoint: topo.Endpoint, unique: str, wait: str
) -> None:
    client = endpoint.client
    result = result_keys("res", unique).result
    with pytest.raises(ScriptReplyError, match="TRL_BADARG"):
        await scripts.run(
            client, WATCH, {"result": result, "watch": f"{result}:watch"}, [wait]
        )
    assert await client.exists(f"{result}:watch") == 0


async def test_take_returns_the_result_and_deletes_it_with_its_progress(
    endpoint: topo.Endpoint, unique: str
) -> None:
    client = endpoint.client
    both = result_keys(None, unique)
    result, progress = both.result, both.progress
    await client.set(result, "done")
    await client.set(progress, "late progress")
    assert (
        await scripts.run(client, TAKE, {"result": result, "progress": progress})
        == b"done"
    )
    assert await client.exists(result, progress) == 0
    assert (
        await scripts.run(client, TAKE, {"result": result, "progress": progress})
        is None
    )


async def test_take_of_a_missing_result_leaves_the_progress(
    endpoint: topo.Endpoint, unique: str
) -> None:
    client = endpoint.client
    both = result_keys(None, unique)
    result, progress = both.result, both.progress
    await client.set(progress, "running")
    assert (
        await scripts.run(client, TAKE, {"result": result, "progress": progress})
        is None
    )
    assert await client.get(progress) == b"running"

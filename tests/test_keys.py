"""Key names: companions of a name share its slot, results spread by task id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import astuple

import pytest
from redis.asyncio import RedisCluster

from taskiq_redis_lua import topology as topo
from taskiq_redis_lua.keys import (
    ResultKeys,
    companion_key,
    hash_tag,
    key_slot,
    result_keys,
    slot_stem,
)
from taskiq_redis_lua.local_redis import LocalTopology

from .conftest import connect

TRICKY_NAMES = [
    "taskiq",
    "jobs:high:priority",
    "{tenant-1}:jobs",
    "jobs{tenant-1}",
    "{}jobs",
    "jobs{}",
    "a{}b",
    "a}b",
    "}{",
    "{",
    "}",
    "{}",
    "{a}{b}",
    "q}{x}",
    "{{x}}",
    "日本語のキュー",
    "émoji-🚀",
    "with space\nand newline",
    "*",
]

TRICKY_PREFIXES = [None, "", "results", "res:ults", "{results}", "a{}", "a{", "}", "ü"]


@pytest.fixture
async def cluster_client(cluster_redis: LocalTopology) -> AsyncIterator[topo.Endpoint]:
    endpoint = connect(cluster_redis)
    yield endpoint
    await endpoint.close()


async def server_slot(endpoint: topo.Endpoint, key: str) -> int:
    assert isinstance(endpoint.client, RedisCluster)
    slot: int = await endpoint.client.cluster_keyslot(key)
    return slot


@pytest.mark.parametrize(
    ("key", "tag"),
    [
        ("plain", None),
        ("{user1000}.following", "user1000"),
        ("foo{}{bar}", None),
        ("foo{{bar}}zap", "{bar"),
        ("foo{bar}{zap}", "bar"),
        ("}{x}", "x"),
        ("{", None),
    ],
)
def test_hash_tag_follows_the_cluster_specification(key: str, tag: str | None) -> None:
    assert hash_tag(key) == tag


async def test_python_slot_agrees_with_cluster_keyslot(
    cluster_client: topo.Endpoint,
) -> None:
    for name in TRICKY_NAMES:
        assert key_slot(name) == await server_slot(cluster_client, name), name


async def test_companion_keys_share_the_slot_of_the_name(
    cluster_client: topo.Endpoint,
) -> None:
    for name in TRICKY_NAMES:
        slot = await server_slot(cluster_client, name)
        for part in ("inflight", "dead", "lock", "{weird}part"):
            key = companion_key(name, part)
            assert await server_slot(cluster_client, key) == slot, (name, key)


async def test_result_and_progress_keys_share_one_slot(
    cluster_client: topo.Endpoint,
) -> None:
    for prefix in TRICKY_PREFIXES:
        for task_id in ("4f1c2a0e9d8b4c7a", "a}b", "{x}", "id{}", "ö"):
            both = result_keys(prefix, task_id)
            result_key, progress_key = both.result, both.progress
            assert await server_slot(cluster_client, result_key) == await server_slot(
                cluster_client, progress_key
            ), (prefix, task_id)


LOOK_ALIKES = [
    "jobs",
    "{jobs}",
    "{jobs}:",
    "jobs:x",
    "{jobs:x}",
    "50%",
    "50%25",
    "a}b",
    slot_stem("a}b"),
    slot_stem("{jobs}"),
    "a%7Bb",
    "a{b",
]


def test_look_alike_names_never_share_a_key() -> None:
    names = TRICKY_NAMES + LOOK_ALIKES
    keys = {
        companion_key(name, part) for name in set(names) for part in ("ready", "dead")
    }
    assert len(keys) == 2 * len(set(names))


def test_plain_names_are_wrapped_and_others_escaped_after_their_tag() -> None:
    assert companion_key("jobs", "inflight") == "{jobs}:inflight"
    assert companion_key("jobs:high", "inflight") == "{jobs:high}:inflight"
    assert (
        companion_key("{tenant}:jobs", "inflight")
        == "{tenant}%7Btenant%7D:jobs:inflight"
    )


def test_result_keys_are_tagged_by_task_id() -> None:
    assert result_keys("results", "abc") == ResultKeys(
        "results:{abc}", "results:{abc}:progress", "results:{abc}:watch"
    )
    assert result_keys(None, "abc") == ResultKeys(
        "{abc}", "{abc}:progress", "{abc}:watch"
    )
    slots = {key_slot(result_keys("results", f"task-{n}").result) for n in range(200)}
    assert len(slots) > 150


def test_results_of_look_alike_tasks_and_prefixes_never_share_a_key() -> None:
    pairs = [
        (prefix, task_id)
        for prefix in TRICKY_PREFIXES
        for task_id in ("abc", "abc:progress", "{abc}", "ab}c", "%7Babc%7D", "a:b")
    ]
    keys = [key for pair in pairs for key in astuple(result_keys(*pair))]
    assert len(set(keys)) == len(keys)


def test_braces_in_a_prefix_do_not_pin_results_to_one_slot() -> None:
    slots = {key_slot(result_keys("{results}", f"task-{n}").result) for n in range(50)}
    assert len(slots) > 40


def test_empty_names_are_refused() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        slot_stem("")
    with pytest.raises(ValueError, match="must not be empty"):
        result_keys("results", "")

"""Drop-in: every class takes taskiq-redis 1.2.4's parameters, in order, same defaults.

The expected lists are taskiq-redis 1.2.4's constructor signatures, written down
here as the specification. New parameters must be keyword-only.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import taskiq_redis_lua

R = inspect.Parameter.empty  # no default: required
CLUSTER_POOL = 2**31

TASKIQ_REDIS_1_2_4: dict[str, list[tuple[str, Any]]] = {
    "ListQueueBroker": [
        ("url", R), ("task_id_generator", None), ("result_backend", None),
        ("queue_name", "taskiq"), ("max_connection_pool_size", None),
    ],
    "ListQueueClusterBroker": [
        ("url", R), ("queue_name", "taskiq"),
        ("max_connection_pool_size", CLUSTER_POOL),
    ],
    "ListQueueSentinelBroker": [
        ("sentinels", R), ("master_name", R), ("result_backend", None),
        ("task_id_generator", None), ("queue_name", "taskiq"),
        ("min_other_sentinels", 0), ("sentinel_kwargs", None),
    ],
    "RedisStreamBroker": [
        ("url", R), ("queue_name", "taskiq"), ("max_connection_pool_size", None),
        ("consumer_group_name", "taskiq"), ("consumer_name", None),
        ("consumer_id", "0"), ("mkstream", True), ("xread_block", 2000),
        ("maxlen", None), ("approximate", True), ("idle_timeout", 600000),
        ("unacknowledged_batch_size", 100), ("unacknowledged_lock_timeout", None),
        ("xread_count", 100), ("additional_streams", None),
    ],
    "RedisStreamClusterBroker": [
        ("url", R), ("queue_name", "taskiq"),
        ("max_connection_pool_size", CLUSTER_POOL), ("consumer_group_name", "taskiq"),
        ("consumer_name", None), ("consumer_id", "0"), ("mkstream", True),
        ("xread_block", 10000),
        ("maxlen", None), ("approximate", True), ("additional_streams", None),
    ],
    "RedisStreamSentinelBroker": [
        ("sentinels", R), ("master_name", R), ("min_other_sentinels", 0),
        ("queue_name", "taskiq"), ("consumer_group_name", "taskiq"),
        ("consumer_name", None), ("consumer_id", "0"), ("mkstream", True),
        ("xread_block", 10000), ("maxlen", None), ("approximate", True),
        ("additional_streams", None),
    ],
    "PubSubBroker": [
        ("url", R), ("task_id_generator", None), ("result_backend", None),
        ("queue_name", "taskiq"), ("max_connection_pool_size", None),
    ],
    "PubSubSentinelBroker": [
        ("sentinels", R), ("master_name", R), ("result_backend", None),
        ("task_id_generator", None), ("queue_name", "taskiq"),
        ("min_other_sentinels", 0), ("sentinel_kwargs", None),
    ],
    "RedisAsyncResultBackend": [
        ("redis_url", R), ("keep_results", True), ("result_ex_time", None),
        ("result_px_time", None), ("max_connection_pool_size", None),
        ("serializer", None), ("prefix_str", None),
    ],
    "RedisAsyncClusterResultBackend": [
        ("redis_url", R), ("keep_results", True), ("result_ex_time", None),
        ("result_px_time", None), ("serializer", None), ("prefix_str", None),
    ],
    "RedisAsyncSentinelResultBackend": [
        ("sentinels", R), ("master_name", R), ("keep_results", True),
        ("result_ex_time", None), ("result_px_time", None),
        ("min_other_sentinels", 0), ("sentinel_kwargs", None),
        ("serializer", None), ("prefix_str", None),
    ],
    "ListRedisScheduleSource": [
        ("url", R), ("prefix", "schedule"), ("max_connection_pool_size", None),
        ("serializer", None), ("buffer_size", 50), ("skip_past_schedules", False),
    ],
    "RedisScheduleSource": [
        ("url", R), ("prefix", "schedule"), ("buffer_size", 50),
        ("max_connection_pool_size", None), ("serializer", None),
    ],
    "RedisClusterScheduleSource": [
        ("url", R), ("prefix", "schedule"), ("serializer", None),
    ],
    "RedisSentinelScheduleSource": [
        ("sentinels", R), ("master_name", R), ("prefix", "schedule"),
        ("buffer_size", 50), ("serializer", None), ("min_other_sentinels", 0),
        ("sentinel_kwargs", None),
    ],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(TASKIQ_REDIS_1_2_4))
def test_constructor_takes_taskiq_redis_parameters_in_order(name: str) -> None:
    parameters = list(
        inspect.signature(getattr(taskiq_redis_lua, name)).parameters.values()
    )
    positional = [
        (p.name, p.default)
        for p in parameters
        if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    ]
    assert positional == TASKIQ_REDIS_1_2_4[name]
    kinds = {p.kind for p in parameters}
    assert inspect.Parameter.VAR_KEYWORD in kinds  # connection kwargs pass through
    assert inspect.Parameter.VAR_POSITIONAL not in kinds

"""The result backend family, on a single node, a cluster and sentinel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import RedisCluster
from taskiq import InMemoryBroker, TaskiqResult
from taskiq.depends.progress_tracker import TaskProgress, TaskState
from taskiq.serializers import JSONSerializer, PickleSerializer

from taskiq_redis_lua import (
    DuplicateExpireTimeSelectedError,
    ExpireTimeMustBeMoreThanZeroError,
    RedisAsyncClusterResultBackend,
    RedisAsyncResultBackend,
    RedisAsyncSentinelResultBackend,
    ResultDecodeError,
    ResultIsMissingError,
    ResultSerializationError,
)
from taskiq_redis_lua import topology as topo
from taskiq_redis_lua.keys import result_keys
from taskiq_redis_lua.local_redis import LocalTopology
from taskiq_redis_lua.result_backend import DEFAULT_RESULT_TTL_SECONDS, _ResultBackend

from .building import RESULT_BACKEND

Backend = _ResultBackend[Any]
MakeBackend = Callable[..., Backend]


@pytest.fixture
async def make_backend(topology: LocalTopology) -> AsyncIterator[MakeBackend]:
    """Build backends for the topology under test; shut them down afterwards."""
    built: list[Backend] = []

    def make(**options: Any) -> Backend:
        backend = RESULT_BACKEND.build(topology, **options)
        built.append(backend)
        return backend

    yield make
    for backend in built:
        await backend.shutdown()


def success(value: Any, **fields: Any) -> TaskiqResult[Any]:
    return TaskiqResult(is_err=False, return_value=value, execution_time=0.25, **fields)


async def test_a_stored_result_reads_back(
    make_backend: MakeBackend, unique: str
) -> None:
    backend = make_backend()
    await backend.set_result(unique, success({"answer": 42}, labels={"k": "v"}))
    result = await backend.get_result(unique)
    assert result.return_value == {"answer": 42}
    assert result.is_err is False
    assert result.execution_time == 0.25
    assert result.labels == {"k": "v"}


async def test_the_log_is_returned_only_with_logs(
    make_backend: MakeBackend, unique: str
) -> None:
    backend = make_backend()
    await backend.set_result(unique, success(1, log="line one"))
    assert (await backend.get_result(unique)).log is None
    assert (await backend.get_result(unique, with_logs=True)).log == "line one"


async def test_a_failed_task_keeps_its_exception(
    make_backend: MakeBackend, unique: str
) -> None:
    backend = make_backend()
    failed: TaskiqResult[Any] = TaskiqResult(
        is_err=True,
        return_value=None,
        execution_time=0.1,
        error=ValueError("bad input"),
    )
    await backend.set_result(unique, failed)
    result = await backend.get_result(unique)
    assert isinstance(result.error, ValueError)
    with pytest.raises(ValueError, match="bad input"):
        result.raise_for_error()


async def test_a_missing_result_raises_result_is_missing(
    make_backend: MakeBackend,
) -> None:
    backend = make_backend()
    with pytest.raises(ResultIsMissingError):
        await backend.get_result("never-ran")


async def test_is_result_ready_turns_true_once_stored(
    make_backend: MakeBackend, unique: str
) -> None:
    backend = make_backend()
    assert await backend.is_result_ready(unique) is False
    await backend.set_result(unique, success(1))
    assert await backend.is_result_ready(unique) is True


async def test_results_expire_after_a_day_by_default(
    make_backend: MakeBackend, endpoint: topo.Endpoint, unique: str
) -> None:
    backend = make_backend()
    await backend.set_result(unique, success(1))
    pttl = await endpoint.client.pttl(result_keys(None, unique).result)
    assert (
        DEFAULT_RESULT_TTL_SECONDS * 1000 - 5_000
        < pttl
        <= DEFAULT_RESULT_TTL_SECONDS * 1000
    )


@pytest.mark.parametrize(
    ("options", "expected_ms"),
    [({"result_ex_time": 30}, 30_000), ({"result_px_time": 1_500}, 1_500)],
)
async def test_result_ex_and_px_time_set_the_expiry(
    make_backend: MakeBackend,
    endpoint: topo.Endpoint,
    unique: str,
    options: dict[str, int],
    expected_ms: int,
) -> None:
    backend = make_backend(**options)
    await backend.set_result(unique, success(1))
    await backend.set_progress(unique, TaskProgress(state=TaskState.STARTED, meta=None))
    both = result_keys(None, unique)
    result_key, progress_key = both.result, both.progress
    assert expected_ms - 1_000 < await endpoint.client.pttl(result_key) <= expected_ms
    assert expected_ms - 1_000 < await endpoint.client.pttl(progress_key) <= expected_ms


async def test_results_are_kept_forever_only_when_asked(
    make_backend: MakeBackend, endpoint: topo.Endpoint, unique: str
) -> None:
    backend = make_backend(expire_results=False)
    await backend.set_result(unique, success(1))
    assert await endpoint.client.pttl(result_keys(None, unique).result) == -1


async def test_keep_results_false_deletes_result_and_progress_when_read(
    make_backend: MakeBackend, endpoint: topo.Endpoint, unique: str
) -> None:
    backend = make_backend(keep_results=False)
    await backend.set_result(unique, success("once"))
    progress_key = result_keys(None, unique).progress
    await endpoint.client.set(progress_key, b"written late")
    assert (await backend.get_result(unique)).return_value == "once"
    both = result_keys(None, unique)
    assert await endpoint.client.exists(both.result, both.progress) == 0
    with pytest.raises(ResultIsMissingError):
        await backend.get_result(unique)


async def test_keep_results_true_reads_many_times(
    make_backend: MakeBackend, unique: str
) -> None:
    backend = make_backend()
    await backend.set_result(unique, success("again"))
    for _ in range(3):
        assert (await backend.get_result(unique)).return_value == "again"


async def test_progress_reads_back_and_is_cleared_by_the_result(
    make_backend: MakeBackend, unique: str
) -> None:
    backend = make_backend()
    assert await backend.get_progress(unique) is None
    await backend.set_progress(
        unique, TaskProgress(state=TaskState.STARTED, meta={"done": 3})
    )
    progress = await backend.get_progress(unique)
    assert progress is not None
    assert progress.state == TaskState.STARTED
    assert progress.meta == {"done": 3}
    await backend.set_result(unique, success(1))
    assert await backend.get_progress(unique) is None


async def test_results_are_stored_as_json_by_default(
    make_backend: MakeBackend, endpoint: topo.Endpoint, unique: str
) -> None:
    backend = make_backend()
    await backend.set_result(unique, success([1, "two"]))
    raw = await endpoint.client.get(result_keys(None, unique).result)
    assert isinstance(raw, bytes)
    assert json.loads(raw)["return_value"] == [1, "two"]


@pytest.mark.parametrize(
    "value",
    [
        {"text": "naïve ✓ \U0001f600", "big": 2**70, "tiny": 1e-7, "neg": -0.0},
        [float("inf"), float("-inf")],
        "\ud800 a lone surrogate",
    ],
    ids=["unicode-and-numbers", "infinities", "lone-surrogate"],
)
async def test_results_read_as_taskiqs_json_serializer_would_write_them(
    make_backend: MakeBackend, endpoint: topo.Endpoint, unique: str, value: Any
) -> None:
    backend = make_backend()
    result = TaskiqResult(
        is_err=False, return_value=value, execution_time=float("inf"), labels={}
    )
    await backend.set_result(unique, result)
    raw = await endpoint.client.get(result_keys(None, unique).result)
    assert isinstance(raw, bytes)
    written = JSONSerializer().dumpb(result.model_dump(mode="json"))
    assert json.loads(raw) == json.loads(written)
    assert (await backend.get_result(unique)).execution_time == float("inf")


async def test_a_pickle_serializer_works_when_passed(
    make_backend: MakeBackend, unique: str
) -> None:
    backend = make_backend(serializer=PickleSerializer())
    await backend.set_result(unique, success({"set": [1, 2]}))
    assert (await backend.get_result(unique)).return_value == {"set": [1, 2]}


async def test_an_unserializable_result_raises_and_stores_an_error_in_its_place(
    make_backend: MakeBackend, unique: str
) -> None:
    backend = make_backend()
    await backend.set_progress(unique, TaskProgress(state=TaskState.STARTED, meta=1))
    unstorable = success(object()).model_copy(update={"labels": {"retry": 2}})
    with pytest.raises(ResultSerializationError, match=unique) as raised:
        await backend.set_result(unique, unstorable)
    assert "JSONSerializer" in str(raised.value)
    stored = await backend.get_result(unique)
    assert (stored.is_err, stored.return_value, stored.labels) == (
        True,
        None,
        {"retry": 2},
    )
    assert isinstance(stored.error, ResultSerializationError)
    assert str(stored.error) == str(raised.value)
    assert await backend.get_progress(unique) is None  # cleared as by any result


async def test_an_unserializable_progress_raises_and_writes_nothing(
    make_backend: MakeBackend, unique: str
) -> None:
    backend = make_backend()
    await backend.set_progress(unique, TaskProgress(state=TaskState.STARTED, meta=1))
    with pytest.raises(ResultSerializationError, match="progress"):
        await backend.set_progress(unique, TaskProgress(state="x", meta=object()))
    progress = await backend.get_progress(unique)
    assert progress is not None
    assert progress.meta == 1


async def test_data_the_serializer_cannot_read_raises_result_decode_error(
    make_backend: MakeBackend, endpoint: topo.Endpoint, unique: str
) -> None:
    backend = make_backend()
    await endpoint.client.set(result_keys(None, unique).result, b"\x80\x04not json")
    with pytest.raises(ResultDecodeError, match=unique):
        await backend.get_result(unique)
    await endpoint.client.set(result_keys(None, unique).result, b'{"unexpected": 1}')
    with pytest.raises(ResultDecodeError, match=unique):
        await backend.get_result(unique)
    await endpoint.client.set(result_keys(None, unique).progress, b'{"meta": 1}')
    with pytest.raises(ResultDecodeError, match="progress"):
        await backend.get_progress(unique)


async def test_prefix_str_names_the_keys(
    make_backend: MakeBackend, endpoint: topo.Endpoint, unique: str
) -> None:
    backend = make_backend(prefix_str="results")
    await backend.set_result(unique, success(1))
    assert await endpoint.client.exists(f"results:{{{unique}}}") == 1
    assert (await backend.get_result(unique)).return_value == 1
    other = make_backend(prefix_str="other")
    with pytest.raises(ResultIsMissingError):
        await other.get_result(unique)


async def test_an_empty_prefix_str_gives_keys_of_their_own(
    make_backend: MakeBackend, endpoint: topo.Endpoint, unique: str
) -> None:
    backend = make_backend(prefix_str="")  # taskiq-redis took it too
    await backend.set_result(unique, success(1))
    assert await endpoint.client.exists(f":{{{unique}}}") == 1
    assert (await backend.get_result(unique)).return_value == 1
    with pytest.raises(ResultIsMissingError):
        await make_backend().get_result(unique)


async def test_the_backend_works_without_startup_and_after_script_flush(
    make_backend: MakeBackend, endpoint: topo.Endpoint, unique: str
) -> None:
    backend = make_backend(keep_results=False)
    await endpoint.client.script_flush()
    await backend.set_result(unique, success("lazy"))
    await endpoint.client.script_flush()
    assert (await backend.get_result(unique)).return_value == "lazy"


async def test_results_of_a_cluster_spread_over_every_primary(
    cluster_redis: LocalTopology, unique: str
) -> None:
    backend = RESULT_BACKEND.build(cluster_redis)
    try:
        await _spread_over_primaries(backend, unique)
    finally:
        await backend.shutdown()


async def _spread_over_primaries(backend: Backend, unique: str) -> None:
    await backend.startup()
    for number in range(30):
        await backend.set_result(f"{unique}-{number}", success(number))
    client = backend.endpoint.client
    assert isinstance(client, RedisCluster)
    per_node = [
        len(await client.execute_command("KEYS", f"*{unique}*", target_nodes=node))
        for node in client.get_primaries()
    ]
    assert len(per_node) == 3
    assert sum(per_node) == 30
    assert min(per_node) > 0


async def test_a_taskiq_task_result_goes_through_the_backend(
    make_backend: MakeBackend,
) -> None:
    broker = InMemoryBroker().with_result_backend(make_backend())

    @broker.task
    async def add(left: int, right: int) -> int:
        return left + right

    await broker.startup()
    task = await add.kiq(2, 3)
    result = await task.wait_result(timeout=5)
    assert result.return_value == 5
    await broker.shutdown()


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"result_ex_time": 0}, ExpireTimeMustBeMoreThanZeroError),
        ({"result_px_time": -1}, ExpireTimeMustBeMoreThanZeroError),
        ({"result_ex_time": 1, "result_px_time": 1}, DuplicateExpireTimeSelectedError),
        ({"result_ex_time": 1.5}, ValueError),
        ({"expire_results": False, "result_ex_time": 10}, ValueError),
        ({"prefix_str": 7}, ValueError),
        ({"keep_results": "no"}, ValueError),
        ({"expire_results": None}, ValueError),
        ({"serializer": "json"}, ValueError),
        ({"decode_responses": True}, ValueError),
        ({"ready_wait": -1}, ValueError),
        ({"ready_wait": "soon"}, ValueError),
        ({"ready_wait": 5, "socket_timeout": 5}, ValueError),
    ],
)
def test_bad_options_are_refused_by_every_backend_class(
    topology: LocalTopology, options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        RESULT_BACKEND.build(topology, **options)


@pytest.mark.parametrize(
    "build",
    [
        lambda: RedisAsyncResultBackend("localhost:6379"),
        lambda: RedisAsyncResultBackend("redis://h", max_connection_pool_size=True),
        lambda: RedisAsyncClusterResultBackend("http://localhost:6379"),
        lambda: RedisAsyncSentinelResultBackend([], "mymaster"),
        lambda: RedisAsyncSentinelResultBackend(
            [("localhost", "port")],  # type: ignore[list-item]
            "mymaster",
        ),
    ],
)
def test_bad_connection_parameters_are_refused_with_their_name(
    build: Callable[[], Any],
) -> None:
    with pytest.raises(ValueError, match=r"redis_url|sentinels|max_connection_pool"):
        build()


async def test_results_stored_at_the_same_time_all_read_back(
    make_backend: MakeBackend, unique: str
) -> None:
    backend = make_backend()
    ids = [f"{unique}-{number}" for number in range(250)]
    await asyncio.gather(
        *(backend.set_result(task_id, success(n)) for n, task_id in enumerate(ids))
    )
    results = [await backend.get_result(task_id) for task_id in ids]
    assert [result.return_value for result in results] == list(range(250))


async def test_wait_result_with_ready_wait_returns_as_soon_as_the_result_is_stored(
    make_backend: MakeBackend, unique: str
) -> None:
    waiter = make_backend(ready_wait=2.0)
    worker_side = make_backend()
    await waiter.startup()
    await worker_side.startup()
    loop = asyncio.get_running_loop()

    async def store_later() -> float:
        await asyncio.sleep(0.3)
        await worker_side.set_result(unique, success("late"))
        return loop.time()

    storing = asyncio.ensure_future(store_later())
    ready = await waiter.is_result_ready(unique)
    woke_at = loop.time()
    assert ready is True
    # The default check_interval would have slept 0.2 s between looks.
    assert woke_at - await storing < 0.1
    assert (await waiter.get_result(unique)).return_value == "late"


async def test_ready_wait_gives_up_after_its_bound_when_nothing_is_stored(
    make_backend: MakeBackend, unique: str
) -> None:
    backend = make_backend(ready_wait=0.2)
    await backend.startup()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await backend.is_result_ready(unique) is False
    assert 0.15 < loop.time() - started < 2.0


async def test_a_taskiq_wait_result_with_ready_wait_reads_the_result(
    make_backend: MakeBackend,
) -> None:
    broker = InMemoryBroker().with_result_backend(make_backend(ready_wait=1.0))

    @broker.task
    async def add(left: int, right: int) -> int:
        return left + right

    await broker.startup()
    task = await add.kiq(2, 3)
    result = await task.wait_result(timeout=5)
    assert result.return_value == 5
    await broker.shutdown()

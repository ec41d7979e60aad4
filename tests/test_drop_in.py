"""Drop-in fidelity: what code written for taskiq-redis 1.2.4 reaches keeps working.

A broker is a transport outside a worker, taskiq-redis's client attributes and
submodule imports exist, a custom formatter runs through the real worker, and a
result that cannot be stored still answers whoever waits for it.
"""

from __future__ import annotations

import asyncio
import importlib
import pickle
import time
import warnings
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from redis.asyncio import Redis
from taskiq import BrokerMessage, TaskiqMessage
from taskiq.depends.progress_tracker import TaskProgress, TaskState

import taskiq_redis_lua
from taskiq_redis_lua import ResultSerializationError
from taskiq_redis_lua.keys import list_queue_keys
from taskiq_redis_lua.local_redis import LocalTopology

from .building import RESULT_BACKEND, SCHEDULE_SOURCE
from .listening import Listen
from .test_schedule_source import schedule
from .test_security import FAMILIES, build_broker
from .worker_process import Worker, forget_app, import_app, start_worker

# --- listen() is a transport outside a worker ------------------------------------

#: Bytes no formatter of taskiq's can decode: the start of a pickle, then junk.
NOT_A_TASKIQ_MESSAGE = b"\x80\x04\x95\x00not json \xff"


async def left_in(broker: Any) -> int:
    """Messages still kept for the queue: waiting, delayed, in flight or dead."""
    (stats,) = await broker.stats()
    if stats.kind == "list":
        return int(stats.ready + stats.delayed + stats.in_flight + stats.dead)
    return int(stats.length + stats.delayed + stats.pending + stats.dead)


@pytest.fixture
async def transport(
    request: pytest.FixtureRequest, topology: LocalTopology, unique: str
) -> AsyncIterator[Any]:
    """A broker of ``family`` on the topology, outside any worker process."""
    broker = build_broker(request.param, topology, queue_name=unique)
    await broker.startup()
    yield broker
    await broker.shutdown()


@pytest.mark.parametrize("transport", FAMILIES, indirect=True)
async def test_outside_a_worker_listen_yields_every_message_exactly_as_kicked(
    transport: Any, listen: Listen
) -> None:
    broker = transport
    assert not broker.is_worker_process
    unknown_task = broker.formatter.dumps(
        TaskiqMessage(task_id="2", task_name="nowhere", labels={}, args=[], kwargs={})
    )
    kicked = [
        BrokerMessage(
            task_id="1", task_name="x", message=NOT_A_TASKIQ_MESSAGE, labels={}
        ),
        unknown_task,
        BrokerMessage(task_id="3", task_name="x", message=b"", labels={}),
    ]
    for message in kicked:
        await broker.kick(message)
    listener = listen(broker)
    received = [await listener.next() for _ in kicked]
    assert [message.data for message in received] == [m.message for m in kicked]
    for message in received:
        await message.ack()
    assert await left_in(broker) == 0
    assert await broker.count_dead() == 0  # inside a worker, two of them would be


@pytest.mark.parametrize("transport", FAMILIES, indirect=True)
async def test_an_empty_queue_name_label_sends_to_the_brokers_queue(
    transport: Any, listen: Listen
) -> None:
    broker = transport
    labels = {"queue_name": ""}
    await broker.kick(
        BrokerMessage(task_id="1", task_name="x", message=b"m", labels=labels)
    )
    assert (await listen(broker).next()).data == b"m"


# --- through the real `taskiq worker` ------------------------------------------


@pytest.fixture
def app_of(
    topology: LocalTopology, unique: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """Import the test app for a family (and formatter), pointed at the topology."""

    def load(family: str, formatter: str = "") -> ModuleType:
        monkeypatch.setenv("TRL_FORMATTER", formatter)
        return import_app(topology, unique, family, monkeypatch)

    yield load
    forget_app()


async def stored_payloads(app: ModuleType) -> list[bytes]:
    """The payloads the test app's queue holds, as Redis stores them."""
    client = app.results.endpoint.client
    if app.FAMILY == "list":  # sequence, payload, ... newest first
        waiting: list[bytes] = await client.lrange(
            list_queue_keys(app.QUEUE).queue, 0, -1
        )
        return waiting[::2]
    return [fields[b"data"] for _, fields in await client.xrange(app.QUEUE)]


@pytest.mark.parametrize("family", FAMILIES)
async def test_a_custom_formatter_runs_tasks_through_the_real_worker(
    app_of: Any,
    family: str,
    workers: list[Worker],
    topology: LocalTopology,
    tmp_path: Path,
) -> None:
    app = app_of(family, "zlib")
    await app.broker.startup()
    try:
        tasks = [await app.record.kiq(number) for number in range(5)]
        payloads = await stored_payloads(app)
        worker = start_worker(workers, app, topology, tmp_path)
        results = [await task.wait_result(timeout=30) for task in tasks]
    finally:
        await app.broker.shutdown()
    assert len(payloads) == 5
    assert all(zlib.decompress(payload).startswith(b"{") for payload in payloads)
    assert [r.return_value for r in results] == [0, 2, 4, 6, 8], worker.output()
    assert "dead letter" not in worker.output()


async def test_a_result_that_cannot_be_stored_answers_its_caller_with_an_error(
    app_of: Any,
    workers: list[Worker],
    topology: LocalTopology,
    tmp_path: Path,
) -> None:
    app = app_of("list")
    await app.broker.startup()
    try:
        task = await app.unstorable.kiq()
        worker = start_worker(workers, app, topology, tmp_path)
        result = await task.wait_result(timeout=30)
    finally:
        await app.broker.shutdown()
    assert result.is_err, worker.output()
    error = result.error
    assert isinstance(error, ResultSerializationError)
    assert (error.what, error.task_id, error.serializer) == (
        "result",
        task.task_id,
        "JSONSerializer",
    )
    assert "Opaque" in error.reason
    deadline = time.monotonic() + 10  # raised as well, right after the store
    while "Can't set result in result backend" not in worker.output():
        assert time.monotonic() < deadline, worker.output()
        await asyncio.sleep(0.05)


def test_the_stored_serialization_error_survives_pickle() -> None:
    error = ResultSerializationError(
        what="result", task_id="t", serializer="S", reason="R"
    )
    restored = pickle.loads(pickle.dumps(error))
    assert (type(restored), str(restored)) == (type(error), str(error))


# --- taskiq-redis's attributes and import paths ------------------------------------

#: taskiq-redis 1.2.4's public classes, by topology.
SINGLE = ["ListQueueBroker", "RedisStreamBroker", "PubSubBroker",
          "RedisAsyncResultBackend", "ListRedisScheduleSource",
          "RedisScheduleSource"]  # fmt: skip
CLUSTER = ["ListQueueClusterBroker", "RedisStreamClusterBroker",
           "RedisAsyncClusterResultBackend", "RedisClusterScheduleSource"]  # fmt: skip
SENTINEL = ["ListQueueSentinelBroker", "RedisStreamSentinelBroker",
            "PubSubSentinelBroker", "RedisAsyncSentinelResultBackend",
            "RedisSentinelScheduleSource"]  # fmt: skip


#: Private names of taskiq-redis that code in the wild uses: the sentinel classes'
#: way to a client of the primary, and ListRedisScheduleSource's only pool.
KEPT_PRIVATE = {"_acquire_master_conn", "_connection_pool"}


def build_with_defaults(package: ModuleType, name: str) -> Any:
    """Build ``package.name`` with only its required arguments (nothing connects)."""
    cls = getattr(package, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if name in SENTINEL:
            return cls([("127.0.0.1", 1)], "primary")
        return cls("redis://127.0.0.1:1")


def taskiq_redis_module(name: str = "") -> ModuleType:
    """taskiq-redis 1.2.4 itself (the dev extra), or one of its modules."""
    pytest.importorskip("taskiq_redis")  # not where redis-py 7 is installed
    return importlib.import_module(f"taskiq_redis.{name}" if name else "taskiq_redis")


def test_the_classes_compared_are_all_of_taskiq_redis() -> None:
    theirs = taskiq_redis_module()
    assert sorted(SINGLE + CLUSTER + SENTINEL) == sorted(theirs.__all__)


@pytest.mark.parametrize("name", SINGLE + CLUSTER + SENTINEL)
def test_every_public_attribute_of_taskiq_redis_exists(name: str) -> None:
    theirs = build_with_defaults(taskiq_redis_module(), name)
    ours = build_with_defaults(taskiq_redis_lua, name)
    wanted = {
        attribute
        for attribute in dir(theirs)
        if not attribute.startswith("_") or attribute in KEPT_PRIVATE
    }
    assert "kick" in wanted or "get_result" in wanted or "get_schedules" in wanted
    assert sorted(a for a in wanted if not hasattr(ours, a)) == []


@asynccontextmanager
async def users_client(target: LocalTopology, holder: Any) -> AsyncIterator[Any]:
    """The redis-py client a taskiq-redis user builds from ``holder``'s attributes."""
    if target.kind == "cluster":
        yield holder.redis  # the object's own client: not closed here
        return
    if target.kind == "single":
        pool = next(
            getattr(holder, name)
            for name in ("_connection_pool", "connection_pool", "redis_pool")
            if hasattr(holder, name)
        )
        client = Redis(connection_pool=pool)  # closing it leaves the pool open
    else:
        client = holder.sentinel.master_for(holder.master_name)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.mark.parametrize("transport", FAMILIES, indirect=True)
async def test_the_client_attributes_reach_the_brokers_redis(
    transport: Any, topology: LocalTopology, listen: Listen
) -> None:
    broker = transport
    async with users_client(topology, broker) as client:
        await client.set(f"{broker.queue_name}-mine", b"1")  # the user's own command
        assert await client.get(f"{broker.queue_name}-mine") == b"1"
    await broker.kick(
        BrokerMessage(task_id="1", task_name="x", message=b"m", labels={})
    )
    assert (await listen(broker).next()).data == b"m"  # the broker's client still works


async def test_the_result_backends_client_attribute_reaches_its_results(
    topology: LocalTopology, unique: str
) -> None:
    backend = RESULT_BACKEND.build(topology, prefix_str=unique)
    try:
        await backend.set_progress(
            "t", TaskProgress(state=TaskState.STARTED, meta=None)
        )
        async with users_client(topology, backend) as client:
            assert await client.exists(f"{unique}:{{t}}:progress") == 1
        assert await backend.get_progress("t") is not None
    finally:
        await backend.shutdown()


async def test_the_schedule_sources_client_attribute_reaches_its_schedules(
    topology: LocalTopology, unique: str
) -> None:
    source = SCHEDULE_SOURCE.build(topology, prefix=unique)
    try:
        await source.add_schedule(schedule(cron="* * * * *"))
        async with users_client(topology, source) as client:
            assert await client.hlen(f"{{{unique}}}:data") == 1
        assert len(await source.get_schedules()) == 1
    finally:
        await source.shutdown()


async def test_acquire_master_conn_yields_a_client_of_the_current_primary(
    sentinel_redis: LocalTopology, unique: str
) -> None:
    broker = build_broker("list", sentinel_redis, queue_name=unique)
    try:
        async with broker._acquire_master_conn() as primary:
            assert (await primary.execute_command("ROLE"))[0] == b"master"
            await primary.set(unique, b"1")
        await broker.kick(
            BrokerMessage(task_id="1", task_name="x", message=b"m", labels={})
        )
        assert await broker.count_dead() == 0  # the broker's client is still open
        address = await broker.sentinel.discover_master(broker.master_name)
        assert address[1] == (await primary.connection_pool.get_master_address())[1]
    finally:
        await broker.shutdown()


#: taskiq-redis's modules that users import from directly.
SUBMODULES = ["redis_broker", "redis_backend", "list_schedule_source",
              "redis_cluster_broker", "redis_sentinel_broker", "schedule_source",
              "exceptions"]  # fmt: skip


@pytest.mark.parametrize("module", SUBMODULES)
def test_taskiq_redis_module_paths_import_the_same_names(module: str) -> None:
    theirs = taskiq_redis_module(module)
    ours = importlib.import_module(f"taskiq_redis_lua.{module}")
    names = [
        name
        for name, value in vars(theirs).items()
        if isinstance(value, type)
        and value.__module__.startswith("taskiq_redis.")
        and not name.startswith("Base")  # their private base classes: not kept
    ]
    assert names
    for name in names:
        assert getattr(ours, name) is getattr(taskiq_redis_lua, name)

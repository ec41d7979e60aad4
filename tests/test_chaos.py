"""Faults in the middle of real work, through the real `taskiq worker` command.

Each scenario starts its own Redis (persisted to an append-only file fsynced on every
write, as a deployment that cannot lose tasks runs it), sends tasks, breaks something
while a worker is busy with them, and checks what a user would: every task has its
right result and every task ran.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis
import redis.exceptions
from taskiq import AsyncBroker, BrokerMessage, TaskiqMessage, TaskiqResult
from taskiq.scheduler.scheduled_task import ScheduledTask

from taskiq_redis_lua import (
    ListQueueBroker,
    RedisAsyncResultBackend,
    RedisStreamBroker,
    local_redis,
)
from taskiq_redis_lua.local_redis import LocalTopology, RedisProcess

from .listening import Listener, send
from .worker_process import (
    Worker,
    executions,
    forget_app,
    import_app,
    start_worker,
    wait_for_executions,
)

DURABLE = ("--appendonly", "yes", "--appendfsync", "always")
TASKS = 150


class DurableRedis:
    """A single Redis with an fsync-always AOF that can crash and come back."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.process: RedisProcess = local_redis.start_server(directory, *DURABLE)

    @property
    def topology(self) -> LocalTopology:
        url = f"redis://127.0.0.1:{self.process.port}"
        return LocalTopology(kind="single", processes=[self.process], url=url)

    async def crash_and_restart(self, down: float) -> None:
        """SIGKILL the server, stay down ``down`` seconds, start it on its data."""
        self.process = await crash_and_restart(self.process, down)

    def stop(self) -> None:
        self.process.stop()


async def crash_and_restart(process: RedisProcess, down: float) -> RedisProcess:
    """SIGKILL ``process``, stay down ``down`` seconds, start it again on its data."""
    process.kill()
    await asyncio.sleep(down)
    return await asyncio.to_thread(process.restart)


@pytest.fixture
def durable(tmp_path: Path) -> Iterator[DurableRedis]:
    server = DurableRedis(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
async def app(
    durable: DurableRedis,
    family: str,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[ModuleType]:
    module = import_app(durable.topology, unique, family, monkeypatch)
    await module.broker.startup()
    yield module
    await module.broker.shutdown()
    forget_app()


async def all_results(tasks: list[Any], worker: Worker) -> list[Any]:
    """Wait for every task's result; fail with the worker's log or the task error."""
    try:
        results = [await task.wait_result(timeout=90) for task in tasks]
    except Exception as error:
        raise AssertionError(worker.output()) from error
    failed = [result.error for result in results if result.is_err]
    assert failed == [], worker.output()
    return [result.return_value for result in results]


async def break_mid_run(
    app: ModuleType,
    target: LocalTopology,
    breaking: Callable[[], Awaitable[None]],
    workers: list[Worker],
    tmp_path: Path,
) -> Worker:
    """Send tasks, start a worker, run ``breaking`` a third of the way in; every
    task must come back with its right result. Return the worker."""
    tasks = [await app.record.kiq(n, pause=0.02) for n in range(TASKS)]
    worker = start_worker(workers, app, target, tmp_path)
    await wait_for_executions(app, TASKS // 3, worker)
    await breaking()
    assert await all_results(tasks, worker) == [2 * n for n in range(TASKS)]
    return worker


@pytest.fixture(params=["single", "cluster"])
def durable_topology(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[LocalTopology]:
    """A durable single node, or a durable cluster of three primaries."""
    if request.param == "single":
        target = DurableRedis(tmp_path / "redis").topology
    else:
        target = local_redis.start_cluster(tmp_path / "cluster", extra=DURABLE)
    yield target
    target.stop()


def wait_until_whole(target: LocalTopology) -> None:
    """Wait until every node of a cluster says the cluster is ok (a no-op else)."""
    deadline = time.monotonic() + 30
    for node in target.processes if target.kind == "cluster" else []:
        with node.client() as connection:
            while connection.cluster("info").get("cluster_state") != "ok":
                assert time.monotonic() < deadline, "the cluster did not heal"
                time.sleep(0.1)


async def test_a_short_restart_loses_no_task_and_reruns_none(
    durable_topology: LocalTopology,
    family: str,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
    workers: list[Worker],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("TRL_LEASE", "30")  # far longer than the outage
    app = import_app(durable_topology, unique, family, monkeypatch)
    await app.broker.startup()
    # The server of the queue (on a cluster: its primary) crashes and comes back.
    index = 0
    if durable_topology.kind == "cluster":
        port = serving_port(durable_topology, "{" + unique + "}")
        assert port is not None
        index = [node.port for node in durable_topology.processes].index(port)

    async def crash() -> None:
        victim = durable_topology.processes[index]
        durable_topology.processes[index] = await crash_and_restart(victim, 2.0)
        # The test's own result reads are not the worker's: let a cluster that
        # marked the node as failed say it is whole again before they go on.
        await asyncio.to_thread(wait_until_whole, durable_topology)

    try:
        worker = await break_mid_run(app, durable_topology, crash, workers, tmp_path)
    finally:
        await app.broker.shutdown()
        forget_app()
    ran = Counter(await executions(app))
    assert sorted(ran) == list(range(TASKS))
    assert [n for n, times in ran.items() if times > 1] == [], worker.output()
    assert worker.process.poll() is None, worker.output()  # reconnected by itself


async def test_script_flush_mid_run_loses_no_task(
    app: ModuleType,
    durable: DurableRedis,
    workers: list[Worker],
    tmp_path: Path,
) -> None:
    async def flush() -> None:
        with durable.process.client() as admin:
            for _ in range(5):
                admin.script_flush()
                await asyncio.sleep(0.1)

    await break_mid_run(app, durable.topology, flush, workers, tmp_path)
    assert sorted(set(await executions(app))) == list(range(TASKS))


async def test_poison_among_good_tasks_is_dead_lettered_and_the_rest_all_run(
    app: ModuleType,
    durable: DurableRedis,
    workers: list[Worker],
    tmp_path: Path,
) -> None:
    tasks = []
    for n in range(60):
        tasks.append(await app.record.kiq(n))
        if n % 20 == 0:
            await app.broker.kick(
                BrokerMessage(
                    task_id=f"junk-{n}", task_name="record", message=b"\xff{", labels={}
                )
            )
            await app.broker.kick(
                app.broker.formatter.dumps(
                    TaskiqMessage(
                        task_id=f"stray-{n}",
                        task_name="no-such-task",
                        labels={},
                        args=[n],
                        kwargs={},
                    )
                )
            )
    worker = start_worker(workers, app, durable.topology, tmp_path)
    assert await all_results(tasks, worker) == [2 * n for n in range(60)]
    deadline = time.monotonic() + 30
    while await app.broker.count_dead() < 6:
        assert time.monotonic() < deadline, worker.output()
        await asyncio.sleep(0.1)
    reasons = sorted(
        letter.reason.split(":")[0] for letter in await app.broker.list_dead()
    )
    assert reasons == ["undecodable payload"] * 3 + ["unknown task 'no-such-task'"] * 3
    assert worker.process.poll() is None, worker.output()


async def test_a_result_stored_during_an_outage_is_written_when_redis_returns(
    durable: DurableRedis, unique: str
) -> None:
    backend: RedisAsyncResultBackend[str] = RedisAsyncResultBackend(
        durable.topology.url
    )
    await backend.startup()
    try:
        durable.process.kill()
        result = TaskiqResult(is_err=False, return_value="kept", execution_time=0.1)
        storing = asyncio.ensure_future(backend.set_result(unique, result))
        await asyncio.sleep(6)  # longer than redis-py's own retries last
        assert not storing.done()
        await durable.crash_and_restart(down=0)
        await asyncio.wait_for(storing, 40)
        assert (await backend.get_result(unique)).return_value == "kept"
    finally:
        await backend.shutdown()


async def test_under_maxmemory_kicks_fail_clearly_and_queued_tasks_survive(
    tmp_path: Path, family: str, unique: str
) -> None:
    server = local_redis.start_server(tmp_path, "--maxmemory-policy", "noeviction")
    with server.client() as admin:
        used = int(admin.info("memory")["used_memory"])
        admin.config_set("maxmemory", used + 1024 * 1024)
    url = f"redis://127.0.0.1:{server.port}"
    broker: AsyncBroker = (
        ListQueueBroker(url, queue_name=unique)
        if family == "list"
        else RedisStreamBroker(url, queue_name=unique)
    )
    await broker.startup()
    listener = Listener(broker)
    sent: list[int] = []

    async def fill() -> None:
        for number in range(10_000):
            await send(broker, f"{number}:{'x' * 10_000}")
            sent.append(number)

    try:
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            await fill()
        assert len(sent) > 10
        received = []
        for _ in sent:
            message = await listener.next()
            received.append(int(listener.value(message).split(":")[0]))
            await message.ack()
        assert sorted(received) == sent  # every queued task, intact, once
        await send(broker, "room again")  # acks gave the memory back
        assert listener.value(await listener.next()) == "room again"
    finally:
        await listener.close()
        await broker.shutdown()
        server.stop()


def settle_writes(primary: Any) -> None:
    """Hold writes on ``primary`` and wait until its replica has all it wrote.

    What a primary acknowledged but had not yet passed on is Redis's to lose (see
    Guarantees in the README), so without this a failover test could fail on a
    result lost by asynchronous replication. Held writes never run there: their
    clients retry on the new primary. (``WAIT`` would
    itself be held by the pause, and a sentinel fails a held primary over by itself
    after ``down-after-milliseconds``, so this asks the replica, which knows at once.)
    """
    replica = primary.info("replication")["slave0"]
    primary.execute_command("CLIENT", "PAUSE", 30_000, "WRITE")
    written = int(primary.info("replication")["master_repl_offset"])
    deadline = time.monotonic() + 5
    with redis.Redis(replica["ip"], int(replica["port"]), socket_timeout=5) as copy:
        while int(copy.info("replication")["slave_repl_offset"]) < written:
            assert time.monotonic() < deadline, "the replica did not catch up"
            time.sleep(0.01)


def every_minute(schedule_id: str) -> ScheduledTask:
    return ScheduledTask(
        task_name="record",
        labels={},
        args=[1],
        kwargs={},
        schedule_id=schedule_id,
        cron="* * * * *",
    )


async def fail_over_mid_run(
    app: ModuleType,
    target: LocalTopology,
    primary: RedisProcess,
    fail_over: Callable[[], Awaitable[None]],
    workers: list[Worker],
    tmp_path: Path,
) -> None:
    """Send tasks and a schedule, start a worker, and have ``fail_over`` replace
    ``primary`` a third of the way in: every task must come back right and the
    broker, result backend and schedule source carry on on the new primary."""
    await app.broker.startup()
    try:
        await app.source.add_schedule(every_minute("before"))

        async def settle_and_fail_over() -> None:
            with primary.client() as connection:
                settle_writes(connection)
            await fail_over()

        worker = await break_mid_run(
            app, target, settle_and_fail_over, workers, tmp_path
        )
        assert worker.process.poll() is None, worker.output()
        await app.source.add_schedule(every_minute("after"))
        listed = sorted(item.schedule_id for item in await app.source.get_schedules())
        assert listed == ["after", "before"]
        await app.source.delete_schedule("before")
        remaining = [item.schedule_id for item in await app.source.get_schedules()]
        assert remaining == ["after"]
    finally:
        await app.source.shutdown()
        await app.broker.shutdown()
        forget_app()


@pytest.fixture
def own_sentinel(tmp_path: Path) -> Iterator[LocalTopology]:
    """A primary, its replica and a sentinel, for this test alone."""
    target = local_redis.start_sentinel(tmp_path / "sentinel")
    yield target
    target.stop()


def primary_port(target: LocalTopology) -> int:
    watcher = target.processes[-1]
    with watcher.client() as connection:
        address = connection.execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", target.master_name
        )
    return int(address[1])


async def test_a_sentinel_failover_mid_run_moves_all_work_to_the_new_primary(
    own_sentinel: LocalTopology,
    family: str,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
    workers: list[Worker],
    tmp_path: Path,
) -> None:
    app = import_app(own_sentinel, unique, family, monkeypatch)
    primary = own_sentinel.processes[0]

    async def fail_over() -> None:
        with own_sentinel.processes[-1].client() as watcher:
            watcher.execute_command("SENTINEL", "FAILOVER", own_sentinel.master_name)
        deadline = time.monotonic() + 30
        while primary_port(own_sentinel) == primary.port:
            assert time.monotonic() < deadline, "the sentinel did not fail over"
            await asyncio.sleep(0.1)
        # What the sentinel would tell the old primary, but its own link is held
        # too: follow the new primary, then let the held writers meet READONLY
        # and retry there.
        with primary.client() as old_primary:
            old_primary.replicaof("127.0.0.1", primary_port(own_sentinel))
            old_primary.execute_command("CLIENT", "UNPAUSE")

    await fail_over_mid_run(app, own_sentinel, primary, fail_over, workers, tmp_path)


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[LocalTopology]:
    """Three primaries with a replica each, for this test alone."""
    target = local_redis.start_cluster(tmp_path / "cluster", replicas=1)
    yield target
    target.stop()


def serving_port(target: LocalTopology, key: str) -> int | None:
    """Return the port of the primary that serves ``key``, as a live node sees it."""
    for node in target.processes:
        if node.popen.poll() is not None:
            continue
        with node.client() as connection:
            if connection.cluster("info").get("cluster_state") != "ok":
                return None
            slot = connection.execute_command("CLUSTER", "KEYSLOT", key)
            for start, end, primary, *_ in connection.execute_command(
                "CLUSTER", "SLOTS"
            ):
                if start <= slot <= end:
                    return int(primary[1])
    return None


async def test_a_cluster_primary_killed_mid_run_hands_work_to_its_replica(
    own_cluster: LocalTopology,
    family: str,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
    workers: list[Worker],
    tmp_path: Path,
) -> None:
    app = import_app(own_cluster, unique, family, monkeypatch)
    queue_slot_key = "{" + unique + "}"
    port = serving_port(own_cluster, queue_slot_key)
    (victim,) = [node for node in own_cluster.processes if node.port == port]

    async def fail_over() -> None:
        victim.kill()  # the queue's own primary
        deadline = time.monotonic() + 60
        while serving_port(own_cluster, queue_slot_key) in (None, port):
            assert time.monotonic() < deadline, "the replica was not promoted"
            await asyncio.sleep(0.2)

    await fail_over_mid_run(app, own_cluster, victim, fail_over, workers, tmp_path)

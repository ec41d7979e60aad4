"""Faults in the middle of real work, through the real `taskiq worker` command.

Each scenario starts its own Redis (persisted to an append-only file fsynced on every
write, as a deployment that cannot lose tasks runs it), sends tasks, breaks something
while a worker is busy with them, and checks what a user would: every task has its
right result and every task ran.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from taskiq import BrokerMessage, TaskiqMessage, TaskiqResult

from taskiq_redis_lua import RedisAsyncResultBackend, local_redis
from taskiq_redis_lua.local_redis import LocalTopology, RedisProcess

from .worker_process import Worker, app_environment, forget_app, import_app

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
        self.process.kill()
        self.process.log.close()
        await asyncio.sleep(down)
        self.process = await asyncio.to_thread(
            local_redis.start_server,
            self.directory,
            *DURABLE,
            port=self.process.port,
        )

    def stop(self) -> None:
        self.process.stop()


@pytest.fixture(params=["list", "stream"])
def family(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


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


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


def start_worker(
    workers: list[Worker], app: ModuleType, durable: DurableRedis, tmp_path: Path
) -> Worker:
    environment = app_environment(durable.topology, app.QUEUE, app.FAMILY)
    log = tmp_path / f"worker-{len(workers)}.log"
    worker = Worker(
        "tests.apps.worker_app:broker", environment, log, "--max-async-tasks", "20"
    )
    workers.append(worker)
    return worker


async def executions(app: ModuleType) -> list[int]:
    raw = await app.results.endpoint.client.lrange(app.EXECUTIONS, 0, -1)
    return [int(item) for item in raw]


async def wait_for_executions(app: ModuleType, count: int, worker: Worker) -> None:
    deadline = time.monotonic() + 60
    while len(await executions(app)) < count:
        assert time.monotonic() < deadline, worker.output()
        await asyncio.sleep(0.05)


async def all_results(tasks: list[Any], worker: Worker) -> list[Any]:
    try:
        return [(await task.wait_result(timeout=90)).return_value for task in tasks]
    except Exception as error:
        raise AssertionError(worker.output()) from error


async def test_a_redis_crash_and_restart_mid_run_loses_no_task(
    app: ModuleType,
    durable: DurableRedis,
    workers: list[Worker],
    tmp_path: Path,
) -> None:
    tasks = [await app.record.kiq(n, pause=0.02) for n in range(TASKS)]
    worker = start_worker(workers, app, durable, tmp_path)
    await wait_for_executions(app, TASKS // 3, worker)
    await durable.crash_and_restart(down=1.0)
    assert await all_results(tasks, worker) == [2 * n for n in range(TASKS)]
    assert sorted(set(await executions(app))) == list(range(TASKS))
    assert worker.process.poll() is None, worker.output()  # reconnected by itself


async def test_script_flush_mid_run_loses_no_task(
    app: ModuleType,
    durable: DurableRedis,
    workers: list[Worker],
    tmp_path: Path,
) -> None:
    tasks = [await app.record.kiq(n, pause=0.02) for n in range(TASKS)]
    worker = start_worker(workers, app, durable, tmp_path)
    await wait_for_executions(app, TASKS // 3, worker)
    with durable.process.client() as admin:
        for _ in range(5):
            admin.script_flush()
            await asyncio.sleep(0.1)
    assert await all_results(tasks, worker) == [2 * n for n in range(TASKS)]
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
    worker = start_worker(workers, app, durable, tmp_path)
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

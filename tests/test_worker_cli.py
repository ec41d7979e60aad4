"""Both queue families end to end, through the real `taskiq worker` command."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType

import pytest

from taskiq_redis_lua.local_redis import LocalTopology

from .worker_process import (
    Worker,
    app_environment,
    executions,
    forget_app,
    import_app,
    start_worker,
)

APP = "tests.apps.worker_app:broker"


@pytest.fixture(params=["list", "stream"])
def family(request: pytest.FixtureRequest) -> str:
    """Each queue family in turn."""
    name: str = request.param
    return name


@pytest.fixture
def app(
    topology: LocalTopology,
    unique: str,
    family: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[ModuleType]:
    """The test app, imported in this process too, to send tasks and read results."""
    yield import_app(topology, unique, family, monkeypatch)
    forget_app()


@pytest.fixture
async def client_app(app: ModuleType) -> AsyncIterator[ModuleType]:
    await app.broker.startup()
    yield app
    await app.broker.shutdown()


async def test_a_worker_killed_mid_run_loses_nothing(
    client_app: ModuleType,
    workers: list[Worker],
    topology: LocalTopology,
    tmp_path: Path,
) -> None:
    app = client_app
    tasks = [await app.record.kiq(number, pause=0.05) for number in range(200)]
    first = start_worker(workers, app, topology, tmp_path)
    deadline = time.monotonic() + 60
    while len(await executions(app)) < 60:
        assert time.monotonic() < deadline, first.output()
        await asyncio.sleep(0.05)
    first.kill()
    done_by_first = len(await executions(app))
    assert done_by_first < 200
    start_worker(workers, app, topology, tmp_path)
    results = [await task.wait_result(timeout=60) for task in tasks]
    assert [result.return_value for result in results] == [2 * n for n in range(200)]
    ran = await executions(app)
    assert sorted(set(ran)) == list(range(200))  # every task ran, some maybe twice


async def test_an_idle_worker_runs_a_long_task_and_stops_promptly_on_ctrl_c(
    client_app: ModuleType,
    workers: list[Worker],
    topology: LocalTopology,
    tmp_path: Path,
) -> None:
    app = client_app
    worker = start_worker(workers, app, topology, tmp_path)
    await asyncio.sleep(10)  # idle longer than redis-py 8's 5 s socket timeout
    task = await app.record.kiq(1, pause=8)
    result = await task.wait_result(timeout=20)
    assert result.return_value == 2, worker.output()
    assert await executions(app) == [1]  # ran once: its lease was renewed
    await asyncio.sleep(1)
    took = worker.interrupt()
    assert took < 10, worker.output()  # taskiq-redis's idle worker takes over 15 s
    assert worker.process.returncode == 0, worker.output()


async def test_a_schedule_added_at_runtime_fires_through_the_real_scheduler(
    client_app: ModuleType,
    workers: list[Worker],
    topology: LocalTopology,
    family: str,
    tmp_path: Path,
) -> None:
    if family != "list":
        pytest.skip("the scheduler does not depend on the queue family")
    app = client_app
    await app.source.startup()
    start_worker(workers, app, topology, tmp_path)
    environment = app_environment(topology, app.QUEUE, app.FAMILY)
    workers.append(
        Worker(
            "tests.apps.worker_app:scheduler",
            environment,
            tmp_path / "scheduler.log",
            "--update-interval",
            "1",
            command=("scheduler",),
        )
    )
    deadline = time.monotonic() + 20
    while "Starting scheduler" not in workers[-1].output():  # running, then we add
        assert time.monotonic() < deadline, workers[-1].output()
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # its first read of the schedules is done
    due = datetime.now(timezone.utc) + timedelta(seconds=2)
    task_id = f"{app.QUEUE}-scheduled"
    await (
        app.record.kicker().with_task_id(task_id).schedule_by_time(app.source, due, 21)
    )
    deadline = time.monotonic() + 20
    while not await app.results.is_result_ready(task_id):
        assert time.monotonic() < deadline, workers[-1].output()
        await asyncio.sleep(0.2)
    assert (await app.results.get_result(task_id)).return_value == 42
    assert await app.source.get_schedules() == []  # a sent time schedule is gone
    await app.source.shutdown()

"""Network faults between a real `taskiq worker` and Redis.

The worker reaches Redis through a loopback proxy of the test's own
(``faulty_proxy.py``) that adds latency, cuts replies in the middle with a TCP reset,
or swallows everything for 10 s. The test's own clients talk to Redis directly. Every
task must come back with its result; the worker must not crash and must say what
happened in a few clear lines, not one per attempt.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import ModuleType

import pytest

from taskiq_redis_lua import local_redis
from taskiq_redis_lua.local_redis import LocalTopology

from .faulty_proxy import FaultyProxy
from .worker_process import (
    Worker,
    executions,
    forget_app,
    import_app,
    start_worker,
    wait_for_executions,
)

TASKS = 100
SOCKET_TIMEOUT = 3.0


@pytest.fixture
async def proxy(tmp_path: Path) -> AsyncIterator[FaultyProxy]:
    server = local_redis.start_server(tmp_path / "redis")
    started = FaultyProxy(server.port)
    await started.start()
    yield started
    await started.stop()
    server.stop()


@pytest.fixture
async def app(
    proxy: FaultyProxy, family: str, unique: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ModuleType]:
    """The test app, its own clients straight to Redis; the worker's via the proxy."""
    monkeypatch.setenv("TRL_LEASE", "30")
    monkeypatch.setenv("TRL_SOCKET_TIMEOUT", str(SOCKET_TIMEOUT))
    direct = LocalTopology(kind="single", url=proxy.upstream_url)
    module = import_app(direct, unique, family, monkeypatch)
    await module.broker.startup()
    yield module
    await module.broker.shutdown()
    forget_app()


async def run_through(
    app: ModuleType,
    proxy: FaultyProxy,
    fault: Callable[[], Awaitable[None]],
    workers: list[Worker],
    tmp_path: Path,
) -> Worker:
    """Send tasks, start a worker behind the proxy, cause ``fault`` a fifth of the
    way in; every task must come back with its right result."""
    tasks = [await app.record.kiq(n, pause=0.01) for n in range(TASKS)]
    worker = start_worker(
        workers, app, LocalTopology(kind="single", url=proxy.url), tmp_path
    )
    await wait_for_executions(app, TASKS // 5, worker)
    await fault()
    for number, task in enumerate(tasks):
        result = await task.wait_result(timeout=90)
        assert result.return_value == 2 * number, worker.output()
    assert set(await executions(app)) == set(range(TASKS))
    assert worker.process.poll() is None, worker.output()
    assert "Traceback" not in worker.output(), worker.output()
    return worker


def outage_lines(worker: Worker) -> list[str]:
    return re.findall(r".*Redis is unreachable.*", worker.output())


async def test_a_slow_network_delays_work_but_loses_nothing(
    app: ModuleType, proxy: FaultyProxy, workers: list[Worker], tmp_path: Path
) -> None:
    async def slow_down() -> None:
        proxy.latency = 0.2  # each way, on every chunk

    worker = await run_through(app, proxy, slow_down, workers, tmp_path)
    assert outage_lines(worker) == []  # slow is not down


async def test_replies_cut_off_midway_lose_nothing(
    app: ModuleType, proxy: FaultyProxy, workers: list[Worker], tmp_path: Path
) -> None:
    async def cut_replies() -> None:
        proxy.resets_wanted = 5
        deadline = time.monotonic() + 30
        while proxy.resets_done < 5:
            assert time.monotonic() < deadline, "the worker sent too little"
            await asyncio.sleep(0.05)

    worker = await run_through(app, proxy, cut_replies, workers, tmp_path)
    assert len(outage_lines(worker)) <= 5 * 3  # a line per cut per loop at most


async def test_a_black_hole_is_noticed_and_left_within_the_socket_timeout(
    app: ModuleType, proxy: FaultyProxy, workers: list[Worker], tmp_path: Path
) -> None:
    recovered_after: list[float] = []

    async def black_hole() -> None:
        proxy.black_hole(on=True)
        await asyncio.sleep(10)
        done = len(await executions(app))
        proxy.black_hole(on=False)
        ended = time.monotonic()
        while len(await executions(app)) == done:
            assert time.monotonic() - ended < 60, "the worker did not come back"
            await asyncio.sleep(0.05)
        recovered_after.append(time.monotonic() - ended)

    worker = await run_through(app, proxy, black_hole, workers, tmp_path)
    # A call sent into the hole is given up after the socket timeout; the worker
    # then backs off (at most 5 s) and reconnects.
    assert recovered_after[0] < SOCKET_TIMEOUT + 5 + 1, worker.output()
    # A line per loop that met the hole (none if only the tasks' own writes did,
    # which redis-py retries quietly), not one per attempt.
    lines = outage_lines(worker)
    assert len(lines) <= 6, lines

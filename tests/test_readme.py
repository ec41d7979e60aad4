"""The README's redis-cli commands run, as written, against a real Redis."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from taskiq import ScheduledTask, TaskiqResult

from taskiq_redis_lua import (
    ListQueueBroker,
    ListRedisScheduleSource,
    RedisAsyncResultBackend,
    RedisStreamBroker,
    local_redis,
    scripts,
)

from .listening import Listener, send

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    """Every `redis-cli ...` line of the README's bash blocks."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [
        line.strip()
        for block in blocks
        for line in block.splitlines()
        if line.strip().startswith("redis-cli ")
    ]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[local_redis.RedisProcess]:
    process = local_redis.start_server(tmp_path_factory.mktemp("readme"))
    yield process
    process.stop()


@pytest.fixture
async def populated(server: local_redis.RedisProcess) -> AsyncIterator[str]:
    """The queues, stream, results and schedules the README talks about."""
    url = f"redis://127.0.0.1:{server.port}"
    queue = ListQueueBroker(url, queue_name="emails")
    await send(queue, "hello")
    stream = RedisStreamBroker(url, queue_name="events", consumer_group_name="billing")
    await stream.startup()
    await send(stream, "event")
    reader = Listener(stream)
    await reader.next()
    results: RedisAsyncResultBackend[int] = RedisAsyncResultBackend(
        url, prefix_str="results"
    )
    await results.set_result(
        "abc", TaskiqResult(is_err=False, return_value=1, execution_time=0.1)
    )
    source = ListRedisScheduleSource(url)
    await source.add_schedule(
        ScheduledTask(task_name="echo", labels={}, args=[], kwargs={}, cron="0 * * * *")
    )
    await scripts.load(queue.endpoint.client, list(scripts.catalog()))
    yield url
    await reader.close()
    for item in (queue, stream, results, source):
        await item.shutdown()


def test_the_readme_shows_redis_cli_commands() -> None:
    assert len(readme_commands()) >= 20


@pytest.mark.parametrize("command", readme_commands())
async def test_readme_redis_cli_command_runs(populated: str, command: str) -> None:
    cli = local_redis.server().cli  # redis-cli, or valkey-cli with Valkey
    line = command.replace("redis-cli ", f"{cli} -u {populated} ", 1)
    done = await asyncio.to_thread(
        subprocess.run,
        ["bash", "-c", line],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    errors = [
        out for out in done.stdout.splitlines()
        if re.match(r"^(\(error\)|ERR|NOSCRIPT|WRONGTYPE|NOGROUP)", out)
    ]  # fmt: skip
    assert not errors, done.stdout


def test_the_readme_fixture_for_testing_an_app_runs_as_written(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    [example] = [block for block in blocks if "def redis_cluster(" in block]
    test_file = tmp_path / "test_app.py"
    test_file.write_text(
        example
        + "\n\nasync def test_kicks_reach_the_cluster(broker):\n"
        + "    await broker.kick(__import__('taskiq').BrokerMessage(\n"
        + "        task_id='1', task_name='t', message=b'm', labels={}))\n"
        + "    [stats] = await broker.stats()\n"
        + "    assert stats.ready == 1\n"
    )
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            *("-o", "asyncio_mode=auto", "-p", "no:xdist", str(test_file)),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout

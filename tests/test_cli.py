"""`taskiq redis ...` as a user runs it, against real Redis."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from taskiq import ScheduledTask

from taskiq_redis_lua import ListQueueBroker, ListRedisScheduleSource, scripts
from taskiq_redis_lua.cli import next_fire
from taskiq_redis_lua.local_redis import LocalTopology

from .building import STREAM
from .listening import send
from .queue_scripts import Queue
from .worker_process import ROOT, TASKIQ, app_environment

APP = "tests.apps.worker_app"


def taskiq_redis(
    *words: str, environment: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TASKIQ), "redis", *words],
        cwd=ROOT,
        env=environment,
        input=stdin,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def app_env(single_redis: LocalTopology, unique: str) -> dict[str, str]:
    """Environment of the test app, pointed at a fresh list queue."""
    return app_environment(single_redis, unique, "list")


@pytest.fixture
async def queue(
    single_redis: LocalTopology, unique: str
) -> AsyncIterator[ListQueueBroker]:
    broker = ListQueueBroker(single_redis.url, queue_name=unique)
    yield broker
    await broker.shutdown()


def test_the_plugin_shows_in_taskiq_help() -> None:
    done = subprocess.run(
        [str(TASKIQ), "--help"], capture_output=True, text=True, check=True
    )
    assert "redis" in done.stdout
    assert "Inspect taskiq-redis-lua" in done.stdout


async def test_stats_of_an_app_broker_as_json(
    app_env: dict[str, str], queue: ListQueueBroker
) -> None:
    for value in range(3):
        await send(queue, value)
    await send(queue, "later", delay=60)
    done = taskiq_redis("stats", f"{APP}:broker", "--json", environment=app_env)
    assert done.returncode == 0, done.stderr
    (snapshot,) = json.loads(done.stdout)
    assert snapshot["queue"] == queue.queue_name
    assert (snapshot["ready"], snapshot["delayed"], snapshot["in_flight"]) == (3, 1, 0)
    assert 50 < snapshot["next_delayed_due"] <= 60


async def test_stats_without_an_app_prints_a_table(
    single_redis: LocalTopology, queue: ListQueueBroker, unique: str
) -> None:
    await send(queue, 1)
    done = taskiq_redis("stats", "--url", single_redis.url, "--queue", unique)
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.splitlines()
    assert header.split()[:4] == ["queue", "kind", "ready", "delayed"]
    assert row.split()[:3] == [unique, "list", "1"]


async def test_stats_of_a_stream(single_redis: LocalTopology, unique: str) -> None:
    broker = STREAM.build(single_redis, queue_name=unique, consumer_group_name="g")
    await broker.startup()
    for value in range(2):
        await send(broker, value)
    await broker.shutdown()
    done = taskiq_redis(
        "stats", "--url", single_redis.url, "--queue", unique, "--kind", "stream",
        "--group", "g", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (snapshot,) = json.loads(done.stdout)
    assert (snapshot["length"], snapshot["lag"], snapshot["pending"]) == (2, 2, 0)


async def test_stats_watch_refreshes_until_interrupted(
    single_redis: LocalTopology, queue: ListQueueBroker, unique: str
) -> None:
    await send(queue, 1)
    out, err, status = await asyncio.to_thread(
        _watch_for_two_seconds, single_redis, unique
    )
    assert status == 130, err
    assert out.count(f"{unique}  list") >= 3  # a fresh table every 0.2 s
    assert "Traceback" not in err


def _watch_for_two_seconds(target: LocalTopology, unique: str) -> tuple[str, str, int]:
    process = subprocess.Popen(
        [str(TASKIQ), "redis", "stats", "--url", target.url, "--queue", unique,
         "--watch", "0.2"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(2.0)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=10)
    return out, err, process.returncode


async def test_stats_refuses_an_unknown_queue(single_redis: LocalTopology) -> None:
    done = taskiq_redis("stats", "--url", single_redis.url, "--queue", "no-such-queue")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: no such queue in Redis: no-such-queue"


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["stats", "nowhere.module:broker"], "cannot import 'nowhere.module:broker'"),
        (["stats", "tests.apps.worker_app:nothing"], "cannot import"),
        (["stats", "tests.apps.worker_app:scheduler"], "is not a broker"),
        (["stats"], "give a module:broker path, or --url"),
        (["stats", "--url", "redis://127.0.0.1:1", "--queue", "x"], "Redis"),
        (["stats", "--url", "localhost:6379"], "must be a Redis URL"),
        (["scripts", "show", "queue/nope"], "no Lua script 'queue/nope'"),
        (["scripts", "load"], "needs --url"),
    ],
)
def test_bad_input_gets_one_line_and_a_non_zero_exit(
    words: list[str], message: str, app_env: dict[str, str]
) -> None:
    done = taskiq_redis(*words, environment=app_env)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


async def test_dead_lists_then_requeues_and_purges(
    single_redis: LocalTopology, queue: ListQueueBroker, unique: str, open_endpoint: Any
) -> None:
    raw = Queue(open_endpoint(single_redis), unique)
    for value in range(3):
        await send(queue, value)
    await raw.pop()
    inflight: Any = await raw.client.zrange(raw.k.inflight, 0, -1)
    for message_id in inflight:
        await raw.bury(message_id, 1, "worker crashed")
    target = ["--url", single_redis.url, "--queue", unique]
    listed = taskiq_redis("dead", *target, "--json")
    rows = json.loads(listed.stdout)
    assert [row["task"] for row in rows] == ["echo"] * 3
    assert {row["reason"] for row in rows} == {"worker crashed"}
    refused = taskiq_redis("dead", *target, "--purge")
    assert refused.returncode == 2
    assert "--yes" in refused.stderr
    requeued = taskiq_redis("dead", *target, "--requeue", rows[0]["id"], "--yes")
    assert "requeued 1 dead letter(s)" in requeued.stdout
    assert await raw.client.zcard(raw.k.ready) == 1
    purged = taskiq_redis("dead", *target, "--purge", "--yes")
    assert "purged 2 dead letter(s)" in purged.stdout
    assert await queue.count_dead() == 0


def test_scripts_lists_every_script_with_its_sha() -> None:
    done = taskiq_redis("scripts")
    assert done.returncode == 0
    for item in scripts.catalog():
        line = next(
            row for row in done.stdout.splitlines() if row.startswith(item.name)
        )
        assert item.sha in line
        assert f"lua/{item.name}.lua" in line


def test_scripts_show_prints_the_file() -> None:
    done = taskiq_redis("scripts", "show", "queue/pop")
    assert done.stdout == scripts.script("queue/pop").body.decode()


async def test_scripts_load_makes_evalsha_work_on_every_primary(
    cluster_redis: LocalTopology, open_endpoint: Any
) -> None:
    client = open_endpoint(cluster_redis).client
    await client.script_flush()
    done = taskiq_redis("scripts", "load", "--url", cluster_redis.url, "--cluster")
    assert "on every primary" in done.stdout, done.stderr
    shas = [item.sha for item in scripts.catalog()]
    for node in client.get_primaries():
        exists = await client.execute_command("SCRIPT EXISTS", *shas, target_nodes=node)
        assert list(exists) == [1] * len(shas)


async def test_schedules_lists_next_fire_times_and_deletes(
    single_redis: LocalTopology, unique: str
) -> None:
    source = ListRedisScheduleSource(single_redis.url, prefix=unique)
    await source.startup()
    later = datetime.now(timezone.utc) + timedelta(days=2)
    nightly = ScheduledTask(
        task_name="echo", labels={}, args=[], kwargs={}, cron="0 3 * * *"
    )
    once = ScheduledTask(task_name="echo", labels={}, args=[], kwargs={}, time=later)
    for item in (nightly, once):
        await source.add_schedule(item)
    target = ["--url", single_redis.url, "--prefix", unique]
    rows = {
        row["id"]: row
        for row in json.loads(taskiq_redis("schedules", *target, "--json").stdout)
    }
    assert rows[once.schedule_id]["next"] == later.isoformat(timespec="seconds")
    assert rows[nightly.schedule_id]["next"].endswith("T03:00+00:00")
    done = taskiq_redis("schedules", *target, "--delete", once.schedule_id)
    assert done.returncode == 0
    assert [s.schedule_id for s in await source.all_schedules()] == [
        nightly.schedule_id
    ]
    await source.shutdown()


def test_next_fire_follows_cron_offsets() -> None:
    now = datetime(2026, 11, 25, 10, 30, tzinfo=timezone.utc)
    paris = ScheduledTask(
        task_name="t",
        labels={},
        args=[],
        kwargs={},
        cron="0 12 * * *",
        cron_offset="Europe/Paris",
    )
    assert next_fire(paris, now) == "2026-11-25T11:00+00:00"  # noon in Paris, UTC+1


def test_python_dash_m_is_the_same_command() -> None:
    done = subprocess.run(
        [str(TASKIQ.parent / "python"), "-m", "taskiq_redis_lua", "scripts"],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )  # fmt: skip
    assert "queue/pop" in done.stdout

"""Prometheus metrics: `taskiq redis exporter` as a real process, scraped over HTTP,
and the collector registered in a process of one's own."""

from __future__ import annotations

import asyncio
import subprocess
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from taskiq import ScheduledTask

from taskiq_redis_lua import local_redis
from taskiq_redis_lua import topology as topo
from taskiq_redis_lua.local_redis import LocalTopology
from taskiq_redis_lua.metrics import QueueCollector

from .building import LIST_QUEUE, SCHEDULE_SOURCE, STREAM
from .listening import send
from .queue_scripts import Queue
from .stream_scripts import Stream
from .worker_process import APP_MODULE, ROOT, TASKIQ, app_environment

Samples = dict[tuple[str, str], float]
#: What each family's arrangement leaves, as the metrics must report it.
EXPECTED = {
    "taskiq_redis_queue_ready": 1,
    "taskiq_redis_queue_delayed": 1,
    "taskiq_redis_queue_in_flight": 1,
    "taskiq_redis_queue_dead": 1,
    "taskiq_redis_queue_acked_total": 1,
    "taskiq_redis_queue_redelivered_total": 1,
    "taskiq_redis_queue_dead_lettered_total": 1,
}


async def arrange_list(
    target: LocalTopology, endpoint: topo.Endpoint, name: str
) -> int:
    """Kick 4 now and 1 delayed; ack one, let one lease expire, bury one.

    Return how many were kicked."""
    broker = LIST_QUEUE.build(target, queue_name=name)
    for value in range(4):
        await send(broker, value)
    await send(broker, "later", delay=60)
    await broker.shutdown()
    raw = Queue(endpoint, name)
    _, taken, _ = await raw.pop(n=2)
    (first, _, _), (second, _, _) = taken
    assert await raw.ack(first, 1) == 1
    await raw.pop(n=1, lease_ms=1)  # a worker that dies
    await asyncio.sleep(0.01)
    _, again, _ = await raw.pop(n=1)  # its lease ran out: delivered again
    assert again[0][1] == 2
    assert await raw.bury(second, 1, "by hand") == 1
    return 5


async def arrange_stream(
    target: LocalTopology, endpoint: topo.Endpoint, name: str
) -> int:
    """The same on a stream (group "g"): the delayed one is not in it yet."""
    broker = STREAM.build(target, queue_name=name, consumer_group_name="g")
    await broker.startup()
    for value in range(4):
        await send(broker, value)
    await send(broker, "later", delay=60)
    await broker.shutdown()
    raw = Stream(endpoint, name)
    first, second = await raw.read("w1", count=2)
    assert await raw.ack(first) == 1
    await raw.read("w2", count=1)  # a worker that dies
    await asyncio.sleep(0.02)
    await raw.extend("w1", second)  # w1 lives: only w2's entry is taken over
    _, handed, _ = await raw.claim("w3", min_idle_ms=10)
    assert len(handed) == 1
    entries: Any = await raw.client.xrange(raw.k.stream, second, second)
    ((_, fields),) = entries
    assert await raw.bury(second, 1, "by hand", fields[b"data"].decode()) == 1
    return 4


Arrange = Callable[[LocalTopology, topo.Endpoint, str], Awaitable[int]]
ARRANGE: dict[str, Arrange] = {"list": arrange_list, "stream": arrange_stream}


def parse(text: str) -> Samples:
    """Samples by (name, queue label), as Prometheus would store them."""
    return {
        (sample.name, sample.labels.get("queue", sample.labels.get("prefix", ""))): (
            sample.value
        )
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


class Exporter:
    """`taskiq redis exporter` as a process, scraped over HTTP."""

    def __init__(
        self,
        target: LocalTopology,
        kind: str,
        queue: str,
        log: Path,
        app: str | None = None,
    ) -> None:
        self.port = local_redis.free_port()
        where = ["--url", target.url, "--queue", queue, "--kind", kind, "--group", "g"]
        if target.kind == "cluster":
            where.append("--cluster")
        if app is not None:  # the app's broker instead
            where = [app]
        self.log = log.open("wb")
        self.process = subprocess.Popen(
            [
                str(TASKIQ),
                "redis",
                "exporter",
                *where,
                "--address",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
            env=app_environment(target, queue, kind),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.log_path = log

    def scrape(self) -> str:
        deadline = time.monotonic() + 30
        while True:
            try:
                url = f"http://127.0.0.1:{self.port}/metrics"
                with urllib.request.urlopen(url, timeout=10) as reply:
                    text: str = reply.read().decode()
                    return text
            except OSError:
                assert self.process.poll() is None, self.log_path.read_text()
                assert time.monotonic() < deadline, self.log_path.read_text()
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture(params=["single", "cluster"])
def target(request: pytest.FixtureRequest) -> LocalTopology:
    found: LocalTopology = request.getfixturevalue(f"{request.param}_redis")
    return found


@pytest.fixture
def exporters(tmp_path: Path) -> Iterator[Callable[..., Exporter]]:
    started: list[Exporter] = []

    def start(
        target: LocalTopology, kind: str, queue: str, app: str | None = None
    ) -> Exporter:
        log = tmp_path / f"exporter-{len(started)}.log"
        started.append(Exporter(target, kind, queue, log, app))
        return started[-1]

    yield start
    for exporter in started:
        exporter.stop()


@pytest.mark.parametrize("kind", ["list", "stream"])
async def test_the_exporter_reports_what_the_queue_holds_and_did(
    target: LocalTopology,
    open_endpoint: Any,
    exporters: Callable[..., Exporter],
    kind: str,
    unique: str,
) -> None:
    kicked = await ARRANGE[kind](target, open_endpoint(target), unique)
    samples = parse(await asyncio.to_thread(exporters(target, kind, unique).scrape))
    got = {name: samples[(name, unique)] for name in EXPECTED}
    assert got == EXPECTED
    assert samples[("taskiq_redis_queue_kicked_total", unique)] == kicked
    assert 0 <= samples[("taskiq_redis_queue_oldest_ready_age_seconds", unique)] < 30
    if kind == "stream":
        assert samples[("taskiq_redis_queue_consumers", unique)] == 3


async def test_counters_grow_between_scrapes(
    target: LocalTopology,
    open_endpoint: Any,
    exporters: Callable[..., Exporter],
    unique: str,
) -> None:
    await arrange_list(target, open_endpoint(target), unique)
    exporter = exporters(target, "list", unique)
    before = parse(await asyncio.to_thread(exporter.scrape))
    broker = LIST_QUEUE.build(target, queue_name=unique)
    await send(broker, "one more")
    await broker.shutdown()
    after = parse(await asyncio.to_thread(exporter.scrape))
    name = "taskiq_redis_queue_kicked_total"
    assert after[(name, unique)] == before[(name, unique)] + 1
    assert after[("taskiq_redis_queue_ready", unique)] == 2


async def test_the_age_of_the_oldest_waiting_message_grows_while_it_waits(
    single_redis: LocalTopology, unique: str
) -> None:
    broker = LIST_QUEUE.build(single_redis, queue_name=unique)
    await send(broker, "waits")
    collector = QueueCollector(broker)
    registry = CollectorRegistry()
    registry.register(collector)
    try:
        first = parse(generate_latest(registry).decode())
        await asyncio.sleep(2.1)
        later = parse((await asyncio.to_thread(generate_latest, registry)).decode())
    finally:
        collector.close()
        await broker.shutdown()
    name = ("taskiq_redis_queue_oldest_ready_age_seconds", unique)
    assert later[name] - first[name] >= 1  # kick times are kept to the second


async def test_the_collector_in_ones_own_process_reports_schedules_too(
    target: LocalTopology, unique: str
) -> None:
    source = SCHEDULE_SOURCE.build(target, prefix=unique)
    due = datetime.now(timezone.utc) + timedelta(seconds=60)
    for item in (
        ScheduledTask(
            task_name="t",
            labels={},
            args=[],
            kwargs={},
            schedule_id="c",
            cron="* * * * *",
        ),
        ScheduledTask(
            task_name="t", labels={}, args=[], kwargs={}, schedule_id="t", time=due
        ),
    ):
        await source.add_schedule(item)
    broker = STREAM.build(target, queue_name=unique, consumer_group_name="g")
    collector = QueueCollector(broker, source)
    registry = CollectorRegistry()
    registry.register(collector)
    try:
        samples = parse((await asyncio.to_thread(generate_latest, registry)).decode())
    finally:
        collector.close()
        await broker.shutdown()
        await source.shutdown()
    assert samples[("taskiq_redis_schedules", unique)] == 2
    assert 55 < samples[("taskiq_redis_schedule_next_time_due_seconds", unique)] <= 60
    assert samples[("taskiq_redis_queue_ready", unique)] == 0


def test_the_collector_refuses_what_it_cannot_watch() -> None:
    with pytest.raises(TypeError, match="QueueCollector watches"):
        QueueCollector(object())  # type: ignore[arg-type]


async def test_a_scrape_makes_one_script_call_per_queue_and_no_scan(
    tmp_path: Path, unique: str
) -> None:
    server = local_redis.start_server(tmp_path)
    url = f"redis://127.0.0.1:{server.port}"
    brokers = [
        LIST_QUEUE.build(LocalTopology(kind="single", url=url), queue_name=name)
        for name in (f"{unique}-a", f"{unique}-b")
    ]
    collector = QueueCollector(*brokers)
    registry = CollectorRegistry()
    registry.register(collector)

    def calls() -> dict[str, int]:
        with server.client() as admin:
            stats = admin.info("commandstats")
        return {name: int(value["calls"]) for name, value in stats.items()}

    try:
        await asyncio.to_thread(generate_latest, registry)  # loads the script
        before = calls()
        await asyncio.to_thread(generate_latest, registry)
        after = calls()
    finally:
        collector.close()
        for broker in brokers:
            await broker.shutdown()
        server.stop()
    grew = {name: after[name] - before.get(name, 0) for name in after}
    assert grew["cmdstat_evalsha"] == 2  # what the scripts ran counts there too
    for walk in ("cmdstat_scan", "cmdstat_keys", "cmdstat_eval", "cmdstat_xrange"):
        assert grew.get(walk, 0) == 0, walk


async def test_the_exporter_takes_an_apps_broker_as_taskiq_worker_does(
    single_redis: LocalTopology,
    open_endpoint: Any,
    exporters: Callable[..., Exporter],
    unique: str,
) -> None:
    await arrange_list(single_redis, open_endpoint(single_redis), unique)
    exporter = exporters(single_redis, "list", unique, app=f"{APP_MODULE}:broker")
    samples = parse(await asyncio.to_thread(exporter.scrape))
    assert samples[("taskiq_redis_queue_dead", unique)] == 1


async def test_a_queue_that_cannot_be_read_is_counted_and_the_rest_reported(
    single_redis: LocalTopology, unique: str
) -> None:
    nowhere = LocalTopology(
        kind="single", url=f"redis://127.0.0.1:{local_redis.free_port()}"
    )
    reachable = LIST_QUEUE.build(single_redis, queue_name=unique)
    unreachable = LIST_QUEUE.build(nowhere, queue_name=f"{unique}-gone")
    await send(reachable, "here")
    collector = QueueCollector(reachable, unreachable, timeout=2)
    registry = CollectorRegistry()
    registry.register(collector)  # describes nothing: registering reads no Redis
    try:
        samples = parse((await asyncio.to_thread(generate_latest, registry)).decode())
    finally:
        collector.close()
        await reachable.shutdown()
        await unreachable.shutdown()
    assert samples[("taskiq_redis_queue_ready", unique)] == 1
    assert ("taskiq_redis_queue_ready", f"{unique}-gone") not in samples
    assert samples[("taskiq_redis_scrape_errors", "")] == 1

"""The schedule source family, on a single node, a cluster and sentinel."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from taskiq import ScheduledTask
from taskiq.cli.scheduler.run import SchedulerLoop
from taskiq.exceptions import ScheduledTaskCancelledError
from taskiq.scheduler.scheduler import TaskiqScheduler
from taskiq.serializers import PickleSerializer

from taskiq_redis_lua import (
    ListRedisScheduleSource,
    local_redis,
)
from taskiq_redis_lua import topology as topo
from taskiq_redis_lua.keys import companion_key
from taskiq_redis_lua.local_redis import LocalTopology
from taskiq_redis_lua.schedule_source import _fire_time, _ScheduleSource

from .building import DEPRECATED_SCHEDULE_SOURCE, LIST_QUEUE, SCHEDULE_SOURCE

MakeSource = Callable[..., _ScheduleSource]


@pytest.fixture
async def make_source(
    topology: LocalTopology, unique: str
) -> AsyncIterator[MakeSource]:
    built: list[_ScheduleSource] = []

    async def make(**options: Any) -> _ScheduleSource:
        source = SCHEDULE_SOURCE.build(topology, **{"prefix": unique, **options})
        built.append(source)
        await source.startup()
        return source

    yield make  # type: ignore[misc]
    for source in built:
        await source.shutdown()


def schedule(**when: Any) -> ScheduledTask:
    return ScheduledTask(task_name="echo", labels={}, args=[1], kwargs={"x": 2}, **when)


def soon(seconds: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


async def test_cron_interval_and_time_schedules_are_stored_and_deleted(
    make_source: Any,
) -> None:
    source = await make_source()
    cron = schedule(cron="*/5 * * * *", cron_offset="Europe/Paris")
    interval = schedule(interval=timedelta(seconds=30))
    due = schedule(time=soon(-1))
    for item in (cron, interval, due):
        await source.add_schedule(item)
    got = {s.schedule_id: s for s in await source.get_schedules()}
    assert got == {
        cron.schedule_id: cron,
        interval.schedule_id: interval,
        due.schedule_id: due,
    }
    await source.delete_schedule(interval.schedule_id)
    assert {s.schedule_id for s in await source.get_schedules()} == {
        cron.schedule_id,
        due.schedule_id,
    }


async def test_a_future_time_schedule_appears_within_the_lookahead(
    make_source: Any,
) -> None:
    source = await make_source(lookahead=0.5)
    later = schedule(time=soon(1.0))
    await source.add_schedule(later)
    assert await source.get_schedules() == []
    await asyncio.sleep(0.6)
    assert [s.schedule_id for s in await source.get_schedules()] == [later.schedule_id]


async def test_a_sent_time_schedule_is_gone_but_a_recurring_one_stays(
    make_source: Any,
) -> None:
    source = await make_source()
    missed = schedule(time=soon(-3600))  # due while no scheduler ran
    cron = schedule(cron="* * * * *")
    await source.add_schedule(missed)
    await source.add_schedule(cron)
    assert {s.schedule_id for s in await source.get_schedules()} == {
        missed.schedule_id,
        cron.schedule_id,
    }
    await source.post_send(missed)
    await source.post_send(cron)
    assert [s.schedule_id for s in await source.get_schedules()] == [cron.schedule_id]


async def test_skip_past_schedules_leaves_out_time_schedules_missed_before_start(
    make_source: Any,
) -> None:
    writer = await make_source()
    missed = schedule(time=soon(-3600))
    recent = schedule(time=soon(-10))
    await writer.add_schedule(missed)
    await writer.add_schedule(recent)
    source = await make_source(skip_past_schedules=True)
    assert [s.schedule_id for s in await source.get_schedules()] == [recent.schedule_id]


async def test_schedules_are_stored_as_json_by_default(
    make_source: Any, endpoint: topo.Endpoint, unique: str
) -> None:
    source = await make_source()
    item = schedule(interval=5)
    await source.add_schedule(item)
    raw = await endpoint.client.hget(companion_key(unique, "data"), item.schedule_id)
    assert isinstance(raw, bytes)
    assert json.loads(raw)["interval"] == 5


async def test_a_pickle_serializer_works_when_passed(make_source: Any) -> None:
    source = await make_source(serializer=PickleSerializer())
    item = schedule(cron="0 * * * *")
    await source.add_schedule(item)
    assert await source.get_schedules() == [item]


async def test_an_unreadable_schedule_is_skipped_not_fatal(
    make_source: Any, endpoint: topo.Endpoint, unique: str
) -> None:
    source = await make_source()
    good = schedule(interval=5)
    await source.add_schedule(good)
    await endpoint.client.hset(companion_key(unique, "data"), "broken", b"\xff")
    await endpoint.client.zadd(companion_key(unique, "index"), {"r:broken": 0})
    await endpoint.client.zadd(companion_key(unique, "index"), {"r:no-data": 0})
    assert await source.get_schedules() == [good]


async def test_pages_cover_every_schedule(make_source: Any) -> None:
    source = await make_source(buffer_size=7)
    items = [schedule(interval=n + 1) for n in range(23)] + [
        schedule(time=soon(-n - 1)) for n in range(16)
    ]
    for item in items:
        await source.add_schedule(item)
    got = await source.get_schedules()
    assert sorted(s.schedule_id for s in got) == sorted(s.schedule_id for s in items)


async def test_deleting_between_pages_hides_no_schedule(make_source: Any) -> None:
    source = await make_source(buffer_size=2)
    items = [schedule(interval=n + 1) for n in range(7)]
    for item in items:
        await source.add_schedule(item)
    first = await source._fetch_page("[r:", "(r;")
    # Another scheduler deletes what this one has just read, between two pages.
    for member, _ in first:
        await source.delete_schedule(member.removeprefix("r:"))
    rest = await source._fetch("(" + first[-1][0], "(r;")
    seen = {member.removeprefix("r:") for member, _ in first} | {i for i, _ in rest}
    assert seen == {item.schedule_id for item in items}


async def test_a_time_schedule_due_soon_is_read_ahead(make_source: Any) -> None:
    source = await make_source(lookahead=60)
    soon_due = schedule(time=soon(30))
    later = schedule(time=soon(600))
    for item in (soon_due, later):
        await source.add_schedule(item)
    assert [s.schedule_id for s in await source.get_schedules()] == [
        soon_due.schedule_id
    ]
    assert len(await source.all_schedules()) == 2


async def test_a_schedule_with_cron_and_time_is_deleted_once_sent(
    make_source: Any,
) -> None:
    source = await make_source()
    both = schedule(cron="* * * * *", time=soon(-1))
    await source.add_schedule(both)
    await source.post_send(both)
    assert await source.all_schedules() == []


async def test_an_interval_is_claimed_for_about_one_interval(make_source: Any) -> None:
    first, second = await make_source(), await make_source()
    every_two = schedule(interval=2)
    await first.pre_send(every_two)
    with pytest.raises(ScheduledTaskCancelledError):
        await second.pre_send(every_two)  # another scheduler, out of phase
    await asyncio.sleep(1.1)
    await second.pre_send(every_two)  # the next fire time


async def test_a_cron_offset_in_seconds_moves_the_claimed_minute(
    make_source: Any,
) -> None:
    shifted = schedule(cron="0 * * * *", cron_offset=timedelta(seconds=30))
    plain = schedule(cron="0 * * * *")
    at = int(datetime(2026, 11, 25, 11, 59, 40, tzinfo=timezone.utc).timestamp() * 1000)
    later = at + 30_000  # 12:00:10
    assert _fire_time(shifted, at)[0] == _fire_time(shifted, later)[0]
    assert _fire_time(plain, at)[0] != _fire_time(plain, later)[0]


async def test_only_one_of_two_schedulers_sends_each_fire_time(
    make_source: Any,
) -> None:
    first, second = await make_source(), await make_source()
    for item in (
        schedule(cron="* * * * *"),
        schedule(interval=60),
        schedule(time=soon(-1)),
    ):
        await first.pre_send(item)
        with pytest.raises(ScheduledTaskCancelledError):
            await second.pre_send(item)


async def test_deduplicate_false_never_cancels(make_source: Any) -> None:
    source = await make_source(deduplicate=False)
    item = schedule(cron="* * * * *")
    await source.pre_send(item)
    await source.pre_send(item)


async def test_migrating_from_the_same_storage_keeps_every_schedule(
    topology: LocalTopology, unique: str
) -> None:
    with pytest.warns(DeprecationWarning, match="deprecated"):
        old = DEPRECATED_SCHEDULE_SOURCE.build(topology, prefix=unique)
    await old.startup()
    items = [schedule(cron="0 0 * * *"), schedule(time=soon(3600))]
    for item in items:
        await old.add_schedule(item)
    fresh = SCHEDULE_SOURCE.build(topology, prefix=unique).with_migrate_from(old)
    await fresh.startup()
    try:
        assert len(await fresh.all_schedules()) == 2
    finally:
        await fresh.shutdown()


async def test_schedules_migrate_from_a_deprecated_source(
    topology: LocalTopology, make_source: Any, unique: str
) -> None:
    with pytest.warns(DeprecationWarning, match="deprecated"):
        old = DEPRECATED_SCHEDULE_SOURCE.build(topology, prefix=f"{unique}-old")
    await old.startup()
    items = [
        schedule(cron="0 0 * * *"),
        schedule(interval=10),
        schedule(time=soon(-5)),
        schedule(time=soon(3600)),  # due later: migrated too
    ]
    for item in items:
        await old.add_schedule(item)
    fresh = SCHEDULE_SOURCE.build(topology, prefix=unique).with_migrate_from(old)
    await fresh.startup()
    try:
        got = await fresh.all_schedules()
        assert sorted(s.schedule_id for s in got) == sorted(
            s.schedule_id for s in items
        )
        check = SCHEDULE_SOURCE.build(topology, prefix=f"{unique}-old")
        assert await check.all_schedules() == []
        await check.shutdown()
    finally:
        await fresh.shutdown()


@pytest.mark.parametrize("deduplicate", [True, False])
async def test_two_scheduler_loops_send_each_fire_time_once(
    topology: LocalTopology, make_source: Any, unique: str, deduplicate: bool
) -> None:
    writer = await make_source()
    items = {
        "cron": schedule(cron="* * * * *"),
        "interval": schedule(interval=1),
        "time": schedule(time=soon(1.5)),
    }
    for item in items.values():
        await writer.add_schedule(item)
    brokers = [LIST_QUEUE.build(topology, queue_name=unique) for _ in range(2)]
    loops = []
    for broker in brokers:
        source = await make_source(deduplicate=deduplicate)
        scheduler = TaskiqScheduler(broker, [source])
        await scheduler.startup()
        loop = SchedulerLoop(scheduler)
        loops.append(
            asyncio.ensure_future(
                loop.run(
                    update_interval=timedelta(seconds=1),
                    loop_interval=timedelta(seconds=1),
                )
            )
        )
    await asyncio.sleep(4.5)
    for running in loops:
        running.cancel()
    await asyncio.gather(*loops, return_exceptions=True)
    sent = Counter(
        json.loads(payload)["labels"]["schedule_id"]
        for payload in (
            await brokers[0].endpoint.client.lrange(
                companion_key(unique, "queue"), 0, -1
            )
        )[::2]  # payload, sequence, ...
    )
    for broker in brokers:
        await broker.shutdown()
    by_kind = {kind: sent[item.schedule_id] for kind, item in items.items()}
    if deduplicate:
        assert by_kind["cron"] == 1
        assert by_kind["time"] == 1
        assert 3 <= by_kind["interval"] <= 6
    else:
        assert by_kind["cron"] == 2  # the failure mode that deduplication prevents


async def test_fetching_ignores_the_rest_of_the_keyspace(
    tmp_path: Path, unique: str
) -> None:
    server = local_redis.start_server(tmp_path)
    with server.client() as admin:
        pipe = admin.pipeline(transaction=False)
        for number in range(100_000):
            pipe.set(f"unrelated:{number}", 1)
        pipe.execute()
    source = ListRedisScheduleSource(f"redis://127.0.0.1:{server.port}", prefix=unique)
    try:
        await source.startup()
        for number in range(10_000):
            await source.add_schedule(schedule(interval=number + 1))
        with server.client() as admin:
            admin.config_resetstat()
        got = await source.get_schedules()
        with server.client() as admin:
            stats = admin.info("commandstats")
    finally:
        await source.shutdown()
        server.stop()
    assert len(got) == 10_000
    assert "cmdstat_scan" not in stats
    assert "cmdstat_keys" not in stats
    # Commands run inside scripts count too; the calls the source made are EVALSHAs.
    assert int(stats["cmdstat_evalsha"]["calls"]) <= 10_000 // 50 + 2


def test_deprecated_names_warn(
    topology: LocalTopology,
) -> None:
    with pytest.warns(DeprecationWarning, match="ListRedisScheduleSource"):
        DEPRECATED_SCHEDULE_SOURCE.build(topology, prefix="x")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"buffer_size": 0}, "buffer_size"),
        ({"buffer_size": 50_000}, "at most 10000"),
        ({"prefix": ""}, "prefix"),
        ({"serializer": object()}, "dumpb and loadb"),
        ({"skip_past_schedules": "yes"}, "skip_past_schedules"),
        ({"deduplicate": 2}, "deduplicate"),
    ],
)
def test_bad_options_are_refused_naming_the_parameter(
    topology: LocalTopology, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SCHEDULE_SOURCE.build(topology, **options)

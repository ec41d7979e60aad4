"""lua/stream/*.lua through the registry, on every topology."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from taskiq_redis_lua import ScriptReplyError
from taskiq_redis_lua import topology as topo
from taskiq_redis_lua.local_redis import LocalTopology

from .conftest import OpenEndpoint
from .stream_scripts import Stream, text


@pytest.fixture
async def stream(endpoint: topo.Endpoint, unique: str) -> Stream:
    created = Stream(endpoint, unique)
    await created.create_group()
    return created


async def test_delay_keeps_a_message_aside_until_claim_moves_it_in(
    stream: Stream,
) -> None:
    due = await stream.delay("m1", "later", 150)
    next_due, _, _ = await stream.claim("c1", token="t1")
    assert next_due == due
    assert await stream.client.xlen(stream.k.stream) == 0
    await asyncio.sleep(0.2)
    await stream.claim("c1", token="t2")
    entries: Any = await stream.client.xrange(stream.k.stream)
    assert [fields[b"data"] for _, fields in entries] == [b"later"]
    assert await stream.client.exists(stream.k.delayed, stream.k.payloads) == 0


async def test_delay_refuses_a_delay_that_is_not_whole_milliseconds(
    stream: Stream,
) -> None:
    with pytest.raises(ScriptReplyError, match="TRL_BADARG"):
        await stream.delay("m1", "x", -1)


async def test_claim_takes_over_idle_entries_and_counts_the_delivery(
    stream: Stream,
) -> None:
    entry_id = await stream.add("work")
    await stream.read("dead-worker")
    await asyncio.sleep(0.05)
    _, handed, buried = await stream.claim("c2", min_idle_ms=20)
    assert handed == [(entry_id, 2, b"work")]
    assert buried == []
    assert await stream.deliveries(entry_id) == ("c2", 2)


async def test_claim_leaves_entries_that_are_not_idle_long_enough(
    stream: Stream,
) -> None:
    await stream.add("busy")
    await stream.read("living-worker")
    _, handed, _ = await stream.claim("c2", min_idle_ms=60_000)
    assert handed == []


async def test_claim_runs_once_per_lock_and_the_lock_expires(stream: Stream) -> None:
    await stream.add("x")
    await stream.read("dead-worker")
    await asyncio.sleep(0.02)
    _, handed, _ = await stream.claim("c2", min_idle_ms=10, lock_ms=300, token="a")
    assert handed
    await asyncio.sleep(0.02)
    _, handed, _ = await stream.claim("c3", min_idle_ms=10, lock_ms=300, token="b")
    assert handed == []  # the lock is held
    assert 0 < await stream.client.pttl(stream.k.lock) <= 300
    await asyncio.sleep(0.35)
    _, handed, _ = await stream.claim("c3", min_idle_ms=10, lock_ms=300, token="b")
    assert handed


async def test_claim_buries_entries_delivered_too_often(stream: Stream) -> None:
    entry_id = await stream.add("poison")
    await stream.read("w1")  # delivery 1
    await asyncio.sleep(0.02)
    _, handed, _ = await stream.claim("w2", min_idle_ms=10, max_deliveries=2, lock_ms=1)
    assert handed == [(entry_id, 2, b"poison")]
    await asyncio.sleep(0.02)
    _, handed, buried = await stream.claim(
        "w3", min_idle_ms=10, max_deliveries=2, lock_ms=1
    )
    assert handed == []
    assert buried == [(entry_id, "delivered 2 times without an ack")]
    assert await stream.client.xlen(stream.k.stream) == 0
    assert await stream.deliveries(entry_id) is None
    total, entries = await stream.dead()
    assert total == 1
    assert [text(item) for item in entries[1:5]] == [
        "3", "delivered 2 times without an ack", "poison", entry_id,
    ]  # fmt: skip


async def test_ack_deletes_an_entry_only_when_no_other_group_needs_it(
    stream: Stream,
) -> None:
    await stream.create_group("other")
    entry_id = await stream.add("shared")
    await stream.read("a")
    assert await stream.ack(entry_id) == 1
    assert await stream.client.xlen(stream.k.stream) == 1  # "other" has not read it
    await stream.read("b", group="other")
    assert await stream.ack(entry_id, group="other") == 1
    assert await stream.client.xlen(stream.k.stream) == 0


async def test_ack_without_delete_keeps_the_entry(stream: Stream) -> None:
    entry_id = await stream.add("kept")
    await stream.read("a")
    assert await stream.ack(entry_id, delete=False) == 1
    assert await stream.ack(entry_id, delete=False) == 0
    assert await stream.client.xlen(stream.k.stream) == 1


async def test_extend_resets_idle_time_and_reports_entries_taken_over(
    stream: Stream,
) -> None:
    mine = await stream.add("mine")
    taken = await stream.add("taken")
    await stream.read("w1")
    await asyncio.sleep(0.1)
    await stream.client.xclaim(stream.k.stream, stream.group, "w2", 0, [taken])
    assert await stream.extend("w1", mine, taken) == [taken]
    _, handed, _ = await stream.claim("w3", min_idle_ms=80)
    assert handed == []  # "mine" is fresh again, "taken" was just claimed
    assert await stream.deliveries(mine) == ("w1", 1)


async def test_release_lets_the_next_claim_take_entries_without_counting(
    stream: Stream,
) -> None:
    entry_id = await stream.add("unstarted")
    await stream.read("w1")
    await stream.client.set(stream.k.lock, "someone")
    assert await stream.release("w1", entry_id, 1) == 1
    assert await stream.client.exists(stream.k.lock) == 0
    _, handed, _ = await stream.claim("w2", min_idle_ms=60_000)
    assert handed == [(entry_id, 1, b"unstarted")]


async def test_a_counted_release_counts_the_delivery(stream: Stream) -> None:
    entry_id = await stream.add("started")
    await stream.read("w1")
    assert await stream.release("w1", entry_id, 1, counted=True) == 1
    _, handed, _ = await stream.claim("w2", min_idle_ms=60_000)
    assert handed == [(entry_id, 2, b"started")]


async def test_release_ignores_entries_another_consumer_holds(stream: Stream) -> None:
    entry_id = await stream.add("x")
    await stream.read("w1")
    assert await stream.release("w2", entry_id, 1) == 0
    assert await stream.deliveries(entry_id) == ("w1", 1)


async def test_bury_then_requeue_then_purge(stream: Stream) -> None:
    ids = [await stream.add(f"m{n}") for n in range(3)]
    await stream.read("w1")
    for entry_id in ids:
        assert await stream.bury(entry_id, 1, "undecodable", f"p-{entry_id}") == 1
    assert await stream.bury(ids[0], 1, "again", "p") == 0
    assert await stream.client.xlen(stream.k.stream) == 0
    total, entries = await stream.dead(offset=1, n=1)
    assert total == 3
    assert text(entries[4]) == ids[1]
    dead: Any = await stream.client.xrange(stream.k.dead)
    dead_ids = [text(i) for i, _ in dead]
    assert await stream.requeue("ids", dead_ids[0], "0-1") == 1
    assert await stream.requeue("oldest", 1) == 1
    left: Any = await stream.client.xrange(stream.k.stream)
    payloads = [fields[b"data"] for _, fields in left]
    assert payloads == [f"p-{ids[0]}".encode(), f"p-{ids[1]}".encode()]
    assert await stream.purge(10) == 1
    assert await stream.dead() == (0, [])


async def test_requeue_refuses_an_unknown_mode(stream: Stream) -> None:
    with pytest.raises(ScriptReplyError, match="mode must be ids or oldest"):
        await stream.requeue("everything")


async def test_claim_keeps_a_cursor_across_calls(stream: Stream) -> None:
    ids = [await stream.add(f"m{n}") for n in range(5)]
    await stream.read("dead-worker")
    await asyncio.sleep(0.02)
    seen: list[str] = []
    for token in range(3):
        _, handed, _ = await stream.claim(
            "w2", min_idle_ms=10, lock_ms=1, token=str(token), count=2
        )
        seen.extend(entry_id for entry_id, _, _ in handed)
        cursor = await stream.client.get(stream.k.cursor)
        if token < 2:
            assert cursor == ids[2 * token + 2].encode()
        await asyncio.sleep(0.005)
    assert seen == ids
    assert await stream.client.exists(stream.k.cursor) == 0


async def test_claim_with_n_zero_only_moves_delayed_messages(stream: Stream) -> None:
    await stream.add("orphan")
    await stream.read("dead-worker")
    await stream.delay("m1", "due", 0)
    await asyncio.sleep(0.02)
    _, handed, _ = await stream.claim("w2", min_idle_ms=10, count=0)
    assert handed == []
    assert await stream.client.exists(stream.k.lock) == 0
    assert await stream.client.xlen(stream.k.stream) == 2


async def test_release_ignores_a_stale_delivery_number(stream: Stream) -> None:
    entry_id = await stream.add("x")
    await stream.read("w1")
    assert await stream.release("w1", entry_id, 7) == 0
    assert await stream.deliveries(entry_id) == ("w1", 1)


async def test_claim_keeps_buried_entries_another_group_still_needs(
    stream: Stream,
) -> None:
    await stream.create_group("other")
    ids = [await stream.add("poison"), await stream.add("poison too")]
    await stream.read("w1")  # delivery 1 in group g; group "other" has read nothing
    await asyncio.sleep(0.02)
    _, handed, buried = await stream.claim("w2", min_idle_ms=10, max_deliveries=1)
    assert handed == []
    assert [entry_id for entry_id, _ in buried] == ids
    assert await stream.client.xlen(stream.k.stream) == 2  # "other" still needs them


async def test_claim_asks_for_the_groups_once_however_many_it_buries(
    single_redis: LocalTopology, open_endpoint: OpenEndpoint, unique: str
) -> None:
    stream = Stream(open_endpoint(single_redis), unique)
    await stream.create_group()
    await stream.create_group("other")
    for number in range(20):
        await stream.add(f"poison {number}")
    await stream.read("w1")
    await asyncio.sleep(0.02)

    async def groups_asked() -> int:
        stats = await stream.client.info("commandstats")
        return int(stats.get("cmdstat_xinfo|groups", {}).get("calls", 0))

    before = await groups_asked()
    _, _, buried = await stream.claim("w2", min_idle_ms=10, max_deliveries=1)
    assert len(buried) == 20
    assert await groups_asked() - before == 1


async def test_leave_deletes_a_consumer_that_holds_nothing(stream: Stream) -> None:
    await stream.add("work")
    (entry_id,) = await stream.read("w1")
    await stream.ack(entry_id)
    assert await stream.consumers() == {"w1": 0}
    assert await stream.leave("w1") == 1
    assert await stream.consumers() == {}


async def test_leave_keeps_a_consumer_that_still_holds_entries(stream: Stream) -> None:
    await stream.add("work")
    await stream.read("w1")
    assert await stream.leave("w1") == 0
    assert await stream.consumers() == {"w1": 1}


async def test_leave_without_a_stream_or_group_has_nothing_to_do(
    endpoint: topo.Endpoint, unique: str
) -> None:
    assert await Stream(endpoint, f"{unique}-never").leave("w1") == 1
    other = Stream(endpoint, unique, group="other")
    await Stream(endpoint, unique).create_group()
    assert await other.leave("w1") == 1


async def test_claim_deletes_long_idle_consumers_that_hold_nothing(
    stream: Stream,
) -> None:
    await stream.add("taken over")
    await stream.read("dead-worker")
    await stream.read("idle-worker")  # reads nothing, holds nothing
    await asyncio.sleep(0.05)
    _, handed, _ = await stream.claim("claimer", min_idle_ms=20, consumer_idle_ms=30)
    assert len(handed) == 1
    assert await stream.consumers() == {"claimer": 1}


async def test_claim_keeps_a_consumer_that_holds_entries_however_idle(
    stream: Stream,
) -> None:
    await stream.add("still held")
    await stream.read("slow-worker")
    await asyncio.sleep(0.05)
    await stream.claim("claimer", min_idle_ms=60_000, lock_ms=1, consumer_idle_ms=30)
    assert (await stream.consumers())["slow-worker"] == 1


async def test_claim_deletes_a_consumer_that_holds_nothing_only_once_idle_enough(
    stream: Stream,
) -> None:
    await stream.add("done")
    (entry_id,) = await stream.read("worker")
    await stream.ack(entry_id)
    await stream.claim("claimer", lock_ms=1, consumer_idle_ms=5_000)
    assert "worker" in await stream.consumers()
    await asyncio.sleep(0.05)
    await stream.claim("claimer", lock_ms=1, consumer_idle_ms=30)
    assert "worker" not in await stream.consumers()


async def test_claim_deletes_at_most_the_consumers_it_is_allowed_to(
    stream: Stream,
) -> None:
    for n in range(5):  # each read one entry and acked it: they hold nothing
        await stream.add(f"entry {n}")
        await stream.ack(*await stream.read(f"gone-{n}"))
    await asyncio.sleep(0.05)

    async def gone() -> int:
        return len([name for name in await stream.consumers() if "gone" in name])

    await stream.claim("claimer", lock_ms=1, consumer_idle_ms=10, max_deleted=2)
    assert await gone() == 3
    await asyncio.sleep(0.01)
    await stream.claim("claimer", lock_ms=1, consumer_idle_ms=10, max_deleted=0)
    assert await gone() == 3

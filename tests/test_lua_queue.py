"""lua/queue/*.lua through the registry, on every topology."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from taskiq_redis_lua import ScriptReplyError
from taskiq_redis_lua import topology as topo

from .queue_scripts import Queue


@pytest.fixture
def queue(endpoint: topo.Endpoint, unique: str) -> Queue:
    return Queue(endpoint, unique)


async def test_kick_gives_ordered_ids_that_carry_the_priority(queue: Queue) -> None:
    first = await queue.kick("a")
    second = await queue.kick("b", priority=-3)
    assert first == "0000000000000001:0"
    assert second == "0000000000000002:-3"
    assert await queue.client.zscore(queue.k.marker, "0") == 0


async def test_a_message_without_priority_or_delay_waits_as_two_list_elements(
    queue: Queue,
) -> None:
    assert await queue.kick("a") == "0000000000000001:0"
    assert await queue.client.lrange(queue.k.queue, 0, -1) == [b"a", b"1"]
    assert await queue.client.exists(queue.k.msgs, queue.k.ready) == 0


async def test_a_message_with_a_priority_or_a_delay_keeps_its_payload_in_msgs(
    queue: Queue,
) -> None:
    urgent = await queue.kick("urgent", priority=2)
    later = await queue.kick("later", delay_ms=60_000)
    assert await queue.client.hmget(queue.k.msgs, [urgent, later]) == [
        b"urgent",
        b"later",
    ]
    assert await queue.client.exists(queue.k.queue) == 0


async def test_a_delayed_kick_sets_the_marker_to_its_due_time_unless_sooner(
    queue: Queue,
) -> None:
    await queue.kick("later", delay_ms=60_000)
    due = await queue.client.zscore(queue.k.delayed, "0000000000000001:0")
    assert await queue.client.zscore(queue.k.marker, "0") == due
    await queue.kick("sooner", delay_ms=1_000)
    sooner = await queue.client.zscore(queue.k.delayed, "0000000000000002:0")
    assert await queue.client.zscore(queue.k.marker, "0") == sooner
    await queue.kick("now")
    assert await queue.client.zscore(queue.k.marker, "0") == 0
    await queue.kick("later again", delay_ms=5_000)
    assert await queue.client.zscore(queue.k.marker, "0") == 0


async def test_kick_refuses_priorities_and_delays_that_are_not_whole_numbers(
    queue: Queue,
) -> None:
    with pytest.raises(ScriptReplyError, match="TRL_BADARG"):
        await queue.kick("a", priority="high")  # type: ignore[arg-type]
    with pytest.raises(ScriptReplyError, match="TRL_BADARG"):
        await queue.kick("a", delay_ms=-5)
    assert await queue.client.exists(queue.k.msgs, queue.k.queue) == 0


async def test_one_kick_call_puts_many_messages_on_the_list_in_order(
    queue: Queue,
) -> None:
    ids = await queue.kick_plain("a", "b", "c")
    assert ids == [f"000000000000000{n}:0" for n in (1, 2, 3)]
    tail_first = await queue.client.lrange(queue.k.queue, 0, -1)
    assert tail_first[::-1] == [b"1", b"a", b"2", b"b", b"3", b"c"]
    assert await queue.client.zscore(queue.k.marker, "0") == 0
    assert await queue.kick("d") == "0000000000000004:0"


async def test_kick_refuses_a_call_without_payloads_or_a_note_flag(
    queue: Queue,
) -> None:
    with pytest.raises(ScriptReplyError, match="TRL_BADARG"):
        await queue.kick_plain()
    with pytest.raises(ScriptReplyError, match="TRL_BADARG"):
        await queue.kick_plain("a", note="yes")
    assert await queue.client.exists(queue.k.seq, queue.k.queue) == 0


async def test_a_kick_notes_its_time_only_when_asked_and_once_per_second(
    queue: Queue,
) -> None:
    await queue.kick_plain("a", note="0")
    assert await queue.client.exists(queue.k.epochs) == 0
    await queue.kick_plain("b", "c", note="1")
    await queue.kick_plain("d", note="1")
    noted: Any = await queue.client.zrange(queue.k.epochs, 0, -1, withscores=True)
    server_now, _ = await queue.client.time()
    # The first sequence noted in each second: "d" adds one only in a new second.
    assert [first for _, first in noted] in ([2], [2, 4])
    assert server_now - 2 <= int(noted[0][0]) <= server_now


async def test_one_sorted_kick_call_stores_many_messages_in_order(
    queue: Queue,
) -> None:
    ids = await queue.kick_many(("b", 2, 0), ("c", 0, 60_000), ("put in front", 0, 0))
    assert ids == ["0000000000000001:2", "0000000000000002:0", "0000000000000003:0"]
    assert await queue.client.hmget(queue.k.msgs, ids) == [b"b", b"c", b"put in front"]
    assert await queue.client.zrange(queue.k.ready, 0, -1) == [
        ids[0].encode(), ids[2].encode(),
    ]  # fmt: skip
    assert await queue.client.zcard(queue.k.delayed) == 1
    assert await queue.client.zscore(queue.k.marker, "0") == 0
    assert await queue.kick("d") == "0000000000000004:0"


async def test_a_kick_call_with_one_bad_message_stores_none_of_them(
    queue: Queue,
) -> None:
    with pytest.raises(ScriptReplyError, match="TRL_BADARG"):
        await queue.kick_many(("good", 0, 0), ("bad", "high", 0))
    with pytest.raises(ScriptReplyError, match="TRL_BADARG"):
        await queue.kick_many(("only a payload and a priority", 0))  # type: ignore[arg-type]
    assert await queue.client.exists(queue.k.msgs, queue.k.queue, queue.k.seq) == 0


async def test_pop_hands_out_by_priority_then_arrival_with_a_lease(
    queue: Queue,
) -> None:
    for payload, priority in [("low", -1), ("first", 0), ("urgent", 5), ("second", 0)]:
        await queue.kick(payload, priority)
    wait, handed, buried = await queue.pop(lease_ms=10_000, n=10)
    assert [payload for _, _, payload in handed] == [
        b"urgent",
        b"first",
        b"second",
        b"low",
    ]
    assert {delivery for _, delivery, _ in handed} == {1}
    assert 9_000 < wait <= 10_000  # the first lease is the next thing due
    assert buried == []
    assert await queue.client.zcard(queue.k.inflight) == 4
    lease = await queue.client.zscore(queue.k.inflight, handed[0][0])
    time_now = await queue.client.time()
    now_ms = time_now[0] * 1000 + time_now[1] // 1000
    assert lease is not None
    assert 9_000 < lease - now_ms <= 10_000


async def test_pop_takes_at_most_n_and_rearms_the_marker_for_the_rest(
    queue: Queue,
) -> None:
    for n in range(3):
        await queue.kick(f"m{n}")
    await queue.client.delete(queue.k.marker)
    _, handed, _ = await queue.pop(n=2)
    assert len(handed) == 2
    assert await queue.client.zscore(queue.k.marker, "0") == 0


async def test_a_pop_that_hands_work_out_leaves_the_next_due_time_on_the_marker(
    queue: Queue,
) -> None:
    message_id = await queue.kick("leased")
    await queue.client.delete(queue.k.marker)
    await queue.pop(lease_ms=5_000)
    deadline = await queue.client.zscore(queue.k.inflight, message_id)
    assert await queue.client.zscore(queue.k.marker, "0") == deadline


async def test_a_pop_that_finds_nothing_leaves_the_marker_alone(queue: Queue) -> None:
    await queue.kick("later", delay_ms=5_000)
    await queue.client.delete(queue.k.marker)
    wait, handed, _ = await queue.pop()
    assert handed == []
    assert 4_000 < wait <= 5_000
    assert await queue.client.exists(queue.k.marker) == 0


async def test_pop_on_an_empty_queue_says_how_long_until_something_is_due(
    queue: Queue,
) -> None:
    assert (await queue.pop())[0] == -1
    await queue.kick("later", delay_ms=5_000)
    wait, handed, _ = await queue.pop()
    assert handed == []
    assert 4_000 < wait <= 5_000


async def test_pop_promotes_due_delayed_messages_and_expired_leases(
    queue: Queue,
) -> None:
    await queue.kick("delayed", delay_ms=100)
    await queue.kick("leased")
    _, handed, _ = await queue.pop(lease_ms=100)
    assert [p for _, _, p in handed] == [b"leased"]
    await asyncio.sleep(0.15)
    _, handed, _ = await queue.pop()
    assert sorted((p, d) for _, d, p in handed) == [(b"delayed", 1), (b"leased", 2)]


async def test_pop_buries_a_message_delivered_too_often(queue: Queue) -> None:
    message_id = await queue.kick("poison")
    for _ in range(2):
        _, handed, _ = await queue.pop(lease_ms=1, max_deliveries=2)
        assert handed
        await asyncio.sleep(0.01)
    _, handed, buried = await queue.pop(lease_ms=1, max_deliveries=2)
    assert handed == []
    assert buried == [(message_id, "delivered 2 times without an ack")]
    assert await queue.client.zscore(queue.k.dead, message_id) is not None


async def test_pop_buries_a_message_whose_payload_is_gone(queue: Queue) -> None:
    message_id = await queue.kick("lost", priority=1)
    await queue.client.hdel(queue.k.msgs, message_id)
    _, handed, buried = await queue.pop()
    assert handed == []
    assert buried == [(message_id, "payload missing")]


async def test_pop_buries_a_list_element_pushed_by_hand_and_reads_on(
    queue: Queue,
) -> None:
    first = await queue.kick("first")
    await queue.client.lpush(queue.k.queue, "pushed by hand")
    second = await queue.kick("second")
    _, handed, buried = await queue.pop(n=1)
    assert [(i, p) for i, _, p in handed] == [(first, b"first")]
    _, handed, buried = await queue.pop(n=1)
    assert [(i, p) for i, _, p in handed] == [(second, b"second")]
    assert buried == [("pushed by hand", "payload missing")]
    assert await queue.client.exists(queue.k.queue) == 0


async def test_pop_buries_a_sequence_without_its_payload(queue: Queue) -> None:
    await queue.client.lpush(queue.k.queue, "7")
    _, handed, buried = await queue.pop()
    assert (handed, buried) == ([], [("0000000000000007:0", "payload missing")])


async def test_a_popped_message_keeps_its_payload_in_msgs_while_leased(
    queue: Queue,
) -> None:
    message_id = await queue.kick("work")
    await queue.pop()
    assert await queue.client.exists(queue.k.queue) == 0
    assert await queue.client.hget(queue.k.msgs, message_id) == b"work"


async def test_messages_put_back_in_front_pop_before_the_list(queue: Queue) -> None:
    first = await queue.kick("first")
    await queue.kick("second")
    await queue.pop(n=1)
    await queue.release(first, 1, counted=True)
    _, handed, _ = await queue.pop(n=2)
    assert [payload for _, _, payload in handed] == [b"first", b"second"]


async def test_a_due_delayed_message_joins_the_back_of_the_list(queue: Queue) -> None:
    delayed = await queue.kick("delayed", delay_ms=50)
    await asyncio.sleep(0.06)
    await queue.kick("waiting")
    _, handed, _ = await queue.pop(n=1)
    assert [payload for _, _, payload in handed] == [b"waiting"]
    assert delayed == "0000000000000001:0"
    assert await queue.client.lrange(queue.k.queue, 0, -1) == [b"delayed", b"1"]
    assert await queue.client.hexists(queue.k.msgs, delayed) is False


async def test_a_queue_stored_before_the_list_existed_drains_first_in_order(
    queue: Queue,
) -> None:
    old = [f"{n:016d}:0" for n in (1, 2, 3)]  # where kick stored them before the list
    await queue.client.set(queue.k.seq, 3)
    await queue.client.hset(queue.k.msgs, mapping={i: f"old {i[-3]}" for i in old})
    await queue.client.zadd(queue.k.ready, dict.fromkeys(old, 0))
    new = [await queue.kick(f"new {n}") for n in (4, 5)]
    _, handed, _ = await queue.pop(n=10)
    assert [i for i, _, _ in handed] == [*old, *new]
    assert [payload for _, _, payload in handed] == [
        b"old 1", b"old 2", b"old 3", b"new 4", b"new 5",
    ]  # fmt: skip


async def test_pop_keeps_at_most_max_dead_letters(queue: Queue) -> None:
    ids = [await queue.kick(f"m{n}", priority=1) for n in range(3)]
    for message_id in ids:
        await queue.client.hdel(queue.k.msgs, message_id)
    await queue.pop(max_dead=2)
    dead = await queue.client.zrange(queue.k.dead, 0, -1)
    assert dead == [message_id.encode() for message_id in ids[1:]]
    assert await queue.client.hexists(queue.k.reasons, ids[0]) is False


async def test_ack_removes_only_with_the_current_delivery_number(queue: Queue) -> None:
    message_id = await queue.kick("work")
    await queue.pop(lease_ms=1)
    await asyncio.sleep(0.01)
    _, handed, _ = await queue.pop()
    assert handed[0][1] == 2
    assert await queue.ack_flags(message_id, 1) == [0]
    assert await queue.client.zscore(queue.k.inflight, message_id) is not None
    assert await queue.ack_flags(message_id, 1, message_id, 2) == [0, 1]
    for key in (queue.k.inflight, queue.k.ready):
        assert await queue.client.zcard(key) == 0
    for key in (queue.k.msgs, queue.k.deliveries):
        assert await queue.client.hlen(key) == 0


async def test_extend_renews_held_leases_and_reports_lost_ones(queue: Queue) -> None:
    held = await queue.kick("held")
    taken = await queue.kick("taken by another")
    await queue.pop(lease_ms=1_000)
    await queue.client.hincrby(queue.k.deliveries, taken, 1)  # handed out again
    lost = await queue.extend(30_000, held, 1, taken, 1, "never-existed", 1)
    assert lost == [taken, "never-existed"]
    lease = await queue.client.zscore(queue.k.inflight, held)
    old_lease = await queue.client.zscore(queue.k.inflight, taken)
    assert lease is not None
    assert old_lease is not None
    assert lease - old_lease > 25_000


async def test_release_puts_messages_back_in_front_without_counting_the_delivery(
    queue: Queue,
) -> None:
    first = await queue.kick("first")
    await queue.kick("second")
    _, handed, _ = await queue.pop(n=1)
    await queue.client.delete(queue.k.marker)
    assert await queue.release(first, 1, "unknown", 1) == 1
    assert await queue.client.hget(queue.k.deliveries, first) == b"0"
    assert await queue.client.zcard(queue.k.marker) == 1
    _, handed, _ = await queue.pop(n=1)
    assert handed == [(first, 1, b"first")]


async def test_a_counted_release_hands_the_message_out_with_the_next_number(
    queue: Queue,
) -> None:
    message_id = await queue.kick("started")
    await queue.pop()
    assert await queue.release(message_id, 1, counted=True) == 1
    _, handed, _ = await queue.pop()
    assert handed == [(message_id, 2, b"started")]
    assert await queue.ack(message_id, 1) == 0  # the first holder's ack is stale


async def test_bury_then_requeue_then_purge(queue: Queue) -> None:
    ids = [await queue.kick(f"m{n}") for n in range(3)]
    await queue.pop()
    for message_id in ids:
        assert await queue.bury(message_id, 1, "task crashed") == 1
    assert await queue.bury(ids[0], 1, "again") == 0
    total, entries = await queue.dead(offset=1, n=1)
    assert total == 3
    assert entries[0] == ids[1].encode()
    assert entries[2:] == [b"1", b"task crashed", b"m1"]
    assert await queue.requeue("ids", ids[0], "not-dead") == 1
    assert await queue.requeue("oldest", 1) == 1
    _, handed, _ = await queue.pop()
    assert [(i, d) for i, d, _ in handed] == [(ids[0], 1), (ids[1], 1)]
    assert await queue.purge(10) == 1
    assert await queue.client.hlen(queue.k.msgs) == 2
    assert await queue.dead() == (0, [])


async def test_requeue_refuses_an_unknown_mode(queue: Queue) -> None:
    with pytest.raises(ScriptReplyError, match="mode must be ids or oldest"):
        await queue.requeue("everything")

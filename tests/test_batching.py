"""Batcher: a lone request goes at once; requests behind a call share the next one."""

from __future__ import annotations

import asyncio

import pytest

from taskiq_redis_lua.batching import Batcher


class Recorder:
    """A send function that records its batches and can be held or made to fail."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def send(self, key: str, items: list[int]) -> list[int | BaseException]:
        self.batches.append((key, items))
        await self.gate.wait()
        if -1 in items:
            raise RuntimeError("the whole call failed")
        return [ValueError(f"bad {item}") if item < 0 else item * 10 for item in items]


async def test_a_lone_request_goes_at_once_and_those_behind_it_share_one_call() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batcher: Batcher[str, int, int] = Batcher(recorder.send, limit=100)
    together = asyncio.gather(
        *(batcher.submit("a", n) for n in range(5)), batcher.submit("b", 9)
    )
    await asyncio.sleep(0.01)
    assert sorted(recorder.batches) == [("a", [0]), ("b", [9])]  # one call per key
    recorder.gate.set()
    assert await together == [0, 10, 20, 30, 40, 90]
    assert sorted(recorder.batches) == [("a", [0]), ("a", [1, 2, 3, 4]), ("b", [9])]


async def test_requests_made_while_a_call_is_in_flight_go_in_the_next_one() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batcher: Batcher[str, int, int] = Batcher(recorder.send, limit=2)
    first = asyncio.ensure_future(batcher.submit("a", 1))
    await asyncio.sleep(0.01)
    later = [asyncio.ensure_future(batcher.submit("a", n)) for n in (2, 3, 4)]
    await asyncio.sleep(0.01)
    assert recorder.batches == [("a", [1])]
    recorder.gate.set()
    assert await asyncio.gather(first, *later) == [10, 20, 30, 40]
    assert recorder.batches == [("a", [1]), ("a", [2, 3]), ("a", [4])]


async def test_a_failed_item_fails_only_its_caller() -> None:
    batcher: Batcher[str, int, int] = Batcher(Recorder().send, limit=10)
    good, bad = await asyncio.gather(
        batcher.submit("a", 1), batcher.submit("a", -5), return_exceptions=True
    )
    assert good == 10
    assert isinstance(bad, ValueError)


async def test_a_failed_call_fails_every_caller_in_it_and_the_next_call_works() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batcher: Batcher[str, int, int] = Batcher(recorder.send, limit=10)
    first = asyncio.ensure_future(batcher.submit("a", 0))
    await asyncio.sleep(0.01)
    failing = asyncio.gather(
        batcher.submit("a", 1), batcher.submit("a", -1), return_exceptions=True
    )
    await asyncio.sleep(0.01)
    recorder.gate.set()
    assert await first == 0
    assert all(isinstance(reply, RuntimeError) for reply in await failing)
    assert await batcher.submit("a", 2) == 20


async def test_cancelling_the_caller_that_sends_leaves_the_others_to_their_call() -> (
    None
):
    recorder = Recorder()
    recorder.gate.clear()
    batcher: Batcher[str, int, int] = Batcher(recorder.send, limit=10)
    first = asyncio.ensure_future(batcher.submit("a", 1))
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(batcher.submit("a", 2))
    await asyncio.sleep(0.01)
    first.cancel()
    await asyncio.sleep(0.01)
    recorder.gate.set()
    assert await second == 20
    assert first.cancelled()
    assert recorder.batches == [("a", [1]), ("a", [2])]


async def test_a_request_cancelled_before_its_call_is_not_sent() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batcher: Batcher[str, int, int] = Batcher(recorder.send, limit=10)
    first = asyncio.ensure_future(batcher.submit("a", 1))
    await asyncio.sleep(0.01)
    dropped = asyncio.ensure_future(batcher.submit("a", 2))
    await asyncio.sleep(0.01)
    dropped.cancel()
    recorder.gate.set()
    assert await first == 10
    with pytest.raises(asyncio.CancelledError):
        await dropped
    await asyncio.sleep(0.01)
    assert recorder.batches == [("a", [1])]


async def test_with_linger_requests_arriving_soon_after_share_the_call() -> None:
    recorder = Recorder()
    batcher: Batcher[str, int, int] = Batcher(recorder.send, limit=100, linger=0.05)
    first = asyncio.ensure_future(batcher.submit("a", 1))
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(batcher.submit("a", 2))
    assert list(await asyncio.gather(first, second)) == [10, 20]
    assert recorder.batches == [("a", [1, 2])]


async def test_a_full_batch_does_not_linger() -> None:
    recorder = Recorder()
    batcher: Batcher[str, int, int] = Batcher(recorder.send, limit=2, linger=30.0)
    replies = await asyncio.wait_for(
        asyncio.gather(batcher.submit("a", 1), batcher.submit("a", 2)), 5
    )
    assert list(replies) == [10, 20]


async def test_busy_linger_never_delays_a_lone_request() -> None:
    recorder = Recorder()
    batcher: Batcher[str, int, int] = Batcher(
        recorder.send, limit=100, busy_linger=30.0
    )
    assert await asyncio.wait_for(batcher.submit("a", 1), 5) == 10


async def test_busy_linger_gathers_what_queued_behind_a_call() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batcher: Batcher[str, int, int] = Batcher(
        recorder.send, limit=100, busy_linger=0.05
    )
    first = asyncio.ensure_future(batcher.submit("a", 1))
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(batcher.submit("a", 2))
    await asyncio.sleep(0.01)
    recorder.gate.set()
    await asyncio.sleep(0.01)  # the second call lingers: the third joins it
    third = asyncio.ensure_future(batcher.submit("a", 3))
    assert list(await asyncio.gather(first, second, third)) == [10, 20, 30]
    assert recorder.batches == [("a", [1]), ("a", [2, 3])]

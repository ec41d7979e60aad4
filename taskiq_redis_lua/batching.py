"""Coalescing concurrent calls into few round trips.

Many coroutines kicking, acking or storing results at the same time would each pay a
round trip. A :class:`Batcher` sends the first request at once, from its caller's own
coroutine, and, while that call is in flight, collects what comes next into the
following call, sent by a task: no added delay when idle, few and large calls under
load.

Each call through redis-py costs the client far more CPU than one more command in a
pipeline or one more argument to a script, so a batcher may also *linger*: wait a
moment for more items before sending. ``linger`` applies to every call (for requests
nobody waits on eagerly, such as acks); ``busy_linger`` only to a call that follows
another one with items already queued, so a lone request is never delayed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Item = TypeVar("Item")
Reply = TypeVar("Reply")

#: One reply per item, in order; an exception in place of a reply fails that item.
Send = Callable[[Key, list[Item]], Awaitable[Sequence[Reply | BaseException]]]


@dataclass
class _Lane(Generic[Item, Reply]):
    """What waits to be sent under one key, and who sends it.

    ``sender`` is None while the first caller sends its own item; a task takes
    over the items that came meanwhile.
    """

    loop: asyncio.AbstractEventLoop
    sender: asyncio.Task[None] | None
    waiting: list[tuple[Item, asyncio.Future[Reply]]] = field(default_factory=list)

    def serves(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Return whether items of ``loop`` may still join this lane."""
        return self.loop is loop and (self.sender is None or not self.sender.done())


#: How long an ack waits for others to share its call (seconds). The message stays
#: held that much longer; a worker finishing thousands of tasks a second makes a
#: few hundred ack calls instead of thousands.
ACK_LINGER = 0.002
#: How long a result write waits for others when writes are already queued.
BUSY_LINGER = 0.005


class Batcher(Generic[Key, Item, Reply]):
    """Send items submitted under the same key together, one call in flight per key."""

    def __init__(
        self,
        send: Send[Key, Item, Reply],
        limit: int,
        *,
        linger: float = 0.0,
        busy_linger: float = 0.0,
    ) -> None:
        """Send at most ``limit`` items per call of ``send``.

        Before a call, wait up to ``linger`` seconds for the batch to fill, or
        ``busy_linger`` when the call follows another one of the same key.
        """
        self._send = send
        self._limit = limit
        self._linger = linger
        self._busy_linger = busy_linger
        self._lanes: dict[Key, _Lane[Item, Reply]] = {}

    async def submit(self, key: Key, item: Item) -> Reply:
        """Send ``item`` with others under ``key``; return its reply."""
        loop = asyncio.get_running_loop()
        lane = self._lanes.get(key)
        if lane is None and not self._linger:
            return await self._send_alone(loop, key, item)
        future: asyncio.Future[Reply] = loop.create_future()
        if lane is None or not lane.serves(loop):
            lane = _Lane(loop, loop.create_task(self._drain(key)))
            self._lanes[key] = lane
        lane.waiting.append((item, future))
        return await future

    async def _send_alone(
        self, loop: asyncio.AbstractEventLoop, key: Key, item: Item
    ) -> Reply:
        """Nothing in flight: send ``item`` from the caller, without a task.

        Items submitted meanwhile wait in the lane; a task sends them after.
        """
        lane: _Lane[Item, Reply] = _Lane(loop, None)
        self._lanes[key] = lane
        try:
            (reply,) = await self._send(key, [item])
        finally:
            if self._lanes.get(key) is lane:
                if lane.waiting:
                    lane.sender = loop.create_task(
                        self._drain(key, follows_a_call=True)
                    )
                else:
                    del self._lanes[key]
        if isinstance(reply, BaseException):
            raise reply
        return reply

    async def _drain(self, key: Key, *, follows_a_call: bool = False) -> None:
        lane = self._lanes[key]
        busy = max(self._linger, self._busy_linger)
        linger = busy if follows_a_call else self._linger
        try:
            while lane.waiting:
                if linger and len(lane.waiting) < self._limit:
                    await asyncio.sleep(linger)
                linger = busy
                batch = [
                    (item, future)
                    for item, future in lane.waiting[: self._limit]
                    if not future.done()  # its caller gave up before it was sent
                ]
                del lane.waiting[: self._limit]
                if batch:
                    await self._send_batch(key, batch)
        finally:
            if self._lanes.get(key) is lane:
                del self._lanes[key]
            for _, future in lane.waiting:  # only when cancelled: nobody sends these
                future.cancel()

    async def _send_batch(
        self, key: Key, batch: list[tuple[Item, asyncio.Future[Reply]]]
    ) -> None:
        try:
            replies = await self._send(key, [item for item, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as error:  # noqa: BLE001 - every caller gets the error
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, BaseException):
                future.set_exception(reply)
            else:
                future.set_result(reply)

"""The two reliable-queue families behind one interface, for the contract suite.

Each family says how a test builds its brokers and what a dead or stalled worker does
with its scripts; what the tests then expect is the same for both.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from taskiq_redis_lua import topology as topo
from taskiq_redis_lua.keys import list_queue_keys, stream_keys
from taskiq_redis_lua.reliable import ReliableBroker

from .building import LIST_QUEUE, STREAM, Classes
from .queue_scripts import Queue
from .stream_scripts import Stream

#: How long a message a worker took stays leased to it, in the contract's tests.
LEASE = 0.6


class FamilyUnderTest:
    """What the contract suite needs of a family, on one test's queue."""

    classes: ClassVar[Classes[Any]]
    #: Options of every broker the suite builds (a short lease, fast take-overs).
    defaults: ClassVar[dict[str, Any]]
    #: The option that bounds how many messages one fetch takes.
    fetch_size: ClassVar[str]
    #: Options for a lease far longer than any test.
    long_lease: ClassVar[dict[str, Any]]

    async def die_holding(self) -> list[str]:
        """Take what is ready as a worker that then dies; its lease is ``LEASE``."""
        raise NotImplementedError

    async def deliver_and_die(self, times: int) -> None:
        """Hand the ready message to ``times`` workers in turn; each dies with it."""
        raise NotImplementedError

    async def take_and_bury(self, reason: str) -> None:
        """Take what is ready and bury it by hand, oldest first."""
        raise NotImplementedError

    async def leftovers(self) -> dict[str, int]:
        """What the queue still stores, by kind; empty when nothing is left."""
        raise NotImplementedError

    @staticmethod
    def key_of(queue: str) -> str:
        """A key of ``queue`` (to find its slot)."""
        raise NotImplementedError


class ListFamily(FamilyUnderTest):
    """The list queue: a lease is a score in ``inflight``."""

    classes = LIST_QUEUE
    defaults: ClassVar[dict[str, Any]] = {"visibility_timeout": LEASE}
    fetch_size = "fetch_batch_size"
    long_lease: ClassVar[dict[str, Any]] = {"visibility_timeout": 600}

    def __init__(self, endpoint: topo.Endpoint, queue: str) -> None:
        self.raw = Queue(endpoint, queue)

    async def die_holding(self) -> list[str]:
        _, taken, _ = await self.raw.pop(lease_ms=int(LEASE * 1000), n=100)
        return [message_id for message_id, _, _ in taken]

    async def deliver_and_die(self, times: int) -> None:
        for _ in range(times):
            _, taken, _ = await self.raw.pop(lease_ms=1, max_deliveries=times)
            assert taken
            await asyncio.sleep(0.01)

    async def take_and_bury(self, reason: str) -> None:
        await self.raw.pop(n=100)
        held: Any = await self.raw.client.zrange(self.raw.k.inflight, 0, -1)
        for message_id in held:
            await self.raw.bury(message_id, 1, reason)

    async def leftovers(self) -> dict[str, int]:
        k, client = self.raw.k, self.raw.client
        keys = (k.queue, k.ready, k.inflight, k.msgs, k.deliveries, k.delayed)
        return {key: 1 for key in keys if await client.exists(key)}

    @staticmethod
    def key_of(queue: str) -> str:
        return list_queue_keys(queue).ready


class StreamFamily(FamilyUnderTest):
    """The stream queue: a lease is a pending entry's idle time."""

    classes = STREAM
    defaults: ClassVar[dict[str, Any]] = {
        "idle_timeout": int(LEASE * 1000),
        "claim_interval": 0.1,
        "consumer_group_name": "g",
    }
    fetch_size = "xread_count"
    long_lease: ClassVar[dict[str, Any]] = {"idle_timeout": 600_000}

    def __init__(self, endpoint: topo.Endpoint, queue: str) -> None:
        self.raw = Stream(endpoint, queue)

    async def die_holding(self) -> list[str]:
        return await self.raw.read("killed-worker")

    async def deliver_and_die(self, times: int) -> None:
        await self.raw.read("w1")
        for n in range(2, times + 1):
            await asyncio.sleep(0.02)
            await self.raw.claim(f"w{n}", min_idle_ms=10, lock_ms=1)

    async def take_and_bury(self, reason: str) -> None:
        for entry_id in await self.raw.read("w1"):
            found: Any = await self.raw.client.xrange(
                self.raw.k.stream, entry_id, entry_id
            )
            ((_, fields),) = found
            await self.raw.bury(entry_id, 1, reason, fields[b"data"].decode())

    async def leftovers(self) -> dict[str, int]:
        client, k = self.raw.client, self.raw.k
        pending = await client.xpending(k.stream, self.raw.group)
        found = {
            "entries": await client.xlen(k.stream),
            "pending": int(pending["pending"]),
            "delayed": await client.zcard(k.delayed),
        }
        return {kind: n for kind, n in found.items() if n}

    @staticmethod
    def key_of(queue: str) -> str:
        return stream_keys(queue, "g").stream


FAMILIES: dict[str, type[ListFamily] | type[StreamFamily]] = {
    "list": ListFamily,
    "stream": StreamFamily,
}


async def counts(broker: ReliableBroker) -> tuple[int, int, int]:
    """Messages of ``broker``'s queue that are ready, delayed and in flight (stats)."""
    (snapshot,) = await broker.stats()  # type: ignore[attr-defined]
    if snapshot.kind == "list":
        return snapshot.ready, snapshot.delayed, snapshot.in_flight
    ready = snapshot.length - snapshot.pending  # a stream's entries no worker holds
    return ready, snapshot.delayed, snapshot.pending

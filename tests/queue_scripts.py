"""Calling the list queue's scripts by hand, as a dead or stale worker would."""

from __future__ import annotations

from typing import Any

from taskiq_redis_lua import scripts
from taskiq_redis_lua import topology as topo
from taskiq_redis_lua.keys import ListQueueKeys, list_queue_keys

S = {name: scripts.script(f"queue/{name}") for name in (
    "kick", "kick_sorted", "pop", "ack", "extend", "release", "bury", "requeue",
    "purge", "dead",
)}  # fmt: skip


class Queue:
    """Calls each queue script with the keys its header asks for."""

    def __init__(self, endpoint: topo.Endpoint, name: str) -> None:
        self.client = endpoint.client
        self.k: ListQueueKeys = list_queue_keys(name)

    async def kick(self, payload: str, priority: int = 0, delay_ms: int = 0) -> str:
        """Kick one message with the script the broker would use for it."""
        if priority == 0 and delay_ms == 0:
            [message_id] = await self.kick_plain(payload)
        else:
            [message_id] = await self.kick_many((payload, priority, delay_ms))
        return message_id

    async def kick_plain(self, *payloads: str, note: str = "1") -> list[str]:
        """kick.lua: messages onto the list, noting the time in epochs or not."""
        args = [note, *payloads]
        first = await scripts.run(self.client, S["kick"], self.k, args)
        return [f"{first + n:016d}:0" for n in range(len(payloads))]

    async def kick_many(self, *messages: tuple[Any, Any, Any]) -> list[str]:
        """kick_sorted.lua: (payload, priority, delay ms) triples."""
        args = [part for message in messages for part in message]
        reply = await scripts.run(self.client, S["kick_sorted"], self.k, args)
        return [item.decode() for item in reply]

    async def ack_flags(self, *pairs: Any) -> list[int]:
        return list(await scripts.run(self.client, S["ack"], self.k, list(pairs)))

    async def pop(
        self,
        lease_ms: int = 60_000,
        n: int = 10,
        max_deliveries: int = 5,
        max_dead: int = 100,
    ) -> tuple[int, list[tuple[str, int, bytes]], list[tuple[str, str]]]:
        now, next_due, handed, buried = await scripts.run(
            self.client, S["pop"], self.k, [lease_ms, n, max_deliveries, 1000, max_dead]
        )
        return (
            -1 if next_due < 0 else int(next_due) - int(now),
            [
                (handed[i].decode(), int(handed[i + 1]), handed[i + 2])
                for i in range(0, len(handed), 3)
            ],
            [
                (buried[i].decode(), buried[i + 1].decode())
                for i in range(0, len(buried), 2)
            ],
        )

    async def ack(self, *pairs: Any) -> int:
        return sum(await self.ack_flags(*pairs))

    async def extend(self, lease_ms: int, *pairs: Any) -> list[str]:
        lost = await scripts.run(self.client, S["extend"], self.k, [lease_ms, *pairs])
        return [item.decode() for item in lost]

    async def release(self, *pairs: Any, counted: bool = False) -> int:
        args = ["0" if counted else "1", *pairs]
        return int(await scripts.run(self.client, S["release"], self.k, args))

    async def bury(
        self, message_id: str | bytes, delivery: int, reason: str, max_dead: int = 100
    ) -> int:
        return int(
            await scripts.run(
                self.client, S["bury"], self.k, [message_id, delivery, reason, max_dead]
            )
        )

    async def requeue(self, *args: Any) -> int:
        return int(await scripts.run(self.client, S["requeue"], self.k, list(args)))

    async def purge(self, n: int) -> int:
        return int(await scripts.run(self.client, S["purge"], self.k, [n]))

    async def dead(self, offset: int = 0, n: int = 10) -> tuple[int, list[Any]]:
        total, entries = await scripts.run(self.client, S["dead"], self.k, [offset, n])
        return int(total), entries

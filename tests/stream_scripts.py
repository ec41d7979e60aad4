"""Calling the stream queue's scripts by hand, as a dead or stale worker would."""

from __future__ import annotations

from typing import Any

from taskiq_redis_lua import scripts
from taskiq_redis_lua import topology as topo
from taskiq_redis_lua.keys import StreamKeys, stream_keys
from taskiq_redis_lua.scripts import Arg

NAMES = (
    "delay", "claim", "ack", "extend", "release", "bury", "requeue", "purge", "leave",
)  # fmt: skip
S = {name: scripts.script(f"stream/{name}") for name in (*NAMES, "dead")}


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Stream:
    """Calls each stream script with the keys its header asks for."""

    def __init__(self, endpoint: topo.Endpoint, name: str, group: str = "g") -> None:
        self.client = endpoint.client
        self.group = group
        self.k: StreamKeys = stream_keys(name, group)

    async def create_group(self, group: str | None = None, start: str = "0") -> None:
        await self.client.xgroup_create(
            self.k.stream, group or self.group, id=start, mkstream=True
        )

    async def add(self, payload: str) -> str:
        return text(await self.client.xadd(self.k.stream, {"data": payload}))

    async def read(
        self, consumer: str, group: str | None = None, count: int = 100
    ) -> list[str]:
        reply: Any = await self.client.xreadgroup(
            group or self.group, consumer, {self.k.stream: ">"}, count=count
        )
        streams = reply.items() if isinstance(reply, dict) else reply or []
        return [text(entry_id) for _, entries in streams for entry_id, _ in entries]

    async def delay(self, message_id: str, payload: str, delay_ms: int) -> int:
        args: list[Arg] = [message_id, payload, delay_ms]
        return int(await scripts.run(self.client, S["delay"], self.k, args))

    async def claim(
        self,
        consumer: str,
        min_idle_ms: int = 0,
        lock_ms: int = 1_000,
        max_deliveries: int = 5,
        maxlen: int = 0,
        token: str | None = None,
        count: int = 100,
        consumer_idle_ms: int = 0,
        max_deleted: int = 10,
    ) -> tuple[int, list[tuple[str, int, bytes]], list[tuple[str, str]]]:
        args: list[Arg] = [
            self.group, consumer, token or consumer, lock_ms, min_idle_ms, count,
            max_deliveries, 1000, maxlen, "0", 100, consumer_idle_ms, max_deleted,
        ]  # fmt: skip
        _, next_due, handed, buried = await scripts.run(
            self.client, S["claim"], self.k, args
        )
        return (
            int(next_due),
            [
                (text(handed[i]), int(handed[i + 1]), handed[i + 2])
                for i in range(0, len(handed), 3)
            ],
            [(text(buried[i]), text(buried[i + 1])) for i in range(0, len(buried), 2)],
        )

    async def ack(
        self, *ids: str, delete: bool = True, group: str | None = None
    ) -> int:
        args = [group or self.group, "1" if delete else "0", *ids]
        flags = await scripts.run(self.client, S["ack"], self.k, args)
        return sum(int(flag) for flag in flags)

    async def extend(self, consumer: str, *ids: str) -> list[str]:
        args = [self.group, consumer, *ids]
        lost = await scripts.run(self.client, S["extend"], self.k, args)
        return [text(entry_id) for entry_id in lost]

    async def release(self, consumer: str, *pairs: Any, counted: bool = False) -> int:
        args = [self.group, consumer, 2**40, "0" if counted else "1", *pairs]
        return int(await scripts.run(self.client, S["release"], self.k, args))

    async def bury(
        self, entry_id: str, deliveries: int, reason: str, payload: str
    ) -> int:
        args: list[Arg] = [self.group, entry_id, deliveries, reason, payload, 100]
        return int(await scripts.run(self.client, S["bury"], self.k, args))

    async def requeue(self, *args: Any) -> int:
        return int(await scripts.run(self.client, S["requeue"], self.k, list(args)))

    async def purge(self, n: int) -> int:
        return int(await scripts.run(self.client, S["purge"], self.k, [n]))

    async def dead(self, offset: int = 0, n: int = 10) -> tuple[int, list[Any]]:
        total, entries = await scripts.run(self.client, S["dead"], self.k, [offset, n])
        return int(total), entries

    async def leave(self, consumer: str) -> int:
        args: list[Arg] = [self.group, consumer]
        return int(await scripts.run(self.client, S["leave"], self.k, args))

    async def consumers(self) -> dict[str, int]:
        """The group's consumers and how many entries each holds."""
        found: Any = await self.client.xinfo_consumers(self.k.stream, self.group)
        return {text(item["name"]): int(item["pending"]) for item in found}

    async def deliveries(self, entry_id: str) -> tuple[str, int] | None:
        """The consumer holding ``entry_id`` and its delivery count, if pending."""
        pending = await self.client.xpending_range(
            self.k.stream, self.group, min=entry_id, max=entry_id, count=1
        )
        if not pending:
            return None
        return text(pending[0]["consumer"]), int(pending[0]["times_delivered"])

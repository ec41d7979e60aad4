"""What a worker process holds, and the task that keeps its leases alive.

A message handed out with a lease is redelivered when the lease runs out, so a
worker renews the leases of everything it holds (fetched, running, not yet acked)
in a few calls per interval. A renewal that reports a message as lost means the
lease had already run out and someone else has the message now.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator
from itertools import islice
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
T = TypeVar("T")

#: Messages per renewal, ack or release call.
CHUNK = 500

logger = logging.getLogger("taskiq_redis_lua.leases")


def chunks(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    """Yield ``items`` in lists of at most ``size``."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


Renew = Callable[[list[tuple[Key, int]]], Awaitable[Iterable[Key]]]


class Holdings(Generic[Key]):
    """Messages this process holds (key -> delivery number) and their renewal."""

    def __init__(self, what: str, interval: float, renew: Renew[Key]) -> None:
        """Renew the leases of what is held every ``interval`` seconds."""
        self.what = what
        self.interval = interval
        self.renew = renew
        self.held: dict[Key, int] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, key: Key, delivery: int) -> None:
        """Hold ``key`` as handed out with ``delivery``."""
        self.held[key] = delivery

    def forget(self, key: Key, delivery: int) -> None:
        """Stop holding ``key`` if it is still held with ``delivery``."""
        if self.held.get(key) == delivery:
            del self.held[key]

    def items(self) -> list[tuple[Key, int]]:
        """Return a snapshot of what is held."""
        return list(self.held.items())

    def start(self) -> None:
        """Start renewing (again, if the renewal task ended)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(
                self._renew_forever(), name=f"lease keeper of {self.what}"
            )

    async def stop(self) -> None:
        """Stop renewing; what is held stays held."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            for chunk in chunks(self.items()):
                try:
                    lost = await asyncio.wait_for(self.renew(chunk), self.interval)
                except Exception as error:  # noqa: BLE001 - the keeper must go on
                    logger.warning("Could not renew leases on %s: %r", self.what, error)
                    break
                handed = dict(chunk)
                for key in lost:
                    if key in handed and self.held.get(key) == handed[key]:
                        del self.held[key]
                        logger.warning(
                            "Lost the lease of %s on %s: it may run twice",
                            key,
                            self.what,
                        )

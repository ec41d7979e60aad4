"""What a worker process holds, and the task that keeps its leases alive.

A message handed out with a lease is redelivered when the lease runs out, so a
worker renews the leases of everything it holds (fetched, running, not yet acked)
in a few calls per interval. A renewal that reports a message as lost means the
lease had already run out and someone else has the message now.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator
from itertools import islice
from typing import Generic, TypeVar

from taskiq_redis_lua.backoff import OutageLog, raise_if_cancelled

Key = TypeVar("Key", bound=Hashable)
T = TypeVar("T")

#: Messages per renewal, ack or release call.
CHUNK = 500

logger = logging.getLogger("taskiq_redis_lua.leases")


async def stop_task(task: asyncio.Task[None], grace: float = 5.0) -> None:
    """Cancel a background task and wait (a bounded time) until it has ended."""
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=grace)
    if not done:
        logger.warning("%s did not stop within %s s", task.get_name(), grace)
    elif not task.cancelled() and task.exception() is not None:
        logger.warning("%s ended with %r", task.get_name(), task.exception())


def chunks(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    """Yield ``items`` in lists of at most ``size``."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


Renew = Callable[[list[tuple[Key, int]]], Awaitable[Iterable[Key]]]


class Holdings(Generic[Key]):
    """Messages this process holds (key -> delivery number) and their renewal.

    A message is *fetched* from the moment Redis hands it to this process until
    ``listen()`` hands it to taskiq; what is still fetched when listening stops goes
    back to the queue at once, wherever the stop caught it.
    """

    def __init__(self, what: str, interval: float, renew: Renew[Key]) -> None:
        """Renew the leases of what is held every ``interval`` seconds."""
        self.what = what
        self.interval = interval
        self.renew = renew
        self.held: dict[Key, int] = {}
        self.fetched: set[Key] = set()
        self._task: asyncio.Task[None] | None = None
        self.outage = OutageLog(f"renewing leases of {what}", logger)

    def add(self, key: Key, delivery: int) -> None:
        """Hold ``key``, just fetched with ``delivery``."""
        self.held[key] = delivery
        self.fetched.add(key)

    def hand_over(self, key: Key) -> None:
        """Note that ``key`` went to taskiq: it may be running now."""
        self.fetched.discard(key)

    def forget(self, key: Key, delivery: int) -> None:
        """Stop holding ``key`` if it is still held with ``delivery``."""
        if self.held.get(key) == delivery:
            del self.held[key]
            self.fetched.discard(key)

    def items(self) -> list[tuple[Key, int]]:
        """Return a snapshot of what is held."""
        return list(self.held.items())

    def fetched_items(self) -> list[tuple[Key, int]]:
        """Return what is held but was never handed to taskiq."""
        return [(key, self.held[key]) for key in self.fetched if key in self.held]

    def start(self) -> None:
        """Start renewing (again, if the renewal task ended)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(
                self._renew_forever(), name=f"lease keeper of {self.what}"
            )

    async def stop(self) -> None:
        """Stop renewing; what is held stays held."""
        if self._task is not None:
            await stop_task(self._task)
            self._task = None

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            for chunk in chunks(self.items()):
                try:
                    lost = await asyncio.wait_for(self.renew(chunk), self.interval)
                except Exception as error:  # noqa: BLE001 - the keeper must go on
                    self.outage.failed(error)
                    continue
                self.outage.succeeded()
                raise_if_cancelled()
                handed = dict(chunk)
                for key in lost:
                    if key in handed and self.held.get(key) == handed[key]:
                        del self.held[key]
                        logger.warning(
                            "Lost the lease of %s on %s: it may run twice",
                            key,
                            self.what,
                        )

"""The reliable-queue core that the list and stream families share.

A family (``list_queue.py``, ``stream.py``) supplies its keys, its scripts and how
it fetches; this module does the rest, once for both: what a worker holds and the
renewal of its leases, admission (in a worker, what it cannot run becomes a dead
letter), acks and burials that share calls and ride out outages, giving back what
was fetched or held when listening or the broker stops, and the dead-letter API.

Every message a worker holds is named by its queue and id (a stream broker reads
several streams); the family's hooks get them grouped by queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Iterable,
    Sequence,
)
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, Protocol

from redis.exceptions import ResponseError
from taskiq import AckableMessage, AsyncResultBackend

from taskiq_redis_lua import options, scripts, topology
from taskiq_redis_lua.backoff import (
    RETRYABLE,
    OutageLog,
    attempt,
    raise_if_misconfigured,
)
from taskiq_redis_lua.batching import ACK_LINGER, Batcher
from taskiq_redis_lua.dead_letters import DeadLetter
from taskiq_redis_lua.decoding import DecodesOnce
from taskiq_redis_lua.leases import CHUNK, Holdings, chunks

#: A held message: its queue (stream) and its id there.
Ref = tuple[str, str]
#: A script and the keys and arguments of one call of it.
Call = tuple[scripts.Script, scripts.KeySet, list[scripts.Arg]]

#: Errors after which a settling step gives up and leaves the message to its lease.
SETTLING_ERRORS: tuple[type[Exception], ...] = (ResponseError, *RETRYABLE)
#: Seconds a cleanup step may take before shutdown goes on without it.
CLEANUP_SECONDS = 5.0
_CLEANUP_ERRORS: tuple[type[Exception], ...] = (asyncio.TimeoutError, *SETTLING_ERRORS)


class ReliableMessage(AckableMessage):
    """A message handed out by a reliable queue; ``await ack()`` settles it."""

    ack: Callable[[], Awaitable[None]]
    id: str
    queue: str
    delivery: int


@dataclass(frozen=True)
class Delivery:
    """A message as Redis handed it to this worker."""

    queue: str
    id: str
    delivery: int
    payload: bytes | None

    @property
    def ref(self) -> Ref:
        """How this worker's holdings name it."""
        return (self.queue, self.id)


class Fetcher(Protocol):
    """How a family waits for work: batches of deliveries, already held."""

    async def next_batch(self) -> list[Delivery]:
        """Wait until at least one message is handed to this worker."""

    async def close(self) -> None:
        """Stop fetching (and whatever runs for it); callable more than once."""


def text(value: bytes | str) -> str:
    """Return a reply's bytes as text."""
    return value.decode() if isinstance(value, bytes) else value


def flat(pairs: Iterable[tuple[str, int]]) -> list[scripts.Arg]:
    """Return ``[(id, delivery), ...]`` as ``[id, delivery, ...]``."""
    return [item for pair in pairs for item in pair]


def by_queue(held: Iterable[tuple[Ref, int]]) -> dict[str, list[tuple[str, int]]]:
    """Group held messages by queue: ``{queue: [(id, delivery), ...]}``."""
    grouped: dict[str, list[tuple[str, int]]] = {}
    for (queue, message_id), delivery in held:
        grouped.setdefault(queue, []).append((message_id, delivery))
    return grouped


async def bounded(step: Awaitable[object], log: logging.Logger) -> None:
    """Run a cleanup step without letting a dead Redis hold up shutdown."""
    try:
        await asyncio.wait_for(step, timeout=CLEANUP_SECONDS)
    except _CLEANUP_ERRORS as error:
        log.warning("Cleanup step gave up: %r", error)


class DeadLetterAPI:
    """Reading, requeueing and purging a queue's dead letters; a family says where."""

    endpoint: topology.Endpoint
    queue_name: str

    def _queue(self, queue_name: str | None) -> str:
        """Return the queue a call names (the broker's own by default), checked."""
        if queue_name is None:
            return self.queue_name
        return options.queue_name("queue_name", queue_name)

    def _requeue_target(self, queue: str) -> tuple[scripts.Script, scripts.KeySet]:
        raise NotImplementedError

    def _purge_target(self, queue: str) -> tuple[scripts.Script, scripts.KeySet]:
        raise NotImplementedError

    async def count_dead(self, queue_name: str | None = None) -> int:
        """Return the number of dead letters of the queue."""
        raise NotImplementedError

    async def _dead_page(self, queue: str, offset: int, limit: int) -> list[DeadLetter]:
        raise NotImplementedError

    async def list_dead(
        self,
        limit: int = 100,
        offset: int = 0,
        queue_name: str | None = None,
    ) -> list[DeadLetter]:
        """Return up to ``limit`` dead letters, oldest first, from ``offset``.

        A stream's dead letters are read from its start, so there ``offset + limit``
        may not pass 10,000.
        """
        options.positive_int("limit", limit)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be a whole number >= 0, got {offset!r}")
        return await self._dead_page(self._queue(queue_name), offset, limit)

    async def requeue_dead(
        self,
        ids: Iterable[str] | None = None,
        queue_name: str | None = None,
    ) -> int:
        """Send dead letters back to the queue (``ids``, or all); return how many."""
        script, keys = self._requeue_target(self._queue(queue_name))
        client = self.endpoint.client
        moved = 0
        if ids is not None:
            for chunk in chunks(ids):
                moved += await scripts.run(client, script, keys, ["ids", *chunk])
            return moved
        for _ in range(await self.count_dead(queue_name) // CHUNK + 1):
            step = await scripts.run(client, script, keys, ["oldest", CHUNK])
            moved += step
            if not step:
                break
        return moved

    async def purge_dead(self, queue_name: str | None = None) -> int:
        """Delete every dead letter of the queue for good; return how many."""
        script, keys = self._purge_target(self._queue(queue_name))
        purged = 0
        for _ in range(await self.count_dead(queue_name) // CHUNK + 1):
            step = await scripts.run(self.endpoint.client, script, keys, [CHUNK])
            purged += step
            if not step:
                break
        return purged


class ReliableBroker(DeadLetterAPI, DecodesOnce):
    """What the list and stream brokers do alike; a family fills in the hooks."""

    #: The family's scripts, loaded by ``startup``.
    _family_scripts: ClassVar[Sequence[scripts.Script]] = ()
    #: The type of the messages ``listen()`` yields.
    _message_type: ClassVar[type[ReliableMessage]] = ReliableMessage
    _log: ClassVar[logging.Logger] = logging.getLogger(__name__)

    def __init__(
        self,
        endpoint: topology.Endpoint,
        *,
        queue_name: str,
        max_deliveries: int,
        max_dead_letters: int,
        renew_every: float,
        result_backend: AsyncResultBackend[Any] | None,
        task_id_generator: Callable[[], str] | None,
    ) -> None:
        """Hold messages of ``queue_name``; renew their leases every ``renew_every``."""
        super().__init__(
            result_backend=result_backend, task_id_generator=task_id_generator
        )
        self.queue_name = options.queue_name("queue_name", queue_name)
        self.max_deliveries = options.positive_int("max_deliveries", max_deliveries)
        self.max_dead_letters = options.positive_int(
            "max_dead_letters", max_dead_letters
        )
        self.endpoint = endpoint
        self._holdings: Holdings[Ref] = Holdings(
            self.queue_name, renew_every, self._renew
        )
        self._acks: Batcher[str, tuple[str, int], bool] = Batcher(
            self._ack_batch, CHUNK, linger=ACK_LINGER
        )
        self._fetcher: Fetcher | None = None
        self._listened = False  # whether Redis may know this worker (a consumer)
        self._renewal_outages: dict[str, OutageLog] = {}

    # -- hooks of a family ----------------------------------------------------------

    def _start_fetching(self) -> Fetcher:
        raise NotImplementedError

    async def _prepare(self) -> None:
        """Make what the queue needs in Redis (the stream's consumer groups)."""

    async def _leave(self) -> None:
        """Remove what this worker alone needed in Redis (the stream's consumer)."""

    def _ack_call(self, queue: str, held: list[tuple[str, int]]) -> Call:
        raise NotImplementedError

    def _bury_call(self, delivery: Delivery, reason: str) -> Call:
        raise NotImplementedError

    def _release_call(
        self, queue: str, held: list[tuple[str, int]], *, counted: bool
    ) -> Call:
        raise NotImplementedError

    def _renew_call(self, queue: str, held: list[tuple[str, int]]) -> Call:
        raise NotImplementedError

    # -- lifecycle -------------------------------------------------------------------

    async def startup(self) -> None:
        """Prepare the queue and load its scripts (calls also work without this)."""
        await super().startup()
        try:
            await self._prepare()
            await scripts.load(self.endpoint.client, self._family_scripts)
        except RETRYABLE as error:
            raise_if_misconfigured(error)
            self._log.warning(
                "Redis is not reachable yet (%s); preparing on use", error
            )

    async def shutdown(self) -> None:
        """Return unfinished messages at once (the delivery counts), then disconnect.

        Messages fetched but never handed to taskiq went back when ``listen()`` was
        closed; what is still held here was handed over and not acked (a task that
        outlived ``--wait-tasks-timeout``, or one taskiq dropped).
        """
        if self._fetcher is not None:
            await self._fetcher.close()
        await self._holdings.stop()
        if held := self._holdings.items():
            self._log.info(
                "Returning %d unfinished message(s) of %s", len(held), self.queue_name
            )
            await self._release(held, counted=True)
        if self._listened:
            await bounded(self._leave(), self._log)
        await super().shutdown()
        await self.endpoint.close()

    # -- receiving -------------------------------------------------------------------

    async def listen(self) -> AsyncGenerator[ReliableMessage, None]:
        """Yield messages as they are handed to this worker; each must be acked."""
        self._holdings.start()
        self._listened = True
        fetcher = self._fetcher = self._start_fetching()
        pending: deque[Delivery] = deque()
        try:
            while True:
                if not pending:
                    pending.extend(await fetcher.next_batch())
                    continue
                delivery = pending.popleft()
                refusal = self._refusal_of(delivery)
                if refusal is not None:
                    await self._bury(delivery, refusal)
                    continue
                self._holdings.hand_over(delivery.ref)
                yield self._message_type(  # validating is cheaper than model_construct
                    data=delivery.payload or b"",
                    ack=partial(
                        self._ack, delivery.queue, delivery.id, delivery.delivery
                    ),
                    id=delivery.id,
                    queue=delivery.queue,
                    delivery=delivery.delivery,
                )
        finally:
            # Whatever was fetched and not handed over goes back, wherever a
            # cancellation caught the fetch.
            await fetcher.close()
            self._fetcher = None
            await bounded(self._release(self._holdings.fetched_items()), self._log)

    def _hold(self, deliveries: list[Delivery]) -> list[Delivery]:
        """Hold what Redis just handed to this worker; return it."""
        for delivery in deliveries:
            self._holdings.add(delivery.ref, delivery.delivery)
        return deliveries

    def _held(self, queue: str, handed: Sequence[Any]) -> list[Delivery]:
        """Hold what a script handed out as flat ``id, delivery, payload`` triples."""
        return self._hold(
            [
                Delivery(queue, text(handed[i]), int(handed[i + 1]), handed[i + 2])
                for i in range(0, len(handed), 3)
            ]
        )

    def _report_buried(self, queue: str, buried: Sequence[Any]) -> None:
        """Log what a script buried, given as flat ``id, reason`` pairs."""
        for i in range(0, len(buried), 2):
            self._report_burial(queue, text(buried[i]), text(buried[i + 1]))

    def _report_burial(self, queue: str, message_id: str, reason: str) -> None:
        self._log.warning(
            "Message %s of %s is now a dead letter: %s", message_id, queue, reason
        )

    def _refusal_of(self, delivery: Delivery) -> str | None:
        """Return why ``delivery`` is buried instead of handed to taskiq, or None.

        A message without a payload (gone, or a stream entry no broker wrote) is
        buried everywhere; the rest only inside a worker process.
        """
        if delivery.payload is None:
            return "payload missing"
        return self._refusal(delivery.payload)

    # -- settling --------------------------------------------------------------------

    async def _ack(self, queue: str, message_id: str, delivery: int) -> None:
        """Settle the message; acks made at the same time share one script call."""
        try:
            settled = await self._acks.submit(queue, (message_id, delivery))
        finally:
            self._holdings.forget((queue, message_id), delivery)
        if not settled:
            self._log.info(
                "Ack of message %s (delivery %d) of %s came after it was handed out"
                " again",
                message_id,
                delivery,
                queue,
            )

    async def _ack_batch(self, queue: str, held: list[tuple[str, int]]) -> list[bool]:
        flags = await attempt(
            f"acking {len(held)} message(s) on {queue}",
            self._log,
            partial(
                scripts.run,
                self.endpoint.client,
                *self._ack_call(queue, held),
                client_retry=False,
            ),
        )
        if flags is None:  # gave up, and said so: the leases run out instead
            return [True] * len(held)
        return [bool(int(flag)) for flag in flags]

    async def _bury(self, delivery: Delivery, reason: str) -> None:
        """Make a message this worker holds a dead letter."""
        buried = await attempt(
            f"burying {delivery.id} on {delivery.queue}",
            self._log,
            partial(
                scripts.run,
                self.endpoint.client,
                *self._bury_call(delivery, reason),
                client_retry=False,
            ),
        )
        if buried:
            self._report_burial(delivery.queue, delivery.id, reason)
        self._holdings.forget(delivery.ref, delivery.delivery)

    async def _release(
        self, held: Sequence[tuple[Ref, int]], *, counted: bool = False
    ) -> None:
        """Give messages back for the next worker, at once.

        ``counted=False`` is for messages never handed to taskiq: that delivery does
        not count towards ``max_deliveries``.
        """
        for queue, messages in by_queue(held).items():
            for chunk in chunks(messages):
                call = self._release_call(queue, chunk, counted=counted)
                try:
                    await scripts.run(self.endpoint.client, *call)
                except SETTLING_ERRORS as error:
                    self._log.warning(
                        "Could not give back %d message(s) of %s (%s); they come"
                        " back once their lease runs out",
                        len(chunk),
                        queue,
                        error,
                    )
                for message_id, delivery in chunk:
                    self._holdings.forget((queue, message_id), delivery)

    async def _renew(self, held: list[tuple[Ref, int]]) -> list[Ref]:
        """Renew the leases of ``held``; return those lost meanwhile."""
        lost: list[Ref] = []
        for queue, messages in by_queue(held).items():
            try:
                gone = await scripts.run(
                    self.endpoint.client, *self._renew_call(queue, messages)
                )
            except SETTLING_ERRORS as error:  # the other queues still get renewed
                self._renewals(queue).failed(error)
                continue
            self._renewals(queue).succeeded()
            lost.extend((queue, text(message_id)) for message_id in gone)
        return lost

    def _renewals(self, queue: str) -> OutageLog:
        """Return the outage log of lease renewals on ``queue`` (a line per outage)."""
        if queue not in self._renewal_outages:
            what = f"renewing leases on {queue}"
            self._renewal_outages[queue] = OutageLog(what, self._log)
        return self._renewal_outages[queue]

"""Reliable list queue: leases, redelivery, dead letters, delay and priority.

A message is stored once (``kick``), handed to one worker at a time with a lease
(``pop``), and removed only by an ``ack`` that carries the delivery number it was
handed out with. A worker renews the leases of what it holds; when a worker dies,
its leases run out and the messages go to the next worker. Every transition is one
script under ``lua/queue/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import NoScriptError
from taskiq import AckableMessage, AsyncResultBackend, BrokerMessage

from taskiq_redis_lua import labels, options, scripts, topology, wire
from taskiq_redis_lua.backoff import (
    RETRYABLE,
    Backoff,
    attempt,
    raise_if_misconfigured,
)
from taskiq_redis_lua.batching import ACK_LINGER, Batcher
from taskiq_redis_lua.compat import (
    ClusterAttributes,
    SentinelAttributes,
    SingleNodeAttributes,
)
from taskiq_redis_lua.dead_letters import DeadLetter
from taskiq_redis_lua.decoding import DecodesOnce
from taskiq_redis_lua.keys import ListQueueKeys, list_queue_keys
from taskiq_redis_lua.leases import CHUNK, Holdings, chunks
from taskiq_redis_lua.stats import ListQueueStats

logger = logging.getLogger("taskiq_redis_lua.list_queue")

_T = TypeVar("_T")

_KICK = scripts.script("queue/kick")
_POP = scripts.script("queue/pop")
_ACK = scripts.script("queue/ack")
_EXTEND = scripts.script("queue/extend")
_RELEASE = scripts.script("queue/release")
_BURY = scripts.script("queue/bury")
_REQUEUE = scripts.script("queue/requeue")
_PURGE = scripts.script("queue/purge")
_DEAD = scripts.script("queue/dead")
_STATS = scripts.script("queue/stats")
_SCRIPTS = [
    _KICK, _POP, _ACK, _EXTEND, _RELEASE, _BURY, _REQUEUE, _PURGE, _DEAD, _STATS,
]  # fmt: skip

#: Delayed messages and expired leases moved back to ready by one pop.
_PROMOTE_LIMIT = 1000
#: Quiet waits after which an idle worker looks at the queue anyway, in case a
#: wake-up was lost (a worker killed right after taking the marker).
_QUIET_WAITS_BEFORE_LOOKING = 5
#: A batch taken up by taskiq within this many seconds doubles the next pop (up to
#: fetch_batch_size); one that lasted longer halves it. A busy worker pops many at
#: once; a worker of slow tasks takes one at a time and leaves the rest to others.
_RAMP_WINDOW = 0.05
#: Shortest lease (seconds): renewals run every third of it.
_MIN_VISIBILITY_TIMEOUT = 0.1
#: Closer than this (seconds) to a due time counts as due.
_NOW = 0.001
#: Most messages one kick call stores (concurrent kicks share a call).
_KICK_BATCH = 100


class QueueMessage(AckableMessage):
    """A message handed out by a list queue; ``await ack()`` removes it from Redis."""

    ack: Callable[[], Awaitable[None]]
    id: str
    queue: str
    delivery: int


@dataclass(frozen=True)
class _Delivery:
    id: str
    delivery: int
    payload: bytes


def _flat(pairs: Iterable[tuple[str, int]]) -> list[str | int]:
    return [item for pair in pairs for item in pair]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class _Popped:
    deliveries: list[_Delivery]
    now_ms: int
    next_due_ms: int


_CLEANUP_ERRORS: tuple[type[Exception], ...] = (asyncio.TimeoutError, *RETRYABLE)


async def _bounded(cleanup: Awaitable[None], seconds: float = 5.0) -> None:
    """Run a cleanup step without letting a dead Redis hold up shutdown."""
    try:
        await asyncio.wait_for(cleanup, timeout=seconds)
    except _CLEANUP_ERRORS as error:
        logger.warning("Cleanup step gave up: %r", error)


class _Waiter:
    """How an idle worker waits: blocked on the marker, awake when work is due.

    The marker is one member whose score says when to look at the queue (server
    clock, ms; 0 = now). Kicks lower it; a pop that hands work out leaves it at the
    next due time, so one idle worker takes that knowledge and wakes for it. A
    worker that stops listening passes what it knows on.
    """

    def __init__(self, queue: _ListQueue) -> None:
        self.queue = queue
        self.client = queue.endpoint.client
        self.marker = queue._keys.marker  # a helper of the queue
        self.clock_offset = 0.0  # server seconds minus monotonic seconds
        self.due_ms: int | None = None  # the earliest due time this worker knows of

    def _seconds_until(self, due_ms: int) -> float:
        return due_ms / 1000 - self.clock_offset - time.monotonic()

    def _learn(self, due_ms: int) -> None:
        if due_ms >= 0 and (self.due_ms is None or due_ms < self.due_ms):
            self.due_ms = due_ms

    def _heard(self, popped: _Popped) -> list[_Delivery]:
        """Take in what a pop said; return what it handed out (maybe nothing)."""
        self.clock_offset = popped.now_ms / 1000 - time.monotonic()
        self.due_ms = None  # handing out, the pop passed it on with the marker
        if not popped.deliveries:
            self._learn(popped.next_due_ms)
        return popped.deliveries

    async def next_batch(self, count: int) -> list[_Delivery]:
        """Wait until the queue hands this worker at least one (at most ``count``)."""
        backoff = Backoff(f"listening on {self.queue.queue_name}", logger)
        look = True
        quiet_waits = 0
        while True:
            popped: _Popped | None = None
            try:
                if look:
                    popped = await self.queue._pop(count)
                    backoff.succeeded()
                    if handed := self._heard(popped):
                        return handed
                    quiet_waits = 0
                timeout = self.queue.block_timeout
                if self.due_ms is not None:
                    timeout = min(timeout, self._seconds_until(self.due_ms))
                if timeout <= _NOW:
                    look = True
                    continue
                if isinstance(self.client, Redis):
                    woke, popped = await self.queue._block_then_pop(
                        self.client, timeout, count
                    )
                else:  # a cluster client: the pop follows when the wait ends
                    woke = await self.client.bzpopmin([self.marker], timeout)
                    popped = None
                backoff.succeeded()
            except RETRYABLE as error:
                await backoff.failed(error)
                look = True
                continue
            if popped is not None:  # it ran after the wait: what it says is newest
                if handed := self._heard(popped):
                    return handed
            elif woke:
                self._learn(int(float(woke[2])))
            due = self.due_ms is not None and self._seconds_until(self.due_ms) <= _NOW
            quiet_waits = 0 if woke or popped is not None else quiet_waits + 1
            look = due or quiet_waits >= _QUIET_WAITS_BEFORE_LOOKING

    async def pass_on(self) -> None:
        """Leave the due time this worker knew of on the marker for another one."""
        if self.due_ms is not None:
            await self.client.zadd(self.marker, {"0": self.due_ms}, lt=True)


class _ListQueue(DecodesOnce):
    """The list queue broker. The public classes differ only in how they connect."""

    def __init__(
        self,
        endpoint: topology.Endpoint,
        *,
        queue_name: str,
        result_backend: AsyncResultBackend[Any] | None,
        task_id_generator: Callable[[], str] | None,
        visibility_timeout: float,
        max_deliveries: int,
        fetch_batch_size: int,
        max_dead_letters: int,
        block_timeout: float,
    ) -> None:
        super().__init__(
            result_backend=result_backend, task_id_generator=task_id_generator
        )
        self.queue_name = options.queue_name("queue_name", queue_name)
        self.visibility_timeout = options.positive_seconds(
            "visibility_timeout", visibility_timeout, minimum=_MIN_VISIBILITY_TIMEOUT
        )
        self.max_deliveries = options.positive_int("max_deliveries", max_deliveries)
        self.fetch_batch_size = options.batch_size("fetch_batch_size", fetch_batch_size)
        self.max_dead_letters = options.positive_int(
            "max_dead_letters", max_dead_letters
        )
        self.block_timeout = options.positive_seconds("block_timeout", block_timeout)
        if (
            endpoint.socket_timeout is not None
            and block_timeout >= endpoint.socket_timeout
        ):
            raise ValueError(
                f"block_timeout ({block_timeout} s) must be shorter than socket_timeout"
                f" ({endpoint.socket_timeout} s), or every idle wait ends in a timeout",
            )
        endpoint.require_connections(2, "a waiting worker holds one connection")
        self.endpoint = endpoint
        self._keys = list_queue_keys(self.queue_name)
        self._holdings: Holdings[str] = Holdings(
            self.queue_name, self.visibility_timeout / 3, self._renew
        )
        self._kicks: Batcher[str, tuple[bytes | str, int, int], str] = Batcher(
            self._kick_batch, _KICK_BATCH
        )
        self._acks: Batcher[None, tuple[str, int], bool] = Batcher(
            self._ack_batch, CHUNK, linger=ACK_LINGER
        )

    # -- lifecycle ---------------------------------------------------------------

    async def startup(self) -> None:
        """Load the queue's scripts (calls also work without this)."""
        await super().startup()
        try:
            await scripts.load(self.endpoint.client, _SCRIPTS)
        except RETRYABLE as error:
            raise_if_misconfigured(error)
            logger.warning(
                "Could not load the Lua scripts yet (%s); they load on use", error
            )

    async def shutdown(self) -> None:
        """Return unfinished messages at once (the delivery counts), then disconnect.

        Messages fetched but never handed to taskiq went back when ``listen()`` was
        closed; what is still held here was handed over and not acked (a task that
        outlived ``--wait-tasks-timeout``, or one taskiq dropped), so it goes back
        to the front of the queue as a delivery that happened.
        """
        await self._holdings.stop()
        if held := self._holdings.items():
            logger.info(
                "Returning %d unfinished message(s) to %s", len(held), self.queue_name
            )
            await self._release(held, counted=True)
        await super().shutdown()
        await self.endpoint.close()

    # -- sending -----------------------------------------------------------------

    async def kick(self, message: BrokerMessage) -> None:
        """Store the message and queue it, honouring queue_name, priority and delay.

        A lone kick goes at once; kicks made while it is in flight share the next
        script call.
        """
        queue_name = options.queue_name(
            "queue_name label", message.labels.get("queue_name") or self.queue_name
        )
        await self._kicks.submit(
            queue_name,
            (
                message.message,
                labels.priority(message.labels.get("priority")),
                labels.delay_ms(message.labels.get("delay")),
            ),
        )

    async def _kick_batch(
        self, queue_name: str, messages: list[tuple[bytes | str, int, int]]
    ) -> list[str]:
        keys = list_queue_keys(queue_name)
        ids = await scripts.run(
            self.endpoint.client,
            _KICK,
            [keys.seq, keys.msgs, keys.ready, keys.delayed, keys.marker],
            [part for message in messages for part in message],
        )
        return [_text(message_id) for message_id in ids]

    # -- receiving ---------------------------------------------------------------

    async def listen(self) -> AsyncGenerator[QueueMessage, None]:
        """Yield messages as they become ready; each must be acked to be removed."""
        self._holdings.start()
        waiter = _Waiter(self)
        pending: deque[_Delivery] = deque()
        count, fetched_at = 1, 0.0
        try:
            while True:
                if not pending:
                    if time.monotonic() - fetched_at < _RAMP_WINDOW:
                        count = min(count * 2, self.fetch_batch_size)
                    else:
                        count = max(count // 2, 1)
                    pending.extend(await waiter.next_batch(count))
                    fetched_at = time.monotonic()
                    continue
                delivery = pending.popleft()
                if not await self._admissible(delivery):
                    continue
                self._holdings.hand_over(delivery.id)
                yield QueueMessage(  # validating is cheaper than model_construct
                    data=delivery.payload,
                    ack=partial(self._ack, delivery.id, delivery.delivery),
                    id=delivery.id,
                    queue=self.queue_name,
                    delivery=delivery.delivery,
                )
        finally:
            # Whatever was fetched and not handed over goes back, wherever a
            # cancellation caught the fetch.
            await _bounded(self._release(self._holdings.fetched_items()))
            await _bounded(waiter.pass_on())

    def _pop_call(self, count: int) -> tuple[list[str], list[scripts.Arg]]:
        """Return the keys and arguments of the pop script for ``count`` messages."""
        keys = self._keys
        return (
            [
                keys.ready,
                keys.delayed,
                keys.inflight,
                keys.msgs,
                keys.deliveries,
                keys.dead,
                keys.reasons,
                keys.marker,
            ],
            [
                round(self.visibility_timeout * 1000),
                count,
                self.max_deliveries,
                _PROMOTE_LIMIT,
                self.max_dead_letters,
            ],
        )

    async def _pop(self, count: int) -> _Popped:
        """Run the pop script; if cancelled meanwhile, give its messages back."""
        call = asyncio.ensure_future(
            scripts.run(self.endpoint.client, _POP, *self._pop_call(count))
        )
        try:
            reply = await asyncio.shield(call)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                self._take(await call)  # held and fetched: listen() gives them back
            raise
        return self._take(reply)

    async def _block_then_pop(
        self, client: Redis, timeout: float, count: int
    ) -> tuple[Any, _Popped | None]:
        """BZPOPMIN on the marker with the pop script behind it in the same write.

        Redis runs the pop as soon as the wait ends, so a woken worker has its
        messages without a second round trip. Returns the BZPOPMIN reply and the
        pop's outcome (None when the script was not loaded: the next look loads
        it). Cancelled in the instant between the two replies, a popped batch
        comes back when its lease runs out.
        """
        keys, args = self._pop_call(count)
        packed = wire.pack_command("BZPOPMIN", self._keys.marker, timeout)
        packed += wire.pack_evalsha(_POP.sha, [(keys, args)])
        woke, reply = await wire.exchange(client, packed, 2)
        if isinstance(woke, Exception):
            raise woke
        if isinstance(reply, NoScriptError):
            return woke, None
        reply = scripts.reply_or_error(_POP, reply)
        if isinstance(reply, Exception):
            raise reply
        return woke, self._take(reply)

    def _take(self, reply: Sequence[Any]) -> _Popped:
        now_ms, next_due_ms, handed, buried = reply
        for index in range(0, len(buried), 2):
            logger.warning(
                "Message %s of %s is now a dead letter: %s",
                _text(buried[index]),
                self.queue_name,
                _text(buried[index + 1]),
            )
        deliveries = [
            _Delivery(
                id=_text(handed[i]), delivery=int(handed[i + 1]), payload=handed[i + 2]
            )
            for i in range(0, len(handed), 3)
        ]
        for delivery in deliveries:
            self._holdings.add(delivery.id, delivery.delivery)
        return _Popped(deliveries, int(now_ms), int(next_due_ms))

    async def _admissible(self, delivery: _Delivery) -> bool:
        """Bury a message that this worker could not run instead of dropping it."""
        reason = self._refusal(delivery.payload)
        if reason is None:
            return True
        await self._bury(delivery, reason)
        return False

    # -- settling ----------------------------------------------------------------

    async def _ack(self, message_id: str, delivery: int) -> None:
        """Remove the message; acks made at the same time share one script call."""
        try:
            removed = await self._acks.submit(None, (message_id, delivery))
        finally:
            self._holdings.forget(message_id, delivery)
        if not removed:
            logger.info(
                "Ack of message %s (delivery %d) of %s came after it was handed out"
                " again",
                message_id,
                delivery,
                self.queue_name,
            )

    async def _ack_batch(self, _: None, held: list[tuple[str, int]]) -> list[bool]:
        keys = self._keys
        removed = await attempt(
            f"acking {len(held)} message(s) on {self.queue_name}",
            logger,
            partial(
                scripts.run,
                self.endpoint.client,
                _ACK,
                [keys.ready, keys.inflight, keys.msgs, keys.deliveries],
                _flat(held),
            ),
        )
        if removed is None:  # gave up, and said so: the leases expire instead
            return [True] * len(held)
        return [bool(int(flag)) for flag in removed]

    async def _bury(self, delivery: _Delivery, reason: str) -> None:
        keys = self._keys
        buried = await attempt(
            f"burying {delivery.id} on {self.queue_name}",
            logger,
            partial(
                scripts.run,
                self.endpoint.client,
                _BURY,
                [keys.inflight, keys.deliveries, keys.dead, keys.reasons, keys.msgs],
                [delivery.id, delivery.delivery, reason, self.max_dead_letters],
            ),
        )
        if buried:
            logger.warning(
                "Message %s of %s is now a dead letter: %s",
                delivery.id,
                self.queue_name,
                reason,
            )
        self._holdings.forget(delivery.id, delivery.delivery)

    async def _release(
        self, held: Sequence[tuple[str, int]], *, counted: bool = False
    ) -> None:
        """Put messages back in front of the queue.

        ``counted=False`` is for messages never handed to taskiq: that delivery does
        not count towards ``max_deliveries``.
        """
        keys = self._keys
        try:
            for chunk in chunks(held):
                await scripts.run(
                    self.endpoint.client,
                    _RELEASE,
                    [keys.ready, keys.inflight, keys.deliveries, keys.marker],
                    ["0" if counted else "1", *_flat(chunk)],
                )
        except RETRYABLE as error:
            logger.warning(
                "Could not return %d message(s) to %s (%s); they run again once their"
                " lease expires",
                len(held),
                self.queue_name,
                error,
            )
        for message_id, delivery in held:
            self._holdings.forget(message_id, delivery)

    async def _renew(self, held: list[tuple[str, int]]) -> list[str]:
        """Renew the leases of ``held``; return the ids whose lease was lost."""
        keys = self._keys
        lost = await scripts.run(
            self.endpoint.client,
            _EXTEND,
            [keys.inflight, keys.deliveries],
            [round(self.visibility_timeout * 1000), *_flat(held)],
        )
        return [_text(message_id) for message_id in lost]

    # -- inspection ----------------------------------------------------------------

    async def stats(self, queue_name: str | None = None) -> list[ListQueueStats]:
        """Return a snapshot of the queue: ready, delayed, in flight, dead."""
        keys = self._keys_for(queue_name)
        now, ready, delayed, in_flight, dead, lease, due, used = await scripts.run(
            self.endpoint.client,
            _STATS,
            [keys.ready, keys.delayed, keys.inflight, keys.dead, keys.seq],
        )

        def seconds_from_now(moment: int) -> float | None:
            return None if int(moment) < 0 else (int(moment) - int(now)) / 1000

        return [
            ListQueueStats(
                queue=queue_name or self.queue_name,
                ready=int(ready),
                delayed=int(delayed),
                in_flight=int(in_flight),
                dead=int(dead),
                next_lease_expiry=seconds_from_now(lease),
                next_delayed_due=seconds_from_now(due),
                exists=bool(int(used)),
            )
        ]

    # -- dead letters --------------------------------------------------------------

    def _keys_for(self, queue_name: str | None) -> ListQueueKeys:
        if queue_name is None:
            return self._keys
        return list_queue_keys(options.queue_name("queue_name label", queue_name))

    async def count_dead(self, queue_name: str | None = None) -> int:
        """Return the number of dead letters of the queue."""
        return int(await self.endpoint.client.zcard(self._keys_for(queue_name).dead))

    async def list_dead(
        self,
        limit: int = 100,
        offset: int = 0,
        queue_name: str | None = None,
    ) -> list[DeadLetter]:
        """Return up to ``limit`` dead letters, oldest first, from ``offset``."""
        options.positive_int("limit", limit)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be a whole number >= 0, got {offset!r}")
        keys = self._keys_for(queue_name)
        _, entries = await scripts.run(
            self.endpoint.client,
            _DEAD,
            [keys.dead, keys.reasons, keys.deliveries, keys.msgs],
            [offset, limit],
        )
        return [
            DeadLetter(
                id=_text(entries[i]),
                queue=queue_name or self.queue_name,
                died_at=datetime.fromtimestamp(
                    int(entries[i + 1]) / 1000, tz=timezone.utc
                ),
                deliveries=int(entries[i + 2]),
                reason=_text(entries[i + 3]),
                payload=entries[i + 4],
            )
            for i in range(0, len(entries), 5)
        ]

    async def requeue_dead(
        self,
        ids: Iterable[str] | None = None,
        queue_name: str | None = None,
    ) -> int:
        """Move dead letters back to ready (``ids``, or all); return how many moved."""
        keys = self._keys_for(queue_name)
        target = [keys.dead, keys.reasons, keys.deliveries, keys.ready, keys.marker]
        client = self.endpoint.client
        moved = 0
        if ids is not None:
            for chunk in chunks(ids):
                moved += await scripts.run(client, _REQUEUE, target, ["ids", *chunk])
            return moved
        for _ in range(await self.count_dead(queue_name) // CHUNK + 1):
            step = await scripts.run(client, _REQUEUE, target, ["oldest", CHUNK])
            moved += step
            if not step:
                break
        return moved

    async def purge_dead(self, queue_name: str | None = None) -> int:
        """Delete every dead letter of the queue for good; return how many."""
        keys = self._keys_for(queue_name)
        target = [keys.dead, keys.reasons, keys.deliveries, keys.msgs]
        purged = 0
        for _ in range(await self.count_dead(queue_name) // CHUNK + 1):
            step = await scripts.run(self.endpoint.client, _PURGE, target, [CHUNK])
            purged += step
            if not step:
                break
        return purged


class ListQueueBroker(SingleNodeAttributes, _ListQueue):
    """Reliable list queue on a single Redis server."""

    def __init__(
        self,
        url: str,
        task_id_generator: Callable[[], str] | None = None,
        result_backend: AsyncResultBackend[Any] | None = None,
        queue_name: str = "taskiq",
        max_connection_pool_size: int | None = None,
        *,
        visibility_timeout: float = 30.0,
        max_deliveries: int = 5,
        fetch_batch_size: int = 50,
        max_dead_letters: int = 10_000,
        block_timeout: float = 2.0,
        **connection_kwargs: Any,
    ) -> None:
        """Connect to ``url``; the first five parameters are taskiq-redis's.

        :param url: ``redis://``, ``rediss://`` or ``unix://`` URL.
        :param task_id_generator: custom task id generator.
        :param result_backend: result backend (or use ``with_result_backend``).
        :param queue_name: the queue to send to and listen on.
        :param max_connection_pool_size: cap on the connection pool (None:
            redis-py's default, 100 in redis-py 8).
            A worker holds one connection while it waits, so allow at least two.
        :param visibility_timeout: seconds a handed-out message stays leased before
            it goes to another worker. A living worker renews the leases of what it
            holds every third of this, so it only bounds how long a dead worker's
            messages wait.
        :param max_deliveries: a message handed out this often without an ack (its
            workers died) becomes a dead letter instead of being delivered again.
        :param fetch_batch_size: most messages one pop takes. A busy worker ramps
            up to it; a worker of slow tasks takes one at a time.
        :param max_dead_letters: dead letters kept; the oldest are dropped beyond it.
        :param block_timeout: seconds an idle worker waits for a wake-up before it
            looks again; it must be shorter than the socket timeout.
        :param connection_kwargs: passed to redis-py's ``BlockingConnectionPool``.
        """
        super().__init__(
            topology.single_node(url, max_connection_pool_size, connection_kwargs),
            queue_name=queue_name,
            result_backend=result_backend,
            task_id_generator=task_id_generator,
            visibility_timeout=visibility_timeout,
            max_deliveries=max_deliveries,
            fetch_batch_size=fetch_batch_size,
            max_dead_letters=max_dead_letters,
            block_timeout=block_timeout,
        )


class ListQueueClusterBroker(ClusterAttributes, _ListQueue):
    """Reliable list queue on a Redis Cluster; each queue lives in one slot."""

    def __init__(
        self,
        url: str,
        queue_name: str = "taskiq",
        max_connection_pool_size: int = 2**31,
        *,
        result_backend: AsyncResultBackend[Any] | None = None,
        task_id_generator: Callable[[], str] | None = None,
        visibility_timeout: float = 30.0,
        max_deliveries: int = 5,
        fetch_batch_size: int = 50,
        max_dead_letters: int = 10_000,
        block_timeout: float = 2.0,
        **connection_kwargs: Any,
    ) -> None:
        """Connect to the cluster ``url`` belongs to; see :class:`ListQueueBroker`.

        ``max_connection_pool_size`` caps the connections per node.
        """
        super().__init__(
            topology.cluster(
                url, {"max_connections": max_connection_pool_size, **connection_kwargs}
            ),
            queue_name=queue_name,
            result_backend=result_backend,
            task_id_generator=task_id_generator,
            visibility_timeout=visibility_timeout,
            max_deliveries=max_deliveries,
            fetch_batch_size=fetch_batch_size,
            max_dead_letters=max_dead_letters,
            block_timeout=block_timeout,
        )


class ListQueueSentinelBroker(SentinelAttributes, _ListQueue):
    """Reliable list queue on the primary that Redis Sentinel names."""

    def __init__(
        self,
        sentinels: list[tuple[str, int]],
        master_name: str,
        result_backend: AsyncResultBackend[Any] | None = None,
        task_id_generator: Callable[[], str] | None = None,
        queue_name: str = "taskiq",
        min_other_sentinels: int = 0,
        sentinel_kwargs: Any | None = None,
        *,
        visibility_timeout: float = 30.0,
        max_deliveries: int = 5,
        fetch_batch_size: int = 50,
        max_dead_letters: int = 10_000,
        block_timeout: float = 2.0,
        **connection_kwargs: Any,
    ) -> None:
        """Connect through ``sentinels`` to ``master_name``.

        Other parameters as in :class:`ListQueueBroker`.
        """
        super().__init__(
            topology.sentinel(
                sentinels,
                master_name,
                min_other_sentinels,
                sentinel_kwargs,
                connection_kwargs,
            ),
            queue_name=queue_name,
            result_backend=result_backend,
            task_id_generator=task_id_generator,
            visibility_timeout=visibility_timeout,
            max_deliveries=max_deliveries,
            fetch_batch_size=fetch_batch_size,
            max_dead_letters=max_dead_letters,
            block_timeout=block_timeout,
        )

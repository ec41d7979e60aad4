"""Reliable list queue: leases, redelivery, dead letters, delay and priority.

A message is stored once (``kick``), handed to one worker at a time with a lease
(``pop``), and removed only by an ``ack`` that carries the delivery number it was
handed out with. What both queue families do alike (holding, renewing, acking,
burying, giving back, the dead-letter API) is in ``reliable.py``; this module has
the list's keys and scripts (``lua/queue/``), its sending, and how an idle worker
waits for work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, ClassVar

from taskiq import AsyncResultBackend, BrokerMessage

from taskiq_redis_lua import labels, options, scripts, topology
from taskiq_redis_lua.backoff import RETRYABLE, Backoff
from taskiq_redis_lua.batching import Batcher
from taskiq_redis_lua.compat import (
    ClusterAttributes,
    SentinelAttributes,
    SingleNodeAttributes,
)
from taskiq_redis_lua.dead_letters import DeadLetter
from taskiq_redis_lua.keys import ListQueueKeys, list_queue_keys
from taskiq_redis_lua.reliable import (
    Call,
    Delivery,
    ReliableBroker,
    ReliableMessage,
    bounded,
    flat,
    text,
)
from taskiq_redis_lua.stats import ListQueueStats, totals_and_age

logger = logging.getLogger("taskiq_redis_lua.list_queue")

_KICK = scripts.script("queue/kick")
_KICK_SORTED = scripts.script("queue/kick_sorted")
_POP = scripts.script("queue/pop")
_ACK = scripts.script("queue/ack")
_EXTEND = scripts.script("queue/extend")
_RELEASE = scripts.script("queue/release")
_BURY = scripts.script("queue/bury")
_REQUEUE = scripts.script("queue/requeue")
_PURGE = scripts.script("queue/purge")
_DEAD = scripts.script("queue/dead")
_STATS = scripts.script("queue/stats")

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


#: A message to kick: payload, priority, delay (ms).
_Kicked = tuple[bytes | str, int, int]


class QueueMessage(ReliableMessage):
    """A message handed out by a list queue; ``await ack()`` removes it from Redis."""


@dataclass(frozen=True)
class _Popped:
    deliveries: list[Delivery]
    now_ms: int
    next_due_ms: int


class _Waiter:
    """How an idle worker waits: blocked on the marker, awake when work is due.

    The marker is one member whose score says when to look at the queue (server
    clock, ms; 0 = now). Kicks lower it; a pop that hands work out leaves it at the
    next due time, so one idle worker takes that knowledge and wakes for it. A
    worker that stops listening passes what it knows on. Pops ramp: see
    :data:`_RAMP_WINDOW`.
    """

    def __init__(self, queue: _ListQueue) -> None:
        self.queue = queue
        self.client = queue.endpoint.client
        self.marker = queue._keys.marker
        self.clock_offset = 0.0  # server seconds minus monotonic seconds
        self.due_ms: int | None = None  # the earliest due time this worker knows of
        self.count = 1  # messages the next pop asks for
        self.fetched_at = 0.0

    async def next_batch(self) -> list[Delivery]:
        """Wait until the queue hands this worker work; ramp the pop size."""
        if time.monotonic() - self.fetched_at < _RAMP_WINDOW:
            self.count = min(self.count * 2, self.queue.fetch_batch_size)
        else:
            self.count = max(self.count // 2, 1)
        batch = await self._wait(self.count)
        self.fetched_at = time.monotonic()
        return batch

    async def close(self) -> None:
        """Leave the due time this worker knew of on the marker for another one."""
        due_ms, self.due_ms = self.due_ms, None
        if due_ms is not None:  # a dead Redis must not hold up stopping
            leave = ("ZADD", self.marker, "LT", due_ms, "0")
            await bounded(topology.pipeline(self.client, [leave]), logger)

    def _seconds_until(self, due_ms: int) -> float:
        return due_ms / 1000 - self.clock_offset - time.monotonic()

    def _learn(self, due_ms: int) -> None:
        if due_ms >= 0 and (self.due_ms is None or due_ms < self.due_ms):
            self.due_ms = due_ms

    def _heard(self, popped: _Popped) -> list[Delivery]:
        """Take in what a pop said; return what it handed out (maybe nothing)."""
        self.clock_offset = popped.now_ms / 1000 - time.monotonic()
        self.due_ms = None  # handing out, the pop passed it on with the marker
        if not popped.deliveries:
            self._learn(popped.next_due_ms)
        return popped.deliveries

    async def _wait(self, count: int) -> list[Delivery]:
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
                woke, popped = await self.queue._block_then_pop(timeout, count)
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


class _ListQueue(ReliableBroker):
    """The list queue broker. The public classes differ only in how they connect."""

    _family_scripts: ClassVar[Sequence[scripts.Script]] = (
        _KICK, _KICK_SORTED, _POP, _ACK, _EXTEND, _RELEASE, _BURY, _REQUEUE, _PURGE,
        _DEAD, _STATS,
    )  # fmt: skip
    _message_type = QueueMessage
    _log = logger

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
        self.visibility_timeout = options.positive_seconds(
            "visibility_timeout", visibility_timeout, minimum=_MIN_VISIBILITY_TIMEOUT
        )
        super().__init__(
            endpoint,
            queue_name=queue_name,
            max_deliveries=max_deliveries,
            max_dead_letters=max_dead_letters,
            renew_every=self.visibility_timeout / 3,
            result_backend=result_backend,
            task_id_generator=task_id_generator,
        )
        self.fetch_batch_size = options.batch_size("fetch_batch_size", fetch_batch_size)
        self.block_timeout = options.positive_seconds("block_timeout", block_timeout)
        options.shorter_than_socket_timeout(
            "block_timeout", self.block_timeout, endpoint.socket_timeout
        )
        endpoint.require_connections(2, "a waiting worker holds one connection")
        self._keys = list_queue_keys(self.queue_name)
        self._kicks: Batcher[str, _Kicked, str] = Batcher(self._kick_batch, _KICK_BATCH)
        #: Per queue, the second (monotonic) of the last kick that noted its time.
        self._noted: dict[str, int] = {}

    def _keys_of(self, queue: str) -> ListQueueKeys:
        """Return the keys of ``queue`` (the broker's own are computed once)."""
        return self._keys if queue == self.queue_name else list_queue_keys(queue)

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
        self, queue_name: str, messages: list[_Kicked]
    ) -> list[str | BaseException]:
        """Queue a batch, one call per kind of message.

        Messages without priority or delay go on the list, the others into the
        sorted sets. Each message gets its id, or the error of its own call.
        """
        keys = self._keys_of(queue_name)
        plain = [i for i, (_, rank, delay) in enumerate(messages) if not rank | delay]
        others = [i for i, (_, rank, delay) in enumerate(messages) if rank | delay]
        found: dict[int, str | BaseException] = {}
        for group, kick in ((plain, self._kick_plain), (others, self._kick_sorted)):
            if group:
                try:
                    ids = await kick(keys, [messages[i] for i in group])
                except Exception as error:  # noqa: BLE001 - it fails its group only
                    found.update(dict.fromkeys(group, error))
                else:
                    found.update(zip(group, ids, strict=True))
        return [found[i] for i in range(len(messages))]

    async def _kick_plain(
        self, keys: ListQueueKeys, messages: list[_Kicked]
    ) -> list[str]:
        # The first kick of each second notes the time in epochs (for the age of
        # the oldest waiting message); the others skip it, a fifth of the script.
        second = int(time.monotonic())
        note = self._noted.get(keys.queue) != second
        self._noted[keys.queue] = second
        args = ["1" if note else "0", *(payload for payload, _, _ in messages)]
        try:
            first = int(await scripts.run(self.endpoint.client, _KICK, keys, args))
        except BaseException:
            if note:  # the next kick notes it
                self._noted.pop(keys.queue, None)
            raise
        return [f"{first + n:016d}:0" for n in range(len(messages))]

    async def _kick_sorted(
        self, keys: ListQueueKeys, messages: list[_Kicked]
    ) -> list[str]:
        args = [part for message in messages for part in message]
        reply = await scripts.run(self.endpoint.client, _KICK_SORTED, keys, args)
        return [text(message_id) for message_id in reply]

    # -- receiving ---------------------------------------------------------------

    def _start_fetching(self) -> _Waiter:
        return _Waiter(self)

    def _pop_call(self, count: int) -> tuple[ListQueueKeys, list[scripts.Arg]]:
        """Return the keys and arguments of the pop script for ``count`` messages."""
        keys = self._keys
        return (
            keys,
            [
                round(self.visibility_timeout * 1000),
                count,
                self.max_deliveries,
                _PROMOTE_LIMIT,
                self.max_dead_letters,
            ],
        )

    async def _pop(self, count: int) -> _Popped:
        """Run the pop script; if cancelled meanwhile, hold its messages anyway.

        listen() gives back whatever is held and was never handed over.
        """
        call = asyncio.ensure_future(
            scripts.run(
                self.endpoint.client, _POP, *self._pop_call(count), client_retry=False
            )
        )
        try:
            reply = await asyncio.shield(call)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                self._take(await call)
            raise
        return self._take(reply)

    async def _block_then_pop(
        self, timeout: float, count: int
    ) -> tuple[Any, _Popped | None]:
        """Wait on the marker for up to ``timeout`` s; return its reply and a pop.

        The pop script goes in the same pipeline, right behind the ``BZPOPMIN``
        (both keys share a slot, so on a cluster too): Redis runs it the moment the
        wait ends, so a woken worker has its messages in one round trip (cancelled
        in the instant between the two replies, a popped batch comes back when its
        lease runs out). The pop is None when the script was not loaded (the next
        look loads it).
        """
        woke, reply = await scripts.run_behind(
            self.endpoint.client,
            ("BZPOPMIN", self._keys.marker, timeout),
            _POP,
            *self._pop_call(count),
            client_retry=False,
        )
        return woke, None if reply is None else self._take(reply)

    def _take(self, reply: Sequence[Any]) -> _Popped:
        now_ms, next_due_ms, handed, buried = reply
        self._report_buried(self.queue_name, buried)
        return _Popped(
            self._held(self.queue_name, handed), int(now_ms), int(next_due_ms)
        )

    # -- settling (the calls reliable.py makes) ------------------------------------

    def _ack_call(self, queue: str, held: list[tuple[str, int]]) -> Call:
        keys = self._keys_of(queue)
        return (
            _ACK,
            keys,
            flat(held),
        )

    def _bury_call(self, delivery: Delivery, reason: str) -> Call:
        keys = self._keys_of(delivery.queue)
        return (
            _BURY,
            keys,
            [delivery.id, delivery.delivery, reason, self.max_dead_letters],
        )

    def _release_call(
        self, queue: str, held: list[tuple[str, int]], *, counted: bool
    ) -> Call:
        keys = self._keys_of(queue)
        return (
            _RELEASE,
            keys,
            ["0" if counted else "1", *flat(held)],
        )

    def _renew_call(self, queue: str, held: list[tuple[str, int]]) -> Call:
        keys = self._keys_of(queue)
        return (
            _EXTEND,
            keys,
            [round(self.visibility_timeout * 1000), *flat(held)],
        )

    # -- inspection and dead letters ------------------------------------------------

    async def stats(self, queue_name: str | None = None) -> list[ListQueueStats]:
        """Return a snapshot of the queue: ready, delayed, in flight, dead."""
        queue = self._queue(queue_name)
        keys = self._keys_of(queue)
        reply = await scripts.run(self.endpoint.client, _STATS, keys)
        now, ready, delayed, in_flight, dead, lease, due, used = reply[:8]
        totals, age = totals_and_age(reply[8:])

        def seconds_from_now(moment: int) -> float | None:
            return None if int(moment) < 0 else (int(moment) - int(now)) / 1000

        return [
            ListQueueStats(
                queue=queue,
                ready=int(ready),
                delayed=int(delayed),
                in_flight=int(in_flight),
                dead=int(dead),
                next_lease_expiry=seconds_from_now(lease),
                next_delayed_due=seconds_from_now(due),
                exists=bool(int(used)),
                oldest_ready_age=age,
                totals=totals,
            )
        ]

    async def count_dead(self, queue_name: str | None = None) -> int:
        """Return the number of dead letters of the queue."""
        keys = self._keys_of(self._queue(queue_name))
        return int(await self.endpoint.client.zcard(keys.dead))

    async def _dead_page(self, queue: str, offset: int, limit: int) -> list[DeadLetter]:
        keys = self._keys_of(queue)
        _, entries = await scripts.run(
            self.endpoint.client,
            _DEAD,
            keys,
            [offset, limit],
        )
        return [
            DeadLetter(
                id=text(entries[i]),
                queue=queue,
                died_at=datetime.fromtimestamp(
                    int(entries[i + 1]) / 1000, tz=timezone.utc
                ),
                deliveries=int(entries[i + 2]),
                reason=text(entries[i + 3]),
                payload=entries[i + 4],
            )
            for i in range(0, len(entries), 5)
        ]

    def _requeue_target(self, queue: str) -> tuple[scripts.Script, ListQueueKeys]:
        keys = self._keys_of(queue)
        return _REQUEUE, keys

    def _purge_target(self, queue: str) -> tuple[scripts.Script, ListQueueKeys]:
        keys = self._keys_of(queue)
        return _PURGE, keys


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

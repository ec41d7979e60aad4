"""Stream queue: consumer groups, claims under an expiring lock, delete on ack.

The stream key is exactly the queue name, as in taskiq-redis. Workers read with
``XREADGROUP BLOCK``; a timer in every listening worker runs
``lua/stream/claim.lua``, which moves due delayed messages into the stream and,
while the worker waits for work, takes over (under a lock that always expires)
entries that a dead worker left pending, burying those delivered too often. What
both queue families do alike (holding, renewing, acking, burying, giving back, the
dead-letter API) is in ``reliable.py``; this module has the stream's keys, scripts
(``lua/stream/``), sending and fetch loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from functools import partial
from typing import Any, ClassVar

from redis.exceptions import NoPermissionError, ResponseError
from taskiq import AsyncResultBackend, BrokerMessage

from taskiq_redis_lua import labels, options, scripts, topology
from taskiq_redis_lua.backoff import RETRYABLE, Backoff, raise_if_cancelled
from taskiq_redis_lua.batching import Batcher
from taskiq_redis_lua.compat import (
    ClusterAttributes,
    SentinelAttributes,
    SingleNodeAttributes,
)
from taskiq_redis_lua.dead_letters import DeadLetter
from taskiq_redis_lua.keys import StreamKeys, stream_keys
from taskiq_redis_lua.leases import stop_task
from taskiq_redis_lua.reliable import (
    SETTLING_ERRORS,
    Call,
    Delivery,
    ReliableBroker,
    ReliableMessage,
    text,
)
from taskiq_redis_lua.stats import ConsumerStats, StreamStats, totals_and_age

logger = logging.getLogger("taskiq_redis_lua.stream")

_DELAY = scripts.script("stream/delay")
_CLAIM = scripts.script("stream/claim")
_ACK = scripts.script("stream/ack")
_EXTEND = scripts.script("stream/extend")
_RELEASE = scripts.script("stream/release")
_REQUEUE = scripts.script("stream/requeue")
_PURGE = scripts.script("stream/purge")
_DEAD = scripts.script("stream/dead")
_BURY = scripts.script("stream/bury")
_STATS = scripts.script("stream/stats")
_LEAVE = scripts.script("stream/leave")

#: Delayed messages moved into the stream by one claim.
_PROMOTE_LIMIT = 1000
#: Idle time (ms) given to released entries, so the next claim takes them at once.
_RELEASED_IDLE_MS = 2**40
#: How far into a dead-letter stream list_dead may look (it reads from the start).
_DEAD_PAGE_LIMIT = 10_000
#: Most messages one kick pipeline sends (concurrent kicks share a round trip).
_KICK_BATCH = 100
#: Seconds stopping waits for a claim call that is out.
_CLAIM_GRACE = 2.0
#: Consumers (gone workers) one claim deletes at most.
_CONSUMERS_DELETED_PER_CLAIM = 10
#: Errors that leave a group's creation for a later attempt.
_GROUP_ERRORS = SETTLING_ERRORS


class StreamMessage(ReliableMessage):
    """An entry handed out by a stream queue; ``await ack()`` acknowledges it."""


def _is_nogroup(error: ResponseError) -> bool:
    return "NOGROUP" in str(error)


def _is_unblocked(error: ResponseError) -> bool:
    """Tell whether a blocked read ended as its stream left the node (resharding)."""
    return str(error).startswith("UNBLOCKED")


def _read_entries(reply: Any) -> list[Delivery]:
    """Turn an XREADGROUP reply (RESP2 list or RESP3 dict) into deliveries."""
    if not reply:
        return []
    streams = reply.items() if isinstance(reply, dict) else reply
    return [
        Delivery(text(stream), text(entry_id), 1, (fields or {}).get(b"data"))
        for stream, entries in streams
        for entry_id, fields in entries
    ]


def _snapshot(stream: str, group: str, reply: Sequence[Any]) -> StreamStats:
    """Turn a reply of ``stream/stats.lua`` into a snapshot."""
    length, delayed, dead, found, pending, lag, _, consumers = reply[:8]
    totals, age = totals_and_age(reply[8:])
    return StreamStats(
        queue=stream,
        group=group,
        length=int(length),
        delayed=int(delayed),
        dead=int(dead),
        group_exists=bool(int(found)),
        pending=int(pending),
        lag=None if int(lag) < 0 else int(lag),
        consumers=[
            ConsumerStats(
                name=text(consumers[i]),
                pending=int(consumers[i + 1]),
                idle_seconds=int(consumers[i + 2]) / 1000,
            )
            for i in range(0, len(consumers), 3)
        ],
        oldest_ready_age=age,
        totals=totals,
    )


def _dead_letters(stream: str, entries: Sequence[Any]) -> list[DeadLetter]:
    """Turn ``stream/dead.lua``'s flat entries into dead letters."""
    return [
        DeadLetter(
            id=text(entries[i]),
            queue=stream,
            died_at=datetime.fromtimestamp(
                int(text(entries[i]).split("-")[0]) / 1000, tz=timezone.utc
            ),
            deliveries=int(entries[i + 1]),
            reason=text(entries[i + 2]),
            payload=entries[i + 3],
        )
        for i in range(0, len(entries), 5)
    ]


class _Fetcher:
    """A listening worker's reads (one per stream) and its claim timer.

    Due delayed entries move into the streams every claim interval; entries that
    dead workers left are taken over only while the worker waits for work, so that
    a busy worker does not collect work that idle workers could do.
    """

    def __init__(self, broker: _StreamBroker) -> None:
        self.broker = broker
        self.reads: dict[str, asyncio.Task[list[Delivery]]] = {}
        self.claimed: list[Delivery] = []
        self.claimed_event = asyncio.Event()
        self.hungry = False  # waiting for work: claims may take some over
        self.claiming = False  # a claim call is out: stopping waits for its reply
        self.closing = False
        self.claimer = asyncio.create_task(self._claim_forever())

    async def next_batch(self) -> list[Delivery]:
        """Return what claims took over, or wait for reads or claims."""
        if self.claimed:
            taken, self.claimed = self.claimed, []
            return taken
        for stream in self.broker.streams:
            if stream not in self.reads:
                self.reads[stream] = asyncio.create_task(self._read(stream))
        self.claimed_event.clear()
        claims = asyncio.ensure_future(self.claimed_event.wait())
        self.hungry = True
        try:
            await asyncio.wait(
                [*self.reads.values(), claims], return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            self.hungry = False
            claims.cancel()
        entries: list[Delivery] = []
        for stream, read in list(self.reads.items()):
            if read.done():
                del self.reads[stream]
                entries.extend(read.result())
        return entries

    async def close(self) -> None:
        """Stop claiming and reading; what was fetched is held, for giving back.

        A claim call that is out is let finish (bounded): cut off, what it took over
        would stay with this consumer, unreported, until ``idle_timeout``.
        """
        self.hungry = False
        self.closing = True  # the claim loop ends after the call that is out
        if self.claiming:
            await asyncio.wait({self.claimer}, timeout=_CLAIM_GRACE)
        await stop_task(self.claimer)
        for read in self.reads.values():
            read.cancel()
        if self.reads:
            await asyncio.wait(self.reads.values(), timeout=2)
        self.reads.clear()
        self.claimed.clear()

    async def _read(self, stream: str) -> list[Delivery]:
        """Block on one stream until it gives new entries; ride out outages."""
        broker = self.broker
        backoff = Backoff(f"reading {stream}", logger)
        while True:
            try:
                with topology.slot_moves_as_try_again():
                    reply = await broker.endpoint.client.xreadgroup(
                        broker.consumer_group_name,
                        broker.consumer_name,
                        {stream: ">"},
                        count=broker.count,
                        block=broker.block,
                    )
            except RETRYABLE as error:  # before ResponseError: TRYAGAIN is one
                await backoff.failed(error)
                continue
            except ResponseError as error:
                raise_if_cancelled()
                if _is_unblocked(error):  # the stream moved to another node
                    await backoff.failed(error)
                    continue
                if not _is_nogroup(error):
                    raise
                logger.warning("Group %s of %s is gone; creating it again",
                               broker.consumer_group_name, stream)  # fmt: skip
                try:
                    await broker._create_group(stream)
                except _GROUP_ERRORS as failure:
                    await backoff.failed(failure)
                continue
            entries = broker._hold(_read_entries(reply))  # before anything interrupts
            backoff.succeeded()
            if entries:
                return entries

    async def _claim_marked(self, stream: str) -> tuple[float | None, list[Delivery]]:
        """Claim on ``stream`` (taking over when hungry), marked as out meanwhile."""
        self.claiming = True
        try:
            return await self._claim(stream, take_over=self.hungry)
        finally:
            self.claiming = False

    async def _claim(
        self, stream: str, *, take_over: bool
    ) -> tuple[float | None, list[Delivery]]:
        """Run the claim script once on ``stream``.

        Return the seconds until a delayed entry is due (None: none delayed) and
        the entries taken over (only with ``take_over``), now held.
        """
        broker = self.broker
        keys = broker._keys_of(stream)
        now_ms, next_due_ms, handed, buried = await scripts.run(
            broker.endpoint.client,
            _CLAIM,
            keys,
            [
                broker.consumer_group_name,
                broker.consumer_name,
                broker.consumer_name,
                broker._lock_ms,
                broker.idle_timeout,
                broker.unacknowledged_batch_size if take_over else 0,
                broker.max_deliveries,
                _PROMOTE_LIMIT,
                broker.maxlen or 0,
                "1" if broker.approximate else "0",
                broker.max_dead_letters,
                broker.consumer_idle_timeout or 0,
                _CONSUMERS_DELETED_PER_CLAIM,
            ],
            client_retry=False,
        )
        broker._report_buried(stream, buried)
        taken = broker._held(stream, handed)
        if int(next_due_ms) < 0:
            return None, taken
        return max(0.0, (int(next_due_ms) - int(now_ms)) / 1000), taken

    async def _claim_forever(self) -> None:
        broker = self.broker
        backoff = Backoff(f"claiming on {broker.queue_name}", logger)
        loop = asyncio.get_running_loop()
        wake_at = loop.time()
        while not self.closing:
            await asyncio.sleep(max(0.0, wake_at - loop.time()))
            wake_at = loop.time() + broker.claim_interval
            for stream in broker.streams:
                if self.closing:
                    return
                try:
                    next_due, taken = await self._claim_marked(stream)
                except RETRYABLE as error:
                    await backoff.failed(error)
                    continue
                except ResponseError as error:
                    raise_if_cancelled()
                    if not _is_nogroup(error):
                        logger.exception("Claiming on %s failed", stream)
                        continue
                    with contextlib.suppress(*_GROUP_ERRORS):
                        await broker._create_group(stream)
                    continue
                backoff.succeeded()
                if taken:
                    self.claimed.extend(taken)
                    self.claimed_event.set()
                if next_due is not None:
                    wake_at = min(wake_at, loop.time() + next_due)


class _StreamBroker(ReliableBroker):
    """The stream broker. The public classes differ only in how they connect."""

    _family_scripts: ClassVar[Sequence[scripts.Script]] = (
        _DELAY, _CLAIM, _ACK, _EXTEND, _RELEASE, _REQUEUE, _PURGE, _DEAD, _BURY, _STATS,
        _LEAVE,
    )  # fmt: skip
    _message_type = StreamMessage
    _log = logger

    def __init__(
        self,
        connect: Callable[[], topology.Endpoint],
        *,
        queue_name: str,
        consumer_group_name: str,
        consumer_name: str | None,
        consumer_id: str,
        mkstream: bool,
        xread_block: int,
        maxlen: int | None,
        approximate: bool,
        idle_timeout: int,
        unacknowledged_batch_size: int,
        unacknowledged_lock_timeout: float | None,
        xread_count: int | None,
        additional_streams: dict[str, str | int] | None,
        result_backend: AsyncResultBackend[Any] | None,
        task_id_generator: Callable[[], str] | None,
        max_deliveries: int,
        delete_on_ack: bool,
        claim_interval: float,
        max_dead_letters: int,
        consumer_idle_timeout: int | None,
    ) -> None:
        self.consumer_group_name = options.queue_name(
            "consumer_group_name", consumer_group_name
        )
        self.consumer_name = options.consumer_name("consumer_name", consumer_name)
        self.consumer_id = options.stream_id("consumer_id", consumer_id)
        self.mkstream = options.flag("mkstream", mkstream)
        self.block = options.xread_block(xread_block)
        self.maxlen = options.optional(options.positive_int, "maxlen", maxlen)
        self.approximate = options.flag("approximate", approximate)
        self.idle_timeout = round(
            options.positive_seconds("idle_timeout", idle_timeout, minimum=1)
        )
        self.unacknowledged_batch_size = options.batch_size(
            "unacknowledged_batch_size", unacknowledged_batch_size
        )
        self.claim_interval = options.positive_seconds(
            "claim_interval", claim_interval, minimum=0.01
        )
        self.unacknowledged_lock_timeout = options.positive_seconds(
            "unacknowledged_lock_timeout",
            self.claim_interval
            if unacknowledged_lock_timeout is None
            else unacknowledged_lock_timeout,
        )
        self.count = options.optional(options.batch_size, "xread_count", xread_count)
        #: Extra streams and the id their group starts from when it is created
        #: (taskiq-redis's ">" means: the same as consumer_id).
        self.additional_streams = options.additional_streams(additional_streams)
        self.delete_on_ack = options.flag("delete_on_ack", delete_on_ack)
        self.consumer_idle_timeout = options.optional(
            options.positive_int, "consumer_idle_timeout", consumer_idle_timeout
        )
        endpoint = connect()
        super().__init__(
            endpoint,
            queue_name=queue_name,
            max_deliveries=max_deliveries,
            max_dead_letters=max_dead_letters,
            renew_every=self.idle_timeout / 3000,
            result_backend=result_backend,
            task_id_generator=task_id_generator,
        )
        endpoint.require_connections(
            len(self.streams) + 2, "each stream read holds one connection while idle"
        )
        options.shorter_than_socket_timeout(
            "xread_block", self.block / 1000, endpoint.socket_timeout
        )
        self._kicks: Batcher[str, bytes | str, Any] = Batcher(
            self._kick_batch, _KICK_BATCH
        )

    @property
    def _lock_ms(self) -> int:
        """How long the claim lock lives (ms).

        It lets one worker claim per claim interval; a longer
        ``unacknowledged_lock_timeout`` must not slow recovery down, a shorter one
        caps how long a lock may live.
        """
        lifetime = min(self.claim_interval, self.unacknowledged_lock_timeout)
        return max(1, round(lifetime * 1000))

    @property
    def streams(self) -> list[str]:
        """Every stream this broker reads: the queue, then the additional ones."""
        return [self.queue_name, *self.additional_streams]

    def _keys_of(self, stream: str) -> StreamKeys:
        """Return the keys of ``stream`` for this broker's consumer group."""
        return stream_keys(stream, self.consumer_group_name)

    # -- lifecycle ---------------------------------------------------------------

    async def _prepare(self) -> None:
        """Create the groups (as taskiq-redis does, in every process).

        A process that only kicks needs no group: if its Redis user may not create
        one, the first read of a worker does.
        """
        for stream in self.streams:
            try:
                await self._create_group(stream)
            except NoPermissionError:
                if self.is_worker_process:
                    raise
                logger.debug("No right to create group %s of %s; a worker will",
                             self.consumer_group_name, stream)  # fmt: skip

    async def _leave(self) -> None:
        """Delete this worker's consumer from each group, if it holds nothing.

        Given-back entries went to the group's consumer "(released)"; what it still
        holds (giving back failed) stays, for a claim to take over, and a later
        claim deletes the consumer (``consumer_idle_timeout``).
        """
        for stream in self.streams:
            try:
                await scripts.run(
                    self.endpoint.client,
                    _LEAVE,
                    self._keys_of(stream),
                    [self.consumer_group_name, self.consumer_name],
                    client_retry=False,
                )
            except SETTLING_ERRORS as error:
                logger.info(
                    "Consumer %s stays in group %s of %s (%s); a claim deletes it"
                    " later",
                    self.consumer_name,
                    self.consumer_group_name,
                    stream,
                    error,
                )

    async def _create_group(self, stream: str) -> None:
        """Create the group from where it starts (``consumer_id`` by default)."""
        start = self.additional_streams.get(stream, self.consumer_id)
        try:
            with topology.slot_moves_as_try_again():
                await self.endpoint.client.xgroup_create(
                    stream,
                    self.consumer_group_name,
                    id=self.consumer_id if start == ">" else start,
                    mkstream=self.mkstream,
                )
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    # -- sending -----------------------------------------------------------------

    async def kick(self, message: BrokerMessage) -> None:
        """XADD the message to its stream, or keep it aside until its delay ends."""
        stream = options.queue_name(
            "queue_name label", message.labels.get("queue_name") or self.queue_name
        )
        delay_ms = labels.delay_ms(message.labels.get("delay"))
        if delay_ms:
            keys = self._keys_of(stream)
            await scripts.run(
                self.endpoint.client,
                _DELAY,
                keys,
                [uuid.uuid4().hex, message.message, delay_ms],
            )
            return
        await self._kicks.submit(stream, message.message)

    async def _kick_batch(self, stream: str, payloads: list[bytes | str]) -> list[Any]:
        """XADD concurrent kicks to one stream in one round trip."""
        trim: tuple[Any, ...] = ()
        if self.maxlen:
            trim = ("MAXLEN", "~" if self.approximate else "=", self.maxlen)
        return await topology.pipeline(
            self.endpoint.client,
            [("XADD", stream, *trim, "*", b"data", payload) for payload in payloads],
        )

    # -- receiving ---------------------------------------------------------------

    def _start_fetching(self) -> _Fetcher:
        return _Fetcher(self)

    # -- settling (the calls reliable.py makes) ------------------------------------

    def _ack_call(self, queue: str, held: list[tuple[str, int]]) -> Call:
        return (
            _ACK,
            self._keys_of(queue),
            [
                self.consumer_group_name,
                "1" if self.delete_on_ack else "0",
                *(entry_id for entry_id, _ in held),
            ],
        )

    def _bury_call(self, delivery: Delivery, reason: str) -> Call:
        keys = self._keys_of(delivery.queue)
        return (
            _BURY,
            keys,
            [
                self.consumer_group_name,
                delivery.id,
                delivery.delivery,
                reason,
                delivery.payload or b"",
                self.max_dead_letters,
            ],
        )

    def _release_call(
        self, queue: str, held: list[tuple[str, int]], *, counted: bool
    ) -> Call:
        keys = self._keys_of(queue)
        return (
            _RELEASE,
            keys,
            [
                self.consumer_group_name,
                self.consumer_name,
                _RELEASED_IDLE_MS,
                "0" if counted else "1",
                *(item for pair in held for item in pair),
            ],
        )

    def _renew_call(self, queue: str, held: list[tuple[str, int]]) -> Call:
        return (
            _EXTEND,
            self._keys_of(queue),
            [
                self.consumer_group_name,
                self.consumer_name,
                *(entry_id for entry_id, _ in held),
            ],
        )

    # -- inspection and dead letters ------------------------------------------------

    async def stats(self, queue_name: str | None = None) -> list[StreamStats]:
        """Return a snapshot of each stream this broker reads (or of one)."""
        return [
            _snapshot(
                stream,
                self.consumer_group_name,
                await scripts.run(
                    self.endpoint.client,
                    _STATS,
                    self._keys_of(stream),
                    [self.consumer_group_name],
                ),
            )
            for stream in ([self._queue(queue_name)] if queue_name else self.streams)
        ]

    async def count_dead(self, queue_name: str | None = None) -> int:
        """Return the number of dead letters of the group on the stream."""
        dead = self._keys_of(self._queue(queue_name)).dead
        return int(await self.endpoint.client.xlen(dead))

    async def _dead_page(self, queue: str, offset: int, limit: int) -> list[DeadLetter]:
        """Return a page of dead letters (read from the stream's start: bounded)."""
        if offset + limit > _DEAD_PAGE_LIMIT:
            raise ValueError(
                f"offset + limit must not pass {_DEAD_PAGE_LIMIT} on a stream, got"
                f" {offset + limit}",
            )
        _, entries = await scripts.run(
            self.endpoint.client, _DEAD, self._keys_of(queue), [offset, limit]
        )
        return _dead_letters(queue, entries)

    def _requeue_target(self, queue: str) -> tuple[scripts.Script, StreamKeys]:
        keys = self._keys_of(queue)
        return _REQUEUE, keys

    def _purge_target(self, queue: str) -> tuple[scripts.Script, StreamKeys]:
        return _PURGE, self._keys_of(queue)


class RedisStreamBroker(SingleNodeAttributes, _StreamBroker):
    """Stream queue on a single Redis server."""

    def __init__(
        self,
        url: str,
        queue_name: str = "taskiq",
        max_connection_pool_size: int | None = None,
        consumer_group_name: str = "taskiq",
        consumer_name: str | None = None,
        consumer_id: str = "0",
        mkstream: bool = True,
        xread_block: int = 2000,
        maxlen: int | None = None,
        approximate: bool = True,
        idle_timeout: int = 600000,
        unacknowledged_batch_size: int = 100,
        unacknowledged_lock_timeout: float | None = None,
        xread_count: int | None = 100,
        additional_streams: dict[str, str | int] | None = None,
        *,
        result_backend: AsyncResultBackend[Any] | None = None,
        task_id_generator: Callable[[], str] | None = None,
        max_deliveries: int = 5,
        delete_on_ack: bool = True,
        claim_interval: float = 2.0,
        max_dead_letters: int = 10_000,
        consumer_idle_timeout: int | None = 3_600_000,
        **connection_kwargs: Any,
    ) -> None:
        """Connect to ``url``; parameters as in taskiq-redis, then new ones.

        Up to ``additional_streams`` the parameters are taskiq-redis's, except that
        ``consumer_id`` defaults to ``"0"``.

        :param queue_name: the stream (its exact key).
        :param consumer_group_name: the consumer group that shares the work.
        :param consumer_name: this worker in the group (default: a random uuid).
        :param consumer_id: where a new group starts reading: ``"0"`` (default) the
            start of the stream, so nothing kicked before the first worker is lost;
            ``"$"`` only what comes after (taskiq-redis's default).
        :param mkstream: create the stream with the group if it does not exist.
        :param xread_block: ms an idle read blocks (below the socket timeout).
        :param maxlen: trim the stream to about (``approximate``) or exactly this
            many entries when adding.
        :param idle_timeout: ms an entry stays pending with a worker before another
            takes it over. A living worker renews what it holds every third of this.
        :param unacknowledged_batch_size: entries one claim takes over at most.
        :param unacknowledged_lock_timeout: seconds the claim lock lives (default:
            ``claim_interval``); it always expires.
        :param xread_count: entries one read takes at most.
        :param additional_streams: more streams to read, ``{name: ">"}``.
        :param max_deliveries: deliveries without an ack before an entry becomes a
            dead letter.
        :param delete_on_ack: delete acked entries that no other group still needs.
        :param claim_interval: seconds between claims (and delayed-message checks):
            delays are honoured to about this; an idle worker makes one claim call
            per interval.
        :param max_dead_letters: dead letters kept per group, approximately.
        :param consumer_idle_timeout: ms after which a consumer that holds no
            entries is deleted from the group by a claim (a worker that is gone;
            one that stops cleanly deletes its own). None: never.
        :param connection_kwargs: passed to redis-py's ``BlockingConnectionPool``.
        """
        super().__init__(
            partial(
                topology.single_node, url, max_connection_pool_size, connection_kwargs
            ),
            **_stream_options(locals()),
        )


class RedisStreamClusterBroker(ClusterAttributes, _StreamBroker):
    """Stream queue on a Redis Cluster; each stream and its companions share a slot."""

    def __init__(
        self,
        url: str,
        queue_name: str = "taskiq",
        max_connection_pool_size: int = 2**31,
        consumer_group_name: str = "taskiq",
        consumer_name: str | None = None,
        consumer_id: str = "0",
        mkstream: bool = True,
        xread_block: int = 10000,
        maxlen: int | None = None,
        approximate: bool = True,
        additional_streams: dict[str, str | int] | None = None,
        *,
        idle_timeout: int = 600000,
        unacknowledged_batch_size: int = 100,
        unacknowledged_lock_timeout: float | None = None,
        xread_count: int | None = 100,
        result_backend: AsyncResultBackend[Any] | None = None,
        task_id_generator: Callable[[], str] | None = None,
        max_deliveries: int = 5,
        delete_on_ack: bool = True,
        claim_interval: float = 2.0,
        max_dead_letters: int = 10_000,
        consumer_idle_timeout: int | None = 3_600_000,
        **connection_kwargs: Any,
    ) -> None:
        """Connect to the cluster ``url`` belongs to; see :class:`RedisStreamBroker`.

        ``max_connection_pool_size`` caps the connections per node.
        """
        super().__init__(
            partial(
                topology.cluster,
                url,
                {"max_connections": max_connection_pool_size, **connection_kwargs},
            ),
            **_stream_options(locals()),
        )


class RedisStreamSentinelBroker(SentinelAttributes, _StreamBroker):
    """Stream queue on the primary that Redis Sentinel names."""

    def __init__(
        self,
        sentinels: list[tuple[str, int]],
        master_name: str,
        min_other_sentinels: int = 0,
        queue_name: str = "taskiq",
        consumer_group_name: str = "taskiq",
        consumer_name: str | None = None,
        consumer_id: str = "0",
        mkstream: bool = True,
        xread_block: int = 10000,
        maxlen: int | None = None,
        approximate: bool = True,
        additional_streams: dict[str, str | int] | None = None,
        *,
        sentinel_kwargs: Any | None = None,
        idle_timeout: int = 600000,
        unacknowledged_batch_size: int = 100,
        unacknowledged_lock_timeout: float | None = None,
        xread_count: int | None = 100,
        result_backend: AsyncResultBackend[Any] | None = None,
        task_id_generator: Callable[[], str] | None = None,
        max_deliveries: int = 5,
        delete_on_ack: bool = True,
        claim_interval: float = 2.0,
        max_dead_letters: int = 10_000,
        consumer_idle_timeout: int | None = 3_600_000,
        **connection_kwargs: Any,
    ) -> None:
        """Connect through ``sentinels`` to ``master_name``.

        Other parameters as in :class:`RedisStreamBroker`.
        """
        super().__init__(
            partial(
                topology.sentinel,
                sentinels,
                master_name,
                min_other_sentinels,
                sentinel_kwargs,
                connection_kwargs,
            ),
            **_stream_options(locals()),
        )


_STREAM_OPTIONS = (
    "queue_name", "consumer_group_name", "consumer_name", "consumer_id", "mkstream",
    "xread_block", "maxlen", "approximate", "idle_timeout",
    "unacknowledged_batch_size", "unacknowledged_lock_timeout", "xread_count",
    "additional_streams", "result_backend", "task_id_generator", "max_deliveries",
    "delete_on_ack", "claim_interval", "max_dead_letters", "consumer_idle_timeout",
)  # fmt: skip


def _stream_options(arguments: dict[str, Any]) -> dict[str, Any]:
    """Pick the broker options out of a public constructor's arguments."""
    return {name: arguments[name] for name in _STREAM_OPTIONS}

"""Stream queue: consumer groups, claims under an expiring lock, delete on ack.

The stream key is exactly the queue name, as in taskiq-redis. Workers read with
``XREADGROUP BLOCK``; a timer in every worker, busy or idle, runs
``lua/stream/claim.lua``, which moves due delayed messages into the stream and,
under a lock that always expires, takes over entries that a dead worker left
pending, burying those delivered too often. Every other transition is one script
under ``lua/stream/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from typing import Any

from redis.exceptions import ResponseError
from taskiq import AckableMessage, AsyncResultBackend, BrokerMessage

from taskiq_redis_lua import labels, options, scripts, topology
from taskiq_redis_lua.backoff import (
    RETRYABLE,
    Backoff,
    attempt,
    raise_if_cancelled,
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
from taskiq_redis_lua.keys import StreamKeys, stream_keys
from taskiq_redis_lua.leases import CHUNK, Holdings, chunks, stop_task
from taskiq_redis_lua.stats import ConsumerStats, StreamStats

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
_SCRIPTS = [
    _DELAY, _CLAIM, _ACK, _EXTEND, _RELEASE, _REQUEUE, _PURGE, _DEAD, _BURY, _STATS,
]  # fmt: skip

#: Delayed messages moved into the stream by one claim.
_PROMOTE_LIMIT = 1000
#: Idle time (ms) given to released entries, so the next claim takes them at once.
_RELEASED_IDLE_MS = 2**40
#: How far into a dead-letter stream list_dead may look (it reads from the start).
_DEAD_PAGE_LIMIT = 10_000
#: Most messages one kick pipeline sends (concurrent kicks share a round trip).
_KICK_BATCH = 100
#: Errors that leave a group's creation for a later attempt.
_GROUP_ERRORS: tuple[type[Exception], ...] = (ResponseError, *RETRYABLE)


class StreamMessage(AckableMessage):
    """An entry handed out by a stream queue; ``await ack()`` acknowledges it."""

    ack: Callable[[], Awaitable[None]]
    id: str
    queue: str
    delivery: int


@dataclass(frozen=True)
class _Entry:
    stream: str
    id: str
    delivery: int
    payload: bytes | None


_Read = asyncio.Task[list[_Entry]]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _is_nogroup(error: ResponseError) -> bool:
    return "NOGROUP" in str(error)


def _read_entries(reply: Any) -> list[_Entry]:
    """Turn an XREADGROUP reply (RESP2 list or RESP3 dict) into entries."""
    if not reply:
        return []
    streams = reply.items() if isinstance(reply, dict) else reply
    entries = []
    for stream, messages in streams:
        for message_id, fields in messages:
            payload = (fields or {}).get(b"data")
            entries.append(_Entry(_text(stream), _text(message_id), 1, payload))
    return entries


class _StreamBroker(DecodesOnce):
    """The stream broker. The public classes differ only in how they connect."""

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
    ) -> None:
        super().__init__(
            result_backend=result_backend, task_id_generator=task_id_generator
        )
        self.queue_name = options.queue_name("queue_name", queue_name)
        self.consumer_group_name = options.queue_name(
            "consumer_group_name", consumer_group_name
        )
        self.consumer_name = options.consumer_name("consumer_name", consumer_name)
        self.consumer_id = options.stream_id("consumer_id", consumer_id)
        self.mkstream = options.flag("mkstream", mkstream)
        if xread_block == 0:
            raise ValueError(
                "xread_block=0 (block forever) is not supported: a read must end"
                " before the socket timeout; use a few seconds",
            )
        self.block = options.positive_int("xread_block", xread_block)
        self.maxlen = None if maxlen is None else options.positive_int("maxlen", maxlen)
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
        self.unacknowledged_lock_timeout = (
            self.claim_interval
            if unacknowledged_lock_timeout is None
            else options.positive_seconds(
                "unacknowledged_lock_timeout", unacknowledged_lock_timeout
            )
        )
        #: The claim lock lets one worker claim per claim interval; a longer
        #: unacknowledged_lock_timeout must not slow recovery down, a shorter one
        #: caps how long a lock may live.
        self._lock_ms = max(
            1, round(min(self.claim_interval, self.unacknowledged_lock_timeout) * 1000)
        )
        self.count = (
            None
            if xread_count is None
            else options.batch_size("xread_count", xread_count)
        )
        #: Extra streams and the id their group starts from when it is created
        #: (taskiq-redis's ">" means: the same as consumer_id).
        if additional_streams is not None and not isinstance(
            additional_streams, Mapping
        ):
            raise ValueError(
                "additional_streams must map stream names to where their groups"
                f" start, such as {{'other': '>'}}, got {additional_streams!r}",
            )
        self.additional_streams = {
            options.queue_name("additional_streams", name): options.stream_id(
                f"additional_streams[{name!r}]", start, also=(">",)
            )
            for name, start in (additional_streams or {}).items()
        }
        self.max_deliveries = options.positive_int("max_deliveries", max_deliveries)
        self.delete_on_ack = options.flag("delete_on_ack", delete_on_ack)
        self.max_dead_letters = options.positive_int(
            "max_dead_letters", max_dead_letters
        )
        self.endpoint = connect()
        self.endpoint.require_connections(
            len(self.streams) + 2, "each stream read holds one connection while idle"
        )
        if (
            self.endpoint.socket_timeout is not None
            and self.block >= self.endpoint.socket_timeout * 1000
        ):
            raise ValueError(
                f"xread_block ({self.block} ms) must be shorter than socket_timeout"
                f" ({self.endpoint.socket_timeout} s), or every idle read times out",
            )
        self._holdings: Holdings[tuple[str, str]] = Holdings(
            self.queue_name, self.idle_timeout / 3000, self._renew
        )
        self._claimed: list[_Entry] = []
        self._kicks: Batcher[str, bytes | str, Any] = Batcher(
            self._kick_batch, _KICK_BATCH
        )
        self._acks: Batcher[str, str, bool] = Batcher(
            self._ack_batch, CHUNK, linger=ACK_LINGER
        )
        self._claimed_event = asyncio.Event()
        self._claimer: asyncio.Task[None] | None = None
        self._hungry = False  # listen() waits for work: claims may take some

    @property
    def streams(self) -> list[str]:
        """Every stream this broker reads: the queue, then the additional ones."""
        return [self.queue_name, *self.additional_streams]

    def _group_start(self, stream: str) -> str:
        start = self.additional_streams.get(stream, self.consumer_id)
        return self.consumer_id if start == ">" else start

    def _keys(self, stream: str | None = None) -> StreamKeys:
        name = self.queue_name if stream is None else stream
        return stream_keys(
            options.queue_name("queue_name", name), self.consumer_group_name
        )

    # -- lifecycle ---------------------------------------------------------------

    async def startup(self) -> None:
        """Create the consumer groups and load the scripts."""
        await super().startup()
        try:
            for stream in self.streams:
                await self._create_group(stream)
            await scripts.load(self.endpoint.client, _SCRIPTS)
        except RETRYABLE as error:
            raise_if_misconfigured(error)
            logger.warning(
                "Could not prepare the streams yet (%s); retrying on use", error
            )

    async def shutdown(self) -> None:
        """Stop claiming, hand back unfinished entries at once, disconnect."""
        if self._claimer is not None:
            await stop_task(self._claimer)
            self._claimer = None
        await self._holdings.stop()
        if held := self._holdings.items():
            logger.info("Handing back %d unfinished entries", len(held))
            await self._release(held, counted=True)
        await super().shutdown()
        await self.endpoint.close()

    async def _create_group(self, stream: str) -> None:
        """Create the group from ``consumer_id`` (start of the stream by default)."""
        try:
            await self.endpoint.client.xgroup_create(
                stream,
                self.consumer_group_name,
                id=self._group_start(stream),
                mkstream=self.mkstream,
            )
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    # -- sending -----------------------------------------------------------------

    async def kick(self, message: BrokerMessage) -> None:
        """XADD the message to its stream, or keep it aside until its delay ends."""
        stream = message.labels.get("queue_name") or self.queue_name
        delay_ms = labels.delay_ms(message.labels.get("delay"))
        if delay_ms:
            keys = self._keys(stream)
            await scripts.run(
                self.endpoint.client,
                _DELAY,
                [keys.delayed, keys.payloads],
                [uuid.uuid4().hex, message.message, delay_ms],
            )
            return
        await self._kicks.submit(
            options.queue_name("queue_name label", stream), message.message
        )

    async def _kick_batch(self, stream: str, payloads: list[bytes | str]) -> list[Any]:
        """XADD concurrent kicks to one stream in one round trip."""
        pipe = self.endpoint.client.pipeline(transaction=False)
        for payload in payloads:
            pipe.xadd(
                stream,
                {b"data": payload},
                maxlen=self.maxlen,
                approximate=self.approximate,
            )
        return list(await pipe.execute(raise_on_error=False))

    # -- receiving ---------------------------------------------------------------

    async def listen(self) -> AsyncGenerator[StreamMessage, None]:
        """Yield new and taken-over entries; each must be acked."""
        self._holdings.start()
        if self._claimer is None or self._claimer.done():
            self._claimer = asyncio.create_task(self._claim_forever())
        reads: dict[str, _Read] = {}
        pending: deque[_Entry] = deque()
        try:
            while True:
                if pending:
                    entry = pending.popleft()
                    if await self._admissible(entry):
                        self._holdings.hand_over((entry.stream, entry.id))
                        yield self._message(entry)
                    continue
                if self._claimed:
                    pending.extend(self._claimed)
                    self._claimed.clear()
                    continue
                pending.extend(await self._next_entries(reads))
        finally:
            await self._stop_listening(reads)

    async def _stop_listening(
        self, reads: dict[str, asyncio.Task[list[_Entry]]]
    ) -> None:
        """Stop claiming and reading; give back what was fetched, not handed over."""
        self._hungry = False
        if self._claimer is not None:  # nobody takes what it would claim now
            await stop_task(self._claimer)
            self._claimer = None
        for read in reads.values():
            read.cancel()
        if reads:
            await asyncio.wait(reads.values(), timeout=2)
        self._claimed.clear()
        fetched = self._holdings.fetched_items()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._release(fetched), timeout=5)

    async def _next_entries(self, reads: dict[str, _Read]) -> list[_Entry]:
        """Wait for entries from any stream read, or for entries a claim took over."""
        for stream in self.streams:
            if stream not in reads:
                reads[stream] = asyncio.create_task(self._read(stream))
        self._claimed_event.clear()
        claims = asyncio.ensure_future(self._claimed_event.wait())
        self._hungry = True
        try:
            await asyncio.wait(
                [*reads.values(), claims], return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            self._hungry = False
            claims.cancel()
        entries: list[_Entry] = []
        for stream, read in list(reads.items()):
            if read.done():
                del reads[stream]
                entries.extend(read.result())
        return entries

    def _message(self, entry: _Entry) -> StreamMessage:
        return StreamMessage(  # validating is cheaper than model_construct
            data=entry.payload or b"",
            ack=partial(self._ack, entry.stream, entry.id, entry.delivery),
            id=entry.id,
            queue=entry.stream,
            delivery=entry.delivery,
        )

    async def _read(self, stream: str) -> list[_Entry]:
        """Block on one stream until it gives new entries; ride out outages."""
        backoff = Backoff(f"reading {stream}", logger)
        while True:
            try:
                reply = await self.endpoint.client.xreadgroup(
                    self.consumer_group_name,
                    self.consumer_name,
                    {stream: ">"},
                    count=self.count,
                    block=self.block,
                )
            except ResponseError as error:
                raise_if_cancelled()
                if not _is_nogroup(error):
                    raise
                logger.warning("Group %s of %s is gone; creating it again",
                               self.consumer_group_name, stream)  # fmt: skip
                try:
                    await self._create_group(stream)
                except _GROUP_ERRORS as failure:
                    await backoff.failed(failure)
                continue
            except RETRYABLE as error:
                await backoff.failed(error)
                continue
            entries = _read_entries(reply)
            for entry in entries:  # held before anything else can interrupt
                self._holdings.add((entry.stream, entry.id), entry.delivery)
            backoff.succeeded()
            if entries:
                return entries

    async def _admissible(self, entry: _Entry) -> bool:
        """Bury an entry that this worker could not run instead of dropping it.

        An entry without a payload (not XADDed by a broker) is buried everywhere.
        """
        reason = (
            "payload missing" if entry.payload is None else self._refusal(entry.payload)
        )
        if reason is None:
            return True
        await self._bury(entry, reason)
        return False

    # -- claiming ----------------------------------------------------------------

    async def _claim_forever(self) -> None:
        """Every claim interval: promote delayed entries; take over when hungry.

        Due delayed entries move into the streams every time; entries that dead
        workers left are taken over only while listen() waits for work, so that a
        busy worker does not collect work that idle workers could do.
        """
        backoff = Backoff(f"claiming on {self.queue_name}", logger)
        loop = asyncio.get_running_loop()
        wake_at = loop.time()
        while True:
            await asyncio.sleep(max(0.0, wake_at - loop.time()))
            wake_at = loop.time() + self.claim_interval
            for stream in self.streams:
                try:
                    next_due = await self._claim(stream)
                except RETRYABLE as error:
                    await backoff.failed(error)
                    continue
                except ResponseError as error:
                    raise_if_cancelled()
                    if not _is_nogroup(error):
                        logger.exception("Claiming on %s failed", stream)
                        continue
                    with contextlib.suppress(*_GROUP_ERRORS):
                        await self._create_group(stream)
                    continue
                backoff.succeeded()
                if next_due is not None:
                    wake_at = min(wake_at, loop.time() + next_due)

    async def _claim(self, stream: str) -> float | None:
        """Run the claim script once; return seconds until a delayed entry is due."""
        keys = self._keys(stream)
        now_ms, next_due_ms, handed, buried = await scripts.run(
            self.endpoint.client,
            _CLAIM,
            [
                keys.stream,
                keys.lock,
                keys.cursor,
                keys.dead,
                keys.delayed,
                keys.payloads,
            ],
            [
                self.consumer_group_name,
                self.consumer_name,
                self.consumer_name,
                self._lock_ms,
                self.idle_timeout,
                self.unacknowledged_batch_size if self._hungry else 0,
                self.max_deliveries,
                _PROMOTE_LIMIT,
                self.maxlen or 0,
                "1" if self.approximate else "0",
                self.max_dead_letters,
            ],
        )
        for index in range(0, len(buried), 2):
            logger.warning(
                "Entry %s of %s is now a dead letter: %s",
                _text(buried[index]),
                stream,
                _text(buried[index + 1]),
            )
        if handed:
            for index in range(0, len(handed), 3):
                entry = _Entry(
                    stream,
                    _text(handed[index]),
                    int(handed[index + 1]),
                    handed[index + 2],
                )
                self._holdings.add((stream, entry.id), entry.delivery)
                self._claimed.append(entry)
            self._claimed_event.set()
        if int(next_due_ms) < 0:
            return None
        return max(0.0, (int(next_due_ms) - int(now_ms)) / 1000)

    # -- settling ----------------------------------------------------------------

    async def _ack(self, stream: str, entry_id: str, delivery: int) -> None:
        """Acknowledge the entry; acks made at the same time share one script call."""
        try:
            acked = await self._acks.submit(stream, entry_id)
        finally:
            self._holdings.forget((stream, entry_id), delivery)
        if not acked:
            logger.info(
                "Ack of %s on %s came after it was taken over", entry_id, stream
            )

    async def _ack_batch(self, stream: str, entry_ids: list[str]) -> list[bool]:
        acked = await attempt(
            f"acking {len(entry_ids)} entries on {stream}",
            logger,
            partial(
                scripts.run,
                self.endpoint.client,
                _ACK,
                [self._keys(stream).stream],
                [
                    self.consumer_group_name,
                    "1" if self.delete_on_ack else "0",
                    *entry_ids,
                ],
            ),
        )
        if acked is None:  # gave up, and said so: the leases expire instead
            return [True] * len(entry_ids)
        return [bool(int(flag)) for flag in acked]

    async def _bury(self, entry: _Entry, reason: str) -> None:
        """Move an entry this worker holds to the dead letters."""
        keys = self._keys(entry.stream)
        buried = await attempt(
            f"burying {entry.id} on {entry.stream}",
            logger,
            partial(
                scripts.run,
                self.endpoint.client,
                _BURY,
                [keys.stream, keys.dead],
                [
                    self.consumer_group_name,
                    entry.id,
                    entry.delivery,
                    reason,
                    entry.payload or b"",
                    self.max_dead_letters,
                ],
            ),
        )
        if buried:
            logger.warning(
                "Entry %s of %s is now a dead letter: %s",
                entry.id,
                entry.stream,
                reason,
            )
        self._holdings.forget((entry.stream, entry.id), entry.delivery)

    async def _release(
        self, held: Sequence[tuple[tuple[str, str], int]], *, counted: bool = False
    ) -> None:
        """Let the group take over entries this worker will not finish."""
        by_stream: dict[str, list[tuple[str, int]]] = {}
        for (stream, entry_id), delivery in held:
            by_stream.setdefault(stream, []).append((entry_id, delivery))
        for stream, entries in by_stream.items():
            keys = self._keys(stream)
            for chunk in chunks(entries):
                flat = [item for pair in chunk for item in pair]
                try:
                    await scripts.run(
                        self.endpoint.client,
                        _RELEASE,
                        [keys.stream, keys.lock],
                        [
                            self.consumer_group_name,
                            self.consumer_name,
                            _RELEASED_IDLE_MS,
                            "0" if counted else "1",
                            *flat,
                        ],
                    )
                except _GROUP_ERRORS as error:
                    logger.warning(
                        "Could not hand back %d entries of %s (%s); they are taken"
                        " over after idle_timeout",
                        len(chunk),
                        stream,
                        error,
                    )
                for entry_id, delivery in chunk:
                    self._holdings.forget((stream, entry_id), delivery)

    async def _renew(
        self, held: list[tuple[tuple[str, str], int]]
    ) -> list[tuple[str, str]]:
        """Reset the idle time of held entries; return those taken over meanwhile."""
        lost: list[tuple[str, str]] = []
        by_stream: dict[str, list[str]] = {}
        for (stream, entry_id), _ in held:
            by_stream.setdefault(stream, []).append(entry_id)
        for stream, ids in by_stream.items():
            try:
                gone = await scripts.run(
                    self.endpoint.client,
                    _EXTEND,
                    [self._keys(stream).stream],
                    [self.consumer_group_name, self.consumer_name, *ids],
                )
            except _GROUP_ERRORS as error:  # the other streams still get renewed
                raise_if_cancelled()
                logger.warning("Could not renew entries of %s: %r", stream, error)
                continue
            lost.extend((stream, _text(entry_id)) for entry_id in gone)
        return lost

    # -- inspection ----------------------------------------------------------------

    async def stats(self, queue_name: str | None = None) -> list[StreamStats]:
        """Return a snapshot of each stream this broker reads (or of one)."""
        return [
            await self._stream_stats(stream)
            for stream in ([queue_name] if queue_name else self.streams)
        ]

    async def _stream_stats(self, stream: str) -> StreamStats:
        keys = self._keys(stream)
        length, delayed, dead, found, pending, lag, _, consumers = await scripts.run(
            self.endpoint.client,
            _STATS,
            [keys.stream, keys.dead, keys.delayed],
            [self.consumer_group_name],
        )
        return StreamStats(
            queue=stream,
            group=self.consumer_group_name,
            length=int(length),
            delayed=int(delayed),
            dead=int(dead),
            group_exists=bool(int(found)),
            pending=int(pending),
            lag=None if int(lag) < 0 else int(lag),
            consumers=[
                ConsumerStats(
                    name=_text(consumers[i]),
                    pending=int(consumers[i + 1]),
                    idle_seconds=int(consumers[i + 2]) / 1000,
                )
                for i in range(0, len(consumers), 3)
            ],
        )

    # -- dead letters --------------------------------------------------------------

    async def count_dead(self, queue_name: str | None = None) -> int:
        """Return the number of dead letters of the group on the stream."""
        return int(await self.endpoint.client.xlen(self._keys(queue_name).dead))

    async def list_dead(
        self,
        limit: int = 100,
        offset: int = 0,
        queue_name: str | None = None,
    ) -> list[DeadLetter]:
        """Return up to ``limit`` dead letters, oldest first, from ``offset``.

        A stream is read from its start, so ``offset + limit`` may not pass 10000.
        """
        options.positive_int("limit", limit)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be a whole number >= 0, got {offset!r}")
        if offset + limit > _DEAD_PAGE_LIMIT:
            raise ValueError(
                f"offset + limit must not pass {_DEAD_PAGE_LIMIT} on a stream, got"
                f" {offset + limit}",
            )
        _, entries = await scripts.run(
            self.endpoint.client, _DEAD, [self._keys(queue_name).dead], [offset, limit]
        )
        return [
            DeadLetter(
                id=_text(entries[i]),
                queue=queue_name or self.queue_name,
                died_at=datetime.fromtimestamp(
                    int(_text(entries[i]).split("-")[0]) / 1000, tz=timezone.utc
                ),
                deliveries=int(entries[i + 1]),
                reason=_text(entries[i + 2]),
                payload=entries[i + 3],
            )
            for i in range(0, len(entries), 5)
        ]

    async def requeue_dead(
        self,
        ids: Iterable[str] | None = None,
        queue_name: str | None = None,
    ) -> int:
        """Add dead letters back to the stream (``ids``, or all); return how many."""
        keys = self._keys(queue_name)
        target = [keys.stream, keys.dead]
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
        """Delete every dead letter of the group for good; return how many."""
        dead = self._keys(queue_name).dead
        purged = 0
        for _ in range(await self.count_dead(queue_name) // CHUNK + 1):
            step = await scripts.run(self.endpoint.client, _PURGE, [dead], [CHUNK])
            purged += step
            if not step:
                break
        return purged


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
    "delete_on_ack", "claim_interval", "max_dead_letters",
)  # fmt: skip


def _stream_options(arguments: dict[str, Any]) -> dict[str, Any]:
    """Pick the broker options out of a public constructor's arguments."""
    return {name: arguments[name] for name in _STREAM_OPTIONS}

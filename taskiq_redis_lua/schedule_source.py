"""Schedule sources: schedules in one hash plus one index, fetched without SCAN.

Under the prefix's hash tag: ``data`` (hash: schedule id -> schedule), ``index``
(sorted set, all scores 0, ordered by member: ``r:<id>`` for cron and interval
schedules, ``t:<due ms, 16 digits>:<id>`` for time schedules) and ``entries``
(hash: schedule id -> its index member). Adding and deleting change all three in
one script; fetching reads the index in pages that start after the last member
seen, so its cost grows with the schedules returned, not with the rest of the
keyspace, and a delete between pages never hides a schedule. When several
schedulers share a source, ``pre_send`` lets one of them send each fire time
(``SET NX PX`` on a claim key); the others get ``ScheduledTaskCancelledError``.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any, TypeVar

from taskiq import ScheduledTask, ScheduleSource
from taskiq.abc.serializer import TaskiqSerializer
from taskiq.exceptions import ScheduledTaskCancelledError
from taskiq.serializers import JSONSerializer

from taskiq_redis_lua import options, scripts, topology
from taskiq_redis_lua.compat import (
    ClusterAttributes,
    SentinelAttributes,
    SingleNodeScheduleAttributes,
)
from taskiq_redis_lua.keys import companion_key, schedule_keys
from taskiq_redis_lua.stats import ScheduleStats

logger = logging.getLogger("taskiq_redis_lua.schedule_source")

_ADD = scripts.script("schedule/add")
_DELETE = scripts.script("schedule/delete")
_FETCH = scripts.script("schedule/fetch")
_STATS = scripts.script("schedule/stats")
_SCRIPTS = [_ADD, _DELETE, _FETCH, _STATS]

#: Pages one get_schedules may read per range; beyond it the rest waits for the
#: next update (a warning says so).
_MAX_PAGES = 10_000
#: Time schedules due this long before a scheduler started count as past.
_PAST_GRACE_MS = 60_000
#: How long a claim on a time schedule's fire time lives (ms): longer than any
#: scheduler keeps a deleted schedule in its list.
_TIME_CLAIM_MS = 3_600_000
#: Index ranges (ZRANGE BYLEX) of the recurring and of all time schedules.
_RECURRING = ("[r:", "(r;")
_TIMES = ("[t:", "(t;")


_Source = TypeVar("_Source", bound="_ScheduleSource")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _due_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(1, int(moment.timestamp() * 1000))


def _interval_seconds(interval: int | timedelta) -> float:
    if isinstance(interval, timedelta):
        return interval.total_seconds()
    return float(interval)


def _is_recurring(schedule: ScheduledTask) -> bool:
    return schedule.cron is not None or schedule.interval is not None


def _member(schedule: ScheduledTask) -> str:
    """Return the schedule's index member: recurring, or a time schedule by due."""
    if _is_recurring(schedule):
        return f"r:{schedule.schedule_id}"
    assert schedule.time is not None
    return f"t:{_due_ms(schedule.time):016d}:{schedule.schedule_id}"


def _schedule_id(member: str) -> str:
    """Return the schedule id of an index member (``r:<id>``, ``t:<ms>:<id>``)."""
    return member[2:] if member.startswith("r:") else member.split(":", 2)[2]


def _fire_time(schedule: ScheduledTask, now_ms: int) -> tuple[str, int]:
    """Return the claim name of the fire time ``now`` belongs to, and its life (ms).

    - cron: the minute, in the schedule's offset time, so each minute sends once;
    - interval: no bucket; the claim lives a little less than the interval, so
      whichever scheduler sends first holds the others off until the next one;
    - time: its due time, once;
    - a schedule mixing cron, interval and time: the second.
    """
    kinds = [schedule.cron, schedule.interval, schedule.time]
    if sum(kind is not None for kind in kinds) > 1:
        return f"s{now_ms // 1000}", 5_000
    if schedule.cron is not None:
        offset = schedule.cron_offset
        shift = offset.total_seconds() if isinstance(offset, timedelta) else 0.0
        return f"m{math.floor((now_ms / 1000 + shift) / 60)}", 120_000
    if schedule.interval is not None:
        seconds = _interval_seconds(schedule.interval)
        return "i", max(500, int(1000 * max(seconds / 2, seconds - 1)))
    assert schedule.time is not None
    return f"t{_due_ms(schedule.time)}", _TIME_CLAIM_MS


class _ScheduleSource(ScheduleSource):
    """The schedule source. The public classes differ only in how they connect."""

    def __init__(
        self,
        connect: Callable[[], topology.Endpoint],
        *,
        prefix: str,
        serializer: TaskiqSerializer | None,
        buffer_size: int,
        skip_past_schedules: bool,
        deduplicate: bool,
        lookahead: float,
    ) -> None:
        super().__init__()
        self.prefix = options.queue_name("prefix", prefix)
        self.buffer_size = options.batch_size("buffer_size", buffer_size)
        self.serializer = options.serializer("serializer", serializer) or (
            JSONSerializer()
        )
        self.skip_past_schedules = options.flag(
            "skip_past_schedules", skip_past_schedules
        )
        self.deduplicate = options.flag("deduplicate", deduplicate)
        self.lookahead = options.positive_seconds("lookahead", lookahead)
        self.endpoint = connect()
        self._keys = schedule_keys(self.prefix)
        self._started_ms = _now_ms()
        self._migrate_from: ScheduleSource | None = None
        self._delete_migrated = True

    def with_migrate_from(
        self: _Source, source: ScheduleSource, delete_schedules: bool = True
    ) -> _Source:
        """Copy the schedules of ``source`` into this one at startup."""
        self._migrate_from = source
        self._delete_migrated = delete_schedules
        return self

    async def startup(self) -> None:
        """Load the scripts and run a migration if one was asked for."""
        await super().startup()
        self._started_ms = _now_ms()
        await scripts.load(self.endpoint.client, _SCRIPTS)
        if self._migrate_from is not None:
            await self._migrate(self._migrate_from)

    async def _migrate(self, source: ScheduleSource) -> None:
        await source.startup()
        try:
            if await self._same_storage(source):
                logger.info("%r stores its schedules here already", source)
                return
            read_all = getattr(source, "all_schedules", source.get_schedules)
            schedules = await read_all()
            logger.info("Migrating %d schedule(s) from %r", len(schedules), source)
            for schedule in schedules:
                await self.add_schedule(schedule)
                if self._delete_migrated:
                    await source.delete_schedule(schedule.schedule_id)
        finally:
            await source.shutdown()

    async def _same_storage(self, source: ScheduleSource) -> bool:
        """Tell whether ``source`` keeps its schedules in this source's keys."""
        if (
            not isinstance(source, _ScheduleSource)
            or source._keys.index != self._keys.index
        ):
            return False
        probe = companion_key(self.prefix, "migration-probe")
        token = uuid.uuid4().hex
        await self.endpoint.client.set(probe, token, px=10_000)
        seen = await source.endpoint.client.get(probe)
        return seen in (token, token.encode())

    async def shutdown(self) -> None:
        """Disconnect."""
        await self.endpoint.close()
        await super().shutdown()

    async def add_schedule(self, schedule: ScheduledTask) -> None:
        """Store the schedule and index it (recurring, or by due time) in one script."""
        payload = self.serializer.dumpb(schedule.model_dump(mode="json"))
        args: list[scripts.Arg] = [schedule.schedule_id, payload, _member(schedule)]
        await scripts.run(self.endpoint.client, _ADD, self._keys, args)

    async def delete_schedule(self, schedule_id: str) -> None:
        """Remove the schedule and its index entry in one script."""
        await scripts.run(self.endpoint.client, _DELETE, self._keys, [schedule_id])

    async def stats(self) -> ScheduleStats:
        """Return how many schedules there are and when the next time one is due."""
        now, count, next_due = await scripts.run(
            self.endpoint.client, _STATS, self._keys
        )
        return ScheduleStats(
            prefix=self.prefix,
            schedules=int(count),
            next_time_due=None
            if int(next_due) < 0
            else (int(next_due) - int(now)) / 1000,
        )

    async def get_schedules(self) -> list[ScheduledTask]:
        """Return cron and interval schedules and the time schedules due soon.

        Time schedules due by now (missed ones included) and within ``lookahead``
        seconds come back; taskiq's scheduler sends each when its time comes, so a
        schedule due between two reads is still sent on time.
        """
        until = _now_ms() + int(self.lookahead * 1000)
        since = self._started_ms - _PAST_GRACE_MS if self.skip_past_schedules else 0
        times = (f"[t:{max(0, since):016d}", f"(t:{until + 1:016d}")
        return self._decode(await self._fetch(*_RECURRING) + await self._fetch(*times))

    async def all_schedules(self) -> list[ScheduledTask]:
        """Return every stored schedule, time schedules due later included."""
        return self._decode(await self._fetch(*_RECURRING) + await self._fetch(*_TIMES))

    def _decode(self, raw: list[tuple[str, bytes | None]]) -> list[ScheduledTask]:
        schedules = []
        for schedule_id, payload in raw:
            if payload is None:
                logger.warning("Schedule %s has no data; skipping it", schedule_id)
                continue
            try:
                schedules.append(
                    ScheduledTask.model_validate(self.serializer.loadb(payload))
                )
            except Exception as error:  # noqa: BLE001 - one bad schedule must not stop the rest
                logger.warning("Cannot read schedule %s: %r", schedule_id, error)
        return schedules

    async def _fetch(self, lowest: str, highest: str) -> list[tuple[str, bytes | None]]:
        """Read every page of the index between two members (BYLEX bounds)."""
        found: list[tuple[str, bytes | None]] = []
        start = lowest
        for _ in range(_MAX_PAGES):
            page = await self._fetch_page(start, highest)
            found.extend((_schedule_id(member), payload) for member, payload in page)
            if len(page) < self.buffer_size:
                return found
            start = f"({page[-1][0]}"
        logger.warning("Read %d pages of schedules; the rest waits", _MAX_PAGES)
        return found

    async def _fetch_page(
        self, start: str, highest: str
    ) -> list[tuple[str, bytes | None]]:
        """Read one page: (index member, schedule data) pairs from ``start``."""
        page = await scripts.run(
            self.endpoint.client,
            _FETCH,
            self._keys,
            [start, highest, self.buffer_size],
        )
        members = [m.decode() if isinstance(m, bytes) else m for m in page[::2]]
        return list(zip(members, page[1::2], strict=True))

    async def pre_send(self, task: ScheduledTask) -> None:
        """Claim this fire time of the schedule; another scheduler may have it.

        :raises ScheduledTaskCancelledError: another scheduler sends this one.
        """
        if not self.deduplicate:
            return
        fire_time, lifetime_ms = _fire_time(task, _now_ms())
        claim = companion_key(self.prefix, "claim", f"{task.schedule_id}@{fire_time}")
        with topology.slot_moves_as_try_again():
            claimed = await self.endpoint.client.set(
                claim, b"1", nx=True, px=lifetime_ms
            )
        if not claimed:
            raise ScheduledTaskCancelledError

    async def post_send(self, task: ScheduledTask) -> None:
        """Remove a schedule with a ``time`` once it has been sent (as taskiq-redis)."""
        if task.time is not None:
            await self.delete_schedule(task.schedule_id)


def _deprecated(name: str) -> None:
    warnings.warn(
        f"{name} is deprecated; use ListRedisScheduleSource (or its cluster and"
        " sentinel variants), which this class now shares its storage with",
        DeprecationWarning,
        stacklevel=3,
    )


class ListRedisScheduleSource(SingleNodeScheduleAttributes, _ScheduleSource):
    """Schedule source on a single Redis server."""

    def __init__(
        self,
        url: str,
        prefix: str = "schedule",
        max_connection_pool_size: int | None = None,
        serializer: TaskiqSerializer | None = None,
        buffer_size: int = 50,
        skip_past_schedules: bool = False,
        *,
        deduplicate: bool = True,
        lookahead: float = 300.0,
        **connection_kwargs: Any,
    ) -> None:
        """Connect to ``url``; parameters as in taskiq-redis.

        :param prefix: prefix of the keys (they share its hash tag).
        :param serializer: JSON by default; pickle only if everyone who can write to
            this Redis is trusted.
        :param buffer_size: schedules read per script call.
        :param skip_past_schedules: do not send time schedules that were due more
            than a minute before this scheduler started (they stay stored).
        :param deduplicate: when several schedulers share the source, let only one
            send each fire time; False saves a Redis call per send when only one
            scheduler runs.
        :param lookahead: seconds ahead that time schedules are read, so that one
            due between two reads of the scheduler is still sent on time; keep it
            above the scheduler's ``--update-interval``.
        :param connection_kwargs: passed to redis-py's ``BlockingConnectionPool``.
        """
        super().__init__(
            partial(
                topology.single_node, url, max_connection_pool_size, connection_kwargs
            ),
            prefix=prefix,
            serializer=serializer,
            buffer_size=buffer_size,
            skip_past_schedules=skip_past_schedules,
            deduplicate=deduplicate,
            lookahead=lookahead,
        )


class ListRedisClusterScheduleSource(ClusterAttributes, _ScheduleSource):
    """Schedule source on a Redis Cluster (all keys in the slot of the prefix)."""

    def __init__(
        self,
        url: str,
        prefix: str = "schedule",
        serializer: TaskiqSerializer | None = None,
        buffer_size: int = 50,
        skip_past_schedules: bool = False,
        *,
        deduplicate: bool = True,
        lookahead: float = 300.0,
        **connection_kwargs: Any,
    ) -> None:
        """Connect to the cluster ``url`` belongs to; see ListRedisScheduleSource."""
        super().__init__(
            partial(topology.cluster, url, connection_kwargs),
            prefix=prefix,
            serializer=serializer,
            buffer_size=buffer_size,
            skip_past_schedules=skip_past_schedules,
            deduplicate=deduplicate,
            lookahead=lookahead,
        )


class ListRedisSentinelScheduleSource(SentinelAttributes, _ScheduleSource):
    """Schedule source on the primary that Redis Sentinel names."""

    def __init__(
        self,
        sentinels: list[tuple[str, int]],
        master_name: str,
        prefix: str = "schedule",
        serializer: TaskiqSerializer | None = None,
        buffer_size: int = 50,
        skip_past_schedules: bool = False,
        min_other_sentinels: int = 0,
        sentinel_kwargs: Any | None = None,
        *,
        deduplicate: bool = True,
        lookahead: float = 300.0,
        **connection_kwargs: Any,
    ) -> None:
        """Connect through ``sentinels`` to ``master_name``.

        Other parameters as in :class:`ListRedisScheduleSource`.
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
            prefix=prefix,
            serializer=serializer,
            buffer_size=buffer_size,
            skip_past_schedules=skip_past_schedules,
            deduplicate=deduplicate,
            lookahead=lookahead,
        )


class RedisScheduleSource(ListRedisScheduleSource):
    """Deprecated name, kept for migration: a ListRedisScheduleSource."""

    def __init__(
        self,
        url: str,
        prefix: str = "schedule",
        buffer_size: int = 50,
        max_connection_pool_size: int | None = None,
        serializer: TaskiqSerializer | None = None,
        **connection_kwargs: Any,
    ) -> None:
        """Parameters as in taskiq-redis's RedisScheduleSource."""
        _deprecated("RedisScheduleSource")
        super().__init__(
            url,
            prefix=prefix,
            max_connection_pool_size=max_connection_pool_size,
            serializer=serializer,
            buffer_size=buffer_size,
            **connection_kwargs,
        )


class RedisClusterScheduleSource(ListRedisClusterScheduleSource):
    """Deprecated name, kept for migration: a ListRedisClusterScheduleSource."""

    def __init__(
        self,
        url: str,
        prefix: str = "schedule",
        serializer: TaskiqSerializer | None = None,
        **connection_kwargs: Any,
    ) -> None:
        """Parameters as in taskiq-redis's RedisClusterScheduleSource."""
        _deprecated("RedisClusterScheduleSource")
        super().__init__(url, prefix=prefix, serializer=serializer, **connection_kwargs)


class RedisSentinelScheduleSource(ListRedisSentinelScheduleSource):
    """Deprecated name, kept for migration: a ListRedisSentinelScheduleSource."""

    def __init__(
        self,
        sentinels: list[tuple[str, int]],
        master_name: str,
        prefix: str = "schedule",
        buffer_size: int = 50,
        serializer: TaskiqSerializer | None = None,
        min_other_sentinels: int = 0,
        sentinel_kwargs: Any | None = None,
        **connection_kwargs: Any,
    ) -> None:
        """Parameters as in taskiq-redis's RedisSentinelScheduleSource."""
        _deprecated("RedisSentinelScheduleSource")
        super().__init__(
            sentinels,
            master_name,
            prefix=prefix,
            serializer=serializer,
            buffer_size=buffer_size,
            min_other_sentinels=min_other_sentinels,
            sentinel_kwargs=sentinel_kwargs,
            **connection_kwargs,
        )

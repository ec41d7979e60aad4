"""What is waiting, in flight and dead: per-queue snapshots for people and scripts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Totals:
    """What a queue did since it was created, counted by its scripts in Redis."""

    #: Messages ever sent to the queue.
    kicked: int = 0
    #: Messages acknowledged.
    acked: int = 0
    #: Messages handed out again: leases that ran out, stream entries taken over.
    redelivered: int = 0
    #: Messages that became dead letters.
    dead_lettered: int = 0


def totals_and_age(reply: Sequence[Any]) -> tuple[Totals, float | None]:
    """Read the totals and the oldest ready age (ms, -1: none) ending a stats reply."""
    kicked, acked, redelivered, dead_lettered, age_ms = (int(n) for n in reply)
    age = None if age_ms < 0 else age_ms / 1000
    return Totals(kicked, acked, redelivered, dead_lettered), age


@dataclass(frozen=True)
class ListQueueStats:
    """A snapshot of one list queue, taken by one script."""

    queue: str
    ready: int
    delayed: int
    in_flight: int
    dead: int
    #: Seconds until the earliest lease runs out; negative: overdue, so a worker
    #: died holding it and it is about to be redelivered. None: nothing in flight.
    next_lease_expiry: float | None
    #: Seconds until the next delayed message is due. None: none delayed.
    next_delayed_due: float | None
    #: False when nothing was ever sent to the queue (a typo in its name?).
    exists: bool = True
    #: Seconds the oldest ready message has waited since it was kicked (up to 2 s
    #: over: producers note the kick time once per second). None: nothing ready.
    oldest_ready_age: float | None = None
    totals: Totals = field(default_factory=Totals)
    kind: str = "list"

    def as_dict(self) -> dict[str, Any]:
        """Return the snapshot as plain data (for ``--json``)."""
        return asdict(self)


@dataclass(frozen=True)
class ScheduleStats:
    """A snapshot of one schedule source, taken by one script."""

    prefix: str
    schedules: int
    #: Seconds until the next time schedule is due (negative: overdue). None: no
    #: time schedule.
    next_time_due: float | None

    def as_dict(self) -> dict[str, Any]:
        """Return the snapshot as plain data (for ``--json``)."""
        return asdict(self)


@dataclass(frozen=True)
class ConsumerStats:
    """One consumer of a stream's group."""

    name: str
    pending: int
    idle_seconds: float


@dataclass(frozen=True)
class StreamStats:
    """A snapshot of one stream and one consumer group, taken by one script."""

    queue: str
    group: str
    length: int
    delayed: int
    dead: int
    group_exists: bool
    pending: int
    #: Entries not yet delivered to the group; None when Redis cannot tell.
    lag: int | None
    consumers: list[ConsumerStats] = field(default_factory=list)
    #: Seconds the oldest entry the group has not read yet has waited since it was
    #: added. None: the group has read everything.
    oldest_ready_age: float | None = None
    totals: Totals = field(default_factory=Totals)
    kind: str = "stream"

    def as_dict(self) -> dict[str, Any]:
        """Return the snapshot as plain data (for ``--json``)."""
        return asdict(self)

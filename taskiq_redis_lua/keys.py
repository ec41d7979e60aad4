"""Key names and hash tags.

Every key of one script call must live in one Redis Cluster slot. Redis hashes only
the part of a key between the first ``{`` and the next ``}`` when that part is not
empty (the hash tag), otherwise the whole key.

:func:`slot_stem` turns a name into a stem such that ``stem + ":" + part`` hashes
exactly like the name itself, so a queue keeps its plain name (the stream key *is*
the queue name) while its companion keys sit in the same slot. Distinct names always
get distinct stems: a name with braces or ``%`` has them escaped after a tag of its
own slot, so ``jobs`` (stem ``{jobs}``) and ``{jobs}`` (stem ``{jobs}%7Bjobs%7D``)
never share a key.
"""

from binascii import crc_hqx
from dataclasses import dataclass
from functools import lru_cache
from itertools import count

CLUSTER_SLOTS = 16384


def hash_tag(key: str) -> str | None:
    """Return the hash tag Redis Cluster hashes for ``key``, or None if it has none."""
    start = key.find("{")
    if start < 0:
        return None
    end = key.find("}", start + 1)
    if end < 0 or end == start + 1:
        return None
    return key[start + 1 : end]


def key_slot(key: str) -> int:
    """Return the cluster slot of ``key``, computed as Redis does (CRC16 mod 16384)."""
    tag = hash_tag(key)
    hashed = key if tag is None else tag
    return crc_hqx(hashed.encode(), 0) % CLUSTER_SLOTS


@lru_cache(maxsize=1024)
def _tag_for_slot(slot: int) -> str:
    """Return a short brace-free tag that hashes to ``slot``."""
    for number in count():  # every slot is hit within a few hundred thousand tries
        tag = f"s{number}"
        if crc_hqx(tag.encode(), 0) % CLUSTER_SLOTS == slot:
            return tag
    raise AssertionError("unreachable")  # pragma: no cover


def escape(name: str) -> str:
    """Return ``name`` with ``%``, ``{`` and ``}`` escaped, so it holds no hash tag."""
    return name.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


@lru_cache(maxsize=4096)
def slot_stem(name: str) -> str:
    """Return the stem of the companion keys of ``name``, in the slot of ``name``.

    - a plain name is wrapped: ``jobs`` -> ``{jobs}`` (hashed like ``jobs``);
    - a name with ``{``, ``}`` or ``%`` gets a tag that hashes like the name, then the
      escaped name: ``{tenant}:jobs`` -> ``{tenant}%7Btenant%7D:jobs``.
    """
    if not name:
        raise ValueError("a queue name or key prefix must not be empty")
    escaped = escape(name)
    if escaped == name:
        return "{" + name + "}"
    tag = hash_tag(name)
    if tag is None:
        tag = name if "}" not in name else _tag_for_slot(key_slot(name))
    return "{" + tag + "}" + escaped


def companion_key(name: str, part: str, qualifier: str | None = None) -> str:
    """Return the key ``part`` (a word without ``:``) that belongs to ``name``.

    A ``qualifier`` (a consumer group, say) follows the part after a dot, with
    ``%``, braces and ``:`` escaped, so distinct qualifiers never share a key.
    """
    if qualifier is None:
        return f"{slot_stem(name)}:{part}"
    return f"{slot_stem(name)}:{part}.{escape(qualifier).replace(':', '%3A')}"


@dataclass(frozen=True)
class ResultKeys:
    """The keys of one task's result, all in the slot of the task id."""

    result: str
    progress: str
    watch: str


def result_keys(prefix: str | None, task_id: str) -> ResultKeys:
    """Return the result, progress and watch keys of a task, all in one slot.

    Results are tagged by task id, ``<prefix>:{<task_id>}``, so they spread over a
    cluster; braces and ``%`` in the prefix or the id are escaped, so no two tasks
    share a key and a prefix cannot pin every result to one slot by accident.
    """
    if not task_id:
        raise ValueError("task_id must not be empty")
    stem = "{" + escape(task_id) + "}"
    if prefix is not None:
        stem = f"{escape(prefix)}:{stem}"
    return ResultKeys(result=stem, progress=f"{stem}:progress", watch=f"{stem}:watch")


@dataclass(frozen=True)
class ScheduleKeys:
    """The keys of one schedule source, all in the slot of its prefix."""

    data: str
    entries: str
    index: str


def schedule_keys(prefix: str) -> ScheduleKeys:
    """Return the keys of the schedule source with key prefix ``prefix``."""
    return ScheduleKeys(
        data=companion_key(prefix, "data"),
        entries=companion_key(prefix, "entries"),
        index=companion_key(prefix, "index"),
    )


@dataclass(frozen=True)
class ListQueueKeys:
    """The keys of one list queue, all in the slot of the queue name."""

    seq: str
    queue: str
    msgs: str
    ready: str
    delayed: str
    inflight: str
    deliveries: str
    dead: str
    reasons: str
    marker: str
    counters: str
    epochs: str


@lru_cache(maxsize=256)
def list_queue_keys(queue_name: str) -> ListQueueKeys:
    """Return the keys of the list queue ``queue_name``."""
    return ListQueueKeys(
        seq=companion_key(queue_name, "seq"),
        queue=companion_key(queue_name, "queue"),
        msgs=companion_key(queue_name, "msgs"),
        ready=companion_key(queue_name, "ready"),
        delayed=companion_key(queue_name, "delayed"),
        inflight=companion_key(queue_name, "inflight"),
        deliveries=companion_key(queue_name, "deliveries"),
        dead=companion_key(queue_name, "dead"),
        reasons=companion_key(queue_name, "reasons"),
        marker=companion_key(queue_name, "marker"),
        counters=companion_key(queue_name, "counters"),
        epochs=companion_key(queue_name, "epochs"),
    )


@dataclass(frozen=True)
class StreamKeys:
    """The keys of one stream queue and consumer group, in the slot of the stream."""

    stream: str
    lock: str
    cursor: str
    dead: str
    delayed: str
    payloads: str
    counters: str


@lru_cache(maxsize=256)
def stream_keys(stream: str, group: str) -> StreamKeys:
    """Return the keys of stream ``stream`` (its exact name) read by ``group``."""
    return StreamKeys(
        stream=stream,
        lock=companion_key(stream, "lock", group),
        cursor=companion_key(stream, "cursor", group),
        dead=companion_key(stream, "dead", group),
        delayed=companion_key(stream, "delayed"),
        payloads=companion_key(stream, "payloads"),
        counters=companion_key(stream, "counters", group),
    )

"""Key names and hash tags.

Every key of one script call must live in one Redis Cluster slot. Redis hashes only
the part of a key between the first ``{`` and the next ``}`` when that part is not
empty (the hash tag), otherwise the whole key. :func:`slot_stem` turns a name into a
stem such that ``stem + anything`` hashes exactly like the name itself, so a queue
keeps its plain name (the stream key *is* the queue name) while its companion keys
sit in the same slot.
"""

from binascii import crc_hqx
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


@lru_cache(maxsize=4096)
def slot_stem(name: str) -> str:
    """Return a stem for the companion keys of ``name``, in the slot of ``name``.

    - ``name`` carries a hash tag: the stem is ``name`` itself (``q{x}`` -> ``q{x}``);
    - ``name`` has no ``}``: the stem wraps it (``q`` -> ``{q}``, hashed like ``q``);
    - otherwise (``a}b``, ``a{}b``): no tag can hold the name, so the stem starts
      with a short tag of the same slot, followed by the name (``{s123}a}b``).
    """
    if not name:
        raise ValueError("a queue name or key prefix must not be empty")
    if hash_tag(name) is not None:
        return name
    if "}" not in name:
        return "{" + name + "}"
    return "{" + _tag_for_slot(key_slot(name)) + "}" + name


def companion_key(name: str, part: str) -> str:
    """Return the key ``part`` that belongs to ``name`` (a queue or a prefix)."""
    return f"{slot_stem(name)}:{part}"


def result_keys(prefix: str | None, task_id: str) -> tuple[str, str]:
    """Return the result key and the progress key of a task, both in one slot.

    Results are tagged by task id (``<prefix>:{<task_id>}``), so they spread over a
    cluster. A prefix that carries its own hash tag (``{results}``) keeps every
    result of that prefix in the slot of its tag, as the user asked.
    """
    if not task_id:
        raise ValueError("task_id must not be empty")
    if prefix is None:
        stem = slot_stem(task_id)
    elif "{" not in prefix:
        stem = f"{prefix}:{slot_stem(task_id)}"
    else:
        stem = slot_stem(f"{prefix}:{task_id}")
    return stem, f"{stem}:progress"

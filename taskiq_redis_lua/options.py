"""Checks of constructor options: a clear ValueError that names the parameter."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def positive_seconds(name: str, value: Any, *, minimum: float = 0.0) -> float:
    """Return ``value`` as seconds if it is a finite number above ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0 or value < minimum:
        floor = f"at least {minimum}" if minimum else "more than zero"
        raise ValueError(f"{name} must be {floor} seconds, got {value!r}")
    return float(value)


def positive_int(name: str, value: Any) -> int:
    """Return ``value`` if it is a whole number of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
    return value


def queue_name(name: str, value: Any) -> str:
    """Return ``value`` if it can name a queue (a non-empty string)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def non_negative_seconds(name: str, value: Any) -> float:
    """Return ``value`` as seconds if it is a finite number of at least 0."""
    if value == 0 and not isinstance(value, bool):
        return 0.0
    return positive_seconds(name, value)


#: The most items one script call may take (a batch, a page): keeps calls bounded.
MAX_BATCH = 10_000


def batch_size(name: str, value: Any) -> int:
    """Return ``value`` if it is a whole number from 1 to :data:`MAX_BATCH`."""
    size = positive_int(name, value)
    if size > MAX_BATCH:
        raise ValueError(
            f"{name} must be at most {MAX_BATCH} (one script call handles that many),"
            f" got {value!r}",
        )
    return size


def flag(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool (or 0 or 1, as older code may pass)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"{name} must be True or False, got {value!r}")


_STREAM_ID = re.compile(r"\$|\d+(-\d+)?")


def stream_id(name: str, value: Any, *, also: tuple[str, ...] = ()) -> str:
    """Return ``value`` as a stream id: ``"$"``, ``"<ms>"`` or ``"<ms>-<seq>"``.

    ``also`` lists other strings that are accepted as they are.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and (value in also or _STREAM_ID.fullmatch(value)):
        return value
    accepted = ", ".join(repr(word) for word in ("$", "0", "<ms>-<seq>", *also))
    raise ValueError(f"{name} must be a stream id ({accepted}), got {value!r}")


def consumer_name(name: str, value: Any) -> str:
    """Return ``value`` as a consumer name; a random one when it is None or empty.

    A number (such as a process id) is used as its digits, as taskiq-redis did.
    """
    if value is None or value == "":
        return str(uuid.uuid4())
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return queue_name(name, value)


def serializer(name: str, value: Any) -> Any:
    """Return ``value`` if it is None or has taskiq's ``dumpb`` and ``loadb``."""
    if value is None or (
        callable(getattr(value, "dumpb", None))
        and callable(getattr(value, "loadb", None))
    ):
        return value
    raise ValueError(
        f"{name} must be a taskiq serializer (with dumpb and loadb), such as"
        f" JSONSerializer(), got {value!r}",
    )


def xread_block(value: Any) -> int:
    """Return ``value`` (ms) if a blocking read may wait that long; 0 is refused."""
    if value == 0 and not isinstance(value, bool):
        raise ValueError(
            "xread_block=0 (block forever) is not supported: a read must end before"
            " the socket timeout; use a few seconds",
        )
    return positive_int("xread_block", value)


def additional_streams(value: Any) -> dict[str, str]:
    """Return ``{stream: where its group starts}`` (an id, ``$``, ``0`` or ``>``)."""
    if value is not None and not isinstance(value, Mapping):
        raise ValueError(
            "additional_streams must map stream names to where their groups start,"
            f" such as {{'other': '>'}}, got {value!r}",
        )
    return {
        queue_name("additional_streams", name): stream_id(
            f"additional_streams[{name!r}]", start, also=(">",)
        )
        for name, start in (value or {}).items()
    }


def shorter_than_socket_timeout(
    name: str, seconds: float, socket_timeout: float | None
) -> None:
    """Refuse a blocking wait of ``seconds`` that the socket timeout would cut."""
    if socket_timeout is not None and seconds >= socket_timeout:
        raise ValueError(
            f"{name} ({seconds:g} s) must be shorter than socket_timeout"
            f" ({socket_timeout:g} s), or every idle wait ends in a timeout",
        )


def optional(check: Callable[[str, Any], T], name: str, value: Any) -> T | None:
    """Return None for None, else ``check(name, value)``."""
    return None if value is None else check(name, value)

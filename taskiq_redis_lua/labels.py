"""Task labels the queues act on: ``priority`` and ``delay``.

Parsed here, in Python, and passed to the scripts as plain numbers; no script parses
a taskiq message.
"""

from __future__ import annotations

import math
from typing import Any

#: Priorities are whole numbers in this range; higher runs first, 0 by default.
PRIORITY_LIMIT = 2**31


def priority(value: Any) -> int:
    """Return the ``priority`` label as a whole number (None: 0)."""
    if value is None:
        return 0
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(
            f"the priority label must be a whole number (higher first), got {value!r}",
        )
    if abs(value) > PRIORITY_LIMIT:
        raise ValueError(
            f"the priority label must be within ±{PRIORITY_LIMIT}, got {value}"
        )
    return value


def delay_ms(value: Any) -> int:
    """Return the ``delay`` label (seconds: int, float or str) in milliseconds."""
    if value is None:
        return 0
    seconds: float
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"the delay label must be a number of seconds, got {value!r}",
        ) from None
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"the delay label must be zero or more seconds, got {value!r}")
    return round(seconds * 1000)

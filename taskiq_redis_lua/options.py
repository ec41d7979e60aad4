"""Checks of constructor options: a clear ValueError that names the parameter."""

from __future__ import annotations

import math
from typing import Any


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

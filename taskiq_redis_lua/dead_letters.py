"""Dead letters: messages that will not be delivered again unless requeued."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class DeadLetter:
    """A message that will not be delivered again unless requeued."""

    id: str
    queue: str
    died_at: datetime
    deliveries: int
    reason: str
    payload: bytes

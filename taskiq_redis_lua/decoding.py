"""Decoding each received message once.

Before a broker hands a message to taskiq it decodes it, so that what taskiq could not
run is dead-lettered instead of dropped; taskiq then decodes the same bytes again.
:class:`DecodesOnce` gives a broker a formatter that remembers what the broker decoded
and hands taskiq that message instead of decoding it a second time.
"""

from __future__ import annotations

from taskiq import BrokerMessage, TaskiqFormatter, TaskiqMessage

#: Decoded messages kept for taskiq at most (more than taskiq ever holds unread).
_KEPT = 4096


class _RememberingFormatter(TaskiqFormatter):
    """Wraps a formatter; ``loads`` of bytes decoded by :meth:`decode` costs nothing."""

    def __init__(self, inner: TaskiqFormatter) -> None:
        self.inner = inner
        # Keyed by id(payload); the payload is kept too, so its id stays its own.
        self._kept: dict[int, tuple[bytes, TaskiqMessage]] = {}

    def dumps(self, message: TaskiqMessage) -> BrokerMessage:
        """Encode with the wrapped formatter."""
        return self.inner.dumps(message)

    def loads(self, message: bytes) -> TaskiqMessage:
        """Return the message :meth:`decode` made of these very bytes, else decode."""
        kept = self._kept.pop(id(message), None)
        if kept is not None and kept[0] is message:
            return kept[1]
        return self.inner.loads(message)

    def decode(self, payload: bytes) -> TaskiqMessage:
        """Decode ``payload`` and keep the message for the next ``loads`` of it."""
        decoded = self.inner.loads(payload)
        self._kept[id(payload)] = (payload, decoded)
        if len(self._kept) > _KEPT:  # handed over and never run (a shutdown)
            del self._kept[next(iter(self._kept))]
        return decoded


class DecodesOnce:
    """Broker mixin: a payload decoded with :meth:`_decode` is not decoded again.

    ``formatter`` may still be replaced as usual (``with_formatter``).
    """

    _remembering: _RememberingFormatter

    @property
    def formatter(self) -> TaskiqFormatter:
        """The broker's formatter (wrapped)."""
        return self._remembering

    @formatter.setter
    def formatter(self, value: TaskiqFormatter) -> None:
        if isinstance(value, _RememberingFormatter):
            value = value.inner
        self._remembering = _RememberingFormatter(value)

    def _decode(self, payload: bytes) -> TaskiqMessage:
        """Decode a received payload; taskiq gets this message without decoding."""
        return self._remembering.decode(payload)

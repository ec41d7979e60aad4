"""Admission: what a worker could not run is dead-lettered, and decoded only once.

Outside a worker process a broker is a plain transport: ``listen()`` yields every
message exactly as it was kicked, whatever its bytes. Inside a worker
(``is_worker_process``, set by ``taskiq worker`` and taskiq's in-process receiver)
a payload the formatter cannot decode, or a task this worker does not know, is
refused so that the broker can dead-letter it instead of taskiq dropping it.
What the broker decoded to decide is handed to taskiq without decoding it again.
"""

from __future__ import annotations

from taskiq import AsyncBroker, BrokerMessage, TaskiqFormatter, TaskiqMessage

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


class DecodesOnce(AsyncBroker):
    """Broker base: admission of received payloads, each decoded at most once.

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

    def _refusal(self, payload: bytes) -> str | None:
        """Return why this worker cannot run ``payload``, or None to hand it over.

        Outside a worker process nothing is refused: the broker is a transport.
        """
        if not self.is_worker_process:
            return None
        try:
            task_message = self._remembering.decode(payload)
        except Exception as error:  # noqa: BLE001 - any decoding failure refuses it
            return f"undecodable payload: {type(error).__name__}: {error}"
        if self.find_task(task_message.task_name) is None:
            return f"unknown task {task_message.task_name!r}"
        return None

"""Driving a broker's listen() the way taskiq's receiver does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from taskiq import AsyncBroker, BrokerMessage, TaskiqFormatter
from taskiq.message import TaskiqMessage


class Listener:
    """Drives ``broker.listen()`` the way taskiq's receiver does."""

    def __init__(self, broker: AsyncBroker) -> None:
        self.broker = broker
        self.stream = broker.listen()
        self.pending: asyncio.Future[Any] | None = None

    async def next(self, timeout: float = 5.0) -> Any:
        if self.pending is None:
            self.pending = asyncio.ensure_future(anext(self.stream))
        done, _ = await asyncio.wait({self.pending}, timeout=timeout)
        if not done:
            raise TimeoutError(f"no message within {timeout} s")
        message, self.pending = self.pending.result(), None
        return message

    async def gets_nothing_for(self, seconds: float) -> bool:
        try:
            message = await self.next(timeout=seconds)
        except TimeoutError:
            return True
        pytest.fail(f"unexpected message {message.id}")

    async def close(self) -> None:
        if self.pending is not None:
            self.pending.cancel()
            await asyncio.gather(self.pending, return_exceptions=True)
        await self.stream.aclose()

    def value(self, message: Any) -> Any:
        return self.broker.formatter.loads(message.data).args[0]


Listen = Callable[[AsyncBroker], Listener]

_B = TypeVar("_B", bound=AsyncBroker)


def as_worker(broker: _B) -> _B:
    """Make ``broker`` act as inside ``taskiq worker``, knowing the task ``echo``.

    A worker dead-letters what it cannot run; outside one a broker is a transport.
    """
    broker.is_worker_process = True
    broker.register_task(lambda value: value, task_name="echo")
    return broker


async def send(broker: AsyncBroker, value: Any, **labels: Any) -> None:
    """Kick a task message carrying ``value``, as ``task.kicker().with_labels()``."""
    message = TaskiqMessage(
        task_id=f"task-{value}",
        task_name="echo",
        labels=labels,
        args=[value],
        kwargs={},
    )
    await broker.kick(broker.formatter.dumps(message))


class CountingFormatter(TaskiqFormatter):
    """A user's formatter that counts how often it decodes."""

    def __init__(self, inner: TaskiqFormatter) -> None:
        self.inner = inner
        self.decoded = 0

    def dumps(self, message: TaskiqMessage) -> BrokerMessage:
        return self.inner.dumps(message)

    def loads(self, message: bytes) -> TaskiqMessage:
        self.decoded += 1
        return self.inner.loads(message)

"""Riding out Redis outages: retryable errors, back-off with jitter, one log per outage.

The loops that must outlive an outage (an idle worker's wait, the stream's claims,
acks, burials and result writes) retry here, at one level: the calls they make go
out with ``client_retry=False`` (see ``scripts.run``), so redis-py's own retries do
not run inside ours. The delays are redis-py's ``EqualJitterBackoff``; what this
module adds is one log line when an outage starts and one when it ends, instead of
one per attempt. Every other call (a kick, a result read) is retried by the client's
own ``Retry``, as built in ``topology.py``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.backoff import EqualJitterBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    BusyLoadingError,
    ClusterDownError,
    ClusterError,
    ConnectionError,  # noqa: A004 - redis-py's, not the builtin
    ReadOnlyError,
    TimeoutError,  # noqa: A004
    TryAgainError,
)

T = TypeVar("T")

#: Attempts of one settling call (an ack, a burial, a result write) through an
#: outage: 18-36 s of back-off (27 s on average) before it is given up.
ATTEMPTS = 12

#: Errors that a later attempt may not meet: the server is away, loading, failing
#: over, or the cluster is healing or moving slots (``TRYAGAIN``, and redis-py's
#: ``ClusterError`` when a call ran out of redirections).
RETRYABLE: tuple[type[Exception], ...] = (
    ConnectionError,
    TimeoutError,
    BusyLoadingError,
    ClusterDownError,
    ClusterError,
    TryAgainError,
    ReadOnlyError,
    OSError,
)


def raise_if_misconfigured(error: BaseException) -> None:
    """Raise ``error`` if waiting cannot cure it.

    That is a refused password or ACL user, or a server certificate that is not
    trusted: redis-py reports both as a ConnectionError, like an outage.
    """
    if isinstance(error, AuthenticationError | AuthorizationError):
        raise error
    cause: BaseException | None = error
    for _ in range(5):  # redis-py wraps the ssl error at most a few levels deep
        if cause is None:
            return
        if isinstance(cause, ssl.SSLCertVerificationError):
            raise error
        cause = cause.__cause__ or cause.__context__


def raise_if_cancelled() -> None:
    """Raise CancelledError if the running task has been asked to stop.

    redis-py 8's asyncio client can finish a command although the task awaiting it
    was cancelled, and the CancelledError is lost. Loops that talk to Redis call
    this after every call so that a cancelled task still stops (Python >= 3.11,
    where a task remembers that it was cancelled).
    """
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    if cancelling is not None and cancelling():
        raise asyncio.CancelledError


class OutageLog:
    """One log line when an outage of ``what`` starts and one when it ends."""

    def __init__(self, what: str, logger: logging.Logger) -> None:
        """Log for ``what`` (named in each line) on ``logger``."""
        self.what = what
        self.logger = logger
        self.failures = 0

    def failed(self, error: BaseException) -> None:
        """Count a failed attempt; log it if it starts an outage."""
        raise_if_cancelled()
        if self.failures == 0:
            self.logger.warning(
                "%s: Redis is unreachable (%s: %s); retrying with back-off",
                self.what,
                type(error).__name__,
                error,
            )
        self.failures += 1

    def succeeded(self) -> None:
        """Log the end of an outage, if there was one."""
        raise_if_cancelled()
        if self.failures:
            self.logger.warning(
                "%s: Redis is reachable again after %d failed attempt(s)",
                self.what,
                self.failures,
            )
            self.failures = 0


class Backoff:
    """Capped exponential back-off with jitter, logging each outage once."""

    def __init__(
        self,
        what: str,
        logger: logging.Logger,
        *,
        first: float = 0.05,
        cap: float = 5.0,
    ) -> None:
        """Back off ``what`` (named in logs) from ``first`` up to ``cap`` seconds."""
        self.outage = OutageLog(what, logger)
        self.delays = EqualJitterBackoff(cap=cap, base=first)

    async def failed(self, error: BaseException) -> None:
        """Log the start of an outage once, then sleep before the next attempt."""
        self.outage.failed(error)
        await asyncio.sleep(self.delays.compute(min(self.outage.failures, 30)))

    def succeeded(self) -> None:
        """Log the end of an outage, if there was one."""
        self.outage.succeeded()


async def attempt(
    what: str,
    logger: logging.Logger,
    call: Callable[[], Awaitable[T]],
    attempts: int = ATTEMPTS,
    *,
    otherwise: str = "the lease expires instead",
) -> T | None:
    """Run ``call`` through a short outage; return None if Redis stays away.

    ``call`` should not retry by itself (``client_retry=False``). ``otherwise``
    ends the log line of giving up: what happens instead.
    """
    backoff = Backoff(what, logger)
    for _ in range(attempts):
        try:
            result = await call()
        except RETRYABLE as error:
            await backoff.failed(error)
        else:
            backoff.succeeded()
            return result
    logger.warning("Gave up %s: Redis stayed away; %s", what, otherwise)
    return None

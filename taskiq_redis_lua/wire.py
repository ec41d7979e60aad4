"""Hot-path commands written straight to one pooled connection of a non-cluster client.

redis-py's ``execute_command`` and ``Pipeline`` do a lot of bookkeeping per command
(metrics, deprecation wrappers, response callbacks, a timeout context per reply);
for the hot path's ``EVALSHA`` calls that costs the worker more CPU than Redis spends
running the scripts. :func:`pack_evalsha` and :func:`pack_command` write commands in
the Redis protocol; :func:`exchange` sends them in one write and reads the replies
in order, under the connection's own retry policy and socket timeout. It is for
:class:`redis.asyncio.Redis` clients (single node and Sentinel); a cluster client
routes by slot and keeps redis-py's pipeline.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Sequence
from functools import cache
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

if sys.version_info >= (3, 11):
    from asyncio import timeout
else:  # redis-py depends on async-timeout before Python 3.11.3
    from async_timeout import timeout  # type: ignore[import-not-found,unused-ignore]

Arg = str | bytes | int | float


def _bulk(arg: Arg) -> bytes:
    if isinstance(arg, bytes):
        data = arg
    elif isinstance(arg, str):
        data = arg.encode()
    elif isinstance(arg, int) and not isinstance(arg, bool):
        data = b"%d" % arg
    elif isinstance(arg, float):
        data = repr(arg).encode()
    else:
        # redis-py refuses bools and other types too; say which argument it was.
        raise TypeError(f"a Redis argument must be str, bytes, int or float: {arg!r}")
    return b"$%d\r\n%b\r\n" % (len(data), data)


def pack_command(*args: Arg) -> bytes:
    """Return one command in RESP."""
    return b"*%d\r\n%b" % (len(args), b"".join(map(_bulk, args)))


@cache
def _evalsha_head(sha: str, key_count: int, size: int) -> bytes:
    return b"*%d\r\n%b%b%b" % (
        size,
        _bulk("EVALSHA"),
        _bulk(sha),
        _bulk(key_count),
    )


def pack_evalsha(
    sha: str, calls: Sequence[tuple[Sequence[str], Sequence[Arg]]]
) -> bytes:
    """Return one ``EVALSHA sha numkeys keys... args...`` per call, in RESP."""
    parts: list[bytes] = []
    for keys, args in calls:
        parts.append(_evalsha_head(sha, len(keys), 3 + len(keys) + len(args)))
        parts.extend(map(_bulk, keys))
        parts.extend(map(_bulk, args))
    return b"".join(parts)


async def exchange(client: Redis, packed: bytes, count: int) -> list[Any]:
    """Send ``packed`` (``count`` commands) in one write; return their replies.

    An error reply is returned in place of its reply (a :class:`ResponseError`,
    e.g. ``NoScriptError``); connection errors are retried as the client's retry
    policy says, then raised. A connection left with unread replies (an error or a
    cancellation half way) is closed, never reused.
    """
    pool = client.connection_pool
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]

    async def read_one() -> Any:
        try:
            return await connection.read_response(timeout=math.inf)
        except ResponseError as error:
            return error

    async def once() -> list[Any]:
        # One timer for the write and every reply. redis-py would run the write
        # in a task of its own under asyncio.wait_for whenever the connection has
        # a socket timeout; the outer timer bounds it instead.
        socket_timeout = connection.socket_timeout
        try:
            async with timeout(socket_timeout):
                connection.socket_timeout = None
                try:
                    await connection.send_packed_command(packed)
                finally:
                    if connection.socket_timeout is None:  # unless redis-py set one
                        connection.socket_timeout = socket_timeout
                return [await read_one() for _ in range(count)]
        except asyncio.TimeoutError as error:
            raise RedisTimeoutError("Timeout talking to Redis") from error

    async def reset(_: Exception) -> None:
        await connection.disconnect()

    try:
        replies: list[Any] = await connection.retry.call_with_retry(once, reset)
    except BaseException:
        await connection.disconnect(nowait=True)
        raise
    finally:
        await pool.release(connection)
    return replies

"""The lean path: commands written straight to one pooled connection of a node client.

redis-py's ``execute_command`` and ``Pipeline`` do a lot of bookkeeping per command
(metrics, deprecation wrappers, response callbacks, a timeout context per reply and,
on Python < 3.12, a task per write); for the hot path's ``EVALSHA`` calls that costs
the worker more CPU than Redis spends running the scripts. :func:`exchange` packs
commands in the Redis protocol, sends them in one write and reads the replies in
order, under the connection's own retry policy and one timer of its socket timeout.

It is for :class:`redis.asyncio.Redis` clients (single node and Sentinel's primary);
``topology.pipeline`` decides who takes it. It uses only public names of redis-py's
asyncio connection pool and connection, present in redis-py 7 and 8 alike
(``get_connection``, ``release``, ``send_packed_command``, ``read_response``,
``disconnect``, ``retry``, ``socket_timeout``); tests/test_wire.py runs on both.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

if sys.version_info >= (3, 11):
    from asyncio import timeout
else:  # redis-py depends on async-timeout before Python 3.11.3
    from async_timeout import timeout  # type: ignore[import-not-found,unused-ignore]

Arg = str | bytes | int | float
Command = Sequence[Arg]


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


#: Arguments that recur in every call of a kind (command names, script digests,
#: key counts), packed once. Only what :func:`remember` was given: never a key or
#: a payload, so the table stays as small as the set of scripts.
_PACKED: dict[str | int, bytes] = {}


def remember(*args: str | int) -> None:
    """Pack ``args`` once, for every later command that passes them."""
    for arg in args:
        _PACKED[arg] = _bulk(arg)


def pack(commands: Sequence[Command]) -> bytes:
    """Return ``commands`` in RESP, one after the other."""
    parts: list[bytes] = []
    add = parts.append
    packed = _PACKED.get
    for command in commands:
        add(b"*%d\r\n" % len(command))
        for arg in command:
            if type(arg) is bytes:
                data = arg
            elif type(arg) is str:
                done = packed(arg)
                if done is not None:
                    add(done)
                    continue
                data = arg.encode()
            else:  # a number (a known int is packed already), or refused by _bulk
                done = packed(arg) if type(arg) is int else None
                add(_bulk(arg) if done is None else done)
                continue
            add(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


async def exchange(
    client: Redis, commands: Sequence[Command], *, client_retry: bool = True
) -> list[Any]:
    """Send ``commands`` in one write; return their replies in order.

    An error reply is returned in place of its reply (a :class:`ResponseError`,
    e.g. ``NoScriptError``). Connection errors are retried as the client's retry
    policy says (with ``client_retry=False``: not at all, for a caller that waits
    out outages itself), then raised. A connection left with unread replies (an
    error or a cancellation half way) is closed, never reused.
    """
    packed = pack(commands)
    pool = client.connection_pool
    connection = await pool.get_connection()  # type: ignore[no-untyped-call,unused-ignore]

    async def once() -> list[Any]:
        # One timer for the write and every reply: with no socket timeout of its
        # own for the exchange, the connection neither runs the write in a task of
        # its own (asyncio.wait_for) nor opens a timer per reply. It is ours until
        # released, and gets its timeout back before that.
        socket_timeout = connection.socket_timeout
        try:
            async with timeout(socket_timeout):
                connection.socket_timeout = None
                try:
                    await connection.send_packed_command(packed)
                    replies: list[Any] = []
                    for _ in commands:
                        try:
                            replies.append(await connection.read_response())
                        except ResponseError as error:
                            replies.append(error)
                    return replies
                finally:
                    if connection.socket_timeout is None:  # unless redis-py set one
                        connection.socket_timeout = socket_timeout
        except asyncio.TimeoutError as error:
            raise RedisTimeoutError("Timeout talking to Redis") from error

    async def reset(_: Exception) -> None:
        await connection.disconnect()

    try:
        if client_retry:
            replies: list[Any] = await connection.retry.call_with_retry(once, reset)
        else:
            replies = await once()
    except BaseException:
        await connection.disconnect(nowait=True)
        raise
    finally:
        await pool.release(connection)
    return replies

"""A loopback TCP proxy between clients and Redis that injects network faults.

It runs in the test's event loop: every connection a client opens gets its own
connection to Redis, and bytes are copied both ways. On request it delays every
chunk (latency), resets a client's connection in the middle of a reply, or turns
into a black hole that accepts connections and never answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Any

from taskiq_redis_lua.local_redis import LOOPBACK


class FaultyProxy:
    """Forwards 127.0.0.1:<port> to a Redis server, with faults on demand."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.latency = 0.0
        self.passing = asyncio.Event()  # cleared: a black hole
        self.passing.set()
        self.resets_wanted = 0  # replies to cut in the middle, one each
        self.resets_done = 0
        self.connections: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        """The proxy's URL: Redis, as the faults let clients see it."""
        return f"redis://{LOOPBACK}:{self.port}"

    @property
    def upstream_url(self) -> str:
        """Redis itself, with no faults."""
        return f"redis://{LOOPBACK}:{self.upstream_port}"

    def black_hole(self, on: bool) -> None:
        """Swallow everything and answer nothing (``on``), or pass bytes again."""
        if on:
            self.passing.clear()
        else:
            self.passing.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, LOOPBACK, 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in list(self.connections):
            writer.close()

    async def _serve(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        self.connections.add(client_writer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.passing.wait()  # in a black hole: accepted, never answered
            upstream_reader, upstream_writer = await asyncio.open_connection(
                LOOPBACK, self.upstream_port
            )
            self.connections.add(upstream_writer)
            try:
                await asyncio.gather(
                    self._copy(client_reader, upstream_writer, to_client=None),
                    self._copy(upstream_reader, client_writer, to_client=client_writer),
                )
            finally:
                self.connections.discard(upstream_writer)
                upstream_writer.close()
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            self.connections.discard(client_writer)
            client_writer.close()
            self._tasks.discard(task)

    async def _copy(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        to_client: asyncio.StreamWriter | None,
    ) -> None:
        while chunk := await reader.read(65536):
            if not self.passing.is_set():  # what is in flight is swallowed too
                await self.passing.wait()
                continue
            if self.latency:
                await asyncio.sleep(self.latency)
            if to_client is not None and self.resets_wanted > 0 and len(chunk) > 1:
                self.resets_wanted -= 1
                self.resets_done += 1
                writer.write(chunk[: len(chunk) // 2])
                await writer.drain()
                reset(to_client)
                return
            writer.write(chunk)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()


def reset(writer: asyncio.StreamWriter) -> None:
    """Close the connection with a TCP reset (RST), not an orderly FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()

"""Result backend: results and progress of tasks, with a time to live by default."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from pydantic_core import to_json
from redis.exceptions import ConnectionError  # noqa: A004 - redis-py's, not the builtin
from taskiq import AsyncResultBackend
from taskiq.abc.serializer import TaskiqSerializer
from taskiq.depends.progress_tracker import TaskProgress
from taskiq.result import TaskiqResult
from taskiq.serializers import JSONSerializer

from taskiq_redis_lua import options, scripts, topology
from taskiq_redis_lua.backoff import attempt
from taskiq_redis_lua.batching import BUSY_LINGER, Batcher
from taskiq_redis_lua.compat import (
    ClusterAttributes,
    SentinelAttributes,
    SingleNodeResultAttributes,
)
from taskiq_redis_lua.exceptions import (
    DuplicateExpireTimeSelectedError,
    ExpireTimeMustBeMoreThanZeroError,
    ResultDecodeError,
    ResultIsMissingError,
    ResultSerializationError,
)
from taskiq_redis_lua.keys import ResultKeys, result_keys

_ReturnType = TypeVar("_ReturnType")
logger = logging.getLogger(__name__)

#: Results and progress expire after a day unless told otherwise.
DEFAULT_RESULT_TTL_SECONDS = 24 * 60 * 60

#: Most results one pipeline stores (results stored at the same time share it).
_SET_BATCH = 100

_SET = scripts.script("result/set")
_TAKE = scripts.script("result/take")
_WATCH = scripts.script("result/watch")


def _result_ttl_ms(
    result_ex_time: int | None,
    result_px_time: int | None,
    *,
    expire_results: bool,
) -> int:
    """Validate the expiry options; return the time to live in ms (0: never expire)."""
    for name, value in (
        ("result_ex_time", result_ex_time),
        ("result_px_time", result_px_time),
    ):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int)
        ):
            raise ValueError(f"{name} must be a whole number or None, got {value!r}")
        if value is not None and value <= 0:
            raise ExpireTimeMustBeMoreThanZeroError
    if result_ex_time is not None and result_px_time is not None:
        raise DuplicateExpireTimeSelectedError
    if not expire_results and (result_ex_time or result_px_time):
        raise ValueError(
            "expire_results=False keeps results forever; it cannot be combined with"
            " result_ex_time or result_px_time",
        )
    if result_ex_time is not None:
        return result_ex_time * 1000
    if result_px_time is not None:
        return result_px_time
    return DEFAULT_RESULT_TTL_SECONDS * 1000 if expire_results else 0


class _ResultBackend(AsyncResultBackend[_ReturnType]):
    """The result backend. The public classes differ only in how they connect."""

    def __init__(
        self,
        connect: Callable[[], topology.Endpoint],
        *,
        keep_results: bool,
        result_ex_time: int | None,
        result_px_time: int | None,
        serializer: TaskiqSerializer | None,
        prefix_str: str | None,
        expire_results: bool,
        ready_wait: float,
    ) -> None:
        self._ttl_ms = _result_ttl_ms(
            result_ex_time,
            result_px_time,
            expire_results=options.flag("expire_results", expire_results),
        )
        if prefix_str is not None and not isinstance(prefix_str, str):
            raise ValueError(f"prefix_str must be a string or None, got {prefix_str!r}")
        self.ready_wait = options.non_negative_seconds("ready_wait", ready_wait)
        self.endpoint = connect()
        options.shorter_than_socket_timeout(
            "ready_wait", self.ready_wait, self.endpoint.socket_timeout
        )
        self.keep_results = options.flag("keep_results", keep_results)
        self.result_ex_time = result_ex_time
        self.result_px_time = result_px_time
        self.serializer = options.serializer("serializer", serializer) or (
            JSONSerializer()
        )
        self.prefix_str = prefix_str
        self._sets: Batcher[None, tuple[str, bytes], Any] = Batcher(
            self._set_batch, _SET_BATCH, busy_linger=BUSY_LINGER
        )

    async def startup(self) -> None:
        """Load the backend's scripts (calls also work without this)."""
        await super().startup()
        await scripts.load(self.endpoint.client, [_SET, _TAKE, _WATCH])

    async def shutdown(self) -> None:
        """Close the connections."""
        await self.endpoint.close()
        await super().shutdown()

    def _keys(self, task_id: str) -> ResultKeys:
        return result_keys(self.prefix_str, task_id)

    def _dump(
        self, what: str, task_id: str, model: TaskiqResult[Any] | TaskProgress[Any]
    ) -> bytes:
        try:
            data = model.model_dump(mode="json")
            if type(self.serializer) is JSONSerializer:
                # What taskiq's JSONSerializer would write, written by pydantic-core
                # in a sixth of the time: the same document, without the optional
                # spaces, non-ASCII text as UTF-8 (its ``default`` never runs on
                # what ``model_dump(mode="json")`` returns).
                with contextlib.suppress(ValueError):  # lone surrogates: json escapes
                    return to_json(data, inf_nan_mode="constants")
            return self.serializer.dumpb(data)
        except Exception as error:
            raise ResultSerializationError(
                what=what,
                task_id=task_id,
                serializer=type(self.serializer).__name__,
                reason=f"{type(error).__name__}: {error}",
            ) from error

    def _load(self, what: str, task_id: str, raw: bytes | str) -> Any:
        try:
            return self.serializer.loadb(
                raw if isinstance(raw, bytes) else raw.encode()
            )
        except Exception as error:
            raise self._decode_error(what, task_id, error) from error

    def _decode_error(
        self, what: str, task_id: str, error: Exception
    ) -> ResultDecodeError:
        return ResultDecodeError(
            what=what,
            task_id=task_id,
            serializer=type(self.serializer).__name__,
            reason=f"{type(error).__name__}: {error}",
        )

    async def set_result(self, task_id: str, result: TaskiqResult[_ReturnType]) -> None:
        """Store the result with its time to live and clear the task's progress.

        :raises ResultSerializationError: the serializer cannot encode the result;
            an error result saying so is stored in its place, so that whoever waits
            for the task gets an answer instead of waiting forever.
        """
        try:
            value = self._dump("result", task_id, result)
        except ResultSerializationError as error:
            await self._store_in_place(task_id, result, error)
            raise
        await self._sets.submit(None, (task_id, value))

    async def _store_in_place(
        self, task_id: str, result: TaskiqResult[Any], error: ResultSerializationError
    ) -> None:
        """Store an error result that names why ``result`` could not be stored."""
        stand_in = TaskiqResult[None](
            is_err=True,
            return_value=None,
            execution_time=result.execution_time,
            labels=result.labels,
            error=error,
        )
        try:
            value = self._dump("result", task_id, stand_in)
        except ResultSerializationError as failure:
            logger.warning("Not even an error result could be stored: %s", failure)
            return
        await self._sets.submit(None, (task_id, value))

    async def _set_batch(self, _: None, results: list[tuple[str, bytes]]) -> list[Any]:
        """Store results given at the same time in one pipeline."""
        ttl = self._ttl_ms
        calls = [(self._keys(task_id), (value, ttl)) for task_id, value in results]
        # Storing is idempotent, so a whole pipeline may be sent again after an
        # outage; a worker that gave up too soon would ack a task without a result.
        replies = await attempt(
            f"storing {len(calls)} result(s)",
            logger,
            partial(
                scripts.run_many, self.endpoint.client, _SET, calls, client_retry=False
            ),
            otherwise="those results are not stored",
        )
        if replies is None:
            raise ConnectionError("Redis stayed away; the result was not stored")
        return replies

    async def is_result_ready(self, task_id: str) -> bool:
        """Return True when a result is stored for the task.

        With ``ready_wait``, wait up to that long on Redis for the result first.
        """
        keys = self._keys(task_id)
        client = self.endpoint.client
        if not self.ready_wait:
            return bool(await client.exists(keys.result))
        wait_ms = max(1, round(self.ready_wait * 1000))
        # One call looks and, if the result is not there yet, asks set.lua to leave
        # a notice after the returned id; the blocking read then ends on that notice.
        found = await scripts.run(client, _WATCH, keys, [wait_ms])
        if found[0]:
            return True
        notice = await client.xread({keys.watch: found[1]}, count=1, block=wait_ms)
        return bool(notice)

    async def get_result(
        self,
        task_id: str,
        with_logs: bool = False,
    ) -> TaskiqResult[_ReturnType]:
        """Return the task's result; with ``keep_results=False`` also delete it.

        :raises ResultIsMissingError: no result is stored for the task.
        """
        keys = self._keys(task_id)
        if self.keep_results:
            with topology.slot_moves_as_try_again():
                raw = await self.endpoint.client.get(keys.result)
        else:
            raw = await scripts.run(self.endpoint.client, _TAKE, keys)
        if raw is None:
            raise ResultIsMissingError
        data = self._load("result", task_id, raw)
        try:
            result = TaskiqResult[_ReturnType].model_validate(data)
        except ValueError as error:
            raise self._decode_error("result", task_id, error) from error
        if not with_logs:
            result.log = None
        return result

    async def set_progress(self, task_id: str, progress: TaskProgress[Any]) -> None:
        """Store the task's progress with the results' time to live."""
        value = self._dump("progress", task_id, progress)
        with topology.slot_moves_as_try_again():
            await self.endpoint.client.set(
                self._keys(task_id).progress, value, px=self._ttl_ms or None
            )

    async def get_progress(self, task_id: str) -> TaskProgress[Any] | None:
        """Return the task's last progress, or None when there is none."""
        with topology.slot_moves_as_try_again():
            raw = await self.endpoint.client.get(self._keys(task_id).progress)
        if raw is None:
            return None
        data = self._load("progress", task_id, raw)
        try:
            return TaskProgress[Any].model_validate(data)
        except ValueError as error:
            raise self._decode_error("progress", task_id, error) from error


class RedisAsyncResultBackend(SingleNodeResultAttributes, _ResultBackend[_ReturnType]):
    """Result backend on a single Redis server."""

    def __init__(
        self,
        redis_url: str,
        keep_results: bool = True,
        result_ex_time: int | None = None,
        result_px_time: int | None = None,
        max_connection_pool_size: int | None = None,
        serializer: TaskiqSerializer | None = None,
        prefix_str: str | None = None,
        *,
        expire_results: bool = True,
        ready_wait: float = 0.0,
        **connection_kwargs: Any,
    ) -> None:
        """Connect to ``redis_url``; parameters as in taskiq-redis.

        :param redis_url: ``redis://``, ``rediss://`` or ``unix://`` URL.
        :param keep_results: False deletes a result (and its progress) once read.
        :param result_ex_time: results expire after this many seconds.
        :param result_px_time: results expire after this many milliseconds.
        :param max_connection_pool_size: cap on the connection pool (None:
            redis-py's default, 100 in redis-py 8).
        :param serializer: defaults to JSON; pass a pickle serializer only if you
            trust everyone who can write to this Redis.
        :param prefix_str: prefix of the result keys.
        :param expire_results: without ``result_ex_time``/``result_px_time``,
            results expire after a day; False keeps them until they are read
            (with ``keep_results=False``) or deleted.
        :param ready_wait: seconds ``is_result_ready`` may wait on Redis for the
            result (0: off, it only looks). With it on, ``wait_result`` returns
            within a millisecond or two of the result being stored instead of up to
            its ``check_interval`` later. Only the waiting side needs it: the worker
            wakes a waiter through a key that exists only while someone waits. Each
            waiting call holds a connection for up to this long.
        :param connection_kwargs: passed to redis-py's ``BlockingConnectionPool``.
        """
        super().__init__(
            partial(
                topology.single_node,
                redis_url,
                max_connection_pool_size,
                connection_kwargs,
                parameter="redis_url",
            ),
            keep_results=keep_results,
            result_ex_time=result_ex_time,
            result_px_time=result_px_time,
            serializer=serializer,
            prefix_str=prefix_str,
            expire_results=expire_results,
            ready_wait=ready_wait,
        )


class RedisAsyncClusterResultBackend(ClusterAttributes, _ResultBackend[_ReturnType]):
    """Result backend on a Redis Cluster; results spread over slots by task id."""

    def __init__(
        self,
        redis_url: str,
        keep_results: bool = True,
        result_ex_time: int | None = None,
        result_px_time: int | None = None,
        serializer: TaskiqSerializer | None = None,
        prefix_str: str | None = None,
        *,
        expire_results: bool = True,
        ready_wait: float = 0.0,
        **connection_kwargs: Any,
    ) -> None:
        """Connect to the cluster that ``redis_url`` belongs to.

        Parameters as in :class:`RedisAsyncResultBackend`; ``connection_kwargs`` go
        to redis-py's ``RedisCluster``.
        """
        super().__init__(
            partial(
                topology.cluster, redis_url, connection_kwargs, parameter="redis_url"
            ),
            keep_results=keep_results,
            result_ex_time=result_ex_time,
            result_px_time=result_px_time,
            serializer=serializer,
            prefix_str=prefix_str,
            expire_results=expire_results,
            ready_wait=ready_wait,
        )


class RedisAsyncSentinelResultBackend(SentinelAttributes, _ResultBackend[_ReturnType]):
    """Result backend on the primary that Redis Sentinel names."""

    def __init__(
        self,
        sentinels: list[tuple[str, int]],
        master_name: str,
        keep_results: bool = True,
        result_ex_time: int | None = None,
        result_px_time: int | None = None,
        min_other_sentinels: int = 0,
        sentinel_kwargs: Any | None = None,
        serializer: TaskiqSerializer | None = None,
        prefix_str: str | None = None,
        *,
        expire_results: bool = True,
        ready_wait: float = 0.0,
        **connection_kwargs: Any,
    ) -> None:
        """Connect through ``sentinels`` to the primary called ``master_name``.

        Other parameters as in :class:`RedisAsyncResultBackend`; ``sentinel_kwargs``
        configure the connections to the sentinels, ``connection_kwargs`` those to
        the primary.
        """
        super().__init__(
            partial(
                topology.sentinel,
                sentinels,
                master_name,
                min_other_sentinels,
                sentinel_kwargs,
                connection_kwargs,
            ),
            keep_results=keep_results,
            result_ex_time=result_ex_time,
            result_px_time=result_px_time,
            serializer=serializer,
            prefix_str=prefix_str,
            expire_results=expire_results,
            ready_wait=ready_wait,
        )

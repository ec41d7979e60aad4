"""Security and hostile input: passwords and ACL users, TLS, names that try to
escape their hash tag, and data in Redis that tries to run code."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.exceptions
from redis.exceptions import AuthenticationError, RedisClusterException
from taskiq import BrokerMessage, TaskiqResult
from taskiq.scheduler.scheduled_task import ScheduledTask

from taskiq_redis_lua import (
    ListQueueBroker,
    RedisAsyncResultBackend,
    RedisStreamBroker,
    ResultDecodeError,
    local_redis,
)
from taskiq_redis_lua import topology as topo
from taskiq_redis_lua.keys import companion_key, list_queue_keys, result_keys
from taskiq_redis_lua.keys import stream_keys as stream_key_set
from taskiq_redis_lua.local_redis import LocalTopology

from .building import LIST_QUEUE, RESULT_BACKEND, SCHEDULE_SOURCE, STREAM
from .conftest import KINDS
from .listening import Listener, as_worker, send

PASSWORD = "default-s3cret"
USER, USER_PASSWORD = "worker", "w0rker:p@ss"
FAMILIES = ["list", "stream"]


def build_broker(family: str, target: LocalTopology, **options: Any) -> Any:
    """The broker of ``family`` for ``target``'s topology, built as a user would."""
    if family == "list":
        return LIST_QUEUE.build(target, **options)
    return STREAM.build(target, consumer_group_name="g", **options)


# --- passwords and ACL users -------------------------------------------------------


@pytest.fixture(scope="module", params=KINDS)
def protected(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalTopology]:
    """A topology whose data nodes require a password and know an ACL user."""
    kind = request.param
    started = local_redis.start(
        kind, tmp_path_factory.mktemp(f"protected-{kind}"), password=PASSWORD
    )
    try:
        for process in started.processes:
            if process.password is None:
                continue  # a sentinel: it needs no password here
            with process.client() as admin:
                admin.execute_command(
                    "ACL", "SETUSER", USER, "on", f">{USER_PASSWORD}",
                    "~*", "&*", "+@all",
                )  # fmt: skip
        yield started
    finally:
        started.stop()


def as_user(
    target: LocalTopology, user: str, password: str
) -> tuple[LocalTopology, dict[str, str]]:
    """Return how ``user`` reaches ``target``: a URL with credentials, or, for
    sentinel (which takes no URL), the ``username``/``password`` keywords."""
    if target.kind == "sentinel":
        return target, {"username": user, "password": password}
    host_port = target.url.removeprefix("redis://")
    with_credentials = (
        f"redis://{user}:{password.replace(':', '%3A').replace('@', '%40')}@{host_port}"
    )
    return LocalTopology(kind=target.kind, url=with_credentials), {}


@pytest.mark.parametrize("family", FAMILIES)
async def test_an_acl_user_named_in_the_url_queues_and_stores_results(
    protected: LocalTopology, family: str, unique: str
) -> None:
    target, credentials = as_user(protected, USER, USER_PASSWORD)
    broker = build_broker(family, target, queue_name=unique, **credentials)
    backend = RESULT_BACKEND.build(target, **credentials)
    await broker.startup()
    listener = Listener(broker)
    try:
        await send(broker, "through ACL")
        message = await listener.next()
        assert listener.value(message) == "through ACL"
        await message.ack()
        result: TaskiqResult[str] = TaskiqResult(
            is_err=False, return_value="stored", execution_time=0.1
        )
        await backend.set_result(unique, result)
        assert (await backend.get_result(unique)).return_value == "stored"
    finally:
        await listener.close()
        await broker.shutdown()
        await backend.shutdown()


async def test_the_default_user_password_alone_works_for_schedules(
    protected: LocalTopology, unique: str
) -> None:
    target, credentials = as_user(protected, "default", PASSWORD)
    source = SCHEDULE_SOURCE.build(target, prefix=unique, **credentials)
    await source.startup()
    try:
        item = ScheduledTask(
            task_name="t",
            labels={},
            args=[],
            kwargs={},
            schedule_id="s",
            cron="* * * * *",
        )
        await source.add_schedule(item)
        assert [s.schedule_id for s in await source.get_schedules()] == ["s"]
    finally:
        await source.shutdown()


@pytest.mark.parametrize("family", FAMILIES)
async def test_a_wrong_password_fails_at_startup_naming_the_cause(
    protected: LocalTopology, family: str, unique: str
) -> None:
    target, credentials = as_user(protected, USER, "not-the-password")
    broker = build_broker(family, target, queue_name=unique, **credentials)
    try:
        # a cluster client says so while discovering the nodes
        refused = (AuthenticationError, RedisClusterException)
        with pytest.raises(refused, match="invalid username-password pair"):
            await broker.startup()
    finally:
        await broker.shutdown()


# --- TLS ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A Redis server on TLS only, with a self-signed certificate made here.

    Yields the ``rediss://`` URL and the certificate, which clients trust as CA.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: cannot make a certificate for TLS")
    directory = tmp_path_factory.mktemp("tls")
    certificate, key = directory / "redis.crt", directory / "redis.key"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(certificate),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    tls_port = local_redis.free_port()
    try:
        server = local_redis.start_server(
            directory / "server",
            "--tls-port", str(tls_port),
            "--tls-cert-file", str(certificate),
            "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(certificate),
            "--tls-auth-clients", "no",
        )  # fmt: skip
    except RuntimeError:
        log = (directory / "server" / "redis.log").read_text(errors="replace")
        if "TLS" in log or "tls" in log:
            pytest.skip(f"the installed redis-server has no TLS support: {log[-300:]}")
        raise
    yield f"rediss://127.0.0.1:{tls_port}", certificate
    server.stop()


@pytest.mark.parametrize("family", FAMILIES)
async def test_a_rediss_url_queues_and_stores_results_over_tls(
    tls_server: tuple[str, Path], family: str, unique: str
) -> None:
    url, certificate = tls_server
    trusted: dict[str, Any] = {"ssl_ca_certs": str(certificate)}
    broker: Any
    if family == "list":
        broker = ListQueueBroker(url, queue_name=unique, **trusted)
    else:
        broker = RedisStreamBroker(url, queue_name=unique, **trusted)
    backend: RedisAsyncResultBackend[Any] = RedisAsyncResultBackend(url, **trusted)
    await broker.startup()
    listener = Listener(broker)
    try:
        await send(broker, "encrypted")
        message = await listener.next()
        assert listener.value(message) == "encrypted"
        await message.ack()
        await backend.set_result(
            unique, TaskiqResult(is_err=False, return_value=1, execution_time=0.0)
        )
        assert (await backend.get_result(unique)).return_value == 1
    finally:
        await listener.close()
        await broker.shutdown()
        await backend.shutdown()


async def test_a_rediss_url_refuses_a_server_it_does_not_trust(
    tls_server: tuple[str, Path], unique: str
) -> None:
    url, _ = tls_server
    broker = ListQueueBroker(url, queue_name=unique)
    try:
        with pytest.raises(redis.exceptions.ConnectionError, match="certificate"):
            await broker.startup()
    finally:
        await broker.shutdown()


# --- hostile names -----------------------------------------------------------------


def hostile_names(neighbour: str) -> list[str]:
    """Names that try to reach ``neighbour``'s keys: its hash tag, its key names,
    glob characters, newlines and our own escape sequence."""
    return [
        f"{{{neighbour}}}",
        f"{neighbour}}}{{x",
        f"{neighbour}*",
        f"{neighbour}\n*",
        f"{neighbour}:ready",
        f"{{{neighbour}}}:msgs",
        f"%7B{neighbour}%7D",
    ]


def neighbour_keys(family: str, name: str) -> list[str]:
    keys = list_queue_keys(name) if family == "list" else stream_key_set(name, "g")
    return list(vars(keys).values())


async def snapshot(client: Any, keys: list[str]) -> dict[str, tuple[Any, int]]:
    """Each key's serialized value and time to live: any write would change it."""
    return {key: (await client.dump(key), await client.pttl(key)) for key in keys}


def undecodable(task_id: str) -> BrokerMessage:
    return BrokerMessage(task_id=task_id, task_name="t", message=b"\xff", labels={})


@pytest.mark.parametrize("family", FAMILIES)
async def test_hostile_queue_names_never_touch_another_queues_keys(
    topology: LocalTopology, endpoint: topo.Endpoint, family: str, unique: str
) -> None:
    neighbour = build_broker(family, topology, queue_name=unique)
    await neighbour.startup()
    await send(neighbour, "mine")
    await send(neighbour, "later", delay=600)
    keys = neighbour_keys(family, unique)
    before = await snapshot(endpoint.client, keys)
    assert sum(value is not None for value, _ in before.values()) >= 2
    try:
        for name in hostile_names(unique):
            broker = build_broker(family, topology, queue_name=name)
            as_worker(broker)  # a worker dead-letters what it cannot run
            await broker.startup()
            listener = Listener(broker)
            try:
                await broker.kick(undecodable(f"bad-{name}"))
                await send(broker, name)
                await send(broker, "later", delay=600)
                message = await listener.next()
                assert listener.value(message) == name  # its own message, no other
                await message.ack()
                assert await broker.requeue_dead() == 1
                assert await broker.purge_dead() <= 1
            finally:
                await listener.close()
                await broker.shutdown()
        assert await snapshot(endpoint.client, keys) == before
    finally:
        await neighbour.shutdown()


async def test_hostile_task_ids_and_prefixes_keep_results_apart(
    topology: LocalTopology, endpoint: topo.Endpoint, unique: str
) -> None:
    backend = RESULT_BACKEND.build(topology, prefix_str=unique)
    others = RESULT_BACKEND.build(topology, prefix_str=f"{{{unique}}}")
    ids = [unique, *hostile_names(unique), f"{unique}}}:progress"]
    try:
        for number, task_id in enumerate(ids):
            result = TaskiqResult(is_err=False, return_value=number, execution_time=0)
            await backend.set_result(task_id, result)
            await others.set_result(
                task_id, result.model_copy(update={"return_value": -number})
            )
        for number, task_id in enumerate(ids):
            assert (await backend.get_result(task_id)).return_value == number
            assert (await others.get_result(task_id)).return_value == -number
        assert await endpoint.client.exists(result_keys(unique, unique).result) == 1
    finally:
        await backend.shutdown()
        await others.shutdown()


# --- data in Redis never runs code -------------------------------------------------


class _RunsCode:
    """Unpickling this creates ``path``: proof that a reader ran foreign code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return os.mkdir, (str(self.path),)


async def test_a_planted_pickle_in_a_result_is_refused_not_run(
    topology: LocalTopology, endpoint: topo.Endpoint, unique: str, tmp_path: Path
) -> None:
    proof = tmp_path / "ran"
    backend = RESULT_BACKEND.build(topology)
    try:
        await endpoint.client.set(
            result_keys(None, unique).result, pickle.dumps(_RunsCode(proof))
        )
        await endpoint.client.set(
            result_keys(None, unique).progress, pickle.dumps(_RunsCode(proof))
        )
        with pytest.raises(ResultDecodeError):
            await backend.get_result(unique)
        with pytest.raises(ResultDecodeError):
            await backend.get_progress(unique)
    finally:
        await backend.shutdown()
    assert not proof.exists()


async def test_a_planted_pickle_schedule_is_skipped_not_run(
    topology: LocalTopology, endpoint: topo.Endpoint, unique: str, tmp_path: Path
) -> None:
    proof = tmp_path / "ran"
    source = SCHEDULE_SOURCE.build(topology, prefix=unique)
    await source.startup()
    try:
        await endpoint.client.hset(
            companion_key(unique, "data"), "evil", pickle.dumps(_RunsCode(proof))
        )
        await endpoint.client.zadd(companion_key(unique, "index"), {"r:evil": 0})
        assert await source.get_schedules() == []
    finally:
        await source.shutdown()
    assert not proof.exists()


@pytest.mark.parametrize("family", FAMILIES)
async def test_a_planted_pickle_message_is_dead_lettered_not_run(
    topology: LocalTopology, family: str, unique: str, tmp_path: Path
) -> None:
    proof = tmp_path / "ran"
    broker = as_worker(build_broker(family, topology, queue_name=unique))
    await broker.startup()
    listener = Listener(broker)
    try:
        evil = BrokerMessage(
            task_id="evil",
            task_name="t",
            message=pickle.dumps(_RunsCode(proof)),
            labels={},
        )
        await broker.kick(evil)
        await send(broker, "good")
        assert listener.value(await listener.next()) == "good"
        (dead,) = await broker.list_dead()
        assert dead.reason.startswith("undecodable payload")
    finally:
        await listener.close()
        await broker.shutdown()
    assert not proof.exists()

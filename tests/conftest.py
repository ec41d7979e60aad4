"""Real Redis for the tests: a single node, a 3-primary cluster, a primary + replica +
sentinel, started on free loopback ports (or taken from the environment).

- ``REDIS_URL``: an existing single node instead of a started one.
- ``REDIS_CLUSTER_URL``: an existing cluster.
- ``REDIS_SENTINELS`` (``host:port,host:port``) and ``REDIS_SENTINEL_MASTER``: an
  existing sentinel group.

Tests of a family take the ``topology`` fixture and so run on all three.

``TRL_SERVER`` picks the server the started topologies run (see
``local_redis.server``). Modules are marked ``server`` (their outcome depends on the
server: scripts and brokers, run on Redis and Valkey) and ``client`` (it depends on
redis-py's internals: run on redis-py 7 and 8); ``.ci/run`` runs those parts again.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from taskiq import AsyncBroker

from taskiq_redis_lua import local_redis
from taskiq_redis_lua import topology as topo
from taskiq_redis_lua.local_redis import Kind, LocalTopology

from .listening import Listen, Listener
from .worker_process import Worker

KINDS: list[Kind] = ["single", "cluster", "sentinel"]
OpenEndpoint = Callable[..., topo.Endpoint]

#: Test modules whose outcome depends on the server (Redis 7 or Valkey 8).
SERVER_SENSITIVE = {
    "test_lua_queue", "test_lua_stream", "test_lua_result", "test_lua_arguments",
    "test_scripts", "test_redis_cli", "test_keys", "test_list_queue", "test_stream",
    "test_result_backend", "test_schedule_source", "test_pubsub", "test_topology",
    "test_drop_in", "test_worker_cli", "test_chaos", "test_security", "test_demo",
    "test_backlog", "test_cli", "test_readme", "test_reliable_queue",
    "test_resharding", "test_network_faults", "test_acl", "test_metrics",
}  # fmt: skip
#: Test modules whose outcome depends on redis-py (7 or 8): the wire module, the
#: topology builders, the registry and every family through them.
CLIENT_SENSITIVE = {
    "test_wire", "test_topology", "test_scripts", "test_batching", "test_list_queue",
    "test_stream", "test_result_backend", "test_schedule_source", "test_pubsub",
    "test_drop_in", "test_security", "test_chaos", "test_worker_cli", "test_cli",
    "test_lua_queue", "test_lua_stream", "test_lua_result", "test_keys",
    "test_backlog", "test_reliable_queue", "test_resharding", "test_network_faults",
    "test_acl", "test_metrics",
}  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test ``server`` and/or ``client`` by its module."""
    for item in items:
        module = item.path.stem
        if module in SERVER_SENSITIVE:
            item.add_marker(pytest.mark.server)
        if module in CLIENT_SENSITIVE:
            item.add_marker(pytest.mark.client)


def pytest_report_header() -> str:
    """Say which server and redis-py the run uses."""
    import redis  # noqa: PLC0415 - only for its version

    try:
        server = local_redis.server()
        started = f"{server.version} ({server.binary})"
    except FileNotFoundError as error:
        started = f"none ({error})"
    return f"started servers: {started}; redis-py {redis.__version__}"


def _from_environment(kind: Kind) -> LocalTopology | None:
    if kind == "single" and os.environ.get("REDIS_URL"):
        return LocalTopology(kind=kind, url=os.environ["REDIS_URL"])
    if kind == "cluster" and os.environ.get("REDIS_CLUSTER_URL"):
        return LocalTopology(kind=kind, url=os.environ["REDIS_CLUSTER_URL"])
    if kind == "sentinel" and os.environ.get("REDIS_SENTINELS"):
        pairs = [
            item.rsplit(":", 1) for item in os.environ["REDIS_SENTINELS"].split(",")
        ]
        return LocalTopology(
            kind=kind,
            sentinels=[(host, int(port)) for host, port in pairs],
            master_name=os.environ.get(
                "REDIS_SENTINEL_MASTER", local_redis.MASTER_NAME
            ),
        )
    return None


def _provide(kind: Kind, workdir: Path) -> Iterator[LocalTopology]:
    existing = _from_environment(kind)
    if existing is not None:
        yield existing
        return
    started = local_redis.start(kind, workdir / kind)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def redis_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("redis")


@pytest.fixture(scope="session")
def single_redis(redis_workdir: Path) -> Iterator[LocalTopology]:
    yield from _provide("single", redis_workdir)


@pytest.fixture(scope="session")
def cluster_redis(redis_workdir: Path) -> Iterator[LocalTopology]:
    yield from _provide("cluster", redis_workdir)


@pytest.fixture(scope="session")
def sentinel_redis(redis_workdir: Path) -> Iterator[LocalTopology]:
    yield from _provide("sentinel", redis_workdir)


@pytest.fixture(params=KINDS)
def topology(request: pytest.FixtureRequest) -> LocalTopology:
    """Each topology in turn: the test runs once per kind."""
    found: LocalTopology = request.getfixturevalue(f"{request.param}_redis")
    return found


def connect(target: LocalTopology, **connection_kwargs: Any) -> topo.Endpoint:
    """Build an endpoint to ``target`` the way the library's classes do."""
    if target.kind == "single":
        return topo.single_node(target.url, None, connection_kwargs)
    if target.kind == "cluster":
        return topo.cluster(target.url, connection_kwargs)
    return topo.sentinel(
        target.sentinels, target.master_name, connection_kwargs=connection_kwargs
    )


@pytest.fixture
async def endpoint(topology: LocalTopology) -> AsyncIterator[topo.Endpoint]:
    """A client of the topology under test, closed after the test."""
    built = connect(topology)
    yield built
    await built.close()


@pytest.fixture
async def open_endpoint() -> AsyncIterator[Callable[..., topo.Endpoint]]:
    """Open endpoints to any topology; every one is closed after the test."""
    opened: list[topo.Endpoint] = []

    def open_one(target: LocalTopology, **connection_kwargs: Any) -> topo.Endpoint:
        built = connect(target, **connection_kwargs)
        opened.append(built)
        return built

    yield open_one
    for built in opened:
        await built.close()


@pytest.fixture
async def listen() -> AsyncIterator[Listen]:
    """Start listeners on brokers; every one is closed after the test."""
    listeners: list[Listener] = []

    def start(broker: AsyncBroker) -> Listener:
        listeners.append(Listener(broker))
        return listeners[-1]

    yield start
    for listener in listeners:
        await listener.close()


@pytest.fixture(params=["list", "stream"])
def family(request: pytest.FixtureRequest) -> str:
    """Each reliable queue family in turn (a module may define its own)."""
    name: str = request.param
    return name


@pytest.fixture
def unique() -> str:
    """A fresh name, so that tests never share keys."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """``taskiq worker`` processes a test starts; all stopped after it."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()

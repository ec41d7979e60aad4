"""The README's least-privilege ACL users, as written, on a single node and a cluster.

Each user does its job through the library and is refused everything else:
another queue's keys, ``FLUSHALL``, ``SCRIPT FLUSH``, ``CONFIG``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.exceptions import NoPermissionError
from taskiq import BrokerMessage, TaskiqResult

from taskiq_redis_lua import cli
from taskiq_redis_lua.local_redis import LocalTopology

from .building import LIST_QUEUE, RESULT_BACKEND, STREAM
from .listening import Listener, as_worker, send

README = Path(__file__).resolve().parent.parent / "README.md"
USERS = ("producer", "worker", "operator")


def readme_rules() -> dict[str, str]:
    """The ``ACL SETUSER`` lines of the README's least-privilege section, by user."""
    text = README.read_text()
    section = text[text.index("### Least-privilege users") :]
    section = section[: section.index("\n## ")]
    found = dict(re.findall(r"^ACL SETUSER (\w+) (.+)$", section, re.MULTILINE))
    assert sorted(found) == sorted(USERS)
    return found


class Users:
    """The README's users on one topology, for queues and results named afresh."""

    def __init__(self, target: LocalTopology, unique: str) -> None:
        self.target = target
        self.list_queue = f"{unique}-emails"
        self.stream = f"{unique}-events"
        self.results = f"{unique}-results"
        names = {"emails": self.list_queue, "events": self.stream}
        names["results"] = self.results
        for user, written in readme_rules().items():
            rule = written
            for name, fresh in names.items():
                rule = rule.replace(f"{{{name}}}", f"{{{fresh}}}")
                rule = rule.replace(f"~{name}", f"~{fresh}")
            for node in target.processes:
                with node.client() as admin:
                    admin.execute_command(
                        "ACL", "SETUSER", user, "reset", *rule.split()
                    )

    def url(self, user: str) -> str:
        return self.target.url.replace("redis://", f"redis://{user}:{user}-secret@")

    def as_user(self, user: str) -> LocalTopology:
        return LocalTopology(kind=self.target.kind, url=self.url(user))

    def broker(self, user: str, family: str) -> Any:
        if family == "list":
            return LIST_QUEUE.build(self.as_user(user), queue_name=self.list_queue)
        return STREAM.build(self.as_user(user), queue_name=self.stream)

    def backend(self, user: str) -> Any:
        return RESULT_BACKEND.build(self.as_user(user), prefix_str=self.results)

    def assert_refused_the_rest(self, user: str) -> None:
        """FLUSHALL, SCRIPT FLUSH, CONFIG and another queue's keys are refused."""
        node = self.target.processes[0]
        with redis.Redis(
            "127.0.0.1", node.port, username=user, password=f"{user}-secret"
        ) as client:
            for command in (
                ("FLUSHALL",),
                ("SCRIPT", "FLUSH"),
                ("CONFIG", "GET", "maxmemory"),
                ("ZCARD", "{another}:ready"),
                ("GET", "another-results:{x}"),
            ):
                with pytest.raises(NoPermissionError):
                    client.execute_command(*command)


@pytest.fixture(params=["single", "cluster"])
def users(request: pytest.FixtureRequest, unique: str) -> Iterator[Users]:
    target: LocalTopology = request.getfixturevalue(f"{request.param}_redis")
    if not target.processes:
        pytest.skip("sets ACL users: needs servers of its own, not REDIS_URL")
    yield Users(target, unique)
    for node in target.processes:
        with node.client() as admin:
            for user in USERS:
                admin.execute_command("ACL", "DELUSER", user)


def refused() -> Any:
    """Expect Redis to refuse: NOPERM, or a script's command the user may not run."""
    return pytest.raises(
        redis.ResponseError, match=r"(?i)noperm|no permissions|can't run"
    )


def stored(value: int) -> TaskiqResult[int]:
    return TaskiqResult(is_err=False, return_value=value, execution_time=0.1)


@pytest.mark.parametrize("family", ["list", "stream"])
async def test_the_producer_kicks_and_reads_results_and_nothing_else(
    users: Users, family: str
) -> None:
    producer = users.broker("producer", family)
    await users.backend("worker").set_result("t1", stored(1))
    reader = users.backend("producer")
    await producer.startup()
    try:
        await send(producer, "now")
        await send(producer, "later", delay=5)
        assert (await reader.get_result("t1")).return_value == 1
        with refused():
            await reader.set_result("t2", stored(2))
        with refused():
            await send(producer, "elsewhere", queue_name=f"{users.list_queue}-other")
        listener = Listener(producer)
        with refused():
            await listener.next(timeout=5)  # taking messages is a worker's job
        await listener.close()
    finally:
        await producer.shutdown()
        await reader.shutdown()
    operator = users.broker("operator", family)
    (counts,) = await operator.stats()
    await operator.shutdown()
    assert counts.delayed == 1
    users.assert_refused_the_rest("producer")


@pytest.mark.parametrize("family", ["list", "stream"])
async def test_the_worker_runs_tasks_stores_results_and_nothing_else(
    users: Users, family: str
) -> None:
    await send(users.broker("producer", family), "work")
    worker = as_worker(users.broker("worker", family))
    results = users.backend("worker")
    await worker.startup()
    listener = Listener(worker)
    try:
        await worker.kick(
            BrokerMessage(task_id="bad", task_name="echo", message=b"\xff", labels={})
        )
        message = await listener.next()
        assert listener.value(message) == "work"
        await message.ack()
        await results.set_result("t1", stored(1))
        assert (await results.get_result("t1")).return_value == 1
        assert await listener.gets_nothing_for(0.5)  # the bad one was buried
        assert await worker.count_dead() == 1
    finally:
        await listener.close()
        await worker.shutdown()
        await results.shutdown()
    users.assert_refused_the_rest("worker")


@pytest.mark.parametrize("family", ["list", "stream"])
async def test_the_operator_reads_stats_and_manages_dead_letters_and_nothing_else(
    users: Users, family: str, capsys: pytest.CaptureFixture[str]
) -> None:
    worker = as_worker(users.broker("worker", family))
    await worker.startup()
    listener = Listener(worker)
    for _ in range(2):
        await worker.kick(
            BrokerMessage(task_id="bad", task_name="echo", message=b"\xff", labels={})
        )
    assert await listener.gets_nothing_for(0.5)  # both buried
    await listener.close()
    await worker.shutdown()
    operator = users.broker("operator", family)
    try:
        (counts,) = await operator.stats()
        assert counts.dead == 2
        first, _ = await operator.list_dead()
        assert await operator.requeue_dead([first.id]) == 1
        assert await operator.purge_dead() == 1
    finally:
        await operator.shutdown()
    queue = users.list_queue if family == "list" else users.stream
    where = ["--url", users.url("operator"), "--queue", queue, "--kind", family]
    if users.target.kind == "cluster":
        where.append("--cluster")
    assert await asyncio.to_thread(cli.main, ["stats", *where, "--json"]) == 0
    assert '"dead": 0' in capsys.readouterr().out
    users.assert_refused_the_rest("operator")

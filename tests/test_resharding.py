"""Live resharding under a running `taskiq worker`.

A fourth primary joins a 3-primary cluster; the slot of the queue and slots of
results move to it with Redis's own commands (``CLUSTER SETSLOT ... IMPORTING /
MIGRATING``, ``MIGRATE``, ``CLUSTER SETSLOT ... NODE``), pausing while each slot is
half moved so that calls meet ``ASK`` and ``TRYAGAIN``; then they move back and the
node leaves. Nothing may be lost, no worker may crash, and every kick made during the
move either lands or raises.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.crc import key_slot
from taskiq.exceptions import SendTaskError

from taskiq_redis_lua import local_redis
from taskiq_redis_lua.keys import companion_key, result_keys
from taskiq_redis_lua.local_redis import LocalTopology, RedisProcess

from .worker_process import (
    Worker,
    executions,
    forget_app,
    import_app,
    start_worker,
    wait_for_executions,
)

TASKS = 300
#: How long each slot stays half moved (some keys moved, some not).
HALF_MOVED = 0.3


def admin(node: RedisProcess) -> redis.Redis:
    return node.client()


def node_id(node: RedisProcess) -> str:
    with admin(node) as connection:
        found: Any = connection.execute_command("CLUSTER", "MYID")
    return found.decode() if isinstance(found, bytes) else str(found)


class Resharder:
    """Moves slots of a test cluster between primaries, as an operator would."""

    def __init__(self, target: LocalTopology, directory: Path) -> None:
        self.target = target
        self.directory = directory

    def owner(self, slot: int) -> RedisProcess:
        with admin(self.target.processes[0]) as connection:
            for start, end, primary, *_ in connection.execute_command(
                "CLUSTER", "SLOTS"
            ):
                if start <= slot <= end:
                    port = int(primary[1])
        return next(node for node in self.target.processes if node.port == port)

    def add_primary(self) -> RedisProcess:
        """Start a node and have the cluster meet it; wait until all know it."""
        # Emptied again at the end, it stays a primary (Redis 7 would otherwise make
        # it a replica of the node that took its last slot) and can be removed.
        node = local_redis.start_cluster_node(
            self.directory / "joined", "--cluster-allow-replica-migration", "no"
        )
        self.target.processes.append(node)
        with admin(self.target.processes[0]) as connection:
            connection.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)
        self._wait(
            lambda info: (
                int(info["cluster_known_nodes"]) == 4 and info["cluster_state"] == "ok"
            )  # the new node knows every slot
        )
        return node

    def remove(self, node: RedisProcess) -> None:
        """Make every other node forget ``node`` (it holds no slots), then stop it."""
        gone = node_id(node)
        self.target.processes.remove(node)
        for other in self.target.processes:
            with admin(other) as connection:
                connection.execute_command("CLUSTER", "FORGET", gone)
        node.stop()
        self._wait(lambda info: int(info["cluster_known_nodes"]) == 3)

    def move(self, slot: int, to: RedisProcess) -> None:
        """Move ``slot`` to ``to``, staying half moved for a while."""
        source = self.owner(slot)
        if source is to:
            return
        source_id, target_id = node_id(source), node_id(to)
        with admin(source) as src, admin(to) as dst:
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
            first = True
            while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                batch = keys[:1] if first else keys
                src.execute_command(
                    "MIGRATE", "127.0.0.1", to.port, "", 0, 5000, "KEYS", *batch
                )
                if first:
                    time.sleep(HALF_MOVED)  # some keys here, some there
                    first = False
            time.sleep(HALF_MOVED)  # every key there, the slot not yet handed over
            dst.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        for other in self.target.processes:
            if other not in (source, to):
                with admin(other) as connection:
                    connection.execute_command(
                        "CLUSTER", "SETSLOT", slot, "NODE", target_id
                    )

    def there_and_back(self, slots: list[int], joined: RedisProcess) -> None:
        """Move ``slots`` to the primary ``joined`` and back to where they were."""
        owners = {slot: self.owner(slot) for slot in slots}
        for slot in slots:
            self.move(slot, joined)
        for slot in slots:
            self.move(slot, owners[slot])

    def redirections(self) -> dict[str, int]:
        """How often the nodes answered ASK and TRYAGAIN (``INFO errorstats``)."""
        seen = {"ASK": 0, "TRYAGAIN": 0}
        for node in self.target.processes:
            with admin(node) as connection:
                stats = connection.info("errorstats")
            for error in seen:
                seen[error] += int(stats.get(f"errorstat_{error}", {}).get("count", 0))
        return seen

    def _wait(self, settled: Any) -> None:
        deadline = time.monotonic() + 30
        for node in self.target.processes:
            with admin(node) as connection:
                while not settled(connection.cluster("info")):
                    assert time.monotonic() < deadline, "the cluster did not settle"
                    time.sleep(0.05)


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[LocalTopology]:
    """Three primaries without replicas, for this test alone."""
    target = local_redis.start_cluster(tmp_path / "cluster")
    yield target
    target.stop()


async def test_queue_and_result_slots_move_away_and_back_under_a_running_worker(
    own_cluster: LocalTopology,
    family: str,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
    workers: list[Worker],
    tmp_path: Path,
) -> None:
    app = import_app(own_cluster, unique, family, monkeypatch)
    await app.broker.startup()
    try:
        sent = [(n, await app.record.kiq(n, pause=0.01)) for n in range(TASKS)]
        worker = start_worker(workers, app, own_cluster, tmp_path)
        await wait_for_executions(app, TASKS // 5, worker)
        queue_slot = key_slot(companion_key(unique, "x").encode())
        result_slots = {
            key_slot(result_keys(unique, task.task_id).result.encode())
            for _, task in sent[-10:]  # results not written yet
        }
        refused: list[Exception] = []
        moved = asyncio.Event()

        async def keep_kicking() -> int:
            """Kick until the slots are back; return how many kicks were made."""
            n = TASKS
            while not moved.is_set():
                try:
                    sent.append((n, await app.record.kiq(n, pause=0.01)))
                except SendTaskError as error:  # raised: the caller knows
                    refused.append(error)
                n += 1
                await asyncio.sleep(0.02)
            return n - TASKS

        resharder = Resharder(own_cluster, tmp_path)
        joined = await asyncio.to_thread(resharder.add_primary)
        kicking = asyncio.ensure_future(keep_kicking())
        await asyncio.to_thread(
            resharder.there_and_back, [queue_slot, *sorted(result_slots)], joined
        )
        moved.set()
        kicked = await kicking
        await asyncio.to_thread(resharder.remove, joined)
        met = resharder.redirections()
        assert met["ASK"] + met["TRYAGAIN"] > 0, met  # calls met the half-moved slots
        for n, task in sent:  # every kick that returned landed and ran
            result = await task.wait_result(timeout=60)
            assert (n, result.return_value) == (n, 2 * n), worker.output()
        assert len(sent) + len(refused) == TASKS + kicked
        ran = await executions(app)
        assert sorted(set(ran)) == sorted(n for n, _ in sent)  # and nothing else
        assert len(ran) == len(set(ran)), "a task ran twice"
        assert worker.process.poll() is None, worker.output()
        assert "Traceback" not in worker.output(), worker.output()
    finally:
        await app.broker.shutdown()
        forget_app()

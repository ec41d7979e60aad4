"""Running the real `taskiq worker` command against a test app."""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from taskiq_redis_lua.local_redis import LocalTopology

ROOT = Path(__file__).resolve().parent.parent
TASKIQ = Path(sys.executable).parent / "taskiq"


def app_environment(
    target: LocalTopology, queue: str, family: str = "list"
) -> dict[str, str]:
    """Environment variables that point tests/apps/* at ``target`` and ``queue``."""
    return {
        **os.environ,
        "TRL_FAMILY": family,
        "TRL_KIND": target.kind,
        "TRL_URL": target.url,
        "TRL_SENTINELS": ",".join(f"{host}:{port}" for host, port in target.sentinels),
        "TRL_MASTER": target.master_name,
        "TRL_QUEUE": queue,
        "PYTHONUNBUFFERED": "1",
    }


APP_MODULE = "tests.apps.worker_app"


def import_app(
    target: LocalTopology, queue: str, family: str, monkeypatch: pytest.MonkeyPatch
) -> ModuleType:
    """Import tests/apps/worker_app.py afresh, pointed at ``target`` and ``queue``."""
    for name, value in app_environment(target, queue, family).items():
        monkeypatch.setenv(name, value)
    sys.modules.pop(APP_MODULE, None)
    return importlib.import_module(APP_MODULE)


def forget_app() -> None:
    """Let the next import_app build the app again."""
    sys.modules.pop(APP_MODULE, None)


class Worker:
    """One `taskiq worker` (or `taskiq scheduler`) process group, in its own session."""

    def __init__(
        self,
        app: str,
        environment: dict[str, str],
        log: Path,
        *args: str,
        command: tuple[str, ...] = ("worker", "--workers", "1"),
    ) -> None:
        self.log_path = log
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            [str(TASKIQ), command[0], app, *command[1:], *args],
            cwd=ROOT,
            env=environment,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the whole process group: the worker dies without cleaning up."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def interrupt(self, timeout: float = 15.0) -> float:
        """Send SIGINT like Ctrl-C; return the seconds the worker took to exit."""
        started = time.monotonic()
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.kill()
        return time.monotonic() - started

    def stop(self) -> None:
        """Make sure the process group is gone and the log closed."""
        if self.process.poll() is None:
            self.kill()
        self.log.close()

    def output(self) -> str:
        """Return what the worker printed so far."""
        return self.log_path.read_text(errors="replace")


def start_worker(
    workers: list[Worker], app: ModuleType, target: LocalTopology, tmp_path: Path
) -> Worker:
    """Start ``taskiq worker`` on the test app's queue; ``workers`` stops it later."""
    environment = app_environment(target, app.QUEUE, app.FAMILY)
    log = tmp_path / f"worker-{len(workers)}.log"
    worker = Worker(f"{APP_MODULE}:broker", environment, log, "--max-async-tasks", "20")
    workers.append(worker)
    return worker


async def executions(app: ModuleType) -> list[int]:
    """The numbers of the test app's task executions so far, one per execution."""
    noted = await app.results.endpoint.client.hkeys(app.EXECUTIONS)
    return sorted(int(item.split(b":")[0]) for item in noted)


async def wait_for_executions(app: ModuleType, count: int, worker: Worker) -> None:
    """Wait (up to a minute) until the test app's tasks ran ``count`` times."""
    deadline = time.monotonic() + 60
    while len(await executions(app)) < count:
        assert time.monotonic() < deadline, worker.output()
        await asyncio.sleep(0.05)

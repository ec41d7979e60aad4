"""The main job, end to end: nothing is lost when a worker dies.

Starts a throwaway server (unless REDIS_URL is set; redis-server, else Valkey), a
real `taskiq worker` and `taskiq scheduler`, sends plain, delayed, prioritised and
scheduled tasks and one that can only end as a dead letter, kills the worker with
SIGKILL in the middle, starts another and waits until every result is in. Exit
status 0 only if every expected result arrived and the dead letter is there.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any

from taskiq.message import TaskiqMessage

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
TASKIQ = Path(sys.executable).parent / "taskiq"
PLAIN = 60
DELAYED = 5
TIMEOUT = 120.0


class Process:
    """A `taskiq ...` command in its own process group, its output in a file."""

    def __init__(self, name: str, args: list[str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.log: IO[bytes] = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            [str(TASKIQ), *args],
            cwd=HERE,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash or the OOM killer would."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self) -> None:
        """Ctrl-C, then SIGKILL if it does not stop."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGINT)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def bar(done: int, total: int, width: int = 40) -> str:
    """Return a progress bar such as ``[#####.....]  12/100``."""
    filled = width * done // max(total, 1)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done:4d}/{total}"


async def wait_for_results(
    app: Any, task_ids: list[str], workers: list[Process], log_dir: Path
) -> bool:
    """Show progress; kill the worker at about 30 % and start another one."""
    started = time.monotonic()
    killed = False
    done = shown = -1
    while time.monotonic() - started < TIMEOUT:
        done = sum([await app.results.is_result_ready(t) for t in task_ids])
        if done != shown:
            print(f"\r  {bar(done, len(task_ids))}", end="", flush=True)
            shown = done
        if not killed and done >= len(task_ids) * 0.3:
            workers[0].kill()
            killed = True
            print(f"\n  killed the worker (kill -9, pid {workers[0].popen.pid}) at "
                  f"{done} results; starting another one")  # fmt: skip
            workers.append(start_worker(log_dir, "worker-2"))
        if done == len(task_ids):
            print()
            return True
        await asyncio.sleep(0.2)
    print(f"\n  gave up after {TIMEOUT:.0f} s with {done} of {len(task_ids)} results")
    return False


def start_worker(log_dir: Path, name: str) -> Process:
    return Process(
        name,
        ["worker", "demo_app:broker", "--workers", "1", "--max-async-tasks", "10"],
        log_dir,
    )


async def send_everything(app: Any) -> tuple[list[str], int]:
    """Send the demo's tasks; return the task ids with a result and the urgent one."""
    square = app.square
    task_ids = []
    for number in range(PLAIN):
        task_ids.append((await square.kiq(number, seconds=0.4)).task_id)
    for number in range(100, 100 + DELAYED):
        kicker = square.kicker().with_labels(delay=2)
        task_ids.append((await kicker.kiq(number, seconds=0.1)).task_id)
    urgent = square.kicker().with_labels(priority=9)
    task_ids.append((await urgent.kiq(999)).task_id)
    due = datetime.now(timezone.utc) + timedelta(seconds=3)
    scheduled_id = f"{app.QUEUE}-scheduled"
    kicker = square.kicker().with_task_id(scheduled_id)
    await kicker.schedule_by_time(app.source, due, 500)
    task_ids.append(scheduled_id)
    # A task no worker knows: taskiq would drop it; here it becomes a dead letter.
    stranger = TaskiqMessage(
        task_id=uuid.uuid4().hex,
        task_name="no-such-task",
        labels={},
        args=[],
        kwargs={},
    )
    await app.broker.kick(app.broker.formatter.dumps(stranger))
    return task_ids, 999


async def demo(url: str, log_dir: Path) -> bool:
    os.environ["DEMO_REDIS_URL"] = url
    os.environ["DEMO_QUEUE"] = f"demo-{uuid.uuid4().hex[:8]}"
    import demo_app  # noqa: PLC0415 - configured by the environment just set

    await demo_app.broker.startup()
    await demo_app.source.startup()
    workers = [start_worker(log_dir, "worker-1")]
    scheduler = Process(
        "scheduler",
        ["scheduler", "demo_app:scheduler", "--update-interval", "1"],
        log_dir,
    )
    try:
        print(f"Redis {url}, queue {demo_app.QUEUE}; logs in {log_dir}")
        task_ids, urgent = await send_everything(demo_app)
        print(f"Sent {PLAIN} plain, {DELAYED} delayed (2 s), 1 urgent (priority 9), "
              "1 scheduled (in 3 s) and 1 task no worker knows.")  # fmt: skip
        complete = await wait_for_results(demo_app, task_ids, workers, log_dir)
        return await report(demo_app, task_ids, urgent) and complete
    finally:
        for process in [*workers, scheduler]:
            process.stop()
        await demo_app.source.shutdown()
        await demo_app.broker.shutdown()


async def report(app: Any, task_ids: list[str], urgent: int) -> bool:
    values = [(await app.results.get_result(t)).return_value for t in task_ids]
    expected = [n * n for n in range(PLAIN)]
    expected += [n * n for n in range(100, 100 + DELAYED)] + [urgent * urgent, 250_000]
    runs = [int(n) for n in await app.results.endpoint.client.lrange(app.RUNS, 0, -1)]
    dead = await app.broker.list_dead()
    print(
        f"Results: {len(values)} of {len(task_ids)}, all correct: {values == expected}"
    )
    twice = len(runs) - len(set(runs))
    print(f"Executions: {len(runs)} for {len(task_ids)} tasks ({twice} twice: finished"
          " by the killed worker but not acked before it died)")  # fmt: skip
    print(f"The urgent task ran as number {runs.index(urgent) + 1} of {len(runs)}.")
    for letter in dead:
        print(f"Dead letter {letter.id}: {letter.reason}")
    print()
    stats = await asyncio.create_subprocess_exec(
        str(TASKIQ), "redis", "stats", "demo_app:broker", cwd=HERE
    )
    await stats.wait()
    return values == expected and set(runs) >= set(range(PLAIN)) and len(dead) == 1


def main() -> int:
    """Run the demo on REDIS_URL or on a throwaway server (redis-server or Valkey)."""
    from taskiq_redis_lua import local_redis  # noqa: PLC0415

    log_dir = Path(tempfile.mkdtemp(prefix="taskiq-redis-lua-demo-"))
    url = os.environ.get("REDIS_URL")
    server = None
    if not url:
        try:
            local_redis.server()
        except FileNotFoundError as error:
            print(f"Cannot start a throwaway server: {error}; or set REDIS_URL")
            return 1
        server = local_redis.start_single(log_dir / "redis")
        url = server.url
        print(f"Started a throwaway {local_redis.server().version} server")
    try:
        ok = asyncio.run(demo(url, log_dir))
    finally:
        if server is not None:
            server.stop()
    print("\nDemo", "succeeded: nothing was lost." if ok else "FAILED.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Side-by-side benchmark: our brokers and result backend against taskiq-redis 1.2.4.

Starts its own server (redis-server, else Valkey) on a free loopback port and runs,
variant after variant (interleaved, ``--repeat`` times; medians and min-max): kick
throughput, end-to-end throughput through a real ``taskiq worker`` process with and
without results (worker and Redis CPU per task), client round trips per task
(MONITOR lines not from Lua), keys left without a TTL, kiq→result latency, commands
of an idle worker and how fast it stops on Ctrl-C, pop cost at a small and a large
backlog, schedule fetches, Redis CPU per kick, bytes per queued message (plain,
with a priority, delayed), and end-to-end throughput with two worker processes.
Prints one table with ratios
ours/theirs and writes the numbers as JSON. ``--quick`` is a smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import bench_app
import redis.asyncio as aioredis
import taskiq_redis
from taskiq import AckableMessage, AsyncBroker, ScheduledTask, TaskiqMessage
from taskiq.exceptions import TaskiqResultTimeoutError

import taskiq_redis_lua
from taskiq_redis_lua.local_redis import LOOPBACK, start_single

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TASKIQ = Path(sys.executable).parent / "taskiq"
VARIANTS = bench_app.VARIANTS
REDIS_VARIANTS = VARIANTS[:4]
OURS = ("ours-list", "ours-stream")
LISTS = ("ours-list", "theirs-list")
GROUPS = ("kick", "e2e", "workers", "trips", "latency", "pop", "schedule", "memory")
READY_WAIT = 1.0
POPS = 200


@dataclass(frozen=True)
class Config:
    """Sizes of one bench run."""

    n: int = 5000
    repeat: int = 3
    trips_n: int = 1000
    latency_n: int = 200
    idle_seconds: float = 10.0
    backlogs: tuple[int, int] = (1_000, 1_000_000)
    schedules: tuple[int, int] = (10_000, 100_000)
    junk_keys: int = 100_000
    result_ttl: int = 3600
    memory_n: int = 100_000
    groups: tuple[str, ...] = GROUPS
    variants: tuple[str, ...] = VARIANTS


QUICK = Config(
    n=500,
    repeat=1,
    trips_n=300,
    latency_n=30,
    idle_seconds=3.0,
    backlogs=(1_000, 50_000),
    schedules=(1_000, 10_000),
    junk_keys=10_000,
    memory_n=10_000,
)


@dataclass(frozen=True)
class Measure:
    """One row of the table."""

    key: str
    label: str
    group: str
    variants: tuple[str, ...]
    zero_ok: bool = False


def measures(config: Config) -> list[Measure]:
    """Return every row, labelled with this run's sizes."""
    small, large = (f"{n:,}" for n in config.backlogs)
    few, many = (f"{n:,}" for n in config.schedules)
    rows = [
        Measure("kick_seq", "kicks/s, sequential", "kick", VARIANTS),
        Measure("kick_gather", "kicks/s, gather of 100", "kick", VARIANTS),
        Measure("kick_redis", "  Redis CPU µs/kick", "kick", REDIS_VARIANTS, True),
        Measure("kick_cmd", "  kick command µs (commandstats)", "kick", REDIS_VARIANTS),
    ]
    for tag, text in (("res", "with results"), ("bare", "without results")):
        rows += [
            Measure(f"e2e_{tag}_rate", f"tasks/s e2e, {text}", "e2e", VARIANTS),
            Measure(f"e2e_{tag}_frac", "  fraction of ceiling", "e2e", VARIANTS),
            Measure(f"e2e_{tag}_cpu", "  worker CPU µs/task", "e2e", VARIANTS),
            Measure(f"e2e_{tag}_cpux", "  worker CPU / ceiling's", "e2e", VARIANTS),
            Measure(f"e2e_{tag}_redis", "  Redis CPU µs/task", "e2e", VARIANTS, True),
        ]
    rows += [
        Measure(
            "e2e_w2_rate", "tasks/s e2e, --workers 2, results", "workers", VARIANTS
        ),
        Measure("e2e_w2_frac", "  fraction of ceiling", "workers", VARIANTS),
        Measure("trips", "client round trips/task", "trips", REDIS_VARIANTS),
        Measure("no_ttl", "keys without TTL (default run)", "trips", REDIS_VARIANTS),
    ]
    for tag, text, variants in (
        ("", "", REDIS_VARIANTS),
        ("wait_", "ready_wait ", OURS),
    ):
        for what in ("stored", "returned"):
            for p in ("50", "99"):
                key, label = f"lat_{tag}{what}_p{p}", f"latency ms {text}{what} p{p}"
                rows.append(Measure(key, label, "latency", variants))
    rows += [
        Measure("idle", "idle worker commands/s", "latency", REDIS_VARIANTS, True),
        Measure("ctrl_c", "idle worker Ctrl-C to exit, s", "latency", REDIS_VARIANTS),
        Measure("pop_small", f"pop µs/message, {small} backlog", "pop", LISTS),
        Measure("pop_large", f"pop µs/message, {large} backlog", "pop", LISTS),
        Measure("pop_ratio", "  pop cost large/small", "pop", LISTS),
        Measure("sched_small_ms", f"get_schedules ms, {few}", "schedule", LISTS),
        Measure("sched_small_cmds", "  commands sent", "schedule", LISTS),
        Measure("sched_large_ms", f"get_schedules ms, {many}", "schedule", LISTS),
        Measure("sched_large_cmds", "  commands sent", "schedule", LISTS),
        Measure("mem", "bytes/queued message", "memory", REDIS_VARIANTS),
        Measure("mem_prio", "  with a priority label", "memory", ("ours-list",)),
        Measure("mem_delay", "  with a delay label", "memory", OURS),
    ]
    return [m for m in rows if m.group in config.groups]


@dataclass
class Results:
    """Samples per measure and variant, plus details, notes and e2e runs."""

    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)

    def add(self, key: str, variant: str, value: float) -> None:
        """Record one sample."""
        self.samples.setdefault(key, {}).setdefault(variant, []).append(value)

    def detail(self, kind: str, variant: str, value: Any) -> None:
        """Record something a reader should see besides the numbers."""
        self.details.setdefault(kind, {})[variant] = value

    def note(self, text: str) -> None:
        """Record an observation and show it at once."""
        self.notes.append(text)
        log(f"NOTE: {text}")


_STARTED = time.monotonic()


def log(text: str) -> None:
    """Show progress on stderr."""
    print(f"[{time.monotonic() - _STARTED:7.1f}s] {text}", file=sys.stderr, flush=True)


@dataclass
class Bench:
    """The Redis server, the control connection and where files go."""

    config: Config
    url: str
    port: int
    control: aioredis.Redis
    control_addr: str
    workdir: Path
    results: Results = field(default_factory=Results)
    worker_runs: int = 0

    async def flush(self) -> None:
        """Empty the database between runs."""
        await self.control.flushall()


# -- watching Redis ---------------------------------------------------------------

_MONITOR_LINE = re.compile(rb'^\+?[\d.]+ \[\d+ ([^\]]+)\] "([^"]*)"')


class Monitor:
    """A MONITOR connection counting commands not run by Lua nor by the bench."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.counts: Counter[tuple[str, str]] = Counter()
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Monitor:
        """Open the connection and start counting."""
        reader, self._writer = await asyncio.open_connection(
            LOOPBACK, self.bench.port, limit=2**24
        )
        self._writer.write(b"MONITOR\r\n")
        await self._writer.drain()
        await asyncio.wait_for(reader.readline(), 5)  # +OK
        self._task = asyncio.create_task(self._read(reader))
        return self

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            match = _MONITOR_LINE.match(line)
            if match is None:
                continue
            address = match.group(1).decode()
            if address in ("lua", self.bench.control_addr):
                continue
            self.counts[(address, match.group(2).decode().upper())] += 1

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        """Let the last lines arrive, then stop counting and close."""
        await asyncio.sleep(0.2)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await asyncio.wait_for(self._writer.wait_closed(), 5)

    def total(self) -> int:
        """Return how many commands were counted."""
        return sum(self.counts.values())

    def by_command(self) -> list[tuple[str, int]]:
        """Return (command, count) pairs, most frequent first."""
        names: Counter[str] = Counter()
        for (_, name), count in self.counts.items():
            names[name] += count
        return names.most_common()


async def keys_without_ttl(bench: Bench) -> Counter[str]:
    """Count keys that never expire, by pattern (task ids shown as ``<id>``)."""
    patterns: Counter[str] = Counter()
    async for key in bench.control.scan_iter(count=1000):
        if await bench.control.ttl(key) == -1:
            text = key.decode(errors="replace")
            patterns[
                re.sub(r"[0-9a-f]{8}-?(?:[0-9a-f]{4}-?){3}[0-9a-f]{12}", "<id>", text)
            ] += 1
    return patterns


# -- worker processes ---------------------------------------------------------------


class WorkerRun:
    """One ``taskiq worker scripts.bench_app:broker`` process group."""

    def __init__(
        self, bench: Bench, variant: str, tag: str, total: int, **settings: Any
    ) -> None:
        bench.worker_runs += 1
        tag = f"{tag}-{bench.worker_runs}"
        self.report = bench.workdir / f"{tag}.json"
        self.log_path = bench.workdir / f"{tag}.log"
        self.log: IO[bytes] = self.log_path.open("wb")
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "BENCH_VARIANT": variant,
            "BENCH_URL": bench.url,
            "BENCH_N": str(total),
            "BENCH_REPORT": str(self.report),
            "BENCH_RESULTS": "1" if settings.get("results", True) else "0",
            "BENCH_RESULT_TTL": str(settings.get("result_ttl") or ""),
            "BENCH_READY_WAIT": str(settings.get("ready_wait") or ""),
            "BENCH_REDIS_CPU": "1" if settings.get("redis_cpu", True) else "0",
            "BENCH_WORKERS": str(settings.get("workers", 1)),
        }
        workers = str(settings.get("workers", 1))
        command = ["worker", "scripts.bench_app:broker", "--workers", workers]
        self.popen = subprocess.Popen(
            [
                str(TASKIQ),
                *command,
                "--max-async-tasks",
                "100",
                "--log-level",
                "WARNING",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    async def wait_report(self, timeout: float) -> dict[str, Any] | None:
        """Return the worker's report, or None if it died or took too long."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.popen.poll() is None:
            if self.report.exists():
                report: dict[str, Any] = json.loads(self.report.read_text())
                return report
            await asyncio.sleep(0.02)
        return None

    def _signal(self, number: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, number)

    async def stop(self, timeout: float = 10.0) -> float:
        """Ctrl-C the group; SIGKILL it if it is still there after ``timeout``.

        Return the seconds from Ctrl-C until it exited (``timeout`` if it did not).
        """
        started = time.monotonic()
        self._signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(self.popen.wait, timeout)
        took = time.monotonic() - started
        self._signal(signal.SIGKILL)
        await asyncio.to_thread(self.popen.wait, 10)
        self.log.close()
        return took

    def errors(self) -> list[str]:
        """Return the distinct error lines the worker printed (at most five)."""
        text = self.log_path.read_text(errors="replace")
        found = [
            line for line in text.splitlines() if re.search(r"Error|Traceback", line)
        ]
        return list(dict.fromkeys(found))[:5]


async def started(target: AsyncBroker) -> AsyncBroker:
    """Start ``target`` and return it."""
    await target.startup()
    return target


async def kick_all(task: Any, count: int, base: int = 0) -> None:
    """Kick ``count`` no-op tasks in gathers of 100."""
    for start in range(base, base + count, 100):
        end = min(start + 100, base + count)
        await asyncio.gather(*(task.kiq(i) for i in range(start, end)))


async def preload(bench: Bench, variant: str, count: int, **settings: Any) -> None:
    """Queue ``count`` no-op tasks with the variant's own broker."""
    if variant == "ceiling":
        return
    client = await started(bench_app.build_broker(variant, bench.url, **settings))
    try:
        await kick_all(bench_app.add_noop(client), count)
    finally:
        await client.shutdown()


async def drained(worker: WorkerRun, n: int) -> dict[str, Any] | None:
    """Wait for the report of ``worker`` draining ``n`` tasks; stop it either way."""
    try:
        return await worker.wait_report(timeout=60 + n / 50)
    finally:
        await worker.stop()


# -- measures -----------------------------------------------------------------------


async def measure_kicks(bench: Bench, variant: str) -> None:
    """Kicks per second, one at a time and in gathers of 100."""
    count = bench.config.n
    client = await started(bench_app.build_broker(variant, bench.url, results=False))
    task = bench_app.add_noop(client)
    try:
        cpu_before, usec_before = await redis_cpu(bench), await kick_usec(bench)
        began = time.perf_counter()
        for i in range(count):
            await task.kiq(i)
        sequential = count / (time.perf_counter() - began)
        kick_cpu = (await redis_cpu(bench) - cpu_before) / count * 1e6
        kick_cmd = (await kick_usec(bench) - usec_before) / count
        began = time.perf_counter()
        await kick_all(task, count)
        gathered = count / (time.perf_counter() - began)
    finally:
        await client.shutdown()
    await bench.flush()
    bench.results.add("kick_seq", variant, sequential)
    bench.results.add("kick_gather", variant, gathered)
    if variant in REDIS_VARIANTS:
        bench.results.add("kick_redis", variant, kick_cpu)
        bench.results.add("kick_cmd", variant, kick_cmd)
    log(f"kick {variant}: {sequential:,.0f}/s sequential, {gathered:,.0f}/s gathered")


async def redis_cpu(bench: Bench) -> float:
    """Redis's CPU seconds so far (``INFO cpu``)."""
    info = await bench.control.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def kick_usec(bench: Bench) -> float:
    """Microseconds Redis spent in the commands that kick (a script's include the
    commands it runs), from ``INFO commandstats``."""
    stats = await bench.control.info("commandstats")
    return sum(
        float(stats.get(f"cmdstat_{name}", {}).get("usec", 0))
        for name in ("evalsha", "eval", "lpush", "xadd")
    )


async def measure_memory(
    bench: Bench, variant: str, key: str, labels: dict[str, Any]
) -> None:
    """Bytes Redis holds per queued no-op message (``used_memory``), no worker."""
    count = bench.config.memory_n
    await bench.flush()
    before = int((await bench.control.info("memory"))["used_memory"])
    client = await started(bench_app.build_broker(variant, bench.url, results=False))
    task = bench_app.add_noop(client)
    kicker = task.kicker().with_labels(**labels)
    try:
        for start in range(0, count, 100):
            end = min(start + 100, count)
            await asyncio.gather(*(kicker.kiq(i) for i in range(start, end)))
    finally:
        await client.shutdown()
    after = int((await bench.control.info("memory"))["used_memory"])
    await bench.flush()
    bench.results.add(key, variant, (after - before) / count)
    log(f"memory {variant} {labels or ''}: {(after - before) / count:,.0f} bytes/msg")


async def measure_e2e(bench: Bench, variant: str, *, results: bool) -> None:
    """Drain ``n`` preloaded tasks with a worker; rate and CPU per task."""
    n, tag = bench.config.n, "res" if results else "bare"
    ttl = bench.config.result_ttl if results else None
    await bench.flush()
    await preload(bench, variant, n, results=results, result_ttl=ttl)
    worker = WorkerRun(
        bench, variant, f"e2e-{variant}-{tag}", n, results=results, result_ttl=ttl
    )
    report = await drained(worker, n)
    finished = report is not None and len(report["stored"]) == n
    bench.results.runs.append(
        {"variant": variant, "results": results, "n": n, "finished": finished}
    )
    if report is None:
        bench.results.note(f"e2e {variant} {tag}: no report; {worker.errors()}")
        return
    first, last = report["first"], report["last"]
    seconds = last["time"] - first["time"]
    rate = n / seconds
    bench.results.add(f"e2e_{tag}_rate", variant, rate)
    bench.results.add(f"e2e_{tag}_cpu", variant, (last["cpu"] - first["cpu"]) / n * 1e6)
    redis_cpu = (last["redis_cpu"] - first["redis_cpu"]) / n * 1e6
    bench.results.add(f"e2e_{tag}_redis", variant, redis_cpu)
    log(f"e2e {variant} {tag}: {rate:,.0f} tasks/s")


async def measure_two_workers(bench: Bench, variant: str) -> None:
    """Drain ``n`` preloaded tasks, with results, by ``--workers 2``: the rate."""
    n, ttl = bench.config.n, bench.config.result_ttl
    await bench.flush()
    await preload(bench, variant, n, results=True, result_ttl=ttl)
    worker = WorkerRun(
        bench, variant, f"w2-{variant}", n, result_ttl=ttl, workers=2, redis_cpu=False
    )
    report = await drained(worker, n)
    if report is None:
        bench.results.note(f"--workers 2 {variant}: no report; {worker.errors()}")
        return
    rate = n / (report["last"]["time"] - report["first"]["time"])
    bench.results.add("e2e_w2_rate", variant, rate)
    log(f"e2e --workers 2 {variant}: {rate:,.0f} tasks/s")


async def measure_trips(bench: Bench, variant: str) -> None:
    """Top-level commands per task, default settings; then keys without TTL."""
    n = bench.config.trips_n
    await bench.flush()
    async with Monitor(bench) as monitor:
        await preload(bench, variant, n, results=True)
        worker = WorkerRun(bench, variant, f"trips-{variant}", n, redis_cpu=False)
        report = await drained(worker, n)
    if report is None:
        bench.results.note(f"trips {variant}: no report; {worker.errors()}")
        return
    bench.results.add("trips", variant, monitor.total() / n)
    bench.results.detail("top_commands", variant, dict(monitor.by_command()[:8]))
    patterns = await keys_without_ttl(bench)
    bench.results.add("no_ttl", variant, sum(patterns.values()))
    bench.results.detail("keys_without_ttl", variant, dict(patterns.most_common()))
    log(f"trips {variant}: {monitor.total() / n:.2f}/task; no TTL: {dict(patterns)}")


def percentile(values: list[float], share: int) -> float:
    """Return the ``share``-th percentile (1..99) of ``values``."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[share - 1]


async def time_round_trips(
    task: Any, count: int
) -> tuple[dict[str, float], list[float]]:
    """Kick and wait ``count`` times; return start times by task id, and waits."""
    starts: dict[str, float] = {}
    waits: list[float] = []
    for i in range(count):
        began = time.time()
        sent = await task.kiq(i)
        try:
            await sent.wait_result(timeout=5)
        except TaskiqResultTimeoutError:
            continue
        waits.append(time.time() - began)
        starts[sent.task_id] = began
    return starts, waits


async def measure_latency(bench: Bench, variant: str, ready_wait: float | None) -> None:
    """kiq→stored and kiq→returned latency; without ready_wait also the idle worker."""
    count, tag = bench.config.latency_n, "wait_" if ready_wait else ""
    settings: dict[str, Any] = {
        "result_ttl": bench.config.result_ttl,
        "ready_wait": ready_wait,
    }
    await bench.flush()
    worker = WorkerRun(
        bench, variant, f"latency-{variant}-{tag}", count + 1, **settings
    )
    client = await started(
        bench_app.build_broker(variant, bench.url, results=True, **settings)
    )
    task = bench_app.add_noop(client)
    try:
        await (await task.kiq(-1)).wait_result(timeout=60)  # the worker is up
        starts, waits = await time_round_trips(task, count)
        report = await worker.wait_report(timeout=10)
        if ready_wait is None:
            await measure_idle(bench, variant, task, worker)
    finally:
        await client.shutdown()
        stopped = await worker.stop()
    if ready_wait is None:  # the worker idled before it was stopped
        bench.results.add("ctrl_c", variant, stopped)
        log(f"idle {variant}: Ctrl-C to exit {stopped:.2f} s")
    if len(waits) < count:
        bench.results.note(f"latency {variant}: {count - len(waits)} waits timed out")
    stored_at = report["stored"] if report else {}
    stored = [stored_at[t] - began for t, began in starts.items() if t in stored_at]
    for what, values in (("stored", stored), ("returned", waits)):
        for share in (50, 99):
            if values:
                value = percentile(values, share) * 1000
                bench.results.add(f"lat_{tag}{what}_p{share}", variant, value)
    median = percentile(waits, 50) * 1000 if waits else float("nan")
    log(f"latency {variant} {tag or 'default'}: p50 {median:.1f} ms")


async def measure_idle(
    bench: Bench, variant: str, task: Any, worker: WorkerRun
) -> None:
    """Commands per second of the idle worker; is it still serving afterwards?"""
    await asyncio.sleep(3.0)
    async with Monitor(bench) as monitor:
        await asyncio.sleep(bench.config.idle_seconds)
    rate = monitor.total() / bench.config.idle_seconds
    bench.results.add("idle", variant, rate)
    try:
        await (await task.kiq(0)).wait_result(timeout=10)
        serving = True
    except TaskiqResultTimeoutError:
        serving = False
        bench.results.note(f"idle {variant}: the worker no longer serves after idling")
    info = {"commands": dict(monitor.by_command()), "serving_after": serving}
    bench.results.detail("idle", variant, {**info, "worker_errors": worker.errors()})
    log(f"idle {variant}: {rate:.2f} commands/s, serving afterwards: {serving}")


async def fill(bench: Bench, variant: str, count: int) -> None:
    """Queue ``count`` messages: ours through kick(), theirs with LPUSH."""
    client = await started(bench_app.build_broker(variant, bench.url, results=False))
    message = client.formatter.dumps(
        TaskiqMessage(
            task_id="0" * 32, task_name="noop", labels={}, args=[0], kwargs={}
        )
    )
    try:
        for start in range(0, count, 10_000):
            size = min(10_000, count - start)
            if variant == "theirs-list":
                await bench.control.lpush(bench_app.QUEUE, *[message.message] * size)
            else:
                for base in range(0, size, 1000):
                    batch = min(1000, size - base)
                    await asyncio.gather(*(client.kick(message) for _ in range(batch)))
    finally:
        await client.shutdown()


async def time_pops(bench: Bench, variant: str, count: int) -> float:
    """Return µs per message for ``count`` single pops from listen(); acks untimed."""
    options = {"fetch_batch_size": 1} if variant == "ours-list" else {}
    client = await started(
        bench_app.build_broker(variant, bench.url, results=False, **options)
    )
    messages = client.listen()
    taken: list[Any] = []
    try:
        elapsed = 0.0
        for index in range(count + 1):  # the first one warms the connection up
            began = time.perf_counter()
            taken.append(await asyncio.wait_for(anext(messages), 10))
            elapsed += (time.perf_counter() - began) if index else 0.0
        await asyncio.gather(*(settle(message) for message in taken))
    finally:
        await messages.aclose()
        await client.shutdown()
    return elapsed / count * 1e6


async def settle(message: Any) -> None:
    """Ack ``message`` if it can be acked."""
    if isinstance(message, AckableMessage):
        acked = message.ack()
        if isinstance(acked, Awaitable):
            await acked


async def measure_pops(bench: Bench, variant: str) -> None:
    """Pop cost at the small and the large backlog."""
    for key, size in zip(
        ("pop_small", "pop_large"), bench.config.backlogs, strict=True
    ):
        await bench.flush()
        began = time.monotonic()
        await fill(bench, variant, size + (POPS + 1) * bench.config.repeat)
        log(f"pop {variant}: filled {size:,} in {time.monotonic() - began:.1f} s")
        for _ in range(bench.config.repeat):
            bench.results.add(key, variant, await time_pops(bench, variant, POPS))
    await bench.flush()


async def add_junk(bench: Bench, count: int) -> None:
    """Store ``count`` keys that no schedule source should care about."""
    for start in range(0, count, 10_000):
        pairs = {f"junk:{i}": "x" for i in range(start, min(start + 10_000, count))}
        await bench.control.mset(pairs)


def schedule_source(variant: str, url: str) -> Any:
    """Return the side's ListRedisScheduleSource."""
    if variant == "ours-list":
        return taskiq_redis_lua.ListRedisScheduleSource(url, prefix="bench")
    return taskiq_redis.ListRedisScheduleSource(url, prefix="bench")


async def measure_schedules(bench: Bench, variant: str) -> None:
    """Time get_schedules() with few and many cron schedules among unrelated keys."""
    for tag, size in zip(("small", "large"), bench.config.schedules, strict=True):
        await bench.flush()
        await add_junk(bench, bench.config.junk_keys)
        source = schedule_source(variant, bench.url)
        await source.startup()
        try:
            for start in range(0, size, 100):
                await asyncio.gather(
                    *(
                        source.add_schedule(
                            ScheduledTask(
                                task_name="noop",
                                labels={},
                                args=[i],
                                kwargs={},
                                cron="*/5 * * * *",
                            )
                        )
                        for i in range(start, min(start + 100, size))
                    )
                )
            times = []
            for _ in range(5):
                began = time.perf_counter()
                found = await source.get_schedules()
                times.append((time.perf_counter() - began) * 1000)
            async with Monitor(bench) as monitor:
                await source.get_schedules()
        finally:
            await source.shutdown()
        if len(found) != size:
            bench.results.note(f"schedules {variant}: got {len(found)} of {size}")
        bench.results.add(f"sched_{tag}_ms", variant, statistics.median(times))
        bench.results.add(f"sched_{tag}_cmds", variant, monitor.total())
        log(f"schedules {variant} {size:,}: {statistics.median(times):.1f} ms")
    await bench.flush()


# -- running ------------------------------------------------------------------------


def chosen(bench: Bench, among: tuple[str, ...]) -> list[str]:
    """Return the selected variants that are among ``among``."""
    return [v for v in bench.config.variants if v in among]


async def run_kicks(bench: Bench) -> None:
    """Kick throughput, variants interleaved."""
    for _ in range(bench.config.repeat):
        for variant in chosen(bench, VARIANTS):
            await measure_kicks(bench, variant)


async def run_e2e(bench: Bench) -> None:
    """End-to-end runs, variants interleaved, with and without results."""
    for _ in range(bench.config.repeat):
        for variant in chosen(bench, VARIANTS):
            for results in (True, False):
                await measure_e2e(bench, variant, results=results)


async def run_workers(bench: Bench) -> None:
    """End-to-end runs with results by two worker processes, variants interleaved."""
    for _ in range(bench.config.repeat):
        for variant in chosen(bench, VARIANTS):
            await measure_two_workers(bench, variant)


async def run_trips(bench: Bench) -> None:
    """Round trips and keys without TTL, once per Redis variant."""
    for variant in chosen(bench, REDIS_VARIANTS):
        await measure_trips(bench, variant)


async def run_pops(bench: Bench) -> None:
    """Pop cost of the list queues."""
    for variant in chosen(bench, LISTS):
        await measure_pops(bench, variant)


async def run_schedules(bench: Bench) -> None:
    """Schedule fetches of both schedule sources."""
    for variant in chosen(bench, LISTS):
        await measure_schedules(bench, variant)


async def run_memory(bench: Bench) -> None:
    """Bytes per queued message, no worker: plain, prioritized, delayed."""
    for variant in chosen(bench, REDIS_VARIANTS):
        await measure_memory(bench, variant, "mem", {})
        if variant == "ours-list":
            await measure_memory(bench, variant, "mem_prio", {"priority": 1})
        if variant in OURS:
            await measure_memory(bench, variant, "mem_delay", {"delay": 3600})


async def run_latency(bench: Bench) -> None:
    """Latency (and the idle worker) per variant; ready_wait rows for ours."""
    for variant in chosen(bench, REDIS_VARIANTS):
        await measure_latency(bench, variant, None)
        if variant in OURS:
            await measure_latency(bench, variant, READY_WAIT)


RUNNERS: dict[str, Callable[[Bench], Awaitable[None]]] = {
    "kick": run_kicks,
    "e2e": run_e2e,
    "workers": run_workers,
    "trips": run_trips,
    "latency": run_latency,
    "pop": run_pops,
    "schedule": run_schedules,
    "memory": run_memory,
}


def derive(results: Results) -> None:
    """Rates and CPU against the ceiling's of the same repetition; pop cost ratio.

    Absolute figures swing between runs on a shared machine; a ratio to the ceiling
    measured moments apart swings less.
    """
    for tag in ("res", "bare", "w2"):
        for measured, derived in (("rate", "frac"), ("cpu", "cpux")):
            samples = results.samples.get(f"e2e_{tag}_{measured}", {})
            ceiling = samples.get("ceiling", [])
            for variant, values in samples.items():
                for value, top in zip(values, ceiling, strict=False):
                    results.add(f"e2e_{tag}_{derived}", variant, value / top)
    for variant in LISTS:
        small = results.samples.get("pop_small", {}).get(variant)
        large = results.samples.get("pop_large", {}).get(variant)
        if small and large:
            ratio = statistics.median(large) / statistics.median(small)
            results.add("pop_ratio", variant, ratio)


def summary(values: list[float] | None) -> dict[str, Any] | None:
    """Return median, min, max and the samples, or None without samples."""
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "samples": values,
    }


# -- reporting ----------------------------------------------------------------------


def package_version(name: str) -> str:
    """Return the installed version of ``name``, or "-"."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "-"


def git_revision() -> str:
    """Return the checkout's commit, with "+dirty" for local changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "-"
    return commit + ("+dirty" if dirty else "")  # fmt: skip


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "-"


async def header(control: aioredis.Redis) -> dict[str, Any]:
    """Describe the machine and the software measured."""
    server = await control.info("server")
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "server": (
            f"Valkey {server['valkey_version']}"
            if "valkey_version" in server
            else f"redis-server {server['redis_version']}"
        ),
        "taskiq": package_version("taskiq"),
        "redis_py": package_version("redis"),
        "hiredis": package_version("hiredis"),
        "taskiq_redis": package_version("taskiq-redis"),
        "taskiq_redis_lua": f"{package_version('taskiq-redis-lua')} ({git_revision()})",
        "worker": "taskiq worker --workers 1 --max-async-tasks 100 --log-level WARNING",
    }


def number(value: float) -> str:
    """Format a number with about three significant digits."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def cell(stats: dict[str, Any] | None) -> str:
    """Return "median (min-max)", or "—" without data."""
    if stats is None:
        return "—"
    text = number(stats["median"])
    if len(stats["samples"]) > 1:
        text += f" ({number(stats['min'])}-{number(stats['max'])})"
    return text


def ratio(ours: dict[str, Any] | None, theirs: dict[str, Any] | None) -> str:
    """Return ours/theirs of the medians, or "—"."""
    if ours is None or theirs is None or not theirs["median"]:
        return "—"
    return f"{ours['median'] / theirs['median']:.2f}"


COLUMNS = (
    "ours-list",
    "theirs-list",
    "ratio",
    "ours-stream",
    "theirs-stream",
    "ratio",
    "ceiling",
)


def table(rows: dict[str, dict[str, Any]]) -> str:
    """Return the table: one row per measure, the columns of COLUMNS."""
    lines = [["measure", *COLUMNS]]
    for row in rows.values():
        values = row["values"]
        lines.append([
            row["label"],
            cell(values.get("ours-list")),
            cell(values.get("theirs-list")),
            ratio(values.get("ours-list"), values.get("theirs-list")),
            cell(values.get("ours-stream")),
            cell(values.get("theirs-stream")),
            ratio(values.get("ours-stream"), values.get("theirs-stream")),
            cell(values.get("ceiling")),
        ])  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    rendered = [
        "  ".join(
            text.ljust(width) if i == 0 else text.rjust(width)
            for i, (text, width) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    rendered.insert(1, "-" * len(rendered[0]))
    return "\n".join(rendered)


def render(document: dict[str, Any]) -> str:
    """Return the header, the table and the details as text."""
    head = document["header"]
    lines = [
        f"machine: {head['cpus']} CPUs, {head['cpu_model']}; Python {head['python']};"
        f" {head['server']}",
        f"taskiq {head['taskiq']}, redis-py {head['redis_py']}, hiredis"
        f" {head['hiredis']}, taskiq-redis {head['taskiq_redis']}, taskiq-redis-lua"
        f" {head['taskiq_redis_lua']}",
        f"worker: {head['worker']}; {document['config']['n']:,} tasks per e2e run;"
        f" {document['config']['repeat']} repetition(s), median (min-max);"
        " ratio = ours/theirs",
        "",
        table(document["measures"]),
        "",
    ]
    for kind, per_variant in document["details"].items():
        for variant, value in per_variant.items():
            lines.append(f"{kind} {variant}: {json.dumps(value)}")
    lines += [f"note: {text}" for text in document["notes"]]
    lines.append(f"total: {document['seconds']:.0f} s")
    return "\n".join(lines)


def document(bench: Bench, head: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Return everything measured as one JSON-ready dict."""
    results = bench.results
    rows = {
        m.key: {
            "label": m.label,
            "variants": list(m.variants),
            "zero_ok": m.zero_ok,
            "values": {
                v: summary(results.samples.get(m.key, {}).get(v)) for v in m.variants
            },
        }
        for m in measures(bench.config)
    }
    return {
        "header": head,
        "config": asdict(bench.config),
        "measures": rows,
        "runs": results.runs,
        "details": results.details,
        "notes": results.notes,
        "seconds": seconds,
    }


async def control_client(url: str) -> tuple[aioredis.Redis, str]:
    """Return the bench's own connection and its address as MONITOR shows it."""
    control = aioredis.Redis.from_url(url, single_connection_client=True)
    info = await control.client_info()
    return control, str(info["addr"])


async def run(config: Config) -> dict[str, Any]:
    """Start Redis, run the selected groups; return what they measured."""
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-") as directory:
        workdir = Path(directory)
        with start_single(workdir) as topology:
            control, address = await control_client(topology.url)
            port = topology.processes[0].port
            bench = Bench(config, topology.url, port, control, address, workdir)
            try:
                head = await header(control)
                log(f"redis {topology.url}; work files in {workdir}")
                for group in config.groups:
                    await RUNNERS[group](bench)
            finally:
                await control.aclose()
    derive(bench.results)
    return document(bench, head, time.monotonic() - began)


def parse_config(argv: list[str] | None) -> tuple[Config, Path]:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--repeat", type=int, help="repetitions (default 3)")
    parser.add_argument("--n", type=int, help="tasks per e2e run (default 5000)")
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"))
    parser.add_argument("--only", help=f"comma-separated groups of {', '.join(GROUPS)}")
    parser.add_argument("--variants", help=f"comma-separated of {', '.join(VARIANTS)}")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else Config()
    changes: dict[str, Any] = {}
    if args.repeat:
        changes["repeat"] = args.repeat
    if args.n:
        changes["n"] = args.n
    for name, allowed, given in (
        ("groups", GROUPS, args.only),
        ("variants", VARIANTS, args.variants),
    ):
        if given:
            chosen = tuple(item.strip() for item in given.split(","))
            if unknown := set(chosen) - set(allowed):
                parser.error(f"unknown {name}: {', '.join(sorted(unknown))}")
            changes[name] = tuple(item for item in allowed if item in chosen)
    return Config(**{**asdict(config), **changes}), args.json


def main(argv: list[str] | None = None) -> int:
    """Run the bench and print the table."""
    config, json_path = parse_config(argv)
    result = asyncio.run(run(config))
    json_path.write_text(json.dumps(result, indent=2))
    print(render(result))
    print(f"JSON: {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``taskiq redis ...``: look inside queues, dead letters, scripts and schedules.

A taskiq CLI plugin (entry point ``taskiq_cli``), also ``python -m taskiq_redis_lua``.
Targets are ``module:object`` paths as for ``taskiq worker`` (a broker, a schedule
source or a scheduler), or ``--url`` with ``--queue``/``--kind`` without an app.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pycron  # type: ignore[import-untyped]
import redis.exceptions
from taskiq import AsyncBroker, ScheduledTask, TaskiqScheduler
from taskiq.abc.cmd import TaskiqCMD
from taskiq.cli.utils import import_object

from taskiq_redis_lua import scripts, topology
from taskiq_redis_lua.dead_letters import DeadLetter
from taskiq_redis_lua.list_queue import (
    ListQueueBroker,
    ListQueueClusterBroker,
    _ListQueue,
)
from taskiq_redis_lua.schedule_source import (
    ListRedisClusterScheduleSource,
    ListRedisScheduleSource,
    _ScheduleSource,
)
from taskiq_redis_lua.stream import (
    RedisStreamBroker,
    RedisStreamClusterBroker,
    _StreamBroker,
)

Queue = _ListQueue | _StreamBroker

#: How far ahead the next fire time of a cron schedule is looked for.
_CRON_HORIZON = timedelta(days=7)


class CliError(Exception):
    """A problem to report in one line, without a traceback."""


class RedisCMD(TaskiqCMD):
    """The ``taskiq redis`` subcommand."""

    short_help = "Inspect taskiq-redis-lua queues, dead letters, scripts, schedules"

    def exec(self, args: Sequence[str]) -> int:
        """Run ``taskiq redis`` with ``args``."""
        return main(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    options = _parser().parse_args(argv)
    try:
        asyncio.run(options.handler(options))
    except CliError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (redis.exceptions.RedisError, OSError) as error:
        print(f"error: Redis: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskiq redis", description="Look inside taskiq-redis-lua queues."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    stats = commands.add_parser("stats", help="counts per queue")
    _target_options(stats)
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.add_argument("--watch", type=float, metavar="N", help="refresh every N s")
    stats.set_defaults(handler=_stats)

    dead = commands.add_parser("dead", help="list, requeue or purge dead letters")
    _target_options(dead)
    dead.add_argument("--limit", type=int, default=50, help="how many to list")
    dead.add_argument("--json", action="store_true", help="print JSON")
    action = dead.add_mutually_exclusive_group()
    action.add_argument("--requeue", nargs="+", metavar="ID", help="requeue these")
    action.add_argument("--all", action="store_true", help="requeue every one")
    action.add_argument("--purge", action="store_true", help="delete every one")
    dead.add_argument("--yes", action="store_true", help="do not ask to confirm")
    dead.set_defaults(handler=_dead)

    script_list = commands.add_parser("scripts", help="the Lua scripts")
    script_list.add_argument("action", nargs="?", choices=["list", "show", "load"])
    script_list.add_argument("name", nargs="?", help="script name for `show`")
    script_list.add_argument("--url", help="Redis URL for `load`")
    script_list.add_argument("--cluster", action="store_true", help="URL is a cluster")
    script_list.set_defaults(handler=_scripts)

    exporter = commands.add_parser(
        "exporter", help="serve Prometheus metrics of queues at /metrics"
    )
    _target_options(exporter)
    exporter.add_argument("--port", type=int, default=9808, help="HTTP port")
    exporter.add_argument(
        "--address",
        default="0.0.0.0",  # noqa: S104 - Prometheus scrapes from another host
        help="address to bind (default: every interface)",
    )
    exporter.set_defaults(handler=_exporter)

    schedules = commands.add_parser("schedules", help="list or delete schedules")
    schedules.add_argument("target", nargs="?", help="module:scheduler_or_source")
    schedules.add_argument("--url", help="Redis URL, without an app")
    schedules.add_argument("--cluster", action="store_true", help="URL is a cluster")
    schedules.add_argument("--prefix", default="schedule", help="key prefix")
    schedules.add_argument("--delete", metavar="ID", help="delete this schedule")
    schedules.add_argument("--json", action="store_true", help="print JSON")
    schedules.set_defaults(handler=_schedules)
    return parser


def _target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="?", help="module:broker, as for taskiq worker")
    parser.add_argument("--url", help="Redis URL, without an app")
    parser.add_argument("--cluster", action="store_true", help="URL is a cluster")
    parser.add_argument(
        "--queue",
        action="append",
        help="queue name (with --url; repeat for several; default taskiq)",
    )
    parser.add_argument("--kind", choices=["list", "stream"], default="list")
    parser.add_argument("--group", default="taskiq", help="stream consumer group")


# -- targets ----------------------------------------------------------------------


def _import(path: str) -> Any:
    try:
        return import_object(path)
    except (ImportError, AttributeError, ValueError) as error:
        raise CliError(f"cannot import {path!r}: {error}") from None


def _queues(options: argparse.Namespace) -> list[Queue]:
    """Return the brokers the options name: an app's, or one built from --url."""
    if options.target:
        broker = _import(options.target)
        if isinstance(broker, _ListQueue | _StreamBroker):
            return [broker]
        if isinstance(broker, AsyncBroker):
            raise CliError(
                f"{options.target} is a {type(broker).__name__}: only the list queue"
                " and stream brokers of taskiq-redis-lua keep queues to inspect",
            )
        raise CliError(f"{options.target} is not a broker but {type(broker).__name__}")
    if not options.url:
        raise CliError("give a module:broker path, or --url (with --queue and --kind)")
    names = options.queue or ["taskiq"]
    try:
        if options.kind == "list":
            builder = ListQueueClusterBroker if options.cluster else ListQueueBroker
            return [builder(options.url, queue_name=name) for name in names]
        stream_builder = (
            RedisStreamClusterBroker if options.cluster else RedisStreamBroker
        )
        return [
            stream_builder(
                options.url, queue_name=name, consumer_group_name=options.group
            )
            for name in names
        ]
    except ValueError as error:
        raise CliError(str(error)) from None


async def _closing(queues: Sequence[Queue | _ScheduleSource]) -> None:
    for item in queues:
        await item.endpoint.close()


# -- stats ------------------------------------------------------------------------


async def _stats(options: argparse.Namespace) -> None:
    queues = _queues(options)
    try:
        while True:
            snapshots = [snap for queue in queues for snap in await queue.stats()]
            missing = [snap.queue for snap in snapshots if not _exists(snap)]
            if missing:
                raise CliError(f"no such queue in Redis: {', '.join(missing)}")
            if options.json:
                print(json.dumps([snap.as_dict() for snap in snapshots]))
            else:
                print(_stats_table(snapshots))
            if not options.watch:
                return
            await asyncio.sleep(options.watch)
            print()
    finally:
        await _closing(queues)


def _exists(snapshot: Any) -> bool:
    if snapshot.kind == "list":
        return bool(snapshot.exists)
    return bool(snapshot.group_exists)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def _stats_table(snapshots: Sequence[Any]) -> str:
    rows = []
    for snap in snapshots:
        if snap.kind == "list":
            rows.append({
                "queue": snap.queue, "kind": "list", "ready": snap.ready,
                "delayed": snap.delayed, "in flight": snap.in_flight, "dead": snap.dead,
                "lease ends in": _seconds(snap.next_lease_expiry),
            })  # fmt: skip
        else:
            idle = min((c.idle_seconds for c in snap.consumers), default=None)
            rows.append({
                "queue": snap.queue, "kind": f"stream/{snap.group}",
                "length": snap.length, "pending": snap.pending,
                "lag": "-" if snap.lag is None else snap.lag,
                "consumers": len(snap.consumers), "least idle": _seconds(idle),
                "delayed": snap.delayed, "dead": snap.dead,
            })  # fmt: skip
    return _table(rows)


def _table(rows: Sequence[dict[str, Any]]) -> str:
    """Format rows (dicts) as aligned columns; rows may have different keys."""
    if not rows:
        return "(nothing)"
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    cells = [[str(row.get(column, "")) for column in columns] for row in rows]
    widths = [
        max(len(column), *(len(line[i]) for line in cells))
        for i, column in enumerate(columns)
    ]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True))
        for line in cells
    ]
    return "\n".join(line.rstrip() for line in lines)


# -- dead letters -------------------------------------------------------------------


def _task_name(queue: Queue, letter: DeadLetter) -> str:
    try:
        return str(queue.formatter.loads(letter.payload).task_name)
    except Exception:  # noqa: BLE001 - an undecodable payload is why some died
        return "?"


def _confirm(question: str, options: argparse.Namespace) -> None:
    if options.yes:
        return
    if not sys.stdin.isatty():
        raise CliError(f"{question}: add --yes to confirm without a terminal")
    if input(f"{question} [y/N] ").strip().lower() not in {"y", "yes"}:
        raise CliError("cancelled")


async def _dead(options: argparse.Namespace) -> None:
    queues = _queues(options)
    try:
        for queue in queues:
            await _dead_of(queue, options)
    finally:
        await _closing(queues)


async def _dead_of(queue: Queue, options: argparse.Namespace) -> None:
    if options.requeue or options.all:
        count = len(options.requeue) if options.requeue else await queue.count_dead()
        _confirm(f"requeue {count} dead letter(s) of {queue.queue_name}", options)
        moved = await queue.requeue_dead(options.requeue)
        print(f"requeued {moved} dead letter(s) of {queue.queue_name}")
        return
    if options.purge:
        _confirm(
            f"delete all {await queue.count_dead()} dead letter(s) for good", options
        )
        print(f"purged {await queue.purge_dead()} dead letter(s) of {queue.queue_name}")
        return
    letters = await queue.list_dead(limit=max(1, options.limit))
    rows = [
        {
            "id": letter.id,
            "task": _task_name(queue, letter),
            "deliveries": letter.deliveries,
            "died": letter.died_at.isoformat(timespec="seconds"),
            "reason": letter.reason,
        }
        for letter in letters
    ]
    if options.json:
        print(json.dumps(rows))
        return
    total = await queue.count_dead()
    print(f"{queue.queue_name}: {total} dead letter(s)")
    if rows:
        print(_table(rows))


# -- scripts ------------------------------------------------------------------------


async def _scripts(options: argparse.Namespace) -> None:
    catalog = scripts.catalog()
    if options.action in (None, "list"):
        print(_table([
            {
                "name": item.name, "keys": len(item.keys), "sha1": item.sha,
                "file": item.path.relative_to(catalog.directory.parent).as_posix(),
                "purpose": item.summary,
            }
            for item in catalog
        ]))  # fmt: skip
        return
    if options.action == "show":
        if not options.name:
            raise CliError(
                "name the script to show, e.g. `taskiq redis scripts show queue/pop`"
            )
        try:
            print(catalog[options.name].body.decode(), end="")
        except KeyError as error:
            raise CliError(str(error.args[0])) from None
        return
    if not options.url:
        raise CliError("`scripts load` needs --url")
    try:
        endpoint = (
            topology.cluster(options.url)
            if options.cluster
            else topology.single_node(options.url)
        )
    except ValueError as error:
        raise CliError(str(error)) from None
    try:
        await scripts.load(endpoint.client, list(catalog))
    finally:
        await endpoint.close()
    where = "every primary" if options.cluster else options.url
    print(f"loaded {len(catalog)} scripts on {where}")


# -- schedules ----------------------------------------------------------------------


def _sources(options: argparse.Namespace) -> list[_ScheduleSource]:
    if options.target:
        found = _import(options.target)
        candidates = found.sources if isinstance(found, TaskiqScheduler) else [found]
        sources = [item for item in candidates if isinstance(item, _ScheduleSource)]
        if not sources:
            raise CliError(
                f"{options.target} holds no taskiq-redis-lua schedule source",
            )
        return sources
    if not options.url:
        raise CliError(
            "give a module:scheduler (or source) path, or --url and --prefix"
        )
    builder = (
        ListRedisClusterScheduleSource if options.cluster else ListRedisScheduleSource
    )
    try:
        return [builder(options.url, prefix=options.prefix)]
    except ValueError as error:
        raise CliError(str(error)) from None


def next_fire(schedule: ScheduledTask, now: datetime) -> str:
    """Describe when ``schedule`` fires next, as taskiq's scheduler would send it."""
    if (
        schedule.time is not None
        and schedule.cron is None
        and schedule.interval is None
    ):
        when = schedule.time
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when.isoformat(timespec="seconds")
    if schedule.interval is not None:
        seconds = (
            schedule.interval.total_seconds()
            if isinstance(schedule.interval, timedelta)
            else schedule.interval
        )
        return f"every {seconds:g}s"
    assert schedule.cron is not None
    minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while minute - now < _CRON_HORIZON:
        if _cron_matches(schedule, minute):
            return minute.isoformat(timespec="minutes")
        minute += timedelta(minutes=1)
    return f"not within {_CRON_HORIZON.days} days"


def _cron_matches(schedule: ScheduledTask, moment: datetime) -> bool:
    offset = schedule.cron_offset
    if isinstance(offset, timedelta):
        moment += offset
    elif isinstance(offset, str):
        from zoneinfo import ZoneInfo  # noqa: PLC0415 - only for offsets by zone

        moment = moment.astimezone(ZoneInfo(offset))
    return bool(pycron.is_now(schedule.cron, moment))


async def _schedules(options: argparse.Namespace) -> None:
    sources = _sources(options)
    try:
        for source in sources:
            if options.delete:
                await source.delete_schedule(options.delete)
                print(f"deleted schedule {options.delete} from {source.prefix}")
                continue
            now = datetime.now(timezone.utc)
            rows = [
                {
                    "id": item.schedule_id,
                    "task": item.task_name,
                    "cron": item.cron or "",
                    "next": next_fire(item, now),
                }
                for item in await source.all_schedules()
            ]
            if options.json:
                print(json.dumps(rows))
            else:
                print(f"{source.prefix}: {len(rows)} schedule(s)")
                if rows:
                    print(_table(rows))
    finally:
        await _closing(sources)


# -- exporter ---------------------------------------------------------------------


async def _exporter(options: argparse.Namespace) -> None:
    try:
        from taskiq_redis_lua import exporter  # noqa: PLC0415 - an optional extra
    except ImportError as error:
        raise CliError(
            f"the exporter needs prometheus_client ({error}): pip install"
            " 'taskiq-redis-lua[metrics]'"
        ) from None
    await exporter.serve(_queues(options), options.address, options.port)

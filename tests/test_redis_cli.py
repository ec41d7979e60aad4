"""Every script runs by hand with `redis-cli --eval lua/<family>/<verb>.lua k , a`."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field

import pytest

from taskiq_redis_lua import local_redis, scripts
from taskiq_redis_lua.local_redis import LocalTopology


@dataclass
class CliCase:
    """One hand-run of a script: state before, the call, what redis-cli prints
    (a regular expression)."""

    keys: list[str]
    args: list[str]
    prints: str
    before: list[list[str]] = field(default_factory=list)
    after: list[tuple[list[str], str]] = field(default_factory=list)


# `NAME` stands for a fresh name per test; `Q:` for the companion keys of queue NAME.
ID = "0000000000000001:0"
GROUP_READ = [
    ["XGROUP", "CREATE", "NAME", "g", "0", "MKSTREAM"],
    ["XADD", "NAME", "1-1", "data", "payload"],
    ["XREADGROUP", "GROUP", "g", "c1", "COUNT", "10", "STREAMS", "NAME", ">"],
]
CLAIM_ARGS = [
    "g", "c2", "token", "1000", "0", "10", "5", "100", "0", "0", "100",
    "0", "10",  # consumers idle for ever stay
]  # fmt: skip
STREAM_KEYS = [
    "NAME", "Q:lock.g", "Q:cursor.g", "Q:dead.g", "Q:delayed", "Q:payloads",
    "Q:counters.g",
]  # fmt: skip
CASES: dict[str, CliCase] = {
    "queue/stats": CliCase(
        keys=[
            "Q:queue",
            "Q:ready",
            "Q:delayed",
            "Q:inflight",
            "Q:dead",
            "Q:seq",
            "Q:counters",
            "Q:epochs",
        ],
        args=[],
        prints=r"\d+\n2\n0\n0\n0\n-1\n-1\n1\n2\n3\n0\n0\n\d+",
        before=[
            ["ZADD", "Q:ready", "0", ID],
            ["LPUSH", "Q:queue", "2", "payload"],
            ["SET", "Q:seq", "2"],
            ["HSET", "Q:counters", "acked", "3"],
            ["ZADD", "Q:epochs", "1", "1700000000"],
        ],
    ),
    "stream/stats": CliCase(
        keys=["NAME", "Q:dead.g", "Q:delayed", "Q:counters.g"],
        args=["g"],
        prints=r"1\n0\n0\n1\n1\n0\n1\nc1\n1\n\d+\n1\n0\n0\n0\n-1",
        before=GROUP_READ,
    ),
    "schedule/add": CliCase(
        keys=["Q:data", "Q:entries", "Q:index"],
        args=["s1", "payload", "r:s1"],
        prints="1",
        after=[
            (["HGET", "Q:data", "s1"], "payload"),
            (["ZSCORE", "Q:index", "r:s1"], "0"),
        ],
    ),
    "schedule/delete": CliCase(
        keys=["Q:data", "Q:entries", "Q:index"],
        args=["s1"],
        prints="1",
        before=[
            ["HSET", "Q:data", "s1", "payload"],
            ["HSET", "Q:entries", "s1", "r:s1"],
            ["ZADD", "Q:index", "0", "r:s1"],
        ],
        after=[(["EXISTS", "Q:data", "Q:entries", "Q:index"], "0")],
    ),
    "schedule/stats": CliCase(
        keys=["Q:data", "Q:index"],
        args=[],
        prints=r"\d+\n2\n1700000000000",
        before=[
            ["HSET", "Q:data", "s1", "payload", "s2", "payload"],
            ["ZADD", "Q:index", "0", "r:s1", "0", "t:0001700000000000:s2"],
        ],
    ),
    "schedule/fetch": CliCase(
        keys=["Q:data", "Q:index"],
        args=["[r:", "(r;", "10"],
        prints=r"r:s1\npayload",
        before=[["HSET", "Q:data", "s1", "payload"], ["ZADD", "Q:index", "0", "r:s1"]],
    ),
    "stream/delay": CliCase(
        keys=["Q:delayed", "Q:payloads"],
        args=["m1", "payload", "1000"],
        prints=r"\d+",
        after=[
            (["HGET", "Q:payloads", "m1"], "payload"),
            (["ZCARD", "Q:delayed"], "1"),
        ],
    ),
    "stream/claim": CliCase(
        keys=STREAM_KEYS,
        args=CLAIM_ARGS,
        prints=r"\d+\n-1\n1-1\n2\npayload",
        before=GROUP_READ,
        after=[(["GET", "Q:lock.g"], "token")],
    ),
    "stream/ack": CliCase(
        keys=["NAME", "Q:counters.g"],
        args=["g", "1", "1-1"],
        prints="1",
        before=GROUP_READ,
        after=[(["XLEN", "NAME"], "0")],
    ),
    "stream/leave": CliCase(
        keys=["NAME"],
        args=["g", "c1"],
        prints="1",
        before=[
            *GROUP_READ,
            ["XACK", "NAME", "g", "1-1"],
        ],
        after=[(["XINFO", "CONSUMERS", "NAME", "g"], "")],
    ),
    "stream/extend": CliCase(
        keys=["NAME"],
        args=["g", "c1", "1-1", "5-5"],
        prints="5-5",
        before=GROUP_READ,
    ),
    "stream/release": CliCase(
        keys=["NAME", "Q:lock.g"],
        args=["g", "c1", "1099511627776", "1", "1-1", "1"],
        prints="1",
        before=[*GROUP_READ, ["SET", "Q:lock.g", "someone"]],
        after=[(["EXISTS", "Q:lock.g"], "0")],
    ),
    "stream/bury": CliCase(
        keys=["NAME", "Q:dead.g", "Q:counters.g"],
        args=["g", "1-1", "1", "why", "payload", "100"],
        prints="1",
        before=GROUP_READ,
        after=[(["XLEN", "Q:dead.g"], "1"), (["XLEN", "NAME"], "0")],
    ),
    "stream/requeue": CliCase(
        keys=["NAME", "Q:dead.g"],
        args=["oldest", "10"],
        prints="1",
        before=[["XADD", "Q:dead.g", "1-1", "data", "payload"]],
        after=[(["XLEN", "NAME"], "1"), (["XLEN", "Q:dead.g"], "0")],
    ),
    "stream/purge": CliCase(
        keys=["Q:dead.g"],
        args=["10"],
        prints="1",
        before=[["XADD", "Q:dead.g", "1-1", "data", "payload"]],
        after=[(["XLEN", "Q:dead.g"], "0")],
    ),
    "stream/dead": CliCase(
        keys=["Q:dead.g"],
        args=["0", "10"],
        prints=r"1\n1-1\n3\nwhy\npayload\n9-9",
        before=[
            [
                "XADD",
                "Q:dead.g",
                "1-1",
                "data",
                "payload",
                "deliveries",
                "3",
                "reason",
                "why",
                "origin",
                "9-9",
            ]
        ],
    ),
    "queue/kick": CliCase(
        keys=["Q:seq", "Q:queue", "Q:marker", "Q:epochs"],
        args=["1", "payload"],
        prints="1",
        after=[
            (["LRANGE", "Q:queue", "0", "-1"], "payload\n1"),
            (["ZSCORE", "Q:marker", "0"], "0"),
            (["ZCARD", "Q:epochs"], "1"),
        ],
    ),
    "queue/kick_sorted": CliCase(
        keys=["Q:seq", "Q:msgs", "Q:ready", "Q:delayed", "Q:marker", "Q:epochs"],
        args=["payload", "3", "0"],
        prints="0000000000000001:3",
        after=[
            (["HGET", "Q:msgs", "0000000000000001:3"], "payload"),
            (["ZSCORE", "Q:ready", "0000000000000001:3"], "-3"),
            (["ZCARD", "Q:epochs"], "1"),
        ],
    ),
    "queue/pop": CliCase(
        keys=[
            "Q:queue",
            "Q:ready",
            "Q:delayed",
            "Q:inflight",
            "Q:msgs",
            "Q:deliveries",
            "Q:dead",
            "Q:reasons",
            "Q:marker",
            "Q:counters",
        ],
        args=["30000", "10", "5", "1000", "100"],
        prints=rf"\d+\n\d+\n{ID}\n1\npayload",
        before=[["LPUSH", "Q:queue", "1", "payload"]],
        after=[(["ZCARD", "Q:inflight"], "1"), (["HGET", "Q:msgs", ID], "payload")],
    ),
    "queue/ack": CliCase(
        keys=["Q:ready", "Q:inflight", "Q:msgs", "Q:deliveries", "Q:counters"],
        args=[ID, "1"],
        prints="1",
        before=[
            ["HSET", "Q:msgs", ID, "p"],
            ["HSET", "Q:deliveries", ID, "1"],
            ["ZADD", "Q:inflight", "1", ID],
        ],
        after=[
            (["EXISTS", "Q:msgs", "Q:deliveries", "Q:inflight"], "0"),
            (["HGET", "Q:counters", "acked"], "1"),
        ],
    ),
    "queue/extend": CliCase(
        keys=["Q:inflight", "Q:deliveries"],
        args=["30000", ID, "1", "other", "1"],
        prints="other",
        before=[["HSET", "Q:deliveries", ID, "1"], ["ZADD", "Q:inflight", "1", ID]],
        after=[(["ZCOUNT", "Q:inflight", "1000", "+inf"], "1")],
    ),
    "queue/release": CliCase(
        keys=["Q:ready", "Q:inflight", "Q:deliveries", "Q:marker"],
        args=["1", ID, "1"],
        prints="1",
        before=[["HSET", "Q:deliveries", ID, "1"], ["ZADD", "Q:inflight", "1", ID]],
        after=[(["ZSCORE", "Q:ready", ID], "0"), (["HGET", "Q:deliveries", ID], "0")],
    ),
    "queue/bury": CliCase(
        keys=[
            "Q:inflight",
            "Q:deliveries",
            "Q:dead",
            "Q:reasons",
            "Q:msgs",
            "Q:counters",
        ],
        args=[ID, "1", "by hand", "100"],
        prints="1",
        before=[
            ["HSET", "Q:deliveries", ID, "1"],
            ["ZADD", "Q:inflight", "1", ID],
            ["HSET", "Q:msgs", ID, "p"],
        ],
        after=[(["HGET", "Q:reasons", ID], "by hand"), (["ZCARD", "Q:dead"], "1")],
    ),
    "queue/requeue": CliCase(
        keys=["Q:dead", "Q:reasons", "Q:deliveries", "Q:ready", "Q:marker"],
        args=["ids", ID],
        prints="1",
        before=[
            ["ZADD", "Q:dead", "5", ID],
            ["HSET", "Q:reasons", ID, "why"],
            ["HSET", "Q:deliveries", ID, "3"],
        ],
        after=[
            (["ZSCORE", "Q:ready", ID], "0"),
            (["EXISTS", "Q:reasons", "Q:dead"], "0"),
        ],
    ),
    "queue/purge": CliCase(
        keys=["Q:dead", "Q:reasons", "Q:deliveries", "Q:msgs"],
        args=["10"],
        prints="1",
        before=[["ZADD", "Q:dead", "5", ID], ["HSET", "Q:msgs", ID, "p"]],
        after=[(["EXISTS", "Q:dead", "Q:msgs"], "0")],
    ),
    "queue/dead": CliCase(
        keys=["Q:dead", "Q:reasons", "Q:deliveries", "Q:msgs"],
        args=["0", "10"],
        prints=rf"1\n{ID}\n5\n2\nwhy\np",
        before=[
            ["ZADD", "Q:dead", "5", ID],
            ["HSET", "Q:msgs", ID, "p"],
            ["HSET", "Q:reasons", ID, "why"],
            ["HSET", "Q:deliveries", ID, "2"],
        ],
    ),
    "result/set": CliCase(
        keys=["res:{NAME}", "res:{NAME}:progress", "res:{NAME}:watch"],
        args=["payload", "60000"],
        prints="1",
        before=[
            ["SET", "res:{NAME}:progress", "half"],
            ["XADD", "res:{NAME}:watch", "*", "waiting", "1"],
        ],
        after=[
            (["GET", "res:{NAME}"], "payload"),
            (["EXISTS", "res:{NAME}:progress"], "0"),
            (["XLEN", "res:{NAME}:watch"], "1"),
        ],
    ),
    "result/watch": CliCase(
        keys=["res:{NAME}", "res:{NAME}:watch"],
        args=["5000"],
        prints=r"0\n\d+-\d+",
        after=[(["XLEN", "res:{NAME}:watch"], "1")],
    ),
    "result/take": CliCase(
        keys=["res:{NAME}", "res:{NAME}:progress"],
        args=[],
        prints="payload",
        before=[["SET", "res:{NAME}", "payload"], ["SET", "res:{NAME}:progress", "p"]],
        after=[(["EXISTS", "res:{NAME}", "res:{NAME}:progress"], "0")],
    ),
}


def redis_cli(target: LocalTopology, *words: str) -> str:
    directory = scripts.catalog().directory.parent
    done = subprocess.run(
        [local_redis.server().cli, "-u", target.url, *words],
        cwd=directory,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return done.stdout.strip()


def test_every_script_has_a_hand_run_case() -> None:
    assert sorted(CASES) == sorted(item.name for item in scripts.catalog())


@pytest.mark.parametrize("name", sorted(CASES))
def test_script_runs_with_redis_cli_eval(
    single_redis: LocalTopology, unique: str, name: str
) -> None:
    case = CASES[name]

    def fill(words: list[str]) -> list[str]:
        return [word.replace("Q:", "{NAME}:").replace("NAME", unique) for word in words]

    for command in case.before:
        redis_cli(single_redis, *fill(command))
    path = f"lua/{name}.lua"
    printed = redis_cli(single_redis, "--eval", path, *fill(case.keys), ",", *case.args)
    assert re.fullmatch(case.prints, printed), printed
    for command, expected in case.after:
        assert redis_cli(single_redis, *fill(command)) == expected

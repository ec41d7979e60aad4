"""Every script runs by hand with `redis-cli --eval lua/<family>/<verb>.lua k , a`."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

import pytest

from taskiq_redis_lua import scripts
from taskiq_redis_lua.local_redis import LocalTopology


@dataclass
class CliCase:
    """One hand-run of a script: state before, the call, what redis-cli prints."""

    keys: list[str]
    args: list[str]
    prints: str
    before: list[list[str]] = field(default_factory=list)
    after: list[tuple[list[str], str]] = field(default_factory=list)


# `NAME` stands for a fresh name per test.
CASES: dict[str, CliCase] = {
    "result/set": CliCase(
        keys=["res:{NAME}", "res:{NAME}:progress"],
        args=["payload", "60000"],
        prints="1",
        before=[["SET", "res:{NAME}:progress", "half"]],
        after=[
            (["GET", "res:{NAME}"], "payload"),
            (["EXISTS", "res:{NAME}:progress"], "0"),
        ],
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
    host, port = target.url.removeprefix("redis://").split(":")
    directory = scripts.catalog().directory.parent
    done = subprocess.run(
        ["redis-cli", "-h", host, "-p", port, *words],
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
        return [word.replace("NAME", unique) for word in words]

    for command in case.before:
        redis_cli(single_redis, *fill(command))
    path = f"lua/{name}.lua"
    printed = redis_cli(single_redis, "--eval", path, *fill(case.keys), ",", *case.args)
    assert printed == case.prints
    for command, expected in case.after:
        assert redis_cli(single_redis, *fill(command)) == expected

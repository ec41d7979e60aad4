"""The script registry: headers, key counts, EVALSHA, and what follows NOSCRIPT."""

from __future__ import annotations

import importlib
import pkgutil
import re
import textwrap
from pathlib import Path

import pytest
from redis._parsers import _AsyncHiredisParser, _AsyncRESP2Parser, _AsyncRESP3Parser
from redis.asyncio import RedisCluster

from taskiq_redis_lua import (
    ScriptArgCountError,
    ScriptHeaderError,
    ScriptKeyCountError,
    ScriptReplyError,
    scripts,
)
from taskiq_redis_lua import topology as topo
from taskiq_redis_lua.keys import result_keys
from taskiq_redis_lua.local_redis import LocalTopology

from .conftest import OpenEndpoint

ECHO = """\
#!lua flags=no-writes
--[[ echo: return a fixed mix of reply types.
  KEYS[1] anchor   STRING  only routes the call
  ARGV[1] code     returned as is when it is a negative number
  Returns: {1, "two", {3, "four"}, value of KEYS[1] or false} or the code
  Errors: -7 the caller asked for the declared failure
  Work: O(1)
]]
local code = tonumber(ARGV[1])
if code and code < 0 then
  return code
end
return {1, "two", {3, "four"}, redis.call("GET", KEYS[1])}
"""


def write_script(root: Path, name: str, text: str) -> Path:
    path = root / f"{name}.lua"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def echo(tmp_path: Path) -> scripts.Script:
    write_script(tmp_path, "demo/echo", ECHO)
    return scripts.ScriptCatalog(tmp_path)["demo/echo"]


@pytest.fixture(
    params=[
        (2, _AsyncHiredisParser),
        (2, _AsyncRESP2Parser),
        (3, _AsyncHiredisParser),
        (3, _AsyncRESP3Parser),
    ],
    ids=["resp2-hiredis", "resp2-python", "resp3-hiredis", "resp3-python"],
)
async def any_protocol(
    request: pytest.FixtureRequest, topology: LocalTopology, open_endpoint: OpenEndpoint
) -> topo.Endpoint:
    """A client of each topology speaking RESP2 (redis-py 7's default) or RESP3
    (redis-py 8's), with and without hiredis."""
    protocol, parser = request.param
    if topology.kind == "cluster":
        if parser is not _AsyncHiredisParser:
            pytest.skip("RedisCluster takes no parser_class; parsers run on the others")
        return open_endpoint(topology, protocol=protocol)
    return open_endpoint(topology, protocol=protocol, parser_class=parser)


def scripts_the_package_calls() -> set[str]:
    """The scripts held by the package's modules (each module names what it calls)."""
    package = Path(scripts.__file__).parent
    called = set()
    for module in pkgutil.iter_modules([str(package)]):
        if module.name != "__main__":  # it runs the command line
            found = vars(importlib.import_module(f"taskiq_redis_lua.{module.name}"))
            called |= {v.name for v in found.values() if isinstance(v, scripts.Script)}
    return called


def test_the_package_ships_exactly_the_scripts_it_calls() -> None:
    shipped = {item.name for item in scripts.catalog()}
    called = scripts_the_package_calls()
    assert not called - shipped, "called but not shipped"
    assert not shipped - called, "shipped but never called"
    assert {name.split("/")[0] for name in called} == {
        "queue", "stream", "result", "schedule",
    }  # fmt: skip


def test_every_shipped_script_has_a_complete_header() -> None:
    for item in scripts.catalog():
        assert item.keys, f"{item.name} declares no keys"
        assert item.summary, f"{item.name} has no summary"
        assert item.body.startswith(b"#!lua"), f"{item.name} has no shebang"
        assert b"Work:" in item.body, f"{item.name} does not bound its work"
        assert b"Returns:" in item.body, f"{item.name} does not say what it returns"


def test_header_is_parsed_into_keys_args_errors_and_flags(echo: scripts.Script) -> None:
    assert echo.name == "demo/echo"
    assert echo.summary == "return a fixed mix of reply types."
    assert echo.keys == ("anchor",)
    assert echo.args == ("1 code     returned as is when it is a negative number",)
    assert echo.error_codes == {-7: "the caller asked for the declared failure"}
    assert echo.read_only is True
    assert scripts.script("result/set").read_only is False


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        (ECHO.replace("#!lua flags=no-writes\n", ""), "first line must be '#!lua'"),
        (ECHO.replace("echo:", "other:"), "the header names 'other'"),
        (ECHO.replace("KEYS[1] anchor", "KEYS[2] anchor"), "KEYS[2] is out of order"),
        (ECHO.replace('"GET", KEYS[1]', '"GET", KEYS[2]'), "uses KEYS[2]"),
        (ECHO.replace("  Work: O(1)\n", ""), "no 'Work:' line"),
        (ECHO.replace("  Returns:", "  Gives:"), "no 'Returns:' line"),
        (ECHO.replace("]]", ""), "not closed"),
        (ECHO.replace("ARGV[1] code", "ARGV[2] code"), "ARGV[2] is out of order"),
        (
            ECHO.replace("  return code\n", '  return redis.error_reply("TRL_OOPS")\n'),
            "returns ['TRL_OOPS'] but no 'Errors:' line names it",
        ),
    ],
)
def test_a_broken_header_is_refused_with_the_reason(
    tmp_path: Path, text: str, complaint: str
) -> None:
    write_script(tmp_path, "demo/echo", text)
    with pytest.raises(ScriptHeaderError, match=re.escape(complaint)) as raised:
        scripts.ScriptCatalog(tmp_path)
    assert "demo/echo" in str(raised.value)


def test_an_unknown_script_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="result/set"):
        scripts.script("result/nope")


async def test_keys_are_ordered_as_the_header_names_them_whatever_the_call_order(
    endpoint: topo.Endpoint, unique: str
) -> None:
    item = scripts.script("result/set")
    assert item.keys == ("result", "progress", "watch")
    keys = result_keys(None, unique)
    await endpoint.client.set(keys.progress, "stale progress")
    backwards = {"watch": keys.watch, "progress": keys.progress, "result": keys.result}
    assert await scripts.run(endpoint.client, item, backwards, ["value", 0]) == 1
    assert await endpoint.client.get(keys.result) == b"value"
    assert await endpoint.client.exists(keys.progress) == 0  # set.lua clears it


async def test_a_call_lacking_a_key_the_header_names_is_refused_naming_both(
    endpoint: topo.Endpoint, unique: str
) -> None:
    item = scripts.script("result/set")
    lacking = {"result": unique, "progress": f"{unique}:p"}
    with pytest.raises(
        ScriptKeyCountError, match="result/set takes the keys"
    ) as raised:
        await scripts.run(endpoint.client, item, lacking, ["value", 0])
    assert "has no watch" in str(raised.value)
    assert isinstance(raised.value, ValueError)
    assert await endpoint.client.exists(unique) == 0


@pytest.mark.parametrize("args", [[], ["0", "extra"]])
async def test_a_call_with_another_number_of_arguments_is_refused_before_redis(
    endpoint: topo.Endpoint, echo: scripts.Script, unique: str, args: list[str]
) -> None:
    assert (echo.min_args, echo.max_args) == (1, 1)
    with pytest.raises(
        ScriptArgCountError, match="demo/echo: takes at least 1 and at most 1 ARGV"
    ):
        await scripts.run(endpoint.client, echo, {"anchor": unique}, args)


def test_a_trailing_argv_range_takes_any_number_from_there_on() -> None:
    extend = scripts.script("queue/extend")
    assert (extend.min_args, extend.max_args) == (1, None)
    assert (
        scripts.script("queue/pop").min_args,
        scripts.script("queue/pop").max_args,
    ) == (5, 5)


async def test_keys_in_a_sequence_are_refused_for_their_order_is_not_checked(
    endpoint: topo.Endpoint, unique: str
) -> None:
    item = scripts.script("result/set")
    with pytest.raises(TypeError, match="takes its keys by name"):
        await scripts.run(endpoint.client, item, [unique] * 3, ["value", 0])
    assert await endpoint.client.exists(unique) == 0


async def test_scripts_run_without_loading_first_and_after_script_flush(
    any_protocol: topo.Endpoint, unique: str
) -> None:
    client = any_protocol.client
    item = scripts.script("result/set")
    keys = result_keys(None, unique)
    await client.script_flush()
    assert await scripts.run(client, item, keys, ["first", 0]) == 1
    await client.script_flush()
    assert await scripts.run(client, item, keys, ["second", 0]) == 1
    assert await client.get(keys.result) == b"second"


async def test_load_puts_every_script_on_every_primary(endpoint: topo.Endpoint) -> None:
    client = endpoint.client
    await client.script_flush()
    shipped = list(scripts.catalog())
    await scripts.load(client, shipped)
    shas = [item.sha for item in shipped]
    if isinstance(client, RedisCluster):
        primaries = client.get_primaries()
        assert len(primaries) == 3
        for node in primaries:
            exists = await client.execute_command(
                "SCRIPT EXISTS", *shas, target_nodes=node
            )
            assert list(exists) == [1] * len(shas), node
    else:
        assert await client.script_exists(*shas) == [True] * len(shas)


async def test_an_error_reply_becomes_a_script_reply_error(
    any_protocol: topo.Endpoint, unique: str
) -> None:
    item = scripts.script("result/set")
    keys = result_keys(None, unique)
    with pytest.raises(ScriptReplyError) as raised:
        await scripts.run(any_protocol.client, item, keys, ["value", "soon"])
    assert raised.value.code == "TRL_BADARG"
    assert "ARGV[2] must be a whole number >= 0, got soon" in str(raised.value)
    assert "result/set" in str(raised.value)


async def test_replies_decode_alike_under_resp2_and_resp3(
    any_protocol: topo.Endpoint, echo: scripts.Script, unique: str
) -> None:
    reply = await scripts.run(any_protocol.client, echo, {"anchor": unique}, ["0"])
    assert reply == [1, b"two", [3, b"four"], None]
    await any_protocol.client.set(unique, "here")
    reply = await scripts.run(any_protocol.client, echo, {"anchor": unique}, ["0"])
    assert reply == [1, b"two", [3, b"four"], b"here"]


async def test_a_declared_negative_code_raises_and_others_pass_through(
    any_protocol: topo.Endpoint, echo: scripts.Script, unique: str
) -> None:
    with pytest.raises(ScriptReplyError, match="declared failure") as raised:
        await scripts.run(any_protocol.client, echo, {"anchor": unique}, ["-7"])
    assert raised.value.code == "-7"
    assert (
        await scripts.run(any_protocol.client, echo, {"anchor": unique}, ["-3"]) == -3
    )


async def test_after_noscript_one_call_runs_by_body_and_later_calls_by_sha(
    single_redis: LocalTopology, unique: str, open_endpoint: OpenEndpoint
) -> None:
    if not single_redis.processes:
        pytest.skip("counts commands exactly: needs a server of its own, not REDIS_URL")
    client = open_endpoint(single_redis).client
    item = scripts.script("result/set")
    keys = result_keys(None, unique)

    async def calls() -> tuple[int, int]:
        stats = await client.info("commandstats")
        return tuple(  # type: ignore[return-value]
            int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))
            for command in ("eval", "evalsha")
        )

    evals, evalshas = await calls()
    await client.script_flush()
    await scripts.run(client, item, keys, ["value", 0])
    assert await calls() == (evals + 1, evalshas + 1)  # NOSCRIPT, then the body
    await scripts.run(client, item, keys, ["value", 0])
    assert await calls() == (evals + 1, evalshas + 2)  # loaded: by its SHA1 again


async def test_run_many_pipelines_calls_over_every_slot_and_reloads_after_flush(
    any_protocol: topo.Endpoint, unique: str
) -> None:
    client = any_protocol.client
    item = scripts.script("result/set")
    calls: list[tuple[scripts.KeySet, list[scripts.Arg]]] = [
        (result_keys(unique, str(n)), [f"value {n}", 0]) for n in range(20)
    ]
    await client.script_flush()
    assert await scripts.run_many(client, item, calls) == [1] * 20
    assert await client.get(result_keys(unique, "7").result) == b"value 7"


async def test_run_many_returns_each_refusal_in_place_of_its_reply(
    any_protocol: topo.Endpoint, unique: str
) -> None:
    item = scripts.script("result/set")
    good: tuple[scripts.KeySet, list[scripts.Arg]] = (
        result_keys(unique, "1"),
        ["a", 0],
    )
    bad: tuple[scripts.KeySet, list[scripts.Arg]] = (
        result_keys(unique, "2"),
        ["b", "soon"],
    )
    first, second = await scripts.run_many(any_protocol.client, item, [good, bad])
    assert first == 1
    assert isinstance(second, ScriptReplyError)
    assert second.code == "TRL_BADARG"
    with pytest.raises(ScriptKeyCountError):
        await scripts.run_many(
            any_protocol.client, item, [({"result": unique}, ["c", 0])]
        )

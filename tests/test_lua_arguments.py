"""Every script checks its arguments the same way, before it writes anything.

Whole-number ARGV are declared in one table per script, ``{index, least[, most]}``
(see any script under lua/); pairs after the fixed ARGV must come in pairs. A call
that breaks either gets ``TRL_BADARG`` naming the argument, and Redis is unchanged.
"""

from __future__ import annotations

import re

import pytest

from taskiq_redis_lua import ScriptReplyError, scripts
from taskiq_redis_lua import topology as topo

_RULES = re.compile(r"for _, rule in ipairs\(\{(.*?)\}\) do", re.DOTALL)
_RULE = re.compile(r"\{(\d+), (-?\d+)(?:, (-?\d+))?\}")
_PAIRS = re.compile(r"if \(#ARGV - (\d+)\) % 2 ~= 0 then")

Rule = tuple[int, int, int | None]


def rules_of(item: scripts.Script) -> list[Rule]:
    """The whole-number rules the script declares, read from its code."""
    found = _RULES.search(item.body.decode())
    if found is None:
        return []
    return [
        (int(index), int(least), int(most) if most else None)
        for index, least, most in _RULE.findall(found.group(1))
    ]


def checked() -> list[tuple[scripts.Script, Rule, str]]:
    cases = []
    for item in scripts.catalog():
        for rule in rules_of(item):
            _, least, most = rule
            bad = ["nope", "1.5", str(least - 1)]
            if most is not None:
                bad.append(str(most + 1))
            cases += [(item, rule, value) for value in bad]
    return cases


def valid_args(item: scripts.Script) -> list[scripts.Arg]:
    """Arguments that pass the script's checks: least values, "x" elsewhere."""
    args: list[scripts.Arg] = ["x"] * item.min_args
    for index, least, _ in rules_of(item):
        args[index - 1] = str(least)
    return args


def keys_of(item: scripts.Script, unique: str) -> dict[str, str]:
    return {name: f"{{{unique}}}:{name}" for name in item.keys}


def test_every_script_with_number_arguments_declares_them_in_one_table() -> None:
    numeric = {
        item.name
        for item in scripts.catalog()
        if re.search(r"tonumber\(ARGV\[\d+\]\)", item.body.decode())
    }
    declared = {item.name for item in scripts.catalog() if rules_of(item)}
    # kick_sorted checks its triples itself; requeue reads N only in mode "oldest".
    assert numeric - declared <= {
        "queue/kick_sorted",
        "queue/requeue",
        "stream/requeue",
    }
    for item in scripts.catalog():
        for index, _, _ in rules_of(item):
            assert index <= item.min_args, (item.name, index)
        if rules_of(item) or _PAIRS.search(item.body.decode()):
            assert "TRL_BADARG" in item.errors, item.name


@pytest.mark.parametrize(
    ("item", "rule", "value"),
    checked(),
    ids=lambda v: v.name if isinstance(v, scripts.Script) else str(v),
)
async def test_a_number_argument_out_of_its_range_is_refused_before_any_write(
    endpoint: topo.Endpoint, unique: str, item: scripts.Script, rule: Rule, value: str
) -> None:
    args = valid_args(item)
    args[rule[0] - 1] = value
    keys = keys_of(item, unique)
    with pytest.raises(ScriptReplyError) as raised:
        await scripts.run(endpoint.client, item, keys, args)
    assert raised.value.code == "TRL_BADARG"
    assert f"ARGV[{rule[0]}] must be a whole number >= {rule[1]}" in str(raised.value)
    assert f"got {value}" in str(raised.value)
    assert await endpoint.client.exists(*keys.values()) == 0


@pytest.mark.parametrize(
    "item",
    [item for item in scripts.catalog() if _PAIRS.search(item.body.decode())],
    ids=lambda item: item.name,
)
async def test_pairs_that_do_not_pair_up_are_refused_before_any_write(
    endpoint: topo.Endpoint, unique: str, item: scripts.Script
) -> None:
    keys = keys_of(item, unique)
    args = [*valid_args(item), "0000000000000001:0", "1", "0000000000000002:0"]
    with pytest.raises(ScriptReplyError, match="must be id, delivery pairs, got 3"):
        await scripts.run(endpoint.client, item, keys, args)
    assert await endpoint.client.exists(*keys.values()) == 0

"""The Lua script registry: read once, SCRIPT LOAD, EVALSHA, reload on NOSCRIPT.

Scripts are plain files under ``lua/<family>/<verb>.lua``. The header each file
starts with is read here: ``#!lua`` (optionally ``flags=no-writes``), then a comment
naming the script and its ``KEYS[i]``, ``ARGV[i]``, ``Returns:``, ``Errors:`` and
``Work:``. A call with another number of keys than the header declares is refused
before it reaches Redis.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from operator import attrgetter
from pathlib import Path
from typing import Any, cast

from redis.exceptions import NoScriptError, ResponseError

from taskiq_redis_lua import topology, wire
from taskiq_redis_lua.backoff import RETRYABLE
from taskiq_redis_lua.exceptions import (
    ScriptArgCountError,
    ScriptHeaderError,
    ScriptKeyCountError,
    ScriptReplyError,
)
from taskiq_redis_lua.topology import Client

Arg = wire.Arg
#: A call's keys by the names its script's header gives them: a mapping, or an
#: object with one attribute per name (``keys.ListQueueKeys`` and the like).
KeySet = Mapping[str, str] | object

_SHEBANG = re.compile(r"^#!lua(?:[ \t]+flags=([\w,-]+))?[ \t]*$")
_TITLE = re.compile(r"^--\[\[\s*([\w-]+):\s*(\S.*)$")
_KEY_LINE = re.compile(r"^\s*KEYS\[(\d+)\]\s+(\S+)")
_ARG_LINE = re.compile(r"^\s*ARGV\[(\d+(?:\.\.)?)\]\s+(\S.*)$")
_ERROR_LINE = re.compile(r"^\s*Errors?:\s*(-\d+|TRL_\w+)\s+(\S.*)$")
_KEY_USE = re.compile(r"KEYS\[(\d+)\]")
_ERROR_USE = re.compile(r"\bTRL_[A-Z_]+")
_ERROR_REPLY = re.compile(r"^(TRL_\w+)\s*(.*)$", re.DOTALL)


@dataclass(frozen=True)
class Script:
    """One Lua script file and what its header declares."""

    name: str
    path: Path
    body: bytes
    sha: str
    summary: str
    keys: tuple[str, ...]
    args: tuple[str, ...]
    errors: Mapping[str, str]
    error_codes: Mapping[int, str]
    read_only: bool
    #: Fewest ARGV a call passes, and the most (None: any number beyond, ARGV[n..]).
    min_args: int
    max_args: int | None


def parse_script(name: str, path: Path) -> Script:
    """Read ``path`` and parse its header; raise ScriptHeaderError when it is wrong."""
    body = path.read_bytes()
    lines = body.decode("utf-8").splitlines()

    def fail(detail: str) -> ScriptHeaderError:
        return ScriptHeaderError(script=name, detail=f"{path}: {detail}")

    shebang = _SHEBANG.match(lines[0]) if lines else None
    if shebang is None:
        raise fail("the first line must be '#!lua' or '#!lua flags=...'")
    flags = set((shebang.group(1) or "").split(","))
    title = _TITLE.match(lines[1]) if len(lines) > 1 else None
    if title is None:
        raise fail("the second line must open the header: '--[[ <verb>: <summary>'")
    if title.group(1) != path.stem:
        raise fail(f"the header names {title.group(1)!r}, the file is {path.stem!r}")
    end = next((i for i, line in enumerate(lines) if "]]" in line), None)
    if end is None:
        raise fail("the header comment is not closed with ']]'")
    header = lines[2:end]
    code = "\n".join(lines[end + 1 :])

    keys: list[str] = []
    for line in header:
        key = _KEY_LINE.match(line)
        if key is None:
            continue
        if int(key.group(1)) != len(keys) + 1:
            raise fail(
                f"KEYS[{key.group(1)}] is out of order; expected KEYS[{len(keys) + 1}]"
            )
        keys.append(key.group(2))
    used = {int(index) for index in _KEY_USE.findall(code)}
    undeclared = sorted(index for index in used if index > len(keys))
    if undeclared:
        raise fail(
            f"the code uses KEYS{undeclared} but the header declares {len(keys)}"
        )
    for section in ("Returns:", "Work:"):
        if not any(line.strip().startswith(section) for line in header):
            raise fail(f"the header has no '{section}' line")

    args = tuple(
        f"{m.group(1)} {m.group(2)}" for m in map(_ARG_LINE.match, header) if m
    )
    min_args, max_args = _arity(args, fail)
    errors = {m.group(1): m.group(2) for m in map(_ERROR_LINE.match, header) if m}
    undeclared_errors = sorted(set(_ERROR_USE.findall(code)) - set(errors))
    if undeclared_errors:
        raise fail(
            f"the code returns {undeclared_errors} but no 'Errors:' line names it"
        )
    sha = hashlib.sha1(body).hexdigest()  # noqa: S324 - Redis names scripts by SHA1
    wire.remember("EVALSHA", sha, len(keys))  # in every call of it
    return Script(
        name=name,
        path=path,
        body=body,
        sha=sha,
        summary=title.group(2).strip(),
        keys=tuple(keys),
        args=args,
        errors=errors,
        error_codes={
            int(code): text for code, text in errors.items() if code[0] == "-"
        },
        read_only="no-writes" in flags,
        min_args=min_args,
        max_args=max_args,
    )


def _arity(
    args: Sequence[str], fail: Callable[[str], ScriptHeaderError]
) -> tuple[int, int | None]:
    """Return the fewest and most ARGV the header's ``ARGV[i]`` lines allow.

    ``ARGV[n..]`` (last) takes any number from n on: at least n - 1 then.
    """
    fixed = 0
    for position, line in enumerate(args):
        index = line.split(" ", 1)[0]
        if index.endswith(".."):
            if position != len(args) - 1:
                raise fail(f"ARGV[{index}] must be the last ARGV line")
            start = int(index[:-2])
            if start != fixed + 1:
                raise fail(f"ARGV[{index}] is out of order; expected ARGV[{fixed + 1}]")
            return fixed, None
        if int(index) != fixed + 1:
            raise fail(f"ARGV[{index}] is out of order; expected ARGV[{fixed + 1}]")
        fixed += 1
    return fixed, fixed


class ScriptCatalog:
    """Every script under one directory, read and parsed once."""

    def __init__(self, directory: Path) -> None:
        """Read and parse every ``*.lua`` file below ``directory``."""
        self.directory = directory
        paths = sorted(directory.rglob("*.lua"))
        if not paths:
            raise ScriptHeaderError(
                script=str(directory), detail="no Lua scripts found in this directory"
            )
        self._scripts = {
            name: parse_script(name, path)
            for path in paths
            for name in [path.relative_to(directory).with_suffix("").as_posix()]
        }

    def __getitem__(self, name: str) -> Script:
        """Return the script called ``name`` (``family/verb``)."""
        try:
            return self._scripts[name]
        except KeyError:
            known = ", ".join(self._scripts)
            raise KeyError(f"no Lua script {name!r}; known scripts: {known}") from None

    def __iter__(self) -> Iterator[Script]:
        """Iterate over the scripts in name order."""
        return iter(self._scripts.values())

    def __len__(self) -> int:
        """Return the number of scripts."""
        return len(self._scripts)


def scripts_directory() -> Path:
    """Return the ``lua`` folder: inside the installed package, or the checkout's."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "lua", here.parent / "lua"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"the Lua scripts are missing: looked in {here / 'lua'}, {here.parent / 'lua'}",
    )


@cache
def catalog() -> ScriptCatalog:
    """Return the catalog of the scripts shipped with this package."""
    return ScriptCatalog(scripts_directory())


def script(name: str) -> Script:
    """Return the shipped script ``name`` (``family/verb``)."""
    return catalog()[name]


async def load(client: Client, scripts: Sequence[Script]) -> None:
    """``SCRIPT LOAD`` each script (on every primary of a cluster)."""
    for item in scripts:
        await _load(client, item)


async def _load(client: Client, item: Script, keys: Sequence[str] = ()) -> None:
    loaded = await topology.load_script(client, item.body, keys)
    if loaded != item.sha:  # pragma: no cover - would mean a Redis bug
        raise ScriptHeaderError(
            script=item.name, detail=f"Redis named it {loaded}, we computed {item.sha}"
        )


@cache
def _attributes(names: tuple[str, ...]) -> Callable[[object], tuple[str | None, ...]]:
    """Return a function that reads ``names`` off an object, in order."""
    read: Callable[[object], Any] = attrgetter(*names)
    if len(names) == 1:
        return lambda keys: (read(keys),)
    return cast("Callable[[object], tuple[str | None, ...]]", read)


def ordered_keys(item: Script, keys: KeySet) -> list[str]:
    """Return the call's keys in the order the header names them (KEYS[1], ...).

    ``keys`` maps the header's names to key names: a mapping, or an object with an
    attribute per name (the key sets of ``keys.py``). A name it lacks is refused.
    """
    if item.keys and not isinstance(keys, dict):
        try:  # the common case first: a key set of keys.py
            found = list(_attributes(item.keys)(keys))
        except AttributeError:
            pass
        else:
            if None not in found:
                return found  # type: ignore[return-value]
    if isinstance(keys, Mapping):
        found = [keys.get(name) for name in item.keys]
    elif isinstance(keys, str | bytes | Sequence):
        raise TypeError(
            f"Lua script {item.name} takes its keys by name ({', '.join(item.keys)}),"
            f" not in a sequence: {keys!r}"
        )
    else:
        found = [getattr(keys, name, None) for name in item.keys]
    if None in found:
        missing = [name for name, key in zip(item.keys, found, strict=True) if not key]
        raise ScriptKeyCountError(
            script=item.name, expected=", ".join(item.keys), missing=", ".join(missing)
        )
    return found  # type: ignore[return-value]


def _evalsha(
    item: Script, keys: KeySet, args: Sequence[Arg], *, by_body: bool = False
) -> wire.Command:
    if len(args) < item.min_args or (
        item.max_args is not None and len(args) > item.max_args
    ):
        most = "" if item.max_args is None else f" and at most {item.max_args}"
        raise ScriptArgCountError(
            script=item.name,
            detail=f"takes at least {item.min_args}{most} ARGV, the call passed"
            f" {len(args)}",
        )
    if by_body:  # runs wherever the call lands, loaded or not
        return ("EVAL", item.body, len(item.keys), *ordered_keys(item, keys), *args)
    return ("EVALSHA", item.sha, len(item.keys), *ordered_keys(item, keys), *args)


def reply_or_error(item: Script, reply: Any) -> Any:
    """Turn a reply the header declares as an error into ScriptReplyError."""
    if isinstance(reply, ResponseError):
        refusal = _ERROR_REPLY.match(str(reply))
        if refusal is None:
            return reply
        return ScriptReplyError(
            script=item.name, code=refusal.group(1), detail=refusal.group(2)
        )
    if isinstance(reply, int) and reply < 0 and reply in item.error_codes:
        return ScriptReplyError(
            script=item.name, code=str(reply), detail=item.error_codes[reply]
        )
    return reply


def _raise_outage(replies: Sequence[Any]) -> None:
    # A cluster pipeline returns a dead node's connection error in place of each
    # of its replies; callers retry outages only when they are raised.
    for reply in replies:
        if isinstance(reply, RETRYABLE):
            raise reply


async def run_many(
    client: Client,
    item: Script,
    calls: Sequence[tuple[KeySet, Sequence[Arg]]],
    *,
    client_retry: bool = True,
) -> list[Any]:
    """Run ``item`` once per ``(keys, args)`` in one pipeline (not a transaction).

    Returns one reply per call, in order; a call that failed has its exception in
    place of the reply (a declared error as :class:`ScriptReplyError`). Calls that
    met ``NOSCRIPT`` are run again with ``EVAL`` (which also caches the script where
    it runs: a node that only an ``ASK`` redirect reaches during a slot migration),
    after the script is loaded for later calls. Connection errors raise, also when
    only some nodes of a cluster failed: the caller retries the whole batch.
    ``client_retry=False`` is for callers that wait out outages themselves (see
    ``backoff.py``): the client then tries each write once.
    """
    commands = [_evalsha(item, keys, args) for keys, args in calls]
    replies = await topology.pipeline(client, commands, client_retry=client_retry)
    again = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if again:
        await _load(client, item, [str(key) for i in again for key in commands[i][3:4]])
        retried = await topology.pipeline(
            client,
            [_evalsha(item, *calls[i], by_body=True) for i in again],
            client_retry=client_retry,
        )
        for index, reply in zip(again, retried, strict=True):
            replies[index] = reply
    _raise_outage(replies)
    return [reply_or_error(item, reply) for reply in replies]


async def run(
    client: Client,
    item: Script,
    keys: KeySet,
    args: Sequence[Arg] = (),
    *,
    client_retry: bool = True,
) -> Any:
    """Run ``item`` with ``EVALSHA``; on ``NOSCRIPT`` load it and run it again.

    A reply that the header declares as an error (an ``TRL_...`` error reply or a
    negative code listed under ``Errors:``) raises :class:`ScriptReplyError`.
    """
    (reply,) = await run_many(client, item, [(keys, args)], client_retry=client_retry)
    if isinstance(reply, Exception):
        raise reply
    return reply


async def run_behind(
    client: Client,
    command: wire.Command,
    item: Script,
    keys: KeySet,
    args: Sequence[Arg] = (),
    *,
    client_retry: bool = True,
) -> tuple[Any, Any]:
    """Send ``command`` and then ``item`` in one pipeline; return both replies.

    Redis runs the script the moment the command is done (a blocking command's
    wait included). The script's reply is None if it was not loaded: the caller's
    next :func:`run` loads it.
    """
    first, reply = await topology.pipeline(
        client, [command, _evalsha(item, keys, args)], client_retry=client_retry
    )
    _raise_outage([first, reply])
    if isinstance(first, Exception):
        raise first
    if isinstance(reply, NoScriptError):
        return first, None
    reply = reply_or_error(item, reply)
    if isinstance(reply, Exception):
        raise reply
    return first, reply

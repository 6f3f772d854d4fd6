"""The Lua scripts of the Redis backend, loaded once per connection.

Each script lives in ``scripts/<name>.lua`` with a comment saying what its ``KEYS`` and
``ARGV`` are and what it returns. What Redis runs is three parts joined:

1. a header generated here from Python, so the two sides never disagree: the state
   machine of :mod:`ladon_tasks.model` (``LEGAL``, ``FINISHED``, ``STATES``), the key
   layout of :mod:`ladon_tasks.redis.keys` (``KEY``, ``GROUP``), the limits below, the
   width of a pending progress item (``PENDING_WIDTH``) and the run-time histogram's
   buckets (``DURATION_BUCKETS``, ``NEVER_RAN``, :mod:`ladon_tasks.stats`);
2. ``common.lua``, the functions every script shares;
3. the script itself.

Scripts run by ``EVALSHA`` (redis-py's ``Script`` loads a script again after a Redis
restart flushed its cache). Every script takes its keys' prefix as ``ARGV[1]`` and builds
its keys from it, never from ``KEYS``: many learn the ids whose keys they touch only inside
Redis, and on Redis Cluster one prefix is one slot, so the prefix alone routes a script
(:class:`RoutedScript` names it as the one key) to the node that holds all its keys.
Lists in ``ARGV`` go as their count, then their values (:func:`counted`).
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any, Sequence

from redis.client import NEVER_DECODE
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError

from ladon_tasks import defaults
from ladon_tasks.model import FINISHED_STATES, TRANSITIONS, TaskState
from ladon_tasks.redis.keys import GROUP, LAYOUT
from ladon_tasks.redis.progress import PENDING_WIDTH
from ladon_tasks.stats import DURATION_BUCKETS, NEVER_RAN


def _lua_string(text: str) -> str:
    if "'" in text or "\\" in text or "\n" in text:
        raise ValueError(f"not a plain Lua string: {text!r}")
    return f"'{text}'"


def header(sharded: bool = False) -> str:
    """The generated part: Python's tables and limits as Lua locals; ``sharded``: for
    Redis Cluster, where finish messages go on a shard channel (``SPUBLISH``)."""
    legal = ", ".join(
        f"{state.value} = {{{', '.join(f'{t.value} = true' for t in sorted(targets, key=lambda s: s.value))}}}"
        for state, targets in TRANSITIONS.items()
    )
    finished = ", ".join(f"{state.value} = true" for state in sorted(FINISHED_STATES, key=lambda s: s.value))
    states = ", ".join(_lua_string(state.value) for state in TaskState)
    layout = ", ".join(f"{name} = {_lua_string(part)}" for name, part in LAYOUT.items())
    return (
        f"local LEGAL = {{{legal}}}\n"
        f"local FINISHED = {{{finished}}}\n"
        f"local STATES = {{{states}}}\n"
        f"local KEY = {{{layout}}}\n"
        f"local GROUP = {_lua_string(GROUP)}\n"
        f"local EVENTS_MAXLEN = {int(defaults.EVENTS_MAXLEN)}\n"
        f"local PUBLISH_MAX = {int(defaults.PUBLISH_MAX)}\n"
        f"local PENDING_WIDTH = {int(PENDING_WIDTH)}\n"
        f"local DURATION_BUCKETS = {{{', '.join(repr(float(b)) for b in DURATION_BUCKETS)}}}\n"
        f"local NEVER_RAN = {_lua_string(NEVER_RAN)}\n"
        f"local PUBLISH = {_lua_string('SPUBLISH' if sharded else 'PUBLISH')}\n"
        f"local BELL = {'true' if sharded else 'false'}\n"
    )


@functools.lru_cache(maxsize=None)
def source(name: str, sharded: bool = False) -> str:
    """The whole text Redis runs for script ``name`` (``sharded``: on Redis Cluster)."""
    folder = resources.files("ladon_tasks.redis") / "scripts"
    common = (folder / "common.lua").read_text(encoding="utf-8")
    body = (folder / f"{name}.lua").read_text(encoding="utf-8")
    return f"{header(sharded)}\n{common}\n-- {name}.lua\n{body}"


def register(client: Any, name: str, route: str = "") -> Any:
    """Script ``name`` bound to ``client`` (a ``redis.Redis`` or ``RedisCluster``),
    callable as ``script(keys=[...], args=[...])``; ``route``: a key of the slot the
    script's keys are in (its prefix), which a cluster client needs to find the node."""
    if not isinstance(client, RedisCluster):
        return client.register_script(source(name))
    script = client.register_script(source(name, sharded=True))
    return RoutedScript(script, route) if route else script


def call_undecoded(client: Any, script: Any, args: list[str]) -> Any:
    """``script(args=args)`` with the strings of its answer left as bytes (redis-py's
    ``NEVER_DECODE``), for an answer that may hold a record that is not UTF-8: decoded
    whole, one such string fails the answer of every record in it. Loads the script
    again after a restart flushed it, as ``script(...)`` does."""
    keys = [script.route] if isinstance(script, RoutedScript) else []
    try:
        return client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args, **{NEVER_DECODE: True})
    except NoScriptError:
        script.sha = client.script_load(script.script)
        return client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args, **{NEVER_DECODE: True})


class RoutedScript:
    """A script on Redis Cluster that takes its keys from ``ARGV``: called without
    ``KEYS``, it names ``route`` (a key of its shard's slot, which it does not read) so
    that redis-py sends it to the node serving that slot - and Redis checks it is there -
    instead of to a random node."""

    def __init__(self, script: Any, route: str) -> None:
        self._script = script
        self.route = route

    @property
    def sha(self) -> str:
        return str(self._script.sha)

    @sha.setter
    def sha(self, value: str) -> None:
        self._script.sha = value

    @property
    def script(self) -> str:
        return str(self._script.script)

    def __call__(self, keys: list[str] | None = None, args: list[Any] | None = None, client: Any = None) -> Any:
        return self._script(keys=keys or [self.route], args=args, client=client)


def counted(values: Sequence[str], width: int = 1) -> list[str]:
    """Items of ``width`` values each (``values`` flat) as a script reads them from
    ``ARGV``: how many items, then their values."""
    if len(values) % width:
        raise ValueError(f"{len(values)} values are no whole number of items of {width}")
    return [str(len(values) // width), *values]

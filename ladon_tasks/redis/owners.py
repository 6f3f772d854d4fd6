"""Owner leases in Redis: which live process holds the tasks that run in process.

Keys (:mod:`ladon_tasks.redis.keys`): ``owners``, a sorted set of owner ids scored by
the time their lease runs out (ms, Redis server clock), and ``owned:<owner>``, the set
of task ids an owner holds; the record names its owner too. The create script adds a
task to its owner's set and every finish takes it out, so the set is what the owner
still holds. Each step below is one script (``scripts/owner_*.lua``).
"""

from __future__ import annotations

import time
from typing import Any, Callable, ContextManager

from ladon_tasks.model import TaskRecord
from ladon_tasks.redis import lua
from ladon_tasks.redis.replies import as_text
from ladon_tasks.redis.keys import Keys
from ladon_tasks.stores.base import Ownership


class RedisOwnership(Ownership):
    """Owner leases of one deployment (prefix) in one Redis. ``errors(action)`` turns
    Redis errors into ``StoreError``; ``decode`` reads a record from a script's answer."""

    def __init__(self, client: Any, prefix: str, errors: Callable[[str], ContextManager[None]],
                 decode: Callable[[Any], TaskRecord]) -> None:
        self.prefix = prefix
        self._client = client
        self._keys = Keys(prefix)
        self._errors = errors
        self._decode = decode
        self._renew = lua.register(client, "owner_renew", prefix)
        self._expired = lua.register(client, "owner_expired", prefix)
        self._adopt = lua.register(client, "owner_adopt", prefix)
        self._release = lua.register(client, "owner_release", prefix)

    def renew(self, owner: str, lease: float) -> None:
        with self._errors(f"renewing the lease of {owner}"):
            self._renew(args=[self.prefix, owner, str(int(lease * 1000))])

    def expired(self, owners: int = 10, tasks: int = 100) -> list[tuple[str, float, list[str]]]:
        with self._errors("looking for owners whose lease ran out"):
            found = self._expired(args=[self.prefix, str(owners), str(tasks)])
        return [(as_text(owner), int(ms) / 1000.0, [as_text(i) for i in ids]) for owner, ms, ids in found or []]

    def adopt(self, task_id: str, dead: str, new: str, max_lost: int, reason: str) -> TaskRecord | None:
        with self._errors(f"taking over task {task_id}"):
            flat = self._adopt(args=[self.prefix, task_id, dead, new, str(max_lost), repr(time.time()), reason])
        return self._decode(flat) if flat else None

    def held(self, owner: str) -> list[str]:
        with self._errors(f"reading the tasks {owner} holds"):
            return sorted(as_text(task_id) for task_id in self._client.smembers(self._keys.owned(owner)))

    def release(self, owner: str, max_lost: int, reason: str) -> int:
        with self._errors(f"handing over the tasks of {owner}"):
            return int(self._release(args=[self.prefix, owner, str(max_lost), repr(time.time()), reason]))

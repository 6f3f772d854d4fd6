"""The schedule book in Redis: one hash per schedule, ``schedule:<Service.method>``
(fields ``last_tick``, ``last_task``, ``paused``, ``run_request``, ``describe``,
``next_tick``), and the set ``schedules`` of their names, under the store's prefix.
``mark`` and ``clear_run`` are scripts (``schedule.lua``), so that writers in any order
keep the newest tick and never clear a newer request."""

from __future__ import annotations

import secrets
from typing import Any

from ladon_tasks.redis import lua
from ladon_tasks.redis.connection import REDIS_ERRORS
from ladon_tasks.redis.replies import as_text
from ladon_tasks.schedule_book import ScheduleBook, ScheduleState
from ladon_tasks.stores.base import StoreError


class RedisScheduleBook(ScheduleBook):
    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._script = lua.register(client, "schedule", prefix)

    def _key(self, name: str) -> str:
        return f"{self.prefix}schedule:{name}"

    def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except REDIS_ERRORS + (OSError,) as exc:
            raise StoreError(f"schedules: {what} failed: {exc}") from exc

    def state(self, name: str) -> ScheduleState:
        fields = {
            as_text(k): as_text(v) for k, v in (self._call("read", self.client.hgetall, self._key(name)) or {}).items()
        }
        return ScheduleState(
            name=name, last_tick=float(fields.get("last_tick") or 0.0), last_task=fields.get("last_task", ""),
            paused=fields.get("paused") == "1", run_request=fields.get("run_request", ""),
            describe=fields.get("describe", ""), next_tick=float(fields.get("next_tick") or 0.0),
        )

    def mark(self, name: str, tick: float, task_id: str) -> None:
        self._call("mark", self._script, args=[self.prefix, "mark", self._key(name), repr(float(tick)), task_id])

    def announce(self, name: str, describe: str, next_tick: float) -> None:
        key = self._key(name)
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(key, mapping={"describe": describe, "next_tick": repr(float(next_tick))})
        pipe.sadd(f"{self.prefix}schedules", name)
        self._call("announce", pipe.execute)

    def set_paused(self, name: str, paused: bool) -> None:
        self._call("pause", self.client.hset, self._key(name), "paused", "1" if paused else "0")

    def request_run(self, name: str) -> str:
        request = secrets.token_hex(8)
        self._call("request a run", self.client.hset, self._key(name), "run_request", request)
        return request

    def clear_run(self, name: str, request: str) -> None:
        self._call("clear a run", self._script, args=[self.prefix, "clear", self._key(name), request, ""])

    def names(self) -> list[str]:
        return sorted(as_text(name) for name in self._call("list", self.client.smembers, f"{self.prefix}schedules"))

"""Is this process fit to serve: cheap checks a load balancer or a container probe may
run every second (``GET /_tasks/health``, ``/health`` of ``worker --metrics-port``,
``ladon-tasks ping``).

Each check costs at most one Redis ``PING``; the rest looks at this process's own
threads. A check says ``ok`` or what is wrong; the answer is ``200`` with
``{"status": "ok", "checks": {...}}`` when every check is ``ok``, else ``503`` with
``"status": "unhealthy"`` and the ``problems``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ladon_tasks import defaults
from ladon_tasks.stores.base import StoreError, TaskStore

if TYPE_CHECKING:
    from ladon_tasks.runtime import TaskRuntime
    from ladon_tasks.worker import Worker

OK = "ok"


@dataclass
class Health:
    """The checks of one process, by name: ``ok`` or the problem."""

    role: str
    checks: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(value == OK for value in self.checks.values())

    def problems(self) -> list[str]:
        return [f"{name}: {value}" for name, value in self.checks.items() if value != OK]

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"status": OK if self.ok else "unhealthy", "role": self.role, "checks": self.checks}
        if not self.ok:
            data["problems"] = self.problems()
        return data


def _store_check(store: TaskStore) -> str:
    try:
        store.ping()
    except StoreError as exc:
        return f"does not answer: {exc}"
    return OK


def runtime_health(runtime: "TaskRuntime") -> Health:
    """A web process (or a standalone dashboard): its stores answer, the slots of its
    in-process executors and its caretaker thread run, and it is not shutting down."""
    health = Health("server")
    for number, store in enumerate(runtime.stores()):
        health.checks["store" if number == 0 else f"store {number + 1}"] = _store_check(store)
    for executor in runtime.local_executors():
        pool = executor.pool
        dead = pool.dead_slots()
        health.checks[f"executor {executor.name}"] = OK if not dead else f"{dead} of {pool.size} slot(s) stopped"
    health.checks["caretaker"] = OK if runtime.caretaker.alive else "its thread stopped: lost tasks are not taken over"
    health.checks["accepting"] = "shutting down" if runtime.closing else OK
    return health


def worker_health(worker: "Worker", stale: float = defaults.HOUSEKEEPING_STALE) -> Health:
    """A worker: Redis answers, its slots run, its housekeeping (reaper, leases,
    heartbeat) passed recently, and it is not stopping."""
    health = Health("worker")
    health.checks["store"] = _store_check(worker.store)
    dead = worker.pool.dead_slots()
    health.checks["slots"] = OK if not dead else f"{dead} of {worker.size} slot(s) stopped"
    late = time.monotonic() - worker.last_pass
    health.checks["housekeeping"] = OK if late < stale else f"no pass for {late:.0f}s (leases are not renewed)"
    health.checks["accepting"] = "stopping" if worker.stopping else OK
    return health

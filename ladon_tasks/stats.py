"""How many tasks there are, per method and state, and how long they ran - pure, no I/O.

Every store keeps the same numbers under the same names (``TaskStore.counts``): the
in-process store in a dictionary under its lock, the Redis store in one hash written by
the very scripts that change states, so a count is never a step behind a record. What
is kept, per task method ``m`` (a field name is ``m|name``):

==========================  ============================================================
field                       what
==========================  ============================================================
``m|submitted``             tasks recorded (start calls that made a new task): a counter
``m|running``               tasks whose record says ``running`` now: a gauge
``m|retried``               moves back to ``queued`` after the body raised (a retry)
``m|reissued``              moves back to ``queued`` of an attempt that was lost (its
                            worker or web process died or stopped): a reissue
``m|<state>|<i>``           tasks that finished in ``<state>`` after running for a time in
                            bucket ``i`` of :data:`DURATION_BUCKETS` (``i`` = its length:
                            longer than the last bound); ``-`` for tasks that never ran
``m|<state>|sum``           seconds those tasks ran, in all
==========================  ============================================================

Queued tasks are not counted apart: ``queued = submitted - finished - running``, each
of those exact. Finished counts are totals (counters, as Prometheus wants them), not
the records still retained: records expire after ``result_ttl`` and purges delete
them, and no count goes down for that.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ladon_tasks.model import FINISHED_STATES, TaskRecord, TaskState

#: Upper bounds, in seconds, of the run-time histogram's buckets (a last one, +Inf, is
#: implied): from a no-op (10 ms) to an hour-long report, a bucket per step an operator
#: tells apart.
DURATION_BUCKETS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)

#: The bucket of a task that finished without ever running (cancelled while queued).
NEVER_RAN = "-"

FINISHED_NAMES = tuple(sorted(state.value for state in FINISHED_STATES))


def field_name(method: str, *parts: str) -> str:
    return "|".join((method, *parts))


def bucket_of(seconds: float) -> int:
    """Index of the bucket ``seconds`` falls in (``len(DURATION_BUCKETS)``: beyond the last)."""
    return bisect.bisect_left(DURATION_BUCKETS, seconds)


def moved(record: TaskRecord, before: TaskState | None, requeued: str = "") -> list[tuple[str, float]]:
    """The changes to the fields when ``record`` (as it is now) was created
    (``before`` is ``None``) or moved from ``before`` to its state. ``requeued``:
    ``retried`` or ``reissued`` for a running attempt that went back to ``queued``. The
    Lua scripts apply the same rules (``counted`` in ``redis/scripts/common.lua``)."""
    method, after = record.method, record.state
    changes: list[tuple[str, float]] = []
    if before is None:
        changes.append((field_name(method, "submitted"), 1))
    if before is TaskState.RUNNING and after is not TaskState.RUNNING:
        changes.append((field_name(method, "running"), -1))
    if after is TaskState.RUNNING and before is not TaskState.RUNNING:
        changes.append((field_name(method, "running"), 1))
    if requeued:
        changes.append((field_name(method, requeued), 1))
    if after.finished:
        if record.started_at:
            seconds = max(0.0, (record.finished_at or record.started_at) - record.started_at)
            changes.append((field_name(method, after.value, str(bucket_of(seconds))), 1))
            changes.append((field_name(method, after.value, "sum"), seconds))
        else:
            changes.append((field_name(method, after.value, NEVER_RAN), 1))
    return changes


@dataclass
class MethodCounts:
    """The numbers of one task method."""

    submitted: int = 0
    running: int = 0
    retried: int = 0
    reissued: int = 0
    #: finished state -> per bucket counts, not cumulative (len(DURATION_BUCKETS) + 1)
    buckets: dict[str, list[int]] = field(default_factory=dict)
    never_ran: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def finished(self, state: str) -> int:
        return sum(self.buckets.get(state, ())) + self.never_ran.get(state, 0)

    @property
    def queued(self) -> int:
        return max(0, self.submitted - sum(self.finished(state) for state in FINISHED_NAMES) - self.running)

    def by_state(self) -> dict[str, int]:
        counts = {"queued": self.queued, "running": self.running}
        counts.update((state, self.finished(state)) for state in FINISHED_NAMES)
        return counts

    def to_json(self) -> dict[str, Any]:
        return {**self.by_state(), "submitted": self.submitted, "retried": self.retried, "reissued": self.reissued}


@dataclass
class TaskCounts:
    """The numbers of every task method a store has seen."""

    methods: dict[str, MethodCounts] = field(default_factory=dict)

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> "TaskCounts":
        """The numbers from the stored fields (see the module's table); names it does not
        know are skipped, so an older reader survives a newer writer."""
        counts = cls()
        for name, raw in fields.items():
            method, _, rest = str(name).partition("|")
            try:
                value = float(raw)
            except (TypeError, ValueError):
                continue
            numbers = counts.methods.setdefault(method, MethodCounts())
            if rest in ("submitted", "running", "retried", "reissued"):
                setattr(numbers, rest, int(value))
                continue
            state, _, part = rest.partition("|")
            if state not in FINISHED_NAMES:
                continue
            if part == "sum":
                numbers.seconds[state] = value
            elif part == NEVER_RAN:
                numbers.never_ran[state] = int(value)
            elif part.isdigit() and int(part) <= len(DURATION_BUCKETS):
                buckets = numbers.buckets.setdefault(state, [0] * (len(DURATION_BUCKETS) + 1))
                buckets[int(part)] = int(value)
        return counts

    def by_state(self, methods: Iterable[str] | None = None) -> dict[str, int]:
        """Tasks per state over ``methods`` (all when ``None``)."""
        total = {state.value: 0 for state in TaskState}
        for name, numbers in self.methods.items():
            if methods is None or name in methods:
                for state, count in numbers.by_state().items():
                    total[state] += count
        return total

    def to_json(self) -> dict[str, Any]:
        return {
            "states": self.by_state(),
            "methods": {name: numbers.to_json() for name, numbers in sorted(self.methods.items())},
        }


def apply(fields: dict[str, float], changes: Iterable[tuple[str, float]]) -> None:
    """Add ``changes`` to ``fields`` in place (the in-process store's bookkeeping)."""
    for name, delta in changes:
        fields[name] = fields.get(name, 0) + delta


@dataclass(frozen=True)
class QueueDepth:
    """One Redis queue now: jobs no worker has read yet (``waiting``), retries waiting for
    their time (``delayed``) and jobs workers hold (``running``: read and not yet
    acknowledged, which includes a job read ahead or just finished), per priority level."""

    name: str
    waiting: int = 0
    delayed: int = 0
    running: int = 0
    levels: dict[int, tuple[int, int]] = field(default_factory=dict)  # priority -> (waiting, running)

    def to_json(self) -> dict[str, Any]:
        return {
            "queue": self.name,
            "waiting": self.waiting,
            "delayed": self.delayed,
            "running": self.running,
            "levels": [
                {"priority": p, "waiting": w, "running": r} for p, (w, r) in sorted(self.levels.items(), reverse=True)
            ],
        }


def queue_depths(levels_found: Iterable[tuple[str, int, int, int]], delayed: Mapping[str, int]) -> list[QueueDepth]:
    """Queues from the figures of their priority levels (queue, priority, waiting,
    running) and the jobs each holds back (delayed), by name."""
    levels: dict[str, dict[int, tuple[int, int]]] = {name: {} for name in delayed}
    for name, level, waiting, running in levels_found:
        levels.setdefault(name, {})[int(level)] = (int(waiting), int(running))
    return [
        QueueDepth(name, sum(w for w, _ in by_level.values()), int(delayed.get(name, 0)),
                   sum(r for _, r in by_level.values()), by_level)
        for name, by_level in sorted(levels.items())
    ]


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker says of itself in its heartbeat (``ladon-tasks worker``)."""

    worker_id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    version: str
    started_at: float
    heartbeat_at: float
    running: tuple[str, ...] = ()
    runner: str = "process"

    def to_json(self) -> dict[str, Any]:
        return {
            "worker_id": self.worker_id, "host": self.host, "pid": self.pid, "queues": list(self.queues),
            "concurrency": self.concurrency, "runner": self.runner, "version": self.version,
            "started_at": self.started_at, "heartbeat_at": self.heartbeat_at, "running": list(self.running),
        }

    @classmethod
    def from_json(cls, data: Any) -> "WorkerInfo":
        """A description read back from the store; ``ValueError`` naming the field when
        it is not one a worker writes (``"pid": 1e400`` is infinite, no pid), so a
        damaged entry is told apart instead of breaking the listing it is in."""
        if not isinstance(data, Mapping) or not isinstance(data.get("worker_id"), str):
            raise ValueError("not a worker description: no worker_id")
        return cls(
            worker_id=data["worker_id"], host=str(data.get("host", "")), pid=_whole(data, "pid"),
            queues=_texts(data, "queues"), concurrency=_whole(data, "concurrency"),
            version=str(data.get("version", "")), started_at=_finite(data, "started_at"),
            heartbeat_at=_finite(data, "heartbeat_at"), running=_texts(data, "running"),
            runner=str(data.get("runner", "process")),
        )


def _whole(data: Mapping[str, Any], name: str) -> int:
    value = data.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2 ** 63:
        raise ValueError(f"field {name!r} of a worker description is no whole number: {str(value)[:40]!r}")
    return value


def _finite(data: Mapping[str, Any], name: str) -> float:
    value = data.get(name, 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"field {name!r} of a worker description is no finite number: {str(value)[:40]!r}")
    return float(value)


def _texts(data: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"field {name!r} of a worker description is no list of text")
    return tuple(value)


@dataclass(frozen=True)
class WebProcess:
    """A web process that holds an owner lease (it runs thread and process executor
    tasks), how long its lease has left and how many tasks it holds."""

    owner: str
    lease_left: float
    holds: int

    def to_json(self) -> dict[str, Any]:
        return {"owner": self.owner, "lease_left": self.lease_left, "holds": self.holds}

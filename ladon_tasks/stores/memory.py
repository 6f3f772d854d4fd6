"""Task records in this process's memory: the embedded default.

Thread-safe (one lock, held only for dictionary work, never across I/O), constant time
for get, report and transition. Memory stays bounded however many tasks a long-running
server has seen, and whatever the clients send:

* finished records expire ``result_ttl`` after they finish, and beyond ``capacity``
  finished records, or ``max_bytes`` of records in all (measured as their JSON when
  created and when finished), the oldest finished go first - a finished record bigger
  than the whole bound is not kept;
* queued and running records are never evicted; instead ``create`` refuses a new task
  with :class:`~ladon_tasks.stores.base.StoreFull` once ``max_queued`` of them exist, or
  once they would take more than ``max_bytes``.

Limits: records are visible to this process only. Under a multi-process web server
(mod_wsgi with ``processes > 1``, gunicorn workers) use the Redis store.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Iterable, Sequence

from ladon_tasks import codec, defaults
from ladon_tasks.model import IllegalTransition, TaskRecord, TaskState, check_transition
from ladon_tasks.stats import TaskCounts, apply, moved
from ladon_tasks.steps import StepRecord, summary
from ladon_tasks.stores.base import StoreFull, TaskStore
from ladon_tasks.stores.queues import JobChange, JobEntry


class MemoryStore(TaskStore):
    """Task records in this process's memory, bounded in count and bytes."""
    def __init__(
        self,
        capacity: int = defaults.MEMORY_STORE_CAPACITY,
        *,
        clock: Callable[[], float] = time.time,
        max_bytes: int = defaults.MEMORY_STORE_MAX_BYTES,
        max_queued: int = defaults.MAX_QUEUED_TASKS,
    ) -> None:
        if capacity < 1 or max_bytes < 1 or max_queued < 1:
            raise ValueError("capacity, max_bytes and max_queued must be at least 1")
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.max_queued = max_queued
        self._clock = clock
        self._records: dict[str, TaskRecord] = {}
        # task_id -> bytes of its JSON as last measured; their sum, and the finished part
        self._sizes: dict[str, int] = {}
        self._bytes = 0
        self._finished_bytes = 0
        # task_id -> expiry time, in the order tasks finished: the eviction queue.
        self._finished: OrderedDict[str, float] = OrderedDict()
        self._idempotency: dict[tuple[str, str, str, str], str] = {}
        # task_id -> its recorded steps by name, and their bytes of JSON (part of _sizes)
        self._steps: dict[str, dict[str, StepRecord]] = {}
        self._step_bytes: dict[str, int] = {}
        self._stats: dict[str, float] = {}  # the fields of ladon_tasks.stats
        # concurrency_key slot sets: key -> {task_id: (attempt, taken at)}
        self._slots: dict[str, dict[str, tuple[int, float]]] = {}
        self._rates: dict[str, float] = {}  # a rate key's next begin's theoretical time
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    # -- helpers (lock held) -------------------------------------------------------

    def _holds_slot(self, task_id: str, attempt: int, taken_at: float) -> bool:
        """The rule of ``slot_take.lua``: the attempt may run, or its start was refused
        beyond the limit a moment ago, before its record existed."""
        record = self._records.get(task_id)
        if record is None:
            return self._clock() - taken_at < defaults.SLOT_CREATE_GRACE
        if record.state is TaskState.RUNNING:
            return record.attempts == attempt
        return (record.state is TaskState.QUEUED and record.attempts == attempt - 1
                and not record.cancel_requested)

    def _live(self, task_id: str) -> TaskRecord | None:
        record = self._records.get(task_id)
        if record is not None and record.finished:
            expires_at = self._finished.get(task_id)
            if expires_at is not None and expires_at <= self._clock():
                self._forget(task_id)
                return None
        return record

    def _forget(self, task_id: str) -> None:
        record = self._records.pop(task_id, None)
        size = self._sizes.pop(task_id, 0)
        self._steps.pop(task_id, None)
        self._step_bytes.pop(task_id, None)
        self._bytes -= size
        if self._finished.pop(task_id, None) is not None:
            self._finished_bytes -= size
        if record is not None and record.idempotency_key:
            self._idempotency.pop((record.service, record.method, record.principal, record.idempotency_key), None)

    def _finish(self, record: TaskRecord) -> None:
        """Bookkeeping of a record that has just finished: its expiry, its size now that
        it holds a result, and room made under the bounds."""
        self._finished[record.task_id] = record.finished_at + record.result_ttl
        size = _json_size(record) + self._step_bytes.get(record.task_id, 0)
        self._bytes += size - self._sizes.get(record.task_id, 0)
        self._finished_bytes += size
        self._sizes[record.task_id] = size
        self._sweep()
        self._changed.notify_all()

    def _refusal(self, size: int) -> str | None:
        """Why a new unfinished record of ``size`` bytes must be refused, or ``None``."""
        unfinished = len(self._records) - len(self._finished)
        if unfinished >= self.max_queued:
            return f"{unfinished} tasks are queued or running, the most this server holds"
        if self._bytes - self._finished_bytes + size > self.max_bytes:
            return f"unfinished tasks would take more than the {self.max_bytes} bytes this server holds"
        return None

    def _sweep(self) -> None:
        now = self._clock()
        while self._finished:
            task_id, expires_at = next(iter(self._finished.items()))
            if expires_at > now and len(self._finished) <= self.capacity and self._bytes <= self.max_bytes:
                break
            self._forget(task_id)

    # -- contract ------------------------------------------------------------------

    def create(self, record: TaskRecord, job: JobEntry | None = None,
               steps: Sequence[StepRecord] = ()) -> TaskRecord:
        if job is not None:
            raise ValueError("the in-process store holds no job queues: executor='queue' needs Redis")
        if steps:
            record.step, record.steps_done = summary(steps)
        with self._lock:
            if record.idempotency_key:
                key = (record.service, record.method, record.principal, record.idempotency_key)  # per caller
                existing_id = self._idempotency.get(key)
                existing = self._live(existing_id) if existing_id else None
                if existing is not None:
                    return existing.copy()
            step_bytes = sum(_step_size(step) for step in steps)
            size = _json_size(record) + step_bytes
            refusal = self._refusal(size)
            if refusal is not None:
                raise StoreFull(refusal)
            if record.idempotency_key:
                self._idempotency[key] = record.task_id
            if not record.submitted_at:
                record.submitted_at = self._clock()
            stored = self._records[record.task_id] = record.copy()
            self._sizes[record.task_id] = size
            if steps:
                self._steps[record.task_id] = {step.name: step for step in steps}
                self._step_bytes[record.task_id] = step_bytes
            self._bytes += size
            apply(self._stats, moved(stored, None))
            if stored.finished:
                self._finish(stored)
            self._sweep()
            return record

    def get(self, task_id: str) -> TaskRecord | None:
        with self._lock:
            record = self._live(task_id)
            return record.copy() if record is not None and not record.finished else record

    keeps_slots = True

    def take_slot(self, key: str, limit: int, task_id: str, attempt: int | None = None) -> bool:
        with self._lock:
            if attempt is None:
                record = self._records.get(task_id)
                attempt = (record.attempts if record is not None else 0) + 1
            holders = self._slots.setdefault(key, {})
            for other, (number, taken_at) in list(holders.items()):
                if other != task_id and not self._holds_slot(other, number, taken_at):
                    del holders[other]
            if len(holders) - (task_id in holders) >= limit:
                return False
            holders[task_id] = (attempt, self._clock())
            return True

    def take_rate(self, key: str, interval: float, tolerance: float) -> float:
        """The GCRA of ``rate_take.lua``, by this store's clock, under its lock."""
        with self._lock:
            now = self._clock()
            due = max(self._rates.get(key, 0.0), now)
            if now < due - tolerance:
                return due - tolerance - now
            self._rates[key] = due + interval
            return 0.0

    def transition(
        self,
        task_id: str,
        target: TaskState,
        *,
        attempt: int | None = None,
        owner: str | None = None,
        job: JobChange | None = None,
        where: str | None = None,
        **changes: Any,
    ) -> TaskRecord | None:
        if job is not None:
            raise ValueError("the in-process store holds no job queues: executor='queue' needs Redis")
        with self._lock:
            record = self._live(task_id)
            if record is None:
                return None
            if attempt is not None and (record.attempts != attempt or record.state is not TaskState.RUNNING):
                return None
            if owner is not None and record.owner != owner:
                return None
            try:
                check_transition(record.state, target)
            except IllegalTransition:
                return None
            now = self._clock()
            before, record.state = record.state, target
            if target is TaskState.RUNNING:
                record.attempts += 1
                record.started_at = now
                record.finished_at = 0.0
                if where:
                    record.note_run(record.attempts, where)
            for name, value in changes.items():
                setattr(record, name, value)
            requeued = ""
            if target is TaskState.QUEUED and before is TaskState.RUNNING:
                requeued = "retried" if changes.get("error_type") else "reissued"
            if target.finished:
                record.finished_at = record.finished_at or now
            apply(self._stats, moved(record, before, requeued))
            if target.finished:
                copy = record.copy()
                self._finish(record)
                return copy
            return record.copy()

    def report(
        self,
        task_id: str,
        progress: float | None = None,
        message: str | None = None,
        *,
        attempt: int | None = None,
    ) -> bool:
        with self._lock:
            record = self._records.get(task_id)
            if record is None or record.state is not TaskState.RUNNING:
                return False
            if attempt is not None and record.attempts != attempt:
                return False
            if progress is not None:
                record.progress = progress
            if message is not None:
                record.message = message
            return not record.cancel_requested

    def load_steps(self, task_id: str) -> dict[str, StepRecord]:
        with self._lock:
            return dict(self._steps.get(task_id, {})) if self._live(task_id) is not None else {}

    def record_step(self, task_id: str, attempt: int, step: StepRecord) -> bool:
        with self._lock:
            record = self._records.get(task_id)
            if record is None or record.state is not TaskState.RUNNING or record.attempts != attempt \
                    or record.cancel_requested:
                return False
            steps = self._steps.setdefault(task_id, {})
            before = steps.get(step.name)
            steps[step.name] = step
            grown = _step_size(step) - (_step_size(before) if before is not None else 0)
            self._step_bytes[task_id] = self._step_bytes.get(task_id, 0) + grown
            self._sizes[task_id] = self._sizes.get(task_id, 0) + grown
            self._bytes += grown
            record.step = step.name
            record.steps_done += (step.state == "succeeded") - (before is not None and before.state == "succeeded")
            return True

    def request_cancel(self, task_id: str) -> TaskRecord | None:
        with self._lock:
            record = self._live(task_id)
            if record is None:
                return None
            if not record.finished:
                record.cancel_requested = True
                if record.state is TaskState.QUEUED:
                    record.state = TaskState.CANCELLED
                    record.finished_at = self._clock()
                    apply(self._stats, moved(record, TaskState.QUEUED))
                    copy = record.copy()
                    self._finish(record)
                    return copy
            return record.copy()

    def wait(self, task_id: str, timeout: float) -> TaskRecord | None:
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            while True:
                record = self._live(task_id)
                if record is None or record.finished:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            return record.copy() if record is not None and not record.finished else record

    def list_tasks(
        self,
        *,
        states: Iterable[TaskState] | None = None,
        method: str | None = None,
        limit: int = 100,
        offset: int = 0,
        tag: str | None = None,
        id_prefix: str | None = None,
        principal: str | None = None,
    ) -> list[TaskRecord]:
        wanted = frozenset(states) if states else None
        found: list[TaskRecord] = []
        if limit <= 0:
            return found
        with self._lock:
            self._sweep()
            skipped = 0
            for record in reversed(list(self._records.values())):
                if wanted is not None and record.state not in wanted:
                    continue
                if method is not None and record.method != method:
                    continue
                if tag and tag not in record.tags:
                    continue
                if id_prefix and not record.task_id.startswith(id_prefix):
                    continue
                if principal is not None and record.principal != principal:
                    continue
                if skipped < offset:
                    skipped += 1
                    continue
                found.append(record.copy())
                if len(found) >= limit:
                    break
        return found

    def counts(self) -> TaskCounts:
        with self._lock:
            return TaskCounts.from_fields(self._stats)

    def purge(self, states: Iterable[TaskState], method: str | None = None, dry_run: bool = False) -> int:
        wanted = {TaskState(state) for state in states if TaskState(state).finished}
        with self._lock:
            self._sweep()
            doomed = [task_id for task_id, record in self._records.items()
                      if record.state in wanted and (method is None or record.method == method)]
            if not dry_run:
                for task_id in doomed:
                    self._forget(task_id)
            return len(doomed)

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)


def _step_size(step: StepRecord) -> int:
    """Bytes of a recorded step's JSON, counted with its task's record."""
    return len(codec.dumps(step.to_json()))


def _json_size(record: TaskRecord) -> int:
    """About how many bytes ``record`` takes: the length of its JSON (a Python object
    of a few fields takes a few hundred bytes more; arguments and results dominate)."""
    return len(codec.dumps(record.to_json()))

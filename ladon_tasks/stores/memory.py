"""Task records in this process's memory: the embedded default.

Thread-safe (one lock, held only for dictionary work, never across I/O), constant time
for get, report and transition. Memory stays bounded however many tasks a long-running
server has seen: finished records expire ``result_ttl`` after they finish, and beyond
``capacity`` finished records the oldest finished go first. Queued and running records
are never evicted.

Limits: records are visible to this process only. Under a multi-process web server
(mod_wsgi with ``processes > 1``, gunicorn workers) use the Redis store.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Iterable

from ladon_tasks import defaults
from ladon_tasks.model import IllegalTransition, TaskRecord, TaskState, check_transition
from ladon_tasks.stores.base import JobChange, TaskStore


class MemoryStore(TaskStore):
    def __init__(self, capacity: int = defaults.MEMORY_STORE_CAPACITY, clock=time.time) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._clock = clock
        self._records: dict[str, TaskRecord] = {}
        # task_id -> expiry time, in the order tasks finished: the eviction queue.
        self._finished: OrderedDict[str, float] = OrderedDict()
        self._idempotency: dict[tuple[str, str, str], str] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    # -- helpers (lock held) -------------------------------------------------------

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
        self._finished.pop(task_id, None)
        if record is not None and record.idempotency_key:
            self._idempotency.pop((record.service, record.method, record.idempotency_key), None)

    def _sweep(self) -> None:
        now = self._clock()
        while self._finished:
            task_id, expires_at = next(iter(self._finished.items()))
            if expires_at > now and len(self._finished) <= self.capacity:
                break
            self._forget(task_id)

    # -- contract ------------------------------------------------------------------

    def create(self, record: TaskRecord) -> TaskRecord:
        with self._lock:
            if record.idempotency_key:
                key = (record.service, record.method, record.idempotency_key)
                existing_id = self._idempotency.get(key)
                existing = self._live(existing_id) if existing_id else None
                if existing is not None:
                    return existing.copy()
                self._idempotency[key] = record.task_id
            if not record.submitted_at:
                record.submitted_at = self._clock()
            self._records[record.task_id] = record.copy()
            self._sweep()
            return record

    def get(self, task_id: str) -> TaskRecord | None:
        with self._lock:
            record = self._live(task_id)
            return record.copy() if record is not None else None

    def transition(
        self,
        task_id: str,
        target: TaskState,
        *,
        attempt: int | None = None,
        owner: str | None = None,
        job: JobChange | None = None,
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
            record.state = target
            if target is TaskState.RUNNING:
                record.attempts += 1
                record.started_at = now
                record.finished_at = 0.0
            for name, value in changes.items():
                setattr(record, name, value)
            if target.finished:
                record.finished_at = record.finished_at or now
                self._finished[task_id] = record.finished_at + record.result_ttl
                self._sweep()
                self._changed.notify_all()
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
                    self._finished[task_id] = record.finished_at + record.result_ttl
                    self._changed.notify_all()
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
            return record.copy() if record is not None else None

    def list(
        self,
        *,
        states: Iterable[TaskState] | None = None,
        method: str | None = None,
        limit: int = 100,
        offset: int = 0,
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
                if skipped < offset:
                    skipped += 1
                    continue
                found.append(record.copy())
                if len(found) >= limit:
                    break
        return found

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

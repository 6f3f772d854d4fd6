"""The one contract every task store keeps.

A store knows records and nothing about execution. Executors and the wire layer talk to
it only through :class:`TaskStore`; each backend (in process, Redis) implements these
methods so that one shared test suite (``tests/test_store_contract.py``) runs against
all of them.

Rules every backend enforces:

* a record exists before its id is handed to anyone (``create`` before returning);
* state changes follow :data:`ladon_tasks.model.TRANSITIONS`, checked atomically with
  the write; a change from a stale attempt (``attempt`` no longer current) is refused,
  so a late answer can never overwrite a newer one;
* finished records expire ``result_ttl`` seconds after they finish;
* ``report`` (progress and message) never touches the state and never blocks on
  anything slower than the backend's own write;
* ``create`` refuses a new task with :class:`StoreFull` (writing nothing) once the
  backend holds as many unfinished tasks, or bytes of records, as it is configured to;
* a record that cannot be read raises :class:`CorruptRecord` from ``get`` and is shown
  as a :class:`~ladon_tasks.model.UnreadableRecord` by ``list``: one damaged record
  never hides the others.
"""

from __future__ import annotations

import abc
from typing import Any, Iterable

from ladon_tasks.model import TaskRecord, TaskState


class TaskStore(abc.ABC):
    """Where task records live."""

    @abc.abstractmethod
    def create(self, record: TaskRecord) -> TaskRecord:
        """Store a new record. With an ``idempotency_key`` already known for the same
        service and method, store nothing and return the existing record instead."""

    @abc.abstractmethod
    def get(self, task_id: str) -> TaskRecord | None:
        """The record, or ``None`` when unknown or expired."""

    @abc.abstractmethod
    def transition(
        self,
        task_id: str,
        target: TaskState,
        *,
        attempt: int | None = None,
        **changes: Any,
    ) -> TaskRecord | None:
        """Move to ``target`` and apply ``changes`` in one atomic step.

        Returns the new record, or ``None`` when the task is unknown, the move is not
        legal from the current state, or ``attempt`` is given and the task is not
        ``running`` that very attempt (a write on behalf of an attempt is only valid
        while that attempt runs). Moving to ``running`` counts a new attempt.
        """

    @abc.abstractmethod
    def report(
        self,
        task_id: str,
        progress: float | None = None,
        message: str | None = None,
        *,
        attempt: int | None = None,
    ) -> bool:
        """Record progress and/or message of a running attempt.

        Returns ``True`` while the attempt should go on, ``False`` once it should stop
        (cancel requested, finished, or superseded by a newer attempt)."""

    def begin(self, task_id: str, attempt: int, started_at: float) -> bool:
        """Attempt ``attempt`` of a queued task starts now; ``False`` if it may not (the
        task was cancelled, finished, or a newer attempt exists). A backend may put the
        write off until the attempt has run a moment (see ``RedisStore.begin``); until
        then a transition or report fenced by that attempt counts it as running."""
        return self.transition(task_id, TaskState.RUNNING, message="", started_at=started_at) is not None

    @abc.abstractmethod
    def request_cancel(self, task_id: str) -> TaskRecord | None:
        """Flag the task for cancel; a queued task is cancelled at once."""

    @abc.abstractmethod
    def wait(self, task_id: str, timeout: float) -> TaskRecord | None:
        """Return as soon as the task is finished or ``timeout`` seconds have passed."""

    @abc.abstractmethod
    def list(
        self,
        *,
        states: Iterable[TaskState] | None = None,
        method: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[TaskRecord]:
        """Newest first, filtered by state and method name."""

    def close(self) -> None:
        """Release connections and threads; the store is not used afterwards."""


class StoreError(Exception):
    """The backend could not be reached or answered wrongly; the wire shows it as the
    ``StoreUnavailable`` fault and the server keeps serving."""


class StoreFull(StoreError):
    """The store holds as many unfinished tasks (or bytes of records) as it may take:
    nothing was recorded. Raised by ``create`` only, before anything is written; the
    wire shows it as the ``ServerBusy`` fault, which a client backs off on."""


class CorruptRecord(StoreError):
    """One task's stored record cannot be read (bytes that are not UTF-8, not JSON, a
    field of the wrong type). Only that task is affected; the wire shows it as the
    ``CorruptTask`` fault, and listings show a stand-in
    (:class:`~ladon_tasks.model.UnreadableRecord`) in its place."""

    def __init__(self, task_id: str, problem: str) -> None:
        super().__init__(f"the record of task {task_id or '(unknown id)'} cannot be read: {problem}")
        self.task_id = task_id
        self.problem = problem

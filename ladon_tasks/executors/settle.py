"""From an attempt's :class:`~ladon_tasks.executors.base.Outcome` to the record's next
state: succeeded, failed, or queued again for a retry - one fenced store call, with the
job's move (acknowledge, delay) in the same call where the job lives in the store. A
retry is the method's policy (:mod:`ladon_tasks.policy`): a failure ``no_retry_on``
names, or ``retry_on`` does not, fails at once; its delay and the time of the next
attempt (``next_attempt_at``) are written with the move.

A finished outcome is worth more than the moment it was made in: when the store cannot
be reached, :func:`settle_durably` keeps the outcome and writes it once the store
answers again, so an outage of a few seconds does not make a finished body run again.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal

from ladon_tasks import defaults
from ladon_tasks.jobs import Job, Outcome
from ladon_tasks.logs import about
from ladon_tasks.model import TaskRecord, TaskState
from ladon_tasks.policy import retry_delay
from ladon_tasks.stores.base import StoreError, TaskStore
from ladon_tasks.stores.queues import JobChange

log = logging.getLogger(__name__)

#: What writing an outcome did (:class:`Settled`).
SettledKind = Literal["succeeded", "failed", "retry", "superseded", "interrupted"]


@dataclass(frozen=True)
class Settled:
    """What writing an outcome did.

    ``kind``: ``succeeded``, ``failed``, ``retry`` (queued again after ``delay``
    seconds), ``superseded`` (a newer attempt or a final state was there first: nothing
    written) or ``interrupted`` (cancel or timeout wrote the final state already).
    ``released``: the job's entry was acknowledged in the same call."""

    kind: SettledKind
    delay: float = 0.0
    released: bool = False
    #: The record as the final write left it (``succeeded`` and ``failed``), for its hooks;
    #: ``None`` when it was not asked for (``settle``'s ``keep_record``).
    record: TaskRecord | None = None


def settle(
    store: TaskStore,
    job: Job,
    attempt: int,
    outcome: Outcome,
    *,
    release: JobChange | None = None,
    retry_change: Callable[[float], JobChange | None] = lambda delay: None,
    keep_record: bool = True,
) -> Settled:
    """Write an attempt's outcome, or move the task back to ``queued`` for a retry.

    Every write is fenced by ``attempt``, so an answer from an attempt that was
    superseded is dropped. ``release`` goes with a final write; ``retry_change(delay)``
    with the move back to ``queued``. ``keep_record``: the final record is wanted
    (``Settled.record``, for completion hooks); else the store need not send it back."""
    now = time.time()
    released = release is not None

    def end(target: TaskState, **changes: Any) -> tuple[bool, TaskRecord | None]:
        if not keep_record:
            return store.transition_without_record(job.task_id, target, attempt=attempt, job=release,
                                                   **changes), None
        record = store.transition(job.task_id, target, attempt=attempt, job=release, **changes)
        return record is not None, record

    if outcome.kind == "succeeded":
        # an earlier attempt's error is history (attempt_errors), not this task's; a
        # first attempt has none to clear, and sends no empty fields
        cleared = {"error_type": "", "error_message": "", "error_traceback": ""} if attempt > 1 else {}
        done, record = end(TaskState.SUCCEEDED, result=outcome.result, progress=1.0, finished_at=now, **cleared)
        return Settled("succeeded" if done else "superseded", released=released, record=record)
    if outcome.kind != "failed":
        return Settled("interrupted")
    record = store.current(job.task_id)
    if record is None or record.finished or record.attempts > attempt:
        return Settled("superseded")  # (a queue worker's attempt may not be recorded yet: < is fine)
    if attempt < record.max_attempts and not record.cancel_requested and outcome.retry:
        delay = retry_delay(attempt, job.retry_delay, job.retry_max_delay, job.retry_jitter, outcome.retry_after)
        change = retry_change(delay)
        queued = store.transition_without_record(
            job.task_id, TaskState.QUEUED, attempt=attempt, job=change,
            message=f"retry {attempt + 1}/{record.max_attempts} in {delay:.3g}s after "
            f"{outcome.error_type}: {outcome.error_message}",
            error_type=outcome.error_type, error_message=outcome.error_message, next_attempt_at=now + delay,
            attempt_errors=[*record.attempt_errors,
                            f"attempt {attempt}: {outcome.error_type}: {outcome.error_message}"],
        )
        released = change is not None and change.release is not None
        return Settled("retry", delay, released) if queued else Settled("superseded", released=released)
    failed, record = end(
        TaskState.FAILED, error_type=outcome.error_type, error_message=outcome.error_message,
        error_traceback=outcome.traceback, finished_at=now,
    )
    return Settled("failed" if failed else "superseded", released=released, record=record)


def settle_durably(
    store: TaskStore,
    job: Job,
    attempt: int,
    outcome: Outcome,
    give_up: threading.Event,
    *,
    release: JobChange | None = None,
    retry_change: Callable[[float], JobChange | None] = lambda delay: None,
    keep_record: bool = True,
) -> Settled | None:
    """:func:`settle`, tried again while the store cannot be reached, until it answers
    or ``give_up`` is set (the process is leaving: ``None``, nothing written; the
    task's lease or owner runs out and it runs again)."""
    backoff, warned = 0.05, 0.0
    while True:
        try:
            return settle(store, job, attempt, outcome, release=release, retry_change=retry_change,
                          keep_record=keep_record)
        except StoreError as exc:
            if time.monotonic() - warned > 5.0:
                warned = time.monotonic()
                about(log, job).warning("outcome of attempt %d kept until the store answers: %s", attempt, exc)
        if give_up.wait(backoff):
            about(log, job).error("outcome of attempt %d dropped at shutdown; the task will run again", attempt)
            return None
        backoff = min(backoff * 2, defaults.SETTLE_BACKOFF_MAX)

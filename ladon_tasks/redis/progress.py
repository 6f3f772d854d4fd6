"""Progress writes of one Redis store, coalesced: a body may call ``update_progress`` in
a tight loop, and clients poll progress far less often.

:class:`ProgressWriter` keeps the latest progress and message per task attempt in
memory; one background thread writes them at most every ``flush_interval`` seconds, all
tasks in one script call. The continue/stop answer a body gets comes from the last
write (at most ``4 * flush_interval`` old; older answers are fetched afresh in the
caller's thread). Values not yet written are handed to a state change of their task
(:meth:`ProgressWriter.pending_for`), which writes them first in the same script call,
and are written on :meth:`ProgressWriter.close`; the script only lands them on a
*running* record of the same attempt, so progress can never overwrite a final state.

A queue worker's start (:meth:`ProgressWriter.begin`) rides the same way: written only
once the attempt has run ``flush_interval`` or reports progress, so a short body's start
and outcome reach Redis in one write.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from ladon_tasks import defaults
from ladon_tasks.redis.records import dumps
from ladon_tasks.stores.base import StoreError

log = logging.getLogger(__name__)

#: Values per pending item in a script's arguments: attempt, progress, message, start
#: time and where the attempt runs (the scripts get it in their header).
PENDING_WIDTH = 5



@dataclass
class Pending:
    """What a body's attempt told that is not in Redis yet (``None``: unchanged): progress,
    message, and - from :meth:`ProgressWriter.begin` - when and where the attempt started,
    which is worth writing only once the attempt has run for ``due`` (a monotonic time)."""

    progress: float | None = None
    message: str | None = None
    started_at: float | None = None
    due: float = 0.0
    where: str = ""

    def merge(self, progress: float | None, message: str | None) -> None:
        if progress is not None:
            self.progress = progress
            self.due = 0.0
        if message is not None:
            self.message = message
            self.due = 0.0

    def flat(self) -> list[str]:
        return [
            "" if self.progress is None else dumps(float(self.progress)),
            "" if self.message is None else dumps(self.message),
            "" if self.started_at is None else repr(float(self.started_at)),
            self.where,
        ]


@dataclass
class _Answer:
    """The last continue/stop answer Redis gave for one task attempt, and when."""

    go: bool
    at: float


#: Writes (task id, attempt, values) items with the report script; one answer each.
WriteReports = Callable[[list[tuple[str, "int | None", Pending]]], list[int]]


class ProgressWriter:
    """Coalesced progress of one store; ``write`` runs the report script (raising
    ``StoreError`` when Redis cannot be reached)."""

    def __init__(self, write: WriteReports, flush_interval: float = defaults.FLUSH_INTERVAL) -> None:
        if flush_interval <= 0:
            raise ValueError("flush_interval must be > 0")
        self.flush_interval = flush_interval
        self._write = write
        self._stopping = threading.Event()
        # one condition guards pending values, answers and writes in flight
        self._reports = threading.Condition()
        self._pending: dict[str, dict[int | None, Pending]] = {}
        self._answers: dict[tuple[str, int | None], _Answer] = {}
        self._inflight: set[str] = set()
        self._flusher: threading.Thread | None = None
        #: The writer thread waits for work without a timeout (idle for a while): only
        #: then does new work wake it - a wake-up per task costs more than its write.
        self._flusher_asleep = False
        #: Threads waiting for a task's write in flight to end (rare): only they need
        #: waking when one ends.
        self._inflight_waiters = 0
        self._last_flush = 0.0

    def report(self, task_id: str, progress: float | None, message: str | None, attempt: int | None) -> bool:
        """Keep (or write) the values; ``True`` while the attempt should go on."""
        key = (task_id, attempt)
        now = time.monotonic()
        with self._reports:
            answer = self._answers.get(key)
            if answer is not None and now - answer.at <= 4 * self.flush_interval:
                self._pending.setdefault(task_id, {}).setdefault(attempt, Pending()).merge(progress, message)
                self._wake_flusher()
                return answer.go
            # no fresh answer: write now and ask, in the caller's thread
            self._wait_until_landed(task_id)
            by_attempt = self._pending.get(task_id, {})
            values = by_attempt.pop(attempt, None) or Pending()
            if not by_attempt:
                self._pending.pop(task_id, None)
            values.merge(progress, message)
            self._inflight.add(task_id)
        try:
            go = bool(self._write([(task_id, attempt, values)])[0])
        except StoreError as exc:
            # keep the body going; the flusher retries the write and refreshes the answer
            log.warning("progress of task %s kept for later: %s", task_id, exc)
            with self._reports:
                self._pending.setdefault(task_id, {}).setdefault(attempt, values)
                self._answers[key] = _Answer(True, now)
            go = True
        else:
            with self._reports:
                self._answers[key] = _Answer(go, now)
        finally:
            self._release(task_id)
        self._ensure_flusher()
        return go

    def begin(self, task_id: str, attempt: int, started_at: float, where: str = "") -> None:
        """A queue worker starts an attempt (at ``where``, its id): the start is written
        once it has run ``flush_interval``, or with its first progress, or with its outcome."""
        with self._reports:
            self._pending.setdefault(task_id, {})[attempt] = Pending(
                started_at=started_at, due=time.monotonic() + self.flush_interval, where=where
            )
            self._wake_flusher()
        self._ensure_flusher()

    @contextlib.contextmanager
    def pending_for(self, task_id: str, fresh_answers: bool = True) -> Iterator[list[str]]:
        """Values kept back for ``task_id``, flat for a script call that changes its
        state, so they land first; kept for the next try if the call fails. Unless
        ``fresh_answers`` is false (a write that leaves the state as it is: a step), the
        next report asks Redis afresh whether the attempt goes on."""
        pending = self._take(task_id, fresh_answers)
        try:
            yield pending
        except StoreError:
            self._restore(task_id, pending)
            raise
        finally:
            self._release(task_id)

    def close(self) -> None:
        """Stop the writer thread and write what is pending."""
        self._stopping.set()
        with self._reports:
            self._reports.notify_all()
        if self._flusher is not None:
            self._flusher.join(timeout=10)
        self._flush_pending()  # whatever arrived after the flusher left

    # -- in and out of flight ----------------------------------------------------------

    def _take(self, task_id: str, fresh_answers: bool = True) -> list[str]:
        """Claim the task (no other write of its progress runs until :meth:`_release`)
        and hand over its unsent values."""
        with self._reports:
            self._wait_until_landed(task_id)
            self._inflight.add(task_id)
            by_attempt = self._pending.pop(task_id, {})
            for key in [k for k in self._answers if k[0] == task_id and fresh_answers]:
                del self._answers[key]  # the state changes: ask Redis afresh next time
        flat: list[str] = []
        for attempt, values in by_attempt.items():
            flat += ["" if attempt is None else str(attempt), *values.flat()]
        return flat

    def _restore(self, task_id: str, flat: list[str]) -> None:
        """Put back values a failed write carried, unless newer ones arrived meanwhile."""
        with self._reports:
            by_attempt = self._pending.setdefault(task_id, {})
            for i in range(0, len(flat), PENDING_WIDTH):
                attempt = int(flat[i]) if flat[i] else None
                by_attempt.setdefault(
                    attempt,
                    Pending(
                        json.loads(flat[i + 1]) if flat[i + 1] else None,
                        json.loads(flat[i + 2]) if flat[i + 2] else None,
                        float(flat[i + 3]) if flat[i + 3] else None,
                        where=flat[i + 4],
                    ),
                )

    def _wait_until_landed(self, task_id: str) -> None:
        """(Lock held.) Wait while a write of ``task_id`` is in flight."""
        while task_id in self._inflight:
            self._inflight_waiters += 1
            try:
                self._reports.wait()
            finally:
                self._inflight_waiters -= 1

    def _release(self, task_id: str) -> None:
        with self._reports:
            self._inflight.discard(task_id)
            if self._inflight_waiters:
                self._reports.notify_all()

    # -- the writer thread ---------------------------------------------------------------

    def _wake_flusher(self) -> None:
        """(Lock held.) New work for a writer thread asleep: woken once, however many
        calls come before it runs."""
        if self._flusher_asleep:
            self._flusher_asleep = False
            self._reports.notify_all()

    def _ensure_flusher(self) -> None:
        if self._flusher is not None or self._stopping.is_set():
            return
        with self._reports:
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._flush_loop, name="ladon-tasks-redis-flush", daemon=True)
                self._flusher.start()

    def _flush_loop(self) -> None:
        had_work = time.monotonic()
        while True:
            with self._reports:
                while not self._pending and not self._stopping.is_set():
                    # busy lately: look again in a flush interval, unasked; idle for a
                    # second: sleep until work wakes this thread
                    self._flusher_asleep = time.monotonic() - had_work > 1.0
                    if not self._flusher_asleep:
                        self._reports.wait(self.flush_interval)
                        continue
                    self._reports.wait()
                    # woken by work: busy again, even when a state change carried the work
                    # off before this thread looked (a short body's start goes with its
                    # finish) - so look on the timer again, not be woken for every task
                    had_work = time.monotonic()
                self._flusher_asleep = False
                if self._stopping.is_set() and not self._pending:
                    return
            had_work = time.monotonic()
            delay = self._last_flush + self.flush_interval - time.monotonic()
            if delay > 0:
                self._stopping.wait(delay)  # pacing; a close() flushes at once
            if not self._flush_pending():
                self._stopping.wait(self.flush_interval * 4)  # Redis is away: back off

    def _flush_pending(self) -> bool:
        """Write every task's latest values in one script call; refresh their answers."""
        with self._reports:
            self._last_flush = time.monotonic()
            items: list[tuple[str, int | None, Pending]] = []
            now = self._last_flush
            for task_id in [t for t in self._pending if t not in self._inflight][:defaults.FLUSH_BATCH]:
                by_attempt = self._pending[task_id]
                if all(values.due > now for values in by_attempt.values()):
                    continue  # a start too young to be worth a write: its end may carry it
                del self._pending[task_id]
                items += [(task_id, attempt, values) for attempt, values in by_attempt.items()]
                if by_attempt:
                    self._inflight.add(task_id)
            stale = [k for k, a in self._answers.items() if self._last_flush - a.at > 4 * self.flush_interval]
            for key in stale:
                del self._answers[key]
        if not items:
            return True
        try:
            answers = self._write(items)
        except Exception as exc:  # the flusher must outlive any failure, and free the tasks
            log.warning("progress of %d task(s) kept for later: %s", len(items), exc)
            with self._reports:
                for task_id, attempt, values in items:
                    self._pending.setdefault(task_id, {}).setdefault(attempt, values)
                    self._inflight.discard(task_id)
                if self._inflight_waiters:
                    self._reports.notify_all()
            return False
        now = time.monotonic()
        with self._reports:
            for (task_id, attempt, _), go in zip(items, answers, strict=True):
                self._answers[(task_id, attempt)] = _Answer(bool(go), now)
                self._inflight.discard(task_id)
            if self._inflight_waiters:
                self._reports.notify_all()
        return True

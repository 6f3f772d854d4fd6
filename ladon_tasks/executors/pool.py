"""A bounded pool of worker threads fed from one priority queue.

Both in-process executors are this pool: the thread executor runs the body on the worker
thread itself, the process executor's worker thread supervises one child process. Jobs
beyond the pool's size wait in ``queued``; higher priority first, first come first served
among equals. Worker threads start on first use, so importing a service costs nothing.
"""

from __future__ import annotations

import abc
import itertools
import logging
import queue
import threading


from ladon_tasks.executors.base import Executor, Job, Outcome, settle, time_out
from ladon_tasks.executors.timers import Timers
from ladon_tasks.model import TaskState
from ladon_tasks.stores.base import TaskStore

log = logging.getLogger(__name__)

_STOP = object()


class WorkerPool(Executor):
    def __init__(self, store: TaskStore, timers: Timers, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"{self.name} executor needs at least 1 worker, got {workers}")
        self.store = store
        self.timers = timers
        self.size = workers
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    # -- Executor ------------------------------------------------------------------

    def submit(self, job: Job) -> None:
        if self._closed:
            raise RuntimeError(f"{self.name} executor is shut down")
        self._queue.put((-job.priority, next(self._order), job))
        self._ensure_workers()

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put((float("inf"), next(self._order), _STOP))
        if wait:
            for thread in threads:
                thread.join()

    # -- the pool ------------------------------------------------------------------

    def _ensure_workers(self) -> None:
        with self._lock:
            if len(self._threads) >= self.size or self._closed:
                return
            index = len(self._threads)
            thread = threading.Thread(
                target=self._worker_loop, args=(index,), name=f"ladon-tasks-{self.name}-{index}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _worker_loop(self, index: int) -> None:
        while True:
            job = self._next_job(index)
            if job is None:
                self._stop_worker(index)
                return
            try:
                self._run_job(index, job)
            except Exception:  # keep the pool alive whatever one job does
                log.exception("worker %s of the %s executor failed on task %s", index, self.name, job.task_id)
            finally:
                self._job_done(index, job)

    def _next_job(self, index: int) -> Job | None:
        """Block until there is a job for this worker; ``None`` tells it to leave."""
        _, _, job = self._queue.get()
        return None if job is _STOP else job

    def _job_done(self, index: int, job: Job) -> None:
        """The attempt is settled (or abandoned); release what was held for it."""

    def _run_job(self, index: int, job: Job) -> None:
        attempt = self._begin(job)
        if attempt is None:
            return  # cancelled while queued, or expired
        timer = None
        if job.timeout:
            timer = self.timers.call_later(job.timeout, lambda: self._on_timeout(index, job, attempt))
        try:
            outcome = self._execute(index, job, attempt)
        finally:
            if timer is not None:
                self.timers.cancel(timer)
        settle(self.store, job, attempt, outcome, self._retry_later)

    def _begin(self, job: Job) -> int | None:
        """Mark the task running; its attempt number, or ``None`` if it may not run."""
        record = self.store.transition(job.task_id, TaskState.RUNNING, message="")
        return None if record is None else record.attempts

    def _on_timeout(self, index: int, job: Job, attempt: int) -> None:
        if time_out(self.store, job, attempt):
            self._enforce_stop(index, job.task_id)

    def _retry_later(self, job: Job, delay: float) -> None:
        self.timers.call_later(delay, lambda: self.submit(job) if not self._closed else None)

    # -- what differs between thread and process -------------------------------------

    @abc.abstractmethod
    def _execute(self, index: int, job: Job, attempt: int) -> Outcome:
        """Run one attempt and return how it ended."""

    def _enforce_stop(self, index: int, task_id: str) -> None:
        """The record says the attempt is over (timeout, cancel); stop it if we can."""

    def _stop_worker(self, index: int) -> None:
        """A worker thread is leaving: release what it holds."""



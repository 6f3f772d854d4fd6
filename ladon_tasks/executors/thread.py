"""Bodies on a bounded pool of threads in the web-server process: the default.

Cancel and timeout are cooperative: the record is marked at once, and the body is
interrupted at its next ``update_progress`` (or sees ``kw['is_cancelled']()``). A body
that never reports keeps its thread until it returns; its late result is dropped.
For bodies that must be stopped hard, or that hold the GIL, use ``executor='process'``.
"""

from __future__ import annotations

from ladon_tasks import defaults
from ladon_tasks.executors.base import Job, Outcome, StoreReporter, run_body
from ladon_tasks.executors.pool import WorkerPool
from ladon_tasks.executors.timers import Timers
from ladon_tasks.stores.base import TaskStore


class ThreadExecutor(WorkerPool):
    name = "thread"

    def __init__(self, store: TaskStore, timers: Timers, workers: int = defaults.THREAD_WORKERS) -> None:
        super().__init__(store, timers, workers)

    def _execute(self, index: int, job: Job, attempt: int) -> Outcome:
        return run_body(job, attempt, StoreReporter(self.store, job.task_id, attempt))
